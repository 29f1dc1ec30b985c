//! One replica: acceptor, proposer (when leading) and learner, as a deterministic state machine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::message::{Command, Entry, Message};
use crate::store::{AcceptorState, StoreRecord};
use crate::types::{Ballot, NodeId, Slot};

/// Replica configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica.
    pub id: NodeId,
    /// Every member, this one included.
    pub peers: Vec<NodeId>,
    /// Election timeout range in ticks (a random value in it, from the seed).
    pub election_ticks_min: u64,
    /// See `election_ticks_min`.
    pub election_ticks_max: u64,
    /// A leader sends heartbeats (and retransmits unacknowledged accepts) this often.
    pub heartbeat_ticks: u64,
    /// Slots in flight at most.
    pub window_slots_max: usize,
    /// Commands per slot at most.
    pub batch_commands_max: usize,
    /// Payload bytes per slot at most (a single larger command still gets a slot).
    pub batch_bytes_max: usize,
    /// Seed of the replica's random source (election timeouts).
    pub seed: u64,
}

impl Config {
    /// Sensible defaults for `id` among `peers`.
    pub fn new(id: NodeId, peers: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            peers,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 2,
            window_slots_max: 1024,
            batch_commands_max: 1024,
            batch_bytes_max: 1 << 20,
            seed,
        }
    }
}

/// Deliberate protocol bugs, off by default: they exist only so that tests and the simulator
/// can show their checkers catch each one. Never set them in real use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Reply Promise before the promise is durable.
    pub promise_before_durable: bool,
    /// A new leader ignores the values reported in phase 1 and proposes no-ops.
    pub ignore_highest_ballot_value: bool,
    /// Accept a ballot lower than the one promised.
    pub accept_lower_ballot: bool,
    /// On accepting a slot, forget accepted values of later slots (Raft-style truncation).
    pub truncate_suffix_on_conflict: bool,
}

/// The replica's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs phase 1.
    Candidate,
    /// Runs phase 2.
    Leader,
}

/// An effect the runtime must carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make these records durable, then call [`Replica::persisted`] with `token`.
    Persist {
        /// Completion token (increasing).
        token: u64,
        /// Records to persist, in order.
        records: Vec<StoreRecord>,
    },
    /// Send a message.
    Send {
        /// Recipient.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Apply a chosen entry to the state machine (slot order, once per slot).
    Apply {
        /// The slot.
        slot: Slot,
        /// Its chosen value.
        entry: Entry,
    },
}

/// `propose` on a replica that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    /// The leader, if known.
    pub leader: Option<NodeId>,
}

#[derive(Debug)]
enum Deferred {
    Send(NodeId, Message),
    SelfPromise(Ballot),
    SelfAccept(Ballot, Slot),
}

#[derive(Debug)]
struct Inflight {
    entry: Entry,
    acks: BTreeSet<NodeId>,
}

/// A Multi-Paxos replica. See the module docs for the input/output contract.
#[derive(Debug)]
pub struct Replica {
    cfg: Config,
    /// Deliberate bugs (tests only).
    pub planted: PlantedBugs,
    rng: u64,
    promised: Ballot,
    accepted: BTreeMap<Slot, (Ballot, Entry)>,
    /// Known chosen values (all of them, for catch-up; snapshots will bound this later).
    chosen: BTreeMap<Slot, Entry>,
    commit: Slot,
    applied: Slot,
    leader_commit: Slot,
    role: Role,
    ballot: Ballot,
    leader: Option<NodeId>,
    promise_from: Slot,
    promises: BTreeMap<NodeId, Vec<(Slot, Ballot, Entry)>>,
    prevotes: BTreeSet<NodeId>,
    max_round_seen: u64,
    next_slot: Slot,
    inflight: BTreeMap<Slot, Inflight>,
    queue: VecDeque<Command>,
    elapsed: u64,
    timeout: u64,
    heartbeat_elapsed: u64,
    actions: Vec<Action>,
    next_token: u64,
    deferred: VecDeque<(u64, Vec<Deferred>)>,
}

impl Replica {
    /// A replica starting from its durable acceptor state (empty for a new one). Chosen
    /// values are relearned from the leader after a restart.
    pub fn new(cfg: Config, durable: &AcceptorState) -> Replica {
        let accepted = durable
            .accepted
            .iter()
            .filter_map(|(s, (b, v))| Entry::decode(v).map(|e| (*s, (*b, e))))
            .collect();
        let mut r = Replica {
            rng: cfg.seed ^ 0x9E37_79B9_7F4A_7C15,
            cfg,
            planted: PlantedBugs::default(),
            promised: durable.promised,
            accepted,
            chosen: BTreeMap::new(),
            commit: Slot(0),
            applied: Slot(0),
            leader_commit: Slot(0),
            role: Role::Follower,
            ballot: Ballot::ZERO,
            leader: None,
            promise_from: Slot(1),
            promises: BTreeMap::new(),
            prevotes: BTreeSet::new(),
            max_round_seen: durable.promised.round,
            next_slot: Slot(1),
            inflight: BTreeMap::new(),
            queue: VecDeque::new(),
            elapsed: 0,
            timeout: 0,
            heartbeat_elapsed: 0,
            actions: Vec::new(),
            next_token: 1,
            deferred: VecDeque::new(),
        };
        r.timeout = r.random_timeout();
        r
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this replica follows (itself when leading), if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Every slot up to this one is known chosen.
    pub fn commit(&self) -> Slot {
        self.commit
    }

    /// The highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Takes the actions queued so far.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn random_timeout(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let span = self
            .cfg
            .election_ticks_max
            .saturating_sub(self.cfg.election_ticks_min)
            + 1;
        self.cfg.election_ticks_min + z % span
    }

    fn majority(&self) -> usize {
        self.cfg.peers.len() / 2 + 1
    }

    fn others(&self) -> Vec<NodeId> {
        self.cfg
            .peers
            .iter()
            .copied()
            .filter(|&p| p != self.cfg.id)
            .collect()
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.actions.push(Action::Send { to, msg });
    }

    fn persist(&mut self, records: Vec<StoreRecord>, then: Vec<Deferred>) {
        let token = self.next_token;
        self.next_token += 1;
        self.actions.push(Action::Persist { token, records });
        self.deferred.push_back((token, then));
    }

    /// A storage completion: the records of `token` are durable.
    pub fn persisted(&mut self, token: u64) {
        // Completions arrive in order; anything else is ignored (it cannot be trusted).
        let Some(pos) = self.deferred.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let done: Vec<(u64, Vec<Deferred>)> = self.deferred.drain(..=pos).collect();
        for (_, list) in done {
            for d in list {
                match d {
                    Deferred::Send(to, msg) => self.send(to, msg),
                    Deferred::SelfPromise(b) => {
                        if self.role == Role::Candidate && self.ballot == b {
                            let own = self.accepted_from(self.promise_from);
                            self.promises.insert(self.cfg.id, own);
                            self.try_lead();
                        }
                    }
                    Deferred::SelfAccept(b, slot) => {
                        if self.role == Role::Leader && self.ballot == b {
                            self.ack(self.cfg.id, slot);
                        }
                    }
                }
            }
        }
    }

    fn accepted_from(&self, from: Slot) -> Vec<(Slot, Ballot, Entry)> {
        self.accepted
            .range(from..)
            .map(|(s, (b, e))| (*s, *b, e.clone()))
            .collect()
    }

    /// Advances time by one tick.
    pub fn tick(&mut self) {
        self.elapsed += 1;
        match self.role {
            Role::Leader => {
                self.heartbeat_elapsed += 1;
                if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                    self.heartbeat_elapsed = 0;
                    self.elapsed = 0;
                    self.heartbeat();
                }
            }
            Role::Follower | Role::Candidate => {
                if self.elapsed >= self.timeout {
                    self.start_prevote();
                }
            }
        }
    }

    fn heartbeat(&mut self) {
        let (ballot, commit) = (self.ballot, self.commit);
        for p in self.others() {
            self.send(p, Message::Commit { ballot, commit });
        }
        // Retransmit accepts a peer has not acknowledged (messages may be lost).
        let resend: Vec<(NodeId, Slot, Entry)> = self
            .inflight
            .iter()
            .flat_map(|(s, f)| {
                self.others()
                    .into_iter()
                    .filter(|p| !f.acks.contains(p))
                    .map(|p| (p, *s, f.entry.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (p, slot, entry) in resend {
            self.send(
                p,
                Message::Accept {
                    ballot,
                    slot,
                    entry,
                    commit,
                },
            );
        }
    }

    fn next_ballot(&self) -> Ballot {
        let round = self
            .promised
            .round
            .max(self.ballot.round)
            .max(self.max_round_seen)
            + 1;
        Ballot::new(round, self.cfg.id)
    }

    /// Asks whether a majority would join an election; campaigns only if so.
    fn start_prevote(&mut self) {
        self.elapsed = 0;
        self.timeout = self.random_timeout();
        self.prevotes.clear();
        self.prevotes.insert(self.cfg.id);
        let ballot = self.next_ballot();
        for p in self.others() {
            self.send(p, Message::PreVote { ballot });
        }
        if self.prevotes.len() >= self.majority() {
            self.start_election();
        }
    }

    fn start_election(&mut self) {
        let round = self.next_ballot().round;
        self.ballot = Ballot::new(round, self.cfg.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.promises.clear();
        self.inflight.clear();
        self.elapsed = 0;
        self.timeout = self.random_timeout();
        self.promised = self.ballot;
        self.promise_from = Slot(self.commit.0 + 1);
        let ballot = self.ballot;
        // Our own promise counts once durable; the prepare itself needs no durability.
        self.persist(
            vec![StoreRecord::Promise(ballot)],
            vec![Deferred::SelfPromise(ballot)],
        );
        let from = self.promise_from;
        for p in self.others() {
            self.send(p, Message::Prepare { ballot, from });
        }
    }

    fn step_down(&mut self, leader: Option<NodeId>) {
        self.role = Role::Follower;
        self.leader = leader;
        self.promises.clear();
        self.inflight.clear();
        self.queue.clear();
        self.elapsed = 0;
    }

    /// A client command. Only the leader takes commands.
    pub fn propose(&mut self, cmd: Command) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        self.queue.push_back(cmd);
        self.fill_window();
        Ok(())
    }

    fn fill_window(&mut self) {
        while self.inflight.len() < self.cfg.window_slots_max && !self.queue.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some(c) = self.queue.front() {
                let b = c.payload.len() + 16;
                if !batch.is_empty()
                    && (batch.len() >= self.cfg.batch_commands_max
                        || bytes + b > self.cfg.batch_bytes_max)
                {
                    break;
                }
                bytes += b;
                if let Some(c) = self.queue.pop_front() {
                    batch.push(c);
                }
            }
            let slot = self.next_slot;
            self.next_slot = Slot(slot.0 + 1);
            self.propose_slot(slot, Entry::Batch(batch));
        }
    }

    fn propose_slot(&mut self, slot: Slot, entry: Entry) {
        let ballot = self.ballot;
        self.inflight.insert(
            slot,
            Inflight {
                entry: entry.clone(),
                acks: BTreeSet::new(),
            },
        );
        self.accepted.insert(slot, (ballot, entry.clone()));
        // The leader's own accept is persisted in parallel with sending Accept to the others;
        // it counts toward the quorum only once durable.
        self.persist(
            vec![StoreRecord::Accept {
                slot,
                ballot,
                value: entry.encode(),
            }],
            vec![Deferred::SelfAccept(ballot, slot)],
        );
        let commit = self.commit;
        for p in self.others() {
            self.send(
                p,
                Message::Accept {
                    ballot,
                    slot,
                    entry: entry.clone(),
                    commit,
                },
            );
        }
    }

    fn try_lead(&mut self) {
        if self.role != Role::Candidate || self.promises.len() < self.majority() {
            return;
        }
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.heartbeat_elapsed = 0;
        // Paxos Made Simple §2.2: for every slot, propose the value accepted at the highest
        // ballot among the promises; fill holes with no-ops.
        let mut best: BTreeMap<Slot, (Ballot, Entry)> = BTreeMap::new();
        for reports in self.promises.values() {
            for (s, b, e) in reports {
                if *s <= self.commit {
                    continue;
                }
                let better = best.get(s).is_none_or(|(bb, _)| {
                    if self.planted.ignore_highest_ballot_value {
                        b < bb
                    } else {
                        b > bb
                    }
                });
                if better {
                    best.insert(*s, (*b, e.clone()));
                }
            }
        }
        let last = best.keys().next_back().copied().unwrap_or(self.commit);
        self.promises.clear();
        for s in self.commit.0 + 1..=last.0 {
            let entry = match best.remove(&Slot(s)) {
                Some((_, e)) if !self.planted.ignore_highest_ballot_value => e,
                _ => Entry::Noop,
            };
            self.propose_slot(Slot(s), entry);
        }
        self.next_slot = Slot(last.0 + 1);
        self.fill_window();
    }

    fn ack(&mut self, from: NodeId, slot: Slot) {
        let majority = self.majority();
        let Some(f) = self.inflight.get_mut(&slot) else {
            return;
        };
        f.acks.insert(from);
        if f.acks.len() < majority {
            return;
        }
        if let Some(f) = self.inflight.remove(&slot) {
            self.chosen.insert(slot, f.entry);
        }
        self.advance();
        self.fill_window();
    }

    /// Advances the commit point over known chosen values and applies them in order.
    fn advance(&mut self) {
        while self.chosen.contains_key(&Slot(self.commit.0 + 1)) {
            self.commit = Slot(self.commit.0 + 1);
        }
        while self.applied < self.commit {
            let slot = Slot(self.applied.0 + 1);
            let Some(entry) = self.chosen.get(&slot).cloned() else {
                break;
            };
            self.applied = slot;
            self.actions.push(Action::Apply { slot, entry });
        }
        debug_assert!(self.applied <= self.commit);
    }

    /// A follower learns the leader's commit point: values it accepted at the leader's ballot
    /// are the chosen ones; anything else is fetched.
    fn learn_commit(&mut self, from: NodeId, ballot: Ballot, commit: Slot) {
        self.leader_commit = self.leader_commit.max(commit);
        let mut s = Slot(self.commit.0 + 1);
        while s <= self.leader_commit {
            if !self.chosen.contains_key(&s) {
                match self.accepted.get(&s) {
                    Some((b, e)) if *b == ballot => {
                        self.chosen.insert(s, e.clone());
                    }
                    _ => break,
                }
            }
            s = Slot(s.0 + 1);
        }
        self.advance();
        if self.commit < self.leader_commit {
            self.send(
                from,
                Message::Fetch {
                    from: Slot(self.commit.0 + 1),
                },
            );
        }
    }

    /// A message from `from`. Bad, stale or duplicate messages are ignored or answered.
    pub fn step(&mut self, from: NodeId, msg: Message) {
        if from == self.cfg.id || !self.cfg.peers.contains(&from) {
            return;
        }
        match msg {
            Message::Prepare { ballot, from: slot } => self.on_prepare(from, ballot, slot),
            Message::Promise { ballot, accepted } => {
                if self.role == Role::Candidate && ballot == self.ballot {
                    self.promises.insert(from, accepted);
                    self.try_lead();
                }
            }
            Message::Accept {
                ballot,
                slot,
                entry,
                commit,
            } => self.on_accept(from, ballot, slot, entry, commit),
            Message::Accepted { ballot, slot } => {
                if self.role == Role::Leader && ballot == self.ballot {
                    self.ack(from, slot);
                }
            }
            Message::Reject { promised } => {
                self.max_round_seen = self.max_round_seen.max(promised.round);
                if promised > self.ballot && self.role != Role::Follower {
                    self.step_down(None);
                }
            }
            Message::PreVote { ballot } => {
                // Grant only if no live leader is heard from and the ballot could win here.
                let leader_alive = self.role == Role::Leader
                    || (self.leader.is_some() && self.elapsed < self.cfg.election_ticks_min);
                if !leader_alive && ballot > self.promised {
                    self.send(from, Message::PreVoteGranted { ballot });
                }
            }
            Message::PreVoteGranted { ballot } => {
                // A follower or a candidate whose election stalled may campaign (again).
                if self.role != Role::Leader && ballot == self.next_ballot() {
                    self.prevotes.insert(from);
                    if self.prevotes.len() >= self.majority() {
                        self.prevotes.clear();
                        self.start_election();
                    }
                }
            }
            Message::Commit { ballot, commit } => {
                if ballot >= self.promised {
                    self.follow(ballot);
                    self.learn_commit(from, ballot, commit);
                }
            }
            Message::Fetch { from: slot } => {
                if slot > self.commit {
                    // Asks for more than we know chosen: nothing to send (and never a panic).
                    return;
                }
                let entries: Vec<(Slot, Entry)> = self
                    .chosen
                    .range(slot..=self.commit)
                    .take(512)
                    .map(|(s, e)| (*s, e.clone()))
                    .collect();
                if !entries.is_empty() {
                    self.send(from, Message::Chosen { entries });
                }
            }
            Message::Chosen { entries } => {
                for (s, e) in entries {
                    self.chosen.entry(s).or_insert(e);
                }
                self.advance();
            }
        }
    }

    /// Follows the leader of `ballot` (a valid message at or above our promise).
    fn follow(&mut self, ballot: Ballot) {
        if ballot > self.ballot && self.role != Role::Follower {
            self.step_down(Some(ballot.node));
        }
        if self.role == Role::Follower {
            self.leader = Some(ballot.node);
            self.elapsed = 0;
        }
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot, slot: Slot) {
        // Stickiness: while a live leader is heard from, other candidates are ignored, so a
        // replica returning from a partition cannot depose it.
        let leader_alive = match self.role {
            Role::Leader => true,
            _ => {
                self.leader.is_some_and(|l| l != from) && self.elapsed < self.cfg.election_ticks_min
            }
        };
        if leader_alive && Some(ballot.node) != self.leader {
            return;
        }
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Reject { promised });
            return;
        }
        if ballot > self.ballot && self.role != Role::Follower {
            self.step_down(None);
        }
        self.promised = ballot;
        let reply = Message::Promise {
            ballot,
            accepted: self.accepted_from(slot),
        };
        // An acceptor must record its promise durably before replying (FAULTS 23).
        if self.planted.promise_before_durable {
            self.send(from, reply);
            self.persist(vec![StoreRecord::Promise(ballot)], vec![]);
        } else {
            self.persist(
                vec![StoreRecord::Promise(ballot)],
                vec![Deferred::Send(from, reply)],
            );
        }
    }

    fn on_accept(&mut self, from: NodeId, ballot: Ballot, slot: Slot, entry: Entry, commit: Slot) {
        if ballot < self.promised && !self.planted.accept_lower_ballot {
            let promised = self.promised;
            self.send(from, Message::Reject { promised });
            return;
        }
        self.follow(ballot);
        self.promised = self.promised.max(ballot);
        if slot > self.commit && !self.chosen.contains_key(&slot) {
            if self.planted.truncate_suffix_on_conflict {
                let _ = self.accepted.split_off(&Slot(slot.0 + 1));
            }
            self.accepted.insert(slot, (ballot, entry.clone()));
            self.persist(
                vec![StoreRecord::Accept {
                    slot,
                    ballot,
                    value: entry.encode(),
                }],
                vec![Deferred::Send(from, Message::Accepted { ballot, slot })],
            );
        } else {
            // Already known chosen: acknowledge without rewriting it.
            self.send(from, Message::Accepted { ballot, slot });
        }
        self.learn_commit(from, ballot, commit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }

    fn cfg(id: u32) -> Config {
        let mut c = Config::new(n(id), vec![n(1), n(2), n(3)], u64::from(id));
        c.election_ticks_min = 10;
        c.election_ticks_max = 10;
        c
    }

    fn replica(id: u32) -> Replica {
        Replica::new(cfg(id), &AcceptorState::default())
    }

    fn cmd(i: u64) -> Command {
        Command {
            client: 1,
            seq: i,
            payload: format!("c{i}").into_bytes(),
        }
    }

    fn b(round: u64, node: u32) -> Ballot {
        Ballot::new(round, n(node))
    }

    /// Three replicas; every persist completes at once, every message is delivered in order.
    struct Pump {
        rs: Vec<Replica>,
        applied: Vec<Vec<(Slot, Entry)>>,
        down: BTreeSet<u32>,
    }

    impl Pump {
        fn new() -> Pump {
            Pump {
                rs: (1..=3).map(replica).collect(),
                applied: vec![Vec::new(); 3],
                down: BTreeSet::new(),
            }
        }

        fn settle(&mut self) {
            loop {
                let mut msgs = Vec::new();
                for i in 0..3 {
                    for a in self.rs[i].take_actions() {
                        match a {
                            Action::Persist { token, .. } => self.rs[i].persisted(token),
                            Action::Send { to, msg } => msgs.push((n(i as u32 + 1), to, msg)),
                            Action::Apply { slot, entry } => self.applied[i].push((slot, entry)),
                        }
                    }
                }
                let pending = (0..3).any(|i| !self.rs[i].actions.is_empty());
                if msgs.is_empty() && !pending {
                    return;
                }
                for (from, to, m) in msgs {
                    if !self.down.contains(&from.0) && !self.down.contains(&to.0) {
                        self.rs[to.0 as usize - 1].step(from, m);
                    }
                }
            }
        }

        fn tick(&mut self, who: &[u32]) {
            for &i in who {
                self.rs[i as usize - 1].tick();
            }
            self.settle();
        }
    }

    #[test]
    fn election_persists_own_promise_and_sends_prepare_to_all() {
        // Pre-vote first (nothing persisted); with a majority of grants, Paxos Made Simple
        // §2.2 phase 1a: a ballot above every one seen, prepare to all, and our own promise
        // durable before it counts.
        let mut r = replica(1);
        for _ in 0..9 {
            r.tick();
        }
        assert!(r.take_actions().is_empty());
        r.tick();
        let ballot = b(1, 1);
        assert_eq!(
            r.take_actions(),
            vec![
                Action::Send {
                    to: n(2),
                    msg: Message::PreVote { ballot }
                },
                Action::Send {
                    to: n(3),
                    msg: Message::PreVote { ballot }
                },
            ]
        );
        assert_eq!(r.role(), Role::Follower);
        r.step(n(3), Message::PreVoteGranted { ballot });
        assert_eq!(
            r.take_actions(),
            vec![
                Action::Persist {
                    token: 1,
                    records: vec![StoreRecord::Promise(ballot)]
                },
                Action::Send {
                    to: n(2),
                    msg: Message::Prepare {
                        ballot,
                        from: Slot(1)
                    }
                },
                Action::Send {
                    to: n(3),
                    msg: Message::Prepare {
                        ballot,
                        from: Slot(1)
                    }
                },
            ]
        );
        assert_eq!(r.role(), Role::Candidate);
    }

    #[test]
    fn promise_is_sent_only_once_durable() {
        // FAULTS 23: an acceptor records its promise durably before replying.
        let mut r = replica(2);
        let ballot = b(1, 1);
        r.step(
            n(1),
            Message::Prepare {
                ballot,
                from: Slot(1),
            },
        );
        assert_eq!(
            r.take_actions(),
            vec![Action::Persist {
                token: 1,
                records: vec![StoreRecord::Promise(ballot)]
            }]
        );
        r.persisted(1);
        assert_eq!(
            r.take_actions(),
            vec![Action::Send {
                to: n(1),
                msg: Message::Promise {
                    ballot,
                    accepted: vec![]
                }
            }]
        );
        // The planted bug replies first.
        let mut r = replica(2);
        r.planted.promise_before_durable = true;
        r.step(
            n(1),
            Message::Prepare {
                ballot,
                from: Slot(1),
            },
        );
        assert!(matches!(r.take_actions()[0], Action::Send { .. }));
    }

    #[test]
    fn lower_ballots_are_rejected() {
        // Paxos Made Simple §2.2: an acceptor never accepts a ballot below its promise.
        let mut r = replica(2);
        r.step(
            n(3),
            Message::Prepare {
                ballot: b(5, 3),
                from: Slot(1),
            },
        );
        r.persisted(1);
        r.take_actions();
        r.elapsed = 100; // no live leader: only the ballot decides
        r.step(
            n(1),
            Message::Prepare {
                ballot: b(4, 1),
                from: Slot(1),
            },
        );
        let accept = Message::Accept {
            ballot: b(4, 1),
            slot: Slot(1),
            entry: Entry::Noop,
            commit: Slot(0),
        };
        r.step(n(1), accept.clone());
        let reject = Action::Send {
            to: n(1),
            msg: Message::Reject { promised: b(5, 3) },
        };
        assert_eq!(r.take_actions(), vec![reject.clone(), reject]);
        r.planted.accept_lower_ballot = true;
        r.step(n(1), accept);
        assert!(matches!(r.take_actions()[0], Action::Persist { .. }));
    }

    type Report = (Slot, Ballot, Entry);

    fn elected(
        own: Vec<Report>,
        reports: Vec<(u32, Vec<Report>)>,
        planted: PlantedBugs,
    ) -> Vec<Action> {
        let mut state = AcceptorState::default();
        for (s, bb, e) in own {
            state.accepted.insert(s, (bb, e.encode()));
        }
        let mut r = Replica::new(cfg(1), &state);
        r.planted = planted;
        for _ in 0..10 {
            r.tick();
        }
        let pre = r.next_ballot();
        r.step(n(2), Message::PreVoteGranted { ballot: pre });
        r.take_actions();
        r.persisted(1);
        let ballot = r.ballot;
        for (from, accepted) in reports {
            r.step(n(from), Message::Promise { ballot, accepted });
        }
        assert_eq!(r.role(), Role::Leader);
        r.take_actions()
    }

    fn accepts_to(actions: &[Action], to: u32) -> Vec<(Slot, Entry)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    to: t,
                    msg: Message::Accept { slot, entry, .. },
                } if *t == n(to) => Some((*slot, entry.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn takeover_reproposes_the_highest_ballot_value_and_fills_holes() {
        // Paxos Made Simple §2.2 (phase 2a): propose the value of the highest-numbered
        // proposal among the promises; a slot nobody reported gets a no-op.
        let a = Entry::Batch(vec![cmd(1)]);
        let a2 = Entry::Batch(vec![cmd(2)]);
        let c = Entry::Batch(vec![cmd(3)]);
        // The candidate itself accepted `a` at a lower ballot; replica 2 reports `a2` at a
        // higher one for the same slot, and `c` for slot 3.
        let own = vec![(Slot(1), b(0, 2), a.clone())];
        let reports = vec![(
            2,
            vec![
                (Slot(1), b(0, 3), a2.clone()),
                (Slot(3), b(0, 3), c.clone()),
            ],
        )];
        let actions = elected(own.clone(), reports.clone(), PlantedBugs::default());
        assert_eq!(
            accepts_to(&actions, 2),
            vec![(Slot(1), a2), (Slot(2), Entry::Noop), (Slot(3), c)]
        );
        let planted = PlantedBugs {
            ignore_highest_ballot_value: true,
            ..PlantedBugs::default()
        };
        let actions = elected(own, reports, planted);
        assert_eq!(accepts_to(&actions, 2)[0], (Slot(1), Entry::Noop));
    }

    #[test]
    fn pipelined_accepts_fill_the_window_and_queue_the_rest() {
        let mut p = Pump::new();
        for r in &mut p.rs {
            r.cfg.window_slots_max = 2;
            r.cfg.batch_commands_max = 1;
        }
        p.tick(&[1; 10]);
        assert_eq!(p.rs[0].role(), Role::Leader);
        let leader = &mut p.rs[0];
        for i in 1..=3 {
            leader.propose(cmd(i)).unwrap();
        }
        let acts = leader.take_actions();
        // Two slots in flight, each persisted locally and sent to both followers; the third
        // command waits for the window.
        assert_eq!(accepts_to(&acts, 2).len(), 2);
        assert_eq!(accepts_to(&acts, 3).len(), 2);
        assert_eq!(leader.queue.len(), 1);
        leader.actions = acts;
        p.settle();
        // Followers learn the last commits from the next heartbeat.
        p.tick(&[1, 1]);
        for i in 0..3 {
            let cmds: Vec<u64> = p.applied[i]
                .iter()
                .flat_map(|(_, e)| match e {
                    Entry::Batch(cs) => cs.iter().map(|c| c.seq).collect(),
                    Entry::Noop => vec![],
                })
                .collect();
            assert_eq!(cmds, vec![1, 2, 3], "replica {}", i + 1);
        }
    }

    #[test]
    fn duplicate_and_stale_messages_change_nothing() {
        let mut p = Pump::new();
        p.tick(&[1; 10]);
        let before = p.rs[1].promised();
        // A stale promise, a duplicate ack and a stranger's message are ignored.
        p.rs[0].step(
            n(2),
            Message::Promise {
                ballot: b(0, 1),
                accepted: vec![],
            },
        );
        p.rs[0].step(
            n(2),
            Message::Accepted {
                ballot: b(1, 1),
                slot: Slot(99),
            },
        );
        p.rs[1].step(
            n(9),
            Message::Prepare {
                ballot: b(99, 9),
                from: Slot(1),
            },
        );
        assert!(p.rs[0].take_actions().is_empty());
        assert!(p.rs[1].take_actions().is_empty());
        assert_eq!(p.rs[1].promised(), before);
        assert_eq!(p.rs[0].role(), Role::Leader);
    }

    #[test]
    fn a_fetch_beyond_the_commit_point_is_ignored() {
        // Found by the cluster simulation: a range with start > end panicked.
        let mut r = replica(1);
        r.step(n(2), Message::Fetch { from: Slot(5) });
        assert!(r.take_actions().is_empty());
    }

    #[test]
    fn a_healthy_leader_is_not_deposed_by_a_returning_replica() {
        // Stickiness: replica 3 was partitioned, timed out and campaigns with a higher ballot;
        // the others still hear from the leader and ignore it.
        let mut p = Pump::new();
        p.tick(&[1; 10]);
        p.down.insert(3);
        for _ in 0..30 {
            p.tick(&[1, 2, 3]);
        }
        p.down.clear();
        p.tick(&[1, 2, 3]);
        p.tick(&[1, 2, 3]);
        assert_eq!(p.rs[0].role(), Role::Leader);
        assert_eq!(p.rs[1].leader(), Some(n(1)));
        p.rs[0].propose(cmd(1)).unwrap();
        p.settle();
        assert_eq!(p.applied[0].len(), 1);
    }

    #[test]
    fn a_thousand_proposals_apply_in_the_same_order_everywhere() {
        let mut p = Pump::new();
        p.tick(&[2; 10]);
        let leader = p.rs.iter().position(|r| r.role() == Role::Leader).unwrap();
        for i in 1..=1000 {
            p.rs[leader].propose(cmd(i)).unwrap();
            if i % 7 == 0 {
                p.settle();
            }
        }
        p.settle();
        p.tick(&[1, 2, 3]);
        p.tick(&[1, 2, 3]);
        let seqs = |i: usize| -> Vec<u64> {
            p.applied[i]
                .iter()
                .flat_map(|(_, e)| match e {
                    Entry::Batch(cs) => cs.iter().map(|c| c.seq).collect(),
                    Entry::Noop => vec![],
                })
                .collect()
        };
        assert_eq!(seqs(0), (1..=1000).collect::<Vec<_>>());
        assert_eq!(seqs(0), seqs(1));
        assert_eq!(seqs(0), seqs(2));
    }
}

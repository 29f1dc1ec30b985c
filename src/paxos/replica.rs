//! The [`Replica`]: one node's Multi-Paxos state machine (acceptor, learner, and — when it
//! wins an election — leader), driven by inputs and answering with [`Action`]s.
//!
//! Inputs: [`Replica::step`] (a message from a peer), [`Replica::tick`] (logical time),
//! [`Replica::propose`], [`Replica::read_index`], [`Replica::persisted`] (a storage
//! completion) and [`Replica::compact`]. Output: [`Replica::take_actions`]. Nothing else
//! happens: no clock, no threads, no I/O, and the only randomness comes from the seed in the
//! [`Config`], so the same inputs always give the same actions.

use std::collections::VecDeque;

use crate::types::{Ballot, NodeId, Slot};

use super::config::{Config, ConfigError, DurableState, Faults, Role};
use super::election::{Candidate, PreVoteRound};
use super::leader::Leader;
use super::log::SlotLog;
use super::message::{
    Action, Body, Command, Message, NotLeader, PersistToken, Release, StoreRecord, Value,
};
use super::quorum::majority;
use super::rng::SplitMix64;

/// One replica of the replicated log. See the [module docs](super) for the protocol, the
/// action contract and the invariants.
///
/// `Clone`, `Eq` and `Hash` compare and hash the whole state (caches included), so a model
/// checker can store replicas as states and tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    pub(crate) cfg: Config,
    /// Members in id order; a member's index in this list is its bit in a `VoteSet`.
    pub(crate) members: Vec<NodeId>,
    pub(crate) me: usize,
    pub(crate) quorum: usize,
    pub(crate) faults: Faults,
    pub(crate) rng: SplitMix64,
    /// Ticks since creation.
    pub(crate) now: u64,

    // Acceptor.
    pub(crate) promised: Ballot,
    pub(crate) log: SlotLog,

    // Learner: every slot below `chosen` is chosen; below `applied`, applied.
    pub(crate) chosen: Slot,
    pub(crate) applied: Slot,
    pub(crate) chosen_recorded: Slot,
    /// The leader's heartbeat came: record the chosen point even without other records.
    pub(crate) chosen_due: bool,

    // Election.
    pub(crate) role: Role,
    pub(crate) leader_hint: Option<NodeId>,
    /// The highest ballot round seen anywhere (the next ballot goes above it).
    pub(crate) round_seen: u64,
    pub(crate) election_elapsed: u32,
    pub(crate) election_timeout: u32,
    /// Ticks since a live leader was last heard from (saturating; MAX: never).
    pub(crate) leader_contact_elapsed: u32,
    pub(crate) prevote: Option<PreVoteRound>,
    pub(crate) candidate: Option<Candidate>,
    pub(crate) leader: Option<Leader>,

    // Output.
    pub(crate) records: Vec<StoreRecord>,
    pub(crate) last_token: u64,
    pub(crate) durable_token: u64,
    /// Replies waiting for a persist: `(token, message)`, tokens non-decreasing.
    pub(crate) waiting: VecDeque<(u64, Message)>,
    pub(crate) sends: Vec<Action>,
    pub(crate) other: Vec<Action>,
    /// Emptied record lists given back with [`Replica::recycle`], for the next persists.
    pub(crate) spare_records: Vec<Vec<StoreRecord>>,
    /// Emptied Accept value lists given back with [`Replica::recycle`], for the next Accepts.
    pub(crate) spare_values: Vec<Vec<Value>>,
}

/// At most this many emptied lists of each kind are kept per member for reuse.
const SPARE_PER_MEMBER: usize = 2;

impl Replica {
    /// A replica recovered from `state` (use `DurableState::default()` for a new one). It starts
    /// as a follower; `promised` is raised to the highest accepted ballot (an accept implies a
    /// promise), and the chosen point is clamped to the entries actually recovered.
    pub fn new(cfg: Config, state: DurableState) -> Result<Replica, ConfigError> {
        cfg.validate()?;
        let mut members = cfg.peers.clone();
        members.sort();
        let me = members
            .binary_search(&cfg.id)
            .map_err(|_| ConfigError("peers must include id".into()))?;
        let mut log = SlotLog::new(state.snapshot);
        for e in state.accepted {
            if e.slot >= state.snapshot {
                log.put(e.slot, e.ballot, e.value);
            }
        }
        let promised = state.promised.max(log.highest_ballot());
        let mut chosen = state.snapshot;
        while chosen < state.chosen && log.get(chosen).is_some() {
            chosen = Slot(chosen.0 + 1);
        }
        let mut rng = SplitMix64::new(cfg.seed);
        let election_timeout = rng.range_u32(
            cfg.election_timeout_ticks_min,
            cfg.election_timeout_ticks_max,
        );
        let quorum = majority(members.len());
        Ok(Replica {
            members,
            me,
            quorum,
            faults: Faults::default(),
            rng,
            now: 0,
            promised,
            log,
            chosen,
            applied: state.snapshot,
            chosen_recorded: chosen,
            chosen_due: false,
            role: Role::Follower,
            leader_hint: None,
            round_seen: promised.round,
            election_elapsed: 0,
            election_timeout,
            leader_contact_elapsed: u32::MAX,
            prevote: None,
            candidate: None,
            leader: None,
            records: Vec::new(),
            last_token: 0,
            durable_token: 0,
            waiting: VecDeque::new(),
            sends: Vec::new(),
            other: Vec::new(),
            spare_records: Vec::new(),
            spare_values: Vec::new(),
            cfg,
        })
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Handles a message from a peer. Messages not addressed to this replica, from a non-member
    /// or from itself, and messages whose ballot does not belong to their sender, are ignored.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.cfg.id {
            return;
        }
        let Some(from) = self.index_of(msg.from) else {
            return;
        };
        if from == self.me {
            return;
        }
        match msg.body {
            Body::PreVote { ballot, chosen } => self.on_prevote(msg.from, ballot, chosen),
            Body::PreVoteReply {
                ballot,
                granted,
                promised,
            } => self.on_prevote_reply(from, ballot, granted, promised),
            Body::Prepare {
                ballot,
                from: from_slot,
            } => {
                if ballot.node == msg.from {
                    self.on_prepare(msg.from, ballot, from_slot);
                }
            }
            Body::Promise {
                ballot,
                from: from_slot,
                chosen: _,
                log_start,
                entries,
            } => self.on_promise(from, ballot, from_slot, log_start, entries),
            Body::Accept {
                ballot,
                first,
                values,
                commit,
            } => {
                if ballot.node == msg.from {
                    self.on_accept(msg.from, ballot, first, values, commit);
                }
            }
            Body::Accepted { ballot, first, end } => self.on_accepted(from, ballot, first, end),
            Body::Reject { ballot, promised } => self.on_reject(ballot, promised),
            Body::Heartbeat {
                ballot,
                commit,
                read_round,
            } => {
                if ballot.node == msg.from {
                    self.on_heartbeat(msg.from, ballot, commit, read_round);
                }
            }
            Body::HeartbeatAck {
                ballot,
                read_round,
                commit,
                chosen,
            } => self.on_heartbeat_ack(from, ballot, read_round, commit, chosen),
        }
    }

    /// Advances logical time by one tick: heartbeats and retransmission on the leader,
    /// election timeouts elsewhere.
    pub fn tick(&mut self) {
        self.now += 1;
        if self.role == Role::Leader {
            self.leader_tick();
            return;
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        self.leader_contact_elapsed = self.leader_contact_elapsed.saturating_add(1);
        if self.election_elapsed >= self.election_timeout {
            let Some(next) = self.next_ballot() else {
                // Rounds exhausted: nothing to campaign at (see `next_ballot`).
                self.step_down(None);
                return;
            };
            if self.faults.no_prevote && next.round % 2 == 1 {
                // Planted bug (j): straight to Phase 1, no pre-vote.
                self.start_phase1();
            } else {
                self.start_prevote();
            }
        }
    }

    /// Queues a client command on the leader. It is packed into a slot value at the next
    /// [`take_actions`](Self::take_actions) (with everything else queued, up to the batch caps)
    /// once the window has room. Queued commands are dropped if leadership is lost; clients
    /// retry with the same `(client, seq)`.
    pub fn propose(&mut self, command: Command) -> Result<(), NotLeader> {
        match self.leader.as_mut() {
            Some(l) => {
                l.batcher.push(command);
                Ok(())
            }
            None => Err(NotLeader {
                leader: self.leader_hint.filter(|&n| n != self.cfg.id),
            }),
        }
    }

    /// Starts a linearizable read identified by `ctx`. The leader confirms its leadership with
    /// a heartbeat round sent after this call; [`Action::ReadReady`] follows once a quorum
    /// confirmed it and every slot that could have been chosen before the call is applied, or
    /// [`Action::ReadAborted`] if leadership is lost first.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), NotLeader> {
        if self.leader.is_none() {
            return Err(NotLeader {
                leader: self.leader_hint.filter(|&n| n != self.cfg.id),
            });
        }
        self.queue_read(ctx);
        Ok(())
    }

    /// The persist with `token` (and every earlier one) is durable. Releases the replies that
    /// waited for it and counts the leader's or candidate's own vote. Tokens never emitted, or
    /// already acknowledged, are ignored.
    pub fn persisted(&mut self, token: PersistToken) {
        let t = token.0.min(self.last_token);
        if t <= self.durable_token {
            return;
        }
        self.durable_token = t;
        while let Some((wait, _)) = self.waiting.front() {
            if *wait > t {
                break;
            }
            if let Some((_, msg)) = self.waiting.pop_front() {
                self.sends.push(Action::Send(msg));
            }
        }
        self.candidate_persisted(t);
        self.leader_persisted(t);
    }

    /// The application's snapshot is durable through every slot below `below`: forget those
    /// entries (never beyond what was applied). Peers that later need them get an
    /// [`Action::SnapshotHint`].
    pub fn compact(&mut self, below: Slot) {
        let below = below.min(self.applied);
        self.log.compact(below);
    }

    /// The application's state now comes from a snapshot, durable on this replica, that covers
    /// every slot below `up_to` (typically a peer's, received after an
    /// [`Action::SnapshotHint`]): every slot below `up_to` counts as chosen and applied, the
    /// entries held below it are forgotten, and applying continues at `up_to`. The runtime must
    /// make the snapshot durable and record it in the acceptor store
    /// ([`AcceptorStore::compact`](crate::store::AcceptorStore::compact)) before calling this.
    ///
    /// Returns false, changing nothing, if `up_to` is not beyond what was applied, or if this
    /// replica leads (a leader holds every chosen slot; it never needs a peer's snapshot).
    /// A pre-candidate or candidate steps down first: its Phase 1 started below the snapshot.
    /// Accepted entries at or above `up_to` are kept, and so is the promise.
    pub fn install_snapshot(&mut self, up_to: Slot) -> bool {
        if up_to <= self.applied || self.leader.is_some() {
            return false;
        }
        if self.role != Role::Follower {
            let hint = self.leader_hint;
            self.step_down(hint);
        }
        self.log.compact(up_to);
        self.applied = up_to;
        self.chosen = self.chosen.max(up_to);
        // Entries already held above the snapshot whose slots the leader's commit point
        // covered are learned from its next Accept or heartbeat, as usual.
        self.chosen_recorded = self.chosen_recorded.max(up_to);
        self.check_invariants();
        true
    }

    /// Test-only planted bugs (see [`Faults`]); all off by default.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    // ----- output -------------------------------------------------------------------------

    /// Everything the runtime must do now, in this order: at most one [`Action::Persist`], then
    /// [`Action::Send`]s, then [`Action::Apply`]s in slot order, then read results and hints.
    /// Proposals queued since the last call are packed into slots here.
    pub fn take_actions(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.take_actions_into(&mut out);
        out
    }

    /// [`take_actions`](Self::take_actions), appending to `out` (which keeps its allocation
    /// from one call to the next, so a runtime can reuse one buffer).
    pub fn take_actions_into(&mut self, out: &mut Vec<Action>) {
        if self.idle() {
            return;
        }
        self.leader_flush();
        // A leader writes its chosen point with the next persist that carries other records
        // (its next proposals) or at its next heartbeat, not in a persist of its own: nothing
        // waits for that record (Applies do not); it only spares re-learning after a crash.
        let deferred = self.leader.is_some() && self.records.is_empty() && !self.chosen_due;
        if self.chosen > self.chosen_recorded && !deferred {
            self.chosen_due = false;
            self.records
                .push(StoreRecord::Chosen { up_to: self.chosen });
            self.chosen_recorded = self.chosen;
        }
        let applies = usize::try_from(self.chosen.0.saturating_sub(self.applied.0)).unwrap_or(0);
        out.reserve(1 + self.sends.len() + applies + self.other.len());
        if !self.records.is_empty() {
            self.last_token += 1;
            out.push(Action::Persist {
                records: std::mem::replace(
                    &mut self.records,
                    self.spare_records.pop().unwrap_or_default(),
                ),
                token: PersistToken(self.last_token),
            });
        }
        out.append(&mut self.sends);
        if self.applied < self.chosen {
            self.applied = self
                .log
                .each_value(self.applied, self.chosen, |slot, value| {
                    out.push(Action::Apply { slot, value });
                });
        }
        self.serve_reads();
        out.append(&mut self.other);
        self.check_invariants();
    }

    /// Gives back actions the runtime has carried out (or no longer needs), emptying
    /// `actions`: an optional, cheaper way to drop them. The value handles they hold (persist
    /// records, Applies, Accept and Promise messages) are released in runs — one atomic
    /// decrement for each run of consecutive handles that share a command array (typically
    /// all the slots of one leader flush) instead of one per handle — and the emptied record
    /// and Accept value lists are kept (a few per member) to be filled again by the next
    /// persists and Accepts instead of allocating new ones. Changes no protocol state: giving
    /// back a persist here is not a completion (call [`persisted`](Self::persisted) for that).
    /// Actions from any replica may be given back; `actions` keeps its own allocation.
    pub fn recycle(&mut self, actions: &mut Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let keep = SPARE_PER_MEMBER * self.members.len();
        let mut release = Release::default();
        for action in actions.drain(..) {
            match action {
                Action::Persist { mut records, .. } => {
                    for r in records.drain(..) {
                        if let StoreRecord::Accept(e) = r {
                            release.push(e.value);
                        }
                    }
                    if self.spare_records.len() < keep && records.capacity() > 0 {
                        self.spare_records.push(records);
                    }
                }
                Action::Apply { value, .. } => release.push(value),
                Action::Send(Message { body, .. }) => match body {
                    Body::Accept { mut values, .. } => {
                        for v in values.drain(..) {
                            release.push(v);
                        }
                        if self.spare_values.len() < keep && values.capacity() > 0 {
                            self.spare_values.push(values);
                        }
                    }
                    Body::Promise { entries, .. } => {
                        for e in entries {
                            release.push(e.value);
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// Nothing to hand over and nothing a flush would do (a cheap early answer for a runtime
    /// that asks often).
    fn idle(&self) -> bool {
        self.records.is_empty()
            && self.sends.is_empty()
            && self.other.is_empty()
            && self.applied == self.chosen
            && self.chosen == self.chosen_recorded
            && self.leader.as_ref().is_none_or(|l| {
                l.batcher.len() == 0
                    && l.run.is_none()
                    && l.read_round == l.read_round_sent
                    && l.reads.is_empty()
            })
    }

    /// The log-pointer invariant: `log_start <= applied <= chosen <= log_end`, and on the
    /// leader `chosen == window base`, `next_slot == base + in-flight slots`, own durable
    /// accepts `<= next_slot`.
    fn check_invariants(&self) {
        if self.faults.accept_lower_ballot {
            // Planted bug (c) breaks the premises of these invariants on purpose; the
            // simulator's checkers must catch its consequences instead.
            return;
        }
        debug_assert!(self.log.start() <= self.applied, "log start above applied");
        debug_assert!(self.applied <= self.chosen, "applied above chosen");
        debug_assert!(
            self.chosen <= self.log.end().max(self.log.start()),
            "chosen above log end"
        );
        debug_assert!(self.promised >= self.candidate.as_ref().map_or(Ballot::ZERO, |c| c.ballot));
        if let Some(l) = &self.leader {
            debug_assert_eq!(self.chosen, l.base, "leader chosen != window base");
            debug_assert_eq!(l.next_slot.0, l.base.0 + l.window.len() as u64);
            debug_assert!(l.self_durable_end <= l.next_slot);
            debug_assert_eq!(
                self.promised, l.ballot,
                "a leader's promise is its own ballot"
            );
        }
    }

    // ----- accessors ----------------------------------------------------------------------

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this replica believes in (itself when leading).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader_hint
    }

    /// The leader's ballot, when leading.
    pub fn leader_ballot(&self) -> Option<Ballot> {
        self.leader.as_ref().map(|l| l.ballot)
    }

    /// The highest ballot promised (in memory; durable once its persist completes).
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Every slot below this is chosen and known here.
    pub fn chosen(&self) -> Slot {
        self.chosen
    }

    /// Every slot below this has been emitted as [`Action::Apply`].
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The entry accepted for `slot`, if held: `(ballot, value)`.
    pub fn accepted(&self, slot: Slot) -> Option<(Ballot, &Value)> {
        self.log.get(slot).map(|a| (a.ballot, &a.value))
    }

    /// First slot still held in memory (below: compacted).
    pub fn log_start(&self) -> Slot {
        self.log.start()
    }

    /// Commands queued on the leader, not yet in a slot (for back-pressure).
    pub fn queued_commands(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| l.batcher.len())
    }

    /// Slots proposed by the leader and not yet chosen.
    pub fn in_flight_slots(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| l.window.len())
    }

    // ----- helpers shared by the role modules ----------------------------------------------

    pub(crate) fn index_of(&self, node: NodeId) -> Option<usize> {
        self.members.binary_search(&node).ok()
    }

    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        self.sends.push(Action::Send(Message {
            from: self.cfg.id,
            to,
            body,
        }));
    }

    /// Sends `body` to every other member.
    pub(crate) fn broadcast(&mut self, body: Body) {
        for i in 0..self.members.len() {
            if i != self.me {
                let to = self.members[i];
                self.send(to, body.clone());
            }
        }
    }

    /// The token the records buffered now will carry.
    pub(crate) fn pending_token(&self) -> u64 {
        self.last_token + 1
    }

    /// Sends `body` once everything persisted so far (including records buffered now) is
    /// durable: the rule for every reply that depends on durable state.
    pub(crate) fn send_durable(&mut self, to: NodeId, body: Body) {
        let msg = Message {
            from: self.cfg.id,
            to,
            body,
        };
        let wait = if !self.records.is_empty() {
            self.pending_token()
        } else {
            self.last_token
        };
        if wait <= self.durable_token {
            self.sends.push(Action::Send(msg));
        } else {
            self.waiting.push_back((wait, msg));
        }
    }

    pub(crate) fn observe(&mut self, ballot: Ballot) {
        self.round_seen = self.round_seen.max(ballot.round);
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self.rng.range_u32(
            self.cfg.election_timeout_ticks_min,
            self.cfg.election_timeout_ticks_max,
        );
    }

    /// Gives up any candidacy or leadership and follows (`hint`: the leader, if known).
    pub(crate) fn step_down(&mut self, hint: Option<NodeId>) {
        if let Some(l) = self.leader.take() {
            for r in l.reads {
                self.other.push(Action::ReadAborted {
                    ctx: r.ctx,
                    leader: hint,
                });
            }
        }
        self.candidate = None;
        self.prevote = None;
        self.role = Role::Follower;
        self.leader_hint = hint;
        self.reset_election_timer();
    }
}

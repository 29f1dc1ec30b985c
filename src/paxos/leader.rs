//! The leader side: takeover after Phase 1, the pipelined Phase 2 window, commit tracking,
//! retransmission, catch-up of lagging followers and read-index rounds.
//!
//! Window: slots `base..next_slot` are proposed and not yet chosen (`base` is the replica's
//! chosen point). New batches are proposed while fewer than `window_slots_max` slots and fewer
//! than `window_bytes_max` bytes are in flight. Each proposal is accepted by the leader's own
//! acceptor (a persist record) in parallel with the Accept sent to the peers; the leader's own
//! vote counts only once that persist is durable (`self_durable_end`). A slot is chosen once a
//! majority voted for it at the leader's ballot; the base advances over chosen slots in order.

use std::collections::VecDeque;

use crate::types::{Ballot, NodeId, Slot};

use super::batcher::Batcher;
use super::config::Role;
use super::message::{Action, Body, Entry, StoreRecord, Value};
use super::quorum::VoteSet;
use super::replica::Replica;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InFlight {
    pub(crate) votes: VoteSet,
    pub(crate) bytes: usize,
    /// Tick of the last (re)send.
    pub(crate) sent_tick: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PendingRead {
    pub(crate) ctx: u64,
    pub(crate) round: u64,
    /// Served once applied reaches this slot.
    pub(crate) index: Slot,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Leader {
    pub(crate) ballot: Ballot,
    pub(crate) base: Slot,
    pub(crate) next_slot: Slot,
    pub(crate) window: VecDeque<InFlight>,
    pub(crate) inflight_bytes: usize,
    /// `(token, end)`: our own accepts below `end` are durable once `token` is.
    pub(crate) self_acks: VecDeque<(u64, Slot)>,
    pub(crate) self_durable_end: Slot,
    pub(crate) batcher: Batcher,
    /// Proposals made since the last flush, to send as one Accept per peer: `(first slot,
    /// values for each peer in member order)`.
    pub(crate) run: Option<(Slot, Vec<Vec<Value>>)>,
    /// Slots the current flush may propose (capacity for `run`).
    pub(crate) run_hint: usize,
    /// The outer list of the last `run`, kept to be reused.
    pub(crate) spare_run: Vec<Vec<Value>>,
    /// The flush's cut of queued commands into slots (kept to be reused).
    pub(crate) cuts: Vec<usize>,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) quorum_check_elapsed: u32,
    /// Peers heard from since the last quorum check.
    pub(crate) heard: VoteSet,
    pub(crate) read_round: u64,
    pub(crate) read_round_sent: u64,
    /// Per member index, the highest read round it acknowledged.
    pub(crate) read_acks: Vec<u64>,
    pub(crate) reads: VecDeque<PendingRead>,
}

impl Replica {
    /// Phase 1 succeeded: re-propose, for every slot from the first unchosen one to the highest
    /// reported, the highest-ballot value reported (Paxos Made Simple §2.2, P2c), and a no-op
    /// where nothing was reported.
    pub(crate) fn become_leader(&mut self) {
        let Some(c) = self.candidate.take() else {
            return;
        };
        // Planted bug (c) lets a candidate act on lower-ballot Accepts, which breaks this.
        debug_assert!(
            c.from == self.chosen || self.faults.accept_lower_ballot,
            "the chosen point moved during Phase 1"
        );
        self.role = Role::Leader;
        self.leader_hint = Some(self.cfg.id);
        self.leader = Some(Leader {
            ballot: c.ballot,
            base: c.from,
            next_slot: c.from,
            window: VecDeque::new(),
            inflight_bytes: 0,
            self_acks: VecDeque::new(),
            self_durable_end: c.from,
            batcher: Batcher::default(),
            run: None,
            run_hint: 0,
            spare_run: Vec::new(),
            cuts: Vec::new(),
            heartbeat_elapsed: 0,
            quorum_check_elapsed: 0,
            heard: VoteSet::default(),
            read_round: 0,
            read_round_sent: 0,
            read_acks: vec![0; self.members.len()],
            reads: VecDeque::new(),
        });
        let end = c
            .reported
            .keys()
            .next_back()
            .map_or(c.from, |s| Slot(s.0 + 1));
        let mut reported = c.reported;
        for s in c.from.0..end.0 {
            let value = match reported.remove(&Slot(s)) {
                // Planted bug (b): ignore what Phase 1 reported.
                Some(_) if self.faults.ignore_highest_ballot_value => Value::noop(),
                Some((_, v)) => v,
                None => Value::noop(),
            };
            self.propose_value(value);
        }
    }

    /// Proposes `value` at the next slot: accept it locally (persist) and queue it for the
    /// Accept sent to every peer at the next flush.
    fn propose_value(&mut self, value: Value) {
        let copies = 1 + self.members.len();
        self.propose_copies(&mut value.clones(copies));
    }

    /// Proposes the next slot with handles of its value from `copies`: one for our log, one
    /// for the persist record, one for each peer's Accept (in member order). Does nothing if
    /// `copies` holds fewer.
    fn propose_copies(&mut self, copies: &mut impl ExactSizeIterator<Item = Value>) {
        let peers = self.members.len() - 1;
        let token = self.pending_token();
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if copies.len() < 2 + peers {
            return;
        }
        let (Some(logged), Some(recorded)) = (copies.next(), copies.next()) else {
            return;
        };
        let slot = l.next_slot;
        l.next_slot = Slot(slot.0 + 1);
        let bytes = logged.size_bytes();
        l.window.push_back(InFlight {
            votes: VoteSet::default(),
            bytes,
            sent_tick: self.now,
        });
        l.inflight_bytes += bytes;
        match l.self_acks.back_mut() {
            Some((t, end)) if *t == token => *end = l.next_slot,
            _ => l.self_acks.push_back((token, l.next_slot)),
        }
        let hint = l.run_hint;
        let run = l.run.get_or_insert_with(|| {
            let mut values = std::mem::take(&mut l.spare_run);
            values.resize_with(peers, Vec::new);
            for v in &mut values {
                // An emptied list the runtime gave back (`Replica::recycle`), if any.
                if v.capacity() == 0 {
                    // (A direct allocation is cheaper than growing an empty list.)
                    *v = self
                        .spare_values
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(hint));
                }
                v.reserve(hint);
            }
            (slot, values)
        });
        for (values, v) in run.1.iter_mut().zip(copies) {
            values.push(v);
        }
        let ballot = l.ballot;
        self.log.put(slot, ballot, logged);
        self.records.push(StoreRecord::Accept(Entry {
            slot,
            ballot,
            value: recorded,
        }));
    }

    /// Packs queued commands into slots while the window has room, sends this flush's Accepts
    /// and any read round that still has to go out. Every slot of one flush is a view of one
    /// command array, and its handles are counted with one atomic increment.
    pub(crate) fn leader_flush(&mut self) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        let (slots_max, bytes_max) = (self.cfg.window_slots_max, self.cfg.window_bytes_max);
        let (mut in_flight, in_flight_bytes) = (l.window.len(), l.inflight_bytes);
        let mut cuts = std::mem::take(&mut l.cuts);
        l.batcher.plan(
            &mut cuts,
            self.cfg.batch_commands_max,
            self.cfg.batch_bytes_max,
            |planned_bytes| {
                let room = in_flight < slots_max
                    && (in_flight == 0
                        || in_flight_bytes.saturating_add(planned_bytes) < bytes_max);
                in_flight += usize::from(room);
                room
            },
        );
        if !cuts.is_empty() {
            let total = cuts.iter().sum();
            let shared = l.batcher.take(total);
            l.run_hint = cuts.len();
            // One record a slot, and room for the Chosen record that usually follows.
            self.records.reserve(cuts.len() + 1);
            let copies = 1 + self.members.len();
            // A new array: its references are counted without an atomic increment.
            let mut refs = shared.into_clones(cuts.len() * copies);
            let mut start = 0u32;
            for &n in &cuts {
                let len = u32::try_from(n).unwrap_or(u32::MAX);
                let mut slot_refs = refs
                    .by_ref()
                    .take(copies)
                    .map(|r| Value::from_parts(r, start, len));
                self.propose_copies(&mut slot_refs);
                start = start.saturating_add(len);
            }
        }
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        cuts.clear();
        l.cuts = cuts;
        let ballot = l.ballot;
        if let Some((first, mut per_peer)) = l.run.take() {
            let commit = self.chosen;
            let mut each = per_peer.iter_mut();
            for i in 0..self.members.len() {
                if i == self.me {
                    continue;
                }
                let Some(values) = each.next() else {
                    break;
                };
                let values = std::mem::take(values);
                let to = self.members[i];
                self.send(
                    to,
                    Body::Accept {
                        ballot,
                        first,
                        values,
                        commit,
                    },
                );
            }
            // Keep the (now empty) per-peer list for the next flush.
            if let Some(l) = self.leader.as_mut() {
                l.spare_run = per_peer;
            }
        }
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if l.read_round > l.read_round_sent {
            l.read_round_sent = l.read_round;
            let read_round = l.read_round;
            let commit = self.chosen;
            self.broadcast(Body::Heartbeat {
                ballot,
                commit,
                read_round,
            });
        }
    }

    /// Phase 2b arrives: count the votes, advance the chosen point.
    pub(crate) fn on_accepted(&mut self, from: usize, ballot: Ballot, first: Slot, end: Slot) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if l.ballot != ballot {
            return; // stale: from an earlier leadership
        }
        l.heard.insert(from);
        let lo = first.max(l.base).0;
        let hi = end.min(l.next_slot).0;
        if lo < hi {
            let (a, b) = ((lo - l.base.0) as usize, (hi - l.base.0) as usize);
            for f in l.window.range_mut(a..b.min(l.window.len())) {
                f.votes.insert(from);
            }
        }
        self.advance_chosen();
    }

    pub(crate) fn leader_persisted(&mut self, token: u64) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        while let Some(&(t, end)) = l.self_acks.front() {
            if t > token {
                break;
            }
            l.self_durable_end = end;
            l.self_acks.pop_front();
        }
        self.advance_chosen();
    }

    fn advance_chosen(&mut self) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        while let Some(f) = l.window.front() {
            let own = usize::from(l.base < l.self_durable_end);
            // Planted bug (g): an even slot counts chosen one vote short.
            let early = usize::from(self.faults.commit_one_early && l.base.0 % 2 == 0);
            if f.votes.len() + own + early < self.quorum {
                break;
            }
            l.inflight_bytes -= f.bytes;
            l.window.pop_front();
            l.base = Slot(l.base.0 + 1);
        }
        self.chosen = l.base;
    }

    pub(crate) fn leader_tick(&mut self) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        l.heartbeat_elapsed += 1;
        l.quorum_check_elapsed += 1;
        if l.quorum_check_elapsed >= self.cfg.election_timeout_ticks_max {
            // Check quorum: a leader cut off from a majority steps down, so its clients and
            // reads go elsewhere.
            let alive = l.heard.len() + 1;
            l.quorum_check_elapsed = 0;
            l.heard = VoteSet::default();
            // Planted bug (i): no check-quorum for even-round ballots.
            let skip = self.faults.no_check_quorum && l.ballot.round % 2 == 0;
            if alive < self.quorum && !skip {
                self.step_down(None);
                return;
            }
        }
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if l.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            l.heartbeat_elapsed = 0;
            self.chosen_due = true;
            let (ballot, read_round, commit) = (l.ballot, l.read_round_sent, self.chosen);
            self.broadcast(Body::Heartbeat {
                ballot,
                commit,
                read_round,
            });
            self.retransmit();
        }
    }

    /// Resends, to each peer that has not voted for them, the in-flight slots last sent at
    /// least a heartbeat interval ago (the message or its answer may have been lost).
    fn retransmit(&mut self) {
        let Some(l) = self.leader.as_ref() else {
            return;
        };
        let (ballot, base, commit) = (l.ballot, l.base, self.chosen);
        let due = self.now.saturating_sub(u64::from(self.cfg.heartbeat_ticks));
        let mut msgs = Vec::new();
        for p in (0..self.members.len()).filter(|&p| p != self.me) {
            let mut run: Option<(Slot, Vec<Value>)> = None;
            for (i, f) in l.window.iter().enumerate() {
                let slot = Slot(base.0 + i as u64);
                let missing = !f.votes.contains(p) && f.sent_tick <= due;
                match (missing, self.log.get(slot)) {
                    (true, Some(a)) => match &mut run {
                        Some((_, values)) => values.push(a.value.clone()),
                        None => run = Some((slot, vec![a.value.clone()])),
                    },
                    _ => {
                        if let Some((first, values)) = run.take() {
                            msgs.push((
                                p,
                                Body::Accept {
                                    ballot,
                                    first,
                                    values,
                                    commit,
                                },
                            ));
                        }
                    }
                }
            }
            if let Some((first, values)) = run.take() {
                msgs.push((
                    p,
                    Body::Accept {
                        ballot,
                        first,
                        values,
                        commit,
                    },
                ));
            }
        }
        let now = self.now;
        if let Some(l) = self.leader.as_mut() {
            for f in l.window.iter_mut().filter(|f| f.sent_tick <= due) {
                f.sent_tick = now;
            }
        }
        for (p, body) in msgs {
            let to = self.members[p];
            self.send(to, body);
        }
    }

    /// A follower answered a heartbeat: count it for read rounds and liveness, and resend the
    /// chosen values it lacks (catch-up).
    pub(crate) fn on_heartbeat_ack(
        &mut self,
        from: usize,
        ballot: Ballot,
        read_round: u64,
        commit: Slot,
        chosen: Slot,
    ) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if l.ballot != ballot {
            return;
        }
        l.heard.insert(from);
        if let Some(r) = l.read_acks.get_mut(from) {
            *r = (*r).max(read_round);
        }
        if chosen < commit {
            let to = self.members[from];
            self.catch_up(to, ballot, chosen, commit);
        }
    }

    /// Sends `to` the chosen values of slots `from..commit` (at most a window's worth), as an
    /// Accept at our ballot: accepting a chosen value is always safe, and the commit point on
    /// the message lets the follower learn them.
    fn catch_up(&mut self, to: NodeId, ballot: Ballot, from: Slot, commit: Slot) {
        if from < self.log.start() {
            let below = self.log.start();
            self.other.push(Action::SnapshotHint { to, below });
            return;
        }
        let end = commit
            .min(self.chosen)
            .0
            .min(from.0.saturating_add(self.cfg.window_slots_max as u64));
        let mut values = Vec::new();
        for s in from.0..end {
            match self.log.get(Slot(s)) {
                Some(a) => values.push(a.value.clone()),
                None => break,
            }
        }
        if !values.is_empty() {
            let commit = self.chosen;
            self.send(
                to,
                Body::Accept {
                    ballot,
                    first: from,
                    values,
                    commit,
                },
            );
        }
    }

    pub(crate) fn queue_read(&mut self, ctx: u64) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if l.read_round == l.read_round_sent {
            l.read_round += 1;
        }
        // Every slot that could have been chosen before this call lies below next_slot: Phase 1
        // re-proposed everything a quorum reported, and we proposed the rest.
        l.reads.push_back(PendingRead {
            ctx,
            round: l.read_round,
            index: l.next_slot,
        });
    }

    /// Answers the reads whose round a quorum confirmed and whose index is applied.
    pub(crate) fn serve_reads(&mut self) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        while let Some(r) = l.reads.front() {
            let confirmed = 1 + l
                .read_acks
                .iter()
                .enumerate()
                .filter(|&(i, &acked)| i != self.me && acked >= r.round)
                .count();
            if confirmed < self.quorum || self.applied < r.index {
                break;
            }
            self.other.push(Action::ReadReady { ctx: r.ctx });
            l.reads.pop_front();
        }
    }
}

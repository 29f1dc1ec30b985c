//! The acceptor and learner side of a replica: Prepare, Accept and Heartbeat handling.
//!
//! Rules (Paxos Made Simple §2.2, and DESIGN.md "Paxos safety constraints"):
//! - never act on a ballot below the promise (answer [`Body::Reject`] instead);
//! - a Promise or Accepted reply leaves only after the records it depends on are durable
//!   ([`Replica::send_durable`]);
//! - accepted entries are only ever superseded by the same slot at a ballot at least as high,
//!   never dropped (no suffix truncation);
//! - a follower learns slot `s` chosen from a leader at ballot `b` with commit point `c > s`
//!   only if it holds `s` accepted at `b` — that entry is then the leader's value, which is the
//!   chosen one. Entries at older ballots wait for catch-up.

use crate::types::{Ballot, NodeId, Slot};

use super::config::Role;
use super::message::{Body, Entry, StoreRecord, Value};
use super::replica::Replica;

impl Replica {
    /// Phase 1a.
    pub(crate) fn on_prepare(&mut self, from: NodeId, ballot: Ballot, from_slot: Slot) {
        self.observe(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Body::Reject { ballot, promised });
            return;
        }
        if ballot > self.promised {
            if self.role != Role::Follower {
                self.step_down(None);
            }
            self.promised = ballot;
            self.records.push(StoreRecord::Promise(ballot));
        }
        // Give the candidate time to finish Phase 1 before competing with it.
        self.election_elapsed = 0;
        let start = from_slot.max(self.log.start());
        let mut entries = self.log.entries_from(start);
        if self.faults.promise_forgets_one_value && ballot.round % 3 != 0 && !entries.is_empty() {
            // Planted bug (f): one accepted value is left out of the Promise.
            entries.remove(0);
        }
        let body = Body::Promise {
            ballot,
            from: from_slot,
            chosen: self.chosen,
            log_start: self.log.start(),
            entries,
        };
        if self.faults.promise_before_durable {
            // Planted bug (a): the reply leaves before the promise is durable.
            self.send(from, body);
        } else {
            self.send_durable(from, body);
        }
    }

    /// Phase 2a (also used for catch-up and retransmission).
    pub(crate) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        first: Slot,
        values: Vec<Value>,
        commit: Slot,
    ) {
        self.observe(ballot);
        if ballot < self.promised && !self.faults.accept_lower_ballot {
            let promised = self.promised;
            self.send(from, Body::Reject { ballot, promised });
            return;
        }
        let raised = ballot > self.promised;
        if ballot >= self.promised {
            // The Accept records carry the ballot: recovery restores promised >= it.
            self.promised = ballot;
            self.follow(ballot);
        }
        let mut stored: Option<(Slot, Slot)> = None;
        // Whether any accept record was written (acknowledged compacted slots write none).
        let mut wrote = false;
        // One record a value, and room for the Chosen record that may follow.
        self.records.reserve(values.len() + 1);
        // The message's handles go into the persist records; our log's are counted with one
        // atomic increment when every value shares one command array (a leader's flush), else
        // one each.
        let mut refs = values
            .first()
            .filter(|v0| values.iter().all(|v| v.shares(v0)))
            .map(|v0| v0.refs(values.len()));
        for (i, value) in values.into_iter().enumerate() {
            let logged = match refs.as_mut().and_then(Iterator::next) {
                Some(r) => value.with_ref(r),
                None => value.clone(),
            };
            let slot = Slot(first.0.saturating_add(i as u64));
            if slot < self.log.start() {
                // Compacted: chosen and applied long ago. Acknowledge it without storing it: a
                // leader that passed the ballot check above has ballot >= the one the value
                // was chosen at, so (Paxos Made Simple §2.2, P2c) it proposes that same value;
                // without the ack a leader that missed the chosen point could wait for this
                // slot forever (found by the cluster simulation with compaction on).
                stored = Some((stored.map_or(slot, |s| s.0), Slot(slot.0 + 1)));
                continue;
            }
            if !self.log.storable(slot) {
                break;
            }
            // Planted bug (d): Raft-style suffix truncation (of the entries not yet known
            // chosen here, so the replica's own apply pointers stay consistent).
            let cut = slot.max(Slot(self.chosen.0.saturating_sub(1)));
            if self.faults.truncate_suffix_on_conflict
                && self.log.end() > Slot(cut.0 + 1)
                && self.log.truncate_after(cut)
            {
                self.records.push(StoreRecord::TruncateAfter(cut));
            }
            self.log.put(slot, ballot, logged);
            self.records.push(StoreRecord::Accept(Entry {
                slot,
                ballot,
                value,
            }));
            wrote = true;
            stored = Some((stored.map_or(slot, |s| s.0), Slot(slot.0 + 1)));
        }
        // References not taken (compacted or out-of-range slots) are given back here.
        drop(refs);
        if raised && !wrote {
            // Nothing stored carries the new promise: record it, or a later Promise reply for
            // this ballot could leave before the promise is durable.
            self.records.push(StoreRecord::Promise(ballot));
        }
        self.learn_commit(ballot, commit);
        if let Some((first, end)) = stored {
            self.send_durable(from, Body::Accepted { ballot, first, end });
        }
    }

    /// The leader's heartbeat: learn its commit point, answer (for read-index, liveness checks
    /// and catch-up).
    pub(crate) fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        read_round: u64,
    ) {
        self.observe(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Body::Reject { ballot, promised });
            return;
        }
        self.follow(ballot);
        self.learn_commit(ballot, commit);
        let chosen = self.chosen;
        self.send(
            from,
            Body::HeartbeatAck {
                ballot,
                read_round,
                commit,
                chosen,
            },
        );
    }

    /// A peer promised a ballot above ours: give up leading or running for it.
    pub(crate) fn on_reject(&mut self, ballot: Ballot, promised: Ballot) {
        self.observe(promised);
        let mine = match (&self.leader, &self.candidate) {
            (Some(l), _) => Some(l.ballot),
            (None, Some(c)) => Some(c.ballot),
            _ => None,
        };
        if mine == Some(ballot) && promised > ballot {
            self.step_down(None);
        }
    }

    /// A live leader at `ballot` (`>=` our promise) was heard from.
    fn follow(&mut self, ballot: Ballot) {
        if self.role != Role::Follower {
            self.step_down(Some(ballot.node));
        }
        self.leader_hint = Some(ballot.node);
        self.election_elapsed = 0;
        self.leader_contact_elapsed = 0;
    }

    /// Learns every slot below `commit` that we hold accepted at `ballot` (contiguously).
    fn learn_commit(&mut self, ballot: Ballot, commit: Slot) {
        if self.leader.is_some() {
            return;
        }
        if self.chosen < commit {
            self.chosen = self.log.first_not_at(self.chosen, commit, ballot);
        }
    }
}

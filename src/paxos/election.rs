//! Leader election: a pre-vote round, then Phase 1 for every slot from the first unchosen one.
//!
//! A follower that has not heard from a leader for its randomized election timeout first asks
//! for pre-votes, which change no state anywhere. A peer grants one only if it has not heard
//! from a live leader for at least the minimum election timeout (stickiness), is not itself the
//! leader, and has not chosen more slots than the candidate. Only with a quorum of pre-votes
//! does the replica pick a ballot above every round it has seen and run Phase 1. So a replica
//! cut off by a partition never raises its ballot, and cannot depose a healthy leader when it
//! comes back (Ongaro's thesis §9.6, pre-vote).

use std::collections::BTreeMap;

use crate::types::{Ballot, NodeId, Slot};

use super::config::Role;
use super::message::{Body, Entry, StoreRecord, Value};
use super::quorum::VoteSet;
use super::replica::Replica;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PreVoteRound {
    pub(crate) ballot: Ballot,
    pub(crate) grants: VoteSet,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Candidate {
    pub(crate) ballot: Ballot,
    /// Phase 1 covers every slot from here (our first unchosen slot).
    pub(crate) from: Slot,
    pub(crate) promises: VoteSet,
    /// Our own promise counts once this persist is durable.
    pub(crate) self_token: u64,
    pub(crate) self_durable: bool,
    /// Per slot, the highest-ballot entry reported so far (our own included).
    pub(crate) reported: BTreeMap<Slot, (Ballot, Value)>,
}

impl Replica {
    /// The ballot this replica would campaign at: one round above every round it has seen
    /// or promised. `None` once a peer's message has carried round `u64::MAX` (no honest
    /// cluster gets there, one election per round; a corrupt or hostile peer can): there is no
    /// higher ballot, so this replica stays a follower instead of wrapping to round 0.
    pub(crate) fn next_ballot(&self) -> Option<Ballot> {
        let round = self.round_seen.max(self.promised.round).checked_add(1)?;
        Some(Ballot::new(round, self.cfg.id))
    }

    pub(crate) fn start_prevote(&mut self) {
        self.candidate = None;
        self.role = Role::PreCandidate;
        self.reset_election_timer();
        let Some(ballot) = self.next_ballot() else {
            self.step_down(None);
            return;
        };
        self.prevote = Some(PreVoteRound {
            ballot,
            grants: VoteSet::default(),
        });
        let chosen = self.chosen;
        self.broadcast(Body::PreVote { ballot, chosen });
        if self.quorum == 1 {
            self.start_phase1();
        }
    }

    pub(crate) fn on_prevote(&mut self, from: NodeId, ballot: Ballot, chosen: Slot) {
        let granted = self.role != Role::Leader
            && self.leader_contact_elapsed >= self.cfg.election_timeout_ticks_min
            && chosen >= self.chosen
            && ballot > self.promised;
        let promised = self.promised;
        self.send(
            from,
            Body::PreVoteReply {
                ballot,
                granted,
                promised,
            },
        );
    }

    pub(crate) fn on_prevote_reply(
        &mut self,
        from: usize,
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
    ) {
        self.observe(promised);
        if self.role != Role::PreCandidate || !granted {
            return;
        }
        let Some(pv) = self.prevote.as_mut() else {
            return;
        };
        if pv.ballot != ballot {
            return;
        }
        pv.grants.insert(from);
        if pv.grants.len() + 1 >= self.quorum {
            self.start_phase1();
        }
    }

    /// Phase 1a: promise our own new ballot and ask every peer for theirs.
    pub(crate) fn start_phase1(&mut self) {
        let Some(ballot) = self.next_ballot() else {
            self.step_down(None);
            return;
        };
        self.prevote = None;
        self.role = Role::Candidate;
        self.reset_election_timer();
        self.round_seen = ballot.round;
        self.promised = ballot;
        self.records.push(StoreRecord::Promise(ballot));
        let from = self.chosen;
        let reported = self
            .log
            .entries_from(from)
            .into_iter()
            .map(|e| (e.slot, (e.ballot, e.value)))
            .collect();
        self.candidate = Some(Candidate {
            ballot,
            from,
            promises: VoteSet::default(),
            self_token: self.pending_token(),
            self_durable: false,
            reported,
        });
        self.broadcast(Body::Prepare { ballot, from });
    }

    /// Phase 1b arrives: merge the reported entries, keeping the highest ballot per slot.
    pub(crate) fn on_promise(
        &mut self,
        from: usize,
        ballot: Ballot,
        from_slot: Slot,
        log_start: Slot,
        entries: Vec<Entry>,
    ) {
        let Some(c) = self.candidate.as_mut() else {
            return;
        };
        // A promise for another ballot or range is stale. A promiser that compacted slots we
        // still need cannot report them, so it does not count.
        if c.ballot != ballot || c.from != from_slot || log_start > c.from {
            return;
        }
        if !c.promises.insert(from) {
            return; // duplicate
        }
        for e in entries {
            if e.slot < c.from {
                continue;
            }
            match c.reported.get(&e.slot) {
                Some((b, _)) if *b >= e.ballot => {}
                // Planted bug (e): the first report wins, except at every third slot.
                Some(_) if self.faults.first_value_wins && e.slot.0 % 3 != 0 => {}
                _ => {
                    c.reported.insert(e.slot, (e.ballot, e.value));
                }
            }
        }
        self.check_candidate();
    }

    pub(crate) fn candidate_persisted(&mut self, token: u64) {
        if let Some(c) = self.candidate.as_mut() {
            if !c.self_durable && c.self_token <= token {
                c.self_durable = true;
                self.check_candidate();
            }
        }
    }

    fn check_candidate(&mut self) {
        let Some(c) = self.candidate.as_ref() else {
            return;
        };
        if c.self_durable && c.promises.len() + 1 >= self.quorum {
            self.become_leader();
        }
    }
}

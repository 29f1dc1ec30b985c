//! The election monitor: two rules that keep leadership stable, checked from the outside (the
//! messages the simulator carries and the cores' read-only accessors).
//!
//! * **pre-vote before Phase 1**: a replica sends Prepare only after a majority (itself
//!   included) granted the pre-vote it asked for last (Ongaro's thesis §9.6), so a replica
//!   back from a partition cannot depose a healthy leader with a higher ballot;
//! * **check-quorum**: a leader that has heard (an Accepted or a HeartbeatAck at its ballot)
//!   from fewer than a majority for `2 × election_timeout_ticks_max + 2` ticks no longer
//!   leads — it checks every `election_timeout_ticks_max` ticks, so by then one whole check
//!   period saw no majority.
//!
//! Neither rule is about safety (a run that breaks them can still agree on every slot), so the
//! end-to-end checkers cannot see them broken: this monitor can.

use std::collections::{BTreeMap, BTreeSet};

use crate::paxos::{Body, Message, Replica};
use crate::types::{Ballot, NodeId};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Watch {
    /// The last pre-vote this incarnation asked for, and who granted it.
    prevote: Option<(Ballot, BTreeSet<NodeId>)>,
    /// While leading: the ballot, the step it was first seen leading, and per peer the last
    /// step an answer at that ballot was delivered.
    leading: Option<(Ballot, u64, BTreeMap<NodeId, u64>)>,
}

/// Watches elections; returns a description of each rule broken. Used by the cluster
/// simulation, and by the model checker (`tests/model_check.rs`), whose states it lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElectionMonitor {
    quorum: usize,
    /// Longest a leader may go without a majority's answers.
    deaf_steps_max: u64,
    nodes: Vec<Watch>,
}

impl ElectionMonitor {
    /// A monitor for `replicas` replicas whose leaders check their quorum every
    /// `election_timeout_ticks_max` ticks.
    pub fn new(replicas: usize, election_timeout_ticks_max: u32) -> ElectionMonitor {
        ElectionMonitor {
            quorum: replicas / 2 + 1,
            deaf_steps_max: 2 * u64::from(election_timeout_ticks_max) + 2,
            nodes: (0..replicas).map(|_| Watch::default()).collect(),
        }
    }

    /// Replica `i` was replaced by a new incarnation.
    pub fn restarted(&mut self, i: usize) {
        self.nodes[i] = Watch::default();
    }

    /// Replica `i` sends `m`.
    pub fn sent(&mut self, i: usize, m: &Message) -> Option<String> {
        match &m.body {
            Body::PreVote { ballot, .. } => {
                let w = &mut self.nodes[i];
                if w.prevote.as_ref().map(|p| p.0) != Some(*ballot) {
                    w.prevote = Some((*ballot, BTreeSet::new()));
                }
                None
            }
            Body::Prepare { ballot, .. } => {
                let grants = self.nodes[i].prevote.as_ref().map_or(0, |p| p.1.len());
                if grants + 1 < self.quorum {
                    return Some(format!(
                        "replica {} sent Prepare at {ballot} after {grants} pre-vote grants (a majority is {})",
                        m.from, self.quorum
                    ));
                }
                None
            }
            _ => None,
        }
    }

    /// `m` was delivered to replica `i`.
    pub fn delivered(&mut self, i: usize, m: &Message, now: u64) {
        let w = &mut self.nodes[i];
        match &m.body {
            Body::PreVoteReply {
                ballot,
                granted: true,
                ..
            } => {
                if let Some((b, grants)) = w.prevote.as_mut() {
                    if b == ballot {
                        grants.insert(m.from);
                    }
                }
            }
            Body::Accepted { ballot, .. } | Body::HeartbeatAck { ballot, .. } => {
                if let Some((b, _, heard)) = w.leading.as_mut() {
                    if b == ballot {
                        heard.insert(m.from, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// Looks at replica `i` (core `r`) at step `now` (its tick count, or any clock that
    /// advances at most one per tick).
    pub fn observe(&mut self, i: usize, r: &Replica, now: u64) -> Option<String> {
        let w = &mut self.nodes[i];
        let Some(ballot) = r.leader_ballot() else {
            w.leading = None;
            return None;
        };
        match &w.leading {
            Some((b, _, _)) if *b == ballot => {}
            _ => w.leading = Some((ballot, now, BTreeMap::new())),
        }
        let (_, since, heard) = w.leading.as_ref()?;
        if now.saturating_sub(*since) <= self.deaf_steps_max {
            return None;
        }
        let recent = heard
            .values()
            .filter(|&&t| now.saturating_sub(t) <= self.deaf_steps_max)
            .count();
        if recent + 1 < self.quorum {
            return Some(format!(
                "replica {} still leads at {ballot} at step {now} but heard from {recent} peers in the last {} steps (check-quorum)",
                r.id(),
                self.deaf_steps_max
            ));
        }
        None
    }
}

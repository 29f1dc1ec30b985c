//! The chosen-value monitor: Paxos's safety rules checked on the acceptors' durable votes, the
//! moment a rule breaks, not when (or if) a client or a second replica happens to notice.
//!
//! A value `v` is *chosen* at slot `s` once a majority of acceptors has durably accepted `v`
//! at `s` at one ballot `b` (Paxos Made Simple §2.2). The monitor sees every Accept record an
//! acceptor submits (a leader's own included: it accepts each value it proposes) and learns
//! which of them became durable; it checks:
//!
//! * **one value per ballot**: no two Accept records for one slot at one ballot carry
//!   different values (one leader per ballot, one proposal per slot);
//! * **P2b**: once `v` is chosen at `(s, b)`, every proposal at `s` with a ballot above `b`
//!   carries `v`. A new leader that merges Phase 1 wrongly, an acceptor that leaves a value
//!   out of its Promise or forgets one, breaks this as soon as anyone accepts the wrong value;
//! * **applied values are chosen**: a replica applies at `s` only the value chosen there. A
//!   leader that counts a slot chosen before a majority accepted it breaks this when it
//!   applies, whatever happens next.
//!
//! Durable votes are counted conservatively: a record counts once the store reported it
//! durable (a record that happened to survive a crash without that report does not count), so
//! the monitor never sees a value chosen that was not. Values are compared by a digest of
//! their commands.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use crate::paxos::{Entry, Value};
use crate::types::{Ballot, Slot};

/// One slot's proposals and votes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct SlotVotes {
    /// Per ballot: the value's digest and the acceptors (bit per index) that durably
    /// accepted it.
    ballots: BTreeMap<Ballot, (u64, u64)>,
    /// The lowest ballot at which a value was chosen here, and its digest.
    chosen: Option<(Ballot, u64)>,
}

/// Watches proposals and durable votes; returns a description of each rule broken. Used by
/// the cluster simulation and by the model checker (`tests/model_check.rs`), whose states it
/// lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChosenMonitor {
    quorum: usize,
    slots: BTreeMap<Slot, SlotVotes>,
}

/// The digest the monitor compares values by.
fn digest(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl ChosenMonitor {
    /// A monitor for `replicas` acceptors (at most 64).
    pub fn new(replicas: usize) -> ChosenMonitor {
        ChosenMonitor {
            quorum: replicas / 2 + 1,
            slots: BTreeMap::new(),
        }
    }

    /// An acceptor submitted the Accept record `e` to its store.
    pub fn proposed(&mut self, e: &Entry) -> Option<String> {
        let d = digest(&e.value);
        let votes = self.slots.entry(e.slot).or_default();
        match votes.ballots.get(&e.ballot) {
            Some(&(d0, _)) if d0 != d => {
                return Some(format!(
                    "slot {} holds two values at ballot {}",
                    e.slot.0, e.ballot
                ))
            }
            Some(_) => {}
            None => {
                votes.ballots.insert(e.ballot, (d, 0));
            }
        }
        match votes.chosen {
            Some((b, dc)) if b < e.ballot && dc != d => Some(format!(
                "slot {} was chosen at {b} and a different value was proposed there at {} (P2b)",
                e.slot.0, e.ballot
            )),
            _ => None,
        }
    }

    /// Acceptor `i`'s Accept record `e` (reported to [`proposed`](Self::proposed) before) is
    /// durable.
    pub fn accepted(&mut self, i: usize, e: &Entry) -> Option<String> {
        let broken = self.proposed(e);
        let votes = self.slots.entry(e.slot).or_default();
        let Some((d, mask)) = votes.ballots.get_mut(&e.ballot) else {
            return broken;
        };
        *mask |= 1 << i;
        let (d, voters) = (*d, mask.count_ones() as usize);
        let newly = voters >= self.quorum && votes.chosen.is_none_or(|(b, _)| e.ballot < b);
        if !newly {
            return broken;
        }
        votes.chosen = Some((e.ballot, d));
        // Every proposal above the ballot it was chosen at must carry the chosen value.
        let above = votes
            .ballots
            .range(e.ballot..)
            .find(|(_, &(d1, _))| d1 != d)
            .map(|(b, _)| *b);
        broken.or(above.map(|b| {
            format!(
                "slot {} was chosen at {} and a different value was proposed there at {b} (P2b)",
                e.slot.0, e.ballot
            )
        }))
    }

    /// A replica applied `value` at `slot`.
    pub fn applied(&self, slot: Slot, value: &Value) -> Option<String> {
        let votes = self.slots.get(&slot);
        let chosen = votes.and_then(|v| v.chosen);
        if chosen.is_some_and(|(_, d)| d == digest(value)) {
            return None;
        }
        let d = digest(value);
        let most = votes
            .into_iter()
            .flat_map(|v| v.ballots.values())
            .filter(|(d1, _)| *d1 == d)
            .map(|(_, m)| m.count_ones())
            .max()
            .unwrap_or(0);
        Some(format!(
            "slot {} applied with a value that is not chosen there (at most {most} durable votes at one ballot; a majority is {})",
            slot.0, self.quorum
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Command;
    use crate::types::NodeId;

    fn entry(slot: u64, round: u64, payload: u8) -> Entry {
        Entry {
            slot: Slot(slot),
            ballot: Ballot {
                round,
                node: NodeId(1),
            },
            value: Value::new(vec![Command {
                client: 1,
                seq: 1,
                payload: vec![payload],
            }]),
        }
    }

    #[test]
    fn a_value_chosen_by_a_majority_may_be_applied_and_must_be_kept() {
        let mut m = ChosenMonitor::new(3);
        let e = entry(0, 1, 7);
        assert_eq!(m.proposed(&e), None);
        assert_eq!(m.accepted(0, &e), None);
        // One durable vote of three: not chosen yet.
        assert!(m.applied(Slot(0), &e.value).is_some());
        assert_eq!(m.accepted(2, &e), None);
        assert_eq!(m.applied(Slot(0), &e.value), None);
        // The same value at a higher ballot is fine; another one is not.
        assert_eq!(m.proposed(&entry(0, 2, 7)), None);
        assert!(m.proposed(&entry(0, 3, 8)).is_some());
        assert!(m.applied(Slot(0), &entry(0, 3, 8).value).is_some());
    }

    #[test]
    fn a_value_chosen_below_a_conflicting_proposal_is_reported() {
        let mut m = ChosenMonitor::new(3);
        let (low, high) = (entry(4, 1, 1), entry(4, 2, 2));
        assert_eq!(m.proposed(&low), None);
        assert_eq!(m.proposed(&high), None);
        assert_eq!(m.accepted(0, &low), None);
        assert!(m.accepted(1, &low).is_some());
        assert!(
            m.proposed(&entry(4, 1, 9)).is_some(),
            "two values at one ballot"
        );
    }
}

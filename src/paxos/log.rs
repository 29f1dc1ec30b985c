//! The acceptor's accepted entries, in memory: one slot per position from `start`, holes
//! allowed (a slot whose Accept has not arrived yet).
//!
//! An entry is only ever replaced by an entry for the same slot (at a ballot at least as high),
//! never removed, except below `start` once the application's snapshot covers it
//! ([`SlotLog::compact`]) — and by the planted bug `truncate_suffix_on_conflict`.

use std::collections::VecDeque;

use crate::types::{Ballot, Slot};

use super::message::{Entry, Value};

/// Largest distance past the log's start at which an entry is stored; an Accept further ahead
/// is dropped (like a lost message) so a corrupt or hostile slot number cannot exhaust memory.
pub(crate) const SLOTS_AHEAD_MAX: u64 = 1 << 22;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Accepted {
    pub(crate) ballot: Ballot,
    pub(crate) value: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct SlotLog {
    start: Slot,
    slots: VecDeque<Option<Accepted>>,
}

impl SlotLog {
    pub(crate) fn new(start: Slot) -> SlotLog {
        SlotLog {
            start,
            slots: VecDeque::new(),
        }
    }

    /// First slot held (slots below were compacted).
    pub(crate) fn start(&self) -> Slot {
        self.start
    }

    /// One past the highest slot position held.
    pub(crate) fn end(&self) -> Slot {
        Slot(self.start.0 + self.slots.len() as u64)
    }

    pub(crate) fn get(&self, slot: Slot) -> Option<&Accepted> {
        let i = slot.0.checked_sub(self.start.0)?;
        self.slots.get(usize::try_from(i).ok()?)?.as_ref()
    }

    /// True if `slot` can be stored (not compacted, not absurdly far ahead).
    pub(crate) fn storable(&self, slot: Slot) -> bool {
        slot >= self.start && slot.0 - self.start.0 < SLOTS_AHEAD_MAX
    }

    /// Stores `value` accepted at `ballot` for `slot`, replacing what the slot held. Returns
    /// false (storing nothing) if the slot is not [`storable`](Self::storable).
    pub(crate) fn put(&mut self, slot: Slot, ballot: Ballot, value: Value) -> bool {
        // The common case first: the next slot after the highest held.
        if slot == self.end() && (self.slots.len() as u64) < SLOTS_AHEAD_MAX {
            self.slots.push_back(Some(Accepted { ballot, value }));
            return true;
        }
        if !self.storable(slot) {
            return false;
        }
        let i = (slot.0 - self.start.0) as usize;
        let accepted = Some(Accepted { ballot, value });
        match i.cmp(&self.slots.len()) {
            // The common case: the next slot after the highest held.
            std::cmp::Ordering::Equal => self.slots.push_back(accepted),
            std::cmp::Ordering::Less => self.slots[i] = accepted,
            std::cmp::Ordering::Greater => {
                self.slots.resize(i, None);
                self.slots.push_back(accepted);
            }
        }
        true
    }

    /// Drops every entry above `slot`; returns true if any was held. Used ONLY by the planted
    /// bug `truncate_suffix_on_conflict`.
    pub(crate) fn truncate_after(&mut self, slot: Slot) -> bool {
        let keep = (slot.0 + 1).saturating_sub(self.start.0);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let dropped = self.slots.iter().skip(keep).any(Option::is_some);
        self.slots.truncate(keep);
        dropped
    }

    /// Forgets every entry below `below` (covered by a durable snapshot).
    pub(crate) fn compact(&mut self, below: Slot) {
        if below <= self.start {
            return;
        }
        let n = below.0 - self.start.0;
        let n = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.slots.len());
        // One atomic decrement per run of values that share a command array.
        Value::drop_all(self.slots.drain(..n).flatten().map(|a| a.value));
        self.start = below;
    }

    /// Calls `f(slot, value)` with a handle of the value held at each slot of `from..to`, in
    /// order, up to the first slot not held; returns the slot after the last one visited.
    /// The handles of a run of slots whose values share a command array are counted with one
    /// atomic increment.
    pub(crate) fn each_value(&self, from: Slot, to: Slot, mut f: impl FnMut(Slot, Value)) -> Slot {
        let mut rest = self.range(from, to).peekable();
        let mut slot = from;
        while let Some(Some(first)) = rest.peek().copied() {
            // Count references for the whole rest at once; those not taken (another array
            // or a hole comes first) are given back when `refs` drops.
            let mut refs = first.value.refs(rest.len());
            while let Some(Some(a)) = rest.peek().copied() {
                if !a.value.shares(&first.value) {
                    break;
                }
                let Some(r) = refs.next() else {
                    break;
                };
                rest.next();
                f(slot, a.value.with_ref(r));
                slot = Slot(slot.0 + 1);
            }
        }
        slot
    }

    /// The first slot of `from..to` not held accepted at `ballot` (`to` if all are).
    pub(crate) fn first_not_at(&self, from: Slot, to: Slot, ballot: Ballot) -> Slot {
        let held = self
            .range(from, to)
            .take_while(|a| matches!(a, Some(a) if a.ballot == ballot))
            .count();
        Slot(from.0 + held as u64)
    }

    /// The positions of slots `from..to` that lie in the log (empty if `from` does not).
    fn range(
        &self,
        from: Slot,
        to: Slot,
    ) -> std::collections::vec_deque::Iter<'_, Option<Accepted>> {
        let skip = from
            .0
            .checked_sub(self.start.0)
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(usize::MAX)
            .min(self.slots.len());
        let want = usize::try_from(to.0.saturating_sub(from.0))
            .unwrap_or(usize::MAX)
            .min(self.slots.len() - skip);
        self.slots.range(skip..skip + want)
    }

    /// Every entry held at slots `>= from`, in slot order.
    pub(crate) fn entries_from(&self, from: Slot) -> Vec<Entry> {
        let skip = from.0.saturating_sub(self.start.0);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.slots
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(|(i, a)| {
                a.as_ref().map(|a| Entry {
                    slot: Slot(self.start.0 + i as u64),
                    ballot: a.ballot,
                    value: a.value.clone(),
                })
            })
            .collect()
    }

    /// The highest ballot of any entry held.
    pub(crate) fn highest_ballot(&self) -> Ballot {
        self.slots
            .iter()
            .flatten()
            .map(|a| a.ballot)
            .max()
            .unwrap_or(Ballot::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::shared::Shared;
    use crate::paxos::Command;
    use crate::types::NodeId;

    fn cmd(seq: u64) -> Command {
        Command {
            client: 7,
            seq,
            payload: vec![seq as u8],
        }
    }

    // Views of one shared array (as a leader's flush makes them), separate values and holes:
    // each_value hands out each slot's own commands, stops at a hole, and compaction gives every
    // reference back.
    #[test]
    fn shared_runs_are_handed_out_and_released_per_slot() {
        let b = Ballot::new(1, NodeId(1));
        let shared = Shared::new((0..4).map(cmd).collect());
        let mut log = SlotLog::new(Slot(0));
        let mut refs = shared.clones(3);
        for (slot, (start, len)) in [(0, (0, 1)), (1, (1, 2)), (2, (3, 1))] {
            let r = refs.next().expect("three counted");
            assert!(log.put(Slot(slot), b, Value::from_parts(r, start, len)));
        }
        drop(refs);
        log.put(Slot(3), b, Value::new(vec![cmd(9)]));
        log.put(Slot(5), b, Value::new(vec![cmd(10)]));
        assert_eq!(shared.refs(), 4);
        let mut seen = Vec::new();
        let next = log.each_value(Slot(0), Slot(6), |slot, v| {
            seen.push((
                slot.0,
                v.commands().iter().map(|c| c.seq).collect::<Vec<_>>(),
            ));
        });
        assert_eq!(next, Slot(4), "stops at the hole");
        assert_eq!(
            seen,
            vec![(0, vec![0]), (1, vec![1, 2]), (2, vec![3]), (3, vec![9])]
        );
        assert_eq!(shared.refs(), 4, "the handed-out values were dropped");
        let held: Vec<Value> = [1, 2]
            .map(|s| log.get(Slot(s)).expect("held").value.clone())
            .into();
        let copies = Value::clone_all(&held);
        assert_eq!(shared.refs(), 8);
        assert_eq!(copies, held);
        Value::drop_all(copies.into_iter().chain(held));
        assert_eq!(shared.refs(), 4);
        log.compact(Slot(2));
        assert_eq!(shared.refs(), 2);
        log.compact(Slot(6));
        assert_eq!(shared.refs(), 1);
        assert_eq!(log.each_value(Slot(6), Slot(9), |_, _| {}), Slot(6));
    }

    #[test]
    fn holes_replacement_compaction_and_bounds() {
        let b1 = Ballot::new(1, NodeId(1));
        let b2 = Ballot::new(2, NodeId(1));
        let mut log = SlotLog::new(Slot(10));
        assert!(!log.put(Slot(9), b1, Value::noop()), "compacted slot");
        assert!(
            !log.put(Slot(10 + SLOTS_AHEAD_MAX), b1, Value::noop()),
            "too far ahead"
        );
        assert!(log.put(Slot(12), b1, Value::noop()));
        assert_eq!(log.end(), Slot(13));
        assert!(log.get(Slot(11)).is_none(), "hole");
        assert!(log.put(Slot(12), b2, Value::noop()));
        assert_eq!(log.get(Slot(12)).map(|a| a.ballot), Some(b2));
        assert_eq!(log.entries_from(Slot(0)).len(), 1);
        assert_eq!(log.highest_ballot(), b2);
        log.compact(Slot(12));
        assert_eq!((log.start(), log.end()), (Slot(12), Slot(13)));
        log.compact(Slot(20));
        assert_eq!((log.start(), log.end()), (Slot(20), Slot(20)));
        assert!(log.get(Slot(12)).is_none());
    }
}

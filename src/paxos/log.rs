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

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) ballot: Ballot,
    pub(crate) value: Value,
}

#[derive(Debug, Default)]
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
        if n >= self.slots.len() as u64 {
            self.slots.clear();
        } else {
            self.slots.drain(..n as usize);
        }
        self.start = below;
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
    use crate::types::NodeId;

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

//! Position and identity newtypes shared by every layer.
//!
//! Bare `u64`s never cross a module boundary: an [`Lsn`] addresses a record in the log, a
//! [`Slot`] a Paxos instance, a [`Ballot`] a leadership attempt, a [`NodeId`] a replica and a
//! [`SegmentId`] a segment file.

use std::fmt;

/// Log sequence number: the position of a record in the log. The first record is `Lsn(1)`;
/// `Lsn(0)` means "no record" (for example the durable point of an empty log).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// "No record": below every real LSN.
    pub const ZERO: Lsn = Lsn(0);
    /// The first LSN a new log hands out.
    pub const FIRST: Lsn = Lsn(1);

    /// The LSN after this one.
    #[must_use]
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }

    /// The LSN before this one (saturating at zero).
    #[must_use]
    pub fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identity of a segment file. Segment ids only grow, and file names sort in id order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}

/// A Paxos log position (an instance of single-decree Paxos).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u64);

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A replica's identity within a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A Paxos ballot: `(round, replica)`, ordered by round first and replica id second, so two
/// replicas never use the same ballot. `Ballot::ZERO` is below every real ballot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// The round number; a new leadership attempt picks a round above every round it has seen.
    pub round: u64,
    /// The replica that owns this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// Below every real ballot.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };

    /// A ballot for `node` in `round`.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_node() {
        assert!(Ballot::new(1, NodeId(9)) < Ballot::new(2, NodeId(0)));
        assert!(Ballot::new(2, NodeId(0)) < Ballot::new(2, NodeId(1)));
        assert!(Ballot::ZERO < Ballot::new(0, NodeId(1)));
    }

    #[test]
    fn segment_ids_format_in_name_order() {
        let a = SegmentId(9).to_string();
        let b = SegmentId(10).to_string();
        assert!(a < b, "{a} should sort before {b}");
    }
}

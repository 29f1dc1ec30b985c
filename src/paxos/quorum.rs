//! Vote counting. Replicas are numbered by their position in the sorted member list, so a set
//! of voters is a 64-bit mask (clusters hold at most 64 members).

/// A set of voters (member indexes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct VoteSet(u64);

impl VoteSet {
    /// Adds a voter; returns false if it had already voted (a duplicate).
    pub(crate) fn insert(&mut self, index: usize) -> bool {
        let bit = 1u64 << index;
        let fresh = self.0 & bit == 0;
        self.0 |= bit;
        fresh
    }

    pub(crate) fn contains(self, index: usize) -> bool {
        self.0 & (1u64 << index) != 0
    }

    pub(crate) fn len(self) -> usize {
        self.0.count_ones() as usize
    }
}

/// The smallest majority of `members` replicas.
pub(crate) fn majority(members: usize) -> usize {
    members / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_count_once() {
        let mut v = VoteSet::default();
        assert!(v.insert(2));
        assert!(!v.insert(2));
        assert!(v.insert(63));
        assert_eq!(v.len(), 2);
        assert!(v.contains(63) && !v.contains(0));
        assert_eq!(
            (majority(1), majority(3), majority(4), majority(5)),
            (1, 2, 3, 3)
        );
    }
}

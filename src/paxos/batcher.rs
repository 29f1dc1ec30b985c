//! The leader's queue of client commands not yet proposed, cut into slot values.
//!
//! Commands wait here while the window is full; when it opens, everything that queued is packed
//! into as few slots as the count and byte caps allow (at least one command per slot, so an
//! oversized command still gets through).

use std::collections::VecDeque;

use super::message::Command;
use super::shared::Shared;

/// Most commands one [`Batcher::plan`] takes: every slot of a flush is a range of one command
/// array, addressed with `u32`.
pub(crate) const PLAN_COMMANDS_MAX: usize = u32::MAX as usize;

/// [`Batcher::take`] hands over the queue's buffer itself from this many commands on (and
/// copies fewer, keeping the buffer).
const SWAP_MIN: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Batcher {
    queue: VecDeque<Command>,
}

impl Batcher {
    pub(crate) fn push(&mut self, command: Command) {
        self.queue.push_back(command);
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Cuts the queue's head into slot values, in order: appends to `cuts` the number of
    /// commands of each, at most `commands_max` commands and `bytes_max` bytes a slot, at least
    /// one command. Stops when the queue runs out or `room(value_bytes)` (asked before each
    /// further slot with the value bytes planned so far) says no.
    pub(crate) fn plan(
        &self,
        cuts: &mut Vec<usize>,
        commands_max: usize,
        bytes_max: usize,
        mut room: impl FnMut(usize) -> bool,
    ) {
        let (mut planned_bytes, mut planned) = (0, 0);
        let mut rest = self.queue.iter();
        let mut next = rest.next();
        while let Some(mut c) = next {
            if planned == PLAN_COMMANDS_MAX || !room(planned_bytes) {
                break;
            }
            // At least one command a slot, then as many as the caps allow.
            let (mut n, mut bytes) = (1, c.size_bytes());
            planned += 1;
            loop {
                next = rest.next();
                let Some(more) = next else {
                    break;
                };
                c = more;
                if n == commands_max
                    || planned == PLAN_COMMANDS_MAX
                    || bytes + c.size_bytes() > bytes_max
                {
                    break;
                }
                bytes += c.size_bytes();
                n += 1;
                planned += 1;
            }
            planned_bytes += 4 + bytes;
            cuts.push(n);
        }
    }

    /// Takes the first `n` queued commands as one shared array, in one allocation for a
    /// single command or a few (copied out of the queue); from [`SWAP_MIN`] on, taking the
    /// whole queue hands over its buffer without copying.
    pub(crate) fn take(&mut self, n: usize) -> Shared {
        let n = n.min(self.queue.len());
        if n == self.queue.len() && n >= SWAP_MIN {
            let fresh = VecDeque::with_capacity(self.queue.len());
            return Shared::new(Vec::from(std::mem::replace(&mut self.queue, fresh)));
        }
        if n == 1 {
            if let Some(c) = self.queue.pop_front() {
                return Shared::one(c);
            }
        }
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            let Some(c) = self.queue.pop_front() else {
                break;
            };
            taken.push(c);
        }
        Shared::new(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(seq: u64, len: usize) -> Command {
        Command {
            client: 1,
            seq,
            payload: vec![0; len],
        }
    }

    fn plan(
        b: &Batcher,
        commands_max: usize,
        bytes_max: usize,
        room: impl FnMut(usize) -> bool,
    ) -> Vec<usize> {
        let mut cuts = Vec::new();
        b.plan(&mut cuts, commands_max, bytes_max, room);
        cuts
    }

    #[test]
    fn batches_respect_count_and_byte_caps_but_never_starve() {
        let mut b = Batcher::default();
        for seq in 0..5 {
            b.push(cmd(seq, 10)); // 30 bytes each
        }
        b.push(cmd(5, 1000));
        let all = |_: usize| true;
        assert_eq!(plan(&b, 2, 1 << 20, all), vec![2, 2, 2]);
        // Larger than the byte cap on its own: still planned, alone.
        assert_eq!(plan(&b, 10, 60, all), vec![2, 2, 1, 1]);
        // The window's room is asked with the value bytes planned so far (4 + 60 a slot).
        assert_eq!(plan(&b, 10, 60, |bytes| bytes < 128), vec![2, 2]);
        let seqs: Vec<u64> = b.take(3).commands().iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        assert_eq!(plan(&b, 10, 60, all), vec![2, 1]);
        assert_eq!(b.take(10).commands().len(), 3);
        assert_eq!(plan(&b, 10, 60, all), Vec::<usize>::new());
    }
}

//! The leader's queue of client commands not yet proposed, cut into slot values.
//!
//! Commands wait here while the window is full; when it opens, everything that queued is packed
//! into as few slots as the count and byte caps allow (at least one command per slot, so an
//! oversized command still gets through).

use std::collections::VecDeque;

use super::message::{Command, Value};

#[derive(Debug, Default)]
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

    /// The next batch: at most `commands_max` commands and `bytes_max` bytes, at least one
    /// command. `None` if nothing waits.
    pub(crate) fn next_batch(&mut self, commands_max: usize, bytes_max: usize) -> Option<Value> {
        let first = self.queue.front()?;
        let mut bytes = first.size_bytes();
        let mut n = 1;
        for next in self
            .queue
            .iter()
            .skip(1)
            .take(commands_max.saturating_sub(1))
        {
            if bytes + next.size_bytes() > bytes_max {
                break;
            }
            bytes += next.size_bytes();
            n += 1;
        }
        if n == 1 {
            return self.queue.pop_front().map(Value::single);
        }
        Some(Value::collect(self.queue.drain(..n)))
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

    #[test]
    fn batches_respect_count_and_byte_caps_but_never_starve() {
        let mut b = Batcher::default();
        for seq in 0..5 {
            b.push(cmd(seq, 10)); // 30 bytes each
        }
        b.push(cmd(5, 1000));
        let seqs = |v: Value| v.commands().iter().map(|c| c.seq).collect::<Vec<_>>();
        assert_eq!(b.next_batch(2, 1 << 20).map(seqs), Some(vec![0, 1]));
        assert_eq!(b.next_batch(10, 60).map(seqs), Some(vec![2, 3]));
        assert_eq!(b.next_batch(10, 60).map(seqs), Some(vec![4]));
        // Larger than the byte cap on its own: still sent, alone.
        assert_eq!(b.next_batch(10, 60).map(seqs), Some(vec![5]));
        assert_eq!(b.next_batch(10, 60), None);
    }
}

//! A simulated network: per-message delay, loss, duplication and reordering, and partitions.
//! Deterministic for a given seed and call sequence.

use std::collections::BTreeSet;

use super::rng::Rng;
use crate::types::NodeId;

/// Fault rates and delays. Times are in simulator ticks.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Fewest ticks a message takes.
    pub delay_min: u64,
    /// Most ticks a message takes (a spread reorders messages).
    pub delay_max: u64,
    /// Probability a message is dropped.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Probability a message is slow: it takes up to `slow_delay_max` more ticks (a stalled
    /// connection, a long GC pause: old messages arrive long after newer ones).
    pub slow: f64,
    /// Most extra ticks a slow message takes.
    pub slow_delay_max: u64,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            delay_min: 1,
            delay_max: 3,
            loss: 0.0,
            duplicate: 0.0,
            slow: 0.0,
            slow_delay_max: 0,
        }
    }
}

/// Counters of injected network faults.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages dropped by loss or a partition.
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages (copies) made slow.
    pub slowed: u64,
}

struct InFlight<M> {
    at: u64,
    seq: u64,
    from: NodeId,
    to: NodeId,
    msg: M,
}

/// The network.
pub struct Network<M> {
    /// Current fault rates.
    pub config: NetConfig,
    rng: Rng,
    queue: Vec<InFlight<M>>,
    seq: u64,
    /// Pairs `(a, b)` (both directions) that cannot reach each other.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Counters.
    pub stats: NetStats,
}

impl<M: Clone> Network<M> {
    /// A network with its own random stream.
    pub fn new(config: NetConfig, rng: Rng) -> Network<M> {
        Network {
            config,
            rng,
            queue: Vec::new(),
            seq: 0,
            blocked: BTreeSet::new(),
            stats: NetStats::default(),
        }
    }

    /// Sends `msg` at time `now`.
    pub fn send(&mut self, now: u64, from: NodeId, to: NodeId, msg: M) {
        self.stats.sent += 1;
        if self.is_blocked(from, to) || self.rng.chance(self.config.loss) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = now + self.rng.range(self.config.delay_min, self.config.delay_max);
            if self.config.slow > 0.0 && self.rng.chance(self.config.slow) {
                self.stats.slowed += 1;
                at += self.rng.range(1, self.config.slow_delay_max.max(1));
            }
            self.seq += 1;
            self.queue.push(InFlight {
                at,
                seq: self.seq,
                from,
                to,
                msg: msg.clone(),
            });
        }
    }

    /// Removes and returns the messages due at or before `now`, in delivery order. Messages
    /// across a partition that formed while they were in flight are dropped.
    pub fn deliver(&mut self, now: u64) -> Vec<(NodeId, NodeId, M)> {
        let mut due = Vec::new();
        let mut keep = Vec::with_capacity(self.queue.len());
        for m in self.queue.drain(..) {
            if m.at <= now {
                due.push(m);
            } else {
                keep.push(m);
            }
        }
        self.queue = keep;
        due.sort_by_key(|m| (m.at, m.seq));
        let mut out = Vec::with_capacity(due.len());
        for m in due {
            if self.is_blocked(m.from, m.to) {
                self.stats.dropped += 1;
            } else {
                out.push((m.from, m.to, m.msg));
            }
        }
        out
    }

    /// Splits the nodes: members of different groups cannot reach each other.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.blocked.clear();
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for &x in a {
                    for &y in b {
                        self.blocked.insert((x.min(y), x.max(y)));
                    }
                }
            }
        }
    }

    /// Cuts one node off from everyone.
    pub fn isolate(&mut self, node: NodeId, all: &[NodeId]) {
        for &o in all {
            if o != node {
                self.blocked.insert((node.min(o), node.max(o)));
            }
        }
    }

    /// Cuts the link between `a` and `b` (both directions).
    pub fn block(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a.min(b), a.max(b)));
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// True if any partition is in force.
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The messages in flight to `to` (in no particular order).
    pub fn pending_to(&self, to: NodeId) -> impl Iterator<Item = &M> + '_ {
        self.queue
            .iter()
            .filter(move |m| m.to == to)
            .map(|m| &m.msg)
    }

    fn is_blocked(&self, a: NodeId, b: NodeId) -> bool {
        self.blocked.contains(&(a.min(b), a.max(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_time_order_and_respects_partitions() {
        let mut net: Network<u32> = Network::new(
            NetConfig {
                delay_min: 1,
                delay_max: 5,
                ..NetConfig::default()
            },
            Rng::new(1),
        );
        for i in 0..100 {
            net.send(0, NodeId(1), NodeId(2), i);
        }
        let got: Vec<u32> = (1..=5).flat_map(|t| net.deliver(t)).map(|m| m.2).collect();
        assert_eq!(got.len(), 100);
        assert_ne!(got, (0..100).collect::<Vec<_>>(), "a delay spread reorders");
        net.partition(&[vec![NodeId(1)], vec![NodeId(2), NodeId(3)]]);
        net.send(10, NodeId(1), NodeId(2), 1);
        net.send(10, NodeId(2), NodeId(3), 2);
        let got: Vec<u32> = (11..=15)
            .flat_map(|t| net.deliver(t))
            .map(|m| m.2)
            .collect();
        assert_eq!(got, vec![2]);
        assert_eq!(net.stats.dropped, 1);
    }
}

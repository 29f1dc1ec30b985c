//! Counters and latency histograms of one node, readable through [`Node::status`] and as
//! the plain-text status a script can scrape (`key value` per line).
//!
//! [`Node::status`]: super::Node::status

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per power of two (relative precision ≈ 1/8).
const SUB: usize = 8;
/// Powers of two covered (1 µs .. 2^40 µs).
const POWERS: usize = 40;

/// A lock-free latency histogram in microseconds, log-linear buckets (≈ 12 % precision).
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..POWERS * SUB).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let power = 63 - us.leading_zeros() as usize; // us >= 8, so power >= 3
    let sub = ((us >> (power - 3)) as usize) & (SUB - 1);
    ((power - 2) * SUB + sub).min(POWERS * SUB - 1)
}

/// The smallest value in bucket `b` (its upper neighbour's floor is the next bucket's).
fn bucket_floor(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let power = b / SUB + 2;
    let sub = (b % SUB) as u64;
    (SUB as u64 + sub) << (power - 3)
}

impl Histogram {
    /// Records one sample.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0..=1) in microseconds (a bucket's floor; 0 with no samples).
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_floor(i);
            }
        }
        bucket_floor(counts.len() - 1)
    }
}

/// A node's counters (monotonic) and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Client writes accepted by this node as leader.
    pub proposed: AtomicU64,
    /// Commands applied to the state machine (retries included).
    pub applied: AtomicU64,
    /// Client requests answered Busy.
    pub busy: AtomicU64,
    /// Persists the store made durable.
    pub persists: AtomicU64,
    /// Snapshots this node took.
    pub snapshots_taken: AtomicU64,
    /// Snapshots this node installed from a peer.
    pub snapshots_installed: AtomicU64,
    /// Snapshot transfers this node served (offers sent).
    pub transfers_sent: AtomicU64,
    /// Snapshot chunks this node received.
    pub chunks_received: AtomicU64,
    /// Leadership terms this node won.
    pub elections_won: AtomicU64,
    /// Persist submitted → durable.
    pub durable_latency: Histogram,
    /// Client write received → chosen (applied on this node, the leader).
    pub commit_latency: Histogram,
    /// Client read received → served.
    pub read_latency: Histogram,
}

impl Metrics {
    /// Adds one to `c`.
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A point-in-time copy of a node's metrics.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Client writes accepted as leader.
    pub proposed: u64,
    /// Commands applied.
    pub applied_commands: u64,
    /// Requests answered Busy.
    pub busy: u64,
    /// Persists made durable.
    pub persists: u64,
    /// `fdatasync` calls.
    pub fsyncs: u64,
    /// Commands applied per `fdatasync`.
    pub commands_per_fsync: f64,
    /// Snapshots taken.
    pub snapshots_taken: u64,
    /// Snapshots installed from a peer.
    pub snapshots_installed: u64,
    /// Snapshot transfers served.
    pub transfers_sent: u64,
    /// Snapshot chunks received.
    pub chunks_received: u64,
    /// Elections won.
    pub elections_won: u64,
    /// Persist → durable, p50 / p99 (µs).
    pub durable_p50_us: u64,
    /// See `durable_p50_us`.
    pub durable_p99_us: u64,
    /// Write received → applied, p50 / p99 (µs).
    pub commit_p50_us: u64,
    /// See `commit_p50_us`.
    pub commit_p99_us: u64,
    /// Read received → served, p50 / p99 (µs).
    pub read_p50_us: u64,
    /// See `read_p50_us`.
    pub read_p99_us: u64,
    /// Bytes in the node's data directory (log and snapshots).
    pub bytes_on_disk: u64,
}

impl Metrics {
    /// A copy of every counter and the histograms' quantiles; `fsyncs` is the acceptor log's
    /// own count (the log is the one that syncs).
    pub fn snapshot(&self, fsyncs: u64) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let applied = get(&self.applied);
        MetricsSnapshot {
            proposed: get(&self.proposed),
            applied_commands: applied,
            busy: get(&self.busy),
            persists: get(&self.persists),
            fsyncs,
            commands_per_fsync: if fsyncs == 0 {
                0.0
            } else {
                applied as f64 / fsyncs as f64
            },
            snapshots_taken: get(&self.snapshots_taken),
            snapshots_installed: get(&self.snapshots_installed),
            transfers_sent: get(&self.transfers_sent),
            chunks_received: get(&self.chunks_received),
            elections_won: get(&self.elections_won),
            durable_p50_us: self.durable_latency.quantile_us(0.5),
            durable_p99_us: self.durable_latency.quantile_us(0.99),
            commit_p50_us: self.commit_latency.quantile_us(0.5),
            commit_p99_us: self.commit_latency.quantile_us(0.99),
            read_p50_us: self.read_latency.quantile_us(0.5),
            read_p99_us: self.read_latency.quantile_us(0.99),
            bytes_on_disk: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_quantiles_land_within_a_bucket() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket_of(us);
            assert!(b >= last, "bucket order at {us}");
            assert!(bucket_floor(b) <= us, "floor above the value at {us}");
            last = b;
        }
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile_us(0.5);
        assert!((440..=500).contains(&p50), "p50 {p50}");
        let p99 = h.quantile_us(0.99);
        assert!((860..=990).contains(&p99), "p99 {p99}");
        assert_eq!(Histogram::default().quantile_us(0.5), 0);
    }
}

//! Everything behind `paxwal bench` and the criterion benches in `benches/`, each benchmark
//! measured beside the raw disk in the same directory and the same run, so figures are stated as
//! ratios (only ratios within one run mean anything on a shared machine).
//!
//! * [`raw`]: the raw-disk probes, written once (`fdatasync` after overwrites, sequential
//!   writes, write+sync loops).
//! * [`append`]: the append benchmark (`paxwal bench`) and the reopen benchmark
//!   (`--reopen-mib`).
//! * [`replication`]: the replication benchmark (`--paxos`): three replicas, each with its
//!   acceptor store on its own log.
//! * [`cluster`]: `--cluster`: a local cluster of real `paxwal serve` processes on 127.0.0.1
//!   under a closed-loop client load.
//! * `peers` (feature `compare`): the peer comparison (`--compare`): one small trait for an
//!   engine under test, one file per engine, every workload run on every engine by the same
//!   code.
//! * `omnipaxos` (feature `omnipaxos`): omnipaxos 0.2.4 pumped the way the replication
//!   harness and `benches/paxos.rs` pump paxwal, over its `MemoryStorage` or (feature
//!   `compare-omnipaxos`) its RocksDB `PersistentStorage`.
//!
//! The benchmarks sit above every layer (they open logs, stores, Paxos cores and nodes); nothing
//! in the library imports them.

pub mod append;
pub mod cluster;
#[cfg(feature = "omnipaxos")]
pub mod omnipaxos;
#[cfg(feature = "compare")]
pub mod peers;
pub mod raw;
pub mod replication;

use std::time::Duration;

pub use append::{reopen, run, BenchConfig, BenchResult, RawDisk, ReopenResult};

/// `(RssAnon, RssFile)` of this process in MiB, from `/proc/self/status` (0 where absent).
pub fn rss_mib() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// `wchar` of `/proc/self/io`: bytes this process passed to write calls (0 where absent).
pub fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Flushes the page cache and waits a moment, so one phase's writeback does not run into the
/// next phase's timing.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(500));
}

/// The `p` quantile (0..=1) of `sorted_ns` (nanoseconds, sorted), in µs; 0 when empty.
pub fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    sorted_ns[i] as f64 / 1000.0
}

/// `a / b`, or 0 when `b` is not positive.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

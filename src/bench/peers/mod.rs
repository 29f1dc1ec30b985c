//! The peer comparison (feature `compare`): the same durable-append workloads on paxwal,
//! okaywal 0.3.1, raft-engine 0.4.2, with feature `compare-rocksdb` also RocksDB 8.1.1 (crate
//! `rocksdb` 0.21.0), and the raw disk, interleaved rounds, in one run. Behind `paxwal bench
//! --compare` and `cargo bench --features compare --bench peers` (`--features compare-rocksdb`
//! for RocksDB). The peers are optional dependencies, never part of the library's normal build.
//!
//! In the manner of redb's `benches/common.rs`: one small trait for an engine under test
//! ([`Engine`], opening a [`Log`]), one file per engine (`paxwal.rs`, `okaywal.rs`,
//! `raft_engine.rs`, `rocksdb.rs`; each names the durable-append calls it uses), and every
//! workload run on
//! every engine of [`ENGINES`] by the same code ([`run`], [`reopen`]). Adding a peer is one file
//! and one line in [`ENGINES`]. The raw disk is the raw-disk probe
//! [`write_sync_loop`](super::raw::write_sync_loop): `pwrite` + `fdatasync` of the same bytes
//! per call into a pre-written file, by as many writers.

#![allow(missing_docs)]

mod okaywal;
mod paxwal;
mod raft_engine;
#[cfg(feature = "compare-rocksdb")]
mod rocksdb;

macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::percentile_us;
use super::raw::{self, Space, Until};

pub use self::okaywal::OkayWal;
pub use self::paxwal::Paxwal;
pub use self::raft_engine::RaftEngine;
#[cfg(feature = "compare-rocksdb")]
pub use self::rocksdb::RocksDb;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub writers: usize,
    pub entry_bytes: usize,
    pub batch: usize,
    pub entries_per_writer: usize,
}

pub const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "1 writer, 128 B, each synced",
        writers: 1,
        entry_bytes: 128,
        batch: 1,
        entries_per_writer: 3000,
    },
    Workload {
        name: "4 writers, 1 KiB, each synced",
        writers: 4,
        entry_bytes: 1024,
        batch: 1,
        entries_per_writer: 2000,
    },
    Workload {
        name: "16 writers, 1 KiB, each synced",
        writers: 16,
        entry_bytes: 1024,
        batch: 1,
        entries_per_writer: 800,
    },
    Workload {
        name: "300k x 128 B, batches of 1,000, one sync each",
        writers: 1,
        entry_bytes: 128,
        batch: 1000,
        entries_per_writer: 300_000,
    },
    Workload {
        name: "64 KiB entries, 16 per sync",
        writers: 1,
        entry_bytes: 65536,
        batch: 16,
        entries_per_writer: 2048,
    },
];

/// An engine under test: how to open its log for the workloads and for the reopen test, and
/// how to count what a reopen reads back.
pub trait Engine: Sync {
    /// The engine's name in tables.
    fn name(&self) -> &'static str;
    /// Opens (creates) a log in `dir`, configured as for the append workloads.
    fn open(&self, dir: &Path) -> Res<Box<dyn Log>>;
    /// Opens a log in `dir` to build the reopen test's log, configured to keep every entry
    /// (by default as [`Engine::open`]).
    fn open_keeping_all(&self, dir: &Path) -> Res<Box<dyn Log>> {
        self.open(dir)
    }
    /// Entries per append when the reopen test builds its log (by default 256: one call per
    /// MiB of 4 KiB entries).
    fn reopen_batch(&self) -> usize {
        256
    }
    /// Reopens the log in `dir` and reads every entry back; counts those of `entry_bytes`.
    fn reopen_count(&self, dir: &Path, entry_bytes: usize) -> Res<usize>;
}

/// An open log of an engine under test.
pub trait Log: Send + Sync {
    /// Appends `entries` durably, in one call (a batch where there are several).
    fn append(&self, entries: &[&[u8]]) -> Res<()>;
}

/// Every engine the comparison runs, in table order (paxwal first: the ratios are to it).
/// RocksDB is one of them in builds with the feature `compare-rocksdb`.
pub const ENGINES: &[&dyn Engine] = &[
    &Paxwal,
    &OkayWal,
    &RaftEngine,
    #[cfg(feature = "compare-rocksdb")]
    &RocksDb,
];

/// The engine named `name`, if it is one of [`ENGINES`].
pub fn engine(name: &str) -> Option<&'static dyn Engine> {
    ENGINES.iter().copied().find(|e| e.name() == name)
}

/// Runs one workload on one engine: entries/s and per-call p50/p99 µs.
pub fn run(engine: &dyn Engine, dir: &Path, w: Workload) -> Res<(f64, f64, f64)> {
    let log: Arc<dyn Log> = Arc::from(engine.open(dir)?);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let lat: Vec<Res<Vec<u64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..w.writers)
            .map(|i| {
                let log = log.clone();
                s.spawn(move || -> Res<Vec<u64>> {
                    let e: Vec<u8> = (0..w.entry_bytes).map(|j| (i + j) as u8).collect();
                    let batch: Vec<&[u8]> = (0..w.batch).map(|_| &e[..]).collect();
                    let mut lat = Vec::new();
                    for _ in 0..w.entries_per_writer / w.batch {
                        let c = Instant::now();
                        log.append(&batch)?;
                        lat.push(c.elapsed().as_nanos() as u64);
                    }
                    Ok(lat)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("writer panicked".into())))
            .collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for l in lat {
        all.extend(l?);
    }
    all.sort_unstable();
    Ok((
        (w.writers * w.entries_per_writer) as f64 / secs,
        percentile_us(&all, 0.5),
        percentile_us(&all, 0.99),
    ))
}

/// The raw disk for a workload, entries/s: `pwrite` + `fdatasync` of the same bytes per call
/// (4 bytes of framing per entry), `writers` threads on one pre-written file.
pub fn raw(dir: &Path, w: Workload) -> Res<f64> {
    let calls = (w.entries_per_writer / w.batch) as u64;
    let call_bytes = w.batch * (w.entry_bytes + 4);
    let per_sec = raw::write_sync_loop(
        dir,
        call_bytes,
        w.writers,
        Until::Calls(calls),
        Space::Reused,
    )?;
    Ok(per_sec * w.batch as f64)
}

/// Builds a log of `mib` MiB of 4 KiB entries with `engine`, then times reopening it and
/// reading every entry back; reports a loss instead of a time if entries are missing.
pub fn reopen(engine: &dyn Engine, dir: &Path, mib: usize) -> Res<String> {
    const ENTRY_BYTES: usize = 4096;
    let n = mib * 256;
    {
        let log = engine.open_keeping_all(dir)?;
        let v = vec![0x42u8; ENTRY_BYTES];
        let per_call = engine.reopen_batch().max(1);
        let batch: Vec<&[u8]> = (0..per_call).map(|_| &v[..]).collect();
        let mut left = n;
        while left > 0 {
            let k = left.min(per_call);
            log.append(&batch[..k])?;
            left -= k;
        }
    }
    let t = Instant::now();
    let found = engine.reopen_count(dir, ENTRY_BYTES)?;
    let secs = t.elapsed().as_secs_f64();
    Ok(if found == n {
        format!("{secs:.3} s")
    } else {
        format!("LOST DATA: {found} of {n} entries after reopen")
    })
}

/// One round's figures: entries/s, p50 µs, p99 µs, raw-disk entries/s.
type Sample = (f64, f64, f64, f64);

/// Runs every workload on every engine, three interleaved rounds, in `base`; returns the
/// markdown tables and writes an SVG chart to `chart` if given. Progress goes to stderr.
pub fn table(base: &Path, chart: Option<&Path>) -> Res<String> {
    let mut out = String::new();
    let engines: Vec<&str> = ENGINES.iter().map(|e| e.name()).collect();
    // results[workload][engine] = Vec<(entries/s, p50, p99, raw)> per round
    let mut results: BTreeMap<(usize, &str), Vec<Sample>> = BTreeMap::new();
    for round in 0..3 {
        for (wi, w) in WORKLOADS.iter().enumerate() {
            let rd = base.join(format!("raw-{round}-{wi}"));
            std::fs::create_dir_all(&rd)?;
            let raw_rate = raw(&rd, *w)?;
            for &engine in ENGINES {
                let e = engine.name();
                let d = base.join(format!("{e}-{round}-{wi}"));
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d)?;
                let r = run(engine, &d, *w)?;
                eprintln!("round {round} {e:12} {:45} {:>12.0}/s p50 {:.0} p99 {:.0} (raw {raw_rate:.0}/s)", w.name, r.0, r.1, r.2);
                results
                    .entry((wi, e))
                    .or_default()
                    .push((r.0, r.1, r.2, raw_rate));
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    outln!(out, "| workload | engine | entries/s | MiB/s | p50 µs | p99 µs | ratio to raw disk | ratio to paxwal |");
    outln!(out, "|---|---|---|---|---|---|---|---|");
    for (wi, w) in WORKLOADS.iter().enumerate() {
        for &e in &engines {
            let rs = &results[&(wi, e)];
            let px = &results[&(wi, "paxwal")];
            let rate = med(rs.iter().map(|r| r.0).collect());
            let to_raw = med(rs.iter().map(|r| r.0 / r.3).collect());
            let to_px = med(rs.iter().zip(px).map(|(r, p)| r.0 / p.0).collect());
            outln!(
                out,
                "| {} | {e} | {rate:.0} | {:.1} | {:.0} | {:.0} | {to_raw:.2} | {to_px:.2} |",
                w.name,
                rate * w.entry_bytes as f64 / (1 << 20) as f64,
                med(rs.iter().map(|r| r.1).collect()),
                med(rs.iter().map(|r| r.2).collect()),
            );
        }
    }
    outln!(out,);
    outln!(out, "{}", best_peer_table(&results, &engines));
    outln!(
        out,
        "| reopen + read all, 64 MiB of 4 KiB entries, warm | result |"
    );
    outln!(out, "|---|---|");
    for &engine in ENGINES {
        let e = engine.name();
        let d = base.join(format!("{e}-reopen"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        outln!(out, "| {e} | {} |", reopen(engine, &d, 64)?);
        let _ = std::fs::remove_dir_all(&d);
    }
    if let Some(path) = chart {
        // Throughput vs writers (1 / 4 / 16), per engine: grouped bars.
        let groups = [(0usize, "1 writer"), (1, "4 writers"), (2, "16 writers")];
        let max = groups
            .iter()
            .flat_map(|(wi, _)| engines.iter().map(move |e| (*wi, *e)))
            .map(|k| med(results[&k].iter().map(|r| r.0).collect()))
            .fold(1.0, f64::max);
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
        let color = |ei: usize| colors[ei % colors.len()];
        // Each group of bars is 160 px wide, whatever the number of engines.
        let step = 160.0 / engines.len().max(1) as f64;
        let mut svg = String::from("<svg xmlns='http://www.w3.org/2000/svg' width='720' height='360' font-family='sans-serif' font-size='12'>\n<text x='20' y='20'>Durable appends/s vs writers (median of 3 rounds)</text>\n");
        for (gi, (wi, label)) in groups.iter().enumerate() {
            for (ei, e) in engines.iter().enumerate() {
                let v = med(results[&(*wi, *e)].iter().map(|r| r.0).collect());
                let h = v / max * 260.0;
                let x = 60.0 + gi as f64 * 190.0 + ei as f64 * step;
                svg += &format!("<rect x='{x}' y='{:.1}' width='{:.0}' height='{h:.1}' fill='{}'/>\n<text x='{x}' y='{:.1}'>{:.0}k</text>\n", 320.0 - h, step - 4.0, color(ei), 315.0 - h, v / 1000.0);
            }
            svg += &format!(
                "<text x='{}' y='340'>{label}</text>\n",
                90.0 + gi as f64 * 190.0
            );
        }
        for (ei, e) in engines.iter().enumerate() {
            svg += &format!("<rect x='620' y='{}' width='10' height='10' fill='{}'/><text x='636' y='{}'>{e}</text>\n", 30 + ei * 16, color(ei), 40 + ei * 16);
        }
        svg += "</svg>\n";
        std::fs::write(path, svg)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(out)
}

/// paxwal ÷ the fastest peer, per workload: in each round the ratio to whichever peer was
/// fastest in that round, then the median of those ratios (the ratio the goals are set in).
fn best_peer_table(results: &BTreeMap<(usize, &str), Vec<Sample>>, engines: &[&str]) -> String {
    let mut out = String::new();
    outln!(
        out,
        "| workload | fastest peer, each round | paxwal ÷ fastest peer, each round | median |"
    );
    outln!(out, "|---|---|---|---|");
    for (wi, w) in WORKLOADS.iter().enumerate() {
        let Some(px) = results.get(&(wi, "paxwal")) else {
            continue;
        };
        let mut names = Vec::new();
        let mut ratios = Vec::new();
        for (round, p) in px.iter().enumerate() {
            let best = engines
                .iter()
                .filter(|&&e| e != "paxwal")
                .filter_map(|&e| Some((e, results.get(&(wi, e))?.get(round)?.0)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((e, rate)) = best {
                names.push(e);
                ratios.push(p.0 / rate);
            }
        }
        if ratios.is_empty() {
            continue;
        }
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        ratios.sort_by(f64::total_cmp);
        outln!(
            out,
            "| {} | {} | {} | {:.2} |",
            w.name,
            names.join(", "),
            each.join(", "),
            ratios[ratios.len() / 2]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_runs_a_workload_and_reads_back_what_it_wrote() {
        let w = Workload {
            name: "small",
            writers: 2,
            entry_bytes: 100,
            batch: 4,
            entries_per_writer: 40,
        };
        for &e in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let (rate, p50, p99) = run(e, dir.path(), w).unwrap();
            assert!(rate > 0.0 && p50 <= p99, "{}", e.name());
            let dir = tempfile::tempdir().unwrap();
            let r = reopen(e, dir.path(), 1).unwrap();
            // okaywal 0.3.1's recovery hands over one entry of its log (README, PEERS.md): the
            // table reports that loss; the others read every entry back.
            if e.name() == "okaywal" {
                assert!(r.starts_with("LOST DATA"), "{r}");
            } else {
                assert!(r.ends_with(" s"), "{}: {r}", e.name());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(raw(dir.path(), w).unwrap() > 0.0);
        assert_eq!(engine("okaywal").map(|e| e.name()), Some("okaywal"));
        assert_eq!(
            engine("rocksdb").is_some(),
            cfg!(feature = "compare-rocksdb")
        );
        assert!(engine("leveldb").is_none());
    }

    #[test]
    fn the_best_peer_ratio_is_taken_within_each_round() {
        // Round 0: okaywal is fastest (paxwal 100 ÷ 50 = 2.00); round 1: raft-engine (100 ÷
        // 80 = 1.25); round 2: okaywal (90 ÷ 60 = 1.50). Median 1.50, not paxwal's median rate
        // over the best peer's median rate (100 ÷ 60 = 1.67).
        let s = |rate: f64| (rate, 0.0, 0.0, 1.0);
        let mut r: BTreeMap<(usize, &str), Vec<Sample>> = BTreeMap::new();
        r.insert((0, "paxwal"), vec![s(100.0), s(100.0), s(90.0)]);
        r.insert((0, "okaywal"), vec![s(50.0), s(20.0), s(60.0)]);
        r.insert((0, "raft-engine"), vec![s(40.0), s(80.0), s(10.0)]);
        let t = best_peer_table(&r, &["paxwal", "okaywal", "raft-engine"]);
        let row = format!(
            "| {} | okaywal, raft-engine, okaywal | 2.00, 1.25, 1.50 | 1.50 |",
            WORKLOADS[0].name
        );
        assert!(t.lines().any(|l| l == row), "{t}");
        // Workloads without figures get no row.
        assert_eq!(t.lines().count(), 3, "{t}");
    }
}

//! Side-by-side durable-append comparison (feature `compare`): the same workloads on paxwal,
//! okaywal 0.3.1, raft-engine 0.4.2 and the raw disk, interleaved rounds, in one run. Behind
//! `paxwal bench --compare` and `cargo bench --features compare --bench peers`. The peers are
//! optional dependencies, never part of the library's normal build.
//!
//! Durable-append calls used:
//! * paxwal: `Wal::append` / `Wal::append_batch` with `SyncMode::Always`.
//! * okaywal: `WriteAheadLog::begin_entry()` → `EntryWriter::write_chunk()` → `commit()`
//!   (commit syncs); batches are one entry of many chunks. Default configuration for appends
//!   (it checkpoints and recycles segments); for the reopen test checkpointing is off
//!   (`checkpoint_after_bytes(u64::MAX)`: a checkpoint hands entries to the manager to keep
//!   elsewhere, so they are not replayed). On recovery the manager reads every chunk (okaywal
//!   loses entries if the recovery callback does not).
//! * raft-engine: `LogBatch::put(region, key, value)` then `Engine::write(&mut batch, true)`
//!   (sync); batches are one `LogBatch` of many puts. Default configuration, compression off.
//! * raw: `pwrite` + `fdatasync` of the same bytes per call into a pre-written file.

#![allow(missing_docs)]

macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

pub trait Engine: Send + Sync {
    /// Appends `batch` entries durably.
    fn append(&self, entries: &[&[u8]]) -> Res<()>;
}

struct Paxwal(crate::Wal);
impl Engine for Paxwal {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        if entries.len() == 1 {
            self.0.append(entries[0])?;
        } else {
            self.0.append_batch(entries)?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct CountingManager {
    chunks: Arc<std::sync::atomic::AtomicU64>,
}
impl okaywal::LogManager for CountingManager {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        // Read every chunk: okaywal skips data otherwise.
        while let okaywal::ReadChunkResult::Chunk(mut chunk) = entry.read_chunk()? {
            let _ = chunk.read_all()?;
            chunk.skip_remaining_bytes()?;
            self.chunks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

struct OkayWal(okaywal::WriteAheadLog);
impl Engine for OkayWal {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        let mut w = self.0.begin_entry()?;
        for e in entries {
            w.write_chunk(e)?;
        }
        w.commit()?;
        Ok(())
    }
}

struct RaftEngine {
    engine: raft_engine::Engine,
    next: std::sync::atomic::AtomicU64,
}
impl Engine for RaftEngine {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        let mut b = raft_engine::LogBatch::default();
        for e in entries {
            let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            b.put(1, k.to_be_bytes().to_vec(), e.to_vec())?;
        }
        self.engine.write(&mut b, true)?;
        Ok(())
    }
}

/// okaywal's default configuration, except that it never checkpoints: a checkpoint hands
/// entries to the log manager to keep elsewhere, which this benchmark does not do, so a
/// checkpointed entry would look lost on reopen.
fn okay_config(dir: &Path) -> okaywal::Configuration {
    okaywal::Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

fn raft_config(dir: &Path) -> raft_engine::Config {
    raft_engine::Config {
        dir: dir.to_string_lossy().into_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..Default::default()
    }
}

pub fn open_engine(kind: &str, dir: &Path) -> Res<Box<dyn Engine>> {
    Ok(match kind {
        "paxwal" => Box::new(Paxwal(crate::Wal::open(dir, crate::Options::default())?)),
        // Default configuration (it checkpoints and recycles segments), as PEERS.md measured.
        "okaywal" => Box::new(OkayWal(okaywal::WriteAheadLog::recover(
            dir,
            CountingManager::default(),
        )?)),
        // For the reopen test: the same, but never checkpointing (see `okay_config`).
        "okaywal-keep-all" => Box::new(OkayWal(okay_config(dir).open(CountingManager::default())?)),
        "raft-engine" => Box::new(RaftEngine {
            engine: raft_engine::Engine::open(raft_config(dir))?,
            next: 0.into(),
        }),
        _ => return Err("unknown engine".into()),
    })
}

/// Runs one workload on one engine: entries/s and per-call p50/p99 µs.
pub fn run(kind: &str, dir: &Path, w: Workload) -> Res<(f64, f64, f64)> {
    let engine: Arc<dyn Engine> = Arc::from(open_engine(kind, dir)?);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let lat: Vec<Res<Vec<u64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..w.writers)
            .map(|i| {
                let engine = engine.clone();
                s.spawn(move || -> Res<Vec<u64>> {
                    let e: Vec<u8> = (0..w.entry_bytes).map(|j| (i + j) as u8).collect();
                    let batch: Vec<&[u8]> = (0..w.batch).map(|_| &e[..]).collect();
                    let mut lat = Vec::new();
                    for _ in 0..w.entries_per_writer / w.batch {
                        let c = Instant::now();
                        engine.append(&batch)?;
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
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    Ok((
        (w.writers * w.entries_per_writer) as f64 / secs,
        pct(0.5),
        pct(0.99),
    ))
}

/// The raw disk for a workload: pwrite+fdatasync of the same bytes per call, `writers` threads
/// on one pre-written file (overwrite).
pub fn raw(dir: &Path, w: Workload) -> Res<f64> {
    let p = dir.join("raw");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)?;
    let call = w.batch * (w.entry_bytes + 4);
    let span = (64usize << 20).max(call * 2);
    let zero = vec![0u8; 1 << 20];
    for i in 0..span.div_ceil(1 << 20) {
        f.write_all_at(&zero, (i << 20) as u64)?;
    }
    f.sync_all()?;
    let calls = w.entries_per_writer / w.batch;
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..w.writers {
            let f = &f;
            s.spawn(move || {
                let buf = vec![i as u8; call];
                for k in 0..calls {
                    let slot = (k * w.writers + i) * call % (span - call + 1);
                    let _ = f.write_all_at(&buf, slot as u64);
                    let _ = f.sync_data();
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&p);
    Ok((w.writers * w.entries_per_writer) as f64 / secs)
}

/// Builds a log of `mib` MiB of 4 KiB entries with each engine, then times reopening it and
/// reading every entry back; reports a loss instead of a time if entries are missing.
pub fn reopen(kind: &str, dir: &Path, mib: usize) -> Res<String> {
    let n = mib * 256;
    {
        let e = open_engine(
            if kind == "okaywal" {
                "okaywal-keep-all"
            } else {
                kind
            },
            dir,
        )?;
        let v = vec![0x42u8; 4096];
        if kind == "okaywal" {
            // One chunk per entry, as PEERS.md measured okaywal's reopen.
            for _ in 0..n {
                e.append(&[&v[..]])?;
            }
        } else {
            let batch: Vec<&[u8]> = (0..256).map(|_| &v[..]).collect();
            for _ in 0..mib {
                e.append(&batch)?;
            }
        }
    }
    let t = Instant::now();
    let found: usize = match kind {
        "paxwal" => {
            let wal = crate::Wal::open(dir, crate::Options::default())?;
            let mut k = 0;
            for r in wal.iter(wal.first_lsn()..=wal.last_lsn()) {
                k += usize::from(r?.1.len() == 4096);
            }
            k
        }
        "okaywal" => {
            let m = CountingManager::default();
            let c = m.chunks.clone();
            let _log = okay_config(dir).open(m)?;
            c.load(std::sync::atomic::Ordering::Relaxed) as usize
        }
        _ => {
            let engine = raft_engine::Engine::open(raft_config(dir))?;
            let mut k = 0;
            engine.scan_raw_messages(1, None, None, false, |_, v| {
                k += usize::from(v.len() == 4096);
                true
            })?;
            k
        }
    };
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
    let engines = ["paxwal", "okaywal", "raft-engine"];
    // results[workload][engine] = Vec<(entries/s, p50, p99, raw)> per round
    let mut results: BTreeMap<(usize, &str), Vec<Sample>> = BTreeMap::new();
    for round in 0..3 {
        for (wi, w) in WORKLOADS.iter().enumerate() {
            let rd = base.join(format!("raw-{round}-{wi}"));
            std::fs::create_dir_all(&rd)?;
            let raw_rate = raw(&rd, *w)?;
            for e in engines {
                let d = base.join(format!("{e}-{round}-{wi}"));
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d)?;
                let r = run(e, &d, *w)?;
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
        for e in engines {
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
    outln!(
        out,
        "| reopen + read all, 64 MiB of 4 KiB entries, warm | result |"
    );
    outln!(out, "|---|---|");
    for e in engines {
        let d = base.join(format!("{e}-reopen"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        outln!(out, "| {e} | {} |", reopen(e, &d, 64)?);
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
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c"];
        let mut svg = String::from("<svg xmlns='http://www.w3.org/2000/svg' width='640' height='360' font-family='sans-serif' font-size='12'>\n<text x='20' y='20'>Durable appends/s vs writers (median of 3 rounds)</text>\n");
        for (gi, (wi, label)) in groups.iter().enumerate() {
            for (ei, e) in engines.iter().enumerate() {
                let v = med(results[&(*wi, *e)].iter().map(|r| r.0).collect());
                let h = v / max * 260.0;
                let x = 60.0 + gi as f64 * 190.0 + ei as f64 * 50.0;
                svg += &format!("<rect x='{x}' y='{:.1}' width='44' height='{h:.1}' fill='{}'/>\n<text x='{x}' y='{:.1}'>{:.0}k</text>\n", 320.0 - h, colors[ei], 315.0 - h, v / 1000.0);
            }
            svg += &format!(
                "<text x='{}' y='340'>{label}</text>\n",
                90.0 + gi as f64 * 190.0
            );
        }
        for (ei, e) in engines.iter().enumerate() {
            svg += &format!("<rect x='460' y='{}' width='10' height='10' fill='{}'/><text x='476' y='{}'>{e}</text>\n", 30 + ei * 16, colors[ei], 40 + ei * 16);
        }
        svg += "</svg>\n";
        std::fs::write(path, svg)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(out)
}

//! The append benchmark behind `paxwal bench` (writers appending durably, beside the raw-disk
//! probes of [`super::raw`] in the same directory and run) and the reopen benchmark behind
//! `paxwal bench --reopen-mib`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::raw::{self, Space, Until};
use super::{percentile_us, ratio, rss_mib, settle};
use crate::error::{Error, Result};
use crate::types::Lsn;
use crate::wal::{Options, SyncMode, Wal};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Directory to run in (a fresh subdirectory is used for the log).
    pub dir: PathBuf,
    /// Writer threads.
    pub writers: usize,
    /// Bytes per entry.
    pub entry_bytes: usize,
    /// Stop after this many entries in all...
    pub entries: Option<u64>,
    /// ...or after this long.
    pub seconds: Option<f64>,
    /// Sync mode of the log.
    pub sync: SyncMode,
    /// Entries per append call (`append_batch` when above 1).
    pub batch: usize,
    /// Also measure the raw disk.
    pub raw: bool,
    /// Zero-fill new segments (the default); false makes sparse segments (no second write of
    /// every byte, but each sync that allocates blocks journals metadata).
    pub zero_fill: bool,
    /// Write synced groups through the page cache instead of with direct I/O
    /// (`Options::direct_writes` off), to compare the two.
    pub buffered: bool,
    /// Waiting writers park at once instead of yielding first (`Options::spin_wait_max` zero),
    /// to compare the two.
    pub no_spin: bool,
    /// Fill the log with this many MiB (64 KiB entries) before the measured run, to see how
    /// costs scale with log size.
    pub prefill_mib: usize,
    /// Compact behind the writers (as a user taking snapshots would), keeping about this many
    /// MiB of entries, so compacted segments are recycled as the next ones. `None`: no
    /// compaction (every segment is a new file).
    pub retain_mib: Option<usize>,
}

/// Raw-disk figures from the same directory.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RawDisk {
    /// `fdatasync` calls per second after a 4 KiB overwrite inside an already-written file.
    pub fsync_per_sec: f64,
    /// The same after a 4 KiB `O_DIRECT` overwrite (as the log writes by default); `None`
    /// where `O_DIRECT` is refused.
    pub direct_fsync_per_sec: Option<f64>,
    /// Sequential write bandwidth (1 MiB writes, one `fdatasync` at the end), MiB/s.
    pub seq_mib_per_sec: f64,
    /// Entries per second of a raw loop writing the same bytes per batch + `fdatasync` into a
    /// pre-zeroed file (only for batches above 1).
    pub batch_entries_per_sec: Option<f64>,
    /// The same loop appending to a fresh file (each sync also extends it).
    pub batch_extending_entries_per_sec: Option<f64>,
    /// The same loop into a new pre-zeroed 64 MiB file per 64 MiB written, each zero-filled by
    /// a second thread while the loop writes the one before: the raw model of a log that only
    /// grows ([`raw::Space::ZeroFilledAhead`]).
    pub batch_zero_fill_entries_per_sec: Option<f64>,
}

/// The benchmark's result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Entries appended.
    pub entries: u64,
    /// Payload bytes appended.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Entries per second.
    pub entries_per_sec: f64,
    /// Payload MiB per second.
    pub mib_per_sec: f64,
    /// `fdatasync` calls that made appends durable.
    pub fsyncs: u64,
    /// Entries per `fdatasync`.
    pub entries_per_fsync: f64,
    /// Median latency of one append call, µs.
    pub p50_us: f64,
    /// 99th percentile latency of one append call, µs.
    pub p99_us: f64,
    /// Raw `fdatasync` rate (4 KiB overwrite), per second.
    pub raw_fsync_per_sec: f64,
    /// Raw `fdatasync` rate after a 4 KiB `O_DIRECT` overwrite, per second.
    pub raw_direct_fsync_per_sec: Option<f64>,
    /// Raw sequential write, MiB/s.
    pub raw_seq_mib_per_sec: f64,
    /// Raw write+fdatasync loop over the same batches into a pre-zeroed file, entries/s
    /// (batches above 1).
    pub raw_batch_entries_per_sec: Option<f64>,
    /// The same raw loop appending to a fresh file, entries/s.
    pub raw_batch_extending_entries_per_sec: Option<f64>,
    /// The same raw loop into new files zero-filled beside it, entries/s.
    pub raw_batch_zero_fill_entries_per_sec: Option<f64>,
    /// Append calls per second ÷ raw fsync rate (durable single appends).
    pub ratio_calls_to_raw_fsync: f64,
    /// Append calls per second ÷ raw direct-write fsync rate.
    pub ratio_calls_to_raw_direct_fsync: Option<f64>,
    /// MiB/s ÷ raw sequential MiB/s.
    pub ratio_mib_to_raw_seq: f64,
    /// Entries/s ÷ raw batch loop (pre-zeroed file) entries/s.
    pub ratio_entries_to_raw_batch: Option<f64>,
    /// Entries/s ÷ raw batch loop (extending a fresh file) entries/s.
    pub ratio_entries_to_raw_batch_extending: Option<f64>,
    /// Entries/s ÷ raw batch loop (new files zero-filled beside it) entries/s.
    pub ratio_entries_to_raw_batch_zero_fill: Option<f64>,
    /// Writers, entry size, batch and sync mode, for the record.
    pub writers: usize,
    /// Bytes per entry.
    pub entry_bytes: usize,
    /// Entries per call.
    pub batch: usize,
    /// Sync mode name.
    pub sync: String,
    /// MiB in the log before the measured run.
    pub prefill_mib: usize,
    /// Entries in the log at the end (prefill included).
    pub log_entries: u64,
    /// The compaction policy ([`BenchConfig::retain_mib`]).
    pub retain_mib: Option<usize>,
    /// Segments compacted during the run.
    pub segments_compacted: u64,
    /// Segment files reused (recycled) during the run instead of written anew.
    pub segments_recycled: u64,
    /// Anonymous resident memory of the process at the end, MiB (the index, buffers).
    pub rss_anon_mib: f64,
    /// File-backed resident memory at the end, MiB (mapped segments; reclaimable page cache).
    pub rss_file_mib: f64,
}

/// Measures the raw disk in `dir`: the overwrite `fdatasync` rate, sequential bandwidth, and
/// (batches above 1) a write+sync loop over the same bytes per call as the batches.
pub fn raw_disk(dir: &Path, entry_bytes: usize, batch: usize) -> Result<RawDisk> {
    let budget = Duration::from_millis(1500);
    // The same bytes per call as a batch of framed entries (4 bytes of framing each).
    let call_bytes = batch * (entry_bytes + 4);
    let batch_loop = |space| -> Result<Option<f64>> {
        Ok(if batch > 1 {
            let calls = raw::write_sync_loop(dir, call_bytes, 1, Until::Elapsed(budget), space)?;
            Some(calls * batch as f64)
        } else {
            None
        })
    };
    Ok(RawDisk {
        fsync_per_sec: raw::overwrite_fsync_rate(dir, 1, budget)?,
        direct_fsync_per_sec: if batch == 1 {
            raw::direct_overwrite_fsync_rate(dir, budget)?
        } else {
            None
        },
        seq_mib_per_sec: raw::seq_write_mib_per_sec(dir, 256)?,
        batch_entries_per_sec: batch_loop(Space::Reused)?,
        batch_extending_entries_per_sec: batch_loop(Space::Extending)?,
        batch_zero_fill_entries_per_sec: batch_loop(Space::ZeroFilledAhead)?,
    })
}

/// Runs the benchmark. `progress` is called now and then with the entries done so far.
pub fn run(cfg: &BenchConfig, progress: &(dyn Fn(u64) + Sync)) -> Result<BenchResult> {
    if cfg.writers == 0 || cfg.batch == 0 || cfg.entry_bytes == 0 {
        return Err(Error::Invalid(
            "writers, batch and entry size must be positive".into(),
        ));
    }
    // The raw disk first, then let its writeback settle so it does not slow paxwal's run.
    let raw = if cfg.raw {
        let r = raw_disk(&cfg.dir, cfg.entry_bytes, cfg.batch)?;
        settle();
        r
    } else {
        RawDisk::default()
    };
    let log_dir = cfg.dir.join(format!("paxwal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&log_dir);
    let wal = Arc::new(Wal::open(
        &log_dir,
        Options {
            sync: cfg.sync,
            zero_fill: cfg.zero_fill,
            direct_writes: !cfg.buffered,
            spin_wait_max: if cfg.no_spin {
                std::time::Duration::ZERO
            } else {
                Options::default().spin_wait_max
            },
            ..Options::default()
        },
    )?);
    if cfg.prefill_mib > 0 {
        let e = vec![0x7eu8; 64 << 10];
        let batch: Vec<&[u8]> = (0..16).map(|_| &e[..]).collect();
        for _ in 0..cfg.prefill_mib {
            wal.submit_batch(batch.iter())?;
        }
        wal.sync()?;
        settle();
    }
    let prefilled = wal.last_lsn().0;
    // Let the background preparer make the next segment before timing starts.
    std::thread::sleep(Duration::from_millis(200));
    let target = cfg.entries.unwrap_or(u64::MAX);
    let deadline = cfg.seconds.map(Duration::from_secs_f64);
    let taken = Arc::new(AtomicU64::new(0));
    let compacted = AtomicU64::new(0);
    let retain_entries = cfg
        .retain_mib
        .map(|m| ((m as u64) << 20) / cfg.entry_bytes as u64);
    let recycled_before = wal.stats().segments_recycled;
    let start = Instant::now();
    let results: Vec<Result<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.writers)
            .map(|w| {
                let wal = wal.clone();
                let taken = taken.clone();
                let compacted = &compacted;
                s.spawn(move || -> Result<Vec<u64>> {
                    let entry: Vec<u8> = (0..cfg.entry_bytes).map(|i| (i + w) as u8).collect();
                    let batch: Vec<&[u8]> = (0..cfg.batch).map(|_| &entry[..]).collect();
                    let mut lat = Vec::new();
                    loop {
                        let got = taken.fetch_add(cfg.batch as u64, Ordering::Relaxed);
                        if got >= target || deadline.is_some_and(|d| start.elapsed() >= d) {
                            break;
                        }
                        let n = (target - got).min(cfg.batch as u64) as usize;
                        let t = Instant::now();
                        if n == 1 {
                            wal.append(batch[0])?;
                        } else {
                            wal.append_batch(&batch[..n])?;
                        }
                        lat.push(t.elapsed().as_nanos() as u64);
                        // Writer 0 compacts (timed with the run, as a snapshotting user's
                        // compaction would be).
                        if let (0, Some(keep)) = (w, retain_entries) {
                            let last = wal.last_lsn().0;
                            if last.saturating_sub(wal.first_lsn().0) > keep {
                                let n = wal.compact_before(Lsn(last - keep))?;
                                compacted.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }
                        if w == 0 && lat.len() % 64 == 0 {
                            progress(got.min(target));
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a writer panicked".into())))
            })
            .collect()
    });
    let mut lat = Vec::new();
    for r in results {
        lat.extend(r?);
    }
    wal.sync()?;
    let seconds = start.elapsed().as_secs_f64();
    let log_entries = wal.last_lsn().0;
    let entries = log_entries - prefilled;
    let (rss_anon_mib, rss_file_mib) = rss_mib();
    let stats = wal.stats();
    let fsyncs = stats.fsyncs;
    let segments_recycled = stats.segments_recycled - recycled_before;
    progress(entries);
    match Arc::try_unwrap(wal) {
        Ok(w) => w.close()?,
        Err(_) => return Err(Error::Invalid("log still shared".into())),
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    lat.sort_unstable();
    let bytes = entries * cfg.entry_bytes as u64;
    let entries_per_sec = entries as f64 / seconds;
    let mib_per_sec = bytes as f64 / (1 << 20) as f64 / seconds;
    let calls_per_sec = lat.len() as f64 / seconds;
    Ok(BenchResult {
        entries,
        bytes,
        seconds,
        entries_per_sec,
        mib_per_sec,
        fsyncs,
        entries_per_fsync: ratio(entries as f64, fsyncs as f64),
        p50_us: percentile_us(&lat, 0.50),
        p99_us: percentile_us(&lat, 0.99),
        raw_fsync_per_sec: raw.fsync_per_sec,
        raw_direct_fsync_per_sec: raw.direct_fsync_per_sec,
        raw_seq_mib_per_sec: raw.seq_mib_per_sec,
        raw_batch_entries_per_sec: raw.batch_entries_per_sec,
        raw_batch_extending_entries_per_sec: raw.batch_extending_entries_per_sec,
        ratio_calls_to_raw_fsync: ratio(calls_per_sec, raw.fsync_per_sec),
        ratio_calls_to_raw_direct_fsync: raw.direct_fsync_per_sec.map(|r| ratio(calls_per_sec, r)),
        ratio_mib_to_raw_seq: ratio(mib_per_sec, raw.seq_mib_per_sec),
        ratio_entries_to_raw_batch: raw.batch_entries_per_sec.map(|r| ratio(entries_per_sec, r)),
        ratio_entries_to_raw_batch_extending: raw
            .batch_extending_entries_per_sec
            .map(|r| ratio(entries_per_sec, r)),
        raw_batch_zero_fill_entries_per_sec: raw.batch_zero_fill_entries_per_sec,
        ratio_entries_to_raw_batch_zero_fill: raw
            .batch_zero_fill_entries_per_sec
            .map(|r| ratio(entries_per_sec, r)),
        writers: cfg.writers,
        entry_bytes: cfg.entry_bytes,
        batch: cfg.batch,
        sync: match cfg.sync {
            SyncMode::Always => "always".into(),
            SyncMode::Batched { .. } => "batched".into(),
            SyncMode::Never { .. } => "never".into(),
        },
        prefill_mib: cfg.prefill_mib,
        log_entries,
        retain_mib: cfg.retain_mib,
        segments_compacted: compacted.into_inner(),
        segments_recycled,
        rss_anon_mib,
        rss_file_mib,
    })
}

/// Reopen timings of a log of `mib` MiB of 4 KiB entries.
#[derive(Clone, Debug, Serialize)]
pub struct ReopenResult {
    /// Size of the log's data, MiB.
    pub mib: usize,
    /// Warm-cache opens (every checksum verified), seconds, fastest first.
    pub warm_open_seconds: Vec<f64>,
    /// Cold-cache open, seconds (when the page cache could be dropped).
    pub cold_open_seconds: Option<f64>,
    /// Cold-cache plain read of the same files, MiB/s.
    pub cold_raw_read_mib_per_sec: Option<f64>,
    /// Cold open throughput ÷ cold raw read throughput.
    pub ratio_cold_open_to_raw_read: Option<f64>,
}

fn drop_caches() -> bool {
    // Needs root; where it fails the cold figures are left out.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", b"3").is_ok()
}

/// Builds a log of `mib` MiB of 4 KiB entries in `dir`, then times reopening it.
pub fn reopen(dir: &Path, mib: usize) -> Result<ReopenResult> {
    let log_dir = dir.join(format!("paxwal-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&log_dir);
    {
        let wal = Wal::open(
            &log_dir,
            Options {
                sync: SyncMode::Never {
                    max_delay: Duration::from_millis(10),
                },
                ..Options::default()
            },
        )?;
        let e = vec![0x42u8; 4096];
        let batch: Vec<&[u8]> = (0..256).map(|_| &e[..]).collect();
        for _ in 0..mib {
            wal.submit_batch(batch.iter())?;
        }
        wal.close()?;
    }
    let expect = (mib * 256) as u64;
    let mut warm = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let wal = Wal::open(&log_dir, Options::default())?;
        warm.push(t.elapsed().as_secs_f64());
        if wal.last_lsn().0 != expect {
            return Err(Error::Invalid(format!(
                "reopened {} entries, wrote {expect}",
                wal.last_lsn()
            )));
        }
        wal.close()?;
    }
    warm.sort_by(f64::total_cmp);
    let (mut cold, mut raw) = (None, None);
    if drop_caches() {
        let t = Instant::now();
        let wal = Wal::open(&log_dir, Options::default())?;
        cold = Some(t.elapsed().as_secs_f64());
        wal.close()?;
        if drop_caches() {
            let t = Instant::now();
            let mut bytes = 0u64;
            for e in std::fs::read_dir(&log_dir).map_err(|e| Error::io("list", &log_dir, e))? {
                let p = e.map_err(|e| Error::io("list", &log_dir, e))?.path();
                bytes += std::fs::read(&p)
                    .map_err(|e| Error::io("read", &p, e))?
                    .len() as u64;
            }
            raw = Some(bytes as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64());
        }
    }
    let files_mib: f64 = std::fs::read_dir(&log_dir)
        .map_err(|e| Error::io("list", &log_dir, e))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len() as f64 / (1 << 20) as f64)
        .sum();
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok(ReopenResult {
        mib,
        warm_open_seconds: warm,
        cold_open_seconds: cold,
        cold_raw_read_mib_per_sec: raw,
        ratio_cold_open_to_raw_read: match (cold, raw) {
            (Some(c), Some(r)) => Some(files_mib / c / r),
            _ => None,
        },
    })
}

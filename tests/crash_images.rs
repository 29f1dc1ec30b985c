//! Crash images from the simulated disk, over the real WAL code.
//!
//! For small workloads, the disk is stopped after every possible number of I/O operations (every
//! cut point); for each cut, every subset of the writes not yet synced (all subsets when few,
//! a structured selection otherwise), every tear of each unsynced write at several bytes with
//! the rest left old or filled with garbage, and every prefix of the unsynced directory
//! operations are turned into a disk image a reboot could find. Each image must open (default
//! recovery mode) to a gap-free prefix holding every acknowledged entry with its exact bytes.
//!
//! The same enumeration must fail for each planted bug: acknowledging before `fdatasync`,
//! skipping the checksum check in recovery, and not syncing the directory after creating a
//! segment.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use paxwal::wal::simdisk::{CrashSpec, Faults, SimDisk, TearFill};
use paxwal::wal::{Options, PlantedBugs, Prealloc, SyncMode, Wal};
use paxwal::Lsn;

const DIR: &str = "/log";

fn payload(lsn: u64) -> Vec<u8> {
    if lsn % 7 == 3 {
        // Whole zero sectors by intent: recovery must not take them for a torn write.
        return vec![0u8; 1500];
    }
    let len = (lsn * 997 % 2900 + 1) as usize;
    (0..len)
        .map(|i| (lsn as usize * 31 + i) as u8 | 1)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// `SyncMode::Always`: appends and batches, one compaction, two rotations.
    Always,
    /// `SyncMode::Never` with explicit waits: several unsynced frames between syncs.
    Grouped,
    /// As `Always`, with larger segments (rotations fall elsewhere).
    AlwaysWide,
    /// As `Grouped`, with larger segments.
    GroupedWide,
    /// As `Always`, with direct writes off: every group goes through the page cache.
    AlwaysBuffered,
    /// As `Always`, longer, compacting three times: later segments are recycled files whose
    /// old frames lie behind the new data.
    Recycling,
}

impl Workload {
    fn steps(self) -> u64 {
        match self {
            Workload::Recycling => 110,
            _ => 48,
        }
    }

    /// Compactions: (step, LSN) pairs.
    fn compactions(self) -> &'static [(u64, u64)] {
        match self {
            Workload::Recycling => &[(30, 20), (60, 55), (85, 85)],
            _ => &[(20, 8)],
        }
    }

    /// The highest compaction point: a log may never start beyond it.
    fn first_bound(self) -> u64 {
        self.compactions().iter().map(|c| c.1).max().unwrap_or(1)
    }
}

fn options(w: Workload, planted: PlantedBugs) -> Options {
    Options {
        sync: match w {
            Workload::Always
            | Workload::AlwaysBuffered
            | Workload::AlwaysWide
            | Workload::Recycling => SyncMode::Always,
            Workload::Grouped | Workload::GroupedWide => SyncMode::Never {
                max_delay: Duration::from_secs(3600),
            },
        },
        prealloc: Prealloc::Inline,
        segment_bytes: match w {
            Workload::Always
            | Workload::AlwaysBuffered
            | Workload::Grouped
            | Workload::Recycling => 64 << 10,
            Workload::AlwaysWide | Workload::GroupedWide => 96 << 10,
        },
        batch_bytes_max: 8 << 10,
        group_wait_max: Duration::ZERO,
        direct_writes: w != Workload::AlwaysBuffered,
        planted,
        ..Options::default()
    }
}

/// Runs the workload until it ends or the disk stops; returns the highest acknowledged LSN.
fn run(disk: &SimDisk, w: Workload, planted: PlantedBugs) -> u64 {
    let Ok(wal) = Wal::open_with(Arc::new(disk.clone()), DIR, options(w, planted)) else {
        return 0;
    };
    let mut acked = 0u64;
    let mut next = 1u64;
    for i in 0..w.steps() {
        let r = match w {
            Workload::Always
            | Workload::AlwaysBuffered
            | Workload::AlwaysWide
            | Workload::Recycling => {
                if i % 5 == 4 {
                    let batch: Vec<Vec<u8>> = (next..next + 3).map(payload).collect();
                    wal.append_batch(batch).map(|r| r.end().0)
                } else {
                    wal.append(&payload(next)).map(|l| l.0)
                }
            }
            Workload::Grouped | Workload::GroupedWide => {
                // Submit, sometimes force a write without a sync (a read does), and wait for
                // durability only every third step.
                let t = wal.submit_batch((next..next + 2).map(payload));
                match t {
                    Ok(t) => {
                        if i % 2 == 0 {
                            let _ = wal.read(t.last);
                        }
                        if i % 3 == 2 {
                            wal.wait_durable(&t).map(|_| t.last.0)
                        } else {
                            next = t.last.0 + 1;
                            continue;
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(last) => {
                acked = last;
                next = last + 1;
            }
            Err(_) => return acked,
        }
        for &(step, lsn) in w.compactions() {
            if i == step && wal.compact_before(Lsn(lsn)).is_err() {
                return acked;
            }
        }
    }
    acked
}

fn specs(disk: &SimDisk) -> Vec<CrashSpec> {
    let lens = disk.pending_write_lens();
    let n = lens.len();
    let m = disk.pending_namespace_ops();
    let mut keeps: Vec<Vec<bool>> = Vec::new();
    if n <= 8 {
        for mask in 0..1u32 << n {
            keeps.push((0..n).map(|j| mask >> j & 1 == 1).collect());
        }
    } else {
        keeps.push(vec![false; n]);
        keeps.push(vec![true; n]);
        for j in 0..n {
            keeps.push((0..n).map(|x| x != j).collect());
            keeps.push((0..n).map(|x| x < j).collect());
        }
    }
    let mut tears = Vec::new();
    for (j, &len) in lens.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let mut points = vec![
            1,
            30,
            55,
            56,
            57,
            100,
            511,
            512,
            513,
            len / 4,
            len / 2,
            3 * len / 4,
            len.saturating_sub(8),
            len.saturating_sub(1),
        ];
        points.retain(|&p| p > 0 && p < len);
        points.sort_unstable();
        points.dedup();
        for p in points {
            for fill in [TearFill::Old, TearFill::Garbage(j as u64 * 7919 + p as u64)] {
                tears.push(((0..n).map(|x| x < j).collect::<Vec<bool>>(), (j, p, fill)));
            }
        }
    }
    let ns_variants: Vec<usize> = if m <= 4 {
        (0..=m).collect()
    } else {
        vec![0, m / 2, m]
    };
    let mut out = Vec::new();
    for &ns in &ns_variants {
        for k in &keeps {
            out.push(CrashSpec {
                keep: k.clone(),
                tear: None,
                namespace_ops_kept: ns,
            });
        }
        for (k, t) in &tears {
            out.push(CrashSpec {
                keep: k.clone(),
                tear: Some(*t),
                namespace_ops_kept: ns,
            });
        }
    }
    out
}

/// Checks one crash image; returns a description of the violation, if any.
fn check(image: SimDisk, acked: u64, w: Workload, planted: PlantedBugs) -> Option<String> {
    // A panic anywhere in recovery or reads is a violation too.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check_inner(image, acked, w, planted)
    }))
    .unwrap_or_else(|_| Some("panicked".to_owned()))
}

fn check_inner(image: SimDisk, acked: u64, w: Workload, planted: PlantedBugs) -> Option<String> {
    let wal = match Wal::open_with(Arc::new(image), Path::new(DIR), options(w, planted)) {
        Ok(w) => w,
        Err(e) => return Some(format!("open failed: {e}")),
    };
    let first = wal.first_lsn().0;
    let last = wal.last_lsn().0;
    if last < acked {
        return Some(format!(
            "acknowledged LSN {acked} lost (log ends at {last})"
        ));
    }
    if first > w.first_bound() {
        return Some(format!(
            "log starts at {first}, beyond the compaction point"
        ));
    }
    for lsn in first..=last {
        match wal.read(Lsn(lsn)) {
            Ok(e) if *e == payload(lsn)[..] => {}
            Ok(_) => return Some(format!("LSN {lsn} reads wrong bytes")),
            Err(e) => return Some(format!("LSN {lsn} unreadable: {e}")),
        }
    }
    None
}

struct Sweep {
    images: usize,
    cuts: u64,
    failures: Vec<String>,
}

fn sweep(w: Workload, planted: PlantedBugs, cut_step: u64) -> Sweep {
    let full = SimDisk::new();
    run(&full, w, planted);
    let total_ops = full.ops();
    let mut s = Sweep {
        images: 0,
        cuts: 0,
        failures: Vec::new(),
    };
    let mut cut = 0;
    while cut <= total_ops {
        let disk = SimDisk::new();
        disk.set_faults(Faults {
            stop_after_ops: Some(cut),
            ..Faults::default()
        });
        let acked = run(&disk, w, planted);
        s.cuts += 1;
        for spec in specs(&disk) {
            s.images += 1;
            if let Some(v) = check(disk.crash(&spec), acked, w, planted) {
                if s.failures.len() < 5 {
                    s.failures.push(format!("{w:?} cut {cut}, {spec:?}: {v}"));
                } else {
                    s.failures.push(String::new());
                }
            }
        }
        cut += cut_step;
    }
    s
}

#[test]
fn every_crash_image_opens_to_a_prefix_holding_every_acknowledged_entry() {
    let mut images = 0;
    for w in [
        Workload::Always,
        Workload::AlwaysBuffered,
        Workload::Grouped,
        Workload::AlwaysWide,
        Workload::GroupedWide,
        Workload::Recycling,
    ] {
        let s = sweep(w, PlantedBugs::default(), 1);
        eprintln!("{w:?}: {} cut points, {} crash images", s.cuts, s.images);
        assert!(
            s.failures.is_empty(),
            "{} of {} images violate the contract, e.g.:\n{}",
            s.failures.len(),
            s.images,
            s.failures[..s.failures.len().min(5)].join("\n")
        );
        images += s.images;
    }
    assert!(images >= 10_000, "only {images} crash images");
}

fn assert_caught(planted: PlantedBugs, w: Workload) {
    let s = sweep(w, planted, 3);
    eprintln!(
        "{planted:?} on {w:?}: {} of {} images caught; first: {}",
        s.failures.len(),
        s.images,
        s.failures.first().map_or("-", String::as_str)
    );
    assert!(
        !s.failures.is_empty(),
        "planted bug {planted:?} went unnoticed over {} images",
        s.images
    );
}

#[test]
fn checker_catches_ack_before_fsync() {
    assert_caught(
        PlantedBugs {
            ack_before_fsync: true,
            ..PlantedBugs::default()
        },
        Workload::Always,
    );
}

#[test]
fn checker_catches_skipped_crc_check() {
    assert_caught(
        PlantedBugs {
            skip_crc_check: true,
            ..PlantedBugs::default()
        },
        Workload::Always,
    );
}

#[test]
fn checker_catches_accepting_a_recycled_files_stale_frames() {
    assert_caught(
        PlantedBugs {
            accept_stale_frames: true,
            ..PlantedBugs::default()
        },
        Workload::Recycling,
    );
}

/// The recycling workload really reuses files: fewer segment files are ever created than
/// segments are used, and recovery of the final image reads stale frames behind the tail.
#[test]
fn recycling_workload_reuses_compacted_files() {
    let disk = SimDisk::new();
    let acked = run(&disk, Workload::Recycling, PlantedBugs::default());
    let wal = Wal::open_with(
        Arc::new(disk.clone()),
        Path::new(DIR),
        options(Workload::Recycling, PlantedBugs::default()),
    )
    .unwrap();
    assert!(wal.last_lsn().0 >= acked);
    assert!(
        wal.recovery_report().torn.is_none(),
        "a clean recycled tail read as torn"
    );
    let recycled = disk
        .file_names()
        .iter()
        .filter_map(|p| disk.read_file(p))
        .filter(|b| b.len() > 36 && b[32] & 1 == 1)
        .count();
    assert!(
        recycled >= 1,
        "no segment of the workload is a recycled file"
    );
}

#[test]
fn checker_catches_missing_directory_sync() {
    assert_caught(
        PlantedBugs {
            no_dir_sync: true,
            ..PlantedBugs::default()
        },
        Workload::Always,
    );
}

/// A direct write the device refuses (EINVAL: `O_DIRECT` accepted at open, this alignment not)
/// neither fails the append nor poisons the log: the group is written through the page cache,
/// and what was acknowledged survives a crash.
#[test]
fn a_refused_direct_write_falls_back_to_the_page_cache() {
    let disk = SimDisk::new();
    disk.set_faults(Faults {
        refuse_direct_writes: true,
        ..Faults::default()
    });
    let wal = Wal::open_with(
        Arc::new(disk.clone()),
        DIR,
        options(Workload::Always, PlantedBugs::default()),
    )
    .unwrap();
    for lsn in 1..=40u64 {
        assert_eq!(wal.append(&payload(lsn)).unwrap(), Lsn(lsn));
    }
    drop(wal);
    let image = disk.crash(&CrashSpec::default());
    assert_eq!(
        check(image, 40, Workload::Always, PlantedBugs::default()),
        None
    );
}

//! The log's fuzz target bodies, as plain functions: the cargo-fuzz targets in `fuzz/` call
//! them, and `tests/fuzz_bodies.rs` runs them over seeded random inputs on stable Rust so CI
//! exercises them. Each returns `Err(description)` on a contract violation; a panic is a
//! violation too. They use the log alone; bodies that span layers (the decoders of every
//! layer) are in `crate::fuzzing`.

use std::path::Path;
use std::sync::Arc;

use super::codec::{FrameHeader, Meta, SegmentHeader, META_LEN, SEGMENT_HEADER_LEN};
use super::recovery::scan;
use super::simdisk::{CrashSpec, SimDisk, TearFill};
use super::{Options, PlantedBugs, Prealloc, RecoveryMode, SyncMode, Wal};
use crate::error::Error;
use crate::types::{Lsn, SegmentId};

const DIR: &str = "/fuzz";

/// The log's decoders over arbitrary bytes (frame, segment header, META, segment scan): never
/// panic; whatever decodes re-encodes to the same bytes.
pub fn log_decoders(data: &[u8]) -> Result<(), String> {
    if let Ok(h) = FrameHeader::decode_header(data) {
        if data.len() >= h.frame_len() {
            let _ = h.check_body(&data[..h.frame_len()], 4096);
        }
    }
    if let Ok(h) = SegmentHeader::decode(data) {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        h.encode(&mut b);
        // Reserved bytes are covered by the crc, so a decoded header is exactly this.
        if b[..] != data[..SEGMENT_HEADER_LEN] {
            return Err("segment header does not re-encode to its bytes".into());
        }
    }
    if data.len() == META_LEN {
        if let Ok(m) = Meta::decode(data) {
            if m.encode()[..] != data[..] {
                return Err("META does not re-encode to its bytes".into());
            }
        }
    }
    let _ = scan(data, SegmentId(1), false);
    let _ = scan(data, SegmentId(1), true);
    Ok(())
}

fn entry(i: u64) -> Vec<u8> {
    (0..(i * 37 % 700 + 1))
        .map(|j| (i * 7 + j) as u8 | 1)
        .collect()
}

fn small_opts() -> Options {
    Options {
        prealloc: Prealloc::Inline,
        segment_bytes: 64 << 10,
        batch_bytes_max: 8 << 10,
        ..Options::default()
    }
}

/// Recovery over edits of a valid log: the input is a list of edits (truncate, append bytes,
/// overwrite, zero) to its files. Opening in every mode never panics; in the default mode the
/// log either opens to a prefix of the original entries, byte for byte, or refuses with a
/// clear error.
pub fn recovery_edits(data: &[u8]) -> Result<(), String> {
    let disk = SimDisk::new();
    let wal =
        Wal::open_with(Arc::new(disk.clone()), DIR, small_opts()).map_err(|e| e.to_string())?;
    let n = 120u64;
    for i in 1..=n {
        wal.append(&entry(i)).map_err(|e| e.to_string())?;
    }
    wal.close().map_err(|e| e.to_string())?;
    let files = disk.file_names();
    let mut it = data.iter().copied();
    while let (Some(op), Some(f), Some(a), Some(b)) = (it.next(), it.next(), it.next(), it.next()) {
        let path = &files[f as usize % files.len()];
        let Some(mut bytes) = disk.read_file(path) else {
            continue;
        };
        let at = (usize::from(a) << 8 | usize::from(b)) * 3 % (bytes.len() + 1);
        match op % 4 {
            0 => bytes.truncate(at),
            1 => {
                let k = usize::from(it.next().unwrap_or(0));
                bytes.extend(it.by_ref().take(k));
            }
            2 => {
                let k = usize::from(it.next().unwrap_or(0));
                for (j, x) in it.by_ref().take(k).enumerate() {
                    if let Some(slot) = bytes.get_mut(at + j) {
                        *slot = x;
                    }
                }
            }
            _ => {
                let k = usize::from(it.next().unwrap_or(0)) * 16;
                let end = (at + k).min(bytes.len());
                bytes[at..end].fill(0);
            }
        }
        disk.write_file(path, bytes);
    }
    for mode in [
        RecoveryMode::Strict,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupted,
        RecoveryMode::TolerateTornTail,
    ] {
        // Each mode on its own copy: opening may repair files.
        let copy = disk.process_crash();
        let opts = Options {
            recovery: mode,
            ..small_opts()
        };
        let wal = match Wal::open_with(Arc::new(copy), DIR, opts) {
            Ok(w) => w,
            Err(
                Error::Corruption { .. }
                | Error::CorruptFile { .. }
                | Error::TornTail { .. }
                | Error::VersionTooNew { .. },
            ) => continue,
            Err(e) => return Err(format!("{mode:?}: open failed without naming damage: {e}")),
        };
        if wal.last_lsn() > Lsn(n) {
            return Err(format!("{mode:?}: log grew to {}", wal.last_lsn()));
        }
        for lsn in wal.first_lsn().0..=wal.last_lsn().0 {
            match wal.read(Lsn(lsn)) {
                Ok(e) if *e == entry(lsn)[..] => {}
                Ok(_) => return Err(format!("{mode:?}: LSN {lsn} reads changed bytes")),
                Err(Error::Skipped { .. }) if mode == RecoveryMode::SkipCorrupted => {}
                Err(e) => return Err(format!("{mode:?}: LSN {lsn}: {e}")),
            }
        }
        // The opened log takes appends.
        if mode != RecoveryMode::Strict {
            wal.append(b"after")
                .map_err(|e| format!("{mode:?}: append after recovery: {e}"))?;
        }
    }
    Ok(())
}

/// WAL operations with crash points against an in-memory model. Input bytes drive appends,
/// batches, waits, compactions, and crashes that keep a chosen subset of unsynced writes (one
/// possibly torn). After every crash the log must equal a prefix of the model holding every
/// acknowledged entry.
pub fn ops_vs_model(data: &[u8], planted: PlantedBugs) -> Result<(), String> {
    let mut disk = SimDisk::new();
    let opts = Options {
        sync: SyncMode::Never {
            max_delay: std::time::Duration::from_secs(3600),
        },
        planted,
        ..small_opts()
    };
    let open = |d: &SimDisk| Wal::open_with(Arc::new(d.clone()), Path::new(DIR), opts.clone());
    let mut wal = open(&disk).map_err(|e| e.to_string())?;
    // The model: every entry written, in LSN order from `base`, and how far is acknowledged.
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut acked = 0usize;
    let mut first_allowed = Lsn(1);
    let mut it = data.iter().copied();
    let mut counter = 0u64;
    while let Some(op) = it.next() {
        let arg = u64::from(it.next().unwrap_or(0));
        match op % 6 {
            0 | 1 => {
                counter += 1;
                let e = entry(counter * 13 + arg);
                let lsn = wal.submit(&e).map_err(|e| e.to_string())?;
                if lsn.last.0 as usize != model.len() + 1 {
                    return Err(format!(
                        "LSN {} handed out, model expects {}",
                        lsn.last,
                        model.len() + 1
                    ));
                }
                model.push(e);
            }
            2 => {
                let k = arg % 9 + 1;
                let es: Vec<Vec<u8>> = (0..k)
                    .map(|j| {
                        counter += 1;
                        entry(counter * 13 + j)
                    })
                    .collect();
                wal.submit_batch(&es).map_err(|e| e.to_string())?;
                model.extend(es);
            }
            3 => {
                wal.sync().map_err(|e| e.to_string())?;
                acked = model.len();
            }
            4 => {
                let to = Lsn(arg * 3 % (acked as u64 + 1) + 1);
                wal.compact_before(to).map_err(|e| e.to_string())?;
                first_allowed = first_allowed.max(to);
            }
            _ => {
                // Crash: keep a subset of unsynced writes chosen by the next byte, maybe tear one.
                drop(wal);
                let mask = it.next().unwrap_or(0);
                let n = disk.pending_writes();
                let lens = disk.pending_write_lens();
                let tear = (arg % 3 == 0 && n > 0).then(|| {
                    let i = (arg as usize / 3) % n;
                    (
                        i,
                        (arg as usize * 7) % (lens[i] + 1),
                        TearFill::Garbage(arg),
                    )
                });
                let spec = CrashSpec {
                    keep: (0..n).map(|j| mask >> (j % 8) & 1 == 1).collect(),
                    tear,
                    namespace_ops_kept: usize::from(mask) % (disk.pending_namespace_ops() + 1),
                };
                disk = disk.crash(&spec);
                wal = open(&disk).map_err(|e| format!("reopen after crash: {e}"))?;
                let last = wal.last_lsn().0 as usize;
                if last < acked {
                    return Err(format!("acknowledged LSN {acked} lost; log ends at {last}"));
                }
                if wal.first_lsn() > first_allowed.max(Lsn(1)) && wal.first_lsn().0 as usize <= last
                {
                    return Err(format!(
                        "log starts at {}, compaction asked for {first_allowed}",
                        wal.first_lsn()
                    ));
                }
                for lsn in wal.first_lsn().0..=last as u64 {
                    let got = wal.read(Lsn(lsn)).map_err(|e| format!("LSN {lsn}: {e}"))?;
                    if model.get(lsn as usize - 1).is_none_or(|m| m[..] != *got) {
                        return Err(format!("LSN {lsn} is not what was written"));
                    }
                }
                model.truncate(last);
                acked = last;
            }
        }
    }
    Ok(())
}

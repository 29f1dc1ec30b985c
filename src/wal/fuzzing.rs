//! The log's fuzz target bodies, as plain functions: the cargo-fuzz targets in `fuzz/` call
//! them, and `tests/fuzz_bodies.rs` runs them over seeded random inputs on stable Rust so CI
//! exercises them. Each returns `Err(description)` on a contract violation; a panic is a
//! violation too. They use the log alone; bodies that span layers (the decoders of every
//! layer) are in `crate::fuzzing`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::codec::{
    FrameHeader, Meta, SegmentHeader, META_LEN, SEGMENT_HEADER_LEN, SEGMENT_RECYCLED,
};
use super::recovery::{parse_segment_name, scan, segment_name};
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

/// The base logs' entries, built once: `expected(lsn)` is `entry(lsn)` without rebuilding it
/// for every LSN every input checks.
fn expected(lsn: u64) -> std::borrow::Cow<'static, [u8]> {
    const CACHED: u64 = 512;
    static ENTRIES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    if lsn >= CACHED {
        return entry(lsn).into();
    }
    ENTRIES.get_or_init(|| (0..CACHED).map(entry).collect())[lsn as usize]
        .as_slice()
        .into()
}

fn small_opts() -> Options {
    Options {
        prealloc: Prealloc::Inline,
        segment_bytes: 64 << 10,
        batch_bytes_max: 8 << 10,
        ..Options::default()
    }
}

/// One base log for [`recovery_edits`]: its files, built once, and the entries it holds.
struct Base {
    /// Every file of the closed log (segments, orphans, META), sorted by path.
    files: Files,
    /// Options it was made with (recovery mode aside).
    opts: Options,
    /// First and last LSN the unedited log opens to.
    first: Lsn,
    last: Lsn,
}

/// How many base logs [`recovery_edits`] picks from (the input's first byte chooses).
pub const RECOVERY_BASES: usize = 3;

/// Appends entries `from..=to` (LSN = index; [`entry`] bytes) in synced batches of one to
/// eight, so frames hold one or several records and each batch ends on a block boundary.
fn fill(wal: &Wal, from: u64, to: u64) -> Result<(), String> {
    let mut i = from;
    while i <= to {
        let k = [1, 3, 8, 2, 5, 1, 7, 4][(i % 8) as usize].min(to + 1 - i);
        let r = wal
            .append_batch((i..i + k).map(entry))
            .map_err(|e| e.to_string())?;
        if r != (Lsn(i)..=Lsn(i + k - 1)) {
            return Err(format!("batch at LSN {i} handed {r:?}"));
        }
        i += k;
    }
    Ok(())
}

/// A log's files, sorted by path, each shared copy-on-write: an edit copies only the files it
/// changes, and the disks each input builds share the rest.
type Files = Vec<(PathBuf, Arc<Vec<u8>>)>;

fn snapshot(disk: &SimDisk) -> Files {
    disk.file_names()
        .into_iter()
        .filter_map(|p| disk.read_file(&p).map(|b| (p, Arc::new(b))))
        .collect()
}

fn segment_files(files: &[(PathBuf, Arc<Vec<u8>>)]) -> impl Iterator<Item = (SegmentId, &Vec<u8>)> {
    files.iter().filter_map(|(p, b)| {
        let id = parse_segment_name(p.file_name()?.to_str()?)?;
        Some((id, &**b))
    })
}

/// The base logs: (0) several segments, META's first segment 1; (1) compacted without
/// recycling, so META starts at a later segment and the first segments are gone; (2) compacted
/// with recycling, then appended to, so the active segment (and the one before it) are reused
/// files with the old segments' frames behind their tails, and compacted files not yet reused
/// lie below META's first segment.
fn build_bases() -> Result<Vec<Base>, String> {
    let mut bases = Vec::new();
    for kind in 0..RECOVERY_BASES {
        let opts = Options {
            recycle: kind == 2,
            ..small_opts()
        };
        let disk = SimDisk::new();
        let wal =
            Wal::open_with(Arc::new(disk.clone()), DIR, opts.clone()).map_err(|e| e.to_string())?;
        let last = match kind {
            0 => {
                fill(&wal, 1, 200)?;
                200
            }
            1 => {
                fill(&wal, 1, 200)?;
                let n = wal.compact_before(Lsn(100)).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("base 1: compaction deleted nothing".into());
                }
                fill(&wal, 201, 230)?;
                230
            }
            _ => {
                fill(&wal, 1, 200)?;
                let n = wal.compact_before(Lsn(150)).map_err(|e| e.to_string())?;
                if n < 2 {
                    return Err(format!("base 2: compaction deleted {n} segments, want 2+"));
                }
                fill(&wal, 201, 300)?;
                300
            }
        };
        let first = wal.first_lsn();
        if wal.last_lsn() != Lsn(last) {
            return Err(format!("base {kind}: log ends at {}", wal.last_lsn()));
        }
        wal.close().map_err(|e| e.to_string())?;
        let files = snapshot(&disk);
        let segs: Vec<_> = segment_files(&files).collect();
        if segs.len() < 3 {
            return Err(format!(
                "base {kind}: {} segment files, want 3+",
                segs.len()
            ));
        }
        let meta = files
            .iter()
            .find(|(p, _)| p.file_name().is_some_and(|n| n == "META"))
            .and_then(|(_, b)| Meta::decode(b).ok())
            .ok_or_else(|| format!("base {kind}: no valid META"))?;
        if (kind == 0) != (meta.first_segment == SegmentId(1)) {
            return Err(format!(
                "base {kind}: META starts at {}",
                meta.first_segment
            ));
        }
        if kind == 2 {
            // The active segment must be a reused file, or the base covers nothing new.
            let (_, active) = segs[segs.len() - 1];
            let recycled =
                SegmentHeader::decode(active).is_ok_and(|h| h.flags & SEGMENT_RECYCLED != 0);
            if !recycled {
                let hs: Vec<_> = segs
                    .iter()
                    .map(|(id, b)| {
                        (
                            id.0,
                            b.len(),
                            SegmentHeader::decode(b).map(|h| (h.id.0, h.flags)),
                        )
                    })
                    .collect();
                return Err(format!(
                    "base 2: the active segment is not a recycled file {hs:?} {:?}",
                    meta
                ));
            }
        }
        bases.push(Base {
            files,
            opts,
            first,
            last: Lsn(last),
        });
    }
    Ok(bases)
}

fn bases() -> Result<&'static [Base], String> {
    static BASES: OnceLock<Result<Vec<Base>, String>> = OnceLock::new();
    BASES
        .get_or_init(build_bases)
        .as_deref()
        .map_err(|e| format!("building the base logs: {e}"))
}

/// A signed step from one input byte: -128..=127.
fn delta(b: u8) -> i64 {
    i64::from(b as i8)
}

/// Applies the edits `data` encodes to `files`. Each edit is an op byte, a file byte and two
/// position bytes, then op-specific bytes.
fn apply_edits(files: &mut Files, data: &[u8]) {
    let mut it = data.iter().copied();
    while let (Some(op), Some(f), Some(a), Some(b)) = (it.next(), it.next(), it.next(), it.next()) {
        if files.is_empty() {
            return;
        }
        let fi = usize::from(f) % files.len();
        let pos16 = usize::from(a) << 8 | usize::from(b);
        let len = files[fi].1.len();
        let at = pos16 * 3 % (len + 1);
        match op % 10 {
            // Truncate.
            0 => Arc::make_mut(&mut files[fi].1).truncate(at),
            // Append bytes.
            1 => {
                let k = usize::from(it.next().unwrap_or(0));
                Arc::make_mut(&mut files[fi].1).extend(it.by_ref().take(k));
            }
            // Overwrite bytes.
            2 => {
                let k = usize::from(it.next().unwrap_or(0));
                let bytes = Arc::make_mut(&mut files[fi].1);
                for (j, x) in it.by_ref().take(k).enumerate() {
                    if let Some(slot) = bytes.get_mut(at + j) {
                        *slot = x;
                    }
                }
            }
            // Zero a range.
            3 => {
                let k = usize::from(it.next().unwrap_or(0)) * 16;
                let bytes = Arc::make_mut(&mut files[fi].1);
                let end = (at + k).min(bytes.len());
                bytes[at..end].fill(0);
            }
            // Flip one bit.
            4 => {
                let bit = it.next().unwrap_or(0);
                if let Some(x) = Arc::make_mut(&mut files[fi].1).get_mut(at) {
                    *x ^= 1 << (bit % 8);
                }
            }
            // A tail cut across segment boundaries: the segments, in id order, read as one
            // stream; from a point in it on, everything is zeroed, or the file holding the point
            // is cut there and every later segment removed, or everything is garbage.
            5 => {
                let how = it.next().unwrap_or(0);
                tail_cut(files, pos16, how);
            }
            // Delete a file.
            6 => {
                files.remove(fi);
            }
            // Duplicate a file: as the segment after the highest one, or over another file.
            7 => {
                let g = it.next().unwrap_or(0);
                let bytes = files[fi].1.clone();
                if g % 2 == 0 {
                    let next = segment_files(files).map(|(id, _)| id.0).max().unwrap_or(0) + 1;
                    let path = Path::new(DIR).join(segment_name(SegmentId(next)));
                    files.push((path, bytes));
                    files.sort_by(|x, y| x.0.cmp(&y.0));
                } else {
                    let gi = usize::from(g / 2) % files.len();
                    files[gi].1 = bytes;
                }
            }
            // Rewrite META with a valid checksum, its first segment and LSN moved.
            8 => {
                let path = Path::new(DIR).join("META");
                let i = match files.iter().position(|(p, _)| *p == path) {
                    Some(i) => i,
                    None => {
                        files.push((path, Arc::new(Vec::new())));
                        files.sort_by(|x, y| x.0.cmp(&y.0));
                        files
                            .iter()
                            .position(|(p, _)| p.ends_with("META"))
                            .unwrap_or(0)
                    }
                };
                let m = Meta::decode(&files[i].1).unwrap_or(Meta {
                    first_segment: SegmentId(1),
                    first_lsn: Lsn(1),
                });
                let m = Meta {
                    first_segment: SegmentId(m.first_segment.0.saturating_add_signed(delta(a) % 8)),
                    first_lsn: Lsn(m.first_lsn.0.saturating_add_signed(delta(b))),
                };
                files[i].1 = Arc::new(m.encode().to_vec());
            }
            // Rewrite a segment header with a valid checksum: id moved, flags changed.
            _ => {
                let flags = it.next().unwrap_or(0);
                if let Ok(h) = SegmentHeader::decode(&files[fi].1) {
                    let h = SegmentHeader {
                        id: SegmentId(h.id.0.saturating_add_signed(delta(a) % 8)),
                        flags: h.flags ^ u32::from(flags % 4),
                        segment_bytes: if b & 1 == 1 {
                            h.segment_bytes
                        } else {
                            h.segment_bytes.wrapping_add(u64::from(b) * 4096)
                        },
                        ..h
                    };
                    h.encode(Arc::make_mut(&mut files[fi].1).as_mut_slice());
                }
            }
        }
    }
}

fn tail_cut(files: &mut Files, pos16: usize, how: u8) {
    let mut segs: Vec<(SegmentId, usize)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, (p, _))| Some((parse_segment_name(p.file_name()?.to_str()?)?, i)))
        .collect();
    segs.sort();
    let total: usize = segs.iter().map(|&(_, i)| files[i].1.len()).sum();
    let mut cut = pos16 * total / 65536;
    let mut remove = Vec::new();
    let mut x = u64::from(how) << 32 | pos16 as u64 | 1;
    for &(_, i) in &segs {
        let len = files[i].1.len();
        let from = cut.min(len);
        cut -= from;
        if from == len && cut > 0 {
            continue;
        }
        let bytes = Arc::make_mut(&mut files[i].1);
        match how % 3 {
            0 => bytes[from..].fill(0),
            1 if from == 0 => remove.push(i),
            1 => bytes.truncate(from),
            _ => {
                for slot in &mut bytes[from..] {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *slot = x as u8;
                }
            }
        }
    }
    remove.sort();
    for i in remove.into_iter().rev() {
        files.remove(i);
    }
}

/// Recovery over edits of a valid log. The input's first byte picks a base log (built once:
/// several segments; compacted so META starts later; with recycled segments holding stale
/// frames behind the tail), the rest is a list of edits to a copy of its files: truncate,
/// append, overwrite, zero, flip a bit, cut the tail across segment boundaries, delete or
/// duplicate a file, rewrite META or a segment header with valid checksums. Then in every
/// recovery mode:
///
/// * opening never panics, and either succeeds or refuses with an error naming damage;
/// * an opened log holds a run of the original entries, byte for byte, ending at or before
///   the original end (skip-corrupted may skip LSNs, nothing else may);
/// * an unedited log opens in every mode to exactly the original entries;
/// * an opened log (strict aside) takes an append, and reopening it in the same mode gives
///   the same entries plus that append.
pub fn recovery_edits(data: &[u8]) -> Result<(), String> {
    recovery_edits_with(data, PlantedBugs::default())
}

/// [`recovery_edits`] with deliberate bugs planted in recovery (to show the checks catch them).
pub fn recovery_edits_with(data: &[u8], planted: PlantedBugs) -> Result<(), String> {
    let bases = bases()?;
    let Some((&pick, edits)) = data.split_first() else {
        return Ok(());
    };
    let base = &bases[usize::from(pick) % bases.len()];
    let mut files = base.files.clone();
    apply_edits(&mut files, edits);
    // Files no edit touched are still the base's (the comparison sees the same pointer).
    let unedited = files == base.files;
    for mode in [
        RecoveryMode::Strict,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupted,
        RecoveryMode::TolerateTornTail,
    ] {
        // Each mode on its own copy: opening may repair files.
        let disk = SimDisk::new();
        for (p, b) in &files {
            disk.write_file_shared(p, b.clone());
        }
        let opts = Options {
            recovery: mode,
            planted,
            ..base.opts.clone()
        };
        let wal = match Wal::open_with(Arc::new(disk.clone()), DIR, opts.clone()) {
            Ok(w) => w,
            Err(
                e @ (Error::Corruption { .. }
                | Error::CorruptFile { .. }
                | Error::TornTail { .. }
                | Error::VersionTooNew { .. }),
            ) => {
                if unedited {
                    return Err(format!("{mode:?}: the unedited log refused to open: {e}"));
                }
                continue;
            }
            Err(e) => return Err(format!("{mode:?}: open failed without naming damage: {e}")),
        };
        let (first, last) = (wal.first_lsn(), wal.last_lsn());
        // An empty log (first > last) may continue at any LSN META names.
        if first <= last && last > base.last {
            return Err(format!("{mode:?}: log grew to {last}, was {}", base.last));
        }
        if unedited && (first != base.first || last != base.last) {
            return Err(format!(
                "{mode:?}: the unedited log opened as {first}..={last}, was {}..={}",
                base.first, base.last
            ));
        }
        check_entries(&wal, mode, unedited, last)?;
        if mode == RecoveryMode::Strict {
            continue;
        }
        // The repaired log takes an append, and opens again to the same entries plus it.
        let after = wal
            .append(b"after")
            .map_err(|e| format!("{mode:?}: append after recovery: {e}"))?;
        wal.close()
            .map_err(|e| format!("{mode:?}: close after recovery: {e}"))?;
        let again = Wal::open_with(Arc::new(disk), DIR, opts)
            .map_err(|e| format!("{mode:?}: reopening the repaired log: {e}"))?;
        if again.first_lsn() != first || again.last_lsn() != after {
            return Err(format!(
                "{mode:?}: repaired log {first}..={last} plus one append reopened as {}..={}",
                again.first_lsn(),
                again.last_lsn()
            ));
        }
        match again.read(after) {
            Ok(e) if *e == b"after"[..] => {}
            other => {
                return Err(format!(
                    "{mode:?}: the append after recovery reads {other:?}"
                ))
            }
        }
        check_entries(&again, mode, unedited, last)?;
    }
    Ok(())
}

/// Every LSN from the log's first to `upto` reads the original bytes (or, in skip-corrupted
/// mode on an edited log, is reported skipped).
fn check_entries(wal: &Wal, mode: RecoveryMode, unedited: bool, upto: Lsn) -> Result<(), String> {
    for lsn in wal.first_lsn().0..=upto.0 {
        match wal.read(Lsn(lsn)) {
            Ok(e) if *e == *expected(lsn) => {}
            Ok(_) => return Err(format!("{mode:?}: LSN {lsn} reads changed bytes")),
            Err(Error::Skipped { .. }) if mode == RecoveryMode::SkipCorrupted && !unedited => {}
            Err(e) => return Err(format!("{mode:?}: LSN {lsn}: {e}")),
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

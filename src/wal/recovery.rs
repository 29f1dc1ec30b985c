//! Recovery: scanning segments, telling a torn tail from corruption, and the recovery modes.
//!
//! # How damage is classified
//!
//! A scan walks a segment's frames from [`DATA_START`] and stops at a seal (clean), at zeros on
//! a block boundary (end of data), or at the first frame that fails its checks. A failed frame
//! is **corruption**, not a torn tail, when anything proves that it had been acknowledged:
//!
//! * a later valid frame (same segment) whose `durable_lsn` reaches the failed frame's LSN:
//!   that frame was written after the failed one had been synced and acknowledged;
//! * a later segment holding any valid frame: the writer syncs a segment's seal before it
//!   writes the next segment, so the failed segment's data was durable;
//! * the failed frame itself: its header and trailer are intact and no sector of it is all
//!   zeros (unless the writer flagged a zero sector as intended), so every sector was written,
//!   and the checksum still fails — a bit flip, not a write cut short.
//!
//! Otherwise the failed frame and everything after it were never acknowledged: a torn tail.
//!
//! # Recycled segments
//!
//! A segment file reused after compaction (header flag `SEGMENT_RECYCLED`) still holds the
//! frames of the segment it was, behind the new data. Each names the old segment id, which both
//! of its checksums cover, so none is ever valid here. A scan that stops at something that is
//! not this segment's own frame (its id field names another segment, or no magic at all), with
//! no frame of this segment after it, has reached the end of the data, exactly as zeros end a
//! fresh file. Frames of a recycled segment also carry a trailer keyed by the segment's id
//! (`trailer_key`): a new header torn over an old frame's header never looks "visibly whole"
//! by the old frame's own trailer, so that tear stays a torn tail, not damage. What recycling
//! gives up: a write whose sectors reached the disk out of order, leaving an old sector inside
//! an otherwise whole frame, reads as damage (a fresh file shows a zero sector there, read as
//! torn); recovery then refuses in the default mode instead of truncating.
//!
//! # The case table (one test per row in `tests/recovery_cases.rs`)
//!
//! | situation                                   | strict    | tolerate-torn-tail (default) | point-in-time           | skip-corrupted               |
//! |---------------------------------------------|-----------|------------------------------|-------------------------|------------------------------|
//! | clean end (zeros, end of file, seal)        | open      | open                         | open                    | open                         |
//! | torn tail (last frames, never acknowledged) | error     | truncate                     | truncate                | truncate                     |
//! | file cut inside a frame header (tail bytes that are not zeros) | error (torn) | truncate | truncate              | truncate                     |
//! | corrupt frame before the tail               | error     | error                        | truncate there, drop rest | skip the frame, keep the rest |
//! | bit flip in the last acknowledged frame     | error     | error                        | truncate there          | truncate there (nothing after) |
//! | sealed segment truncated / unsealed middle  | error     | error                        | truncate there, drop rest | continue with the next segment |
//! | segment missing in the middle (id gap)      | error     | error                        | drop it and the rest    | continue, LSNs in between skipped |
//! | segment named in a seal missing at the end  | error     | error                        | open up to the seal     | open up to the seal          |
//! | file holds another segment's id             | error     | error                        | drop it and the rest    | drop it and the rest         |
//! | header of the last segment unreadable, only zeros in it | delete file | delete file      | delete file             | delete file                  |
//! | segment-named file with data, header fails its checks (junk, not provably paxwal's) | error | error | keep, move aside as `.foreign` | keep, move aside as `.foreign` |
//! | newer format version                        | error     | error                        | error                   | error                        |
//! | `*.tmp` files, segments below META's first  | delete    | delete                       | delete                  | delete                       |
//! | zeroed hole inside a segment, valid frames after it, acknowledged | error | error     | truncate there          | skip the hole, keep the frames after it |
//! | META naming segment or LSN 0 (checksum valid) | error   | error                        | error                   | error                        |
//! | META's first segment missing, no segment at or after it | error | error             | open empty at META's first LSN | open empty at META's first LSN |
//! | recycled segment: stale frames behind the tail | open   | open                         | open                    | open                         |
//! | recycled segment: old bytes in the last frame's padding | open, zero the padding | open, zero the padding | open, zero the padding | open, zero the padding |
//! | recycled segment: new header torn over a stale frame | error (torn) | truncate         | truncate                | truncate                     |
//! | recycled segment: bit flip in the last acknowledged frame | error | error               | truncate there          | truncate there               |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codec::{
    align_up, frame_len, records, trailer_key, trailer_keyed, FrameError, FrameHeader, HeaderError,
    Meta, Seal, SegmentHeader, BLOCK, DATA_START, FRAME_HEADER_LEN, FRAME_MAGIC, KIND_SEAL,
    SEGMENT_RECYCLED, TRAILER_LEN,
};
use super::io::{MappedBytes, OpenMode, Vfs, VfsFile};
use super::segment::SKIPPED;
use super::RecoveryMode;
use crate::error::{Error, Result};
use crate::types::{Lsn, SegmentId};

/// File name of a segment.
pub(crate) fn segment_name(id: SegmentId) -> String {
    format!("{id}.seg")
}

/// Parses a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SegmentId)
}

/// Why a segment scan stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// At a valid seal frame.
    Sealed(Seal),
    /// At zeros on a block boundary, or the end of the file.
    End {
        /// Where.
        at: u64,
    },
    /// At a frame that failed its checks.
    Bad {
        /// Offset of the failed frame.
        at: u64,
        /// True if the failed frame looks like a write cut short.
        torn: bool,
        /// What failed.
        reason: String,
        /// The LSNs the failed frame's header names, if the header is intact.
        lsns: Option<(Lsn, Lsn)>,
    },
}

/// The result of scanning one segment's bytes.
#[derive(Debug)]
pub struct Scan {
    /// The segment header, if it decoded.
    pub header: Result<SegmentHeader, HeaderError>,
    /// First LSN of the first valid frame.
    pub first_lsn: Option<Lsn>,
    /// Offset of each valid record's length prefix (`SKIPPED` for skipped ones).
    pub offsets: Vec<u32>,
    /// Offset just past the last valid frame.
    pub end: u64,
    /// Why the scan stopped.
    pub stop: Stop,
    /// Highest `durable_lsn` among valid frames found after the stop.
    pub evidence_durable: Lsn,
    /// True if any valid frame exists after the stop.
    pub frames_after_stop: bool,
    /// LSN ranges skipped by resynchronising (skip-corrupted mode).
    pub skipped: Vec<(Lsn, Lsn)>,
}

fn bad_header_is_torn(bytes: &[u8], at: usize, key: u32) -> bool {
    // A header that fails its checks is a torn write unless the frame it describes is visibly
    // whole: magic intact and the trailer that the stored header crc predicts is in place.
    let b = &bytes[at..];
    if b.len() < FRAME_HEADER_LEN || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != FRAME_MAGIC {
        return true;
    }
    let payload_len = u32::from_le_bytes([b[28], b[29], b[30], b[31]]) as usize;
    let stored_crc = u32::from_le_bytes([b[52], b[53], b[54], b[55]]);
    let flen = frame_len(payload_len);
    if flen > b.len() {
        return true;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[flen - TRAILER_LEN..flen]);
    u64::from_le_bytes(t) != trailer_keyed(stored_crc, key)
}

/// A valid frame at `at`, if there is one.
fn valid_frame_at(bytes: &[u8], at: usize, id: SegmentId, key: u32) -> Option<FrameHeader> {
    let h = FrameHeader::decode_header(&bytes[at..]).ok()?;
    let end = at + h.frame_len();
    if h.segment != id || end > bytes.len() {
        return None;
    }
    h.check_body_keyed(&bytes[at..end], at as u64, key).ok()?;
    Some(h)
}

/// Valid frames after `from` (8-byte steps: every frame starts 8-aligned).
fn frames_after(
    bytes: &[u8],
    from: usize,
    id: SegmentId,
    key: u32,
) -> impl Iterator<Item = (usize, FrameHeader)> + '_ {
    let start = align_up(from as u64 + 1, 8) as usize;
    (start..bytes.len().saturating_sub(FRAME_HEADER_LEN))
        .step_by(8)
        .filter(move |&q| bytes[q..q + 4] == FRAME_MAGIC.to_le_bytes())
        .filter_map(move |q| valid_frame_at(bytes, q, id, key).map(|h| (q, h)))
}

/// Scans one segment file's bytes.
pub fn scan(bytes: &[u8], id: SegmentId, skip_corrupted: bool) -> Scan {
    scan_with(bytes, id, skip_corrupted, super::PlantedBugs::default())
}

/// [`scan`], optionally with the planted bugs "accept frames without checking checksums" and
/// "accept a recycled file's stale frames".
pub(crate) fn scan_with(
    bytes: &[u8],
    id: SegmentId,
    skip_corrupted: bool,
    planted: super::PlantedBugs,
) -> Scan {
    let no_crc = planted.skip_crc_check;
    let header = SegmentHeader::decode(bytes);
    let recycled = header
        .as_ref()
        .is_ok_and(|h| h.flags & SEGMENT_RECYCLED != 0);
    let key = header.as_ref().map_or(0, |h| trailer_key(h.flags, id));
    let mut s = Scan {
        header,
        first_lsn: None,
        offsets: Vec::new(),
        end: DATA_START,
        stop: Stop::End { at: DATA_START },
        evidence_durable: Lsn::ZERO,
        frames_after_stop: false,
        skipped: Vec::new(),
    };
    let len = bytes.len();
    let mut pos = DATA_START as usize;
    let mut expected: Option<Lsn> = None;
    let mut stop_ours = false;
    loop {
        if pos + FRAME_HEADER_LEN > len && bytes[pos.min(len)..].iter().all(|&x| x == 0) {
            s.stop = Stop::End { at: pos as u64 };
            break;
        }
        // Zero padding runs from the end of a synced batch to the next block boundary, where
        // the next frame starts. A frame begins with its (non-zero) magic, so eight zero bytes
        // off a boundary are padding — even when the gap is shorter than a frame header.
        if pos as u64 % BLOCK != 0 && pos + 8 <= len && bytes[pos..pos + 8].iter().all(|&x| x == 0)
        {
            pos = align_up(pos as u64, BLOCK) as usize;
            continue;
        }
        let failure = if pos + FRAME_HEADER_LEN > len {
            // The file ends inside a frame header (a cut-short file): a torn write, and the
            // bytes must go before anything is appended here, or the next open stops at them.
            (
                true,
                "the file ends inside a frame header".to_owned(),
                None,
                true,
            )
        } else {
            match FrameHeader::decode_header(&bytes[pos..]) {
                Err(FrameError::Zero) => {
                    if pos as u64 % BLOCK != 0 {
                        pos = align_up(pos as u64, BLOCK) as usize;
                        continue;
                    }
                    // Skip-corrupted skips a zeroed hole like a damaged frame when valid frames of
                    // ours follow it: left in place behind the end, they would come back after the
                    // next append (which is written where the hole starts).
                    let hole = skip_corrupted
                        && frames_after(bytes, pos, id, key)
                            .any(|(_, h)| expected.is_none_or(|e| h.first_lsn >= e));
                    if !hole {
                        s.stop = Stop::End { at: pos as u64 };
                        break;
                    }
                    (true, "zeros where records should be".to_owned(), None, true)
                }
                Err(_) => (
                    bad_header_is_torn(bytes, pos, key),
                    "frame header fails its checks".to_owned(),
                    None,
                    // A header that fails its checks is this segment's own (a torn or damaged
                    // write) when the id field still names it; in a recycled file anything else is
                    // what the file held before.
                    bytes.len() >= pos + 16
                        && u64::from_le_bytes(
                            bytes[pos + 8..pos + 16].try_into().unwrap_or_default(),
                        ) == id.0,
                ),
                Ok(h) => {
                    let lsns = Some((h.first_lsn, Lsn(h.first_lsn.0 + u64::from(h.count)).prev()));
                    let flen = h.frame_len();
                    let stale_ok = planted.accept_stale_frames && h.segment != id;
                    if h.segment != id && !stale_ok {
                        (
                            true,
                            format!("stale frame of segment {}", h.segment),
                            lsns,
                            false,
                        )
                    } else if !stale_ok && expected.is_some_and(|e| h.first_lsn != e) {
                        (
                            true,
                            format!(
                                "stale frame: LSN {} where {} was expected",
                                h.first_lsn,
                                expected.unwrap_or_default()
                            ),
                            lsns,
                            true,
                        )
                    } else if pos + flen > len {
                        (
                            true,
                            "frame runs past the end of the file".to_owned(),
                            lsns,
                            true,
                        )
                    } else {
                        let body = if no_crc {
                            Ok(())
                        } else {
                            let frame = &bytes[pos..pos + flen];
                            if stale_ok {
                                // The planted bug: the stale frame checked with its own key.
                                h.check_body(frame, pos as u64).or_else(|_| {
                                    h.check_body_keyed(
                                        frame,
                                        pos as u64,
                                        trailer_key(SEGMENT_RECYCLED, h.segment),
                                    )
                                })
                            } else {
                                h.check_body_keyed(frame, pos as u64, key)
                            }
                        };
                        match body {
                            Err(FrameError::BadBody { torn }) => {
                                (torn, "frame checksum mismatch".to_owned(), lsns, true)
                            }
                            Err(_) => (true, "frame body fails its checks".to_owned(), lsns, true),
                            Ok(()) => {
                                if expected.is_none() {
                                    s.first_lsn = Some(h.first_lsn);
                                }
                                s.end = (pos + flen) as u64;
                                if h.kind == KIND_SEAL {
                                    let p =
                                        &bytes[pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + 16];
                                    s.stop = Stop::Sealed(Seal::decode(p));
                                    break;
                                }
                                let frame = &bytes[pos..pos + flen];
                                s.offsets
                                    .extend(records(frame, &h).map(|(rel, _)| pos as u32 + rel));
                                expected = Some(Lsn(h.first_lsn.0 + u64::from(h.count)));
                                pos += flen;
                                continue;
                            }
                        }
                    }
                }
            }
        };
        let (torn, reason, lsns, ours) = failure;
        if skip_corrupted {
            let resync = frames_after(bytes, pos, id, key)
                .find(|(_, h)| expected.is_none_or(|e| h.first_lsn >= e));
            if let Some((q, h)) = resync {
                if let Some(e) = expected {
                    if h.first_lsn > e {
                        s.skipped.push((e, h.first_lsn.prev()));
                        s.offsets.extend((e.0..h.first_lsn.0).map(|_| SKIPPED));
                    }
                }
                pos = q;
                if expected.is_none() {
                    // The frame at `q` becomes the first valid one on the next turn.
                    continue;
                }
                expected = Some(h.first_lsn);
                continue;
            }
        }
        stop_ours = ours;
        s.stop = Stop::Bad {
            at: pos as u64,
            torn,
            reason,
            lsns,
        };
        break;
    }
    let from = match &s.stop {
        Stop::Sealed(_) => None,
        Stop::End { at } | Stop::Bad { at, .. } => Some(*at as usize),
    };
    if let Some(from) = from {
        for (_, h) in frames_after(bytes, from, id, key) {
            s.frames_after_stop = true;
            s.evidence_durable = s.evidence_durable.max(h.durable_lsn);
        }
    }
    // In a recycled file the bytes behind the last frame are the old segment's: a stop at
    // something that is not this segment's own frame, with no frame of this segment after it,
    // is the end of the data, exactly as zeros are in a fresh file.
    if recycled && !s.frames_after_stop {
        if let Stop::Bad { at, torn: true, .. } = s.stop {
            if !stop_ours {
                s.stop = Stop::End { at };
            }
        }
    }
    s
}

/// One segment as recovery leaves it.
#[derive(Debug)]
pub(crate) struct RecoveredSegment {
    pub id: SegmentId,
    pub path: PathBuf,
    pub file: Arc<dyn VfsFile>,
    pub map: Option<MappedBytes>,
    pub header: SegmentHeader,
    pub first_lsn: Lsn,
    pub offsets: Vec<u32>,
    pub sealed: bool,
    /// Offset just past the last valid frame.
    pub end: u64,
}

/// A torn tail found by recovery.
#[derive(Clone, Debug)]
pub struct TornTail {
    /// Segment holding it.
    pub segment: SegmentId,
    /// Offset where it starts.
    pub offset: u64,
    /// First LSN dropped.
    pub lsn: Lsn,
    /// Last LSN dropped, when a frame header names it.
    pub last_lsn: Option<Lsn>,
}

/// What recovery found and what opening the log will change.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub meta: Option<Meta>,
    pub segments: Vec<RecoveredSegment>,
    /// Files to delete (temporaries, orphans below META, empty or dropped segments).
    pub delete: Vec<PathBuf>,
    /// Of those, segments after the tail holding no frame (prepared spares).
    pub spares: Vec<PathBuf>,
    /// Files named like segments that paxwal cannot prove it made (their header fails its
    /// checks) and that hold data: never deleted; reported as corruption, and moved aside
    /// (renamed `NAME.foreign`) by a writable open that goes past corruption.
    pub foreign: Vec<PathBuf>,
    /// Zero the last kept segment from this offset (torn or dropped tail).
    pub truncate_at: Option<u64>,
    /// Zero the last kept segment from this offset to the next block boundary, where
    /// appends resume.
    pub zero_pad: Option<u64>,
    pub torn: Option<TornTail>,
    /// The first corruption found (an `Error::Corruption`).
    pub corruption: Option<Error>,
    pub skipped: Vec<(Lsn, Lsn)>,
    pub next_lsn: Lsn,
    pub next_segment: SegmentId,
}

fn corruption(
    seg: SegmentId,
    path: &Path,
    offset: u64,
    lsn: Lsn,
    reason: impl Into<String>,
) -> Error {
    Error::Corruption {
        segment: seg,
        path: path.to_owned(),
        offset,
        lsn,
        reason: reason.into(),
    }
}

struct Loaded {
    id: SegmentId,
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    map: Option<MappedBytes>,
    scan: Scan,
    /// The file holds nothing but zeros (or nothing): whatever it was, no data is lost by
    /// deleting it.
    zeros: bool,
}

impl Loaded {
    /// Whether paxwal provably made this file: its header passes its checks and names it.
    fn ours(&self) -> bool {
        matches!(&self.scan.header, Ok(h) if h.id == self.id)
    }

    /// Whether recovery may delete this file: paxwal made it, or it holds nothing.
    fn deletable(&self) -> bool {
        self.ours() || self.zeros
    }
}

fn load(
    vfs: &dyn Vfs,
    path: &Path,
    id: SegmentId,
    writable: bool,
    skip: bool,
    planted: super::PlantedBugs,
) -> Result<Loaded> {
    let mode = if writable {
        OpenMode::ReadWrite
    } else {
        OpenMode::Read
    };
    let file = vfs
        .open(path, mode)
        .map_err(|e| Error::io("open", path, e))?;
    let map = file.map().map_err(|e| Error::io("mmap", path, e))?;
    let owned;
    let bytes: &[u8] = match &map {
        Some(m) => (**m).as_ref(),
        None => {
            let len = file.len().map_err(|e| Error::io("stat", path, e))?;
            let mut v = vec![0u8; len as usize];
            file.read_exact_at(&mut v, 0)
                .map_err(|e| Error::io("read", path, e))?;
            owned = v;
            &owned
        }
    };
    let scan = scan_with(bytes, id, skip, planted);
    let zeros = scan.header.is_err() && bytes.iter().all(|&b| b == 0);
    Ok(Loaded {
        id,
        path: path.to_owned(),
        file,
        map,
        scan,
        zeros,
    })
}

/// Reads the directory and decides what the log is. Changes nothing on disk.
pub(crate) fn analyze(
    vfs: &dyn Vfs,
    dir: &Path,
    mode: RecoveryMode,
    writable: bool,
    planted: super::PlantedBugs,
) -> Result<Analysis> {
    let names = vfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut a = Analysis {
        meta: None,
        segments: Vec::new(),
        delete: Vec::new(),
        spares: Vec::new(),
        foreign: Vec::new(),
        truncate_at: None,
        zero_pad: None,
        torn: None,
        corruption: None,
        skipped: Vec::new(),
        next_lsn: Lsn::FIRST,
        next_segment: SegmentId(1),
    };
    let mut ids = Vec::new();
    for name in &names {
        if name.ends_with(".tmp") {
            a.delete.push(dir.join(name));
        } else if let Some(id) = parse_segment_name(name) {
            ids.push(id);
        }
    }
    ids.sort();
    if names.iter().any(|n| n == "META") {
        let path = dir.join("META");
        let f = vfs
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = f.len().map_err(|e| Error::io("stat", &path, e))?;
        let mut b = vec![0u8; len.min(4096) as usize];
        f.read_exact_at(&mut b, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        match Meta::decode(&b) {
            Ok(m) => a.meta = Some(m),
            Err(HeaderError::TooNew(v)) => {
                return Err(Error::VersionTooNew {
                    path,
                    found: v,
                    supported: super::codec::FORMAT_VERSION,
                })
            }
            Err(HeaderError::Invalid) => {
                return Err(Error::CorruptFile {
                    path,
                    reason:
                        "the META file fails its checks (checksum, or a segment id or LSN of 0)"
                            .into(),
                })
            }
        }
    }
    if let Some(m) = a.meta {
        for id in ids.iter().filter(|&&id| id < m.first_segment) {
            a.delete.push(dir.join(segment_name(*id)));
        }
        ids.retain(|&id| id >= m.first_segment);
        if ids.first().is_some_and(|&id| id != m.first_segment) {
            a.corruption = Some(corruption(
                m.first_segment,
                &dir.join(segment_name(m.first_segment)),
                0,
                m.first_lsn,
                "the first segment named by META is missing",
            ));
        }
        if ids.is_empty() {
            a.corruption = Some(corruption(
                m.first_segment,
                &dir.join(segment_name(m.first_segment)),
                0,
                m.first_lsn,
                "META names segments but none exist",
            ));
            // Opened past this, the log is empty and continues where META says it starts, so
            // META stays true for what is appended next.
            a.next_lsn = m.first_lsn;
            a.next_segment = m.first_segment;
            return Ok(a);
        }
    }

    let skip = mode == RecoveryMode::SkipCorrupted;
    let loaded = load_all(vfs, dir, &ids, writable, skip, planted)?;
    let has_frames: Vec<bool> = loaded.iter().map(|l| l.scan.first_lsn.is_some()).collect();

    let mut expected: Option<Lsn> = a.meta.map(|m| m.first_lsn);
    // Problems stop the walk in every mode but skip-corrupted (which continues where it can).
    let mut stop_all = false;
    for (i, l) in loaded.into_iter().enumerate() {
        if stop_all {
            if !l.deletable() {
                foreign(&mut a, l.id, l.path);
                continue;
            }
            if l.scan.first_lsn.is_none() && !l.scan.frames_after_stop {
                a.spares.push(l.path.clone());
            }
            a.delete.push(l.path);
            continue;
        }
        let later_frames = has_frames[i + 1..].iter().any(|&x| x);
        let is_last = i + 1 == ids.len();
        let lsn_here = expected.or(l.scan.first_lsn).unwrap_or(Lsn::FIRST);
        let (lid, lpath) = (l.id, l.path.clone());
        let problem = |a: &mut Analysis, offset: u64, lsn: Lsn, reason: String| {
            if a.corruption.is_none() {
                a.corruption = Some(corruption(lid, &lpath, offset, lsn, reason));
            }
        };
        if i > 0 && l.id.0 != ids[i - 1].0 + 1 {
            problem(
                &mut a,
                0,
                lsn_here,
                format!(
                    "segment {} is missing before it",
                    SegmentId(ids[i - 1].0 + 1)
                ),
            );
            if !skip {
                a.delete.push(l.path);
                stop_all = true;
                continue;
            }
        }
        let header = match l.scan.header {
            Ok(h) => h,
            Err(HeaderError::TooNew(v)) => {
                return Err(Error::VersionTooNew {
                    path: l.path,
                    found: v,
                    supported: super::codec::FORMAT_VERSION,
                })
            }
            Err(HeaderError::Invalid) => {
                if is_last && l.zeros {
                    // A new tail segment whose header never reached the disk holds nothing.
                    a.delete.push(l.path);
                    break;
                }
                if i > 0 || l.scan.first_lsn.is_some() {
                    problem(
                        &mut a,
                        0,
                        lsn_here,
                        "segment header fails its checks".into(),
                    );
                }
                // Not provably paxwal's: never deleted (see `foreign`).
                foreign(&mut a, l.id, l.path);
                stop_all = true;
                continue;
            }
        };
        if header.id != l.id {
            problem(
                &mut a,
                0,
                lsn_here,
                format!("file holds segment {}", header.id),
            );
            a.delete.push(l.path);
            stop_all = true;
            continue;
        }
        let first = match (expected, l.scan.first_lsn) {
            (Some(e), Some(f)) if f != e => {
                problem(
                    &mut a,
                    DATA_START,
                    e,
                    format!("segment starts at LSN {f}, expected {e}"),
                );
                if skip && f > e {
                    a.skipped.push((e, f.prev()));
                    if let Some(prev) = a.segments.last_mut() {
                        prev.offsets.extend((e.0..f.0).map(|_| SKIPPED));
                    }
                    f
                } else {
                    a.delete.push(l.path);
                    stop_all = true;
                    continue;
                }
            }
            (Some(e), _) => e,
            (None, Some(f)) => f,
            (None, None) => Lsn::FIRST,
        };
        a.skipped.extend(l.scan.skipped.iter().copied());
        let end_lsn = Lsn(first.0 + l.scan.offsets.len() as u64);
        expected = Some(end_lsn);
        let mut seg = RecoveredSegment {
            id: l.id,
            path: l.path,
            file: l.file,
            map: l.map,
            header,
            first_lsn: first,
            offsets: l.scan.offsets,
            sealed: false,
            end: l.scan.end,
        };
        match l.scan.stop {
            Stop::Sealed(seal) => {
                seg.sealed = true;
                let chain_ok = seal.next_lsn == end_lsn && seal.next_segment.0 == l.id.0 + 1;
                let path = seg.path.clone();
                a.segments.push(seg);
                if !chain_ok {
                    if a.corruption.is_none() {
                        a.corruption = Some(corruption(
                            l.id,
                            &path,
                            0,
                            end_lsn,
                            "seal does not match the segment's records",
                        ));
                    }
                    if !skip {
                        stop_all = true;
                    }
                } else if is_last && a.corruption.is_none() {
                    a.corruption = Some(corruption(
                        seal.next_segment,
                        &dir.join(segment_name(seal.next_segment)),
                        0,
                        end_lsn,
                        format!("segment {} is sealed but its successor is missing", l.id),
                    ));
                }
            }
            Stop::End { at } => {
                let acked_after = l.scan.evidence_durable >= end_lsn;
                if later_frames || acked_after {
                    let why = if later_frames {
                        "segment ends without a seal but later segments hold data (truncated)"
                    } else {
                        "zeros where acknowledged records should be"
                    };
                    problem(&mut a, at, end_lsn, why.into());
                    a.segments.push(seg);
                    if !skip {
                        a.truncate_at = Some(at);
                        stop_all = true;
                    }
                } else {
                    if l.scan.frames_after_stop {
                        a.truncate_at = Some(at);
                    } else if at % BLOCK != 0 {
                        // The data ends off a block boundary at bytes that are not zeros (a
                        // recycled file's old bytes where the padding was torn): appends
                        // resume at the next boundary, so these bytes would sit between the
                        // last frame and the next one and stop the next open there.
                        a.zero_pad = Some(at);
                    }
                    a.segments.push(seg);
                    stop_all = true;
                }
            }
            Stop::Bad {
                at,
                torn,
                reason,
                lsns,
            } => {
                let acked_after = l.scan.evidence_durable >= end_lsn;
                if later_frames || acked_after || !torn {
                    let why = if !torn {
                        format!("{reason}; the frame was written whole, so this is damage, not a torn write")
                    } else if later_frames {
                        format!("{reason}; later segments hold data")
                    } else {
                        format!("{reason}; a later frame shows LSN {end_lsn} was acknowledged")
                    };
                    problem(&mut a, at, end_lsn, why);
                } else {
                    a.torn = Some(TornTail {
                        segment: l.id,
                        offset: at,
                        lsn: end_lsn,
                        last_lsn: lsns.map(|(_, last)| last),
                    });
                }
                a.segments.push(seg);
                if !(skip && later_frames) {
                    a.truncate_at = Some(at);
                    stop_all = true;
                }
            }
        }
        let _ = is_last;
    }
    if !skip && stop_all {
        // Everything after the stop point is dropped; the last kept segment is the tail.
    }
    a.next_lsn = expected.unwrap_or(Lsn::FIRST);
    // The next segment follows the last one kept: segments after it (spares, dropped ones)
    // are deleted on open, so their ids are free again and the chain stays gap-free.
    a.next_segment = match (a.segments.last(), a.meta) {
        (Some(s), _) => SegmentId(s.id.0 + 1),
        (None, Some(m)) => m.first_segment,
        (None, None) => SegmentId(1),
    };
    Ok(a)
}

/// Records `path` as a file paxwal cannot prove it made, and reports it as corruption (unless
/// something earlier was reported already).
fn foreign(a: &mut Analysis, id: SegmentId, path: PathBuf) {
    if a.corruption.is_none() {
        a.corruption = Some(corruption(
            id,
            &path,
            0,
            a.segments
                .last()
                .map_or(Lsn::FIRST, |s| Lsn(s.first_lsn.0 + s.offsets.len() as u64)),
            "the file is named like a segment but its header fails its checks: paxwal did not make it (or it was overwritten); it is left in place",
        ));
    }
    a.foreign.push(path);
}

/// Below this many bytes (estimated), segments load on the calling thread.
const PARALLEL_LOAD_MIN_BYTES: u64 = 8 << 20;

fn load_all(
    vfs: &dyn Vfs,
    dir: &Path,
    ids: &[SegmentId],
    writable: bool,
    skip: bool,
    planted: super::PlantedBugs,
) -> Result<Vec<Loaded>> {
    // Segments verify independently; two threads cover this machine's cores. Threads pay off
    // only over megabytes: judged by the first segment's size, a small log loads on this
    // thread (spawning, and asking the OS for the core count, would cost more than the scan).
    let paths: Vec<(SegmentId, PathBuf)> = ids
        .iter()
        .map(|&id| (id, dir.join(segment_name(id))))
        .collect();
    let Some(((id0, p0), rest)) = paths.split_first() else {
        return Ok(Vec::new());
    };
    let first = load(vfs, p0, *id0, writable, skip, planted)?;
    let est_bytes = first
        .file
        .len()
        .unwrap_or(0)
        .saturating_mul(paths.len() as u64);
    let workers = if est_bytes < PARALLEL_LOAD_MIN_BYTES {
        1
    } else {
        static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *WORKERS.get_or_init(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 4)
        })
    };
    if rest.len() < 2 || workers == 1 {
        return std::iter::once(Ok(first))
            .chain(
                rest.iter()
                    .map(|(id, p)| load(vfs, p, *id, writable, skip, planted)),
            )
            .collect();
    }
    let paths = rest;
    let mut out: Vec<Option<Result<Loaded>>> = (0..paths.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let chunks: Vec<_> = out.chunks_mut(paths.len().div_ceil(workers)).collect();
        let mut start = 0;
        for chunk in chunks {
            let n = chunk.len();
            let my = &paths[start..start + n];
            s.spawn(move || {
                for (j, slot) in chunk.iter_mut().enumerate() {
                    let (id, p) = &my[j];
                    *slot = Some(load(vfs, p, *id, writable, skip, planted));
                }
            });
            start += n;
        }
    });
    std::iter::once(Ok(first))
        .chain(
            out.into_iter().map(|r| {
                r.unwrap_or_else(|| Err(Error::Invalid("segment load did not run".into())))
            }),
        )
        .collect()
}

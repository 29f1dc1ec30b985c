//! Read-only verification and inspection of a log directory: what `paxwal log verify` and
//! `paxwal log inspect` print. Nothing on disk is changed.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::io::{StdVfs, Vfs};
use super::recovery::{analyze, segment_name, TornTail};
use super::RecoveryMode;
use crate::error::{Error, Result};
use crate::types::Lsn;

/// A segment's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentState {
    /// Sealed: the log continues in the next segment.
    Sealed,
    /// The tail segment, taking appends.
    Active,
    /// A prepared segment after the tail that holds nothing yet.
    Spare,
    /// Past the first damage: recovery would not reach it.
    Unreachable,
    /// Named like a segment, but its header fails its checks: not provably made by paxwal.
    /// Reported as corruption; never deleted.
    Foreign,
}

/// One segment as found on disk.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentInfo {
    /// File name.
    pub name: String,
    /// First LSN (for unreachable segments: unknown, 0).
    pub first_lsn: u64,
    /// Records in it.
    pub records: u64,
    /// Bytes up to the end of the last valid frame (0 for spares, unreachable and foreign
    /// files).
    pub used_bytes: u64,
    /// The file's length (a spare's is its preallocated size).
    pub allocated_bytes: u64,
    /// Its state.
    pub state: SegmentState,
}

/// What verification found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Segments in log order.
    pub segments: Vec<SegmentInfo>,
    /// First LSN in the log.
    pub first_lsn: u64,
    /// Last LSN that recovery would keep.
    pub last_lsn: u64,
    /// A torn tail (never acknowledged) that recovery would drop.
    pub torn: Option<TornInfo>,
    /// Damage to data that was (or may have been) acknowledged.
    pub corruption: Option<String>,
}

/// A torn tail, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct TornInfo {
    /// Segment file name.
    pub segment: String,
    /// Offset where it starts.
    pub offset: u64,
    /// First LSN dropped.
    pub first_lsn: u64,
    /// Last LSN dropped, where a frame header names it.
    pub last_lsn: Option<u64>,
}

impl VerifyReport {
    /// 0 clean, 1 torn tail only, 2 corruption.
    pub fn exit_code(&self) -> i32 {
        if self.corruption.is_some() {
            2
        } else if self.torn.is_some() {
            1
        } else {
            0
        }
    }
}

/// Whether `dir` holds a log: a META file or a file named like a segment. A directory with
/// neither (empty, or anything else) is not a log, however readable.
pub fn is_log_dir(dir: &Path) -> Result<bool> {
    let names = StdVfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    Ok(names
        .iter()
        .any(|n| n == "META" || super::recovery::parse_segment_name(n).is_some()))
}

/// Verifies the log in `dir` on the real filesystem (every checksum), read-only.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    verify_with(Arc::new(StdVfs), dir)
}

/// [`verify`] over any [`Vfs`].
pub fn verify_with(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<VerifyReport> {
    let a = analyze(
        &*vfs,
        dir,
        RecoveryMode::TolerateTornTail,
        false,
        Default::default(),
    )?;
    let n = a.segments.len();
    let mut segments = Vec::new();
    for (i, s) in a.segments.iter().enumerate() {
        segments.push(SegmentInfo {
            name: segment_name(s.id),
            first_lsn: s.first_lsn.0,
            records: s.offsets.len() as u64,
            used_bytes: s.end,
            allocated_bytes: s.file.len().map_err(|e| Error::io("stat", &s.path, e))?,
            state: if s.sealed || i + 1 < n {
                SegmentState::Sealed
            } else {
                SegmentState::Active
            },
        });
    }
    let file_len = |p: &Path| -> Result<u64> {
        vfs.open(p, super::io::OpenMode::Read)
            .and_then(|f| f.len())
            .map_err(|e| Error::io("stat", p, e))
    };
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    for p in &a.delete {
        let name = name_of(p);
        if name.ends_with(".seg") {
            segments.push(SegmentInfo {
                name,
                first_lsn: 0,
                records: 0,
                used_bytes: 0,
                allocated_bytes: file_len(p)?,
                state: if a.spares.contains(p) {
                    SegmentState::Spare
                } else {
                    SegmentState::Unreachable
                },
            });
        }
    }
    for p in &a.foreign {
        segments.push(SegmentInfo {
            name: name_of(p),
            first_lsn: 0,
            records: 0,
            used_bytes: 0,
            allocated_bytes: file_len(p)?,
            state: SegmentState::Foreign,
        });
    }
    segments.sort_by(|x, y| x.name.cmp(&y.name));
    let first_lsn = a.segments.first().map_or(a.next_lsn, |s| s.first_lsn);
    Ok(VerifyReport {
        segments,
        first_lsn: first_lsn.0,
        last_lsn: a.next_lsn.prev().0,
        torn: a.torn.map(|t: TornTail| TornInfo {
            segment: segment_name(t.segment),
            offset: t.offset,
            first_lsn: t.lsn.0,
            last_lsn: t.last_lsn.map(|l: Lsn| l.0),
        }),
        corruption: a.corruption.map(|e| e.to_string()),
    })
}

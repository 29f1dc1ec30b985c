//! Error types.
//!
//! Errors come in two kinds (see [`Error::is_fatal`]): *per-call* errors fail one call and leave
//! the log usable (an entry too large, no space left, an LSN that was compacted away), while
//! *fatal* errors poison the log instance: after a failed `fdatasync` the kernel may have dropped
//! the dirty pages, so no later success proves anything (fail-stop). A poisoned log refuses every
//! append; reopening it re-reads what is really on disk.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::types::{Lsn, SegmentId};

/// Result alias for paxwal.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in paxwal.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. `op` names the call, `path` the file.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed (`write`, `fdatasync`, `rename`, ...).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The device is full (ENOSPC or EDQUOT). The call failed; nothing acknowledged was lost and
    /// the log stays readable. Appends succeed again once space is freed.
    #[error("no space left on device while {op} {path}")]
    NoSpace {
        /// The operation that failed.
        op: &'static str,
        /// The file it was applied to.
        path: PathBuf,
    },
    /// The log is poisoned by an earlier fatal I/O error (fail-stop) and refuses appends.
    /// Reopen it to continue from what is really on disk.
    #[error("log is poisoned by an earlier fatal error and refuses appends (reopen it): {cause}")]
    Poisoned {
        /// The error that poisoned the log.
        cause: Arc<Error>,
    },
    /// A damaged file of the log that is not a segment (META): named by its path alone.
    #[error("corruption in {path}: {reason}")]
    CorruptFile {
        /// The file's path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Damage that is not a torn tail: a record that was (or may have been) acknowledged is
    /// unreadable. Returned by `open` in the strict and tolerate-torn-tail recovery modes.
    #[error("corruption in segment {segment} ({path}) at offset {offset}, LSN {lsn}: {reason}")]
    Corruption {
        /// The segment file's id.
        segment: SegmentId,
        /// The segment file's path.
        path: PathBuf,
        /// Byte offset in the file where the damage starts.
        offset: u64,
        /// The first LSN affected.
        lsn: Lsn,
        /// What failed.
        reason: String,
    },
    /// A torn tail found in the strict recovery mode, which refuses to truncate anything.
    #[error("torn tail in segment {segment} at offset {offset} (LSN {lsn} onwards was never acknowledged); strict recovery refuses to truncate it")]
    TornTail {
        /// The segment file's id.
        segment: SegmentId,
        /// Byte offset where the torn part starts.
        offset: u64,
        /// The first LSN that would be dropped.
        lsn: Lsn,
    },
    /// A file written by a newer format version.
    #[error(
        "{path}: format version {found} is newer than the newest this build reads ({supported})"
    )]
    VersionTooNew {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The newest supported version.
        supported: u32,
    },
    /// A snapshot file failed its checks (a bad magic, length or checksum).
    #[error("snapshot {path}: {reason}")]
    SnapshotCorrupt {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// No intact snapshot covers what the log no longer holds: the log was compacted below
    /// `needed`, and the newest intact snapshot (if any) stops short of it (FAULTS 27).
    #[error("no intact snapshot covers the slots below {needed} that the log compacted away (newest intact snapshot: {newest:?})")]
    SnapshotMissing {
        /// Every slot below this must be covered.
        needed: crate::types::Slot,
        /// The newest intact snapshot's bound, if any.
        newest: Option<crate::types::Slot>,
    },
    /// The entry is larger than one segment can hold.
    #[error("entry of {len} bytes exceeds the limit of {max} bytes")]
    EntryTooLarge {
        /// The entry's length.
        len: usize,
        /// The largest entry accepted with these options.
        max: usize,
    },
    /// The LSN lies below the first LSN still kept (compacted away).
    #[error("LSN {lsn} was compacted away (first kept: {first})")]
    Compacted {
        /// The LSN asked for.
        lsn: Lsn,
        /// The first LSN still in the log.
        first: Lsn,
    },
    /// The LSN lies beyond the last record.
    #[error("LSN {lsn} is beyond the end of the log (last: {last})")]
    NotFound {
        /// The LSN asked for.
        lsn: Lsn,
        /// The last LSN in the log.
        last: Lsn,
    },
    /// The record was skipped by the skip-corrupted recovery mode.
    #[error("LSN {lsn} was lost to corruption and skipped during recovery")]
    Skipped {
        /// The LSN asked for.
        lsn: Lsn,
    },
    /// The log was closed.
    #[error("log is closed")]
    Closed,
    /// Invalid options or arguments.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error, classifying ENOSPC/EDQUOT as [`Error::NoSpace`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if is_no_space(&source) {
            Error::NoSpace { op, path }
        } else {
            Error::Io {
                op,
                path,
                source: Arc::new(source),
            }
        }
    }

    /// True for errors that poison the log instance (fail-stop).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }

    /// True if this is (or was caused by) running out of space.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }
}

/// True if the I/O error means "no space left" (matched on errno, never on the message).
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_classified_by_errno() {
        let e = Error::io("write", "x", io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(e.is_no_space());
        let e = Error::io("write", "x", io::Error::from_raw_os_error(libc::EIO));
        assert!(!e.is_no_space());
    }
}

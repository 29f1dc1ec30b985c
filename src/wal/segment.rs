//! A segment: one file of the log, its in-memory index, and reads from it.
//!
//! The index keeps, per record, only the file offset of its length prefix (4 bytes per entry);
//! the length is read from the file (or its map). Sealed segments and the active one alike are
//! served from a read-only shared map when the backend offers one (zero-copy), else by
//! positional reads.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::codec::RECORD_PREFIX_LEN;
use super::io::{MappedBytes, VfsFile};
use crate::error::{Error, Result};
use crate::types::{Lsn, SegmentId};

/// Index entry for a record lost to corruption in skip-corrupted recovery.
pub(crate) const SKIPPED: u32 = u32::MAX;

/// One segment file of a live log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub id: SegmentId,
    pub path: PathBuf,
    pub file: Arc<dyn VfsFile>,
    pub map: Option<MappedBytes>,
    pub first_lsn: Lsn,
    /// File offset of each record's length prefix, in LSN order from `first_lsn`.
    pub index: RwLock<Vec<u32>>,
    pub sealed: AtomicBool,
    pub segment_bytes: u64,
    /// The trailer key of its frames ([`super::codec::trailer_key`]; non-zero if recycled).
    pub trailer_key: u32,
}

impl Segment {
    /// Number of records indexed.
    pub fn len(&self) -> u64 {
        self.index.read().len() as u64
    }

    /// LSN after the last indexed record.
    pub fn end_lsn(&self) -> Lsn {
        Lsn(self.first_lsn.0 + self.len())
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Reads record `lsn`, which must lie in this segment's indexed range.
    pub fn read(self: &Arc<Self>, lsn: Lsn) -> Result<Entry> {
        let off = {
            let idx = self.index.read();
            let i = (lsn.0 - self.first_lsn.0) as usize;
            match idx.get(i) {
                Some(&o) => o,
                None => {
                    return Err(Error::NotFound {
                        lsn,
                        last: Lsn(self.first_lsn.0 + idx.len() as u64).prev(),
                    })
                }
            }
        };
        if off == SKIPPED {
            return Err(Error::Skipped { lsn });
        }
        let off = u64::from(off);
        match &self.map {
            Some(map) => {
                let bytes = (**map).as_ref();
                let p = off as usize;
                let mut len = [0u8; 4];
                len.copy_from_slice(&bytes[p..p + RECORD_PREFIX_LEN]);
                let len = u32::from_le_bytes(len) as usize;
                let start = p + RECORD_PREFIX_LEN;
                Ok(Entry(EntryData::Mapped {
                    map: map.clone(),
                    start,
                    end: start + len,
                }))
            }
            None => {
                let mut len = [0u8; 4];
                self.file
                    .read_exact_at(&mut len, off)
                    .map_err(|e| Error::io("read", &self.path, e))?;
                let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
                self.file
                    .read_exact_at(&mut buf, off + RECORD_PREFIX_LEN as u64)
                    .map_err(|e| Error::io("read", &self.path, e))?;
                Ok(Entry(EntryData::Owned(buf)))
            }
        }
    }
}

/// One record's bytes, borrowed from a segment's map where possible (zero-copy) and owned
/// otherwise. Derefs to `[u8]`. Holding an `Entry` keeps its segment's map alive even if the
/// segment is compacted away meanwhile.
pub struct Entry(EntryData);

enum EntryData {
    Mapped {
        map: MappedBytes,
        start: usize,
        end: usize,
    },
    Owned(Vec<u8>),
}

impl Deref for Entry {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            EntryData::Mapped { map, start, end } => &(**map).as_ref()[*start..*end],
            EntryData::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Entry {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({} bytes)", self.len())
    }
}

//! Atomic, checksummed snapshot files: the application's state as of a slot, so the acceptor
//! store may compact the log below it ([`crate::store::AcceptorStore::compact`]).
//!
//! A snapshot is written to a temporary file, synced, renamed to its final name and the
//! directory synced, in that order; so after any crash the final name holds either nothing or
//! the whole snapshot. The newest two intact snapshots are kept. Reading picks the newest
//! intact one: a newer file that fails its checks (a torn write the disk lied about, a bit flip)
//! is skipped with a warning and the previous snapshot plus the log serve instead (FAULTS 26) —
//! unless the log was already compacted past what the previous snapshot covers, which is an
//! error naming the gap (FAULTS 27, [`Snapshots::load_covering`]).
//!
//! File `snapshot-{up_to:020}.snap` (little-endian):
//!
//! ```text
//! 0  [u8; 8] magic "PXWSNAP\0"
//! 8  u32     format version (1)
//! 12 u32     reserved, zero
//! 16 u64     up_to: the snapshot covers every slot below this
//! 24 u64     data length
//! 32 u32     crc32 of bytes 0..32 and of the data
//! 36 data
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::types::Slot;
use crate::wal::io::{OpenMode, StdVfs, Vfs};

const MAGIC: [u8; 8] = *b"PXWSNAP\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 36;
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
const KEEP: usize = 2;

/// One snapshot: the application's state covering every slot below `up_to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Every slot below this is covered.
    pub up_to: Slot,
    /// The application's bytes.
    pub data: Vec<u8>,
}

/// A directory of snapshot files.
#[derive(Debug)]
pub struct Snapshots {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    /// Planted bug for the crash test: skip the data `fdatasync`.
    #[cfg(test)]
    skip_data_sync: bool,
}

fn name(up_to: Slot) -> String {
    format!("snapshot-{:020}{SUFFIX}", up_to.0)
}

fn parse_name(n: &str) -> Option<Slot> {
    let digits = n.strip_prefix("snapshot-")?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Slot)
}

fn encode(up_to: Slot, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + data.len());
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&up_to.0.to_le_bytes());
    b.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&b);
    h.update(data);
    b.extend_from_slice(&h.finalize().to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// Checks and decodes a whole file; `expected` is the bound its name gives.
fn decode(path: &Path, bytes: &[u8], expected: Slot) -> Result<Snapshot> {
    let bad = |reason: &str| Error::SnapshotCorrupt {
        path: path.to_owned(),
        reason: reason.to_string(),
    };
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| bad("shorter than its header"))?;
    if header[..8] != MAGIC {
        return Err(bad("bad magic"));
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&header[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let version = u32_at(8);
    if version > VERSION {
        return Err(Error::VersionTooNew {
            path: path.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    if version == 0 || u32_at(12) != 0 {
        return Err(bad("bad version or reserved field"));
    }
    let up_to = Slot(u64_at(16));
    let len = usize::try_from(u64_at(24)).map_err(|_| bad("length overflows"))?;
    let data = &bytes[HEADER_LEN..];
    if data.len() != len {
        return Err(bad("length does not match the file"));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..32]);
    h.update(data);
    if h.finalize() != u32_at(32) {
        return Err(bad("checksum mismatch"));
    }
    if up_to != expected {
        return Err(bad("covers other slots than its name says"));
    }
    Ok(Snapshot {
        up_to,
        data: data.to_vec(),
    })
}

impl Snapshots {
    /// Opens (creating if missing) the snapshot directory `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>) -> Result<Snapshots> {
        Snapshots::open_with(Arc::new(StdVfs), dir)
    }

    /// Opens the directory over any [`Vfs`] (the simulator's disk, for one). Temporary files
    /// a crash left behind are removed.
    pub fn open_with(vfs: Arc<dyn Vfs>, dir: impl AsRef<Path>) -> Result<Snapshots> {
        let dir = dir.as_ref().to_owned();
        vfs.create_dir_all(&dir)
            .map_err(|e| Error::io("create", &dir, e))?;
        let s = Snapshots {
            vfs,
            dir,
            #[cfg(test)]
            skip_data_sync: false,
        };
        let mut removed = false;
        for n in s.names()? {
            if n.ends_with(TMP_SUFFIX) {
                let p = s.dir.join(&n);
                s.vfs.remove(&p).map_err(|e| Error::io("remove", &p, e))?;
                removed = true;
            }
        }
        if removed {
            s.sync_dir()?;
        }
        Ok(s)
    }

    fn names(&self) -> Result<Vec<String>> {
        self.vfs
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))
    }

    fn sync_dir(&self) -> Result<()> {
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("sync directory", &self.dir, e))
    }

    /// The bounds of the snapshot files present, newest first (intact or not).
    fn present(&self) -> Result<Vec<Slot>> {
        let mut v: Vec<Slot> = self.names()?.iter().filter_map(|n| parse_name(n)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        Ok(v)
    }

    fn read(&self, up_to: Slot) -> Result<Snapshot> {
        let path = self.dir.join(name(up_to));
        let f = self
            .vfs
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = f.len().map_err(|e| Error::io("stat", &path, e))?;
        let len = usize::try_from(len).map_err(|_| Error::SnapshotCorrupt {
            path: path.clone(),
            reason: "too large".into(),
        })?;
        let mut bytes = vec![0u8; len];
        f.read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io("read", &path, e))?;
        decode(&path, &bytes, up_to)
    }

    /// Writes a snapshot covering every slot below `up_to`, durably and atomically, then
    /// deletes all but the newest two intact snapshots. Only once this returns may the log be
    /// compacted below `up_to`.
    pub fn write(&self, up_to: Slot, data: &[u8]) -> Result<()> {
        let path = self.dir.join(name(up_to));
        let tmp = self.dir.join(format!("{}.tmp", name(up_to)));
        let _ = self.vfs.remove(&tmp);
        let f = self
            .vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let bytes = encode(up_to, data);
        f.write_all_at(&bytes, 0)
            .map_err(|e| Error::io("write", &tmp, e))?;
        #[cfg(test)]
        let sync = !self.skip_data_sync;
        #[cfg(not(test))]
        let sync = true;
        if sync {
            f.sync_data().map_err(|e| Error::io("fdatasync", &tmp, e))?;
        }
        drop(f);
        self.vfs
            .rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        self.sync_dir()?;
        // Keep the newest two intact snapshots; anything older goes.
        let mut intact = 0;
        let mut removed = false;
        for s in self.present()? {
            if intact >= KEEP {
                let p = self.dir.join(name(s));
                self.vfs
                    .remove(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
                removed = true;
            } else if self.read(s).is_ok() {
                intact += 1;
            }
        }
        if removed {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// The newest intact snapshot, if any. Newer files that fail their checks are skipped with
    /// a warning (FAULTS 26: the previous snapshot plus the log serve instead).
    pub fn latest(&self) -> Result<Option<Snapshot>> {
        for s in self.present()? {
            match self.read(s) {
                Ok(snap) => return Ok(Some(snap)),
                Err(e @ (Error::SnapshotCorrupt { .. } | Error::VersionTooNew { .. })) => {
                    tracing::warn!(error = %e, "skipping a damaged snapshot");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The newest intact snapshot, which must cover every slot below `needed` (the point the
    /// acceptor store compacted its log to): anything less cannot be completed from the log
    /// and is an error (FAULTS 27). `needed == Slot(0)` accepts no snapshot at all.
    pub fn load_covering(&self, needed: Slot) -> Result<Option<Snapshot>> {
        let latest = self.latest()?;
        let newest = latest.as_ref().map(|s| s.up_to);
        if needed > Slot(0) && newest.is_none_or(|n| n < needed) {
            return Err(Error::SnapshotMissing { needed, newest });
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::simdisk::{CrashSpec, Faults, SimDisk, TearFill};

    const DIR: &str = "/snap";

    fn open(disk: &SimDisk) -> Snapshots {
        Snapshots::open_with(Arc::new(disk.clone()), DIR).unwrap()
    }

    #[test]
    fn newest_wins_and_two_are_kept() {
        let disk = SimDisk::new();
        let s = open(&disk);
        assert_eq!(s.latest().unwrap(), None);
        for i in 1..=4u64 {
            s.write(Slot(i * 10), &vec![i as u8; 100 * i as usize])
                .unwrap();
        }
        let l = s.latest().unwrap().unwrap();
        assert_eq!((l.up_to, l.data.len()), (Slot(40), 400));
        assert_eq!(s.present().unwrap(), vec![Slot(40), Slot(30)]);
        // The real filesystem behaves the same.
        let dir = tempfile::tempdir().unwrap();
        let r = Snapshots::open(dir.path()).unwrap();
        r.write(Slot(5), b"state").unwrap();
        assert_eq!(r.latest().unwrap().unwrap().data, b"state");
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_unless_the_log_needs_it() {
        // FAULTS 26 and 27.
        let disk = SimDisk::new();
        let s = open(&disk);
        s.write(Slot(10), b"old state").unwrap();
        s.write(Slot(20), b"new state").unwrap();
        let p = Path::new(DIR).join(name(Slot(20)));
        let mut b = disk.read_file(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        disk.write_file(&p, b);
        assert_eq!(s.latest().unwrap().unwrap().up_to, Slot(10));
        assert_eq!(s.load_covering(Slot(10)).unwrap().unwrap().up_to, Slot(10));
        let err = s.load_covering(Slot(20)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SnapshotMissing {
                    needed: Slot(20),
                    newest: Some(Slot(10))
                }
            ),
            "{err}"
        );
        // A file from a newer format is refused with the version named, and skipped.
        let mut newer = encode(Slot(30), b"x");
        newer[8] = 9;
        disk.write_file(&Path::new(DIR).join(name(Slot(30))), newer);
        assert!(matches!(
            s.read(Slot(30)),
            Err(Error::VersionTooNew { found: 9, .. })
        ));
        assert_eq!(s.latest().unwrap().unwrap().up_to, Slot(10));
        // A snapshot renamed to another bound is refused.
        disk.write_file(&Path::new(DIR).join(name(Slot(40))), encode(Slot(41), b"y"));
        assert!(matches!(
            s.read(Slot(40)),
            Err(Error::SnapshotCorrupt { .. })
        ));
    }

    /// Every cut point of writing snapshot 20 over a durable snapshot 10, then crash images
    /// (unsynced writes kept or not, the last one torn, directory operations lost): the
    /// directory must reopen to snapshot 10 or 20, whole, never garbage, and to 20 if the write
    /// returned OK.
    fn crash_check(skip_data_sync: bool) -> std::result::Result<(), String> {
        for stop in 0..12u64 {
            for variant in 0..8u64 {
                let disk = SimDisk::new();
                let mut s = open(&disk);
                s.skip_data_sync = skip_data_sync;
                s.write(Slot(10), &[1u8; 3000]).map_err(|e| e.to_string())?;
                disk.set_faults(Faults {
                    stop_after_ops: Some(stop),
                    ..Faults::default()
                });
                let done = s.write(Slot(20), &[2u8; 5000]).is_ok();
                let n = disk.pending_writes();
                let tear = (variant % 2 == 1 && n > 0).then(|| {
                    let len = disk.pending_write_lens()[n - 1];
                    (n - 1, len / 2, TearFill::Garbage(variant))
                });
                let image = disk.crash(&CrashSpec {
                    keep: (0..n)
                        .map(|i| (variant >> 1) & (1 << (i % 2)) != 0)
                        .collect(),
                    tear,
                    namespace_ops_kept: ((variant as usize) / 4) * disk.pending_namespace_ops(),
                });
                let s = open(&image);
                let at = format!("cut {stop}, variant {variant}");
                match s.latest().map_err(|e| format!("{at}: {e}"))? {
                    Some(l) if l.up_to == Slot(10) && l.data == vec![1u8; 3000] => {
                        if done {
                            return Err(format!("{at}: a completed snapshot write was lost"));
                        }
                    }
                    Some(l) if l.up_to == Slot(20) && l.data == vec![2u8; 5000] => {}
                    other => return Err(format!("{at}: reopened to {other:?}")),
                }
                if image
                    .file_names()
                    .iter()
                    .any(|p| p.to_string_lossy().ends_with(".tmp"))
                {
                    return Err(format!("{at}: a temporary file survived reopening"));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn a_crash_at_any_point_of_a_write_leaves_an_intact_snapshot() {
        crash_check(false).unwrap();
    }

    #[test]
    fn the_crash_check_catches_a_write_acknowledged_before_its_fsync() {
        assert!(crash_check(true).is_err());
    }
}

//! An in-memory simulated disk implementing [`Vfs`], for crash and fault tests of the real WAL.
//!
//! Each file keeps two images: what the process sees (`live`) and what would survive a power
//! cut (`durable`), plus the list of writes made since its last `sync_data`. The directory
//! namespace likewise keeps a live and a durable map plus the operations since the last
//! `sync_dir`. [`SimDisk::crash`] builds the disk a reboot would find: the durable images plus
//! any chosen subset of the unsynced writes (one of them possibly torn at any byte, the rest of
//! it left old or filled with garbage) and a prefix of the unsynced namespace operations (ext4
//! journals those in order).
//!
//! Faults on demand: fail the n-th `sync_data` with EIO (and optionally let later ones
//! succeed), a space limit that makes growing writes fail with ENOSPC, read errors on a path,
//! and a "machine stops" point after which every operation fails (a cut point for crash
//! enumeration).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::io::{MappedBytes, OpenMode, Vfs, VfsFile};

/// A simulated disk. Cloning gives another handle to the same disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    inner: Arc<Mutex<DiskState>>,
}

/// A file's bytes as the running system sees them (`live`) and as they are on the platter
/// (`durable`). Shared copy-on-write: cloning a disk or a crash image, or writing one file's
/// bytes into several disks, copies nothing until a file is written.
#[derive(Debug, Default, Clone)]
struct Inode {
    live: Arc<Vec<u8>>,
    durable: Arc<Vec<u8>>,
}

/// One write not yet made durable, in the order it was issued.
#[derive(Debug, Clone)]
struct PendingWrite {
    inode: u64,
    kind: WriteKind,
}

#[derive(Debug, Clone)]
enum WriteKind {
    Data { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone)]
enum NsOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

/// Fault switches. All off by default.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Fail the n-th `sync_data` from now (0 = the next one) with EIO.
    pub fail_sync_at: Option<u64>,
    /// After the failing sync, keep failing every later sync too (else they "succeed").
    pub fail_sync_sticky: bool,
    /// Total bytes all files may occupy; a write that would grow past it fails with ENOSPC
    /// (after writing what fits, like a real short write).
    pub space_limit_bytes: Option<u64>,
    /// Reads of files whose name contains this string fail with EIO.
    pub fail_reads_of: Option<String>,
    /// After this many more operations the machine "stops": every later operation fails with
    /// EIO and changes nothing (a crash cut point).
    pub stop_after_ops: Option<u64>,
    /// Writes through direct handles fail with EINVAL (a filesystem or device that accepts
    /// `O_DIRECT` at open but not these writes' alignment).
    pub refuse_direct_writes: bool,
}

#[derive(Debug, Default, Clone)]
struct DiskState {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    live_names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending_ns: Vec<NsOp>,
    pending: Vec<PendingWrite>,
    faults: Faults,
    syncs: u64,
    ops: u64,
    stopped: bool,
}

/// How a torn write's unwritten part looks after the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearFill {
    /// The old bytes stay (zeros in a preallocated file).
    Old,
    /// Pseudo-random garbage from this seed (a sector rewritten halfway).
    Garbage(u64),
}

/// What survives a crash.
#[derive(Debug, Clone, Default)]
pub struct CrashSpec {
    /// For each unsynced write, in issue order: does it reach the disk? Missing entries: no.
    pub keep: Vec<bool>,
    /// Tear one unsynced write (by index): keep its first `n` bytes, fill the rest.
    pub tear: Option<(usize, usize, TearFill)>,
    /// How many unsynced namespace operations (creates, renames, removes) survive, in order.
    pub namespace_ops_kept: usize,
}

fn eio(_what: &str) -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

impl DiskState {
    fn tick(&mut self, what: &str) -> io::Result<()> {
        if self.stopped {
            return Err(eio(what));
        }
        if let Some(n) = self.faults.stop_after_ops {
            if self.ops >= n {
                self.stopped = true;
                return Err(eio(what));
            }
        }
        self.ops += 1;
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.live.len() as u64).sum()
    }

    fn apply_ns(names: &mut BTreeMap<PathBuf, u64>, op: &NsOp) {
        match op {
            NsOp::Link(p, ino) => {
                names.insert(p.clone(), *ino);
            }
            NsOp::Unlink(p) => {
                names.remove(p);
            }
        }
    }
}

fn apply_write(buf: &mut Arc<Vec<u8>>, kind: &WriteKind) {
    match kind {
        // An empty write changes nothing (it does not extend the file).
        WriteKind::Data { bytes, .. } if bytes.is_empty() => {}
        WriteKind::Data { offset, bytes } => {
            let buf = Arc::make_mut(buf);
            let end = *offset as usize + bytes.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[*offset as usize..end].copy_from_slice(bytes);
        }
        WriteKind::SetLen(len) => Arc::make_mut(buf).resize(*len as usize, 0),
    }
}

impl SimDisk {
    /// A new, empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Replaces the fault switches.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.inner.lock();
        st.faults = faults;
        st.syncs = 0;
        st.ops = 0;
    }

    /// Operations done since the last [`SimDisk::set_faults`].
    pub fn ops(&self) -> u64 {
        self.inner.lock().ops
    }

    /// True once the machine stopped (see [`Faults::stop_after_ops`]).
    pub fn stopped(&self) -> bool {
        self.inner.lock().stopped
    }

    /// Number of writes not yet made durable.
    pub fn pending_writes(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// Byte length of each unsynced write, in issue order (for choosing tear points).
    pub fn pending_write_lens(&self) -> Vec<usize> {
        self.inner
            .lock()
            .pending
            .iter()
            .map(|w| match &w.kind {
                WriteKind::Data { bytes, .. } => bytes.len(),
                WriteKind::SetLen(_) => 0,
            })
            .collect()
    }

    /// Number of namespace operations not yet made durable.
    pub fn pending_namespace_ops(&self) -> usize {
        self.inner.lock().pending_ns.len()
    }

    /// The disk a reboot would find after a power cut now, per `spec`. The original is
    /// unchanged.
    pub fn crash(&self, spec: &CrashSpec) -> SimDisk {
        let st = self.inner.lock();
        let mut inodes: BTreeMap<u64, Inode> = st
            .inodes
            .iter()
            .map(|(&k, v)| {
                (
                    k,
                    Inode {
                        live: v.durable.clone(),
                        durable: v.durable.clone(),
                    },
                )
            })
            .collect();
        for (i, w) in st.pending.iter().enumerate() {
            let Some(inode) = inodes.get_mut(&w.inode) else {
                continue;
            };
            match spec.tear {
                Some((t, n, fill)) if t == i => {
                    if let WriteKind::Data { offset, bytes } = &w.kind {
                        let n = n.min(bytes.len());
                        let mut torn = bytes[..n].to_vec();
                        let end = *offset as usize + bytes.len();
                        if inode.live.len() < end {
                            Arc::make_mut(&mut inode.live).resize(end, 0);
                        }
                        match fill {
                            TearFill::Old => {
                                torn.extend_from_slice(&inode.live[*offset as usize + n..end])
                            }
                            TearFill::Garbage(seed) => {
                                let mut x = seed | 1;
                                for _ in n..bytes.len() {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                    torn.push(x as u8);
                                }
                            }
                        }
                        apply_write(
                            &mut inode.live,
                            &WriteKind::Data {
                                offset: *offset,
                                bytes: torn,
                            },
                        );
                    }
                }
                _ => {
                    if spec.keep.get(i).copied().unwrap_or(false) {
                        apply_write(&mut inode.live, &w.kind);
                    }
                }
            }
        }
        // After the reboot everything on the platter is durable.
        for inode in inodes.values_mut() {
            inode.durable = inode.live.clone();
        }
        let mut names = st.durable_names.clone();
        for op in st.pending_ns.iter().take(spec.namespace_ops_kept) {
            DiskState::apply_ns(&mut names, op);
        }
        let state = DiskState {
            inodes,
            next_inode: st.next_inode,
            live_names: names.clone(),
            durable_names: names,
            ..DiskState::default()
        };
        SimDisk {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// The disk after a process crash only (SIGKILL): everything written survives.
    pub fn process_crash(&self) -> SimDisk {
        let st = self.inner.lock();
        let n = st.pending.len();
        let ns = st.pending_ns.len();
        drop(st);
        self.crash(&CrashSpec {
            keep: vec![true; n],
            tear: None,
            namespace_ops_kept: ns,
        })
    }

    /// The live contents of a file (for tests that edit bytes "offline").
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.inner.lock();
        let ino = st.live_names.get(path)?;
        st.inodes.get(ino).map(|i| i.live.to_vec())
    }

    /// Replaces a file's contents, durably (an offline edit).
    pub fn write_file(&self, path: &Path, bytes: Vec<u8>) {
        self.write_file_shared(path, Arc::new(bytes));
    }

    /// [`write_file`](Self::write_file) with bytes shared copy-on-write: writing the same
    /// bytes into many disks copies them only where a disk changes the file.
    pub fn write_file_shared(&self, path: &Path, bytes: Arc<Vec<u8>>) {
        let mut st = self.inner.lock();
        let ino = match st.live_names.get(path) {
            Some(&i) => i,
            None => {
                let i = st.next_inode;
                st.next_inode += 1;
                st.live_names.insert(path.to_owned(), i);
                st.durable_names.insert(path.to_owned(), i);
                i
            }
        };
        st.inodes.insert(
            ino,
            Inode {
                live: bytes.clone(),
                durable: bytes,
            },
        );
    }

    /// Removes a file durably (an offline edit).
    pub fn delete_file(&self, path: &Path) {
        let mut st = self.inner.lock();
        st.live_names.remove(path);
        st.durable_names.remove(path);
    }

    /// Names of the live files, sorted.
    pub fn file_names(&self) -> Vec<PathBuf> {
        self.inner.lock().live_names.keys().cloned().collect()
    }
}

#[derive(Debug)]
struct SimFile {
    disk: SimDisk,
    inode: u64,
    name: String,
    writable: bool,
    /// A direct-I/O handle: writes not 4 KiB-aligned (memory, offset, length) fail with
    /// EINVAL, as `O_DIRECT` ones do.
    direct: bool,
}

impl Vfs for SimDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.inner.lock().tick("mkdir")
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.inner.lock();
        st.tick("list")?;
        Ok(st
            .live_names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut st = self.inner.lock();
        st.tick("open")?;
        let inode = match (mode, st.live_names.get(path).copied()) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::from_raw_os_error(libc::EEXIST))
            }
            (OpenMode::CreateNew, None) => {
                let i = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(i, Inode::default());
                st.live_names.insert(path.to_owned(), i);
                st.pending_ns.push(NsOp::Link(path.to_owned(), i));
                i
            }
            (_, Some(i)) => i,
            (_, None) => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            inode,
            name: path.to_string_lossy().into_owned(),
            writable: mode != OpenMode::Read,
            direct: false,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.inner.lock();
        st.tick("rename")?;
        let ino = st
            .live_names
            .remove(from)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        st.live_names.insert(to.to_owned(), ino);
        st.pending_ns.push(NsOp::Unlink(from.to_owned()));
        st.pending_ns.push(NsOp::Link(to.to_owned(), ino));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.inner.lock();
        st.tick("remove")?;
        st.live_names
            .remove(path)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        st.pending_ns.push(NsOp::Unlink(path.to_owned()));
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut st = self.inner.lock();
        st.tick("sync_dir")?;
        let ops = std::mem::take(&mut st.pending_ns);
        for op in &ops {
            DiskState::apply_ns(&mut st.durable_names, op);
        }
        Ok(())
    }
}

impl VfsFile for SimFile {
    fn direct(&self) -> io::Result<Option<Arc<dyn VfsFile>>> {
        Ok(Some(Arc::new(SimFile {
            disk: self.disk.clone(),
            inode: self.inode,
            name: self.name.clone(),
            writable: self.writable,
            direct: true,
        })))
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.disk.inner.lock();
        Ok(st
            .inodes
            .get(&self.inode)
            .map_or(0, |i| i.live.len() as u64))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut st = self.disk.inner.lock();
        st.tick("read")?;
        if let Some(pat) = &st.faults.fail_reads_of {
            if self.name.contains(pat.as_str()) {
                return Err(eio("read"));
            }
        }
        let live = &st.inodes.get(&self.inode).map(|i| &i.live);
        let Some(live) = live else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        let end = offset as usize + buf.len();
        if end > live.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&live[offset as usize..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.disk.inner.lock();
        st.tick("write")?;
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if self.direct
            && (st.faults.refuse_direct_writes
                || offset % 4096 != 0
                || buf.len() % 4096 != 0
                || buf.as_ptr() as usize % 4096 != 0)
        {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let cur_len = st
            .inodes
            .get(&self.inode)
            .map_or(0, |i| i.live.len() as u64);
        let end = offset + buf.len() as u64;
        let mut bytes = buf;
        let mut short = false;
        if let Some(limit) = st.faults.space_limit_bytes {
            let grow = end.saturating_sub(cur_len);
            let used = st.used_bytes();
            if grow > 0 && used + grow > limit {
                let room = limit.saturating_sub(used);
                let fits = (cur_len + room)
                    .saturating_sub(offset)
                    .min(buf.len() as u64);
                bytes = &buf[..fits as usize];
                short = true;
            }
        }
        let kind = WriteKind::Data {
            offset,
            bytes: bytes.to_vec(),
        };
        if let Some(ino) = st.inodes.get_mut(&self.inode) {
            apply_write(&mut ino.live, &kind);
        }
        if !bytes.is_empty() {
            st.pending.push(PendingWrite {
                inode: self.inode,
                kind,
            });
        }
        if short {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.inner.lock();
        st.tick("fdatasync")?;
        let n = st.syncs;
        st.syncs += 1;
        if let Some(at) = st.faults.fail_sync_at {
            if n == at || (st.faults.fail_sync_sticky && n > at) {
                // Like Linux after a failed writeback: the dirty pages are dropped and the
                // error is reported once; the data never reaches the disk.
                let inode = self.inode;
                st.pending.retain(|w| w.inode != inode);
                if let Some(ino) = st.inodes.get_mut(&inode) {
                    ino.live = ino.durable.clone();
                }
                return Err(eio("fdatasync"));
            }
        }
        let inode = self.inode;
        let mut mine = Vec::new();
        st.pending.retain(|w| {
            if w.inode == inode {
                mine.push(w.kind.clone());
                false
            } else {
                true
            }
        });
        if let Some(ino) = st.inodes.get_mut(&inode) {
            for k in &mine {
                apply_write(&mut ino.durable, k);
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.disk.inner.lock();
        st.tick("set_len")?;
        let kind = WriteKind::SetLen(len);
        if let Some(ino) = st.inodes.get_mut(&self.inode) {
            apply_write(&mut ino.live, &kind);
        }
        st.pending.push(PendingWrite {
            inode: self.inode,
            kind,
        });
        Ok(())
    }

    fn map(&self) -> io::Result<Option<MappedBytes>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_handle_refuses_unaligned_writes_and_shares_the_file() {
        let disk = SimDisk::new();
        let f = disk.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        let d = f
            .direct()
            .unwrap()
            .expect("the simulated disk offers direct handles");
        let mut buf = vec![0u8; 3 * 4096];
        let skew = buf.as_ptr().align_offset(4096);
        buf[skew..skew + 4096].fill(7);
        let einval = |r: io::Result<()>| r.unwrap_err().raw_os_error() == Some(libc::EINVAL);
        assert!(einval(d.write_all_at(&buf[skew..skew + 4096], 100)));
        assert!(einval(d.write_all_at(&buf[skew..skew + 100], 0)));
        assert!(einval(d.write_all_at(&buf[skew + 1..skew + 1 + 4096], 0)));
        d.write_all_at(&buf[skew..skew + 4096], 4096).unwrap();
        let mut back = [0u8; 4096];
        f.read_exact_at(&mut back, 4096).unwrap();
        assert_eq!(back, [7u8; 4096]);
        // Like any write, durable only after a sync.
        let c = disk.crash(&CrashSpec::default());
        assert!(c
            .read_file(Path::new("/d/a"))
            .is_none_or(|b| b.len() < 8192 || b[4096..8192] != [7u8; 4096]));
    }

    #[test]
    fn unsynced_writes_and_names_are_lost_in_a_crash() {
        let disk = SimDisk::new();
        let dir = Path::new("/d");
        let f = disk.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        // The file's data is durable but its name is not (no directory sync yet).
        let c = disk.crash(&CrashSpec::default());
        assert!(c.read_file(&dir.join("a")).is_none());
        disk.sync_dir(dir).unwrap();
        f.write_all_at(b"world", 5).unwrap();
        let c = disk.crash(&CrashSpec::default());
        assert_eq!(c.read_file(&dir.join("a")).unwrap(), b"hello");
        let c = disk.crash(&CrashSpec {
            keep: vec![true],
            ..CrashSpec::default()
        });
        assert_eq!(c.read_file(&dir.join("a")).unwrap(), b"helloworld");
        let c = disk.crash(&CrashSpec {
            tear: Some((0, 2, TearFill::Old)),
            ..CrashSpec::default()
        });
        assert_eq!(c.read_file(&dir.join("a")).unwrap(), b"hellowo\0\0\0");
    }

    #[test]
    fn failed_sync_drops_dirty_data_and_space_limit_gives_enospc() {
        let disk = SimDisk::new();
        let f = disk.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        disk.set_faults(Faults {
            fail_sync_at: Some(0),
            space_limit_bytes: Some(8),
            ..Faults::default()
        });
        f.write_all_at(b"abcd", 0).unwrap();
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        // The next sync "succeeds", but the data it should have saved is gone.
        f.sync_data().unwrap();
        assert_eq!(f.len().unwrap(), 0);
        let err = f.write_all_at(b"0123456789", 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(f.len().unwrap(), 8, "a short write stores what fits");
    }
}

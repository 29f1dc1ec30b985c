//! Raw-disk probes: the disk's own rates, measured in the directory a benchmark runs in and in
//! the same run, so paxwal's figures can be stated as ratios to them. Every probe opens, fills
//! and times its files the one way below ([`ProbeFile`]); the append, replication and peer
//! benchmarks and the criterion benches in `benches/` all call these.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Bytes of one overwrite in the `fdatasync` probes.
pub const BLOCK_BYTES: usize = 4096;
/// Blocks in an overwrite probe's file (4 MiB): the overwrites cycle through them.
pub const OVERWRITE_BLOCKS: u64 = 1024;
/// Where a write loop wraps around in its file.
const LOOP_SPAN_BYTES: u64 = 64 << 20;

/// A probe's scratch file, removed when dropped.
#[derive(Debug)]
pub struct ProbeFile {
    file: File,
    path: PathBuf,
    block: Vec<u8>,
    blocks: u64,
}

impl ProbeFile {
    /// Creates `path` (truncating it) and writes `blocks` blocks of `fill` into it, then syncs
    /// it (data and size), so later overwrites allocate nothing: the case a preallocated
    /// segment is in. `blocks` = 0 leaves it empty, so writes extend it.
    pub fn written(path: PathBuf, blocks: u64, fill: u8) -> Result<ProbeFile> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let f = ProbeFile {
            file,
            block: vec![fill; BLOCK_BYTES],
            blocks,
            path,
        };
        let chunk = vec![fill; 1 << 20];
        let total = blocks * BLOCK_BYTES as u64;
        let mut at = 0;
        while at < total {
            let n = (total - at).min(chunk.len() as u64) as usize;
            f.write_at(&chunk[..n], at)?;
            at += n as u64;
        }
        f.file
            .sync_all()
            .map_err(|e| Error::io("fsync", &f.path, e))?;
        Ok(f)
    }

    /// Writes `buf` at `at` (no sync).
    pub fn write_at(&self, buf: &[u8], at: u64) -> Result<()> {
        self.file
            .write_all_at(buf, at)
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// Writes `buf` at `at`, then `fdatasync`.
    pub fn write_sync(&self, buf: &[u8], at: u64) -> Result<()> {
        self.write_at(buf, at)?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &self.path, e))
    }

    /// Overwrites block `i` (modulo the blocks written) with its fill, then `fdatasync`.
    pub fn overwrite_sync(&self, i: u64) -> Result<()> {
        let at = (i % self.blocks.max(1)) * BLOCK_BYTES as u64;
        self.write_sync(&self.block, at)
    }
}

impl Drop for ProbeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `fdatasync` calls per second of `files` files synced concurrently, one thread each, every
/// sync after a 4 KiB overwrite inside an already-written file, for about `budget` (at least
/// 20 syncs each); all files together.
pub fn overwrite_fsync_rate(dir: &Path, files: usize, budget: Duration) -> Result<f64> {
    let probes = (0..files)
        .map(|i| {
            ProbeFile::written(
                dir.join(format!("raw-overwrite-{i}.tmp")),
                OVERWRITE_BLOCKS,
                0x5a,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let counts = run_threads(&probes, |f| {
        let mut n = 0u64;
        while start.elapsed() < budget || n < 20 {
            f.overwrite_sync(n)?;
            n += 1;
        }
        Ok(n)
    });
    let secs = start.elapsed().as_secs_f64();
    Ok(counts?.iter().sum::<u64>() as f64 / secs)
}

/// The same probe as [`overwrite_fsync_rate`] (one file) with every 4 KiB overwrite written
/// through a second, `O_DIRECT` handle from an aligned buffer, as the log writes a synced group
/// by default (`wal::Options::direct_writes`): the baseline a 1-writer log matches. `None` where
/// the filesystem refuses `O_DIRECT` (tmpfs).
pub fn direct_overwrite_fsync_rate(dir: &Path, budget: Duration) -> Result<Option<f64>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = ProbeFile::written(dir.join("raw-direct.tmp"), OVERWRITE_BLOCKS, 0x5a)?;
    let direct = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&f.path)
    {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(e) => return Err(Error::io("open O_DIRECT", &f.path, e)),
    };
    let mut buf = vec![0x5au8; 2 * BLOCK_BYTES];
    let skew = buf.as_ptr().align_offset(BLOCK_BYTES);
    let block = &mut buf[skew..skew + BLOCK_BYTES];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 20 {
        let at = (n % OVERWRITE_BLOCKS) * BLOCK_BYTES as u64;
        match direct.write_all_at(block, at) {
            Ok(()) => {}
            Err(e) if n == 0 && e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(Error::io("write O_DIRECT", &f.path, e)),
        }
        f.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &f.path, e))?;
        n += 1;
    }
    Ok(Some(n as f64 / start.elapsed().as_secs_f64()))
}

/// Writes `mib` MiB in 1 MiB writes to a new file at `path`, then one `fdatasync`; returns the
/// time taken (the file is removed).
pub fn seq_write(path: &Path, mib: usize) -> Result<Duration> {
    let t = Instant::now();
    let f = ProbeFile::written(path.to_owned(), 0, 0xa5)?;
    let chunk = vec![0xa5u8; 1 << 20];
    for i in 0..mib as u64 {
        f.write_at(&chunk, i << 20)?;
    }
    f.file
        .sync_data()
        .map_err(|e| Error::io("fdatasync", &f.path, e))?;
    Ok(t.elapsed())
}

/// Sequential write bandwidth in `dir`, MiB/s ([`seq_write`] of `mib` MiB).
pub fn seq_write_mib_per_sec(dir: &Path, mib: usize) -> Result<f64> {
    let took = seq_write(&dir.join("raw-seq.tmp"), mib)?;
    Ok(mib as f64 / took.as_secs_f64())
}

/// How long a write loop runs.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// This many calls per writer.
    Calls(u64),
    /// About this long (and at least 5 calls per writer).
    Elapsed(Duration),
}

/// Where a write loop's bytes go ([`write_sync_loop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// One pre-zeroed 64 MiB file, the writes wrapping around in it: every sync overwrites
    /// written blocks (the case of a log that reuses its compacted segment files).
    Reused,
    /// One fresh file, every write extending it (never wrapping: each sync also allocates
    /// blocks and grows the file).
    Extending,
    /// A new 64 MiB file for every 64 MiB written, each zero-filled and synced by a second
    /// thread while the loop writes the file before it, the first two ready before timing
    /// starts: what a log that only grows does with zero-filled segments (its preparer makes the
    /// next segment, 1 MiB writes of zeros and one fsync, while the writers fill the active one).
    ZeroFilledAhead,
}

/// The raw counterpart of a durable append: `writers` threads, each call one `pwrite` of
/// `call_bytes` then `fdatasync`, calls placed one after another into `space`. Returns calls
/// per second, all writers together.
pub fn write_sync_loop(
    dir: &Path,
    call_bytes: usize,
    writers: usize,
    until: Until,
    space: Space,
) -> Result<f64> {
    Ok(write_sync_loop_in(dir, call_bytes, writers, until, space, LOOP_SPAN_BYTES)?.0)
}

/// [`write_sync_loop`] with the file size as a parameter; also returns the files it made.
fn write_sync_loop_in(
    dir: &Path,
    call_bytes: usize,
    writers: usize,
    until: Until,
    space: Space,
    span: u64,
) -> Result<(f64, u64)> {
    let call = call_bytes.max(1) as u64;
    let span = span.max(2 * call);
    let slots = span / call;
    let blocks = span.div_ceil(BLOCK_BYTES as u64);
    let files = Files::new(dir, space, blocks)?;
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let writers: Vec<usize> = (0..writers.max(1)).collect();
    let (counts, secs) = std::thread::scope(|s| {
        let preparer = (space == Space::ZeroFilledAhead).then(|| s.spawn(|| files.prepare_ahead()));
        let counts = run_threads(&writers, |&i| {
            let buf = vec![0x3c ^ i as u8; call_bytes];
            // One file for the whole loop, fetched once, unless a new one comes every span.
            let fixed = match space {
                Space::ZeroFilledAhead => None,
                Space::Reused | Space::Extending => Some(files.get(0)?),
            };
            let mut n = 0u64;
            loop {
                let more = match until {
                    Until::Calls(c) => n < c,
                    Until::Elapsed(budget) => start.elapsed() < budget || n < 5,
                };
                if !more {
                    return Ok(n);
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                let at = if space == Space::Extending {
                    k * call
                } else {
                    (k % slots) * call
                };
                match &fixed {
                    Some(f) => f.write_sync(&buf, at)?,
                    None => files.get(k / slots)?.write_sync(&buf, at)?,
                }
                n += 1;
            }
        });
        // Timing ends with the writers; the preparer may still be filling one file.
        let secs = start.elapsed().as_secs_f64();
        files.stop();
        if let Some(p) = preparer {
            let joined = p
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("the probe's preparer panicked".into())));
            if let Err(e) = joined {
                return (Err(e), secs);
            }
        }
        (counts, secs)
    });
    let made = files.made();
    Ok((counts?.iter().sum::<u64>() as f64 / secs, made))
}

/// The files of one [`write_sync_loop`]: file `i` is made before any writer needs it (for
/// [`Space::ZeroFilledAhead`], by [`Files::prepare_ahead`] once file `i - 1` is in use).
struct Files<'a> {
    dir: &'a Path,
    blocks: u64,
    state: parking_lot::Mutex<FilesState>,
    cv: parking_lot::Condvar,
}

#[derive(Default)]
struct FilesState {
    /// Files made so far, by index; file `j` is dropped here once file `j + 2` is in use, and
    /// removed when its last writer is done with it.
    made: Vec<Option<std::sync::Arc<ProbeFile>>>,
    /// The highest file index a writer has asked for.
    in_use: u64,
    stop: bool,
    error: bool,
}

impl<'a> Files<'a> {
    fn new(dir: &'a Path, space: Space, blocks: u64) -> Result<Files<'a>> {
        let files = Files {
            dir,
            blocks,
            state: Default::default(),
            cv: Default::default(),
        };
        {
            let mut st = files.state.lock();
            match space {
                Space::Reused => st.made.push(Some(files.make(0, blocks)?)),
                Space::Extending => st.made.push(Some(files.make(0, 0)?)),
                Space::ZeroFilledAhead => {
                    st.made.push(Some(files.make(0, blocks)?));
                    st.made.push(Some(files.make(1, blocks)?));
                }
            }
        }
        Ok(files)
    }

    fn make(&self, i: u64, blocks: u64) -> Result<std::sync::Arc<ProbeFile>> {
        let path = self.dir.join(format!("raw-loop-{i}.tmp"));
        Ok(std::sync::Arc::new(ProbeFile::written(path, blocks, 0)?))
    }

    /// File `i`, waiting for the preparer to make it.
    fn get(&self, i: u64) -> Result<std::sync::Arc<ProbeFile>> {
        let mut st = self.state.lock();
        if i > st.in_use {
            st.in_use = i;
            // Files two behind are no longer needed (a writer still on one keeps its handle).
            let behind = (i as usize).saturating_sub(1).min(st.made.len());
            st.made[..behind].iter_mut().for_each(|f| *f = None);
            self.cv.notify_all();
        }
        loop {
            if let Some(Some(f)) = st.made.get(i as usize) {
                return Ok(f.clone());
            }
            if st.error || st.stop {
                return Err(Error::Invalid("the probe's preparer stopped".into()));
            }
            self.cv.wait(&mut st);
        }
    }

    /// Makes file `i` once file `i - 1` is in use, until [`Files::stop`].
    fn prepare_ahead(&self) -> Result<()> {
        loop {
            let i = {
                let mut st = self.state.lock();
                loop {
                    if st.stop {
                        return Ok(());
                    }
                    let i = st.made.len() as u64;
                    if st.in_use + 1 >= i {
                        break i;
                    }
                    self.cv.wait(&mut st);
                }
            };
            let made = self.make(i, self.blocks);
            let mut st = self.state.lock();
            match made {
                Ok(f) => st.made.push(Some(f)),
                Err(e) => {
                    st.error = true;
                    self.cv.notify_all();
                    return Err(e);
                }
            }
            self.cv.notify_all();
        }
    }

    fn stop(&self) {
        self.state.lock().stop = true;
        self.cv.notify_all();
    }

    fn made(&self) -> u64 {
        self.state.lock().made.len() as u64
    }
}

/// Runs `work` once per item on its own thread; the results in item order.
fn run_threads<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let results: Vec<Result<R>> = std::thread::scope(|s| {
        let hs: Vec<_> = items.iter().map(|it| s.spawn(|| work(it))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a probe thread panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_measure_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let short = Duration::from_millis(20);
        assert!(overwrite_fsync_rate(dir.path(), 2, short).unwrap() > 0.0);
        // Some on a filesystem that takes O_DIRECT, None (not an error) on one that does not.
        if let Some(rate) = direct_overwrite_fsync_rate(dir.path(), short).unwrap() {
            assert!(rate > 0.0);
        }
        assert!(seq_write_mib_per_sec(dir.path(), 2).unwrap() > 0.0);
        for space in [Space::Reused, Space::Extending] {
            let calls = write_sync_loop(dir.path(), 1000, 2, Until::Calls(3), space).unwrap();
            assert!(calls > 0.0);
        }
        // Every probe removes its files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_zero_fill_model_makes_one_file_per_span_one_ahead() {
        let dir = tempfile::tempdir().unwrap();
        // 1 MiB files, 256 KiB calls: 20 calls by 2 writers fill files 0..=4; file 5 is made
        // once file 4 is in use (unless the writers are done first), and no file after it.
        let (calls, made) = write_sync_loop_in(
            dir.path(),
            256 << 10,
            2,
            Until::Calls(10),
            Space::ZeroFilledAhead,
            1 << 20,
        )
        .unwrap();
        assert!(calls > 0.0);
        assert!(made == 5 || made == 6, "{made} files made");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

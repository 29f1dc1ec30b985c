//! The generic segmented write-ahead log.
//!
//! A [`Wal`] stores opaque records at consecutive [`Lsn`]s in segment files, makes them durable
//! in groups (one `fdatasync` for many concurrent appends), serves reads (zero-copy from memory
//! maps), recovers after a crash, and deletes whole segments below a point
//! ([`Wal::compact_before`]). It knows nothing of Paxos.
//!
//! ```
//! use paxwal::wal::{Options, Wal};
//! let dir = tempfile::tempdir()?;
//! let wal = Wal::open(dir.path(), Options::default())?;
//! let lsn = wal.append(b"hello")?; // durable when it returns (SyncMode::Always)
//! assert_eq!(&*wal.read(lsn)?, b"hello");
//! wal.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Log pointers, always: `first_lsn ≤ durable_lsn + 1`, `durable_lsn ≤ written ≤ last_lsn`
//! (checked in debug builds).

pub mod codec;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
mod options;
pub mod recovery;
mod segment;
pub mod simdisk;
pub mod verify;
mod writer;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

use self::codec::{align_up, Meta, BLOCK};
use self::io::OpenMode;
pub use self::io::{StdVfs, Vfs, VfsFile};
pub use self::options::{Options, PlantedBugs, Prealloc, RecoveryMode, SyncMode};
use self::recovery::analyze;
pub use self::recovery::TornTail;
pub use self::segment::Entry;
use self::segment::Segment;
use self::writer::{Active, PrepState, State};
use crate::error::{Error, Result};
use crate::types::{Lsn, SegmentId};

/// Counters since open.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// `fdatasync` calls that made appends durable.
    pub fsyncs: u64,
    /// Frames written.
    pub frames: u64,
    /// Segments that reused a compacted segment's file instead of a new one.
    pub segments_recycled: u64,
}

/// A handle on queued appends: wait for it with [`Wal::wait_durable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// First LSN assigned.
    pub first: Lsn,
    /// Last LSN assigned.
    pub last: Lsn,
    generation: u64,
}

/// The future of [`Wal::durable`]: resolves once its appends are durable.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Durable<'a> {
    wal: &'a Wal,
    t: Appended,
}

impl std::future::Future for Durable<'_> {
    type Output = Result<()>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        use std::task::Poll;
        let t = self.t;
        let inner = &*self.wal.inner;
        // Fast path, as in `wait_durable`.
        if inner.acked_without_lock(&t) {
            return Poll::Ready(Ok(()));
        }
        let mut st = inner.state.lock();
        if let Some(e) = st.rolled_back(t.generation, t.last) {
            return Poll::Ready(Err(e.clone()));
        }
        if st.durable >= t.last {
            return Poll::Ready(Ok(()));
        }
        if let Some(p) = &st.poisoned {
            return Poll::Ready(Err(Error::Poisoned { cause: p.clone() }));
        }
        if st.closed {
            return Poll::Ready(Err(Error::Closed));
        }
        // Register (once per task: a re-poll replaces its own waker) and ask for a sync.
        let waker = cx.waker();
        match st.wakers.iter_mut().find(|(w, _)| w.will_wake(waker)) {
            Some(slot) => slot.1 = slot.1.max(t.last),
            None => st.wakers.push((waker.clone(), t.last)),
        }
        if t.last > st.async_demand {
            st.async_demand = t.last;
            inner.flush_cv.notify_one();
        }
        drop(st);
        // Started after the demand is recorded: the flusher's first look sees it.
        match self.wal.ensure_flusher() {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// What `open` found and did.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// A torn tail that was truncated (or would be, when read-only).
    pub torn: Option<TornTail>,
    /// Corruption tolerated by the recovery mode (point-in-time, skip-corrupted).
    pub corruption: Option<Error>,
    /// LSN ranges skipped (skip-corrupted).
    pub skipped: Vec<(Lsn, Lsn)>,
    /// Files deleted (temporaries, orphans, dropped segments).
    pub deleted: Vec<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub vfs: Arc<dyn Vfs>,
    pub opts: Options,
    pub state: Mutex<State>,
    pub durable_cv: Condvar,
    pub flush_cv: Condvar,
    pub segments: RwLock<Vec<Arc<Segment>>>,
    pub active: Mutex<Active>,
    pub prep: Mutex<PrepState>,
    pub prep_cv: Condvar,
    pub compact_lock: Mutex<()>,
    /// `state.durable`, readable without the lock by parked waiters.
    pub durable_atomic: std::sync::atomic::AtomicU64,
    /// `state.generation` (bumped by a "no space" rollback), readable without the lock.
    pub generation_atomic: std::sync::atomic::AtomicU64,
    /// Leader rounds finished; parked waiters wake when it moves.
    pub leader_rounds: std::sync::atomic::AtomicU64,
    /// Writers a finished leader left for the first writer it woke to wake.
    pub relay: parking_lot::Mutex<Vec<std::thread::Thread>>,
    pub relay_pending: std::sync::atomic::AtomicBool,
    /// Segments prepared by reusing a compacted file.
    pub recycled: std::sync::atomic::AtomicU64,
}

/// A segmented, checksummed write-ahead log. `Send + Sync`: many threads append at once.
#[derive(Debug)]
pub struct Wal {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The flusher runs (in `Always` it starts at the first `Durable` that waits).
    flusher: AtomicBool,
    report: RecoveryReport,
}

impl Wal {
    /// Opens (creating if missing) the log in `dir` on the real filesystem, recovering it.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Wal> {
        Wal::open_with(Arc::new(StdVfs), dir, opts)
    }

    /// Opens the log over any [`Vfs`] (for example the simulated disk).
    pub fn open_with(vfs: Arc<dyn Vfs>, dir: impl AsRef<Path>, opts: Options) -> Result<Wal> {
        opts.validate()?;
        let dir = dir.as_ref().to_owned();
        let writable = !opts.read_only;
        if writable {
            vfs.create_dir_all(&dir)
                .map_err(|e| Error::io("create dir", &dir, e))?;
        }
        let a = analyze(&*vfs, &dir, opts.recovery, writable, opts.planted)?;
        match opts.recovery {
            RecoveryMode::Strict => {
                if let Some(c) = a.corruption.clone() {
                    return Err(c);
                }
                if let Some(t) = &a.torn {
                    return Err(Error::TornTail {
                        segment: t.segment,
                        offset: t.offset,
                        lsn: t.lsn,
                    });
                }
            }
            RecoveryMode::TolerateTornTail => {
                if let Some(c) = a.corruption.clone() {
                    return Err(c);
                }
            }
            RecoveryMode::PointInTime | RecoveryMode::SkipCorrupted => {
                if let Some(c) = &a.corruption {
                    tracing::warn!(error = %c, mode = ?opts.recovery, "opening past corruption");
                }
            }
        }
        if let Some(t) = &a.torn {
            let last = t.last_lsn.map_or_else(|| "?".to_owned(), |l| l.to_string());
            let what = if writable { "truncated" } else { "not read" };
            tracing::warn!(
                "torn tail {what}: LSN {} to {last} in segment {} from offset {} (no later frame proves them durable)",
                t.lsn, t.segment, t.offset
            );
        }
        let mut report = RecoveryReport {
            torn: a.torn.clone(),
            corruption: a.corruption.clone(),
            skipped: a.skipped.clone(),
            deleted: Vec::new(),
        };

        // Repairs: delete what recovery dropped (newest first), zero a truncated tail.
        if writable {
            let mut delete = a.delete.clone();
            delete.sort();
            for p in delete.iter().rev() {
                vfs.remove(p).map_err(|e| Error::io("remove", p, e))?;
            }
            // Files paxwal cannot prove it made are never deleted: moved aside, out of the
            // way of the segment ids the log goes on with (only reached by the modes that open
            // past corruption; the others refuse to open).
            for p in &a.foreign {
                let mut aside = p.clone().into_os_string();
                aside.push(".foreign");
                let aside = PathBuf::from(aside);
                vfs.rename(p, &aside)
                    .map_err(|e| Error::io("rename", p, e))?;
                tracing::warn!(from = %p.display(), to = %aside.display(), "a file named like a segment that paxwal did not make was moved aside");
            }
            if let (Some(at), Some(last)) = (a.truncate_at, a.segments.last()) {
                zero_tail(&*last.file, last.map.as_ref(), at, &last.path)?;
            } else if let (Some(at), Some(last)) = (a.zero_pad, a.segments.last()) {
                let len = last
                    .file
                    .len()
                    .map_err(|e| Error::io("stat", &last.path, e))?;
                let n = align_up(at, BLOCK).min(len).saturating_sub(at) as usize;
                last.file
                    .write_all_at(&vec![0u8; n], at)
                    .map_err(|e| Error::io("write", &last.path, e))?;
            }
            if let Some(last) = a.segments.last() {
                // Whatever survived a process crash may still be only in the page cache.
                last.file
                    .sync_data()
                    .map_err(|e| Error::io("fdatasync", &last.path, e))?;
            }
            if !delete.is_empty() || !a.foreign.is_empty() {
                vfs.sync_dir(&dir)
                    .map_err(|e| Error::io("fsync dir", &dir, e))?;
            }
            report.deleted = delete;
        }

        let next_lsn = a.next_lsn;
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(a.segments.len());
        let mut resume_pos = None;
        let meta = a.meta;
        for s in a.segments {
            resume_pos = Some(align_up(s.end, BLOCK));
            segments.push(Arc::new(Segment {
                id: s.id,
                path: s.path,
                file: s.file,
                map: s.map,
                first_lsn: s.first_lsn,
                index: RwLock::new(s.offsets),
                sealed: s.sealed.into(),
                segment_bytes: s.header.segment_bytes,
                trailer_key: codec::trailer_key(s.header.flags, s.id),
            }));
        }
        let state = State::new(next_lsn);
        let placeholder = segments.last().cloned();
        let prep = PrepState {
            next_id: a.next_segment,
            ..PrepState::default()
        };
        // Build the shared state; the active segment is settled below.
        let needs_new = placeholder.as_ref().is_none_or(|s| s.is_sealed());
        let inner_active = match (&placeholder, needs_new) {
            (Some(seg), false) => Some(Active::new(
                seg.clone(),
                resume_pos.unwrap_or(codec::DATA_START),
            )),
            _ => None,
        };
        if !writable {
            let seg = match (inner_active, placeholder) {
                (Some(a), _) => a,
                (None, Some(seg)) => Active::new(seg, 0),
                (None, None) => {
                    return Ok(Wal::read_only_empty(vfs, dir, opts, next_lsn, report));
                }
            };
            let inner = Arc::new(Inner::new(dir, vfs, opts, state, segments, seg, prep));
            return Ok(Wal {
                inner,
                threads: Mutex::new(Vec::new()),
                flusher: AtomicBool::new(false),
                report,
            });
        }
        // A writable log needs an unsealed active segment.
        let tmp_inner = Inner {
            dir: dir.clone(),
            vfs: vfs.clone(),
            opts: opts.clone(),
            state: Mutex::new(State::new(next_lsn)),
            durable_cv: Condvar::new(),
            flush_cv: Condvar::new(),
            segments: RwLock::new(Vec::new()),
            active: Mutex::new(Active::new(Arc::new(Segment::placeholder()), 0)),
            prep: Mutex::new(prep),
            prep_cv: Condvar::new(),
            compact_lock: Mutex::new(()),
            durable_atomic: Default::default(),
            generation_atomic: Default::default(),
            leader_rounds: Default::default(),
            relay: Default::default(),
            relay_pending: Default::default(),
            recycled: Default::default(),
        };
        let active = match inner_active {
            Some(a) => a,
            None => {
                // No preparer thread runs yet: prepare the segment here.
                let id = tmp_inner.prep.lock().next_id;
                let p = tmp_inner.prepare(id)?;
                tmp_inner.prep.lock().next_id = SegmentId(id.0 + 1);
                let seg = Arc::new(Segment {
                    id: p.id,
                    path: p.path,
                    file: p.file,
                    map: p.map,
                    first_lsn: next_lsn,
                    index: RwLock::new(Vec::new()),
                    sealed: false.into(),
                    segment_bytes: opts.segment_bytes,
                    trailer_key: p.trailer_key,
                });
                segments.push(seg.clone());
                Active::new(seg, codec::DATA_START)
            }
        };
        if meta.is_none() {
            let first = &segments[0];
            write_meta(
                &*vfs,
                &dir,
                Meta {
                    first_segment: first.id,
                    first_lsn: first.first_lsn,
                },
            )?;
        }
        let prep = std::mem::take(&mut *tmp_inner.prep.lock());
        let inner = Arc::new(Inner::new(dir, vfs, opts, state, segments, active, prep));
        let wal = Wal {
            inner,
            threads: Mutex::new(Vec::new()),
            flusher: AtomicBool::new(false),
            report,
        };
        wal.start_threads()?;
        Ok(wal)
    }

    fn read_only_empty(
        vfs: Arc<dyn Vfs>,
        dir: PathBuf,
        opts: Options,
        next: Lsn,
        report: RecoveryReport,
    ) -> Wal {
        let seg = Arc::new(Segment::placeholder());
        let inner = Inner::new(
            dir,
            vfs,
            opts,
            State::new(next),
            Vec::new(),
            Active::new(seg, 0),
            PrepState::default(),
        );
        Wal {
            inner: Arc::new(inner),
            threads: Mutex::new(Vec::new()),
            flusher: AtomicBool::new(false),
            report,
        }
    }

    /// Starts the background threads; an error if the system cannot create one (the open
    /// fails, and dropping the log stops any thread already started).
    fn start_threads(&self) -> Result<()> {
        let mut threads = self.threads.lock();
        if self.inner.opts.prealloc == Prealloc::Background {
            let inner = self.inner.clone();
            let h = std::thread::Builder::new()
                .name("paxwal-prealloc".into())
                .spawn(move || inner.prepare_loop())
                .map_err(|e| Error::io("spawn the segment preparer for", &self.inner.dir, e))?;
            threads.push(h);
        }
        // The flusher: syncs on a timer in the batched modes, and on demand for `Durable`
        // futures in every mode. In `Always` nothing else needs it, so it starts at the first
        // future that waits (opening a log costs no thread it may never use).
        if self.inner.opts.sync != SyncMode::Always {
            self.start_flusher(&mut threads)?;
        }
        Ok(())
    }

    fn start_flusher(&self, threads: &mut Vec<JoinHandle<()>>) -> Result<()> {
        if self.flusher.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let inner = self.inner.clone();
        match std::thread::Builder::new()
            .name("paxwal-flusher".into())
            .spawn(move || inner.flush_loop())
        {
            Ok(h) => {
                threads.push(h);
                Ok(())
            }
            Err(e) => {
                self.flusher.store(false, Ordering::Release);
                Err(Error::io("spawn the flusher for", &self.inner.dir, e))
            }
        }
    }

    /// Starts the flusher if it is not running (a `Durable` future is about to wait).
    fn ensure_flusher(&self) -> Result<()> {
        if !self.flusher.load(Ordering::Acquire) && !self.inner.opts.read_only {
            self.start_flusher(&mut self.threads.lock())?;
        }
        Ok(())
    }

    /// What recovery found when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Appends one entry. With [`SyncMode::Always`] it returns once the entry is durable;
    /// otherwise once it is queued.
    pub fn append(&self, data: &[u8]) -> Result<Lsn> {
        let (t, st) = self.submit_locked(&[data])?;
        if self.inner.opts.sync == SyncMode::Always {
            // Straight on to the wait, without letting go of the lock in between.
            self.wait_durable_locked(st, &t)?;
        }
        Ok(t.last)
    }

    /// Appends entries at consecutive LSNs (all or none queued), with `append`'s durability.
    pub fn append_batch<I, T>(&self, entries: I) -> Result<RangeInclusive<Lsn>>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let entries: Vec<T> = entries.into_iter().collect();
        let (t, st) = self.submit_locked(&entries)?;
        if self.inner.opts.sync == SyncMode::Always {
            self.wait_durable_locked(st, &t)?;
        }
        Ok(t.first..=t.last)
    }

    /// Queues one entry without waiting for durability.
    pub fn submit(&self, data: &[u8]) -> Result<Appended> {
        self.submit_batch(std::iter::once(data))
    }

    /// Queues entries at consecutive LSNs without waiting for durability.
    pub fn submit_batch<I, T>(&self, entries: I) -> Result<Appended>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let entries: Vec<T> = entries.into_iter().collect();
        self.submit_locked(&entries).map(|(t, _)| t)
    }

    /// Queues entries; returns the ticket and the state lock, still held.
    fn submit_locked<T: AsRef<[u8]>>(
        &self,
        entries: &[T],
    ) -> Result<(Appended, parking_lot::MutexGuard<'_, State>)> {
        if entries.is_empty() {
            return Err(Error::Invalid("empty batch".into()));
        }
        let max = self.inner.opts.entry_bytes_max();
        if let Some(e) = entries.iter().find(|e| e.as_ref().len() > max) {
            return Err(Error::EntryTooLarge {
                len: e.as_ref().len(),
                max,
            });
        }
        if self.inner.opts.read_only {
            return Err(Error::Invalid("the log was opened read-only".into()));
        }
        let inner = &*self.inner;
        let mut st = inner.state.lock();
        loop {
            if let Some(p) = &st.poisoned {
                return Err(Error::Poisoned { cause: p.clone() });
            }
            if st.closed {
                return Err(Error::Closed);
            }
            if st.queued_bytes < inner.opts.queue_bytes_max {
                break;
            }
            // Back-pressure: write the queue out before queuing more.
            if st.leader {
                inner.durable_cv.wait(&mut st);
            } else {
                st = inner.lead(st, false);
            }
        }
        let was_empty = st.queue.is_empty();
        let first = st.next_lsn;
        let last = st.enqueue_all(entries, inner.opts.batch_limit());
        let generation = st.generation;
        if was_empty && !matches!(inner.opts.sync, SyncMode::Always) {
            inner.flush_cv.notify_one();
        }
        Ok((
            Appended {
                first,
                last,
                generation,
            },
            st,
        ))
    }

    /// Blocks until everything up to `t.last` is durable (joining or leading a group commit).
    pub fn wait_durable(&self, t: &Appended) -> Result<()> {
        self.wait_durable_locked(self.inner.state.lock(), t)
    }

    fn wait_durable_locked<'a>(
        &'a self,
        mut st: parking_lot::MutexGuard<'a, State>,
        t: &Appended,
    ) -> Result<()> {
        let inner = &*self.inner;
        if t.last > st.durable {
            st.waiters += 1;
        }
        let mut spun = None;
        let r = loop {
            if let Some(e) = st.rolled_back(t.generation, t.last) {
                break Err(e.clone());
            }
            if st.durable >= t.last {
                break Ok(());
            }
            if let Some(p) = &st.poisoned {
                break Err(Error::Poisoned { cause: p.clone() });
            }
            let deadline = if st.leader {
                None
            } else {
                // No leader. Lead now if the group is complete (this thread is running, so
                // leading here costs no wake-up) or its deadline passed; else wait for the rest.
                let wait = inner.group_wait(&st);
                let now = std::time::Instant::now();
                if st.waiters >= st.group_target || wait.is_zero() {
                    st = inner.lead(st, true);
                    continue;
                }
                let deadline = *st.group_deadline.get_or_insert(now + wait);
                if now >= deadline {
                    st = inner.lead(st, true);
                    continue;
                }
                Some(deadline)
            };
            let round = inner.leader_rounds.load(Ordering::Acquire);
            // Yield in a loop first (`Options::spin_wait_max`), once per leader round: a
            // yielding writer sees the round end without a futex wake-up, and keeps its CPU
            // from idling while the fsync runs. It is not a sleeper, so no leader unparks it.
            if spun != Some(round) {
                let budget = inner.spin_budget(&st);
                if !budget.is_zero() {
                    spun = Some(round);
                    drop(st);
                    let mut until = std::time::Instant::now() + budget;
                    if let Some(d) = deadline {
                        until = until.min(d);
                    }
                    while inner.leader_rounds.load(Ordering::Acquire) == round
                        && std::time::Instant::now() < until
                    {
                        std::thread::yield_now();
                    }
                    if inner.acked_without_lock(t) {
                        return Ok(());
                    }
                    st = inner.state.lock();
                    continue;
                }
            }
            // Park until a leader finishes (it unparks every sleeper at once, so woken writers
            // run in parallel instead of queueing on the mutex) or the group deadline passes.
            let me = std::thread::current();
            st.sleepers.retain(|(t, _)| t.id() != me.id());
            st.sleepers.push((me, t.last));
            drop(st);
            loop {
                if inner.leader_rounds.load(Ordering::Acquire) != round {
                    break;
                }
                match deadline {
                    Some(d) => {
                        let now = std::time::Instant::now();
                        if now >= d {
                            break;
                        }
                        std::thread::park_timeout(d - now);
                    }
                    None => std::thread::park(),
                }
            }
            inner.run_relay();
            // Fast path: acknowledged without touching the lock again.
            if inner.acked_without_lock(t) {
                return Ok(());
            }
            st = inner.state.lock();
        };
        r
    }

    /// A future that resolves once everything up to `t.last` is durable (or with the error
    /// that failed it), woken by the group commit that makes it so: the async counterpart of
    /// [`Self::wait_durable`], for any executor. It never blocks the polling thread on an
    /// fsync: if no writer is syncing, the log's flusher thread leads one.
    ///
    /// ```
    /// # use paxwal::wal::{Options, SyncMode, Wal};
    /// # let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), Options { sync: SyncMode::Never { max_delay: std::time::Duration::from_secs(60) }, ..Options::default() })?;
    /// let t = wal.submit(b"hello")?;
    /// let durable = wal.durable(&t); // poll it from any executor
    /// # drop(durable);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn durable(&self, t: &Appended) -> Durable<'_> {
        Durable { wal: self, t: *t }
    }

    /// True if `t` is durable; never blocks. Errors if it failed (rolled back or poisoned).
    pub fn is_durable(&self, t: &Appended) -> Result<bool> {
        let st = self.inner.state.lock();
        if let Some(e) = st.rolled_back(t.generation, t.last) {
            return Err(e.clone());
        }
        if st.durable >= t.last {
            return Ok(true);
        }
        if let Some(p) = &st.poisoned {
            return Err(Error::Poisoned { cause: p.clone() });
        }
        Ok(false)
    }

    /// Makes everything appended so far durable; returns the durable LSN.
    pub fn sync(&self) -> Result<Lsn> {
        let last = self.last_lsn();
        let generation = self.inner.state.lock().generation;
        if last == Lsn::ZERO {
            return Ok(last);
        }
        self.wait_durable(&Appended {
            first: last,
            last,
            generation,
        })?;
        Ok(last)
    }

    /// Reads one record.
    pub fn read(&self, lsn: Lsn) -> Result<Entry> {
        let inner = &*self.inner;
        {
            let mut st = inner.state.lock();
            let limit = if st.poisoned.is_some() {
                st.durable
            } else {
                st.next_lsn.prev()
            };
            if lsn > limit || lsn == Lsn::ZERO {
                return Err(Error::NotFound { lsn, last: limit });
            }
            // Queued but not yet written: write it out (without a sync) first.
            while st.written < lsn {
                if st.poisoned.is_some() || st.closed {
                    return Err(Error::NotFound {
                        lsn,
                        last: st.written,
                    });
                }
                if st.leader {
                    inner.durable_cv.wait(&mut st);
                } else {
                    st = inner.lead(st, false);
                }
            }
        }
        let segs = inner.segments.read();
        let first = segs.first().map_or(Lsn::FIRST, |s| s.first_lsn);
        if lsn < first {
            return Err(Error::Compacted { lsn, first });
        }
        let i = segs.partition_point(|s| s.first_lsn <= lsn) - 1;
        let seg = segs[i].clone();
        drop(segs);
        seg.read(lsn)
    }

    /// Iterates over the records in `range` (clamped to the log), in order.
    pub fn iter(&self, range: RangeInclusive<Lsn>) -> Iter<'_> {
        let start = (*range.start()).max(self.first_lsn());
        let end = (*range.end()).min(self.last_lsn());
        Iter {
            wal: self,
            next: start,
            end,
        }
    }

    /// First LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        let segs = self.inner.segments.read();
        segs.first()
            .map_or_else(|| self.inner.state.lock().next_lsn, |s| s.first_lsn)
    }

    /// Last LSN appended (queued, possibly not yet durable); `Lsn::ZERO` if none.
    pub fn last_lsn(&self) -> Lsn {
        self.inner.state.lock().next_lsn.prev()
    }

    /// Last LSN on stable storage.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.state.lock().durable
    }

    /// Counters since open.
    pub fn stats(&self) -> Stats {
        let mut s = self.inner.state.lock().stats;
        s.segments_recycled = self.inner.recycled.load(Ordering::Relaxed);
        s
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Deletes every whole segment whose records all lie below `lsn` (never the active one).
    /// Crash-safe: the new start is recorded durably in `META` first; a crash midway leaves
    /// orphans that the next open deletes. Returns the number of segments deleted.
    pub fn compact_before(&self, lsn: Lsn) -> Result<usize> {
        let inner = &*self.inner;
        if inner.opts.read_only {
            return Err(Error::Invalid("the log was opened read-only".into()));
        }
        let _guard = inner.compact_lock.lock();
        let segs: Vec<Arc<Segment>> = inner.segments.read().clone();
        let n = segs
            .iter()
            .take(segs.len().saturating_sub(1))
            .take_while(|s| s.is_sealed() && s.end_lsn() <= lsn)
            .count();
        if n == 0 {
            return Ok(0);
        }
        write_meta(
            &*inner.vfs,
            &inner.dir,
            Meta {
                first_segment: segs[n].id,
                first_lsn: segs[n].first_lsn,
            },
        )?;
        let removed: Vec<Arc<Segment>> = inner.segments.write().drain(..n).collect();
        drop(segs);
        for s in removed {
            let path = s.path.clone();
            if inner.keep_for_reuse(s) {
                continue;
            }
            if let Err(e) = inner.vfs.remove(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a compacted segment failed; the next open deletes it");
            }
        }
        inner
            .vfs
            .sync_dir(&inner.dir)
            .map_err(|e| Error::io("fsync dir", &inner.dir, e))?;
        Ok(n)
    }

    /// Writes and syncs everything queued, stops the background threads and closes the log.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        let inner = &*self.inner;
        let r = if inner.opts.read_only {
            Ok(())
        } else {
            let poisoned = inner.state.lock().poisoned.is_some();
            if poisoned {
                Ok(())
            } else {
                self.sync().map(|_| ())
            }
        };
        let tasks = {
            let mut st = inner.state.lock();
            st.closed = true;
            writer::take_wakers(&mut st, true)
        };
        tasks.into_iter().for_each(|w| w.wake());
        inner.flush_cv.notify_all();
        inner.durable_cv.notify_all();
        {
            let mut p = inner.prep.lock();
            p.shutdown = true;
            inner.prep_cv.notify_all();
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        r
    }

    /// Debug check of the log-pointer invariants.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let st = self.inner.state.lock();
        let first = self
            .inner
            .segments
            .read()
            .first()
            .map_or(Lsn::FIRST, |s| s.first_lsn);
        assert!(
            st.durable <= st.written,
            "durable {} > written {}",
            st.durable,
            st.written
        );
        assert!(
            st.written < st.next_lsn,
            "written {} ≥ next {}",
            st.written,
            st.next_lsn
        );
        assert!(
            first <= st.durable.next(),
            "first {} > durable+1 {}",
            first,
            st.durable.next()
        );
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if !self.inner.state.lock().closed {
            let _ = self.shutdown();
        }
    }
}

/// Iterator over a range of records; see [`Wal::iter`].
pub struct Iter<'a> {
    wal: &'a Wal,
    next: Lsn,
    end: Lsn,
}

impl Iterator for Iter<'_> {
    type Item = Result<(Lsn, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next > self.end || self.next == Lsn::ZERO {
            return None;
        }
        let lsn = self.next;
        self.next = lsn.next();
        Some(self.wal.read(lsn).map(|e| (lsn, e)))
    }
}

impl Inner {
    /// True if `t` is durable, read without the state lock — unless a "no space" rollback
    /// happened since the ticket was issued: its LSNs may have been handed out again and made
    /// durable for other appends, so the locked path decides. The durable point is read
    /// first: a rollback is published before any later durable point, so seeing that durable
    /// point guarantees seeing the rollback too.
    fn acked_without_lock(&self, t: &Appended) -> bool {
        self.durable_atomic.load(Ordering::Acquire) >= t.last.0
            && self.generation_atomic.load(Ordering::Acquire) == t.generation
    }

    fn new(
        dir: PathBuf,
        vfs: Arc<dyn Vfs>,
        opts: Options,
        state: State,
        segments: Vec<Arc<Segment>>,
        active: Active,
        prep: PrepState,
    ) -> Inner {
        let durable = state.durable.0;
        Inner {
            dir,
            vfs,
            opts,
            state: Mutex::new(state),
            durable_cv: Condvar::new(),
            flush_cv: Condvar::new(),
            segments: RwLock::new(segments),
            active: Mutex::new(active),
            prep: Mutex::new(prep),
            prep_cv: Condvar::new(),
            compact_lock: Mutex::new(()),
            durable_atomic: std::sync::atomic::AtomicU64::new(durable),
            generation_atomic: Default::default(),
            leader_rounds: Default::default(),
            relay: Default::default(),
            relay_pending: Default::default(),
            recycled: Default::default(),
        }
    }

    /// Background writer for `Batched` (write + sync) and `Never` (write only) modes.
    /// Keeps a compacted segment's file for reuse as a later segment, if recycling is on, the
    /// pool has room, the file has the current segment size, and nothing else holds the segment
    /// or its map (an [`Entry`] read earlier keeps its bytes: a reused file is overwritten).
    fn keep_for_reuse(&self, seg: Arc<Segment>) -> bool {
        if !self.opts.recycle || self.opts.read_only {
            return false;
        }
        let Ok(seg) = Arc::try_unwrap(seg) else {
            return false;
        };
        if seg.segment_bytes != self.opts.segment_bytes
            || seg.map.as_ref().is_some_and(|m| Arc::strong_count(m) > 1)
        {
            return false;
        }
        let mut p = self.prep.lock();
        if p.recycle.len() >= writer::RECYCLE_POOL || p.shutdown {
            return false;
        }
        let Segment {
            path, file, map, ..
        } = seg;
        drop(map);
        p.recycle.push(writer::Recyclable { path, file });
        true
    }

    fn flush_loop(&self) {
        let (delay, sync) = match self.opts.sync {
            SyncMode::Batched { max_delay } => (Some(max_delay), true),
            SyncMode::Never { max_delay } => (Some(max_delay), false),
            SyncMode::Always => (None, true),
        };
        let mut st = self.state.lock();
        loop {
            if st.closed || st.poisoned.is_some() {
                return;
            }
            // Never above the last LSN handed out: a "no space" rollback can take back LSNs a
            // future asked for (that future then resolves with the error).
            if st.async_demand.min(st.next_lsn.prev()) > st.durable {
                // A `Durable` future waits: sync now, whatever the mode.
                if st.leader {
                    self.durable_cv.wait(&mut st);
                } else {
                    st = self.lead(st, true);
                }
                continue;
            }
            let Some(delay) = delay else {
                self.flush_cv.wait(&mut st);
                continue;
            };
            let Some(oldest) = st.oldest_queued else {
                self.flush_cv.wait(&mut st);
                continue;
            };
            let due = oldest + delay;
            if std::time::Instant::now() < due {
                self.flush_cv.wait_until(&mut st, due);
                continue;
            }
            if st.leader {
                self.durable_cv.wait(&mut st);
            } else {
                st = self.lead(st, sync);
            }
        }
    }
}

impl Segment {
    /// A stand-in for "no segment" in a read-only view of an empty log.
    fn placeholder() -> Segment {
        Segment {
            id: SegmentId(0),
            path: PathBuf::new(),
            file: Arc::new(NoFile),
            map: None,
            first_lsn: Lsn::FIRST,
            index: RwLock::new(Vec::new()),
            sealed: true.into(),
            segment_bytes: 0,
            trailer_key: 0,
        }
    }
}

#[derive(Debug)]
struct NoFile;

impl VfsFile for NoFile {
    fn len(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn read_exact_at(&self, _: &mut [u8], _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(libc::EBADF))
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(libc::EBADF))
    }
    fn map(&self) -> std::io::Result<Option<io::MappedBytes>> {
        Ok(None)
    }
}

/// Atomically replaces `META`: write a temporary, fsync it, rename, fsync the directory.
fn write_meta(vfs: &dyn Vfs, dir: &Path, meta: Meta) -> Result<()> {
    let tmp = dir.join("META.tmp");
    let path = dir.join("META");
    let _ = vfs.remove(&tmp);
    let f = vfs
        .open(&tmp, OpenMode::CreateNew)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all_at(&meta.encode(), 0)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_data().map_err(|e| Error::io("fdatasync", &tmp, e))?;
    vfs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &path, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync dir", dir, e))
}

/// Zeroes a segment from `at` to its last non-zero byte and syncs it, so nothing left by a
/// torn or dropped tail can be read as data later.
fn zero_tail(
    file: &dyn VfsFile,
    map: Option<&io::MappedBytes>,
    at: u64,
    path: &Path,
) -> Result<()> {
    let len = file.len().map_err(|e| Error::io("stat", path, e))?;
    let end = match map {
        Some(m) => {
            let b = (**m).as_ref();
            b.iter().rposition(|&x| x != 0).map_or(at, |p| p as u64 + 1)
        }
        None => len,
    };
    let chunk = vec![0u8; 1 << 20];
    let mut pos = at;
    while pos < end.min(len) {
        let n = (end.min(len) - pos).min(chunk.len() as u64) as usize;
        file.write_all_at(&chunk[..n], pos)
            .map_err(|e| Error::io("write", path, e))?;
        pos += n as u64;
    }
    file.sync_data()
        .map_err(|e| Error::io("fdatasync", path, e))
}

/// `Wal` is shared between threads.
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<Wal>();
};

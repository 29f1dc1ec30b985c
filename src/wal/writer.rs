//! Group commit: the queue of pending batches, the leader that writes and syncs them, segment
//! rotation and preparation.
//!
//! Appends copy their bytes into the batch at the back of the queue (under one mutex) and get
//! LSNs. Whoever needs durability and finds no leader becomes the leader: it takes every queued
//! batch, writes each as one frame with a single positional write (the last one padded to a
//! block boundary, so the next sync never rewrites a block holding acknowledged data), calls
//! `fdatasync` once, publishes the new durable point and wakes the waiters it served, and the
//! longest-waiting of the others (who leads the next group; with four or more to wake, the first
//! writer woken wakes half of them), leaving the rest parked: a writer
//! whose entry missed the sync is not woken only to park again. While it works,
//! new appends queue up and form the next group. A group forms until as many threads wait as
//! were waiting when the previous sync finished (those it served and those it left waiting) —
//! then the thread that completes it leads at once (it is running, so no wake-up sits on the
//! critical path) — or until a deadline (`group_wait_max`, and at most the measured sync time)
//! passes. So writers released by one sync join the next group instead of alternating between
//! two half-sized groups. (A target of only the writers the previous sync served settles at
//! such an alternation: at 16 writers, groups of about 9 and 7; counting the ones left waiting
//! too gives groups of about 16 and about 10 % more appends per second, medians of seven A/B
//! rounds.)
//!
//! Every error path wakes every waiter: a failed `fdatasync` (or a failed write other than
//! "no space") poisons the log; "no space" fails the unwritten appends, hands their LSNs back
//! (the next append reuses them, so the log never has a gap) and leaves the log usable.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::MutexGuard;

use super::codec::{
    align_up, frame_len, has_zero_sector, seal_frame_keyed, trailer_key, trailer_keyed,
    FrameHeader, Seal, SegmentHeader, BLOCK, DATA_START, FLAG_ZERO_SECTOR, FORMAT_VERSION,
    FRAME_HEADER_LEN, KIND_DATA, RECORD_PREFIX_LEN, SEAL_RESERVE, SEGMENT_RECYCLED, TRAILER_LEN,
};
use super::io::{MappedBytes, OpenMode, VfsFile};
use super::recovery::segment_name;
use super::segment::Segment;
use super::{Inner, Prealloc};
use crate::error::{Error, Result};
use crate::types::{Lsn, SegmentId};

/// Entries queued for one frame.
#[derive(Debug)]
pub(crate) struct Batch {
    /// `FRAME_HEADER_LEN` reserved bytes, then `count` × { u32 length, bytes }.
    pub buf: Vec<u8>,
    pub first_lsn: Lsn,
    pub count: u32,
    /// Offset of each record's length prefix, relative to the frame start.
    pub rec_offsets: Vec<u32>,
}

impl Batch {
    pub fn last_lsn(&self) -> Lsn {
        Lsn(self.first_lsn.0 + u64::from(self.count) - 1)
    }

    pub fn payload_len(&self) -> usize {
        self.buf.len() - FRAME_HEADER_LEN
    }
}

/// A rollback after "no space": tickets of earlier generations at or above `from` failed.
#[derive(Debug)]
pub(crate) struct Rollback {
    pub generation: u64,
    pub from: Lsn,
    pub error: Error,
}

/// Everything the appenders and the leader share, under one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub next_lsn: Lsn,
    pub queue: VecDeque<Batch>,
    pub queued_bytes: usize,
    pub oldest_queued: Option<Instant>,
    /// Last LSN written to the file (visible to reads).
    pub written: Lsn,
    /// Last LSN on stable storage.
    pub durable: Lsn,
    pub leader: bool,
    pub poisoned: Option<Arc<Error>>,
    pub closed: bool,
    pub generation: u64,
    pub rollbacks: Vec<Rollback>,
    /// Threads in `wait_durable` whose LSN is not durable yet (a synced leader subtracts the
    /// group it served, so satisfied but still sleeping threads never count as waiting).
    pub waiters: usize,
    /// Threads parked in `wait_durable`, with the LSN each waits for. A leader that finishes
    /// wakes those its sync satisfied, and one more to lead the next group; the others sleep on.
    pub sleepers: Vec<(std::thread::Thread, Lsn)>,
    /// Tasks awaiting [`super::Durable`] futures, with the LSN each waits for; woken by the
    /// leader whose sync covers them (all of them on a failure or close).
    pub wakers: Vec<(std::task::Waker, Lsn)>,
    /// Highest LSN an async waiter needs durable: the flusher leads a sync while it is above
    /// the durable point (in every sync mode; nothing else would sync for a future).
    pub async_demand: Lsn,
    /// Threads waiting when the last sync finished (served or not): the next group leads once
    /// this many wait again (or at its deadline).
    pub group_target: usize,
    /// When a forming group stops waiting for the rest of the previous group.
    pub group_deadline: Option<Instant>,
    pub sync_ewma_ns: u64,
    pub free_bufs: Vec<Vec<u8>>,
    pub stats: super::Stats,
}

/// The leader's own state: the active segment and where the next frame goes.
#[derive(Debug)]
pub(crate) struct Active {
    pub seg: Arc<Segment>,
    pub pos: u64,
    /// The active segment's direct-I/O handle, once asked for (`None` inside: not offered).
    direct: Option<(SegmentId, Option<Arc<dyn VfsFile>>)>,
    /// A synced group assembled for one direct write (4 KiB-aligned within).
    scratch: Vec<u8>,
}

impl Active {
    pub fn new(seg: Arc<Segment>, pos: u64) -> Active {
        Active {
            seg,
            pos,
            direct: None,
            scratch: Vec::new(),
        }
    }
}

/// A synced group larger than this is written through the page cache (one write per frame)
/// rather than assembled for one direct write: on this machine 1 MiB groups (16 × 64 KiB) ran
/// ≈ 10 % slower direct (the copy into the scratch buffer, and a direct write waits for the
/// device), while 132 KB groups (1,000 × 128 B) ran ≈ 1.6 × faster.
const DIRECT_GROUP_MAX: u64 = 256 << 10;

/// A segment file ready to become active.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub id: SegmentId,
    pub path: PathBuf,
    pub file: Arc<dyn VfsFile>,
    pub map: Option<MappedBytes>,
    /// 0 for a new file; non-zero for a recycled one.
    pub trailer_key: u32,
}

/// A compacted segment's file kept for reuse, still under its old name (below META's first
/// segment, so a crash leaves it to be deleted by the next open).
#[derive(Debug)]
pub(crate) struct Recyclable {
    pub path: PathBuf,
    pub file: Arc<dyn VfsFile>,
}

/// A finished leader with at least this many writers to wake hands half of them to the first.
const RELAY_MIN: usize = 4;

impl Inner {
    /// Wakes the writers a finished leader handed over, if any.
    pub(crate) fn run_relay(&self) {
        if self.relay_pending.swap(false, Ordering::AcqRel) {
            let v = std::mem::take(&mut *self.relay.lock());
            v.iter().for_each(|t| t.unpark());
        }
    }
}

/// At most this many compacted files are kept for reuse; the rest are deleted.
pub(crate) const RECYCLE_POOL: usize = 2;

/// The preparer's state.
#[derive(Debug, Default)]
pub(crate) struct PrepState {
    pub ready: Option<Prepared>,
    /// Compacted segment files waiting to be reused (newest last).
    pub recycle: Vec<Recyclable>,
    pub next_id: SegmentId,
    pub error: Option<Error>,
    pub busy: bool,
    pub shutdown: bool,
}

impl State {
    pub fn new(next_lsn: Lsn) -> State {
        State {
            next_lsn,
            queue: VecDeque::new(),
            queued_bytes: 0,
            oldest_queued: None,
            written: next_lsn.prev(),
            durable: next_lsn.prev(),
            leader: false,
            poisoned: None,
            closed: false,
            generation: 0,
            rollbacks: Vec::new(),
            waiters: 0,
            sleepers: Vec::new(),
            wakers: Vec::new(),
            async_demand: Lsn::ZERO,
            group_target: 0,
            group_deadline: None,
            sync_ewma_ns: 0,
            free_bufs: Vec::new(),
            stats: super::Stats::default(),
        }
    }

    fn new_batch(&mut self, first_lsn: Lsn) -> Batch {
        let mut buf = self.free_bufs.pop().unwrap_or_default();
        buf.clear();
        buf.resize(FRAME_HEADER_LEN, 0);
        Batch {
            buf,
            first_lsn,
            count: 0,
            rec_offsets: Vec::new(),
        }
    }

    /// Queues entries (their sizes were checked) at consecutive LSNs; returns the last LSN.
    pub fn enqueue_all<T: AsRef<[u8]>>(&mut self, entries: &[T], batch_bytes_max: usize) -> Lsn {
        let mut i = 0;
        while i < entries.len() {
            let fits = |b: &Batch, e: &[u8]| {
                b.payload_len() + RECORD_PREFIX_LEN + e.len() <= batch_bytes_max
            };
            let open = self
                .queue
                .back()
                .is_some_and(|b| fits(b, entries[i].as_ref()));
            if !open {
                let b = self.new_batch(self.next_lsn);
                self.queue.push_back(b);
            }
            let Some(b) = self.queue.back_mut() else {
                break;
            };
            // Take as many entries as fit, with one reservation.
            let mut room = batch_bytes_max.saturating_sub(b.payload_len());
            let mut j = i;
            let mut bytes = 0;
            while j < entries.len() {
                let need = RECORD_PREFIX_LEN + entries[j].as_ref().len();
                if need > room && j > i {
                    break;
                }
                room = room.saturating_sub(need);
                bytes += need;
                j += 1;
            }
            b.buf.reserve(bytes);
            b.rec_offsets.reserve(j - i);
            for e in &entries[i..j] {
                let e = e.as_ref();
                b.rec_offsets.push(b.buf.len() as u32);
                b.buf.extend_from_slice(&(e.len() as u32).to_le_bytes());
                b.buf.extend_from_slice(e);
            }
            b.count += (j - i) as u32;
            self.queued_bytes += bytes;
            self.next_lsn = Lsn(self.next_lsn.0 + (j - i) as u64);
            i = j;
        }
        if self.oldest_queued.is_none() {
            self.oldest_queued = Some(Instant::now());
        }
        self.next_lsn.prev()
    }

    /// True if a ticket of `generation` covering up to `last` was rolled back.
    pub fn rolled_back(&self, generation: u64, last: Lsn) -> Option<&Error> {
        self.rollbacks
            .iter()
            .find(|r| r.generation > generation && last >= r.from)
            .map(|r| &r.error)
    }
}

impl Inner {
    /// Becomes the leader (the caller checked there is none), writes everything queued, syncs
    /// if asked, publishes the result and wakes every waiter. Returns the relocked guard.
    /// How long a forming group may wait for the previous group's writers.
    pub(crate) fn group_wait(&self, st: &State) -> std::time::Duration {
        self.opts
            .group_wait_max
            .min(std::time::Duration::from_nanos(st.sync_ewma_ns))
    }

    /// How long a waiting writer yields before parking: `spin_wait_max`, at most twice the
    /// measured sync time, and nothing while the measured sync time is longer than the maximum.
    pub(crate) fn spin_budget(&self, st: &State) -> std::time::Duration {
        spin_budget(self.opts.spin_wait_max, st.sync_ewma_ns)
    }

    pub(crate) fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        sync: bool,
    ) -> MutexGuard<'a, State> {
        debug_assert!(!st.leader);
        st.leader = true;
        st.group_deadline = None;
        let mut batches: Vec<Batch> = st.queue.drain(..).collect();
        st.queued_bytes = 0;
        st.oldest_queued = None;
        let group = st.waiters;
        let durable_hint = st.durable;
        let written_before = st.written;
        drop(st);

        let t0 = Instant::now();
        let (written, result) = self.write_batches(&mut batches, sync, durable_hint);
        let elapsed = t0.elapsed();

        let mut st = self.state.lock();
        st.leader = false;
        let failed = result.is_err();
        let written = written.unwrap_or(written_before);
        st.written = written;
        st.stats.frames += batches.len() as u64;
        match result {
            Ok(()) => {
                if sync {
                    st.durable = written;
                    st.group_target = st.waiters;
                    st.waiters = st.waiters.saturating_sub(group);
                    st.stats.fsyncs += 1;
                    let ns = elapsed.as_nanos() as u64;
                    st.sync_ewma_ns = if st.sync_ewma_ns == 0 {
                        ns
                    } else {
                        (st.sync_ewma_ns * 7 + ns) / 8
                    };
                }
            }
            Err(e) if e.is_no_space() => {
                // Hand back every LSN after what was written: the next append reuses them.
                let from = written.next();
                st.queue.clear();
                st.queued_bytes = 0;
                st.oldest_queued = None;
                st.next_lsn = from;
                st.generation += 1;
                self.generation_atomic
                    .store(st.generation, std::sync::atomic::Ordering::Release);
                let generation = st.generation;
                st.rollbacks.push(Rollback {
                    generation,
                    from,
                    error: e,
                });
                if st.rollbacks.len() > 64 {
                    st.rollbacks.remove(0);
                }
                tracing::warn!(
                    lsn = from.0,
                    "append failed for lack of space; LSNs handed back"
                );
            }
            Err(e) => {
                st.waiters = st.waiters.saturating_sub(group);
                tracing::error!(error = %e, "fatal I/O error: the log is poisoned");
                st.poisoned = Some(Arc::new(e));
            }
        }
        for b in batches {
            if st.free_bufs.len() < 8 && b.buf.capacity() <= 4 * self.opts.batch_bytes_max {
                st.free_bufs.push(b.buf);
            }
        }
        self.durable_cv.notify_all();
        self.durable_atomic
            .store(st.durable.0, std::sync::atomic::Ordering::Release);
        self.leader_rounds
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        let mut wake = self.take_sleepers_to_wake(&mut st, failed);
        let tasks = take_wakers(&mut st, failed);
        // Two threads wake the released writers: this one the first half, the first of them
        // the second (each `unpark` is a futex wake-up; at 16 writers this cut context switches
        // per sync from ≈ 33 to ≈ 28 and raised appends/s in 7 of 10 interleaved rounds).
        // Everyone in `wake` was a sleeper, and every sleeper calls `run_relay` when its park
        // ends, so the handed-over half is always woken.
        if !failed && wake.len() >= RELAY_MIN {
            let second = wake.split_off(wake.len() / 2);
            self.relay.lock().extend(second);
            self.relay_pending.store(true, Ordering::Release);
        }
        if !wake.is_empty() || !tasks.is_empty() {
            MutexGuard::unlocked(&mut st, || {
                wake.iter().for_each(|t| t.unpark());
                tasks.into_iter().for_each(|w| w.wake());
            });
        }
        st
    }

    /// The parked writers a finished leader wakes: every one whose LSN is now durable (all of
    /// them after a failure: each must see its error), and the longest-waiting of the rest, who
    /// leads the next group or waits for it to fill. The others stay parked until a later
    /// leader covers them, so a sync wakes only the threads it served plus one.
    fn take_sleepers_to_wake(&self, st: &mut State, failed: bool) -> Vec<std::thread::Thread> {
        if failed || st.poisoned.is_some() || st.closed {
            return std::mem::take(&mut st.sleepers)
                .into_iter()
                .map(|(t, _)| t)
                .collect();
        }
        let durable = st.durable;
        let mut wake = Vec::with_capacity(st.sleepers.len());
        let mut next = None;
        st.sleepers.retain(|(t, lsn)| {
            if *lsn <= durable {
                wake.push(t.clone());
                false
            } else if next.is_none() {
                next = Some(t.clone());
                false
            } else {
                true
            }
        });
        wake.extend(next);
        wake
    }

    /// Writes the batches as frames; returns the last LSN written and the outcome.
    fn write_batches(
        &self,
        batches: &mut [Batch],
        sync: bool,
        durable_hint: Lsn,
    ) -> (Option<Lsn>, Result<()>) {
        let mut active = self.active.lock();
        let direct = if sync {
            self.write_group_direct(&mut active, batches, durable_hint)
        } else {
            None
        };
        let (last_written, written) = match direct {
            Some(Ok(last)) => (Some(last), Ok(())),
            Some(Err(e)) => (None, Err(e)),
            None => self.write_frames(&mut active, batches, sync, durable_hint),
        };
        if written.is_err() {
            return (last_written, written);
        }
        if sync && !self.opts.planted.ack_before_fsync {
            if let Err(e) = active.seg.file.sync_data() {
                return (last_written, Err(fatal("fdatasync", &active.seg.path, e)));
            }
        }
        (last_written, Ok(()))
    }

    /// Writes the batches through the page cache, one write per frame (rotating as needed),
    /// the last one padded to a block boundary when `sync`; returns the last LSN written.
    fn write_frames(
        &self,
        active: &mut Active,
        batches: &mut [Batch],
        sync: bool,
        durable_hint: Lsn,
    ) -> (Option<Lsn>, Result<()>) {
        let mut last_written = None;
        let n = batches.len();
        for (i, b) in batches.iter_mut().enumerate() {
            let payload_len = b.payload_len();
            let flen = frame_len(payload_len);
            if active.pos + flen as u64 + SEAL_RESERVE > active.seg.segment_bytes {
                if let Err(e) = self.rotate(active, b.first_lsn, durable_hint) {
                    return (last_written, Err(e));
                }
                if active.pos + flen as u64 + SEAL_RESERVE > active.seg.segment_bytes {
                    // Cannot happen: batches are capped at what a fresh segment holds.
                    return (
                        last_written,
                        Err(Error::Invalid(format!(
                            "a {flen}-byte frame does not fit in a segment"
                        ))),
                    );
                }
            }
            let pos = active.pos;
            finish_frame(b, &active.seg, pos, durable_hint);
            let write_len = if sync && i + 1 == n {
                (align_up(pos + flen as u64, BLOCK) - pos) as usize
            } else {
                flen
            };
            b.buf.resize(write_len, 0);
            if let Err(e) = active.seg.file.write_all_at(&b.buf, pos) {
                // "No space" fails these appends; anything else poisons the log (see `lead`).
                return (last_written, Err(Error::io("write", &active.seg.path, e)));
            }
            active
                .seg
                .index
                .write()
                .extend(b.rec_offsets.iter().map(|&o| pos as u32 + o));
            active.pos = pos + write_len as u64;
            last_written = Some(b.last_lsn());
        }
        (last_written, Ok(()))
    }

    /// Writes a synced group with one direct write, if it can: direct writes are on, the
    /// segment offers a direct handle, the group starts on a block boundary and fits in the
    /// segment without a rotation. `None`: write it through the page cache instead. The last
    /// frame is padded to a block boundary, as on the buffered path. Returns the last LSN
    /// written; the caller syncs.
    fn write_group_direct(
        &self,
        active: &mut Active,
        batches: &mut [Batch],
        durable_hint: Lsn,
    ) -> Option<Result<Lsn>> {
        if !self.opts.direct_writes || batches.is_empty() || active.pos % BLOCK != 0 {
            return None;
        }
        let start = active.pos;
        let total: u64 = batches
            .iter()
            .map(|b| frame_len(b.payload_len()) as u64)
            .sum();
        if start + total + SEAL_RESERVE > active.seg.segment_bytes || total > DIRECT_GROUP_MAX {
            return None;
        }
        let seg_id = active.seg.id;
        if active.direct.as_ref().is_none_or(|(id, _)| *id != seg_id) {
            let handle = active.seg.file.direct().unwrap_or_else(|e| {
                tracing::debug!(error = %e, "no direct handle; writes stay buffered");
                None
            });
            active.direct = Some((seg_id, handle));
        }
        let direct = active.direct.as_ref()?.1.clone()?;
        let len = align_up(total, BLOCK) as usize;
        // An aligned window of `len` bytes inside the scratch vector.
        let Active { seg, scratch, .. } = active;
        if scratch.len() < len + BLOCK as usize {
            scratch.resize(len + BLOCK as usize, 0);
        }
        let skew = scratch.as_ptr().align_offset(BLOCK as usize);
        let window = &mut scratch[skew..skew + len];
        let mut at = 0usize;
        for b in batches.iter_mut() {
            finish_frame(b, seg, start + at as u64, durable_hint);
            window[at..at + b.buf.len()].copy_from_slice(&b.buf);
            at += b.buf.len();
        }
        // Every byte before `at` was just written; the padding after it is zeroed.
        window[at..].fill(0);
        let mut r = direct.write_all_at(window, start);
        if r.as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
        {
            // Direct I/O accepted at open but not for this write (an alignment the device does
            // not take): nothing was written. Write the same bytes through the page cache, and
            // stay buffered for the rest of this segment.
            tracing::warn!(segment = %seg.id, "a direct write was refused; writes stay buffered");
            active.direct = Some((seg_id, None));
            r = seg.file.write_all_at(window, start);
        }
        if let Err(e) = r {
            // "No space" fails these appends; anything else poisons the log (see `lead`).
            return Some(Err(Error::io("write", &seg.path, e)));
        }
        let mut pos = start;
        let mut index = seg.index.write();
        for b in batches.iter() {
            index.extend(b.rec_offsets.iter().map(|&o| pos as u32 + o));
            pos += b.buf.len() as u64;
        }
        drop(index);
        active.pos = start + len as u64;
        batches.last().map(|b| Ok(b.last_lsn()))
    }

    /// Seals the active segment and switches to the next one. The seal is synced before any
    /// frame is written to the new segment, so data in a later segment proves every earlier
    /// segment durable.
    fn rotate(&self, active: &mut Active, next_lsn: Lsn, durable_hint: Lsn) -> Result<()> {
        let prepared = self.take_prepared()?;
        let seal = Seal {
            next_segment: prepared.id,
            next_lsn,
        };
        let mut frame = seal_frame_keyed(active.seg.id, seal, durable_hint, active.seg.trailer_key);
        let pos = active.pos;
        frame.resize(
            (align_up(pos + frame.len() as u64, BLOCK) - pos) as usize,
            0,
        );
        let old = active.seg.clone();
        if let Err(e) = old.file.write_all_at(&frame, pos) {
            let err = Error::io("write", &old.path, e);
            // Keep the prepared segment for the next attempt.
            self.prep.lock().ready = Some(prepared);
            return Err(err);
        }
        old.file
            .sync_data()
            .map_err(|e| fatal("fdatasync", &old.path, e))?;
        old.sealed.store(true, Ordering::Release);
        let seg = Arc::new(Segment {
            id: prepared.id,
            path: prepared.path,
            file: prepared.file,
            map: prepared.map,
            first_lsn: next_lsn,
            index: Default::default(),
            sealed: Default::default(),
            segment_bytes: self.opts.segment_bytes,
            trailer_key: prepared.trailer_key,
        });
        self.segments.write().push(seg.clone());
        active.seg = seg;
        active.pos = DATA_START;
        active.direct = None;
        tracing::debug!(segment = %active.seg.id, lsn = next_lsn.0, "rotated to a new segment");
        Ok(())
    }

    /// Takes the next prepared segment, preparing it here when preparation is inline or the
    /// background preparer failed.
    pub(crate) fn take_prepared(&self) -> Result<Prepared> {
        let mut p = self.prep.lock();
        loop {
            if let Some(r) = p.ready.take() {
                self.prep_cv.notify_all();
                return Ok(r);
            }
            if self.opts.prealloc == Prealloc::Inline || p.error.is_some() || p.shutdown {
                p.error = None;
                let id = p.next_id;
                drop(p);
                let r = self.prepare(id);
                let mut p = self.prep.lock();
                if r.is_ok() {
                    p.next_id = SegmentId(id.0 + 1);
                }
                self.prep_cv.notify_all();
                return r;
            }
            self.prep_cv.wait(&mut p);
        }
    }

    /// Makes segment `id` ready: a compacted file reused when there is one ([`Self::recycle`]),
    /// else a new one ([`Self::create`]).
    pub(crate) fn prepare(&self, id: SegmentId) -> Result<Prepared> {
        let old = self.prep.lock().recycle.pop();
        if let Some(old) = old {
            let from = old.path.clone();
            match self.recycle(old, id) {
                Ok(p) => return Ok(p),
                Err(e) => {
                    tracing::warn!(from = %from.display(), error = %e, "reusing a compacted segment failed; creating a new one");
                }
            }
        }
        self.create(id)
    }

    /// Reuses a compacted segment's file as segment `id`: rename it to `….seg.tmp`, rewrite
    /// block 0 with the new id and the recycled flag, fsync, rename into place, fsync the
    /// directory. Its old frames stay behind the header; each names the old segment id, which
    /// both of its checksums cover, so none is ever read as a frame of segment `id` (recovery
    /// reads them as the end of the data). A crash leaves the file under its old name (below
    /// META's first segment: deleted by the next open, whatever its header says), as a
    /// temporary (deleted), or complete under the new name.
    fn recycle(&self, old: Recyclable, id: SegmentId) -> Result<Prepared> {
        let path = self.dir.join(segment_name(id));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(id)));
        let _ = self.vfs.remove(&tmp);
        self.vfs
            .rename(&old.path, &tmp)
            .map_err(|e| Error::io("rename", &old.path, e))?;
        let file = old.file;
        let r = (|| {
            let mut block = vec![0u8; BLOCK as usize];
            SegmentHeader {
                version: FORMAT_VERSION,
                id,
                segment_bytes: self.opts.segment_bytes,
                flags: SEGMENT_RECYCLED,
            }
            .encode(&mut block);
            file.write_all_at(&block, 0)
                .map_err(|e| Error::io("write", &tmp, e))?;
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", &tmp, e))?;
            self.vfs
                .rename(&tmp, &path)
                .map_err(|e| Error::io("rename", &path, e))?;
            if !self.opts.planted.no_dir_sync {
                self.vfs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("fsync dir", &self.dir, e))?;
            }
            file.map().map_err(|e| Error::io("mmap", &path, e))
        })();
        match r {
            Ok(map) => {
                tracing::debug!(segment = %id, "reused a compacted segment file");
                self.recycled.fetch_add(1, Ordering::Relaxed);
                Ok(Prepared {
                    id,
                    path,
                    file,
                    map,
                    trailer_key: trailer_key(SEGMENT_RECYCLED, id),
                })
            }
            Err(e) => {
                let _ = self.vfs.remove(&tmp);
                Err(e)
            }
        }
    }

    /// Creates segment `id`: header, zero fill (or sparse length), fsync, rename into place,
    /// fsync the directory. A crash at any point leaves either no segment or a complete empty
    /// one.
    fn create(&self, id: SegmentId) -> Result<Prepared> {
        let path = self.dir.join(segment_name(id));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(id)));
        let _ = self.vfs.remove(&tmp);
        let file = self
            .vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let r = (|| {
            let mut block = vec![0u8; BLOCK as usize];
            SegmentHeader {
                version: FORMAT_VERSION,
                id,
                segment_bytes: self.opts.segment_bytes,
                flags: 0,
            }
            .encode(&mut block);
            file.write_all_at(&block, 0)
                .map_err(|e| Error::io("write", &tmp, e))?;
            if self.opts.zero_fill {
                let chunk = vec![0u8; 1 << 20];
                let mut at = BLOCK;
                while at < self.opts.segment_bytes {
                    let n = (self.opts.segment_bytes - at).min(chunk.len() as u64) as usize;
                    file.write_all_at(&chunk[..n], at)
                        .map_err(|e| Error::io("write", &tmp, e))?;
                    at += n as u64;
                }
            } else {
                file.set_len(self.opts.segment_bytes)
                    .map_err(|e| Error::io("set_len", &tmp, e))?;
            }
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", &tmp, e))?;
            self.vfs
                .rename(&tmp, &path)
                .map_err(|e| Error::io("rename", &path, e))?;
            if !self.opts.planted.no_dir_sync {
                self.vfs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("fsync dir", &self.dir, e))?;
            }
            file.map().map_err(|e| Error::io("mmap", &path, e))
        })();
        match r {
            Ok(map) => Ok(Prepared {
                id,
                path,
                file,
                map,
                trailer_key: 0,
            }),
            Err(e) => {
                let _ = self.vfs.remove(&tmp);
                Err(e)
            }
        }
    }

    /// The background preparer's loop: keeps one segment ready.
    pub(crate) fn prepare_loop(&self) {
        let mut p = self.prep.lock();
        loop {
            while !p.shutdown && (p.ready.is_some() || p.error.is_some()) {
                self.prep_cv.wait(&mut p);
            }
            if p.shutdown {
                return;
            }
            let id = p.next_id;
            p.busy = true;
            drop(p);
            let r = self.prepare(id);
            p = self.prep.lock();
            p.busy = false;
            match r {
                Ok(r) => {
                    p.ready = Some(r);
                    p.next_id = SegmentId(id.0 + 1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "preparing the next segment failed");
                    p.error = Some(e);
                }
            }
            self.prep_cv.notify_all();
        }
    }
}

/// Encodes batch `b` in place as a complete frame of segment `seg` at `pos`: header, payload,
/// padding and trailer (`frame_len` bytes).
fn finish_frame(b: &mut Batch, seg: &Segment, pos: u64, durable_hint: Lsn) {
    let payload_len = b.payload_len();
    let flen = frame_len(payload_len);
    let zero = has_zero_sector(&b.buf[..FRAME_HEADER_LEN + payload_len], pos);
    let mut h = FrameHeader {
        kind: KIND_DATA,
        flags: if zero { FLAG_ZERO_SECTOR } else { 0 },
        segment: seg.id,
        first_lsn: b.first_lsn,
        count: b.count,
        payload_len: payload_len as u32,
        durable_lsn: durable_hint,
        payload_crc: 0,
        header_crc: 0,
    };
    let (head, payload) = b.buf.split_at_mut(FRAME_HEADER_LEN);
    let hcrc = h.encode(head, payload);
    b.buf.resize(flen - TRAILER_LEN, 0);
    b.buf
        .extend_from_slice(&trailer_keyed(hcrc, seg.trailer_key).to_le_bytes());
}

/// The async waiters to wake: those whose LSN is durable now, or all of them after a failure or
/// once the log is poisoned or closed (each then sees its outcome when polled).
pub(crate) fn take_wakers(st: &mut State, failed: bool) -> Vec<std::task::Waker> {
    if st.wakers.is_empty() {
        return Vec::new();
    }
    if failed || st.poisoned.is_some() || st.closed {
        return std::mem::take(&mut st.wakers)
            .into_iter()
            .map(|(w, _)| w)
            .collect();
    }
    let durable = st.durable;
    let mut out = Vec::new();
    st.wakers.retain(|(w, lsn)| {
        if *lsn <= durable {
            out.push(w.clone());
            false
        } else {
            true
        }
    });
    out
}

fn fatal(op: &'static str, path: &std::path::Path, e: std::io::Error) -> Error {
    // A failed fdatasync is fatal whatever its errno (even ENOSPC): the kernel may have
    // dropped the dirty pages, so a later success would prove nothing.
    Error::Io {
        op,
        path: path.to_owned(),
        source: Arc::new(e),
    }
}

/// [`Inner::spin_budget`] from the maximum and the measured sync time (0: none measured yet).
fn spin_budget(max: std::time::Duration, sync_ewma_ns: u64) -> std::time::Duration {
    let sync = std::time::Duration::from_nanos(sync_ewma_ns);
    if sync > max {
        std::time::Duration::ZERO
    } else if sync.is_zero() {
        max
    } else {
        max.min(2 * sync)
    }
}

#[cfg(test)]
mod tests {
    use super::spin_budget;
    use std::time::Duration;

    #[test]
    fn the_spin_budget_follows_the_measured_sync() {
        let us = Duration::from_micros;
        let max = us(500);
        // Nothing measured yet: the maximum.
        assert_eq!(spin_budget(max, 0), max);
        // Twice the sync, capped at the maximum.
        assert_eq!(spin_budget(max, 100_000), us(200));
        assert_eq!(spin_budget(max, 300_000), max);
        assert_eq!(spin_budget(max, 500_000), max);
        // A sync longer than the maximum: park at once.
        assert_eq!(spin_budget(max, 500_001), Duration::ZERO);
        // Turned off.
        assert_eq!(spin_budget(Duration::ZERO, 0), Duration::ZERO);
        assert_eq!(spin_budget(Duration::ZERO, 100_000), Duration::ZERO);
    }
}

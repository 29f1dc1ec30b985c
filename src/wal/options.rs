//! Options for opening a log.

use std::time::Duration;

/// When appends become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `append` returns only once the entry is on stable storage (`fdatasync` returned OK).
    /// Concurrent appends share one `fdatasync` (group commit).
    Always,
    /// `append` returns once the entry is queued; a background thread writes and syncs at most
    /// `max_delay` after the oldest queued entry. Use [`crate::Wal::wait_durable`] to wait.
    Batched {
        /// Longest an entry waits before its sync starts.
        max_delay: Duration,
    },
    /// Never calls `fdatasync` on its own: entries reach the page cache within `max_delay` and
    /// survive a process crash, but **not a power cut**. Explicit `sync`/`wait_durable` calls
    /// and `close` still sync.
    Never {
        /// Longest an entry waits in memory before it is written to the page cache.
        max_delay: Duration,
    },
}

/// What `open` does about damage it finds (the RocksDB set; see `wal::recovery` for the full
/// case table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Refuse to open on any damage, even a torn tail.
    Strict,
    /// Truncate a torn tail (records never acknowledged); refuse to open on corruption of
    /// anything that was acknowledged. The default.
    #[default]
    TolerateTornTail,
    /// Open up to the first damage of any kind and drop everything after it (acknowledged
    /// records after the damage are lost; a warning is logged).
    PointInTime,
    /// Skip damaged frames and keep every valid record after them; reads of skipped LSNs
    /// return [`crate::Error::Skipped`].
    SkipCorrupted,
}

/// How new segment files are prepared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prealloc {
    /// A background thread keeps the next segment ready (off the append path).
    #[default]
    Background,
    /// The next segment is prepared on the append path when it is needed (deterministic; for
    /// simulation and crash tests).
    Inline,
}

/// Options for [`crate::Wal::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Durability of appends.
    pub sync: SyncMode,
    /// Damage policy on open.
    pub recovery: RecoveryMode,
    /// Size of each segment file (4 KiB multiple, 64 KiB ..= 4 GiB - 4 KiB).
    pub segment_bytes: u64,
    /// Zero-fill new segments (so a sync never extends the file and torn writes can be told
    /// from bit flips); false makes sparse files.
    pub zero_fill: bool,
    /// Where segment preparation runs.
    pub prealloc: Prealloc,
    /// Reuse segment files deleted by compaction as the next segments (their header rewritten
    /// with the new segment id; their old frames, bound to the old id, never read as valid)
    /// instead of writing new files. A reused file costs one header write and two syncs instead
    /// of `segment_bytes` of zeros.
    pub recycle: bool,
    /// Write synced groups of up to 256 KiB that start on a block boundary with direct I/O
    /// (`O_DIRECT`, one block-aligned write per group from an aligned buffer) instead of
    /// through the page cache; the `fdatasync` that follows is unchanged. On the project's
    /// 2-vCPU test machine (a virtio disk; README, "Performance") a 4 KiB direct write +
    /// `fdatasync` ran ≈ 1.15 × the buffered rate (medians of eight interleaved rounds). Where the filesystem refuses `O_DIRECT` (tmpfs) writes stay buffered. Written
    /// blocks are then not in the page cache: reading them back (`Wal::read` soon after the
    /// append) costs a disk read.
    pub direct_writes: bool,
    /// A frame (one group-commit batch) holds at most this many payload bytes (an entry larger
    /// than this gets a frame of its own).
    pub batch_bytes_max: usize,
    /// Appends block (writing queued data out) once this many bytes are queued.
    pub queue_bytes_max: usize,
    /// Longest a forming group waits for the writers the previous sync found waiting to come
    /// back before syncing (bounded further by the measured sync time). Zero disables it.
    pub group_wait_max: Duration,
    /// Longest a writer waiting for a group commit yields the CPU in a loop (`sched_yield`,
    /// watching for the sync to finish) before it parks, and at most twice the measured sync
    /// time; no yielding at all while the measured sync time exceeds it. Zero disables it.
    /// A yielding writer needs no futex wake-up and keeps its CPU from idling during the
    /// fsync (on a virtual machine an idle vCPU is slow to wake): on the project's 2-vCPU test
    /// machine (README, "Performance") it took 16 writers × 1 KiB from ≈ 74k to ≈ 99k
    /// appends/s, at the price of busy CPUs while the sync runs. RocksDB's write thread does the same
    /// (`enable_write_thread_adaptive_yield`, up to `write_thread_max_yield_usec`).
    pub spin_wait_max: Duration,
    /// Open without changing any file (no truncation, no deletion); appends are refused.
    pub read_only: bool,
    /// Deliberate bugs, off by default. They exist only so that tests can show the crash
    /// checkers catch each one; never set them in real use.
    #[doc(hidden)]
    pub planted: PlantedBugs,
}

/// Deliberate bugs for proving that checkers catch them. All off by default.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Acknowledge appends without calling `fdatasync`.
    pub ack_before_fsync: bool,
    /// Recovery accepts frames without checking their checksums.
    pub skip_crc_check: bool,
    /// Do not fsync the directory after creating a segment.
    pub no_dir_sync: bool,
    /// Recovery accepts a checksum-valid frame of another segment (a recycled file's old
    /// frames) as if it were this segment's.
    pub accept_stale_frames: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sync: SyncMode::Always,
            recovery: RecoveryMode::default(),
            segment_bytes: 64 << 20,
            zero_fill: true,
            prealloc: Prealloc::default(),
            recycle: true,
            direct_writes: true,
            batch_bytes_max: 1 << 20,
            queue_bytes_max: 64 << 20,
            group_wait_max: Duration::from_micros(200),
            spin_wait_max: Duration::from_micros(500),
            read_only: false,
            planted: PlantedBugs::default(),
        }
    }
}

impl Options {
    /// Largest entry these options accept.
    pub fn entry_bytes_max(&self) -> usize {
        use super::codec::{
            DATA_START, FRAME_HEADER_LEN, RECORD_PREFIX_LEN, SEAL_RESERVE, TRAILER_LEN,
        };
        (self.segment_bytes - DATA_START - SEAL_RESERVE) as usize
            - FRAME_HEADER_LEN
            - RECORD_PREFIX_LEN
            - TRAILER_LEN
            - 8
    }

    /// Payload bytes one frame may carry: `batch_bytes_max`, but never more than a fresh
    /// segment holds.
    pub(crate) fn batch_limit(&self) -> usize {
        self.batch_bytes_max
            .min(self.entry_bytes_max() + super::codec::RECORD_PREFIX_LEN)
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let b = self.segment_bytes;
        if b % 4096 != 0 || !(64 << 10..=(u32::MAX as u64 - 4095)).contains(&b) {
            return Err(crate::Error::Invalid(format!(
                "segment_bytes {b} must be a 4 KiB multiple between 64 KiB and 4 GiB"
            )));
        }
        if self.batch_bytes_max == 0 || self.queue_bytes_max < self.batch_bytes_max {
            return Err(crate::Error::Invalid(
                "batch_bytes_max must be positive and at most queue_bytes_max".into(),
            ));
        }
        Ok(())
    }
}

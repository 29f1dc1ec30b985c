//! RocksDB 8.1.1 (crate `rocksdb` 0.21.0, feature `compare-rocksdb`) under test. A single entry
//! is `DB::put_opt(key, value, &sync)`; a batch is one `WriteBatch` of `WriteBatch::put(key,
//! value)`s written with `DB::write_opt(batch, &sync)`, so one WAL record and one sync per call.
//! `sync` is `WriteOptions::default()` with `WriteOptions::set_sync(true)`: the WAL is on
//! (`disable_wal` stays false) and each write returns after the WAL is synced (`fdatasync`, since
//! `use_fsync` stays false). The database is opened with `DB::open(&Options::default()` plus
//! `Options::create_if_missing(true))`: default options otherwise (one column family, 64 MiB
//! memtable, Snappy-compressed SSTs, no pipelined write), so concurrent writers meet RocksDB's own
//! group commit (its `WriteThread` leader/follower groups, one WAL write and one sync per group).
//!
//! Keys are 16 bytes: the writer's id then its own sequence number, both big-endian u64, so each
//! writer appends at the end of its own key range (a cheap memtable insert, no overwrite, no
//! counter shared between writers). The reopen test reopens with the same options (RocksDB
//! replays its WAL into the memtable and, by default, flushes what it recovered to an SST file
//! before `DB::open` returns) and reads every entry back with `DB::iterator_opt` from the first
//! key, `ReadOptions::set_verify_checksums(true)` (also its default).

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ::rocksdb::{IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB};

use super::{Engine, Log, Res};

/// RocksDB.
pub struct RocksDb;

/// Writer ids, one per thread that ever appends (process-wide, so keys never repeat).
static NEXT_WRITER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's writer id and next sequence number, taken on its first append.
    static WRITER: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// The next key of the calling writer: its id, then its sequence number, both big-endian.
fn next_key() -> [u8; 16] {
    WRITER.with(|w| {
        let (id, seq) = w
            .get()
            .unwrap_or_else(|| (NEXT_WRITER.fetch_add(1, Ordering::Relaxed), 0));
        w.set(Some((id, seq + 1)));
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&id.to_be_bytes());
        k[8..].copy_from_slice(&seq.to_be_bytes());
        k
    })
}

struct RocksLog {
    db: DB,
    sync: WriteOptions,
}

impl Log for RocksLog {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        if let [e] = entries {
            self.db.put_opt(next_key(), e, &self.sync)?;
        } else {
            let mut b = WriteBatch::default();
            for e in entries {
                b.put(next_key(), e);
            }
            self.db.write_opt(b, &self.sync)?;
        }
        Ok(())
    }
}

/// The default options, creating the database if it is missing.
fn options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o
}

impl Engine for RocksDb {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn open(&self, dir: &Path) -> Res<Box<dyn Log>> {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        Ok(Box::new(RocksLog {
            db: DB::open(&options(), dir)?,
            sync,
        }))
    }

    fn reopen_count(&self, dir: &Path, entry_bytes: usize) -> Res<usize> {
        let db = DB::open(&options(), dir)?;
        let mut ro = ReadOptions::default();
        ro.set_verify_checksums(true);
        let mut k = 0;
        for kv in db.iterator_opt(IteratorMode::Start, ro) {
            k += usize::from(kv?.1.len() == entry_bytes);
        }
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_writer_and_never_repeat() {
        let here: Vec<[u8; 16]> = (0..3).map(|_| next_key()).collect();
        let there = std::thread::spawn(next_key).join().unwrap();
        // One writer: the same id, consecutive sequence numbers, so its keys sort in order.
        assert_eq!(here[0][..8], here[2][..8]);
        assert_eq!(
            u64::from_be_bytes(here[1][8..].try_into().unwrap()),
            u64::from_be_bytes(here[0][8..].try_into().unwrap()) + 1
        );
        assert!(here.windows(2).all(|p| p[0] < p[1]));
        // Another writer: another id, its own sequence from 0.
        assert_ne!(there[..8], here[0][..8]);
        assert_eq!(there[8..], 0u64.to_be_bytes());
    }

    #[test]
    fn a_reopen_reads_back_every_synced_entry_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = RocksDb.open(dir.path()).unwrap();
            log.append(&[&[1u8; 10]]).unwrap();
            log.append(&[&[2u8; 10], &[3u8; 10], &[4u8; 7]]).unwrap();
        }
        assert_eq!(RocksDb.reopen_count(dir.path(), 10).unwrap(), 3);
        assert_eq!(RocksDb.reopen_count(dir.path(), 7).unwrap(), 1);
    }
}

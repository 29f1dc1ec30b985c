//! okaywal 0.3.1 under test: `WriteAheadLog::begin_entry()` → `EntryWriter::write_chunk()` →
//! `commit()` (commit syncs); a batch is one entry of many chunks. Default configuration for
//! appends (it checkpoints and recycles segments); for the reopen test checkpointing is off
//! (`checkpoint_after_bytes(u64::MAX)`: a checkpoint hands entries to the manager to keep
//! elsewhere, so they are not replayed), and the log is built one chunk per entry, as PEERS.md
//! measured it. On recovery the manager reads every chunk (okaywal loses entries if the recovery
//! callback does not).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Engine, Log, Res};

/// okaywal.
pub struct OkayWal;

#[derive(Debug, Default)]
struct CountingManager {
    chunks: Arc<AtomicU64>,
}

impl okaywal::LogManager for CountingManager {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        // Read every chunk: okaywal skips data otherwise.
        while let okaywal::ReadChunkResult::Chunk(mut chunk) = entry.read_chunk()? {
            let _ = chunk.read_all()?;
            chunk.skip_remaining_bytes()?;
            self.chunks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

struct OkayLog(okaywal::WriteAheadLog);

impl Log for OkayLog {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        let mut w = self.0.begin_entry()?;
        for e in entries {
            w.write_chunk(e)?;
        }
        w.commit()?;
        Ok(())
    }
}

/// okaywal's default configuration, except that it never checkpoints: a checkpoint hands
/// entries to the log manager to keep elsewhere, which this benchmark does not do, so a
/// checkpointed entry would look lost on reopen.
fn keep_all_config(dir: &Path) -> okaywal::Configuration {
    okaywal::Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

impl Engine for OkayWal {
    fn name(&self) -> &'static str {
        "okaywal"
    }

    /// Default configuration (it checkpoints and recycles segments), as PEERS.md measured.
    fn open(&self, dir: &Path) -> Res<Box<dyn Log>> {
        Ok(Box::new(OkayLog(okaywal::WriteAheadLog::recover(
            dir,
            CountingManager::default(),
        )?)))
    }

    fn open_keeping_all(&self, dir: &Path) -> Res<Box<dyn Log>> {
        Ok(Box::new(OkayLog(
            keep_all_config(dir).open(CountingManager::default())?,
        )))
    }

    fn reopen_batch(&self) -> usize {
        1
    }

    fn reopen_count(&self, dir: &Path, _entry_bytes: usize) -> Res<usize> {
        let m = CountingManager::default();
        let chunks = m.chunks.clone();
        let _log = keep_all_config(dir).open(m)?;
        Ok(chunks.load(Ordering::Relaxed) as usize)
    }
}

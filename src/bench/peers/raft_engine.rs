//! raft-engine 0.4.2 under test: `LogBatch::put(region, key, value)` then
//! `Engine::write(&mut batch, true)` (sync); a batch is one `LogBatch` of many puts. Default
//! configuration, compression off.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Engine, Log, Res};

/// raft-engine.
pub struct RaftEngine;

struct RaftLog {
    engine: raft_engine::Engine,
    next: AtomicU64,
}

impl Log for RaftLog {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        let mut b = raft_engine::LogBatch::default();
        for e in entries {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            b.put(1, k.to_be_bytes().to_vec(), e.to_vec())?;
        }
        self.engine.write(&mut b, true)?;
        Ok(())
    }
}

fn config(dir: &Path) -> raft_engine::Config {
    raft_engine::Config {
        dir: dir.to_string_lossy().into_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..Default::default()
    }
}

impl Engine for RaftEngine {
    fn name(&self) -> &'static str {
        "raft-engine"
    }

    fn open(&self, dir: &Path) -> Res<Box<dyn Log>> {
        Ok(Box::new(RaftLog {
            engine: raft_engine::Engine::open(config(dir))?,
            next: 0.into(),
        }))
    }

    fn reopen_count(&self, dir: &Path, entry_bytes: usize) -> Res<usize> {
        let engine = raft_engine::Engine::open(config(dir))?;
        let mut k = 0;
        engine.scan_raw_messages(1, None, None, false, |_, v| {
            k += usize::from(v.len() == entry_bytes);
            true
        })?;
        Ok(k)
    }
}

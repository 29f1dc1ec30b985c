//! paxwal under test: `Wal::append` / `Wal::append_batch` with `SyncMode::Always` (the default
//! options).

use std::path::Path;

use super::{Engine, Log, Res};
use crate::wal::{Options, Wal};

/// paxwal with its default options.
pub struct Paxwal;

struct PaxwalLog(Wal);

impl Log for PaxwalLog {
    fn append(&self, entries: &[&[u8]]) -> Res<()> {
        if entries.len() == 1 {
            self.0.append(entries[0])?;
        } else {
            self.0.append_batch(entries)?;
        }
        Ok(())
    }
}

impl Engine for Paxwal {
    fn name(&self) -> &'static str {
        "paxwal"
    }

    fn open(&self, dir: &Path) -> Res<Box<dyn Log>> {
        Ok(Box::new(PaxwalLog(Wal::open(dir, Options::default())?)))
    }

    fn reopen_count(&self, dir: &Path, entry_bytes: usize) -> Res<usize> {
        let wal = Wal::open(dir, Options::default())?;
        let mut k = 0;
        for r in wal.iter(wal.first_lsn()..=wal.last_lsn()) {
            k += usize::from(r?.1.len() == entry_bytes);
        }
        Ok(k)
    }
}

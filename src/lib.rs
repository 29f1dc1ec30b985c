//! paxwal: a replicated write-ahead log.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod types;
pub mod wal;

pub use error::{Error, Result};
pub use types::{Ballot, Lsn, NodeId, SegmentId, Slot};
pub use wal::{Options, RecoveryMode, SyncMode, Wal};

//! paxwal: a replicated write-ahead log.
//!
//! Modules from the bottom layer up (each imports only those before it; ARCHITECTURE.md's
//! folder map, checked by `tests/layering.rs`):
//!
//! * [`types`]: the position and identity newtypes every layer shares; [`error`]: `Error`.
//! * [`wal`]: the generic segmented, checksummed log with group commit and crash recovery.
//! * [`paxos`]: the pure, deterministic Multi-Paxos core (messages, ticks, proposals, reads
//!   and storage completions in; persist, send, apply and read actions out).
//! * [`store`]: a Paxos acceptor's durable state (promise, accepted values, chosen point) kept
//!   in the log.
//! * [`snapshot`]: atomic, checksummed snapshot files.
//! * [`node`]: the runtime: threads, authenticated TCP transport, state machines, client
//!   protocol.
//! * [`sim`] (feature `sim`, on by default): the deterministic cluster simulator and its
//!   checkers.
//! * [`bench`](mod@bench): everything behind `paxwal bench`: the raw-disk probes, the append,
//!   reopen, replication and cluster benchmarks, and the peer comparison.
//! * [`fuzzing`]: fuzz bodies that span layers (the log's and the core's own are in
//!   [`wal::fuzzing`] and [`paxos::fuzzing`]).
//!
//! Embedding the log:
//!
//! ```
//! use paxwal::wal::{Options, SyncMode, Wal};
//! use paxwal::Lsn;
//!
//! let dir = tempfile::tempdir()?;
//! let wal = Wal::open(dir.path(), Options { sync: SyncMode::Always, ..Options::default() })?;
//! let first = wal.append(b"put k v")?; // durable when it returns
//! let t = wal.submit_batch([b"a".as_slice(), b"b"])?; // queued...
//! wal.wait_durable(&t)?; // ...and durable (one fdatasync for the group)
//! let all: Vec<Vec<u8>> = wal
//!     .iter(first..=t.last)
//!     .map(|r| r.map(|(_, e)| e.to_vec()))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(all, vec![b"put k v".to_vec(), b"a".to_vec(), b"b".to_vec()]);
//! wal.close()?;
//! let wal = Wal::open(dir.path(), Options::default())?; // recovers
//! assert_eq!(wal.last_lsn(), Lsn(3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Driving the Paxos core over an acceptor store (one replica here, so it is a majority on its
//! own; a real cluster also sends `Action::Send` messages and steps the ones it receives):
//!
//! ```
//! use paxwal::paxos::{Action, Command, Config, Replica, Role};
//! use paxwal::store::AcceptorStore;
//! use paxwal::wal::Options;
//! use paxwal::NodeId;
//!
//! let dir = tempfile::tempdir()?;
//! let store = AcceptorStore::open(dir.path(), Options::default())?;
//! let me = NodeId(1);
//! let mut replica = Replica::new(Config::new(me, vec![me], 7), store.state().durable())?;
//! let mut applied = Vec::new();
//! let mut proposed = false;
//! for _ in 0..100 {
//!     replica.tick();
//!     if replica.role() == Role::Leader && !proposed {
//!         replica.propose(Command { client: 1, seq: 1, payload: b"put k v".to_vec() })?;
//!         proposed = true;
//!     }
//!     for action in replica.take_actions() {
//!         match action {
//!             Action::Persist { records, token } => {
//!                 let t = store.submit(&records)?; // group commit
//!                 store.wait_durable(&t)?;
//!                 replica.persisted(token); // replies that depend on it may leave now
//!             }
//!             Action::Apply { value, .. } => applied.extend(value.commands().to_vec()),
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(applied.len(), 1);
//! assert_eq!(applied[0].payload, b"put k v");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bench;
pub mod error;
pub mod fuzzing;
pub mod node;
pub mod paxos;
#[cfg(feature = "sim")]
pub mod sim;
pub mod snapshot;
pub mod store;
pub mod types;
pub mod wal;

pub use error::{Error, Result};
pub use types::{Ballot, Lsn, NodeId, SegmentId, Slot};
pub use wal::{Options, RecoveryMode, SyncMode, Wal};

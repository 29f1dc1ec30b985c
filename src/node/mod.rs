//! The runtime that drives one [`Replica`](crate::paxos::Replica) for real: threads, the
//! authenticated TCP transport, the application's state machine, snapshots and their transfer,
//! the client protocol and metrics.
//!
//! * [`machine`]: the [`StateMachine`] trait an application implements.
//! * [`kv`]: the byte-keyed key-value machine the node serves and the simulator replicates.
//! * [`net`]: frames on the wire, the authenticated handshake, the peer transport.

pub mod kv;
pub mod machine;
pub mod net;

pub use kv::{KvMachine, KvOp, KvOutput};
pub use machine::{RestoreError, StateMachine};

//! The runtime that drives one [`Replica`](crate::paxos::Replica) for real: threads, the
//! authenticated TCP transport, the application's state machine, snapshots and their transfer,
//! the client protocol and metrics.
//!
//! * [`machine`]: the [`StateMachine`] trait an application implements.
//! * [`kv`]: the byte-keyed key-value machine the node serves and the simulator replicates.
//! * [`net`]: frames on the wire, the authenticated handshake, the peer transport.

pub mod client;
pub mod config;
pub mod kv;
pub mod machine;
pub mod metrics;
pub mod net;
pub mod proto;
pub mod runtime;

pub use client::{ClientError, KvClient};
pub use config::{NodeConfig, NodeError};
pub use kv::{KvMachine, KvOp, KvOutput};
pub use machine::{RestoreError, StateMachine};
pub use runtime::{Node, Status};

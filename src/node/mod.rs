//! The runtime that drives one [`Replica`](crate::paxos::Replica) for real: threads, the
//! authenticated TCP transport, the application's state machine, snapshots and their transfer,
//! the client protocol and metrics.
//!
//! * [`machine`]: the [`StateMachine`] trait an application implements.
//! * [`kv`]: the byte-keyed key-value machine the node serves and the simulator replicates.
//! * [`runtime`]: [`Node`] — start a replica from a [`NodeConfig`] and a [`StateMachine`],
//!   propose, read linearizably, watch its [`Status`]; its threads (pump, syncer,
//!   snapshotter, client connections) and the order of effects.
//! * [`client`]: [`KvClient`], a client that finds the leader and retries exactly once.
//! * [`load`]: a pipelined closed-loop load generator (`paxwal bench --cluster`, `demo`).
//! * [`proto`]: the client and peer messages inside the transport's frames.
//! * [`metrics`]: counters and latency histograms.
//! * [`net`]: frames on the wire, the authenticated handshake, the peer transport.
//!
//! Snapshot policy and transfer are described in the `transfer` module's source; client
//! connections in `clients`.

mod bytes;
pub mod client;
mod clients;
pub mod config;
pub mod kv;
pub mod load;
pub mod machine;
pub mod metrics;
pub mod net;
pub mod proto;
mod pump;
pub mod runtime;
mod transfer;

pub use client::{ClientError, KvClient};
pub use config::{NodeConfig, NodeError};
pub use kv::{KvMachine, KvOp, KvOutput};
pub use machine::{RestoreError, StateMachine};
pub use runtime::{Node, Status};

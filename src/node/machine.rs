//! The application's side of the replicated log: a deterministic state machine the node
//! applies chosen commands to, reads from, and snapshots.

use crate::paxos::Command;

/// A snapshot's bytes do not decode into this machine's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("snapshot does not decode: {0}")]
pub struct RestoreError(pub String);

/// The application a node replicates. Every replica applies the same chosen commands in the
/// same (slot) order, so the machine must be deterministic: its state may depend only on the
/// commands applied (no clock, no randomness, no I/O).
///
/// Clients retry a command with the same `(client, seq)` until they hear back, so the same
/// command can be chosen in several slots: the machine applies each `(client, seq)` at most
/// once, keeping a [`Sessions`](crate::paxos::Sessions) table in its replicated state (and in
/// its snapshots), as [`KvMachine`](super::kv::KvMachine) does.
pub trait StateMachine: Send + 'static {
    /// Applies one chosen command; returns its output (the remembered output for a retry of
    /// an applied command), or `None` for a command that changes nothing and answers nobody
    /// (stale: older than its client's last applied command; or malformed).
    fn apply(&mut self, command: &Command) -> Option<Vec<u8>>;

    /// Answers a read-only query from the current state. The node calls it only once a
    /// read-index round made the state at least as new as every write acknowledged before
    /// the read arrived (linearizable reads). `None` for a malformed query.
    fn query(&self, query: &[u8]) -> Option<Vec<u8>>;

    /// The whole state (session table included), for a snapshot.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError>;
}

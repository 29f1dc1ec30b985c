//! A node's configuration and errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::net::Auth;
use crate::types::NodeId;

/// How to run one replica.
#[derive(Clone)]
pub struct NodeConfig {
    /// This replica's id.
    pub id: NodeId,
    /// Where the replica listens for its peers.
    pub peer_listen: SocketAddr,
    /// Where it listens for clients.
    pub client_listen: SocketAddr,
    /// The other replicas and their peer addresses.
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Holds `log/` (the acceptor store) and `snapshots/`.
    pub data_dir: PathBuf,
    /// Authentication of every connection.
    pub auth: Auth,
    /// One tick of the core's logical clock.
    pub tick: Duration,
    /// Election timeout in ticks (randomized in `min..=max`).
    pub election_timeout_ticks: (u32, u32),
    /// The leader's heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Take a snapshot (and compact the log below it) every this many applied slots; 0 never.
    pub snapshot_every_slots: u64,
    /// Pack many client commands into one slot (false: one command per slot).
    pub batching: bool,
    /// Most slots the leader keeps in flight.
    pub window_slots_max: usize,
    /// Most client requests waiting for an answer; beyond, clients are answered Busy.
    pub pending_max: usize,
    /// Most client connections at once; beyond, new ones are closed.
    pub client_connections_max: usize,
    /// Bytes per snapshot-transfer chunk.
    pub transfer_chunk_bytes: usize,
    /// Test hook: after receiving this many snapshot chunks in one transfer, drop the
    /// connection to the sender once (the transfer must resume from where it stopped).
    #[doc(hidden)]
    pub drop_transfer_after_chunks: Option<u64>,
}

impl NodeConfig {
    /// A configuration with the defaults: 10 ms ticks, election timeout 30–60 ticks,
    /// heartbeat every 5, a snapshot every 10,000 slots, batching on, 1,024 slots in flight,
    /// 65,536 pending requests, 1,024 client connections, 256 KiB transfer chunks.
    pub fn new(
        id: NodeId,
        peer_listen: SocketAddr,
        client_listen: SocketAddr,
        peers: Vec<(NodeId, SocketAddr)>,
        data_dir: PathBuf,
        auth: Auth,
    ) -> NodeConfig {
        NodeConfig {
            id,
            peer_listen,
            client_listen,
            peers,
            data_dir,
            auth,
            tick: Duration::from_millis(10),
            election_timeout_ticks: (30, 60),
            heartbeat_ticks: 5,
            snapshot_every_slots: 10_000,
            batching: true,
            window_slots_max: 1024,
            pending_max: 65_536,
            client_connections_max: 1024,
            transfer_chunk_bytes: 256 << 10,
            drop_transfer_after_chunks: None,
        }
    }
}

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("invalid node configuration: {0}")]
    Config(String),
    /// The acceptor store or the snapshots failed.
    #[error("storage: {0}")]
    Storage(#[from] crate::Error),
    /// A socket or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The node stopped after a fatal error (fail-stop).
    #[error("fail-stop: {0}")]
    Fatal(String),
}

impl NodeError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> NodeError {
        NodeError::Io {
            what: what.into(),
            source,
        }
    }
}

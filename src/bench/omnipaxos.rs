//! (feature `omnipaxos`) omnipaxos 0.2.4 in the same harnesses as paxwal: 3 nodes in one
//! process, messages passed in memory, the one pump loop below for every storage. Over its
//! `MemoryStorage` it is the peer of the pure-core bench (`benches/paxos.rs`); with feature
//! `compare-omnipaxos`, over its RocksDB `PersistentStorage` (each storage in its own directory
//! on the same disk, `sync_writes` on, its default: every storage write is a synced RocksDB write
//! batch), the peer of the replication benchmark ([`super::replication`]).
//!
//! The pump: every round each node in turn hands over its outgoing messages, each going to its
//! addressee at once (`take_outgoing_messages` + `handle_incoming`); the leader is topped up to
//! the in-flight count with `append`; progress is the leader's decided index; `tick()` runs every
//! 10 ms of wall time; and after every 65,536 commands `trim` forgets what every node has
//! decided, to keep memory and disk flat. omnipaxos's storage calls are synchronous, so with
//! RocksDB each node's syncs run on the pump thread (its API offers no completion to wait for).

use std::time::{Duration, Instant};

use omnipaxos::messages::Message;
use omnipaxos::storage::{Entry, NoSnapshot, Storage};
use omnipaxos::{ClusterConfig, OmniPaxos, OmniPaxosConfig, ServerConfig};
use omnipaxos_storage::memory_storage::MemoryStorage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Commands committed between two trims.
pub const TRIM_EVERY_COMMANDS: u64 = 65_536;
/// Wall time between two ticks.
const TICK: Duration = Duration::from_millis(10);
/// Ticks without a decided command (or without a leader) before the run gives up (30 s).
const STALL_TICKS: u32 = 3_000;

/// One command, as omnipaxos stores it (bincode-encoded by the RocksDB storage).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cmd {
    client: u64,
    seq: u64,
    payload: Vec<u8>,
}

impl Entry for Cmd {
    type Snapshot = NoSnapshot;
}

/// Three omnipaxos nodes over storages of type `S`, pumped by the calling thread.
pub struct OmniCluster<S: Storage<Cmd>> {
    nodes: Vec<OmniPaxos<Cmd, S>>,
    leader: usize,
    buf: Vec<Message<Cmd>>,
    proposed: u64,
    payload: Vec<u8>,
    last_tick: Instant,
    /// Read every node's newly decided entries each round, as an application would.
    read_decided: bool,
    read: Vec<usize>,
    trim_failures: u64,
}

impl OmniCluster<MemoryStorage<Cmd>> {
    /// Three nodes over `MemoryStorage`, `batch_size` commands per batch, commands of
    /// `payload_bytes`; runs an election.
    pub fn in_memory(batch_size: usize, payload_bytes: usize) -> Result<Self> {
        let storages = (0..3).map(|_| MemoryStorage::default()).collect();
        OmniCluster::with_storages(storages, batch_size, payload_bytes)
    }
}

#[cfg(feature = "compare-omnipaxos")]
impl OmniCluster<omnipaxos_storage::persistent_storage::PersistentStorage<Cmd>> {
    /// Three nodes over RocksDB storages in `dir/omnipaxos-1` … `dir/omnipaxos-3` (which must
    /// not exist); runs an election.
    pub fn open(dir: &std::path::Path, batch_size: usize, payload_bytes: usize) -> Result<Self> {
        use omnipaxos_storage::persistent_storage::{PersistentStorage, PersistentStorageConfig};
        let storages = (1..=3)
            .map(|pid| {
                let path = dir.join(format!("omnipaxos-{pid}"));
                PersistentStorage::new(PersistentStorageConfig::with_path(
                    path.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        OmniCluster::with_storages(storages, batch_size, payload_bytes)
    }
}

impl<S: Storage<Cmd>> OmniCluster<S> {
    /// Three nodes (pids 1, 2, 3) over `storages`; runs an election (at most 30 s).
    pub fn with_storages(
        storages: Vec<S>,
        batch_size: usize,
        payload_bytes: usize,
    ) -> Result<Self> {
        let pids: Vec<u64> = (1..=storages.len() as u64).collect();
        let mut nodes = Vec::new();
        for (storage, &pid) in storages.into_iter().zip(&pids) {
            let cfg = OmniPaxosConfig {
                cluster_config: ClusterConfig {
                    configuration_id: 1,
                    nodes: pids.clone(),
                    flexible_quorum: None,
                },
                server_config: ServerConfig {
                    pid,
                    batch_size,
                    ..ServerConfig::default()
                },
            };
            nodes.push(
                cfg.build(storage)
                    .map_err(|e| Error::Invalid(format!("omnipaxos config: {e:?}")))?,
            );
        }
        let mut c = OmniCluster {
            read: vec![0; nodes.len()],
            nodes,
            leader: 0,
            buf: Vec::new(),
            proposed: 0,
            payload: vec![0x5a; payload_bytes],
            last_tick: Instant::now(),
            read_decided: false,
            trim_failures: 0,
        };
        let start = Instant::now();
        loop {
            for n in &mut c.nodes {
                n.tick();
            }
            c.round();
            let leader = c.nodes[0].get_current_leader();
            if let Some((pid, true)) = leader {
                c.leader = (pid - 1) as usize;
                if c.nodes[c.leader].get_current_leader() == leader {
                    return Ok(c);
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::Invalid(
                    "omnipaxos elected no leader within 30 s".into(),
                ));
            }
        }
    }

    /// With `on`, every round also reads every node's newly decided entries (with
    /// `read_decided_suffix`), as an application applying them would. Off by default.
    pub fn set_read_decided(&mut self, on: bool) {
        self.read_decided = on;
    }

    /// The index (0, 1 or 2) of the node that leads.
    pub fn leader_index(&self) -> usize {
        self.leader
    }

    /// How many trims failed so far (trimming past a follower's decided index fails; the run
    /// goes on untrimmed).
    pub fn trim_failures(&self) -> u64 {
        self.trim_failures
    }

    fn round(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].take_outgoing_messages(&mut self.buf);
            for m in self.buf.drain(..) {
                let to = (m.get_receiver() - 1) as usize;
                self.nodes[to].handle_incoming(m);
            }
        }
        if self.read_decided {
            for (node, read) in self.nodes.iter().zip(&mut self.read) {
                if let Some(entries) = node.read_decided_suffix(*read) {
                    *read += entries.len();
                }
            }
        }
    }

    fn decided(&self) -> u64 {
        self.nodes[self.leader].get_decided_idx() as u64
    }

    /// Commits `n` more commands with `in_flight` outstanding, trimming after every
    /// [`TRIM_EVERY_COMMANDS`]; returns the wall time.
    pub fn run(&mut self, n: u64, in_flight: u64) -> Result<Duration> {
        let start = Instant::now();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(TRIM_EVERY_COMMANDS);
            self.run_chunk(chunk, in_flight.max(1))?;
            left -= chunk;
        }
        Ok(start.elapsed())
    }

    fn run_chunk(&mut self, n: u64, in_flight: u64) -> Result<()> {
        let target = self.decided() + n;
        // Checked once per tick, so the loop reads the clock no more than it must.
        let (mut decided_at_tick, mut stalled_ticks) = (self.decided(), 0u32);
        while self.decided() < target {
            let decided = self.decided();
            while self.proposed < target && self.proposed - decided < in_flight {
                let cmd = Cmd {
                    client: 1,
                    seq: self.proposed,
                    payload: self.payload.clone(),
                };
                self.nodes[self.leader]
                    .append(cmd)
                    .map_err(|e| Error::Invalid(format!("omnipaxos append: {e:?}")))?;
                self.proposed += 1;
            }
            self.round();
            if self.last_tick.elapsed() >= TICK {
                self.last_tick = Instant::now();
                for node in &mut self.nodes {
                    node.tick();
                }
                let now = self.decided();
                stalled_ticks = if now == decided_at_tick {
                    stalled_ticks + 1
                } else {
                    0
                };
                decided_at_tick = now;
                if stalled_ticks >= STALL_TICKS {
                    return Err(Error::Invalid("omnipaxos decided nothing for 30 s".into()));
                }
            }
        }
        // Trim what every node has decided (trimming past a follower's decided index fails).
        let all_decided = self
            .nodes
            .iter()
            .map(|n| n.get_decided_idx())
            .min()
            .unwrap_or(0);
        if self.nodes[self.leader].trim(Some(all_decided)).is_err() {
            self.trim_failures += 1;
        }
        self.round();
        Ok(())
    }
}

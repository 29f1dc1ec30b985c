//! (feature `compare-omnipaxos`) omnipaxos 0.2.4 with its RocksDB `PersistentStorage` in the
//! same harness: 3 nodes in one process, each storage in its own directory on the same disk,
//! `sync_writes` on (its default: every storage write is a synced RocksDB write batch), messages
//! passed in memory, 64-byte commands, `batch_size` = commands per batch. The pump is the one
//! `benches/paxos.rs` uses for omnipaxos: every round each node's outgoing messages are delivered
//! with `handle_incoming`, the leader is topped up to the in-flight count with `append`,
//! progress is the leader's decided index, `tick()` runs every 10 ms of wall time, and `trim`
//! every 65,536 commands keeps memory and disk flat. omnipaxos's storage calls are synchronous,
//! so each node's syncs run on the pump thread (its API offers no completion to wait for).

use std::path::Path;
use std::time::{Duration, Instant};

use omnipaxos::messages::Message;
use omnipaxos::storage::{Entry, NoSnapshot};
use omnipaxos::{ClusterConfig, OmniPaxos, OmniPaxosConfig, ServerConfig};
use omnipaxos_storage::persistent_storage::{PersistentStorage, PersistentStorageConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One command, as omnipaxos stores it (bincode-encoded).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cmd {
    client: u64,
    seq: u64,
    payload: Vec<u8>,
}

impl Entry for Cmd {
    type Snapshot = NoSnapshot;
}

type Node = OmniPaxos<Cmd, PersistentStorage<Cmd>>;

/// Three omnipaxos nodes over RocksDB, pumped by the calling thread.
pub struct OmniCluster {
    nodes: Vec<Node>,
    leader: usize,
    buf: Vec<Message<Cmd>>,
    proposed: u64,
    payload: Vec<u8>,
    last_tick: Instant,
}

impl OmniCluster {
    /// Opens the three storages in `dir/omnipaxos-1` … `dir/omnipaxos-3` (which must not
    /// exist) and runs an election.
    pub fn open(dir: &Path, batch_size: usize, payload_bytes: usize) -> Result<OmniCluster> {
        let pids = vec![1u64, 2, 3];
        let mut nodes = Vec::new();
        for &pid in &pids {
            let path = dir.join(format!("omnipaxos-{pid}"));
            let storage = PersistentStorage::new(PersistentStorageConfig::with_path(
                path.to_string_lossy().into_owned(),
            ));
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
            nodes,
            leader: 0,
            buf: Vec::new(),
            proposed: 0,
            payload: vec![0x5a; payload_bytes],
            last_tick: Instant::now(),
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
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::Invalid(
                    "omnipaxos elected no leader within 30 s".into(),
                ));
            }
        }
        Ok(c)
    }

    fn round(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].take_outgoing_messages(&mut self.buf);
            for m in self.buf.drain(..) {
                let to = (m.get_receiver() - 1) as usize;
                self.nodes[to].handle_incoming(m);
            }
        }
    }

    fn decided(&self) -> u64 {
        self.nodes[self.leader].get_decided_idx() as u64
    }

    /// Commits `n` more commands with `in_flight` outstanding; returns the wall time.
    pub fn run(&mut self, n: u64, in_flight: u64) -> Result<Duration> {
        let start = Instant::now();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(65_536);
            self.run_chunk(chunk, in_flight)?;
            left -= chunk;
        }
        Ok(start.elapsed())
    }

    fn run_chunk(&mut self, n: u64, in_flight: u64) -> Result<()> {
        let target = self.decided() + n;
        let mut last = (self.decided(), Instant::now());
        while self.decided() < target {
            let decided = self.decided();
            if decided != last.0 {
                last = (decided, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(30) {
                return Err(Error::Invalid("omnipaxos decided nothing for 30 s".into()));
            }
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
            if self.last_tick.elapsed() >= Duration::from_millis(10) {
                self.last_tick = Instant::now();
                for node in &mut self.nodes {
                    node.tick();
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
        let _ = self.nodes[self.leader].trim(Some(all_decided));
        self.round();
        Ok(())
    }
}

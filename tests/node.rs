//! The node runtime in one process: three replicas on loopback with a shared secret, driven
//! through the real client. Pins: writes and linearizable reads through any replica,
//! failover when the leader stops, exactly-once retries, restart from disk, and catch-up by
//! snapshot transfer (resumed after a connection dropped mid-transfer). The multi-process
//! tests (SIGKILL, `paxwal serve`) are in `tests/cluster.rs`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxwal::node::net::{Auth, Secret};
use paxwal::node::{KvClient, KvMachine, Node, NodeConfig};
use paxwal::paxos::Role;
use paxwal::NodeId;

struct Cluster {
    auth: Auth,
    peer: Vec<SocketAddr>,
    client: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
    dir: tempfile::TempDir,
}

/// A free port below the kernel's ephemeral range, so that no client connection's local
/// port can take it while a stopped replica is down (its restart binds the same port).
fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_000;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

impl Cluster {
    fn new(n: u32) -> Cluster {
        let mut c = Cluster {
            auth: Auth::Secret(Arc::new(Secret::generate())),
            peer: (0..n).map(|_| free_addr()).collect(),
            client: (0..n).map(|_| free_addr()).collect(),
            nodes: (0..n).map(|_| None).collect(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for i in 0..n as usize {
            c.start(i, |_| {});
        }
        c
    }

    fn config(&self, i: usize) -> NodeConfig {
        let peers = (0..self.peer.len())
            .filter(|&p| p != i)
            .map(|p| (NodeId(p as u32 + 1), self.peer[p]))
            .collect();
        NodeConfig::new(
            NodeId(i as u32 + 1),
            self.peer[i],
            self.client[i],
            peers,
            self.dir.path().join(format!("r{}", i + 1)),
            self.auth.clone(),
        )
    }

    fn start(&mut self, i: usize, tweak: impl Fn(&mut NodeConfig)) {
        let mut cfg = self.config(i);
        tweak(&mut cfg);
        // A restarted replica's port may linger briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Node::start(cfg.clone(), KvMachine::new()) {
                Ok(n) => {
                    self.nodes[i] = Some(n);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("start replica {}: {e}; retrying", i + 1);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("start replica {}: {e}", i + 1),
            }
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().expect("clean shutdown");
        }
    }

    fn client(&self) -> KvClient {
        KvClient::new(self.client.clone(), self.auth.clone()).with_timeout(Duration::from_secs(20))
    }

    fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.status().role == Role::Leader))
    }

    /// Waits until replica `i` applied at least as far as `slot`.
    fn wait_applied(&self, i: usize, slot: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.nodes[i]
                .as_ref()
                .is_some_and(|n| n.status().applied.0 >= slot)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("replica {} did not reach slot {slot}", i + 1);
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut() {
            if let Some(n) = n.take() {
                let _ = n.shutdown();
            }
        }
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

#[test]
fn writes_reads_failover_and_restart_from_disk() {
    let mut c = Cluster::new(3);
    let mut kv = c.client();
    for i in 0..200 {
        kv.put(&key(i), format!("v{i}").as_bytes()).expect("put");
    }
    assert_eq!(kv.get(&key(7)).expect("get"), Some(b"v7".to_vec()));
    assert_eq!(kv.get(b"absent").expect("get"), None);
    assert!(kv.cas(&key(7), Some(b"v7"), b"w7").expect("cas"));
    assert!(
        !kv.cas(&key(7), Some(b"v7"), b"x7").expect("cas"),
        "second cas must fail"
    );
    assert!(kv.delete(&key(8)).expect("delete"));
    assert!(!kv.delete(&key(8)).expect("delete"));

    // The leader stops; the others elect a new one and serve every acknowledged write.
    let old = c.leader().expect("a leader");
    c.stop(old);
    let t = Instant::now();
    kv.put(b"after-failover", b"1").expect("put after failover");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "failover took {:?}",
        t.elapsed()
    );
    assert_eq!(kv.get(&key(7)).expect("get"), Some(b"w7".to_vec()));
    assert_eq!(kv.get(&key(8)).expect("get"), None);

    // It restarts from its own disk and catches up from the log.
    c.start(old, |_| {});
    let new = c.leader().expect("a leader");
    let target = c.nodes[new]
        .as_ref()
        .map(|n| n.status().applied.0)
        .unwrap_or(0);
    c.wait_applied(old, target);
    let addr = c.client[old];
    for i in (0..200).step_by(17) {
        let want = match i {
            7 => Some(b"w7".to_vec()),
            8 => None,
            _ => Some(format!("v{i}").into_bytes()),
        };
        assert_eq!(
            kv.get_local(addr, &key(i)).expect("local get"),
            want,
            "key {i}"
        );
    }
    assert_eq!(
        kv.get_local(addr, b"after-failover").expect("local get"),
        Some(b"1".to_vec())
    );
    assert!(c.data().join(format!("r{}", old + 1)).join("log").is_dir());
}

#[test]
fn a_replica_down_across_snapshots_catches_up_by_transfer_after_a_dropped_connection() {
    let mut c = Cluster::new(3);
    for i in 0..3 {
        c.stop(i);
        c.start(i, |cfg| {
            cfg.snapshot_every_slots = 40;
            cfg.transfer_chunk_bytes = 1024;
        });
    }
    let mut kv = c.client();
    kv.put(b"first", b"1").expect("put");
    let leader = c.leader().expect("a leader");
    let down = (leader + 1) % 3;
    c.stop(down);
    // Several snapshot intervals while it is down, with values large enough that the
    // snapshot takes many chunks.
    let big = vec![b'x'; 200];
    for i in 0..400 {
        kv.put(&key(i), &big).expect("put");
    }
    let leader = c.leader().expect("a leader");
    let status = c.nodes[leader]
        .as_ref()
        .map(|n| n.status())
        .expect("leader status");
    assert!(status.metrics.snapshots_taken >= 5, "{status:?}");
    assert!(
        status.log_start.0 > 1,
        "the leader compacted its log: {status:?}"
    );

    c.start(down, |cfg| {
        cfg.snapshot_every_slots = 40;
        cfg.transfer_chunk_bytes = 1024;
        cfg.drop_transfer_after_chunks = Some(5);
    });
    c.wait_applied(down, status.applied.0);
    let s = c.nodes[down].as_ref().map(|n| n.status()).expect("status");
    assert!(
        s.metrics.snapshots_installed >= 1,
        "installed by transfer: {s:?}"
    );
    assert!(
        s.metrics.chunks_received > 5,
        "more chunks than the drop point: {s:?}"
    );
    let addr = c.client[down];
    assert_eq!(
        kv.get_local(addr, b"first").expect("get"),
        Some(b"1".to_vec())
    );
    for i in (0..400).step_by(37) {
        assert_eq!(
            kv.get_local(addr, &key(i)).expect("get"),
            Some(big.clone()),
            "key {i}"
        );
    }
    // And it takes part: with another replica down, writes still commit.
    let other = (down + 1) % 3;
    c.stop(other);
    kv.put(b"two-left", b"ok")
        .expect("put with the caught-up replica in the quorum");
    assert_eq!(kv.get(b"two-left").expect("get"), Some(b"ok".to_vec()));
}

#[test]
fn a_wrong_secret_is_refused_and_an_insecure_node_needs_insecure_clients() {
    let c = Cluster::new(3);
    let mut good = c.client();
    good.put(b"k", b"v").expect("put");
    let wrong = Auth::Secret(Arc::new(Secret::generate()));
    let mut bad = KvClient::new(c.client.clone(), wrong).with_timeout(Duration::from_secs(2));
    let r = bad.put(b"k", b"evil");
    assert!(
        matches!(r, Err(paxwal::node::ClientError::Auth(_))),
        "{r:?}"
    );
    let mut insecure =
        KvClient::new(c.client.clone(), Auth::Insecure).with_timeout(Duration::from_secs(2));
    let r = insecure.get(b"k");
    assert!(
        matches!(r, Err(paxwal::node::ClientError::Auth(_))),
        "{r:?}"
    );
    assert_eq!(good.get(b"k").expect("get"), Some(b"v".to_vec()));
}

#[test]
fn the_embedding_api_proposes_and_reads_in_process() {
    use paxwal::node::{ClientError, KvOp, KvOutput};
    use paxwal::paxos::Command;
    let c = Cluster::new(3);
    let mut kv = c.client();
    kv.put(b"warm", b"up").expect("a leader is elected");
    let leader = c.leader().expect("a leader");
    let node = c.nodes[leader].as_ref().expect("running");
    let put = Command {
        client: 99,
        seq: 1,
        payload: KvOp::Put {
            key: b"e".to_vec(),
            value: b"mb".to_vec(),
        }
        .encode(),
    };
    let out = node
        .propose(put.clone(), Duration::from_secs(10))
        .expect("propose");
    assert_eq!(KvOutput::decode(&out), Some(KvOutput::Ok));
    // The retry is answered with the remembered result and applies nothing new.
    let again = node.propose(put, Duration::from_secs(10)).expect("retry");
    assert_eq!(KvOutput::decode(&again), Some(KvOutput::Ok));
    let get = KvOp::Get { key: b"e".to_vec() }.encode();
    let out = node
        .read(get.clone(), Duration::from_secs(10))
        .expect("read");
    assert_eq!(
        KvOutput::decode(&out),
        Some(KvOutput::Value(Some(b"mb".to_vec())))
    );
    let follower = c.nodes[(leader + 1) % 3].as_ref().expect("running");
    // Replicas tell each other their client addresses every few ticks.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match follower.read(get.clone(), Duration::from_secs(10)) {
            Err(ClientError::NotLeader(Some(addr))) => {
                assert_eq!(addr, c.client[leader].to_string());
                break;
            }
            Err(ClientError::NotLeader(None)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("a follower must name the leader: {other:?}"),
        }
    }
}

#[test]
fn the_load_generator_acknowledges_only_what_the_cluster_holds() {
    use paxwal::node::load::{run, LoadConfig};
    let c = Cluster::new(3);
    let mut kv = c.client();
    kv.put(b"warm", b"up").expect("a leader is elected");
    let cfg = LoadConfig {
        cluster: c.client.clone(),
        clients: 32,
        connections: 4,
        value_bytes: 16,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(800),
    };
    let (r, acked) = run(&cfg, &c.auth, true).expect("load runs");
    assert!(
        r.committed > 0 && r.committed <= acked.len() as u64,
        "{r:?}"
    );
    assert!(r.p50_us > 0 && r.p50_us <= r.p99_us, "{r:?}");
    for (k, v) in acked.iter().step_by((acked.len() / 50).max(1)) {
        assert_eq!(
            kv.get(k).expect("get").as_ref(),
            Some(v),
            "an acknowledged put is readable"
        );
    }
}

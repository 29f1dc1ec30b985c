//! Real clusters: `paxwal serve` processes on 127.0.0.1, real TCP, fsync on, a generated
//! secret. Pins that
//! * writes from concurrent clients go on after the leader is SIGKILLed (within 10 s), the
//!   killed replica restarts and catches up, every acknowledged write is on every replica, and
//!   the history the clients recorded (including the final reads from each replica) is
//!   linearizable per key (`paxwal::sim::linearizability`; a call that failed or timed out is
//!   indeterminate: it may or may not have taken effect);
//! * the same holds when each replica in turn is killed and restarted;
//! * a replica that was down across many snapshot intervals catches up by snapshot transfer
//!   (multi-chunk, with the connection dropped once mid-transfer) and holds every write;
//! * strangers (silent, garbage, frames without a handshake, wrong secret, no secret, a
//!   replayed handshake) are refused on peer and client ports and the cluster still serves;
//! * the CLI contract: `serve` without a secret refuses (64), `--insecure` says so and stops
//!   cleanly on SIGTERM (0); `kv` exits 0 / 1 / 2 as documented.
//!
//! Every replica is a child process killed by the harness's drop guard (also on a panic).
//! Timeouts are generous and everything polls: the machine may be small and loaded.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxwal::bench::cluster::{free_port, ClusterOptions, LocalCluster};
use paxwal::node::net::{dial_handshake, encode_frame, Auth, ConnKind, Secret};
use paxwal::node::{ClientError, KvClient};
use paxwal::sim::{check, KvInput, KvOutput, KvRegister, Operation, Verdict};
use paxwal::NodeId;

const EXE: &str = env!("CARGO_BIN_EXE_paxwal");

fn start(opts: ClusterOptions) -> LocalCluster {
    LocalCluster::start(Path::new(EXE), opts).unwrap_or_else(|e| panic!("cluster start: {e}"))
}

/// Waits until `f` holds, polling; panics with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

type Op = Operation<KvInput, KvOutput>;

/// Concurrent client threads doing puts, gets and compare-and-sets on a few shared keys
/// (unique values), each operation recorded with invocation and response times.
struct Workload {
    start: Instant,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    /// Newest invocation time (ns) of a write acknowledged so far.
    last_acked_invoke_ns: Arc<AtomicU64>,
    history: Arc<Mutex<Vec<(u64, Op)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn decode(v: Option<Vec<u8>>) -> Option<u64> {
    v.map(|b| {
        std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a value this test never wrote: {b:?}"))
    })
}

impl Workload {
    fn start(cluster: &LocalCluster, clients: u64, keys: u64, ops_per_client_max: u64) -> Workload {
        let w = Workload {
            start: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            acked: Arc::new(AtomicU64::new(0)),
            last_acked_invoke_ns: Arc::new(AtomicU64::new(0)),
            history: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
        };
        let mut w = w;
        for c in 0..clients {
            let mut kv = cluster.client().with_timeout(Duration::from_secs(10));
            let (start, stop, acked, last, history) = (
                w.start,
                w.stop.clone(),
                w.acked.clone(),
                w.last_acked_invoke_ns.clone(),
                w.history.clone(),
            );
            w.threads.push(std::thread::spawn(move || {
                let mut rng =
                    0x9e37_79b9_7f4a_7c15u64 ^ (c + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
                let mut last_read: Vec<Option<u64>> = vec![None; keys as usize];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < ops_per_client_max {
                    n += 1;
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let k = rng % keys;
                    let key = format!("lin-{k}");
                    let value = (c + 1) * 1_000_000 + n;
                    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
                    let t0 = Instant::now();
                    let (input, out) = match (rng >> 32) % 10 {
                        0..=4 => (
                            KvInput::Put(value),
                            kv.put(key.as_bytes(), value.to_string().as_bytes())
                                .map(|()| KvOutput::Ok),
                        ),
                        5..=7 => (
                            KvInput::Get,
                            kv.get(key.as_bytes()).map(|v| {
                                let v = decode(v);
                                last_read[k as usize] = v;
                                KvOutput::Value(v)
                            }),
                        ),
                        _ => {
                            let expected = last_read[k as usize];
                            let e = expected.map(|e| e.to_string());
                            (
                                KvInput::Cas {
                                    expected,
                                    new: value,
                                },
                                kv.cas(
                                    key.as_bytes(),
                                    e.as_deref().map(str::as_bytes),
                                    value.to_string().as_bytes(),
                                )
                                .map(KvOutput::Swapped),
                            )
                        }
                    };
                    let t1 = Instant::now();
                    let is_write = !matches!(input, KvInput::Get);
                    let done = match out {
                        Ok(o) => {
                            if is_write {
                                acked.fetch_add(1, Ordering::Relaxed);
                                last.fetch_max(ns(t0), Ordering::Relaxed);
                            }
                            Some((ns(t1), o))
                        }
                        // Indeterminate: it may or may not have taken effect. (A failed read
                        // constrains nothing either way.)
                        Err(_) => None,
                    };
                    history.lock().unwrap().push((
                        k,
                        Operation {
                            invoke: ns(t0),
                            done,
                            input,
                        },
                    ));
                }
            }));
        }
        w
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `more` further writes are acknowledged.
    fn wait_more(&self, more: u64, timeout: Duration) {
        let target = self.acked() + more;
        wait_for(&format!("{more} more acknowledged writes"), timeout, || {
            self.acked() >= target
        });
    }

    /// Waits until a write invoked after `t_ns` is acknowledged; returns how long that took
    /// from `t_ns`.
    fn wait_write_invoked_after(&self, t_ns: u64, timeout: Duration) -> Duration {
        wait_for(
            "a write invoked after the fault acknowledged",
            timeout,
            || self.last_acked_invoke_ns.load(Ordering::Relaxed) > t_ns,
        );
        Duration::from_nanos(self.now_ns() - t_ns)
    }

    fn stop(mut self) -> Vec<(u64, Op)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("a client thread panicked");
        }
        std::mem::take(&mut *self.history.lock().unwrap())
    }
}

/// Waits for the replicas to converge, reads every key from every replica's own state and
/// through the cluster (appended to the history as reads after everything else), and checks
/// the whole history per key.
fn check_history(
    cluster: &mut LocalCluster,
    mut history: Vec<(u64, Op)>,
    keys: u64,
    start: Instant,
) {
    cluster
        .wait_converged(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("replicas did not converge: {e}"));
    let auth = cluster.auth();
    let mut kv = KvClient::new(cluster.client_addrs(), auth).with_timeout(Duration::from_secs(20));
    let ns = || start.elapsed().as_nanos() as u64;
    for k in 0..keys {
        let key = format!("lin-{k}");
        for addr in cluster.client_addrs() {
            let t0 = ns();
            let v = kv
                .get_local(addr, key.as_bytes())
                .unwrap_or_else(|e| panic!("local read of {key} from {addr}: {e}"));
            history.push((
                k,
                Operation {
                    invoke: t0,
                    done: Some((ns(), KvOutput::Value(decode(v)))),
                    input: KvInput::Get,
                },
            ));
        }
        let t0 = ns();
        let v = kv
            .get(key.as_bytes())
            .unwrap_or_else(|e| panic!("read of {key} through the cluster: {e}"));
        history.push((
            k,
            Operation {
                invoke: t0,
                done: Some((ns(), KvOutput::Value(decode(v)))),
                input: KvInput::Get,
            },
        ));
    }
    let acked_writes = history
        .iter()
        .filter(|(_, o)| o.done.is_some() && !matches!(o.input, KvInput::Get))
        .count();
    assert!(acked_writes > 0, "no write was acknowledged");
    eprintln!(
        "checking {} operations on {keys} keys ({acked_writes} acknowledged writes, {} indeterminate)",
        history.len(),
        history.iter().filter(|(_, o)| o.done.is_none()).count()
    );
    for k in 0..keys {
        let ops: Vec<Op> = history
            .iter()
            .filter(|(key, _)| *key == k)
            .map(|(_, o)| o.clone())
            .collect();
        let v = check(&KvRegister, &ops, 20_000_000);
        assert_eq!(
            v,
            Verdict::Linearizable,
            "key lin-{k}: {} operations ({} indeterminate) are not linearizable",
            ops.len(),
            ops.iter().filter(|o| o.done.is_none()).count()
        );
    }
}

#[test]
fn leader_sigkilled_writes_resume_and_the_history_is_linearizable() {
    let mut cluster = start(ClusterOptions {
        snapshot_every_slots: Some(2000),
        ..ClusterOptions::default()
    });
    let keys = 6;
    let w = Workload::start(&cluster, 4, keys, 20_000);
    w.wait_more(100, Duration::from_secs(30));
    let leader = cluster.wait_leader(Duration::from_secs(20)).unwrap();
    let killed_ns = w.now_ns();
    cluster.kill(leader).unwrap();
    let resumed = w.wait_write_invoked_after(killed_ns, Duration::from_secs(10));
    let new_leader = cluster.wait_leader(Duration::from_secs(10)).unwrap();
    assert_ne!(new_leader, leader);
    eprintln!(
        "leader n{} killed; writes resumed after {resumed:?} (n{} leads)",
        leader.0, new_leader.0
    );
    w.wait_more(100, Duration::from_secs(30));
    cluster.restart(leader).unwrap();
    let target = cluster.status(new_leader).unwrap().chosen();
    cluster
        .wait_applied(leader, target, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("the restarted replica did not catch up: {e}"));
    w.wait_more(100, Duration::from_secs(30));
    let start = w.start;
    let h = w.stop();
    check_history(&mut cluster, h, keys, start);
}

#[test]
fn each_replica_killed_in_turn() {
    let mut cluster = start(ClusterOptions::default());
    let keys = 6;
    let w = Workload::start(&cluster, 3, keys, 20_000);
    w.wait_more(50, Duration::from_secs(30));
    let ids: Vec<NodeId> = cluster.replicas().iter().map(|r| r.id).collect();
    for id in ids {
        let t = w.now_ns();
        cluster.kill(id).unwrap();
        let resumed = w.wait_write_invoked_after(t, Duration::from_secs(10));
        eprintln!(
            "n{} killed; writes acknowledged again after {resumed:?}",
            id.0
        );
        w.wait_more(50, Duration::from_secs(30));
        cluster.restart(id).unwrap();
        let leader = cluster.wait_leader(Duration::from_secs(20)).unwrap();
        let target = cluster.status(leader).unwrap().chosen();
        cluster
            .wait_applied(id, target, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("n{} did not catch up: {e}", id.0));
    }
    w.wait_more(50, Duration::from_secs(30));
    let start = w.start;
    let h = w.stop();
    check_history(&mut cluster, h, keys, start);
}

#[test]
fn a_replica_down_across_snapshots_catches_up_by_transfer() {
    // One command per slot and a snapshot every 20 slots: the log moves on fast. Small chunks
    // make the snapshot a multi-chunk transfer, and the receiver drops the connection once
    // after the second chunk: the transfer must resume.
    let mut cluster = start(ClusterOptions {
        snapshot_every_slots: Some(20),
        batching: false,
        transfer_chunk_bytes: Some(512),
        drop_transfer_after_chunks: Some(2),
        log_filter: Some("warn".into()),
        ..ClusterOptions::default()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).unwrap();
    let follower = cluster
        .replicas()
        .iter()
        .map(|r| r.id)
        .find(|&id| id != leader)
        .unwrap();
    let value = |i: u64| format!("{i:0>100}");
    let keys = 120u64;
    let mut kv = cluster.client();
    for i in 0..keys {
        kv.put(format!("snap-{i}").as_bytes(), value(i).as_bytes())
            .unwrap();
    }
    cluster.wait_converged(Duration::from_secs(30)).unwrap();
    let stopped_at = cluster.status(follower).unwrap().applied();
    cluster.kill(follower).unwrap();
    // Overwrite every key (from several threads): many snapshot intervals pass.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let mut kv = cluster.client();
            s.spawn(move || {
                for i in (t..keys).step_by(4) {
                    kv.put(format!("snap-{i}").as_bytes(), value(i + 1000).as_bytes())
                        .unwrap();
                }
            });
        }
    });
    let st = cluster.status(leader).unwrap();
    assert!(
        st.u64("log_start") > stopped_at,
        "the leader's log must have been compacted past the stopped replica (log starts at {}, replica stopped at {stopped_at})",
        st.u64("log_start")
    );
    cluster.restart(follower).unwrap();
    let target = cluster.status(leader).unwrap().chosen();
    cluster
        .wait_applied(follower, target, Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!(
                "no catch-up: {e}; log: {}",
                cluster.log_tail(follower, 2000)
            )
        });
    let fs = cluster.status(follower).unwrap();
    assert!(
        fs.u64("snapshots_installed") >= 1,
        "caught up without installing a snapshot: {fs:?}"
    );
    assert!(
        fs.u64("chunks_received") >= 3,
        "the snapshot should take several chunks: {fs:?}"
    );
    let log = cluster.log_tail(follower, 1 << 20);
    assert!(
        log.contains("mid-transfer"),
        "the connection was not dropped mid-transfer; log: {log}"
    );
    let addr = cluster
        .replicas()
        .iter()
        .find(|r| r.id == follower)
        .unwrap()
        .client_addr;
    let mut kv = cluster.client();
    for i in 0..keys {
        let v = kv.get_local(addr, format!("snap-{i}").as_bytes()).unwrap();
        assert_eq!(
            v,
            Some(value(i + 1000).into_bytes()),
            "snap-{i} on the caught-up replica"
        );
    }
}

/// Connects and sends `bytes`; true if the server closes the connection (EOF or reset)
/// within `timeout` without answering anything but at most a short refusal.
fn closed_by_server(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return false;
    };
    let _ = s.write_all(bytes);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < timeout {
        match s.read(&mut buf) {
            Ok(0) => return got.len() <= 256,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return got.len() <= 256,
        }
    }
    false
}

/// A TCP proxy to `to` that records what the client sends (one connection).
fn recording_proxy(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let rec = Arc::new(Mutex::new(Vec::new()));
    let r = rec.clone();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return };
        let Ok(mut s) = TcpStream::connect(to) else {
            return;
        };
        let (mut c2, mut s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
            let _ = c2.shutdown(Shutdown::Both);
        });
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    r.lock().unwrap().extend_from_slice(&buf[..n]);
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s.shutdown(Shutdown::Both);
    });
    (addr, rec)
}

#[test]
fn strangers_are_refused_and_the_cluster_keeps_serving() {
    let mut cluster = start(ClusterOptions::default());
    let mut kv = cluster.client();
    kv.put(b"before", b"1").unwrap();
    let wait = Duration::from_secs(10);
    let mut garbage = vec![0u8; 4096];
    let mut x = 12345u64;
    for b in &mut garbage {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    // A well-formed frame (length, checksum) carrying a well-formed request, with no
    // handshake before it.
    let mut frames = Vec::new();
    encode_frame(&paxwal::node::proto::Request::Status.encode(1), &mut frames);
    encode_frame(
        &paxwal::node::proto::Request::Write {
            client: 7,
            seq: 1,
            payload: paxwal::node::KvOp::Put {
                key: b"stranger".to_vec(),
                value: b"x".to_vec(),
            }
            .encode(),
        }
        .encode(2),
        &mut frames,
    );
    let replicas: Vec<(NodeId, SocketAddr, SocketAddr)> = cluster
        .replicas()
        .iter()
        .map(|r| (r.id, r.peer_addr, r.client_addr))
        .collect();
    for &(id, peer, client) in &replicas {
        for (port, addr) in [("peer", peer), ("client", client)] {
            assert!(
                closed_by_server(addr, b"", wait),
                "n{} {port}: silent stranger kept",
                id.0
            );
            assert!(
                closed_by_server(addr, &garbage, wait),
                "n{} {port}: garbage kept",
                id.0
            );
            assert!(
                closed_by_server(addr, &frames, wait),
                "n{} {port}: frames without handshake kept",
                id.0
            );
        }
        // Wrong secret and no secret, as a peer claiming a real replica id, and as a client.
        for auth in [Auth::Secret(Arc::new(Secret::generate())), Auth::Insecure] {
            let claim = replicas.iter().map(|r| r.0).find(|&o| o != id).unwrap();
            let mut s = TcpStream::connect(peer).unwrap();
            assert!(
                dial_handshake(&mut s, &auth, ConnKind::Peer(claim), None).is_err(),
                "n{} accepted a peer without the secret",
                id.0
            );
            let mut s = TcpStream::connect(client).unwrap();
            assert!(
                dial_handshake(&mut s, &auth, ConnKind::Client, None).is_err(),
                "n{} accepted a client without the secret",
                id.0
            );
        }
    }
    // A whole client: wrong secret.
    let mut bad = KvClient::new(
        cluster.client_addrs(),
        Auth::Secret(Arc::new(Secret::generate())),
    )
    .with_timeout(Duration::from_secs(5));
    match bad.put(b"stranger", b"x") {
        Err(ClientError::Auth(_)) => {}
        Err(ClientError::Unavailable(why)) if why.contains("secret") => {}
        other => panic!("a client with a wrong secret got {other:?}"),
    }
    // A replayed handshake: record a real client's bytes through a proxy, then replay them
    // to the same replica. The listener's fresh challenge makes the old proof worthless: the
    // connection is refused and closed (a session that were accepted would stay open).
    let leader = cluster.wait_leader(wait).unwrap();
    let leader_client = replicas.iter().find(|r| r.0 == leader).unwrap().2;
    let (proxy, recorded) = recording_proxy(leader_client);
    let mut via = KvClient::new(vec![proxy], cluster.auth()).with_timeout(Duration::from_secs(10));
    via.put(b"replayed", b"1").unwrap();
    drop(via);
    let bytes = recorded.lock().unwrap().clone();
    assert!(bytes.len() > 16, "the proxy recorded nothing");
    assert!(
        closed_by_server(leader_client, &bytes, wait),
        "a replayed handshake was accepted"
    );
    // The cluster is unharmed: every replica up, writes and reads go on.
    for &(id, _, _) in &replicas {
        assert!(cluster.is_up(id), "n{} died", id.0);
    }
    let mut kv = cluster.client();
    kv.put(b"after", b"2").unwrap();
    assert_eq!(kv.get(b"after").unwrap(), Some(b"2".to_vec()));
    assert_eq!(kv.get(b"before").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        kv.get(b"stranger").unwrap(),
        None,
        "a stranger's write was applied"
    );
    let refused: u64 = cluster
        .statuses()
        .iter()
        .map(|(_, s)| s.u64("net_handshakes_refused"))
        .sum();
    assert!(refused > 0, "no refused peer handshake was counted");
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn paxwal(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a cluster of one with `auth_args`; returns it and its client address.
fn serve_one(dir: &Path, auth_args: &[&str]) -> (Guard, String) {
    let peer = format!("127.0.0.1:{}", free_port().unwrap());
    let client = format!("127.0.0.1:{}", free_port().unwrap());
    let data = dir.join("data");
    let mut args = vec![
        "serve",
        "--id",
        "1",
        "--listen",
        &peer,
        "--client-listen",
        &client,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(auth_args);
    let child = Command::new(EXE)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr")).unwrap(),
        ))
        .spawn()
        .unwrap();
    (Guard(child), client)
}

fn one_line(stderr: &str) -> bool {
    stderr.trim_end().lines().count() == 1
}

#[test]
fn cli_contract_serve_and_kv() {
    // No secret, no --insecure: refuse, one line, 64.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = paxwal(&[
        "serve",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:1",
        "--client-listen",
        "127.0.0.1:2",
        "--data",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "serve without a secret: {err}");
    assert!(one_line(&err) && err.contains("secret"), "stderr: {err}");

    // --insecure: starts, says so on stderr, serves, stops cleanly on SIGTERM.
    let insecure = tempfile::tempdir().unwrap();
    let (mut g, addr) = serve_one(insecure.path(), &["--insecure"]);
    let kv = |args: &[&str]| {
        let mut a = vec!["kv", "--cluster", &addr, "--insecure"];
        a.extend_from_slice(args);
        paxwal(&a)
    };
    let t0 = Instant::now();
    loop {
        let (code, out, err) = kv(&["put", "k", "v1"]);
        if code == 0 {
            assert_eq!(out, "OK\n");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the insecure replica never served: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(insecure.path().join("stderr")).unwrap();
    assert!(log.contains("--insecure"), "no warning on stderr: {log}");
    assert_eq!(kv(&["get", "k"]), (0, "v1\n".into(), String::new()));
    let (code, out, _) = kv(&["get", "absent"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(kv(&["cas", "k", "nope", "v2"]).0, 1);
    assert_eq!(kv(&["cas", "k", "v1", "v2"]).0, 0);
    assert_eq!(kv(&["get", "k"]).1, "v2\n");
    assert_eq!(kv(&["delete", "k"]).0, 0);
    assert_eq!(kv(&["delete", "k"]).0, 1);
    assert_eq!(kv(&["get", "k"]).0, 1);
    let (code, out, _) = kv(&["status"]);
    assert!(
        code == 0 && out.starts_with("# ") && out.contains("\nrole leader\n"),
        "status: {out}"
    );
    // SIGTERM: a clean shutdown, exit 0.
    let pid = libc::pid_t::try_from(g.0.id()).unwrap();
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = g.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "serve after SIGTERM");

    // A secured replica: kv with the secret works; with the wrong one or none it fails.
    let secured = tempfile::tempdir().unwrap();
    let secret = secured.path().join("secret");
    Secret::generate().write_file(&secret).unwrap();
    let wrong = secured.path().join("wrong");
    Secret::generate().write_file(&wrong).unwrap();
    let (_g, addr) = serve_one(secured.path(), &["--secret-file", secret.to_str().unwrap()]);
    let t0 = Instant::now();
    loop {
        let (code, out, err) = paxwal(&[
            "kv",
            "--cluster",
            &addr,
            "--secret-file",
            secret.to_str().unwrap(),
            "put",
            "a",
            "b",
        ]);
        if code == 0 {
            assert_eq!(out, "OK\n");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the secured replica never served: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, err) = paxwal(&[
        "kv",
        "--cluster",
        &addr,
        "--secret-file",
        wrong.to_str().unwrap(),
        "--timeout",
        "5",
        "get",
        "a",
    ]);
    assert!(code == 2 && one_line(&err), "wrong secret: {code} {err}");
    let (code, _, err) = paxwal(&["kv", "--cluster", &addr, "get", "a"]);
    assert!(code == 64 && one_line(&err), "no secret: {code} {err}");

    // Nobody there: exit 2, one line, no panic.
    let nobody = format!("127.0.0.1:{}", free_port().unwrap());
    let (code, _, err) = paxwal(&[
        "kv",
        "--cluster",
        &nobody,
        "--insecure",
        "--timeout",
        "2",
        "put",
        "a",
        "b",
    ]);
    assert!(
        code == 2 && one_line(&err) && !err.contains("panicked"),
        "unreachable: {code} {err}"
    );
}

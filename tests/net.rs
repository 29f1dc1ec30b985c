//! The node's network layer over real sockets on 127.0.0.1: the handshake accepts the right
//! secret both ways and refuses a wrong secret (either side), secure against insecure, unknown
//! and own replica ids, a client on a peer port and a peer on a client port, a replayed
//! handshake, garbage, a bare data frame and silence; each refusal check is shown to catch a
//! planted bug (`HandshakeBugs`). `PeerNet`: three replicas exchange payloads all ways, a
//! restarted replica is reconnected, and strangers on a peer port neither reach `inbound` nor
//! disturb the traffic. The wire-frame fuzz body runs over seeded inputs (`SEED=…` replays).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver};
use paxwal::node::net::auth::{
    accept_handshake_with, dial_handshake_with, HandshakeBugs, HandshakeOptions, RefuseReason,
};
use paxwal::node::net::{
    accept_handshake, encode_frame, fuzz_frames, Auth, AuthError, ConnKind, Expect, PeerNet,
    PeerNetConfig, Secret,
};
use paxwal::NodeId;

fn secret(b: u8) -> Auth {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    std::fs::write(&p, format!("{}\n", format!("{b:02x}").repeat(32))).unwrap();
    Auth::Secret(Arc::new(Secret::from_file(&p).unwrap()))
}

fn opts(bugs: HandshakeBugs) -> HandshakeOptions {
    HandshakeOptions {
        timeout: Duration::from_millis(1500),
        bugs,
    }
}

/// What a test listener accepts.
#[derive(Clone)]
enum Port {
    Peers(Vec<NodeId>),
    Clients,
}

struct Side {
    auth: Auth,
    bugs: HandshakeBugs,
}

fn side(auth: Auth) -> Side {
    Side {
        auth,
        bugs: HandshakeBugs::default(),
    }
}

fn bugged(auth: Auth, bugs: HandshakeBugs) -> Side {
    Side { auth, bugs }
}

type Outcome = (Result<ConnKind, AuthError>, Result<NodeId, AuthError>);

/// One handshake: a listener (replica `me`, taking `port`) and a dialer (`kind`, expecting
/// replica `expect_server`), each on its own socket end.
fn handshake(
    l: Side,
    me: u32,
    port: Port,
    d: Side,
    kind: ConnKind,
    expect: Option<u32>,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let expect = match &port {
            Port::Peers(ids) => Expect::Peers(ids),
            Port::Clients => Expect::Clients,
        };
        accept_handshake_with(&mut s, &l.auth, NodeId(me), expect, &opts(l.bugs))
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let dialed = dial_handshake_with(&mut s, &d.auth, kind, expect.map(NodeId), &opts(d.bugs));
    (t.join().unwrap(), dialed)
}

fn peers(ids: &[u32]) -> Port {
    Port::Peers(ids.iter().map(|&i| NodeId(i)).collect())
}

#[test]
fn right_secret_is_accepted_both_ways_and_insecure_pairs_work() {
    let (l, d) = handshake(
        side(secret(1)),
        2,
        peers(&[1]),
        side(secret(1)),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert_eq!(l.unwrap(), ConnKind::Peer(NodeId(1)));
    assert_eq!(d.unwrap(), NodeId(2));
    let (l, d) = handshake(
        side(secret(1)),
        3,
        Port::Clients,
        side(secret(1)),
        ConnKind::Client,
        None,
    );
    assert_eq!(l.unwrap(), ConnKind::Client);
    assert_eq!(d.unwrap(), NodeId(3));
    let (l, d) = handshake(
        side(Auth::Insecure),
        2,
        peers(&[1]),
        side(Auth::Insecure),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert_eq!(l.unwrap(), ConnKind::Peer(NodeId(1)));
    assert_eq!(d.unwrap(), NodeId(2));
}

/// A listener with another secret: the dialer refuses it, even when that listener (a stranger
/// posing as the replica) accepts anything.
fn listener_with_other_secret(dialer_bugs: HandshakeBugs) -> Outcome {
    let anything = HandshakeBugs {
        listener_skips_proof_check: true,
        ..HandshakeBugs::default()
    };
    handshake(
        bugged(secret(9), anything),
        2,
        peers(&[1]),
        bugged(secret(1), dialer_bugs),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    )
}

#[test]
fn dialer_refuses_a_listener_with_another_secret() {
    let (_, d) = listener_with_other_secret(HandshakeBugs::default());
    assert!(matches!(d, Err(AuthError::BadListenerProof)), "{d:?}");
    // Planted: a dialer that skips the check is taken in.
    let skip = HandshakeBugs {
        dialer_skips_proof_check: true,
        ..HandshakeBugs::default()
    };
    let (_, d) = listener_with_other_secret(skip);
    assert_eq!(d.unwrap(), NodeId(2), "the planted bug must get through");
}

/// A dialer with another secret that goes on regardless of the listener's proof (a stranger).
fn dialer_with_other_secret(listener_bugs: HandshakeBugs) -> Outcome {
    let stranger = HandshakeBugs {
        dialer_skips_proof_check: true,
        ..HandshakeBugs::default()
    };
    handshake(
        bugged(secret(1), listener_bugs),
        2,
        peers(&[1]),
        bugged(secret(9), stranger),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    )
}

#[test]
fn listener_refuses_a_dialer_with_another_secret() {
    let (l, d) = dialer_with_other_secret(HandshakeBugs::default());
    assert!(matches!(l, Err(AuthError::BadProof)), "{l:?}");
    assert!(
        matches!(d, Err(AuthError::Refused(RefuseReason::BadProof))),
        "{d:?}"
    );
    // And a plain dialer with the wrong secret stops at the listener's proof.
    let (l, d) = handshake(
        side(secret(1)),
        2,
        peers(&[1]),
        side(secret(9)),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert!(
        l.is_err() && matches!(d, Err(AuthError::BadListenerProof)),
        "{l:?} {d:?}"
    );
    let skip = HandshakeBugs {
        listener_skips_proof_check: true,
        ..HandshakeBugs::default()
    };
    let (l, _) = dialer_with_other_secret(skip);
    assert_eq!(
        l.unwrap(),
        ConnKind::Peer(NodeId(1)),
        "the planted bug must get through"
    );
}

#[test]
fn secure_and_insecure_sides_refuse_each_other() {
    let (l, d) = handshake(
        side(secret(1)),
        2,
        peers(&[1]),
        side(Auth::Insecure),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert!(matches!(l, Err(AuthError::ModeMismatch { .. })), "{l:?}");
    assert!(
        matches!(d, Err(AuthError::Refused(RefuseReason::ModeMismatch))),
        "{d:?}"
    );
    let (l, d) = handshake(
        side(Auth::Insecure),
        2,
        peers(&[1]),
        side(secret(1)),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert!(matches!(l, Err(AuthError::ModeMismatch { .. })), "{l:?}");
    assert!(d.is_err(), "{d:?}");
    let downgrade = HandshakeBugs {
        listener_allows_downgrade: true,
        ..HandshakeBugs::default()
    };
    let (l, _) = handshake(
        bugged(secret(1), downgrade),
        2,
        peers(&[1]),
        side(Auth::Insecure),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert!(l.is_ok(), "the planted downgrade must get through: {l:?}");
}

fn claim(id: u32, port: Port, bugs: HandshakeBugs) -> Outcome {
    handshake(
        bugged(secret(1), bugs),
        2,
        port,
        side(secret(1)),
        ConnKind::Peer(NodeId(id)),
        None,
    )
}

#[test]
fn unknown_and_own_replica_ids_are_refused() {
    let (l, d) = claim(7, peers(&[1, 3]), HandshakeBugs::default());
    assert!(matches!(l, Err(AuthError::UnknownPeer(NodeId(7)))), "{l:?}");
    assert!(
        matches!(d, Err(AuthError::Refused(RefuseReason::UnknownPeer))),
        "{d:?}"
    );
    // Own id, even when (misconfigured) the list holds it.
    let (l, d) = claim(2, peers(&[1, 2, 3]), HandshakeBugs::default());
    assert!(matches!(l, Err(AuthError::OwnId(NodeId(2)))), "{l:?}");
    assert!(
        matches!(d, Err(AuthError::Refused(RefuseReason::OwnId))),
        "{d:?}"
    );
    let skip = HandshakeBugs {
        listener_skips_id_check: true,
        ..HandshakeBugs::default()
    };
    assert!(
        claim(7, peers(&[1, 3]), skip).0.is_ok(),
        "planted: unknown id gets through"
    );
    assert!(
        claim(2, peers(&[1, 2, 3]), skip).0.is_ok(),
        "planted: own id gets through"
    );
}

#[test]
fn a_client_on_a_peer_port_and_a_peer_on_a_client_port_are_refused() {
    let client_on_peer_port = |bugs| {
        handshake(
            bugged(secret(1), bugs),
            2,
            peers(&[1]),
            side(secret(1)),
            ConnKind::Client,
            None,
        )
    };
    let peer_on_client_port = |bugs| claim(1, Port::Clients, bugs);
    let (l, d) = client_on_peer_port(HandshakeBugs::default());
    assert!(
        matches!(l, Err(AuthError::WrongKind(ConnKind::Client))),
        "{l:?}"
    );
    assert!(
        matches!(d, Err(AuthError::Refused(RefuseReason::WrongKind))),
        "{d:?}"
    );
    let (l, _) = peer_on_client_port(HandshakeBugs::default());
    assert!(
        matches!(l, Err(AuthError::WrongKind(ConnKind::Peer(NodeId(1))))),
        "{l:?}"
    );
    let skip = HandshakeBugs {
        listener_skips_kind_check: true,
        ..HandshakeBugs::default()
    };
    assert!(
        client_on_peer_port(skip).0.is_ok(),
        "planted: client gets through"
    );
    assert!(
        peer_on_client_port(skip).0.is_ok(),
        "planted: peer gets through"
    );
}

/// Runs a good handshake (dialer claiming replica 1, secret 1) through a forwarding proxy to a
/// listener with `bugs`, and returns every byte the dialer sent.
fn record_good_dialer(bugs: HandshakeBugs) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let laddr = listener.local_addr().unwrap();
    let lt = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        accept_handshake_with(
            &mut s,
            &secret(1),
            NodeId(2),
            Expect::Peers(&[NodeId(1)]),
            &opts(bugs),
        )
    });
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let paddr = proxy.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let rec = recorded.clone();
    let pt = thread::spawn(move || {
        let (mut from_d, _) = proxy.accept().unwrap();
        let mut to_l = TcpStream::connect(laddr).unwrap();
        let (mut back_l, mut back_d) = (to_l.try_clone().unwrap(), from_d.try_clone().unwrap());
        let back = thread::spawn(move || {
            let _ = std::io::copy(&mut back_l, &mut back_d);
        });
        let mut buf = [0u8; 256];
        loop {
            match from_d.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to_l.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_l.shutdown(std::net::Shutdown::Both);
        back.join().unwrap();
    });
    let mut d = TcpStream::connect(paddr).unwrap();
    let got = dial_handshake_with(
        &mut d,
        &secret(1),
        ConnKind::Peer(NodeId(1)),
        Some(NodeId(2)),
        &opts(bugs),
    );
    assert_eq!(
        got.unwrap(),
        NodeId(2),
        "the recorded handshake is a good one"
    );
    assert!(lt.join().unwrap().is_ok());
    drop(d);
    pt.join().unwrap();
    let r = recorded.lock().unwrap().clone();
    r
}

/// Replays `bytes` on a new connection to a listener with `bugs`.
fn replay(bytes: &[u8], bugs: HandshakeBugs) -> Result<ConnKind, AuthError> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        accept_handshake_with(
            &mut s,
            &secret(1),
            NodeId(2),
            Expect::Peers(&[NodeId(1)]),
            &opts(bugs),
        )
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    let res = t.join().unwrap();
    drop(s);
    res
}

#[test]
fn a_replayed_handshake_is_refused() {
    let rec = record_good_dialer(HandshakeBugs::default());
    assert!(
        rec.len() > 44,
        "hello and proof recorded ({} bytes)",
        rec.len()
    );
    let res = replay(&rec, HandshakeBugs::default());
    assert!(matches!(res, Err(AuthError::BadProof)), "{res:?}");
    // Planted: a listener whose nonce never changes takes the replay.
    let fixed = HandshakeBugs {
        listener_fixed_nonce: true,
        ..HandshakeBugs::default()
    };
    let rec = record_good_dialer(fixed);
    assert!(
        replay(&rec, fixed).is_ok(),
        "the planted fixed nonce must let the replay through"
    );
}

#[test]
fn garbage_and_a_bare_data_frame_are_refused() {
    let mut data_frame = Vec::new();
    encode_frame(b"an Accept for slot 7, no handshake", &mut data_frame);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut garbage = Vec::new();
    for _ in 0..300 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        garbage.push(rng as u8);
    }
    let mut hello_like = Vec::new();
    encode_frame(
        b"PXWH\x01\x00\x01\x01\x01\x00\x00\x00short",
        &mut hello_like,
    );
    for (what, bytes) in [
        ("garbage", garbage),
        ("data frame", data_frame),
        ("short hello", hello_like),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    ] {
        let res = replay(&bytes, HandshakeBugs::default());
        assert!(res.is_err(), "{what}: {res:?}");
    }
}

#[test]
fn a_silent_connection_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let start = Instant::now();
        let res = accept_handshake(&mut s, &secret(1), NodeId(2), Expect::Peers(&[NodeId(1)]));
        (res, start.elapsed())
    });
    let _silent = TcpStream::connect(addr).unwrap();
    let (res, took) = t.join().unwrap();
    assert!(matches!(res, Err(AuthError::Timeout)), "{res:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // Planted: without the timeout the listener is still waiting a second later.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = channel::bounded(1);
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let none = HandshakeBugs {
            no_timeout: true,
            ..HandshakeBugs::default()
        };
        let res = accept_handshake_with(
            &mut s,
            &secret(1),
            NodeId(2),
            Expect::Peers(&[NodeId(1)]),
            &opts(none),
        );
        let _ = done_tx.send(());
        res
    });
    let silent = TcpStream::connect(addr).unwrap();
    assert!(
        done_rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "planted: no timeout fires"
    );
    drop(silent);
    assert!(t.join().unwrap().is_err());
}

#[test]
fn secret_files_give_clear_errors_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("secret");
    let err = |p: &std::path::Path| Secret::from_file(p).unwrap_err().to_string();
    assert!(err(&p).contains("cannot read secret file"), "{}", err(&p));
    std::fs::write(&p, "  \n").unwrap();
    assert!(err(&p).contains("is empty"), "{}", err(&p));
    std::fs::write(&p, "zz".repeat(20)).unwrap();
    assert!(err(&p).contains("not hex"), "{}", err(&p));
    std::fs::write(&p, "ab".repeat(15)).unwrap();
    assert!(err(&p).contains("has 15 bytes, at least 16"), "{}", err(&p));
    let s = Secret::generate();
    s.write_file(&p).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.trim().len(), 64, "32 bytes as hex");
    assert!(
        !format!("{s:?}").contains(&text.trim()[..8]),
        "Debug shows no secret byte"
    );
    // The same secret read back authenticates against the original.
    let back = Auth::Secret(Arc::new(Secret::from_file(&p).unwrap()));
    let (l, d) = handshake(
        side(Auth::Secret(Arc::new(s))),
        2,
        peers(&[1]),
        side(back),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert!(l.is_ok() && d.is_ok(), "{l:?} {d:?}");
    // And a different generated one does not.
    let other = Auth::Secret(Arc::new(Secret::generate()));
    let (_, d) = handshake(
        side(other),
        2,
        peers(&[1]),
        side(Auth::Secret(Arc::new(Secret::from_file(&p).unwrap()))),
        ConnKind::Peer(NodeId(1)),
        Some(2),
    );
    assert!(d.is_err());
}

// ---------------------------------------------------------------------------------------------
// PeerNet

struct Node {
    net: PeerNet,
    rx: Receiver<(NodeId, Vec<u8>)>,
    addr: SocketAddr,
}

fn start_node(
    me: u32,
    listener: TcpListener,
    all: &[(NodeId, SocketAddr)],
    auth: Auth,
    bugs: HandshakeBugs,
) -> Node {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel::bounded(1024);
    let cfg = PeerNetConfig {
        me: NodeId(me),
        listener,
        peers: all.iter().copied().filter(|(id, _)| id.0 != me).collect(),
        auth,
        queue_frames_max: 4096,
    };
    let net = PeerNet::start_planted(cfg, tx, bugs).unwrap();
    Node { net, rx, addr }
}

fn cluster(n: u32, auth: &Auth) -> Vec<Node> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let all: Vec<(NodeId, SocketAddr)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (NodeId(i as u32 + 1), l.local_addr().unwrap()))
        .collect();
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            start_node(
                i as u32 + 1,
                l,
                &all,
                auth.clone(),
                HandshakeBugs::default(),
            )
        })
        .collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn all_connected(nodes: &[Node]) {
    wait_until("every pair connected", || {
        nodes
            .iter()
            .all(|n| n.net.connected().len() == nodes.len() - 1)
    });
}

/// Every node sends `count` payloads to every other; each node receives exactly those, in order
/// per sender.
fn exchange(nodes: &[Node], tag: &str, count: usize) {
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..nodes.len() {
            if i != j {
                for k in 0..count {
                    let p = format!("{tag} {} -> {} #{k}", i + 1, j + 1).into_bytes();
                    assert!(n.net.send(NodeId(j as u32 + 1), p), "queue has room");
                }
            }
        }
    }
    for (j, n) in nodes.iter().enumerate() {
        let mut next = vec![0usize; nodes.len()];
        for _ in 0..count * (nodes.len() - 1) {
            let (from, p) =
                n.rx.recv_timeout(Duration::from_secs(10))
                    .expect("payload arrives");
            let i = from.0 as usize - 1;
            let want = format!("{tag} {} -> {} #{}", i + 1, j + 1, next[i]).into_bytes();
            assert_eq!(p, want, "node {} from {from}", j + 1);
            next[i] += 1;
        }
    }
}

#[test]
fn three_nodes_exchange_all_ways_and_a_restarted_node_is_reconnected() {
    let auth = secret(1);
    let mut nodes = cluster(3, &auth);
    all_connected(&nodes);
    exchange(&nodes, "first", 200);
    let s = nodes[0].net.stats();
    assert_eq!(s.frames_sent, 400);
    assert_eq!(s.frames_received, 400);
    assert_eq!(s.frames_dropped, 0);
    assert!(s.bytes_sent > 400 * 8 && s.connects == 2, "{s:?}");
    // Node 2 dials node 3 and is dialed by node 1: restart it on the same address.
    let addr = nodes[1].addr;
    nodes[1].net.shutdown();
    nodes[1].net.shutdown(); // idempotent
    wait_until("the others see node 2 gone", || {
        !nodes[0].net.connected().contains(&NodeId(2))
            && !nodes[2].net.connected().contains(&NodeId(2))
    });
    assert!(
        !nodes[0].net.send(NodeId(2), b"lost".to_vec()),
        "not connected: dropped"
    );
    assert!(
        !nodes[0].net.send(NodeId(9), b"lost".to_vec()),
        "unknown: dropped"
    );
    assert_eq!(nodes[0].net.stats().frames_dropped, 2);
    let all: Vec<(NodeId, SocketAddr)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (NodeId(i as u32 + 1), n.addr))
        .collect();
    let listener = TcpListener::bind(addr).unwrap();
    nodes[1] = start_node(2, listener, &all, auth.clone(), HandshakeBugs::default());
    all_connected(&nodes);
    exchange(&nodes, "second", 200);
    for n in &nodes {
        n.net.shutdown();
    }
}

#[test]
fn a_full_inbound_blocks_the_reader_and_loses_nothing() {
    let auth = Auth::Insecure;
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let all: Vec<(NodeId, SocketAddr)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (NodeId(i as u32 + 1), l.local_addr().unwrap()))
        .collect();
    let mut ls = listeners.into_iter();
    let a = start_node(
        1,
        ls.next().unwrap(),
        &all,
        auth.clone(),
        HandshakeBugs::default(),
    );
    // Node 2's inbound holds 4 payloads.
    let (tx, rx) = channel::bounded(4);
    let b = PeerNet::start(
        PeerNetConfig {
            me: NodeId(2),
            listener: ls.next().unwrap(),
            peers: vec![all[0]],
            auth,
            queue_frames_max: 4096,
        },
        tx,
    )
    .unwrap();
    wait_until("connected", || a.net.connected() == [NodeId(2)]);
    let n = 3000;
    for k in 0..n {
        assert!(a.net.send(NodeId(2), format!("{k}").into_bytes()));
    }
    // Inbound fills up; the reader then waits (it drops nothing: every payload arrives below,
    // in order).
    wait_until("inbound full", || rx.len() == 4);
    thread::sleep(Duration::from_millis(100));
    for k in 0..n {
        let (from, p) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((from, p), (NodeId(1), format!("{k}").into_bytes()));
    }
    assert_eq!(b.stats().frames_received, n as u64);
    b.shutdown();
}

#[test]
fn keepalives_hold_an_idle_connection_and_a_silent_peer_is_dropped() {
    use paxwal::node::net::auth::dial_handshake;
    use paxwal::node::net::read_frame;
    // Node 2 alone; "node 1" is this test, dialing by hand and then going silent.
    let auth = secret(1);
    let unused = TcpListener::bind("127.0.0.1:0").unwrap();
    let all = [(NodeId(1), unused.local_addr().unwrap())];
    let b = start_node(
        2,
        TcpListener::bind("127.0.0.1:0").unwrap(),
        &all,
        auth.clone(),
        HandshakeBugs::default(),
    );
    let mut s = TcpStream::connect(b.addr).unwrap();
    let before_handshake = Instant::now();
    assert_eq!(
        dial_handshake(&mut s, &auth, ConnKind::Peer(NodeId(1)), Some(NodeId(2))).unwrap(),
        NodeId(2)
    );
    wait_until("connected", || b.net.connected() == [NodeId(1)]);
    // Node 2 sends keepalives (empty frames) while it has nothing else to say.
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(read_frame(&mut s, 16).unwrap(), Vec::<u8>::new());
    assert!(
        !b.net.send(NodeId(1), Vec::new()),
        "an empty payload is not sendable"
    );
    // This side sends nothing: node 2 drops it after its idle timeout (3 s).
    wait_until("the silent peer dropped", || b.net.connected().is_empty());
    let took = before_handshake.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "dropped too early: {took:?}"
    );
    assert!(b.rx.try_recv().is_err(), "keepalives never reach inbound");
    b.net.shutdown();
}

#[test]
fn idle_connections_stay_up() {
    let nodes = cluster(2, &Auth::Insecure);
    all_connected(&nodes);
    thread::sleep(Duration::from_millis(3500));
    for n in &nodes {
        let s = n.net.stats();
        assert_eq!(
            (s.connects, s.frames_sent, s.frames_received),
            (1, 0, 0),
            "{s:?}"
        );
        assert!(n.rx.try_recv().is_err());
    }
    exchange(&nodes, "after idle", 10);
}

/// One stranger's attempt on the peer port at `addr`. The dialing ones stop at their refused
/// handshake (the dialer closes its end); the raw ones (`recorded` replayed, garbage, a bare
/// frame, silence) keep their socket, follow with data frames, and check that the listener
/// closes it. `Err` says what went wrong.
fn stranger(addr: SocketAddr, what: &str, recorded: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let bugs = HandshakeBugs {
        dialer_skips_proof_check: true,
        ..HandshakeBugs::default()
    };
    let o = opts(bugs);
    let mut frame = Vec::new();
    encode_frame(format!("stranger {what}").as_bytes(), &mut frame);
    let dial = |s: &mut TcpStream, auth: &Auth, kind| -> Result<(), String> {
        if dial_handshake_with(s, auth, kind, None, &o).is_ok() {
            // Only a broken listener gets here: send what a stranger would.
            for _ in 0..10 {
                let _ = s.write_all(&frame);
            }
        }
        Ok(())
    };
    match what {
        "wrong secret" => return dial(&mut s, &secret(9), ConnKind::Peer(NodeId(1))),
        "insecure" => return dial(&mut s, &Auth::Insecure, ConnKind::Peer(NodeId(1))),
        "client" => return dial(&mut s, &secret(1), ConnKind::Client),
        "unknown id" => return dial(&mut s, &secret(1), ConnKind::Peer(NodeId(7))),
        "own id" => return dial(&mut s, &secret(1), ConnKind::Peer(NodeId(2))),
        "replay" => {
            let _ = s.write_all(recorded);
        }
        "garbage" => {
            let _ = s.write_all(&[0xa5; 200]);
        }
        "bare frame" | "silent" => {}
        _ => unreachable!(),
    }
    if what != "silent" {
        for _ in 0..10 {
            let _ = s.write_all(&frame);
        }
    }
    // The listener closes the connection: reading ends (EOF or reset) within the handshake
    // timeout (2 s), well before the read timeout.
    let mut b = [0u8; 256];
    let start = Instant::now();
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(format!("{what}: still open after {:?}", start.elapsed()))
            }
            Err(_) => break,
            Ok(_) => {}
        }
    }
    if start.elapsed() > Duration::from_secs(4) {
        return Err(format!("{what}: closed only after {:?}", start.elapsed()));
    }
    Ok(())
}

const STRANGERS: [&str; 9] = [
    "wrong secret",
    "insecure",
    "client",
    "unknown id",
    "own id",
    "replay",
    "garbage",
    "bare frame",
    "silent",
];

/// Nodes 1 and 2 exchange traffic while strangers attack node 2's peer port (node 2 runs with
/// `bugs`). Returns the payloads that reached node 2's `inbound` and are not node 1's.
fn strangers_against_running_traffic(bugs: HandshakeBugs) -> (Vec<Vec<u8>>, u64) {
    let auth = secret(1);
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let all: Vec<(NodeId, SocketAddr)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (NodeId(i as u32 + 1), l.local_addr().unwrap()))
        .collect();
    let mut ls = listeners.into_iter();
    let a = start_node(
        1,
        ls.next().unwrap(),
        &all,
        auth.clone(),
        HandshakeBugs::default(),
    );
    let b = start_node(2, ls.next().unwrap(), &all, auth.clone(), bugs);
    wait_until("connected", || b.net.connected() == [NodeId(1)]);
    let connects_before = b.net.stats().connects;
    let recorded = record_good_dialer(HandshakeBugs::default());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attack = {
        let addr = b.addr;
        let stop = stop.clone();
        thread::spawn(move || {
            let ts: Vec<_> = STRANGERS
                .iter()
                .map(|w| {
                    let r = recorded.clone();
                    thread::spawn(move || stranger(addr, w, &r))
                })
                .collect();
            let outcomes: Vec<Result<(), String>> =
                ts.into_iter().map(|t| t.join().unwrap()).collect();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            outcomes
        })
    };
    // Node 1 keeps sending while the strangers try; node 2 checks what it receives.
    let mut k = 0u64;
    let mut foreign = Vec::new();
    let mut received = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for _ in 0..20 {
            a.net.send(NodeId(2), format!("legit {k}").into_bytes());
            k += 1;
        }
        while let Ok((from, p)) = b.rx.recv_timeout(Duration::from_millis(2)) {
            if from == NodeId(1) && p.starts_with(b"legit ") {
                received += 1;
            } else {
                foreign.push(p);
            }
        }
    }
    let outcomes = attack.join().unwrap();
    // Traffic still flows after the attack.
    wait_until("traffic after the attack", || {
        a.net.send(NodeId(2), b"legit after".to_vec());
        matches!(b.rx.recv_timeout(Duration::from_millis(50)), Ok((NodeId(1), p)) if p.starts_with(b"legit "))
    });
    while let Ok((from, p)) = b.rx.try_recv() {
        if !(from == NodeId(1) && p.starts_with(b"legit ")) {
            foreign.push(p);
        }
    }
    let s = b.net.stats();
    let reconnects = s.connects - connects_before;
    if foreign.is_empty() {
        for o in outcomes {
            o.unwrap();
        }
        assert!(received > 0, "traffic flowed during the attack");
        assert!(
            s.handshakes_refused >= STRANGERS.len() as u64,
            "every stranger refused and counted: {s:?}"
        );
        assert_eq!(b.net.connected(), [NodeId(1)]);
    }
    a.net.shutdown();
    b.net.shutdown();
    (foreign, reconnects)
}

#[test]
fn strangers_on_a_peer_port_are_refused_and_do_not_disturb_traffic() {
    let (foreign, reconnects) = strangers_against_running_traffic(HandshakeBugs::default());
    let shown: Vec<_> = foreign.iter().map(|p| String::from_utf8_lossy(p)).collect();
    assert!(
        foreign.is_empty(),
        "stranger bytes reached inbound: {shown:?}"
    );
    assert_eq!(
        reconnects, 0,
        "the legitimate connection was never replaced"
    );
    // Planted: a listener that skips the proof check lets the wrong-secret stranger in (it
    // claims replica 1, replacing the real connection), and the checks above see it.
    let skip = HandshakeBugs {
        listener_skips_proof_check: true,
        ..HandshakeBugs::default()
    };
    let (foreign, reconnects) = strangers_against_running_traffic(skip);
    assert!(
        !foreign.is_empty() && reconnects > 0,
        "the planted bug must be seen ({} foreign, {reconnects} reconnects)",
        foreign.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzz body

#[test]
fn wire_frame_fuzz_body_over_seeded_inputs() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..5000 {
        let mut data: Vec<u8> = if i % 2 == 0 {
            let n = (next() % 300) as usize;
            (0..n).map(|_| next() as u8).collect()
        } else {
            // Valid frames, then a few bytes changed or cut.
            let mut s = Vec::new();
            for _ in 0..next() % 5 {
                let n = (next() % 50) as usize;
                let p: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                encode_frame(&p, &mut s);
            }
            for _ in 0..next() % 3 {
                if !s.is_empty() {
                    let at = (next() as usize) % s.len();
                    s[at] = next() as u8;
                }
            }
            s
        };
        if i % 7 == 0 && !data.is_empty() {
            let cut = (next() as usize) % data.len();
            data.truncate(cut);
        }
        fuzz_frames(&data).unwrap_or_else(|e| panic!("seed {seed} input {i} {data:?}: {e}"));
    }
}

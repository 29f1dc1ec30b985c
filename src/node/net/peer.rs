//! The peer transport: one authenticated TCP connection per replica pair, used both ways.
//!
//! The lower id dials the higher one and redials with jittered exponential backoff
//! ([`BACKOFF_MIN`] → [`BACKOFF_MAX`]) whenever the connection is lost; the higher one accepts,
//! and a new authenticated connection from a peer replaces the old one. Each connection has a
//! reader thread (frames → the bounded `inbound` channel, blocking when it is full, so a slow
//! consumer becomes TCP backpressure) and a writer thread (a bounded queue drained into a
//! `BufWriter`, flushed when the queue is empty, so many small frames share one syscall).
//! An empty frame is a keepalive, sent after [`KEEPALIVE_INTERVAL`] without traffic and never
//! delivered; a connection silent for [`IDLE_TIMEOUT`] is closed.
//! [`PeerNet::send`] never blocks: a frame for a peer that is not connected, or whose queue is
//! full, is dropped and counted (the Paxos core tolerates loss). A frame that fails its checksum
//! or exceeds [`FRAME_BYTES_MAX`] closes the connection. Handshakes run on their own threads, at
//! most [`HANDSHAKES_MAX`] at a time, so a silent stranger never holds up the accept loop.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{
    self, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};
use parking_lot::{Mutex, RwLock};

use super::auth::{
    accept_handshake_with, dial_handshake_with, Auth, ConnKind, Expect, HandshakeBugs,
    HandshakeOptions,
};
use super::frame::{read_frame, write_frame, FrameError, FRAME_BYTES_MAX, FRAME_HEADER_BYTES};
use crate::NodeId;

/// The first redial delay after a lost or failed connection.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// The longest redial delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Handshakes in progress at once on the listener; further connections are closed at once.
pub const HANDSHAKES_MAX: usize = 16;
/// How long a dial waits for TCP to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the accept loop looks for a new connection (the listener is non-blocking so
/// shutdown never waits on `accept`).
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// How long a reader waits on a full `inbound` before checking whether to stop.
const INBOUND_POLL: Duration = Duration::from_millis(50);
const IO_BUFFER_BYTES: usize = 64 << 10;
/// A writer with nothing to send for this long sends a keepalive (an empty frame, never
/// delivered to `inbound`).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
/// A reader that receives nothing (not even a keepalive) for this long closes the connection:
/// a peer that vanished without a reset is noticed and redialed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// What [`PeerNet::start`] needs.
pub struct PeerNetConfig {
    /// This replica.
    pub me: NodeId,
    /// The peer port, already bound.
    pub listener: TcpListener,
    /// The other replicas and their peer addresses.
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// How connections prove themselves.
    pub auth: Auth,
    /// Frames queued per peer at most; more are dropped.
    pub queue_frames_max: usize,
}

/// Counters since start.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    /// Frames written to a socket.
    pub frames_sent: u64,
    /// Frames read from authenticated peers.
    pub frames_received: u64,
    /// Frames not sent: unknown or unconnected peer, full queue, or left queued when a
    /// connection was lost.
    pub frames_dropped: u64,
    /// Bytes written, frame headers included.
    pub bytes_sent: u64,
    /// Bytes read from authenticated peers, frame headers included.
    pub bytes_received: u64,
    /// Handshakes that failed (refused strangers on the listener, failed dials).
    pub handshakes_refused: u64,
    /// Authenticated connections made (accepted or dialed).
    pub connects: u64,
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    frames_dropped: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    handshakes_refused: AtomicU64,
    connects: AtomicU64,
}

struct Conn {
    tx: Sender<Vec<u8>>,
    stream: TcpStream,
    generation: u64,
}

struct Inner {
    me: NodeId,
    auth: Auth,
    peers: HashMap<NodeId, SocketAddr>,
    /// The peers that dial this replica (lower ids).
    dialers: Vec<NodeId>,
    queue_frames_max: usize,
    handshake: HandshakeOptions,
    inbound: Sender<(NodeId, Vec<u8>)>,
    conns: RwLock<HashMap<NodeId, Conn>>,
    /// Every open socket (handshaking or established), so shutdown can unblock its thread.
    /// The `stopped` flag lives under this lock: nothing registers after shutdown swept it.
    sockets: Mutex<(bool, HashMap<u64, TcpStream>)>,
    stopped: AtomicBool,
    /// Dropped by shutdown: every backoff sleep waits on it and wakes at once.
    stop_tx: Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    next_id: AtomicU64,
    handshakes: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stats: Counters,
}

/// The running peer transport of one replica. See the module docs.
pub struct PeerNet {
    inner: Arc<Inner>,
}

impl PeerNet {
    /// Starts the listener and dialer threads. Received payloads (from authenticated peers
    /// only) go to `inbound` tagged with the sender; a reader blocks while `inbound` is full.
    pub fn start(
        cfg: PeerNetConfig,
        inbound: Sender<(NodeId, Vec<u8>)>,
    ) -> std::io::Result<PeerNet> {
        Self::start_with(cfg, inbound, HandshakeOptions::default())
    }

    /// [`PeerNet::start`] with explicit handshake options (tests plant bugs through them).
    #[doc(hidden)]
    pub fn start_planted(
        cfg: PeerNetConfig,
        inbound: Sender<(NodeId, Vec<u8>)>,
        bugs: HandshakeBugs,
    ) -> std::io::Result<PeerNet> {
        let handshake = HandshakeOptions {
            bugs,
            ..HandshakeOptions::default()
        };
        Self::start_with(cfg, inbound, handshake)
    }

    fn start_with(
        cfg: PeerNetConfig,
        inbound: Sender<(NodeId, Vec<u8>)>,
        handshake: HandshakeOptions,
    ) -> std::io::Result<PeerNet> {
        cfg.listener.set_nonblocking(true)?;
        let peers: HashMap<NodeId, SocketAddr> = cfg
            .peers
            .iter()
            .copied()
            .filter(|(id, _)| *id != cfg.me)
            .collect();
        let mut dialers: Vec<NodeId> = peers.keys().copied().filter(|id| *id < cfg.me).collect();
        dialers.sort();
        let (stop_tx, stop_rx) = channel::bounded(0);
        let inner = Arc::new(Inner {
            me: cfg.me,
            auth: cfg.auth,
            peers,
            dialers,
            queue_frames_max: cfg.queue_frames_max.max(1),
            handshake,
            inbound,
            conns: RwLock::new(HashMap::new()),
            sockets: Mutex::new((false, HashMap::new())),
            stopped: AtomicBool::new(false),
            stop_tx: Mutex::new(Some(stop_tx)),
            stop_rx,
            next_id: AtomicU64::new(1),
            handshakes: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            stats: Counters::default(),
        });
        let listener = cfg.listener;
        let i = inner.clone();
        inner.spawn("paxwal-net-accept", move || accept_loop(i, listener))?;
        let mut higher: Vec<(NodeId, SocketAddr)> = inner
            .peers
            .iter()
            .filter(|(id, _)| **id > inner.me)
            .map(|(id, a)| (*id, *a))
            .collect();
        higher.sort();
        for (id, addr) in higher {
            let i = inner.clone();
            inner.spawn("paxwal-net-dial", move || dial_loop(i, id, addr))?;
        }
        Ok(PeerNet { inner })
    }

    /// Queues `payload` for `to`; never blocks. `false` (and counted as dropped) when `to` is
    /// unknown, not connected, or its queue is full, and for an empty payload (on the wire an
    /// empty frame is a keepalive).
    pub fn send(&self, to: NodeId, payload: Vec<u8>) -> bool {
        let sent = match self.inner.conns.read().get(&to) {
            _ if payload.is_empty() => false,
            Some(c) => match c.tx.try_send(payload) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !sent {
            self.inner
                .stats
                .frames_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Closes the connection to `peer`, if any (the dialing side reconnects with backoff).
    /// For tests of what survives a dropped connection.
    pub fn disconnect(&self, peer: NodeId) {
        if let Some(c) = self.inner.conns.read().get(&peer) {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }

    /// Peers with an authenticated connection now, in id order.
    pub fn connected(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.inner.conns.read().keys().copied().collect();
        v.sort();
        v
    }

    /// The counters since start.
    pub fn stats(&self) -> NetStats {
        let s = &self.inner.stats;
        NetStats {
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            frames_dropped: s.frames_dropped.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
            handshakes_refused: s.handshakes_refused.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
        }
    }

    /// Closes every connection and the listener and joins every thread. Idempotent; also
    /// called on drop.
    pub fn shutdown(&self) {
        let inner = &self.inner;
        {
            let mut sockets = inner.sockets.lock();
            sockets.0 = true;
            inner.stopped.store(true, Ordering::SeqCst);
            for s in sockets.1.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
            sockets.1.clear();
        }
        inner.stop_tx.lock().take();
        // Dropping the queues' senders wakes the writers.
        inner.conns.write().clear();
        loop {
            let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *inner.threads.lock());
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let t = std::thread::Builder::new().name(name.into()).spawn(f)?;
        let mut threads = self.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(t);
        Ok(())
    }

    /// Registers a socket so shutdown can close it; `None` once stopped (the socket is closed).
    fn register(&self, s: &TcpStream) -> Option<u64> {
        let mut sockets = self.sockets.lock();
        if sockets.0 {
            let _ = s.shutdown(Shutdown::Both);
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        sockets.1.insert(id, s.try_clone().ok()?);
        Some(id)
    }

    fn unregister(&self, id: u64) {
        self.sockets.lock().1.remove(&id);
    }

    /// Stop-aware sleep: false if shutdown began.
    fn sleep(&self, d: Duration) -> bool {
        match self.stop_rx.recv_timeout(d) {
            Err(RecvTimeoutError::Timeout) => !self.stopped(),
            _ => false,
        }
    }

    /// Makes `stream` the connection to `peer`, replacing (and closing) an older one. Returns
    /// its generation and the writer's queue.
    fn install(
        &self,
        peer: NodeId,
        stream: &TcpStream,
        generation: u64,
    ) -> Option<Receiver<Vec<u8>>> {
        let (tx, rx) = channel::bounded(self.queue_frames_max);
        let clone = stream.try_clone().ok()?;
        let mut conns = self.conns.write();
        if self.stopped() {
            return None;
        }
        if let Some(old) = conns.insert(
            peer,
            Conn {
                tx,
                stream: clone,
                generation,
            },
        ) {
            tracing::info!(peer = %peer, "replacing the connection to a peer by a new one");
            let _ = old.stream.shutdown(Shutdown::Both);
        }
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        Some(rx)
    }

    fn uninstall(&self, peer: NodeId, generation: u64) {
        let mut conns = self.conns.write();
        if conns.get(&peer).is_some_and(|c| c.generation == generation) {
            conns.remove(&peer);
        }
    }

    /// Runs an authenticated connection to `peer` until it fails or shutdown: the writer on a
    /// new thread, the reader on this one. Returns once both are done with the socket.
    fn serve(self: &Arc<Self>, peer: NodeId, stream: TcpStream, generation: u64) {
        let Some(rx) = self.install(peer, &stream, generation) else {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        tracing::info!(me = %self.me, peer = %peer, "peer connected");
        let writer = match stream.try_clone() {
            Ok(w) => {
                let i = self.clone();
                self.spawn("paxwal-net-write", move || i.write_loop(peer, w, rx))
                    .is_ok()
            }
            Err(_) => false,
        };
        if writer {
            self.read_loop(peer, &stream, generation);
        }
        let _ = stream.shutdown(Shutdown::Both);
        self.uninstall(peer, generation);
        tracing::info!(me = %self.me, peer = %peer, "peer disconnected");
    }

    fn read_loop(&self, peer: NodeId, stream: &TcpStream, generation: u64) {
        if let Err(e) = stream.set_read_timeout(Some(IDLE_TIMEOUT)) {
            tracing::warn!(peer = %peer, reason = %e, "cannot set the idle timeout");
            return;
        }
        let mut r = BufReader::with_capacity(IO_BUFFER_BYTES, stream);
        loop {
            let payload = match read_frame(&mut r, FRAME_BYTES_MAX) {
                Ok(p) if p.is_empty() => continue, // keepalive
                Ok(p) => p,
                Err(FrameError::Closed) => return,
                Err(e) if e.is_timeout() || matches!(e, FrameError::Stalled { .. }) => {
                    tracing::warn!(peer = %peer, "closing a peer connection silent for {IDLE_TIMEOUT:?}");
                    return;
                }
                Err(e @ (FrameError::Checksum | FrameError::TooLarge { .. })) => {
                    tracing::warn!(peer = %peer, reason = %e, "closing a peer connection");
                    return;
                }
                Err(e) => {
                    if !self.stopped() {
                        tracing::debug!(peer = %peer, reason = %e, "peer connection lost");
                    }
                    return;
                }
            };
            self.stats.frames_received.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes_received.fetch_add(
                (FRAME_HEADER_BYTES + payload.len()) as u64,
                Ordering::Relaxed,
            );
            let mut msg = (peer, payload);
            loop {
                match self.inbound.send_timeout(msg, INBOUND_POLL) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Timeout(m)) => {
                        let current = self
                            .conns
                            .read()
                            .get(&peer)
                            .is_some_and(|c| c.generation == generation);
                        if self.stopped() || !current {
                            return;
                        }
                        msg = m;
                    }
                    Err(SendTimeoutError::Disconnected(_)) => return,
                }
            }
        }
    }

    fn write_loop(&self, peer: NodeId, stream: TcpStream, rx: Receiver<Vec<u8>>) {
        let mut w = BufWriter::with_capacity(IO_BUFFER_BYTES, &stream);
        let res = (|| -> std::io::Result<()> {
            loop {
                let first = match rx.recv_timeout(KEEPALIVE_INTERVAL) {
                    Ok(p) => p,
                    Err(RecvTimeoutError::Timeout) => {
                        write_frame(&mut w, &[])?;
                        w.flush()?;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let mut next = Some(first);
                while let Some(p) = next {
                    write_frame(&mut w, &p)?;
                    self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_sent
                        .fetch_add((FRAME_HEADER_BYTES + p.len()) as u64, Ordering::Relaxed);
                    next = rx.try_recv().ok();
                }
                w.flush()?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            if !self.stopped() {
                tracing::debug!(peer = %peer, reason = %e, "peer write failed");
            }
        }
        // Wakes the reader; what is still queued is lost with the connection.
        let _ = stream.shutdown(Shutdown::Both);
        let left = rx.try_iter().count() as u64;
        self.stats.frames_dropped.fetch_add(left, Ordering::Relaxed);
    }
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    while !inner.stopped() {
        let (stream, addr) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !inner.sleep(ACCEPT_POLL) {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(reason = %e, "accept failed");
                if !inner.sleep(ACCEPT_POLL) {
                    break;
                }
                continue;
            }
        };
        if inner.handshakes.fetch_add(1, Ordering::SeqCst) >= HANDSHAKES_MAX {
            inner.handshakes.fetch_sub(1, Ordering::SeqCst);
            inner
                .stats
                .handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %addr, "refused: too many handshakes in progress");
            continue;
        }
        let i = inner.clone();
        let spawned = inner.spawn("paxwal-net-hs", move || {
            accept_one(&i, stream);
        });
        if spawned.is_err() {
            inner.handshakes.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn accept_one(inner: &Arc<Inner>, mut stream: TcpStream) {
    let Some(sock) = inner.register(&stream) else {
        inner.handshakes.fetch_sub(1, Ordering::SeqCst);
        return;
    };
    let ok = stream.set_nonblocking(false).is_ok() && stream.set_nodelay(true).is_ok();
    let res = if ok {
        accept_handshake_with(
            &mut stream,
            &inner.auth,
            inner.me,
            Expect::Peers(&inner.dialers),
            &inner.handshake,
        )
    } else {
        Err(super::auth::AuthError::Closed)
    };
    inner.handshakes.fetch_sub(1, Ordering::SeqCst);
    match res {
        Ok(ConnKind::Peer(peer)) => inner.serve(peer, stream, sock),
        Ok(ConnKind::Client) | Err(_) => {
            if !inner.stopped() {
                inner
                    .stats
                    .handshakes_refused
                    .fetch_add(1, Ordering::Relaxed);
            }
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
    inner.unregister(sock);
}

fn dial_loop(inner: Arc<Inner>, peer: NodeId, addr: SocketAddr) {
    let mut rng = Jitter::new();
    let mut backoff = BACKOFF_MIN;
    while !inner.stopped() {
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            if let Some(sock) = inner.register(&stream) {
                let _ = stream.set_nodelay(true);
                match dial_handshake_with(
                    &mut stream,
                    &inner.auth,
                    ConnKind::Peer(inner.me),
                    Some(peer),
                    &inner.handshake,
                ) {
                    Ok(_) => {
                        backoff = BACKOFF_MIN;
                        inner.serve(peer, stream, sock);
                    }
                    Err(_) => {
                        if !inner.stopped() {
                            inner
                                .stats
                                .handshakes_refused
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                inner.unregister(sock);
            }
        }
        // Jittered: a uniform pick in [backoff/2, backoff].
        let d = backoff / 2 + backoff.mul_f64(rng.unit() / 2.0);
        if !inner.sleep(d) {
            break;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// xorshift64 seeded from the OS: backoff jitter only, no security role.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        Jitter(u64::from_le_bytes(b) | 1)
    }
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

//! The node's threads and the pump that drives the core.
//!
//! # Threads
//!
//! * **pump** (one): owns the [`Replica`] and the [`StateMachine`]. It waits on two bounded
//!   channels — messages from peers (filled by the transport's reader threads) and everything
//!   else (client requests, storage completions, snapshot completions) — and on the next tick.
//!   It feeds each input to the core and carries out the actions: a `Persist` is handed to
//!   the store's group commit without waiting ([`AcceptorStore::submit`]) and its ticket to
//!   the syncer; a `Send` is encoded and queued on the peer's connection; an `Apply` runs the
//!   state machine and answers the client waiting for that command. The pump never blocks on
//!   an `fdatasync`.
//! * **syncer** (one): takes every ticket queued, waits for the newest
//!   ([`AcceptorStore::wait_durable`] — being the log's only waiter it leads the group commit
//!   itself: one `fdatasync` for everything the pump submitted meanwhile), checks the earlier
//!   ones, and reports the newest token to the pump, which calls [`Replica::persisted`]. Only
//!   then does the core release the Promise and Accepted replies that depend on it.
//! * **snapshotter** (one): writes snapshot files ([`Snapshots::write`]) and compacts the
//!   acceptor log below them ([`AcceptorStore::compact`]) off the pump.
//! * **client acceptor** and two threads per client connection (reader, writer); the peer
//!   transport's own threads ([`PeerNet`]).
//!
//! # Order of effects
//!
//! Persist, then send what depends on it (the core holds such replies until
//! [`Replica::persisted`]); apply in slot order; answer a write once its command is applied
//! and a read once its read-index round completed and the apply point reached it.
//!
//! # Errors
//!
//! A storage error is fatal (fail-stop): the pump stops, every waiting client is answered
//! `Failed`, [`Node::fatal`] says why. Reopening (restarting the node) re-reads what is on
//! disk.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, select, Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use super::config::{NodeConfig, NodeError};
use super::machine::StateMachine;
use super::metrics::{Metrics, MetricsSnapshot};
use super::net::{
    accept_handshake, read_frame, write_frame, Expect, FrameError, NetStats, PeerNet, PeerNetConfig,
};
use super::proto::{PeerMsg, Request, Response};
use crate::paxos::{Action, Command, Config, NotLeader, Replica, Role};
use crate::snapshot::Snapshots;
use crate::store::AcceptorStore;
use crate::types::{NodeId, Slot};
use crate::wal::{Appended, Options};

/// Most bytes in one client request frame.
const CLIENT_FRAME_MAX: usize = 4 << 20;
/// Most bytes in one peer frame the node accepts as a snapshot (the whole snapshot).
const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;
/// A pending client request older than this is answered `Failed` (its client gave up).
const PENDING_TTL: Duration = Duration::from_secs(30);

/// One replica's status: what `paxwal kv status` and scripts read.
#[derive(Clone, Debug)]
pub struct Status {
    /// This replica.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// Every slot below this is applied.
    pub applied: Slot,
    /// Every slot below this is known chosen.
    pub chosen: Slot,
    /// First slot still held in the log (below: covered by a snapshot).
    pub log_start: Slot,
    /// Where it serves clients.
    pub client_addr: String,
    /// Counters and latencies.
    pub metrics: MetricsSnapshot,
    /// Peer transport counters.
    pub net: NetStats,
    /// Why it stopped, after a fail-stop.
    pub fatal: Option<String>,
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

impl Status {
    /// The status as `key value` lines (stable keys, for scripts).
    pub fn to_text(&self) -> String {
        let m = &self.metrics;
        let opt = |n: Option<NodeId>| n.map_or("none".to_string(), |n| n.0.to_string());
        let mut s = String::new();
        let mut line = |k: &str, v: String| {
            s.push_str(k);
            s.push(' ');
            s.push_str(&v);
            s.push('\n');
        };
        line("id", self.id.0.to_string());
        line("role", role_str(self.role).into());
        line("leader", opt(self.leader));
        line("applied", self.applied.0.to_string());
        line("chosen", self.chosen.0.to_string());
        line("log_start", self.log_start.0.to_string());
        line("client_addr", self.client_addr.clone());
        line("proposed", m.proposed.to_string());
        line("applied_commands", m.applied_commands.to_string());
        line("busy", m.busy.to_string());
        line("persists", m.persists.to_string());
        line("fsyncs", m.fsyncs.to_string());
        line("commands_per_fsync", format!("{:.1}", m.commands_per_fsync));
        line("snapshots_taken", m.snapshots_taken.to_string());
        line("snapshots_installed", m.snapshots_installed.to_string());
        line("transfers_sent", m.transfers_sent.to_string());
        line("chunks_received", m.chunks_received.to_string());
        line("elections_won", m.elections_won.to_string());
        line("durable_p50_us", m.durable_p50_us.to_string());
        line("durable_p99_us", m.durable_p99_us.to_string());
        line("commit_p50_us", m.commit_p50_us.to_string());
        line("commit_p99_us", m.commit_p99_us.to_string());
        line("read_p50_us", m.read_p50_us.to_string());
        line("read_p99_us", m.read_p99_us.to_string());
        line("bytes_on_disk", m.bytes_on_disk.to_string());
        line("net_frames_sent", self.net.frames_sent.to_string());
        line("net_frames_received", self.net.frames_received.to_string());
        line("net_frames_dropped", self.net.frames_dropped.to_string());
        line(
            "net_handshakes_refused",
            self.net.handshakes_refused.to_string(),
        );
        line("fatal", self.fatal.clone().unwrap_or_else(|| "none".into()));
        s
    }
}

/// The core's position, published by the pump.
#[derive(Clone, Copy, Debug)]
struct Position {
    role: Role,
    leader: Option<NodeId>,
    applied: Slot,
    chosen: Slot,
    log_start: Slot,
}

/// What the pump's second channel carries.
enum Input {
    Client {
        id: u64,
        req: Request,
        reply: Sender<(u64, Response)>,
        at: Instant,
    },
    /// Every persist up to this token is durable.
    Durable(u64),
    /// Our own snapshot through `up_to` is durable and the log compacted below it.
    Snapshotted(Slot),
    /// A peer's snapshot is durable here and the log compacted below it: install it.
    Installed(Slot, Arc<Vec<u8>>),
    /// A helper thread hit a fatal error.
    Fatal(String),
}

enum SnapJob {
    Take(Slot, Arc<Vec<u8>>),
    Install(Slot, Arc<Vec<u8>>),
}

struct Shared {
    id: NodeId,
    stop: AtomicBool,
    fatal: Mutex<Option<String>>,
    position: Mutex<Position>,
    metrics: Metrics,
    store: Arc<AcceptorStore>,
    data_dir: PathBuf,
    client_addr: SocketAddr,
    connections: AtomicUsize,
}

impl Shared {
    fn fail(&self, why: String) {
        tracing::error!("fail-stop: {why}");
        let mut f = self.fatal.lock();
        if f.is_none() {
            *f = Some(why);
        }
        self.stop.store(true, Ordering::Release);
    }
}

/// A running replica. See the [module docs](self).
pub struct Node {
    id: NodeId,
    shared: Arc<Shared>,
    net: Arc<PeerNet>,
    peer_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens the replica's storage in `cfg.data_dir` (recovering the newest snapshot and the
    /// log), binds its listeners and starts its threads.
    pub fn start(cfg: NodeConfig, machine: impl StateMachine) -> Result<Node, NodeError> {
        let mut machine: Box<dyn StateMachine> = Box::new(machine);
        let mut members: Vec<NodeId> = cfg.peers.iter().map(|(id, _)| *id).collect();
        members.push(cfg.id);
        members.sort();
        if members.windows(2).any(|w| w[0] == w[1]) {
            return Err(NodeError::Config(format!(
                "replica ids must be distinct (this replica is {}; peers {:?})",
                cfg.id.0,
                cfg.peers.iter().map(|(id, _)| id.0).collect::<Vec<_>>()
            )));
        }
        let log_dir = cfg.data_dir.join("log");
        let snap_dir = cfg.data_dir.join("snapshots");
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| NodeError::io(format!("create {}", log_dir.display()), e))?;
        let store = Arc::new(AcceptorStore::open(&log_dir, Options::default())?);
        let snaps = Snapshots::open(&snap_dir)?;
        // The log may be compacted only below a durable snapshot: one must cover its start.
        let mark = store.state().snapshot;
        let mut snap_cache = None;
        if let Some(s) = snaps.load_covering(mark)? {
            if s.up_to > mark {
                // A crash between writing the snapshot and compacting: finish compacting.
                store.compact(s.up_to)?;
            }
            machine.restore(&s.data).map_err(|e| {
                NodeError::Config(format!("snapshot through slot {}: {e}", s.up_to.0))
            })?;
            snap_cache = Some(Cached::new(s.up_to, Arc::new(s.data)));
        }
        let seed = u64::from(cfg.id.0)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let mut pcfg = Config::new(cfg.id, members, seed);
        pcfg.election_timeout_ticks_min = cfg.election_timeout_ticks.0;
        pcfg.election_timeout_ticks_max = cfg.election_timeout_ticks.1;
        pcfg.heartbeat_ticks = cfg.heartbeat_ticks;
        pcfg.window_slots_max = cfg.window_slots_max;
        if !cfg.batching {
            pcfg.batch_commands_max = 1;
        }
        let replica = Replica::new(pcfg, store.state().durable())
            .map_err(|e| NodeError::Config(e.to_string()))?;

        let peer_listener = TcpListener::bind(cfg.peer_listen)
            .map_err(|e| NodeError::io(format!("listen for peers on {}", cfg.peer_listen), e))?;
        let peer_addr = peer_listener
            .local_addr()
            .map_err(|e| NodeError::io("peer listener address", e))?;
        let client_listener = TcpListener::bind(cfg.client_listen).map_err(|e| {
            NodeError::io(format!("listen for clients on {}", cfg.client_listen), e)
        })?;
        let client_addr = client_listener
            .local_addr()
            .map_err(|e| NodeError::io("client listener address", e))?;

        let (peer_tx, peer_rx) = bounded::<(NodeId, Vec<u8>)>(16_384);
        let (input_tx, input_rx) = bounded::<Input>(cfg.pending_max.max(1024));
        let (sync_tx, sync_rx) = bounded::<(u64, Appended, Instant)>(65_536);
        let (snap_tx, snap_rx) = bounded::<SnapJob>(4);
        let net = Arc::new(
            PeerNet::start(
                PeerNetConfig {
                    me: cfg.id,
                    listener: peer_listener,
                    peers: cfg.peers.clone(),
                    auth: cfg.auth.clone(),
                    queue_frames_max: 16_384,
                },
                peer_tx,
            )
            .map_err(|e| NodeError::io("start the peer transport", e))?,
        );
        let shared = Arc::new(Shared {
            id: cfg.id,
            stop: AtomicBool::new(false),
            fatal: Mutex::new(None),
            position: Mutex::new(Position {
                role: replica.role(),
                leader: replica.leader(),
                applied: replica.applied(),
                chosen: replica.chosen(),
                log_start: replica.log_start(),
            }),
            metrics: Metrics::default(),
            store: Arc::clone(&store),
            data_dir: cfg.data_dir.clone(),
            client_addr,
            connections: AtomicUsize::new(0),
        });

        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("paxwal-{name}-{}", cfg.id.0))
                .spawn(f)
                .map_err(|e| NodeError::io(format!("spawn the {name} thread"), e))
        };
        let mut threads = Vec::new();
        {
            let (sh, tx) = (Arc::clone(&shared), input_tx.clone());
            threads.push(spawn("sync", Box::new(move || syncer(&sh, &sync_rx, &tx)))?);
        }
        {
            let (sh, tx) = (Arc::clone(&shared), input_tx.clone());
            threads.push(spawn(
                "snap",
                Box::new(move || snapshotter(&sh, snaps, &snap_rx, &tx)),
            )?);
        }
        {
            let sh = Arc::clone(&shared);
            let tx = input_tx.clone();
            let auth = cfg.auth.clone();
            let (me, max) = (cfg.id, cfg.client_connections_max);
            threads.push(spawn(
                "clients",
                Box::new(move || client_acceptor(&sh, client_listener, auth, me, max, &tx)),
            )?);
        }
        {
            let pump = Pump {
                cfg: cfg.clone(),
                replica,
                machine,
                shared: Arc::clone(&shared),
                net: Arc::clone(&net),
                sync_tx,
                snap_tx,
                writes: HashMap::new(),
                reads: HashMap::new(),
                next_ctx: 1,
                addresses: HashMap::new(),
                snapshot_at: mark.max(snap_cache.as_ref().map_or(Slot(0), |c: &Cached| c.up_to)),
                snapshotting: false,
                cache: snap_cache,
                pending_take: None,
                offered: HashMap::new(),
                incoming: None,
                installing: false,
                was_leader: false,
                ticks: 0,
            };
            threads.push(spawn(
                "pump",
                Box::new(move || pump.run(&peer_rx, &input_rx)),
            )?);
        }
        drop(input_tx);
        tracing::info!(
            "replica {} serving clients on {client_addr}, peers on {peer_addr}",
            cfg.id.0
        );
        Ok(Node {
            id: cfg.id,
            shared,
            net,
            peer_addr,
            threads,
        })
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address clients connect to (with the real port when bound to port 0).
    pub fn client_addr(&self) -> SocketAddr {
        self.shared.client_addr
    }

    /// The address peers connect to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The replica's role, position, metrics and transport counters now.
    pub fn status(&self) -> Status {
        status_of(&self.shared, Some(&self.net))
    }

    /// Why the node stopped, after a fail-stop.
    pub fn fatal(&self) -> Option<String> {
        self.shared.fatal.lock().clone()
    }

    /// Stops the node: the pump stops taking inputs, the syncer makes everything submitted
    /// durable, the transport closes, the store syncs and closes. Threads are joined.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        self.stop_threads();
        if let Some(f) = self.fatal() {
            return Err(NodeError::Fatal(f));
        }
        // Every thread that held the store is gone; close it (sync and release files).
        match Arc::try_unwrap(Arc::clone(&self.shared)) {
            Ok(shared) => match Arc::try_unwrap(shared.store) {
                Ok(store) => store.close()?,
                Err(store) => {
                    store.wal().sync()?;
                }
            },
            Err(shared) => {
                shared.store.wal().sync()?;
            }
        }
        Ok(())
    }

    fn stop_threads(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.net.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn status_of(shared: &Shared, net: Option<&PeerNet>) -> Status {
    let p = *shared.position.lock();
    let mut metrics = shared.metrics.snapshot();
    metrics.fsyncs = shared.store.wal().stats().fsyncs;
    metrics.commands_per_fsync = if metrics.fsyncs == 0 {
        0.0
    } else {
        metrics.applied_commands as f64 / metrics.fsyncs as f64
    };
    metrics.bytes_on_disk = dir_bytes(&shared.data_dir);
    Status {
        id: shared.id,
        role: p.role,
        leader: p.leader,
        applied: p.applied,
        chosen: p.chosen,
        log_start: p.log_start,
        client_addr: shared.client_addr.to_string(),
        metrics,
        net: net.map(PeerNet::stats).unwrap_or_default(),
        fatal: shared.fatal.lock().clone(),
    }
}

/// Bytes of every file under `dir` (allocated size, so preallocated segments count).
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

// ----- syncer and snapshotter ------------------------------------------------------------

fn syncer(shared: &Shared, rx: &Receiver<(u64, Appended, Instant)>, tx: &Sender<Input>) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.clear();
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let Some(&(token, newest, _)) = batch.last() else {
            continue;
        };
        let store = &shared.store;
        let r = store.wait_durable(&newest).and_then(|()| {
            // Every earlier ticket must be durable too (not rolled back after "no space").
            for (_, t, _) in &batch {
                if !store.is_durable(t)? {
                    return Err(crate::Error::Invalid(
                        "a ticket is not durable after a later one".into(),
                    ));
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            let _ = tx.send(Input::Fatal(format!("acceptor log: {e}")));
            shared.fail(format!("acceptor log: {e}"));
            return;
        }
        let now = Instant::now();
        for (_, _, at) in &batch {
            shared.metrics.durable_latency.record(now - *at);
        }
        shared
            .metrics
            .persists
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if tx.send(Input::Durable(token)).is_err() {
            return;
        }
    }
}

fn snapshotter(shared: &Shared, snaps: Snapshots, rx: &Receiver<SnapJob>, tx: &Sender<Input>) {
    while let Ok(job) = rx.recv() {
        let (up_to, data, installed) = match job {
            SnapJob::Take(s, d) => (s, d, false),
            SnapJob::Install(s, d) => (s, d, true),
        };
        // The snapshot is durable before the log forgets anything it covers.
        let r = snaps
            .write(up_to, &data)
            .and_then(|()| shared.store.compact(up_to));
        let msg = match r {
            Ok(_) if installed => Input::Installed(up_to, data),
            Ok(_) => Input::Snapshotted(up_to),
            Err(e) => {
                let why = format!("snapshot through slot {}: {e}", up_to.0);
                shared.fail(why.clone());
                Input::Fatal(why)
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

// ----- client connections ----------------------------------------------------------------

fn client_acceptor(
    shared: &Arc<Shared>,
    listener: TcpListener,
    auth: super::net::Auth,
    me: NodeId,
    max: usize,
    tx: &Sender<Input>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        shared.fail(format!("client listener: {e}"));
        return;
    }
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, addr)) => {
                conns.retain(|h| !h.is_finished());
                if shared.connections.load(Ordering::Acquire) >= max {
                    tracing::warn!("client {addr}: refused, {max} connections already open");
                    continue;
                }
                let (sh, tx, auth) = (Arc::clone(shared), tx.clone(), auth.clone());
                sh.connections.fetch_add(1, Ordering::AcqRel);
                let spawned = std::thread::Builder::new()
                    .name(format!("paxwal-client-{}", me.0))
                    .spawn(move || {
                        serve_client(&sh, stream, addr, &auth, me, &tx);
                        sh.connections.fetch_sub(1, Ordering::AcqRel);
                    });
                match spawned {
                    Ok(h) => conns.push(h),
                    Err(e) => {
                        shared.connections.fetch_sub(1, Ordering::AcqRel);
                        tracing::warn!("client {addr}: cannot spawn a thread: {e}");
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("accepting a client: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

fn serve_client(
    shared: &Shared,
    mut stream: TcpStream,
    addr: SocketAddr,
    auth: &super::net::Auth,
    me: NodeId,
    tx: &Sender<Input>,
) {
    let _ = stream.set_nonblocking(false);
    if let Err(e) = accept_handshake(&mut stream, auth, me, Expect::Clients) {
        tracing::warn!("client {addr}: handshake refused: {e}");
        return;
    }
    let _ = stream.set_nodelay(true);
    // Short read timeouts so the thread notices a shutdown.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let (reply_tx, reply_rx) = bounded::<(u64, Response)>(4096);
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::new(write_half);
        while let Ok((id, resp)) = reply_rx.recv() {
            if write_frame(&mut w, &resp.encode(id)).is_err() {
                return;
            }
            while let Ok((id, resp)) = reply_rx.try_recv() {
                if write_frame(&mut w, &resp.encode(id)).is_err() {
                    return;
                }
            }
            if w.flush().is_err() {
                return;
            }
        }
    });
    let mut reader = std::io::BufReader::new(stream);
    while !shared.stop.load(Ordering::Acquire) {
        let frame = match read_frame(&mut reader, CLIENT_FRAME_MAX) {
            Ok(f) => f,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => break,
        };
        let Some((id, req)) = Request::decode(&frame) else {
            tracing::warn!("client {addr}: malformed request; closing");
            let _ = reply_tx.send((0, Response::Failed("malformed request".into())));
            break;
        };
        let input = Input::Client {
            id,
            req,
            reply: reply_tx.clone(),
            at: Instant::now(),
        };
        match tx.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                Metrics::inc(&shared.metrics.busy);
                let _ = reply_tx.send((id, Response::Busy));
            }
            Err(TrySendError::Disconnected(_)) => {
                let why = shared
                    .fatal
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "node is shutting down".into());
                let _ = reply_tx.send((id, Response::Failed(why)));
                break;
            }
        }
    }
    drop(reply_tx);
    if let Ok(s) = reader.get_ref().try_clone() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let _ = writer.join();
}

fn is_timeout(e: &FrameError) -> bool {
    e.is_timeout()
}

// ----- the pump ----------------------------------------------------------------------------

/// A snapshot this node holds, ready to serve in chunks.
struct Cached {
    up_to: Slot,
    data: Arc<Vec<u8>>,
    crc: u32,
}

impl Cached {
    fn new(up_to: Slot, data: Arc<Vec<u8>>) -> Cached {
        let crc = crc32fast::hash(&data);
        Cached { up_to, data, crc }
    }
}

/// A snapshot being received.
struct Incoming {
    from: NodeId,
    up_to: Slot,
    len: u64,
    crc: u32,
    buf: Vec<u8>,
    last_progress: Instant,
    chunks: u64,
    dropped_once: bool,
}

struct Waiter {
    id: u64,
    reply: Sender<(u64, Response)>,
    at: Instant,
}

struct Pump {
    cfg: NodeConfig,
    replica: Replica,
    machine: Box<dyn StateMachine>,
    shared: Arc<Shared>,
    net: Arc<PeerNet>,
    sync_tx: Sender<(u64, Appended, Instant)>,
    snap_tx: Sender<SnapJob>,
    /// Client writes waiting for their command to be applied, by `(client, seq)`.
    writes: HashMap<(u64, u64), Vec<Waiter>>,
    /// Reads waiting for their read-index round, by context.
    reads: HashMap<u64, (Waiter, Vec<u8>)>,
    next_ctx: u64,
    /// Peers' client addresses (for NotLeader answers).
    addresses: HashMap<NodeId, String>,
    /// The newest snapshot's bound (taken or installed).
    snapshot_at: Slot,
    snapshotting: bool,
    cache: Option<Cached>,
    /// Our own snapshot being written: its bytes, to serve once durable.
    pending_take: Option<(Slot, Arc<Vec<u8>>)>,
    /// When a snapshot was last offered to each peer.
    offered: HashMap<NodeId, Instant>,
    incoming: Option<Incoming>,
    installing: bool,
    was_leader: bool,
    ticks: u64,
}

impl Pump {
    fn run(mut self, peer_rx: &Receiver<(NodeId, Vec<u8>)>, input_rx: &Receiver<Input>) {
        let tick = self.cfg.tick;
        let mut next_tick = Instant::now() + tick;
        while !self.shared.stop.load(Ordering::Acquire) {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            select! {
                recv(peer_rx) -> m => match m {
                    Ok((from, bytes)) => self.on_peer(from, &bytes),
                    Err(_) => break,
                },
                recv(input_rx) -> i => match i {
                    Ok(i) => self.on_input(i),
                    Err(_) => break,
                },
                default(timeout) => {}
            }
            // Take whatever else is waiting (bounded), so one round of actions covers it.
            for _ in 0..4096 {
                let mut any = false;
                if let Ok((from, bytes)) = peer_rx.try_recv() {
                    self.on_peer(from, &bytes);
                    any = true;
                }
                if let Ok(i) = input_rx.try_recv() {
                    self.on_input(i);
                    any = true;
                }
                if !any {
                    break;
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.replica.tick();
                self.on_tick(now);
                next_tick += tick;
                if next_tick < now {
                    next_tick = now + tick;
                }
            }
            self.carry_out();
        }
        let why = self
            .shared
            .fatal
            .lock()
            .clone()
            .unwrap_or_else(|| "node is shutting down".into());
        for (_, ws) in self.writes.drain() {
            for w in ws {
                let _ = w.reply.send((w.id, Response::Failed(why.clone())));
            }
        }
        for (_, (w, _)) in self.reads.drain() {
            let _ = w.reply.send((w.id, Response::Failed(why.clone())));
        }
    }

    fn address_of(&self, n: Option<NodeId>) -> Option<String> {
        n.and_then(|n| {
            if n == self.cfg.id {
                Some(self.shared.client_addr.to_string())
            } else {
                self.addresses.get(&n).cloned()
            }
        })
    }

    fn not_leader(&self, e: NotLeader) -> Response {
        Response::NotLeader(self.address_of(e.leader))
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Client { id, req, reply, at } => self.on_client(id, req, reply, at),
            Input::Durable(token) => self.replica.persisted(crate::paxos::PersistToken(token)),
            Input::Snapshotted(up_to) => {
                self.snapshotting = false;
                Metrics::inc(&self.shared.metrics.snapshots_taken);
                self.replica.compact(up_to);
                if let Some((s, data)) = self.pending_take.take() {
                    if s == up_to && self.cache.as_ref().is_none_or(|c| c.up_to < s) {
                        self.cache = Some(Cached::new(s, data));
                    }
                }
            }
            Input::Installed(up_to, data) => self.on_installed(up_to, data),
            Input::Fatal(why) => self.shared.fail(why),
        }
    }

    fn on_client(&mut self, id: u64, req: Request, reply: Sender<(u64, Response)>, at: Instant) {
        let answer = |r: Response| {
            let _ = reply.send((id, r));
        };
        match req {
            Request::Write {
                client,
                seq,
                payload,
            } => {
                if self.writes.len() >= self.cfg.pending_max {
                    Metrics::inc(&self.shared.metrics.busy);
                    return answer(Response::Busy);
                }
                match self.replica.propose(Command {
                    client,
                    seq,
                    payload,
                }) {
                    Ok(()) => {
                        Metrics::inc(&self.shared.metrics.proposed);
                        self.writes.entry((client, seq)).or_default().push(Waiter {
                            id,
                            reply,
                            at,
                        });
                    }
                    Err(e) => answer(self.not_leader(e)),
                }
            }
            Request::Read { query } => {
                if self.reads.len() >= self.cfg.pending_max {
                    Metrics::inc(&self.shared.metrics.busy);
                    return answer(Response::Busy);
                }
                let ctx = self.next_ctx;
                match self.replica.read_index(ctx) {
                    Ok(()) => {
                        self.next_ctx += 1;
                        self.reads.insert(ctx, (Waiter { id, reply, at }, query));
                    }
                    Err(e) => answer(self.not_leader(e)),
                }
            }
            Request::LocalRead { query } => match self.machine.query(&query) {
                Some(out) => answer(Response::Done(out)),
                None => answer(Response::Failed("malformed query".into())),
            },
            Request::Status => {
                answer(Response::Status(
                    status_of(&self.shared, Some(&self.net)).to_text(),
                ));
            }
        }
    }

    fn on_peer(&mut self, from: NodeId, bytes: &[u8]) {
        let Some(msg) = PeerMsg::decode(bytes) else {
            tracing::warn!("replica {}: malformed message; dropped", from.0);
            return;
        };
        match msg {
            PeerMsg::Paxos(m) => {
                // The transport authenticated `from`; a message claiming another sender is
                // dropped (the core also ignores messages not addressed to it).
                if m.from == from {
                    self.replica.step(m);
                }
            }
            PeerMsg::Address(a) => {
                self.addresses.insert(from, a);
            }
            PeerMsg::SnapshotOffer { up_to, len, crc } => self.on_offer(from, up_to, len, crc),
            PeerMsg::SnapshotFetch { up_to, offset } => self.on_fetch(from, up_to, offset),
            PeerMsg::SnapshotChunk {
                up_to,
                len,
                crc,
                offset,
                data,
            } => self.on_chunk(from, up_to, len, crc, offset, data),
        }
    }

    fn send_peer(&self, to: NodeId, msg: &PeerMsg) {
        self.net.send(to, msg.encode());
    }

    fn on_tick(&mut self, now: Instant) {
        self.ticks += 1;
        // Tell the peers where this replica serves clients (for their NotLeader answers).
        if self.ticks % 50 == 1 {
            let me = PeerMsg::Address(self.shared.client_addr.to_string());
            for (p, _) in &self.cfg.peers {
                self.send_peer(*p, &me);
            }
        }
        // A stalled transfer resumes from where it stopped.
        if let Some(inc) = &self.incoming {
            let idle = now.duration_since(inc.last_progress);
            if idle > Duration::from_secs(15) {
                tracing::warn!("snapshot transfer from {} stalled; abandoned", inc.from.0);
                self.incoming = None;
            } else if idle > Duration::from_millis(500) {
                let fetch = PeerMsg::SnapshotFetch {
                    up_to: inc.up_to,
                    offset: inc.buf.len() as u64,
                };
                let from = inc.from;
                self.send_peer(from, &fetch);
                if let Some(inc) = &mut self.incoming {
                    inc.last_progress = now;
                }
            }
        }
        // Clients that waited too long are told so (their own deadline passed long ago).
        if self.ticks % 100 == 0 {
            let expired = |w: &Waiter| now.duration_since(w.at) > PENDING_TTL;
            for ws in self.writes.values_mut() {
                for w in ws.iter().filter(|w| expired(w)) {
                    let _ = w.reply.send((w.id, Response::Failed("timed out".into())));
                }
                ws.retain(|w| !expired(w));
            }
            self.writes.retain(|_, ws| !ws.is_empty());
        }
        self.publish();
    }

    fn publish(&self) {
        let r = &self.replica;
        *self.shared.position.lock() = Position {
            role: r.role(),
            leader: r.leader(),
            applied: r.applied(),
            chosen: r.chosen(),
            log_start: r.log_start(),
        };
    }

    fn carry_out(&mut self) {
        loop {
            let actions = self.replica.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                self.act(a);
                if self.shared.stop.load(Ordering::Acquire) {
                    return;
                }
            }
        }
        let leading = self.replica.role() == Role::Leader;
        if leading && !self.was_leader {
            Metrics::inc(&self.shared.metrics.elections_won);
            tracing::info!("replica {} leads", self.cfg.id.0);
            self.publish();
        }
        if !leading && self.was_leader {
            // Commands queued or in flight here may still be chosen; their clients retry
            // with the same (client, seq) elsewhere and get the one result.
            let hint = self.address_of(self.replica.leader());
            for (_, ws) in self.writes.drain() {
                for w in ws {
                    let _ = w.reply.send((w.id, Response::NotLeader(hint.clone())));
                }
            }
            self.publish();
        }
        self.was_leader = leading;
        self.maybe_snapshot();
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Persist { records, token } => match self.shared.store.submit(&records) {
                Ok(t) => {
                    if self.sync_tx.send((token.0, t, Instant::now())).is_err() {
                        self.shared.fail("the syncer stopped".into());
                    }
                }
                Err(e) => self.shared.fail(format!("acceptor log: {e}")),
            },
            Action::Send(m) => {
                let to = m.to;
                self.send_peer(to, &PeerMsg::Paxos(m));
            }
            Action::Apply { value, .. } => {
                let now = Instant::now();
                for c in value.commands() {
                    let out = self.machine.apply(c);
                    Metrics::inc(&self.shared.metrics.applied);
                    if let Some(ws) = self.writes.remove(&(c.client, c.seq)) {
                        for w in ws {
                            self.shared.metrics.commit_latency.record(now - w.at);
                            let r = match &out {
                                Some(o) => Response::Done(o.clone()),
                                None => Response::Failed(
                                    "stale or malformed command (a newer one of this client was applied)".into(),
                                ),
                            };
                            let _ = w.reply.send((w.id, r));
                        }
                    }
                }
            }
            Action::ReadReady { ctx } => {
                if let Some((w, query)) = self.reads.remove(&ctx) {
                    self.shared.metrics.read_latency.record(w.at.elapsed());
                    let r = match self.machine.query(&query) {
                        Some(out) => Response::Done(out),
                        None => Response::Failed("malformed query".into()),
                    };
                    let _ = w.reply.send((w.id, r));
                }
            }
            Action::ReadAborted { ctx, leader } => {
                if let Some((w, _)) = self.reads.remove(&ctx) {
                    let _ = w
                        .reply
                        .send((w.id, Response::NotLeader(self.address_of(leader))));
                }
            }
            Action::SnapshotHint { to, below } => self.offer(to, below),
        }
    }

    // ----- snapshots ---------------------------------------------------------------------

    fn maybe_snapshot(&mut self) {
        let every = self.cfg.snapshot_every_slots;
        let applied = self.replica.applied();
        if every == 0 || self.snapshotting || applied.0 < self.snapshot_at.0 + every {
            return;
        }
        let data = Arc::new(self.machine.snapshot());
        // A full queue: the snapshotter is busy installing; try again later.
        if self
            .snap_tx
            .try_send(SnapJob::Take(applied, Arc::clone(&data)))
            .is_ok()
        {
            self.snapshotting = true;
            self.snapshot_at = applied;
            self.pending_take = Some((applied, data));
        }
    }

    /// Peer `to` needs slots below `below`, which this replica compacted: offer the newest
    /// snapshot (at most once per second per peer).
    fn offer(&mut self, to: NodeId, below: Slot) {
        let Some(c) = &self.cache else {
            return;
        };
        if c.up_to < below {
            return;
        }
        let now = Instant::now();
        if self
            .offered
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        self.offered.insert(to, now);
        Metrics::inc(&self.shared.metrics.transfers_sent);
        let offer = PeerMsg::SnapshotOffer {
            up_to: c.up_to,
            len: c.data.len() as u64,
            crc: c.crc,
        };
        tracing::info!(
            "offering the snapshot through slot {} ({} bytes) to replica {}",
            c.up_to.0,
            c.data.len(),
            to.0
        );
        self.send_peer(to, &offer);
    }

    fn on_fetch(&mut self, from: NodeId, up_to: Slot, offset: u64) {
        let Some(c) = &self.cache else {
            return;
        };
        if c.up_to != up_to {
            // We moved on to a newer snapshot: offer it instead.
            self.offered.remove(&from);
            let below = c.up_to;
            self.offer(from, below);
            return;
        }
        let len = c.data.len() as u64;
        let start = offset.min(len) as usize;
        let end = (start + self.cfg.transfer_chunk_bytes.max(1)).min(c.data.len());
        let chunk = PeerMsg::SnapshotChunk {
            up_to,
            len,
            crc: c.crc,
            offset: start as u64,
            data: c.data[start..end].to_vec(),
        };
        self.send_peer(from, &chunk);
    }

    fn on_offer(&mut self, from: NodeId, up_to: Slot, len: u64, crc: u32) {
        if up_to <= self.replica.applied() || self.installing || len > SNAPSHOT_BYTES_MAX {
            return;
        }
        let offset = match &self.incoming {
            Some(i) if (i.up_to, i.len, i.crc) == (up_to, len, crc) => {
                // The same snapshot again (say, after a dropped connection): resume.
                i.buf.len() as u64
            }
            Some(i) if i.up_to > up_to && i.last_progress.elapsed() < Duration::from_secs(5) => {
                return;
            }
            _ => {
                tracing::info!(
                    "receiving the snapshot through slot {} ({len} bytes) from replica {}",
                    up_to.0,
                    from.0
                );
                self.incoming = Some(Incoming {
                    from,
                    up_to,
                    len,
                    crc,
                    buf: Vec::with_capacity(len.min(64 << 20) as usize),
                    last_progress: Instant::now(),
                    chunks: 0,
                    dropped_once: false,
                });
                0
            }
        };
        if let Some(i) = &mut self.incoming {
            i.from = from;
            i.last_progress = Instant::now();
        }
        self.send_peer(from, &PeerMsg::SnapshotFetch { up_to, offset });
    }

    #[allow(clippy::too_many_arguments)]
    fn on_chunk(
        &mut self,
        from: NodeId,
        up_to: Slot,
        len: u64,
        crc: u32,
        offset: u64,
        data: Vec<u8>,
    ) {
        let Some(inc) = &mut self.incoming else {
            return;
        };
        if (inc.up_to, inc.len, inc.crc) != (up_to, len, crc)
            || offset != inc.buf.len() as u64
            || inc.buf.len() as u64 + data.len() as u64 > len
        {
            return; // a duplicate, a late chunk of another transfer, or a lie
        }
        inc.buf.extend_from_slice(&data);
        inc.chunks += 1;
        inc.last_progress = Instant::now();
        Metrics::inc(&self.shared.metrics.chunks_received);
        if inc.buf.len() as u64 == len {
            let Some(inc) = self.incoming.take() else {
                return;
            };
            if crc32fast::hash(&inc.buf) != crc {
                tracing::warn!(
                    "snapshot through slot {} from replica {}: checksum mismatch; dropped",
                    up_to.0,
                    from.0
                );
                return;
            }
            if self
                .snap_tx
                .try_send(SnapJob::Install(up_to, Arc::new(inc.buf)))
                .is_ok()
            {
                self.installing = true;
            }
            return;
        }
        if self.cfg.drop_transfer_after_chunks == Some(inc.chunks) && !inc.dropped_once {
            inc.dropped_once = true;
            tracing::warn!(
                "test hook: dropping the connection to replica {} mid-transfer",
                from.0
            );
            self.net.disconnect(from);
            return; // the stall timer fetches the rest once the connection is back
        }
        let fetch = PeerMsg::SnapshotFetch {
            up_to,
            offset: inc.buf.len() as u64,
        };
        self.send_peer(from, &fetch);
    }

    fn on_installed(&mut self, up_to: Slot, data: Arc<Vec<u8>>) {
        self.installing = false;
        if up_to > self.replica.applied() && self.replica.role() != Role::Leader {
            if let Err(e) = self.machine.restore(&data) {
                self.shared
                    .fail(format!("snapshot through slot {}: {e}", up_to.0));
                return;
            }
            if self.replica.install_snapshot(up_to) {
                Metrics::inc(&self.shared.metrics.snapshots_installed);
                tracing::info!("installed the snapshot through slot {}", up_to.0);
            }
        }
        if self.cache.as_ref().is_none_or(|c| c.up_to < up_to) {
            self.cache = Some(Cached::new(up_to, data));
        }
        self.snapshot_at = self.snapshot_at.max(up_to);
        self.publish();
    }
}

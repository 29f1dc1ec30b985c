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
//! * **client acceptor**, a reader thread per client connection and one **responder** that
//!   writes every connection's answers (module `clients`); the peer transport's own threads
//!   ([`PeerNet`]).
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
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;

use super::client::ClientError;
use super::clients::{client_acceptor, responder, ToResponder};
use super::config::{NodeConfig, NodeError};
use super::machine::StateMachine;
use super::metrics::{Metrics, MetricsSnapshot};
use super::net::{NetStats, PeerNet, PeerNetConfig};
use super::proto::{Request, Response};
use super::pump::{Pump, ReplyTo};
use super::transfer::Cached;
use crate::paxos::{Command, Config, Replica, Role};
use crate::snapshot::Snapshots;
use crate::store::AcceptorStore;
use crate::types::{NodeId, Slot};
use crate::wal::{Appended, Options};

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
pub(super) struct Position {
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) applied: Slot,
    pub(super) chosen: Slot,
    pub(super) log_start: Slot,
}

/// What the pump's second channel carries.
pub(crate) enum Input {
    Client {
        id: u64,
        req: Request,
        reply: ReplyTo,
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

pub(crate) enum SnapJob {
    Take(Slot, Arc<Vec<u8>>),
    Install(Slot, Arc<Vec<u8>>),
}

pub(crate) struct Shared {
    id: NodeId,
    pub(crate) stop: AtomicBool,
    pub(crate) fatal: Mutex<Option<String>>,
    pub(super) position: Mutex<Position>,
    pub(crate) metrics: Metrics,
    pub(super) store: Arc<AcceptorStore>,
    data_dir: PathBuf,
    pub(super) client_addr: SocketAddr,
}

impl Shared {
    pub(crate) fn fail(&self, why: String) {
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
    input_tx: Sender<Input>,
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
        let (resp_tx, resp_rx) = bounded::<ToResponder>(65_536);
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
            let resp = resp_tx.clone();
            threads.push(spawn(
                "clients",
                Box::new(move || client_acceptor(&sh, client_listener, auth, me, max, &tx, &resp)),
            )?);
            threads.push(spawn("respond", Box::new(move || responder(&resp_rx)))?);
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
                resp_tx,
                out: Vec::new(),
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
        tracing::info!(
            "replica {} serving clients on {client_addr}, peers on {peer_addr}",
            cfg.id.0
        );
        Ok(Node {
            id: cfg.id,
            shared,
            input_tx,
            net,
            peer_addr,
            threads,
        })
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Proposes `command` (on the leader) and waits until it is applied: returns the state
    /// machine's output. A command retried with the same `(client, seq)` applies once.
    /// [`ClientError::NotLeader`] names the leader's client address when known.
    pub fn propose(&self, command: Command, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        self.call(
            Request::Write {
                client: command.client,
                seq: command.seq,
                payload: command.payload,
            },
            timeout,
        )
    }

    /// A linearizable read (on the leader): `query` is answered by the state machine once a
    /// read-index round made its state at least as new as every write acknowledged before.
    pub fn read(&self, query: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        self.call(Request::Read { query }, timeout)
    }

    fn call(&self, req: Request, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        let (tx, rx) = bounded(1);
        let input = Input::Client {
            id: 0,
            req,
            reply: ReplyTo::Local(tx),
            at: Instant::now(),
        };
        match self.input_tx.try_send(input) {
            Ok(()) => {}
            Err(crossbeam::channel::TrySendError::Full(_)) => return Err(ClientError::Busy),
            Err(crossbeam::channel::TrySendError::Disconnected(_)) => {
                return Err(ClientError::Failed(
                    self.fatal().unwrap_or_else(|| "node stopped".into()),
                ))
            }
        }
        match rx.recv_timeout(timeout) {
            Ok(Response::Done(out)) => Ok(out),
            Ok(Response::NotLeader(a)) => Err(ClientError::NotLeader(a)),
            Ok(Response::Busy) => Err(ClientError::Busy),
            Ok(Response::Failed(why)) => Err(ClientError::Failed(why)),
            Ok(Response::Status(_)) => Err(ClientError::Protocol("unexpected status".into())),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
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
        // Every thread that wrote to the store is joined: make everything it submitted
        // durable. The files are released when the last handle drops (with this node).
        self.shared.store.wal().sync()?;
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

pub(super) fn status_of(shared: &Shared, net: Option<&PeerNet>) -> Status {
    let p = *shared.position.lock();
    let mut metrics = shared.metrics.snapshot(shared.store.wal().stats().fsyncs);
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

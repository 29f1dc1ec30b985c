//! The pump: the one thread that owns the [`Replica`] and the [`StateMachine`], feeds them
//! their inputs and carries out the core's actions (see the [runtime docs](super::runtime)).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{select, Receiver, Sender};

use super::clients::ToResponder;
use super::config::NodeConfig;
use super::machine::StateMachine;
use super::metrics::Metrics;
use super::net::PeerNet;
use super::proto::{PeerMsg, Request, Response};
use super::runtime::{status_of, Input, Position, Shared, SnapJob};
use super::transfer::{Cached, Incoming};
use crate::paxos::{Action, Command, NotLeader, Replica, Role};
use crate::types::{NodeId, Slot};
use crate::wal::Appended;

/// A pending client request older than this is answered `Failed` (its client gave up).
const PENDING_TTL: Duration = Duration::from_secs(30);

pub(super) struct Waiter {
    id: u64,
    reply: ReplyTo,
    at: Instant,
}

/// Where an answer goes: a client connection (through the responder thread) or a caller in
/// this process ([`Node::propose`], [`Node::read`]).
#[derive(Clone)]
pub(crate) enum ReplyTo {
    Conn(u64),
    Local(Sender<Response>),
}

/// Answers `id` at `to`: a connection's answers are collected in `out` and handed to the
/// responder once per pump round (one wake-up for all of them).
pub(crate) fn reply(out: &mut Vec<(u64, u64, Response)>, to: &ReplyTo, id: u64, r: Response) {
    match to {
        ReplyTo::Conn(c) => out.push((*c, id, r)),
        ReplyTo::Local(tx) => {
            let _ = tx.try_send(r);
        }
    }
}

pub(super) struct Pump {
    pub(super) cfg: NodeConfig,
    pub(super) replica: Replica,
    pub(super) machine: Box<dyn StateMachine>,
    pub(super) shared: Arc<Shared>,
    pub(super) net: Arc<PeerNet>,
    pub(super) sync_tx: Sender<(u64, Appended, Instant)>,
    pub(super) snap_tx: Sender<SnapJob>,
    /// Answers for client connections, collected during a round.
    pub(super) resp_tx: Sender<ToResponder>,
    pub(super) out: Vec<(u64, u64, Response)>,
    /// Client writes waiting for their command to be applied, by `(client, seq)`.
    pub(super) writes: HashMap<(u64, u64), Vec<Waiter>>,
    /// Reads waiting for their read-index round, by context.
    pub(super) reads: HashMap<u64, (Waiter, Vec<u8>)>,
    pub(super) next_ctx: u64,
    /// Peers' client addresses (for NotLeader answers).
    pub(super) addresses: HashMap<NodeId, String>,
    /// The newest snapshot's bound (taken or installed).
    pub(super) snapshot_at: Slot,
    pub(super) snapshotting: bool,
    pub(super) cache: Option<Cached>,
    /// Our own snapshot being written: its bytes, to serve once durable.
    pub(super) pending_take: Option<(Slot, Arc<Vec<u8>>)>,
    /// When a snapshot was last offered to each peer.
    pub(super) offered: HashMap<NodeId, Instant>,
    pub(super) incoming: Option<Incoming>,
    pub(super) installing: bool,
    pub(super) was_leader: bool,
    pub(super) ticks: u64,
}

impl Pump {
    pub(super) fn run(mut self, peer_rx: &Receiver<(NodeId, Vec<u8>)>, input_rx: &Receiver<Input>) {
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
            self.flush_answers();
        }
        let why = self
            .shared
            .fatal
            .lock()
            .clone()
            .unwrap_or_else(|| "node is shutting down".into());
        for (_, ws) in self.writes.drain() {
            for w in ws {
                reply(&mut self.out, &w.reply, w.id, Response::Failed(why.clone()));
            }
        }
        for (_, (w, _)) in self.reads.drain() {
            reply(&mut self.out, &w.reply, w.id, Response::Failed(why.clone()));
        }
        self.flush_answers();
    }

    /// Hands this round's answers to the responder (one wake-up for all of them).
    fn flush_answers(&mut self) {
        if !self.out.is_empty() {
            let batch = std::mem::take(&mut self.out);
            let _ = self.resp_tx.send(ToResponder::Answers(batch));
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

    fn on_client(&mut self, id: u64, req: Request, to: ReplyTo, at: Instant) {
        if let Some(r) = self.serve(id, req, &to, at) {
            reply(&mut self.out, &to, id, r);
        }
    }

    /// Starts serving a request; returns the answer if it is known at once.
    fn serve(&mut self, id: u64, req: Request, to: &ReplyTo, at: Instant) -> Option<Response> {
        let waiter = || Waiter {
            id,
            reply: to.clone(),
            at,
        };
        match req {
            Request::Write {
                client,
                seq,
                payload,
            } => {
                if self.writes.len() >= self.cfg.pending_max {
                    Metrics::inc(&self.shared.metrics.busy);
                    return Some(Response::Busy);
                }
                match self.replica.propose(Command {
                    client,
                    seq,
                    payload,
                }) {
                    Ok(()) => {
                        Metrics::inc(&self.shared.metrics.proposed);
                        self.writes.entry((client, seq)).or_default().push(waiter());
                        None
                    }
                    Err(e) => Some(self.not_leader(e)),
                }
            }
            Request::Read { query } => {
                if self.reads.len() >= self.cfg.pending_max {
                    Metrics::inc(&self.shared.metrics.busy);
                    return Some(Response::Busy);
                }
                let ctx = self.next_ctx;
                match self.replica.read_index(ctx) {
                    Ok(()) => {
                        self.next_ctx += 1;
                        self.reads.insert(ctx, (waiter(), query));
                        None
                    }
                    Err(e) => Some(self.not_leader(e)),
                }
            }
            Request::LocalRead { query } => Some(match self.machine.query(&query) {
                Some(out) => Response::Done(out),
                None => Response::Failed("malformed query".into()),
            }),
            Request::Status => Some(Response::Status(
                status_of(&self.shared, Some(&self.net)).to_text(),
            )),
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

    pub(super) fn send_peer(&self, to: NodeId, msg: &PeerMsg) {
        self.net.send(to, msg.encode());
    }

    fn on_tick(&mut self, now: Instant) {
        self.ticks += 1;
        // Tell the peers where this replica serves clients (for their NotLeader answers).
        if self.ticks % 20 == 1 {
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
                    reply(
                        &mut self.out,
                        &w.reply,
                        w.id,
                        Response::Failed("timed out".into()),
                    );
                }
                ws.retain(|w| !expired(w));
            }
            self.writes.retain(|_, ws| !ws.is_empty());
        }
        self.publish();
    }

    pub(super) fn publish(&self) {
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
                    reply(
                        &mut self.out,
                        &w.reply,
                        w.id,
                        Response::NotLeader(hint.clone()),
                    );
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
                            reply(&mut self.out, &w.reply, w.id, r);
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
                    reply(&mut self.out, &w.reply, w.id, r);
                }
            }
            Action::ReadAborted { ctx, leader } => {
                if let Some((w, _)) = self.reads.remove(&ctx) {
                    let r = Response::NotLeader(self.address_of(leader));
                    reply(&mut self.out, &w.reply, w.id, r);
                }
            }
            Action::SnapshotHint { to, below } => self.offer(to, below),
        }
    }
}

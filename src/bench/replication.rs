//! The replication benchmark behind `paxwal bench --paxos`: three replicas of the Multi-Paxos
//! core in one process, each with its own [`AcceptorStore`] on the real [`Wal`](crate::wal::Wal) in its own
//! directory on the same disk (`SyncMode::Always`: every persist is covered by an `fdatasync`
//! before the core hears of it), messages passed in memory, 64-byte commands. It counts the
//! commands committed (applied) on the leader per second, the `fdatasync` calls of the three
//! stores, and measures the raw disk's `fdatasync` rate in the same run, so the figures are
//! stated as ratios.
//!
//! # Threads
//!
//! * One **pump** thread runs the three cores (as `benches/paxos.rs` does): it reports
//!   completed persists ([`Replica::persisted`]), tops the leader up to the in-flight count,
//!   carries out every replica's actions, delivers the messages, and ticks every
//!   [`ClusterOptions::tick`] of wall time. A `Persist` is carried out with
//!   [`AcceptorStore::submit`], which encodes the records and queues them in the log's group
//!   commit without waiting; the ticket goes to the store's syncer.
//! * One **syncer** thread per store takes the newest ticket queued for it and waits for it with
//!   [`AcceptorStore::wait_durable`]. Being the log's only waiter it leads the group commit
//!   itself: it writes every queued batch (framing, CRC and the `pwrite` run here, off the pump
//!   thread) and calls `fdatasync` once. Everything the pump submitted while that sync ran is
//!   taken by the next one, so one `fdatasync` covers as many persists as arrive in one sync
//!   time — group commit without ever blocking the pump. The syncer then publishes the newest
//!   token it covered and unparks the pump.
//!
//! On 2 cores this puts the protocol work (and the encoding) on one core and the log's write
//! path on the other, while the three syncs overlap on the device. One thread per replica would
//! split the protocol work three ways, but every message would then cross threads, and with
//! three busy threads on two cores the hand-offs cost more than they save.
//!
//! # Durability
//!
//! `persisted(token)` is called only after the syncer's `wait_durable` for the ticket of
//! `token`'s records returned `Ok` — the `fdatasync` covering them returned OK — and after
//! [`AcceptorStore::is_durable`] confirmed every earlier ticket it took with it (so a ticket
//! rolled back after "no space", whose LSNs were handed out again, is never acknowledged by a
//! later one). Tickets of one store are submitted by one thread in token order, so their LSNs
//! grow with the tokens, and a completion acknowledges every token up to it, as the action
//! contract allows. Any store error stops the run with that error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use super::raw;
use super::{percentile_us, ratio, rss_mib, settle, write_bytes};
use crate::error::{Error, Result};
use crate::paxos::{
    Action, Body, Command, Config, Message, PersistToken, Replica, Role, StoreRecord, Value,
};
use crate::store::AcceptorStore;
use crate::types::{Ballot, NodeId, Slot};
use crate::wal::{Appended, Options, SyncMode};

/// Committed commands/s of omnipaxos 0.2.4 with its RocksDB storage on this project's machine,
/// 3 replicas in one process, 64-byte commands, batch 64, 1,024 in flight (quoted from the
/// issue, not measured here).
pub const OMNIPAXOS_ROCKSDB_BATCH_64: f64 = 144_000.0;
/// The same with batch 1,024 and 8,192 in flight (quoted, not measured here).
pub const OMNIPAXOS_ROCKSDB_BATCH_1024: f64 = 584_000.0;

/// How the cluster is built.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Most commands packed into one slot (the core's `batch_commands_max`).
    pub batch: usize,
    /// Most slots in flight on the leader (the core's `window_slots_max`).
    pub window_slots: usize,
    /// Bytes of each command's payload.
    pub payload_bytes: usize,
    /// Wall time per core tick (heartbeats; elections time out after 10–20 ticks).
    pub tick: Duration,
    /// Compact (stores and cores) every this many committed commands, to keep memory and disk
    /// flat; `None`: never (every accepted value stays in the stores, as the tests need).
    pub compact_every: Option<u64>,
    /// Keep the leader's applied `(slot, value)`s (for tests).
    pub record_applied: bool,
    /// Check, whenever the leader applies a slot, that a majority of the stores hold an accept
    /// for it that is durable ([`AcceptorStore::is_durable`]); a violation stops the run with
    /// an error. Costs a lookup per slot and store; for tests.
    pub check_durable_quorum: bool,
    /// Planted bug for tests: report each persist complete as soon as it is submitted (before
    /// its `fdatasync`). `check_durable_quorum` must catch it.
    #[doc(hidden)]
    pub ack_on_submit: bool,
    /// Options of each replica's log (`sync` is forced to [`SyncMode::Always`]).
    pub wal: Options,
}

impl ClusterOptions {
    /// Defaults for `batch` commands per slot and `in_flight` commands in flight: a window of
    /// `in_flight / batch` slots (at least one), 64-byte payloads, 10 ms ticks, compaction
    /// every 2^20 commands.
    pub fn new(batch: usize, in_flight: u64) -> ClusterOptions {
        let batch = batch.max(1);
        ClusterOptions {
            batch,
            window_slots: usize::try_from(in_flight.div_ceil(batch as u64))
                .unwrap_or(usize::MAX)
                .max(1),
            payload_bytes: 64,
            tick: Duration::from_millis(10),
            compact_every: Some(1 << 20),
            record_applied: false,
            check_durable_quorum: false,
            ack_on_submit: false,
            wal: Options::default(),
        }
    }
}

/// What the syncer of one store is asked to do.
#[derive(Debug, Default)]
struct Jobs {
    /// Tickets not yet waited for, in token order.
    tickets: Vec<(u64, Appended)>,
    /// Compact the store below this slot.
    compact: Option<Slot>,
    stop: bool,
}

#[derive(Debug, Default)]
struct SyncShared {
    jobs: Mutex<Jobs>,
    cv: Condvar,
    /// Newest token whose records (and every earlier token's) are durable.
    durable: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl SyncShared {
    fn fail(&self, e: Error) {
        *self.error.lock() = Some(e);
        self.failed.store(true, Ordering::Release);
    }
}

fn syncer_loop(store: &AcceptorStore, sh: &SyncShared, pump: &Thread) {
    let mut batch = Vec::new();
    loop {
        let compact = {
            let mut j = sh.jobs.lock();
            while j.tickets.is_empty() && j.compact.is_none() && !j.stop {
                sh.cv.wait(&mut j);
            }
            if j.stop && j.tickets.is_empty() {
                return;
            }
            std::mem::swap(&mut batch, &mut j.tickets);
            j.compact.take()
        };
        if let Some(&(token, newest)) = batch.last() {
            // The one fdatasync for everything submitted so far (this thread leads the group).
            let r = store.wait_durable(&newest).and_then(|()| {
                // Every earlier ticket must be durable too (not rolled back after "no space").
                for (_, t) in &batch {
                    if !store.is_durable(t)? {
                        return Err(Error::Invalid(
                            "a ticket is not durable after a later one".into(),
                        ));
                    }
                }
                Ok(())
            });
            if let Err(e) = r {
                sh.fail(e);
                pump.unpark();
                return;
            }
            sh.durable.store(token, Ordering::Release);
            pump.unpark();
            batch.clear();
        }
        if let Some(below) = compact {
            if let Err(e) = store.compact(below) {
                sh.fail(e);
                pump.unpark();
                return;
            }
        }
    }
}

struct Node {
    replica: Replica,
    store: Arc<AcceptorStore>,
    sync: Arc<SyncShared>,
    handle: Option<JoinHandle<()>>,
    reported: u64,
    /// With `check_durable_quorum`: per slot, the ballot of the newest accept submitted for it
    /// and the ticket of the first accept at that ballot (a retransmitted Accept is accepted and
    /// persisted again; the first one's durability is what a vote for it implies).
    accepted_at: Vec<Option<(Ballot, Appended)>>,
}

impl Node {
    fn submit(&mut self, records: &[StoreRecord], token: PersistToken, check: bool) -> Result<()> {
        let t = self.store.submit(records)?;
        self.sync.jobs.lock().tickets.push((token.0, t));
        self.sync.cv.notify_one();
        if check {
            for r in records {
                if let StoreRecord::Accept(e) = r {
                    let i = usize::try_from(e.slot.0).unwrap_or(usize::MAX);
                    if i >= self.accepted_at.len() {
                        self.accepted_at.resize(i + 1, None);
                    }
                    match self.accepted_at[i] {
                        Some((b, _)) if b == e.ballot => {}
                        _ => self.accepted_at[i] = Some((e.ballot, t)),
                    }
                }
            }
        }
        Ok(())
    }

    /// True if this store holds a durable accept for `slot` at `ballot`.
    fn durable_accept(&self, slot: Slot, ballot: Ballot) -> Result<bool> {
        let i = usize::try_from(slot.0).unwrap_or(usize::MAX);
        match self.accepted_at.get(i).copied().flatten() {
            Some((b, t)) if b == ballot => self.store.is_durable(&t),
            _ => Ok(false),
        }
    }

    fn stop(&mut self) {
        self.sync.jobs.lock().stop = true;
        self.sync.cv.notify_one();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }

    fn fsyncs(&self) -> u64 {
        self.store.wal().stats().fsyncs
    }
}

/// Three replicas, each with an acceptor store in its own directory, pumped by the calling
/// thread (see the [module docs](self)).
pub struct Cluster {
    nodes: Vec<Node>,
    leader: usize,
    net: Vec<Message>,
    spare: Vec<Message>,
    opts: ClusterOptions,
    proposed: u64,
    committed: u64,
    slots: u64,
    accept_values_sent: u64,
    compacted_at: u64,
    applied: Vec<(Slot, Value)>,
    payload: Vec<u8>,
    last_tick: Instant,
}

/// Counters of one [`Cluster::run`].
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RunStats {
    /// Commands committed on the leader.
    pub commands: u64,
    /// Wall time.
    pub seconds: f64,
    /// `fdatasync` calls of the three stores together.
    pub fsyncs: u64,
    /// Pump rounds.
    pub rounds: u64,
    /// Slots committed on the leader.
    pub slots: u64,
    /// Slot values the leader sent in Accept messages (2 per slot without retransmission).
    pub accept_values_sent: u64,
    /// Median time from `propose` to commit on the leader, µs (sampled: one command per pump
    /// round).
    pub commit_p50_us: f64,
    /// 99th percentile of the same, µs.
    pub commit_p99_us: f64,
}

impl Cluster {
    /// Opens (or reopens) the three stores in `dir/replica-1` … `dir/replica-3`, starts their
    /// syncers and runs an election until every replica follows one leader.
    pub fn open(dir: &Path, opts: ClusterOptions) -> Result<Cluster> {
        if opts.batch == 0 || opts.window_slots == 0 {
            return Err(Error::Invalid("batch and window must be positive".into()));
        }
        let peers: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let pump = std::thread::current();
        let mut nodes = Vec::new();
        for &id in &peers {
            let store = Arc::new(AcceptorStore::open(
                dir.join(format!("replica-{}", id.0)),
                Options {
                    sync: SyncMode::Always,
                    ..opts.wal.clone()
                },
            )?);
            let mut cfg = Config::new(id, peers.clone(), 0x9e37_79b9 ^ u64::from(id.0));
            cfg.window_slots_max = opts.window_slots;
            cfg.batch_commands_max = opts.batch;
            cfg.batch_bytes_max = usize::MAX;
            cfg.window_bytes_max = usize::MAX;
            let replica = Replica::new(cfg, store.state().durable())
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let sync = Arc::new(SyncShared::default());
            let handle = {
                let (store, sync, pump) = (store.clone(), sync.clone(), pump.clone());
                std::thread::Builder::new()
                    .name(format!("paxwal-sync-{}", id.0))
                    .spawn(move || syncer_loop(&store, &sync, &pump))
                    .map_err(|e| Error::io("spawn", "syncer thread", e))?
            };
            nodes.push(Node {
                replica,
                store,
                sync,
                handle: Some(handle),
                reported: 0,
                accepted_at: Vec::new(),
            });
        }
        let mut c = Cluster {
            nodes,
            leader: 0,
            net: Vec::new(),
            spare: Vec::new(),
            payload: vec![0x5a; opts.payload_bytes],
            opts,
            proposed: 0,
            committed: 0,
            slots: 0,
            accept_values_sent: 0,
            compacted_at: 0,
            applied: Vec::new(),
            last_tick: Instant::now(),
        };
        c.elect()?;
        Ok(c)
    }

    /// Ticks (every millisecond) and pumps until one replica leads and the others follow it.
    fn elect(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .nodes
                .iter()
                .position(|n| n.replica.role() == Role::Leader)
            {
                let id = self.nodes[l].replica.id();
                if self.nodes.iter().all(|n| n.replica.leader() == Some(id)) {
                    self.leader = l;
                    self.last_tick = Instant::now();
                    return Ok(());
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::Invalid("no leader elected within 30 s".into()));
            }
            if self.last_tick.elapsed() >= Duration::from_millis(1) {
                self.last_tick = Instant::now();
                for n in &mut self.nodes {
                    n.replica.tick();
                }
            }
            if !self.round()? {
                std::thread::park_timeout(Duration::from_micros(200));
            }
        }
    }

    /// One pump round: report completed persists, carry out every replica's actions, deliver
    /// every message. Returns whether anything happened.
    fn round(&mut self) -> Result<bool> {
        let mut progress = false;
        let check = self.opts.check_durable_quorum;
        let mut applied = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.sync.failed.load(Ordering::Acquire) {
                let e = n.sync.error.lock().take();
                return Err(e.unwrap_or_else(|| Error::Invalid("a syncer failed".into())));
            }
            let d = n.sync.durable.load(Ordering::Acquire);
            if d > n.reported {
                n.reported = d;
                n.replica.persisted(PersistToken(d));
                progress = true;
            }
            for a in n.replica.take_actions() {
                progress = true;
                match a {
                    Action::Persist { records, token } => {
                        n.submit(&records, token, check)?;
                        if self.opts.ack_on_submit {
                            n.reported = token.0;
                            n.replica.persisted(token);
                        }
                    }
                    Action::Send(m) => {
                        if let Body::Accept { values, .. } = &m.body {
                            if i == self.leader {
                                self.accept_values_sent += values.len() as u64;
                            }
                        }
                        self.net.push(m);
                    }
                    Action::Apply { slot, value } if i == self.leader => {
                        self.committed += value.commands().len() as u64;
                        self.slots += 1;
                        if check {
                            applied.push(slot);
                        }
                        if self.opts.record_applied {
                            self.applied.push((slot, value));
                        }
                    }
                    _ => {}
                }
            }
        }
        let ballot = self.nodes[self.leader].replica.leader_ballot();
        for slot in applied {
            let mut durable = 0;
            if let Some(b) = ballot {
                for n in &self.nodes {
                    durable += usize::from(n.durable_accept(slot, b)?);
                }
            }
            if durable < 2 {
                return Err(Error::Invalid(format!(
                    "slot {} was committed while only {durable} store(s) held a durable accept for it",
                    slot.0
                )));
            }
        }
        std::mem::swap(&mut self.net, &mut self.spare);
        for m in self.spare.drain(..) {
            progress = true;
            let to = (m.to.0 as usize).wrapping_sub(1);
            if let Some(n) = self.nodes.get_mut(to) {
                n.replica.step(m);
            }
        }
        Ok(progress)
    }

    /// Commits `n` more commands on the leader, keeping the configured number in flight
    /// (proposed, not yet applied on the leader).
    pub fn run(&mut self, n: u64, in_flight: u64) -> Result<RunStats> {
        let fsyncs0: u64 = self.nodes.iter().map(Node::fsyncs).sum();
        let (slots0, sent0) = (self.slots, self.accept_values_sent);
        let start = Instant::now();
        let target = self.committed + n;
        let mut rounds = 0u64;
        let mut last_progress = Instant::now();
        let mut last_committed = self.committed;
        // One sampled command per pump round that proposed: (its seq, when proposed).
        let mut sampled: std::collections::VecDeque<(u64, Instant)> = Default::default();
        let mut latencies: Vec<u64> = Vec::new();
        while self.committed < target {
            let leader = &mut self.nodes[self.leader].replica;
            if leader.role() != Role::Leader {
                return Err(Error::Invalid(
                    "the leader lost its leadership during the run".into(),
                ));
            }
            while self.proposed < target && self.proposed - self.committed < in_flight.max(1) {
                let cmd = Command {
                    client: 1,
                    seq: self.proposed,
                    payload: self.payload.clone(),
                };
                leader
                    .propose(cmd)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                self.proposed += 1;
            }
            if sampled
                .back()
                .is_none_or(|&(seq, _)| seq + 1 < self.proposed)
            {
                sampled.push_back((self.proposed - 1, Instant::now()));
            }
            let progress = self.round()?;
            while let Some(&(seq, at)) = sampled.front() {
                if seq >= self.committed {
                    break;
                }
                latencies.push(at.elapsed().as_nanos() as u64);
                sampled.pop_front();
            }
            rounds += 1;
            if self.last_tick.elapsed() >= self.opts.tick {
                self.last_tick = Instant::now();
                for n in &mut self.nodes {
                    n.replica.tick();
                }
            }
            if self.committed != last_committed {
                last_committed = self.committed;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_secs(30) {
                return Err(Error::Invalid("no command committed for 30 s".into()));
            }
            if let Some(every) = self.opts.compact_every {
                if self.committed - self.compacted_at >= every {
                    self.compact();
                }
            }
            if !progress {
                std::thread::park_timeout(self.opts.tick.min(Duration::from_millis(1)));
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let fsyncs: u64 = self.nodes.iter().map(Node::fsyncs).sum();
        latencies.sort_unstable();
        Ok(RunStats {
            commands: n,
            seconds,
            fsyncs: fsyncs - fsyncs0,
            rounds,
            slots: self.slots - slots0,
            accept_values_sent: self.accept_values_sent - sent0,
            commit_p50_us: percentile_us(&latencies, 0.5),
            commit_p99_us: percentile_us(&latencies, 0.99),
        })
    }

    /// Forgets what every replica applied (as a durable snapshot would allow): the cores'
    /// in-memory logs and, on the syncers, the stores (checkpoint, then delete old segments).
    fn compact(&mut self) {
        self.compacted_at = self.committed;
        let below = self
            .nodes
            .iter()
            .map(|n| n.replica.applied())
            .min()
            .unwrap_or_default();
        for n in &mut self.nodes {
            n.replica.compact(below);
            n.sync.jobs.lock().compact = Some(below);
            n.sync.cv.notify_one();
        }
    }

    /// Commands committed on the leader so far.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The leader.
    pub fn leader(&self) -> NodeId {
        self.nodes[self.leader].replica.id()
    }

    /// The leader's applied `(slot, value)`s, in slot order (only with
    /// [`ClusterOptions::record_applied`]).
    pub fn applied(&self) -> &[(Slot, Value)] {
        &self.applied
    }

    /// Stops the syncers and closes the stores (syncing what is left).
    pub fn close(mut self) -> Result<()> {
        let mut r = Ok(());
        for mut n in std::mem::take(&mut self.nodes) {
            n.stop();
            let failed = n.sync.error.lock().take();
            if let (Some(e), Ok(())) = (failed, &r) {
                r = Err(e);
            }
            match Arc::try_unwrap(n.store) {
                Ok(s) => {
                    if let Err(e) = s.close() {
                        if r.is_ok() {
                            r = Err(e);
                        }
                    }
                }
                Err(_) => {
                    if r.is_ok() {
                        r = Err(Error::Invalid("a store is still shared".into()));
                    }
                }
            }
        }
        r
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
    }
}

/// What `paxwal bench --paxos` runs.
#[derive(Clone, Debug)]
pub struct ReplBenchConfig {
    /// Directory to run in (fresh subdirectories are used for the stores).
    pub dir: PathBuf,
    /// Commands in flight (proposed, not yet committed on the leader).
    pub in_flight: u64,
    /// Most commands per slot.
    pub batch: usize,
    /// Commands to commit in the measured run.
    pub commands: u64,
    /// Commands committed before timing starts (warm-up).
    pub warmup: u64,
    /// Measure the raw disk in the same run.
    pub raw: bool,
    /// Zero-fill new segments (the log's default); false makes sparse segments.
    pub zero_fill: bool,
    /// Waiting writers park at once (`Options::spin_wait_max` zero), to compare.
    pub no_spin: bool,
    /// Also run omnipaxos 0.2.4 with its RocksDB storage in the same harness, after paxwal
    /// (needs the `compare-omnipaxos` feature).
    pub omnipaxos: bool,
}

/// The benchmark's result.
#[derive(Clone, Debug, Serialize)]
pub struct ReplBenchResult {
    /// Commands in flight.
    pub in_flight: u64,
    /// Most commands per slot.
    pub batch: usize,
    /// Slots in flight on the leader at most.
    pub window_slots: usize,
    /// Bytes per command payload.
    pub payload_bytes: usize,
    /// Commands committed in the measured run.
    pub commands: u64,
    /// Wall time of the measured run.
    pub seconds: f64,
    /// Commands committed (applied on the leader) per second.
    pub commands_per_sec: f64,
    /// `fdatasync` calls of the three stores together.
    pub fsyncs: u64,
    /// The same per second.
    pub fsyncs_per_sec: f64,
    /// Commands each `fdatasync` made durable, on average (every command is synced by each of
    /// the three stores: `3 × commands / fsyncs`).
    pub commands_per_fsync: f64,
    /// Pump rounds per second.
    pub rounds_per_sec: f64,
    /// Slot values sent in Accepts per committed slot (2.0: no retransmission).
    pub accepts_sent_per_slot: f64,
    /// Median time from `propose` to commit on the leader, µs.
    pub commit_p50_us: f64,
    /// 99th percentile of the same, µs.
    pub commit_p99_us: f64,
    /// Whether new segments were zero-filled.
    pub zero_fill: bool,
    /// Raw `fdatasync` rate of one file after a 4 KiB overwrite, same directory, same run.
    pub raw_fsync_per_sec: f64,
    /// Raw `fdatasync` rate of three files synced concurrently (one thread each), all three
    /// together, same run.
    pub raw_fsync3_per_sec: f64,
    /// Bytes this process passed to write calls during the measured run (the three logs'
    /// frames and the zero-filling of their new segments; `wchar` of `/proc/self/io`), MiB/s.
    pub written_mib_per_sec: f64,
    /// Anonymous resident memory of the process at the end of the run, MiB.
    pub rss_anon_mib: f64,
    /// File-backed resident memory at the end of the run (mapped segments), MiB.
    pub rss_file_mib: f64,
    /// Raw sequential write bandwidth (1 MiB writes, one `fdatasync`), same directory, same run.
    pub raw_seq_mib_per_sec: f64,
    /// `written_mib_per_sec / raw_seq_mib_per_sec`.
    pub ratio_write_to_raw_seq: f64,
    /// `commands_per_sec / raw_fsync_per_sec`.
    pub ratio_commands_to_raw_fsync: f64,
    /// `fsyncs_per_sec / raw_fsync3_per_sec`: how much of the disk's sync rate the stores used.
    pub ratio_fsyncs_to_raw_fsync3: f64,
    /// omnipaxos 0.2.4 + RocksDB `PersistentStorage`, same harness, same run: commands/s
    /// (with [`ReplBenchConfig::omnipaxos`]).
    pub omnipaxos_per_sec: Option<f64>,
    /// `commands_per_sec` ÷ `omnipaxos_per_sec`.
    pub ratio_to_omnipaxos: Option<f64>,
    /// The omnipaxos (RocksDB storage) figure quoted for this configuration, if any (not
    /// measured in this run).
    pub omnipaxos_quoted_per_sec: Option<f64>,
    /// `commands_per_sec` ÷ that figure.
    pub ratio_to_omnipaxos_quoted: Option<f64>,
}

/// The quoted omnipaxos figure for a configuration, if one was quoted.
pub fn omnipaxos_quoted(batch: usize, in_flight: u64) -> Option<f64> {
    match (batch, in_flight) {
        (64, 1024) => Some(OMNIPAXOS_ROCKSDB_BATCH_64),
        (1024, 8192) => Some(OMNIPAXOS_ROCKSDB_BATCH_1024),
        _ => None,
    }
}

/// omnipaxos in the same harness: commands/s over whole multiples of 65,536 commands (its
/// pump commits in chunks of that size and trims after each).
#[cfg(feature = "compare-omnipaxos")]
fn run_omnipaxos(cfg: &ReplBenchConfig) -> Result<f64> {
    let dir = cfg
        .dir
        .join(format!("paxwal-replbench-omnipaxos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create dir", &dir, e))?;
    let chunk = 65_536;
    let commands = cfg.commands.div_ceil(chunk).max(1) * chunk;
    let warmup = cfg.warmup.div_ceil(chunk) * chunk;
    let r = (|| {
        let mut c = super::omnipaxos::OmniCluster::open(&dir, cfg.batch, 64)?;
        if warmup > 0 {
            c.run(warmup, cfg.in_flight)?;
        }
        let t = c.run(commands, cfg.in_flight)?;
        Ok(commands as f64 / t.as_secs_f64())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[cfg(not(feature = "compare-omnipaxos"))]
fn run_omnipaxos(_: &ReplBenchConfig) -> Result<f64> {
    Err(Error::Invalid(
        "this build has no omnipaxos: build with --features compare-omnipaxos".into(),
    ))
}

/// Runs the benchmark: the raw disk first (then a `sync` and a pause), then the cluster, then
/// (optionally, after another pause) omnipaxos in the same harness.
pub fn run(cfg: &ReplBenchConfig) -> Result<ReplBenchResult> {
    if cfg.in_flight == 0 || cfg.batch == 0 || cfg.commands == 0 {
        return Err(Error::Invalid(
            "in-flight, batch and command count must be positive".into(),
        ));
    }
    if cfg.omnipaxos && !cfg!(feature = "compare-omnipaxos") {
        // Say so before spending a minute on the rest.
        run_omnipaxos(cfg)?;
    }
    let (raw1, raw3, raw_seq) = if cfg.raw {
        settle();
        let budget = Duration::from_millis(1500);
        let r1 = raw::overwrite_fsync_rate(&cfg.dir, 1, budget)?;
        let r3 = raw::overwrite_fsync_rate(&cfg.dir, 3, budget)?;
        let seq = raw::seq_write_mib_per_sec(&cfg.dir, 256)?;
        settle();
        (r1, r3, seq)
    } else {
        (0.0, 0.0, 0.0)
    };
    let dir = cfg
        .dir
        .join(format!("paxwal-replbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = ClusterOptions::new(cfg.batch, cfg.in_flight);
    opts.wal.zero_fill = cfg.zero_fill;
    if cfg.no_spin {
        opts.wal.spin_wait_max = std::time::Duration::ZERO;
    }
    let window_slots = opts.window_slots;
    let payload_bytes = opts.payload_bytes;
    let mut cluster = Cluster::open(&dir, opts)?;
    let result = (|| {
        if cfg.warmup > 0 {
            cluster.run(cfg.warmup, cfg.in_flight)?;
        }
        let w0 = write_bytes();
        let s = cluster.run(cfg.commands, cfg.in_flight)?;
        Ok((s, write_bytes().saturating_sub(w0), rss_mib()))
    })();
    let closed = cluster.close();
    let _ = std::fs::remove_dir_all(&dir);
    let (s, written, (rss_anon_mib, rss_file_mib)) = result?;
    closed?;
    let omnipaxos_per_sec = if cfg.omnipaxos {
        settle();
        Some(run_omnipaxos(cfg)?)
    } else {
        None
    };
    let written_mib_per_sec = ratio(written as f64 / f64::from(1u32 << 20), s.seconds);
    let commands_per_sec = ratio(s.commands as f64, s.seconds);
    let fsyncs_per_sec = ratio(s.fsyncs as f64, s.seconds);
    let quoted = omnipaxos_quoted(cfg.batch, cfg.in_flight);
    Ok(ReplBenchResult {
        in_flight: cfg.in_flight,
        batch: cfg.batch,
        window_slots,
        payload_bytes,
        commands: s.commands,
        seconds: s.seconds,
        commands_per_sec,
        fsyncs: s.fsyncs,
        fsyncs_per_sec,
        commands_per_fsync: ratio(3.0 * s.commands as f64, s.fsyncs as f64),
        rounds_per_sec: ratio(s.rounds as f64, s.seconds),
        accepts_sent_per_slot: ratio(s.accept_values_sent as f64, s.slots as f64),
        commit_p50_us: s.commit_p50_us,
        commit_p99_us: s.commit_p99_us,
        zero_fill: cfg.zero_fill,
        written_mib_per_sec,
        rss_anon_mib,
        rss_file_mib,
        raw_seq_mib_per_sec: raw_seq,
        ratio_write_to_raw_seq: ratio(written_mib_per_sec, raw_seq),
        raw_fsync_per_sec: raw1,
        raw_fsync3_per_sec: raw3,
        ratio_commands_to_raw_fsync: ratio(commands_per_sec, raw1),
        ratio_fsyncs_to_raw_fsync3: ratio(fsyncs_per_sec, raw3),
        omnipaxos_per_sec,
        ratio_to_omnipaxos: omnipaxos_per_sec.map(|o| ratio(commands_per_sec, o)),
        omnipaxos_quoted_per_sec: quoted,
        ratio_to_omnipaxos_quoted: quoted.map(|q| commands_per_sec / q),
    })
}

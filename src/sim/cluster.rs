//! A seeded cluster simulation: 3 or 5 replicas running the real Multi-Paxos core
//! ([`crate::paxos::Replica`]) over the real acceptor store ([`crate::store::AcceptorStore`]) on
//! each replica's own simulated disk ([`crate::wal::simdisk::SimDisk`], the WAL's I/O trait),
//! a simulated network, and clients that retry. Everything is driven from one seed, so a run
//! replays exactly: `SEED=… cargo test --features sim --test paxos_sim` or
//! `paxwal sim --seed …`.
//!
//! # Faults (safety phase)
//!
//! * network: delay and reordering, loss, duplication, a replica isolated, the cluster split
//!   into two sides;
//! * crash-restarts: a random subset of the unsynced writes survives; or the machine stops in
//!   the middle of a group commit and the last write is torn (garbage or the old bytes after a random
//!   byte); or an acceptor crashes right after it replied to a prepare;
//! * `fdatasync` returns EIO: the log is poisoned, the replica fail-stops and restarts from
//!   what its disk really holds;
//! * persists complete after random delays (group commit folds many into one sync);
//! * every replica snapshots its state machine and compacts its log now and then
//!   ([`SimConfig::compact_every_slots`]), so lagging replicas must catch up from a peer's
//!   snapshot (on the core's `SnapshotHint`).
//!
//! # Checkers
//!
//! * **agreement**: no two replicas (or two incarnations of one) apply different values at a
//!   slot;
//! * **validity**: every applied command is one a client issued, byte for byte;
//! * **state machine**: after each slot, every replica's key-value state equals a reference
//!   execution of the agreed log that runs each `(client, seq)` once (a lower sequence
//!   number than a client's last is stale and skipped), and every result a replica returns is
//!   the reference's (a retry answers its first execution's result);
//! * **durability**: every write a client saw acknowledged is applied, at the end, by every
//!   replica;
//! * **linearizability**: each key's client history (puts and compare-and-sets through the
//!   log, gets through read-index rounds) has a linearization ([`super::linearizability`]);
//! * **chosen values** ([`super::chosen`], with the acceptor monitor): P2b on the acceptors'
//!   durable votes, and every applied value chosen by a majority first;
//! * **liveness**: once faults stop and the network heals (the liveness phase: the last third
//!   of the run, 300 steps by default), every client operation completes and every replica
//!   applies every chosen slot before the run ends — that is the bound.
//!
//! Planted bugs ([`crate::paxos::Faults`] in the core, [`SimBugs`] in the simulated node) exist
//! so that tests can show each checker catches something.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use super::chosen::ChosenMonitor;
use super::coverage::{Coverage, Tracker};
use super::kv::{KvMachine, KvOp};
use super::linearizability::{check, KvInput, KvOutput, KvRegister, Operation, Verdict};
use super::monitor::ElectionMonitor;
use super::net::{NetConfig, Network};
use super::rng::Rng;
use super::schedule::{Move, Scheduler, TargetedRates};
use crate::paxos::{
    Action, Body, Command, Config, DurableState, Entry, Faults, Message, PersistToken, Replica,
    StoreRecord, Value,
};
use crate::snapshot::Snapshots;
use crate::store::AcceptorStore;
use crate::types::{Ballot, NodeId, Slot};
use crate::wal::simdisk::{self, CrashSpec, SimDisk, TearFill};
use crate::wal::{Appended, Options, Prealloc};

const DIR: &str = "/acceptor";
const SNAP_DIR: &str = "/snapshots";
/// Client ids start here (replica ids are 1..=n).
const CLIENT_BASE: u32 = 1000;

/// Deliberate bugs in the simulated node (not the core), off by default: they show that the
/// linearizability and durability checkers catch what they should.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimBugs {
    /// Serve gets from the local state machine at once, on any replica, without a read-index
    /// round (stale reads).
    pub local_reads: bool,
    /// Acknowledge a write to the client as soon as the leader accepted it for proposal,
    /// before it is chosen.
    pub ack_before_chosen: bool,
    /// Replica 1 flips a byte of every command it persists (a store that mangles values).
    pub mangle_persisted_values: bool,
    /// No replica ever reports its persists complete (a stuck storage completion path).
    pub lose_completions: bool,
}

/// Fault rates of the safety phase: probabilities per simulated step unless said otherwise.
#[derive(Clone, Debug)]
pub struct FaultRates {
    /// A random replica is cut off from the other replicas (clients still reach it).
    pub isolate: f64,
    /// The replicas split into a random minority and the rest.
    pub split: f64,
    /// Every partition heals.
    pub heal: f64,
    /// A random replica crashes and restarts (half of these crashes tear the last write).
    pub crash: f64,
    /// Longest a crashed replica stays down, in steps.
    pub down_steps_max: u64,
    /// The next `fdatasync` of a random replica fails with EIO.
    pub fsync_error: f64,
    /// Per Promise sent: the acceptor crashes right after sending it, losing whatever it had
    /// not synced.
    pub crash_after_promise: f64,
    /// Per message: it is lost.
    pub loss: f64,
    /// Per message: it is delivered twice.
    pub duplicate: f64,
    /// Per message: it is slow, arriving up to `slow_delay_max_steps` later.
    pub slow: f64,
    /// Most extra steps a slow message takes.
    pub slow_delay_max_steps: u64,
    /// The targeted scenarios ([`super::schedule`]) beside these random faults.
    pub targeted: TargetedRates,
}

impl Default for FaultRates {
    /// Rates tuned so that every planted bug is caught within the test suite's seed budget
    /// while the fault-free liveness phase still completes every operation.
    fn default() -> FaultRates {
        FaultRates {
            isolate: 0.03,
            split: 0.02,
            heal: 0.1,
            crash: 0.008,
            down_steps_max: 5,
            fsync_error: 0.003,
            crash_after_promise: 1.0,
            loss: 0.05,
            duplicate: 0.03,
            slow: 0.01,
            slow_delay_max_steps: 60,
            targeted: TargetedRates::default(),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Replicas (3 or 5 are the tested sizes; 1..=9 work).
    pub replicas: u32,
    /// Simulated steps (one tick for every replica each). The last third is the liveness
    /// phase: no new faults, network healed.
    pub steps: u64,
    /// Clients, each with one operation outstanding at a time.
    pub clients: u32,
    /// Keys the clients work on (few keys: more contention, sharper linearizability checks).
    pub keys: u64,
    /// Inject faults in the safety phase.
    pub faults: bool,
    /// How often.
    pub rates: FaultRates,
    /// Planted protocol bugs in every replica's core.
    pub core_bugs: Faults,
    /// Planted bugs in the simulated node.
    pub node_bugs: SimBugs,
    /// Each replica snapshots its state machine and compacts its log about every this many
    /// applied slots (0: never). Lagging replicas then catch up from a peer's snapshot.
    pub compact_every_slots: u64,
    /// Run the acceptor monitor ([`Check::Acceptor`]) and the election monitor
    /// ([`Check::Election`]). Off, only the end-to-end checkers judge the run (tests use that
    /// to show they catch the planted bugs on their own).
    pub acceptor_monitor: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            replicas: 3,
            steps: 900,
            clients: 8,
            keys: 3,
            faults: true,
            rates: FaultRates::default(),
            core_bugs: Faults::default(),
            node_bugs: SimBugs::default(),
            acceptor_monitor: true,
            compact_every_slots: 40,
        }
    }
}

/// Counters of what a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Steps simulated.
    pub steps: u64,
    /// Slots chosen (applied somewhere).
    pub slots_chosen: u64,
    /// Commands in chosen slots.
    pub commands_chosen: u64,
    /// Client operations that completed.
    pub ops_completed: u64,
    /// Client operations issued.
    pub ops_issued: u64,
    /// Crash-restarts of every kind.
    pub crashes: u64,
    /// Of which: the last write was torn.
    pub torn_crashes: u64,
    /// Injected `fdatasync` failures (each poisons a log; its replica restarts).
    pub fsync_errors: u64,
    /// Partitions formed (isolations and splits).
    pub partitions: u64,
    /// Messages dropped by loss or a partition.
    pub messages_dropped: u64,
    /// Messages duplicated.
    pub messages_duplicated: u64,
    /// Histories the linearizability search gave up on (budget exceeded; not a violation).
    pub linearizability_unknown: u64,
    /// Snapshots taken (each followed by compacting the acceptor's log below it).
    pub snapshots_taken: u64,
    /// Snapshots installed by lagging replicas from a peer.
    pub snapshots_installed: u64,
    /// How often the run reached each protocol situation the rules exist for.
    pub coverage: Coverage,
}

impl SimStats {
    /// Faults injected in all.
    pub fn faults(&self) -> u64 {
        self.crashes
            + self.fsync_errors
            + self.partitions
            + self.messages_dropped
            + self.messages_duplicated
    }

    /// Adds another run's counters.
    pub fn add(&mut self, o: &SimStats) {
        self.steps += o.steps;
        self.slots_chosen += o.slots_chosen;
        self.commands_chosen += o.commands_chosen;
        self.ops_completed += o.ops_completed;
        self.ops_issued += o.ops_issued;
        self.crashes += o.crashes;
        self.torn_crashes += o.torn_crashes;
        self.fsync_errors += o.fsync_errors;
        self.partitions += o.partitions;
        self.messages_dropped += o.messages_dropped;
        self.messages_duplicated += o.messages_duplicated;
        self.linearizability_unknown += o.linearizability_unknown;
        self.snapshots_taken += o.snapshots_taken;
        self.snapshots_installed += o.snapshots_installed;
        self.coverage.add(&o.coverage);
    }
}

/// Which checker failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Two values applied at one slot.
    Agreement,
    /// A replica's state machine left the reference execution of the agreed log (a command
    /// executed twice, or a retry answered with another result than its first execution's).
    StateMachine,
    /// A Paxos rule broken on the acceptors' durable votes ([`super::chosen`]): a proposal
    /// above a chosen value's ballot with another value, two values at one ballot, or a value
    /// applied before a majority accepted it.
    Chosen,
    /// An applied command no client issued.
    Validity,
    /// An acknowledged write missing at the end.
    Durability,
    /// A key's history has no linearization.
    Linearizability,
    /// Something did not finish in the liveness phase.
    Liveness,
    /// The code under test panicked (a bug in itself: bad input must never panic).
    Panic,
    /// An acceptor broke a rule visible at the acceptor itself: after a restart its durable
    /// promise is below a Promise it had sent, or an accepted value it had acknowledged is
    /// gone; or it accepted a ballot below its promise.
    Acceptor,
    /// An election rule was broken ([`super::monitor`]): Phase 1 without a pre-vote majority,
    /// or a leader that kept leading without hearing from a majority (no check-quorum).
    Election,
}

/// A checker's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker.
    pub check: Check,
    /// What it saw.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.check, self.detail)
    }
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The seed (replays the run exactly).
    pub seed: u64,
    /// What happened.
    pub stats: SimStats,
    /// The first violation found, if any.
    pub violation: Option<Violation>,
}

#[derive(Clone, Debug)]
enum Wire {
    Peer(Message),
    Request {
        seq: u64,
        op: KvOp,
    },
    Reply {
        seq: u64,
        result: Reply,
    },
    /// A peer's snapshot, for a replica that needs slots the peer compacted away.
    Snapshot {
        up_to: Slot,
        data: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
enum Reply {
    Done(KvOutput),
    NotLeader(Option<NodeId>),
}

struct Node {
    id: NodeId,
    disk: SimDisk,
    store: AcceptorStore,
    replica: Replica,
    kv: KvMachine,
    /// Persists submitted, not yet reported durable.
    pending: VecDeque<(PersistToken, Appended)>,
    /// The Accept records among them (for the chosen-value monitor).
    pending_accepts: Vec<Entry>,
    /// Clients waiting for a command this node proposed: `(client, seq)` → client.
    waiting: BTreeMap<(u64, u64), NodeId>,
    /// Read-index rounds in flight: ctx → (client, seq, key).
    reads: BTreeMap<u64, (NodeId, u64, u64)>,
    next_read: u64,
    /// Commands applied, in order: those its snapshot covers, then those this incarnation applied.
    applied: Vec<(u64, u64)>,
    /// Down (crashed, not yet rebooted) until this step: it neither runs nor receives.
    down_until: u64,
    /// Until this step the pre-votes and Prepares it sends are lost (a targeted scenario).
    muted_until: u64,
    /// Monitor, kept across incarnations: the highest ballot this acceptor sent a Promise for,
    /// and per slot the highest ballot it sent Accepted for. Both must survive every crash.
    sent_promise: Ballot,
    sent_accepted: BTreeMap<Slot, Ballot>,
    /// The state machine's snapshots on this replica's disk, and the newest one's bound.
    snaps: Snapshots,
    snapshot_at: Slot,
    /// When a snapshot was last sent to each peer (rate limit for snapshot hints).
    snapshot_sent: BTreeMap<NodeId, u64>,
}

/// The simulator's snapshot: the key-value machine, then the `(client, seq)` of every command
/// applied so far (so the durability check still sees commands a replica got by snapshot).
fn encode_snapshot(kv: &KvMachine, applied: &[(u64, u64)]) -> Vec<u8> {
    let mut b = Vec::new();
    kv.encode(&mut b);
    b.extend_from_slice(&(applied.len() as u64).to_le_bytes());
    for (c, q) in applied {
        b.extend_from_slice(&c.to_le_bytes());
        b.extend_from_slice(&q.to_le_bytes());
    }
    b
}

fn decode_snapshot(b: &[u8]) -> Option<(KvMachine, Vec<(u64, u64)>)> {
    let (kv, mut at) = KvMachine::decode(b)?;
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            b.get(at..at.checked_add(8)?)?.try_into().ok()?,
        ))
    };
    let n = u64_at(at)?;
    at += 8;
    let mut applied = Vec::new();
    for _ in 0..n {
        applied.push((u64_at(at)?, u64_at(at + 8)?));
        at += 16;
    }
    (at == b.len()).then_some((kv, applied))
}

struct Client {
    id: NodeId,
    seq: u64,
    target: NodeId,
    /// The outstanding operation: index into the history, when to retry, and whether the
    /// retry moves on to the next replica (a timeout) or goes to `target` (a leader hint).
    outstanding: Option<(usize, u64, bool)>,
}

struct HistoryOp {
    client: u64,
    seq: u64,
    op: KvOp,
    invoke: u64,
    done: Option<(u64, KvOutput)>,
}

/// Why a node must restart.
struct FailStop;

fn store_options() -> Options {
    Options {
        prealloc: Prealloc::Inline,
        segment_bytes: 256 << 10,
        ..Options::default()
    }
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    seed: u64,
    rng: Rng,
    net: Network<Wire>,
    ids: Vec<NodeId>,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    history: Vec<HistoryOp>,
    /// Every command a client issued: `(client, seq)` → payload.
    issued: BTreeMap<(u64, u64), Vec<u8>>,
    /// slot → the value first applied there, anywhere.
    agreed: BTreeMap<Slot, Value>,
    stats: SimStats,
    now: u64,
    violation: Option<Violation>,
    boots: u64,
    /// Counts the protocol situations reached ([`Coverage`]).
    track: Tracker,
    /// The targeted scenarios, and the moves they asked for, not yet carried out.
    sched: Scheduler,
    moves: Vec<Move>,
    /// Faults are being injected (the safety phase of a run with faults).
    faults_on: bool,
    elect: ElectionMonitor,
    chosen: ChosenMonitor,
    /// The reference execution of the agreed log ([`Check::StateMachine`]).
    reference: Reference,
}

/// The key-value machine's specification run over the agreed log, with the session rule of
/// [`crate::paxos::Sessions`] written out independently: per client, a command with a higher
/// sequence number than the last one executed runs; the same number is a retry and answers the
/// remembered result without running; a lower one is stale and does nothing.
#[derive(Default)]
struct Reference {
    values: BTreeMap<u64, u64>,
    /// Per client: the last sequence number executed.
    last: BTreeMap<u64, u64>,
    /// Every command's result, from its one execution.
    results: BTreeMap<(u64, u64), KvOutput>,
    /// The values after each slot.
    after: BTreeMap<Slot, BTreeMap<u64, u64>>,
}

impl Reference {
    fn apply(&mut self, slot: Slot, value: &Value) {
        for c in value.commands() {
            if self.last.get(&c.client).is_some_and(|seq| *seq >= c.seq) {
                continue;
            }
            let Some(op) = KvOp::decode(&c.payload) else {
                continue;
            };
            let out = match op.input {
                KvInput::Put(v) => {
                    self.values.insert(op.key, v);
                    KvOutput::Ok
                }
                KvInput::Get => KvOutput::Value(self.values.get(&op.key).copied()),
                KvInput::Cas { expected, new } => {
                    let swapped = self.values.get(&op.key).copied() == expected;
                    if swapped {
                        self.values.insert(op.key, new);
                    }
                    KvOutput::Swapped(swapped)
                }
            };
            self.last.insert(c.client, c.seq);
            self.results.insert((c.client, c.seq), out);
        }
        self.after.insert(slot, self.values.clone());
    }

    /// The answer to `(client, seq)`: its one execution's result (`None` if it never ran).
    fn result(&self, client: u64, seq: u64) -> Option<&KvOutput> {
        self.results.get(&(client, seq))
    }
}

/// Runs one seeded simulation. A panic inside it is reported as a [`Check::Panic`] violation.
pub fn run(seed: u64, cfg: &SimConfig) -> SimReport {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_inner(seed, cfg))) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            SimReport {
                seed,
                stats: SimStats::default(),
                violation: Some(Violation {
                    check: Check::Panic,
                    detail: what,
                }),
            }
        }
    }
}

fn run_inner(seed: u64, cfg: &SimConfig) -> SimReport {
    let mut rng = Rng::new(seed);
    let net = Network::new(
        NetConfig {
            delay_min: 1,
            delay_max: 4,
            loss: if cfg.faults { cfg.rates.loss } else { 0.0 },
            duplicate: if cfg.faults { cfg.rates.duplicate } else { 0.0 },
            slow: if cfg.faults { cfg.rates.slow } else { 0.0 },
            slow_delay_max: cfg.rates.slow_delay_max_steps,
        },
        rng.fork(),
    );
    let ids: Vec<NodeId> = (1..=cfg.replicas).map(NodeId).collect();
    let mut sim = Sim {
        cfg,
        seed,
        rng,
        net,
        ids: ids.clone(),
        nodes: Vec::new(),
        clients: (0..cfg.clients)
            .map(|c| Client {
                id: NodeId(CLIENT_BASE + c),
                seq: 0,
                target: ids[c as usize % ids.len()],
                outstanding: None,
            })
            .collect(),
        history: Vec::new(),
        issued: BTreeMap::new(),
        agreed: BTreeMap::new(),
        stats: SimStats::default(),
        now: 0,
        violation: None,
        boots: 0,
        track: Tracker::new(cfg.replicas as usize),
        sched: Scheduler::new(cfg.rates.targeted.clone(), cfg.replicas as usize),
        moves: Vec::new(),
        faults_on: false,
        elect: ElectionMonitor::new(
            cfg.replicas as usize,
            Config::new(NodeId(1), vec![NodeId(1)], 0).election_timeout_ticks_max,
        ),
        chosen: ChosenMonitor::new(cfg.replicas as usize),
        reference: Reference::default(),
    };
    for &id in &ids {
        let node = sim.boot(id, SimDisk::new());
        sim.nodes.push(node);
    }
    sim.run();
    sim.stats.coverage = sim.track.cov;
    SimReport {
        seed,
        stats: sim.stats,
        violation: sim.violation,
    }
}

impl Sim<'_> {
    fn boot(&mut self, id: NodeId, disk: SimDisk) -> Node {
        let store = AcceptorStore::open_with(Arc::new(disk.clone()), DIR, store_options());
        let store = match store {
            Ok(s) => s,
            // A log that cannot open is a real finding (the WAL refused its own disk).
            Err(e) => panic!(
                "seed {}: replica {id} cannot reopen its acceptor store: {e}",
                self.seed
            ),
        };
        let snaps = match Snapshots::open_with(Arc::new(disk.clone()), SNAP_DIR) {
            Ok(s) => s,
            Err(e) => panic!("seed {}: replica {id}: snapshots: {e}", self.seed),
        };
        // The log may be compacted only below a durable snapshot: one must cover its start.
        let mark = store.state().snapshot;
        let snap = match snaps.load_covering(mark) {
            Ok(s) => s,
            Err(e) => panic!("seed {}: replica {id}: {e}", self.seed),
        };
        let (kv, applied, snapshot_at) = match snap {
            Some(s) => {
                if s.up_to > mark {
                    // A crash between taking the snapshot and compacting: finish compacting.
                    if let Err(e) = store.compact(s.up_to) {
                        panic!("seed {}: replica {id}: compact: {e}", self.seed);
                    }
                }
                match decode_snapshot(&s.data) {
                    Some((kv, applied)) => (kv, applied, s.up_to),
                    None => panic!("seed {}: replica {id}: snapshot does not decode", self.seed),
                }
            }
            None => (KvMachine::new(), Vec::new(), Slot(0)),
        };
        let mut kv = kv;
        kv.set_faults(self.cfg.core_bugs);
        let replica = self.new_replica(id, store.state().durable());
        Node {
            id,
            disk,
            store,
            replica,
            kv,
            pending: VecDeque::new(),
            pending_accepts: Vec::new(),
            waiting: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_read: 1,
            applied,
            down_until: 0,
            muted_until: 0,
            sent_promise: Ballot::ZERO,
            sent_accepted: BTreeMap::new(),
            snaps,
            snapshot_at,
            snapshot_sent: BTreeMap::new(),
        }
    }

    /// A replica core started from what `store` holds.
    fn new_replica(&mut self, id: NodeId, durable: DurableState) -> Replica {
        self.boots += 1;
        let mut cfg = Config::new(id, self.ids.clone(), self.seed ^ (self.boots << 32));
        cfg.window_slots_max = 16;
        cfg.batch_commands_max = 4;
        let mut replica = match Replica::new(cfg, durable) {
            Ok(r) => r,
            Err(e) => panic!("seed {}: replica {id}: {e}", self.seed),
        };
        replica.set_faults(self.cfg.core_bugs);
        replica
    }

    /// Lets the coverage tracker and the targeted scenarios look at replica `i` after an
    /// input.
    fn observe(&mut self, i: usize) {
        let all: Vec<&Replica> = self.nodes.iter().map(|n| &n.replica).collect();
        self.track.observe(i, &all);
        let r = all[i];
        let broken = self.elect.observe(i, r, self.now);
        if self.faults_on && r.leader_ballot().is_some() {
            let others = all
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, o)| o.chosen())
                .max()
                .unwrap_or_default();
            if r.chosen() > others {
                let m = self.sched.leader_ahead(self.now, &mut self.rng, i);
                self.moves.extend(m);
            }
        }
        if let Some(d) = broken {
            self.fail(Check::Election, d);
        }
        self.carry_out_moves();
    }

    /// Carries out the moves the targeted scenarios asked for.
    fn carry_out_moves(&mut self) {
        for m in std::mem::take(&mut self.moves) {
            match m {
                Move::CutOff(side) => {
                    let a: Vec<NodeId> = side.iter().map(|&i| self.ids[i]).collect();
                    let b: Vec<NodeId> = (0..self.ids.len())
                        .filter(|i| !side.contains(i))
                        .map(|i| self.ids[i])
                        .collect();
                    self.net.partition(&[a, b]);
                    self.stats.partitions += 1;
                }
                Move::Block(i, others) => {
                    for j in others {
                        self.net.block(self.ids[i], self.ids[j]);
                    }
                    self.stats.partitions += 1;
                }
                Move::HealAndIsolate(i) => {
                    self.net.heal();
                    self.net.isolate(self.ids[i], &self.ids);
                    self.stats.partitions += 1;
                }
                Move::Crash(i, down) => {
                    self.restart(i, false);
                    self.nodes[i].down_until = self.now + down;
                }
                Move::Mute(muted, until) => {
                    for i in muted {
                        self.nodes[i].muted_until = until;
                    }
                }
            }
        }
    }

    /// Replica `i`'s core is about to be replaced (crash or restart): tell the tracker.
    fn core_ends(&mut self, i: usize) {
        let all: Vec<&Replica> = self.nodes.iter().map(|n| &n.replica).collect();
        self.track.crashing(i, &all);
        self.elect.restarted(i);
    }

    /// Takes a snapshot of replica `i`'s state machine and compacts its log below it.
    fn take_snapshot(&mut self, i: usize) -> Result<(), FailStop> {
        let node = &mut self.nodes[i];
        let up_to = node.replica.applied();
        let data = encode_snapshot(&node.kv, &node.applied);
        node.snaps.write(up_to, &data).map_err(|_| FailStop)?;
        node.store.compact(up_to).map_err(|_| FailStop)?;
        node.replica.compact(up_to);
        node.snapshot_at = up_to;
        self.stats.snapshots_taken += 1;
        Ok(())
    }

    /// Replica `i` installs a peer's snapshot: it becomes durable here, the log is compacted
    /// below it, and the core restarts from the store with the snapshot's state machine.
    fn install_snapshot(&mut self, i: usize, up_to: Slot, data: Vec<u8>) -> Result<(), FailStop> {
        let Some((mut kv, applied)) = decode_snapshot(&data) else {
            return Ok(()); // not from a correct peer: ignore it
        };
        kv.set_faults(self.cfg.core_bugs);
        let id = self.nodes[i].id;
        self.track.snapshot_installed(
            up_to,
            self.net.pending_to(id).filter_map(|w| match w {
                Wire::Peer(m) => Some(m),
                _ => None,
            }),
        );
        // The snapshot is made durable and the log compacted below it, then the running
        // core is told (`Replica::install_snapshot`, as the node runtime does): no restart;
        // persists already submitted complete as usual.
        let node = &mut self.nodes[i];
        node.snaps.write(up_to, &data).map_err(|_| FailStop)?;
        node.store.compact(up_to).map_err(|_| FailStop)?;
        node.snapshot_at = node.snapshot_at.max(up_to);
        if !node.replica.install_snapshot(up_to) {
            // Already applied that far, or leading: the log serves it.
            return Ok(());
        }
        node.kv = kv;
        node.applied = applied;
        self.stats.snapshots_installed += 1;
        Ok(())
    }

    /// Replaces replica `i` by a fresh incarnation booted from `image`, down for a while.
    fn reboot(&mut self, i: usize, image: SimDisk) {
        self.stats.crashes += 1;
        let id = self.nodes[i].id;
        let down = self.rng.below(self.cfg.rates.down_steps_max + 1);
        let sent_promise = self.nodes[i].sent_promise;
        let sent_accepted = std::mem::take(&mut self.nodes[i].sent_accepted);
        self.core_ends(i);
        self.nodes[i] = self.boot(id, image);
        self.nodes[i].down_until = self.now + down;
        // What the acceptor replied must be what it recovers (FAULTS 23, 29).
        let st = self.nodes[i].store.state();
        self.track.recovered(i, self.nodes[i].replica.promised());
        if st.promised < sent_promise {
            let detail = format!(
                "replica {id} sent Promise {sent_promise} but recovered promise {} after a crash at step {}",
                st.promised, self.now
            );
            self.fail(Check::Acceptor, detail);
        }
        for (slot, b) in &sent_accepted {
            let kept = st.accepted.get(slot).map(|(kb, _)| *kb);
            if *slot >= st.snapshot && kept.is_none_or(|kb| kb < *b) {
                let detail = format!(
                    "replica {id} sent Accepted for slot {} at {b} but recovered {kept:?} after a crash at step {}",
                    slot.0, self.now
                );
                self.fail(Check::Acceptor, detail);
                break;
            }
        }
        self.nodes[i].sent_promise = sent_promise;
        self.nodes[i].sent_accepted = sent_accepted;
    }

    fn fail(&mut self, check: Check, detail: String) {
        if matches!(check, Check::Acceptor | Check::Election | Check::Chosen)
            && !self.cfg.acceptor_monitor
        {
            return;
        }
        if self.violation.is_none() {
            self.violation = Some(Violation { check, detail });
        }
    }

    fn liveness_from(&self) -> u64 {
        self.cfg.steps * 2 / 3
    }

    fn run(&mut self) {
        let liveness_from = self.liveness_from();
        // Clients stop starting operations a little after the liveness phase begins, so every
        // operation has the rest of the phase to complete.
        let issue_until = liveness_from + (self.cfg.steps - liveness_from) / 4;
        for now in 0..self.cfg.steps {
            self.now = now;
            let faults = self.cfg.faults && now < liveness_from;
            self.faults_on = faults;
            if self.cfg.faults && now == liveness_from {
                self.sched.stop();
                self.moves.clear();
                for n in &mut self.nodes {
                    n.muted_until = 0;
                }
                self.net.heal();
                self.net.config.loss = 0.0;
                self.net.config.duplicate = 0.0;
                self.net.config.slow = 0.0;
            }
            if faults {
                self.inject_faults();
                let m = self.sched.step(now, &mut self.rng);
                self.moves.extend(m);
                self.carry_out_moves();
            }
            self.clients_act(now < issue_until);
            for i in 0..self.nodes.len() {
                if self.nodes[i].down_until > now {
                    continue;
                }
                self.nodes[i].replica.tick();
                if let Err(FailStop) = self.node_act(i, faults) {
                    self.restart(i, false);
                }
                self.observe(i);
            }
            for (from, to, w) in self.net.deliver(now) {
                self.deliver(from, to, w);
            }
            if self.violation.is_some() {
                break;
            }
        }
        self.stats.steps = self.now + 1;
        self.stats.messages_dropped = self.net.stats.dropped;
        self.stats.messages_duplicated = self.net.stats.duplicated;
        self.stats.slots_chosen = self.agreed.len() as u64;
        self.stats.commands_chosen = self
            .agreed
            .values()
            .map(|v| v.commands().len() as u64)
            .sum();
        self.stats.ops_issued = self.history.len() as u64;
        self.stats.ops_completed = self.history.iter().filter(|h| h.done.is_some()).count() as u64;
        if self.violation.is_none() {
            self.final_checks();
        }
    }

    fn inject_faults(&mut self) {
        let n = self.ids.len() as u64;
        let rates = &self.cfg.rates;
        if self.sched.active() {
            // A targeted scenario holds the network as it arranged it.
        } else if self.rng.chance(rates.isolate) {
            let a = self.ids[self.rng.below(n) as usize];
            self.net.isolate(a, &self.ids);
            self.stats.partitions += 1;
        } else if self.rng.chance(rates.split) {
            // Split into a random minority and the rest.
            let k = 1 + self.rng.below(n / 2) as usize;
            let mut ids = self.ids.clone();
            for i in (1..ids.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                ids.swap(i, j);
            }
            let (a, b) = ids.split_at(k);
            self.net.partition(&[a.to_vec(), b.to_vec()]);
            self.stats.partitions += 1;
        } else if self.rng.chance(rates.heal) {
            self.net.heal();
        }
        if self.rng.chance(rates.crash) {
            let i = self.rng.below(n) as usize;
            let torn = self.rng.chance(0.5);
            self.restart(i, torn);
        }
        if self.rng.chance(rates.fsync_error) {
            // The next fdatasync of a random replica fails.
            let i = self.rng.below(n) as usize;
            self.nodes[i].disk.set_faults(simdisk::Faults {
                fail_sync_at: Some(0),
                ..simdisk::Faults::default()
            });
            self.stats.fsync_errors += 1;
        }
    }

    /// Crash-restarts replica `i`. Unsynced writes survive at random; with `torn`, the machine
    /// first stops in the middle of a group commit and the last write is torn.
    fn restart(&mut self, i: usize, torn: bool) {
        let disk = self.nodes[i].disk.clone();
        if torn {
            if let Some((_, last)) = self.nodes[i].pending.back().copied() {
                disk.set_faults(simdisk::Faults {
                    stop_after_ops: Some(self.rng.below(3)),
                    ..simdisk::Faults::default()
                });
                let _ = self.nodes[i].store.wait_durable(&last);
            }
        }
        let writes = disk.pending_writes();
        let keep: Vec<bool> = (0..writes).map(|_| self.rng.chance(0.5)).collect();
        let tear = if torn && writes > 0 {
            let w = writes - 1;
            let len = disk.pending_write_lens()[w].max(1) as u64;
            let at = self.rng.below(len) as usize;
            let fill = if self.rng.chance(0.5) {
                TearFill::Old
            } else {
                TearFill::Garbage(self.rng.next_u64())
            };
            self.stats.torn_crashes += 1;
            Some((w, at, fill))
        } else {
            None
        };
        let ns = disk.pending_namespace_ops() as u64;
        let image = disk.crash(&CrashSpec {
            keep,
            tear,
            namespace_ops_kept: self.rng.below(ns + 1) as usize,
        });
        self.reboot(i, image);
    }

    fn clients_act(&mut self, may_issue: bool) {
        for c in 0..self.clients.len() {
            match self.clients[c].outstanding {
                Some((h, retry_at, move_on)) if retry_at <= self.now => {
                    // No answer in time: try the next replica with the same (client, seq).
                    if move_on {
                        let next = self.next_replica(self.clients[c].target);
                        self.clients[c].target = next;
                    }
                    self.send_request(c, h);
                }
                Some(_) => {}
                None if may_issue && self.rng.chance(0.3) => {
                    let key = self.rng.below(self.cfg.keys);
                    let input = match self.rng.below(3) {
                        0 => KvInput::Get,
                        1 => KvInput::Put(self.rng.below(1000)),
                        _ => KvInput::Cas {
                            expected: if self.rng.chance(0.2) {
                                None
                            } else {
                                Some(self.rng.below(1000))
                            },
                            new: self.rng.below(1000),
                        },
                    };
                    let cl = &mut self.clients[c];
                    cl.seq += 1;
                    let op = KvOp { key, input };
                    let client = u64::from(cl.id.0);
                    self.issued.insert((client, cl.seq), op.encode());
                    self.history.push(HistoryOp {
                        client,
                        seq: cl.seq,
                        op,
                        invoke: self.now,
                        done: None,
                    });
                    let h = self.history.len() - 1;
                    self.send_request(c, h);
                }
                None => {}
            }
        }
    }

    fn next_replica(&self, after: NodeId) -> NodeId {
        let i = self.ids.iter().position(|&x| x == after).unwrap_or(0);
        self.ids[(i + 1) % self.ids.len()]
    }

    fn send_request(&mut self, c: usize, h: usize) {
        let cl = &mut self.clients[c];
        cl.outstanding = Some((h, self.now + 40, true));
        let (from, to) = (cl.id, cl.target);
        let w = Wire::Request {
            seq: self.history[h].seq,
            op: self.history[h].op.clone(),
        };
        self.net.send(self.now, from, to, w);
    }

    fn reply(&mut self, from: NodeId, to: NodeId, seq: u64, result: Reply) {
        self.net
            .send(self.now, from, to, Wire::Reply { seq, result });
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, w: Wire) {
        if self
            .index(to)
            .is_some_and(|i| self.nodes[i].down_until > self.now)
        {
            return; // a crashed machine receives nothing
        }
        match w {
            Wire::Peer(m) => {
                if let Some(i) = self.index(to) {
                    let accept = match m.body {
                        Body::Accept { ballot, first, .. } => Some((ballot, first)),
                        _ => None,
                    };
                    self.track.before_step(i, &self.nodes[i].replica, &m);
                    self.elect.delivered(i, &m, self.now);
                    let r = &mut self.nodes[i].replica;
                    let promised = r.promised();
                    let held = accept.and_then(|(_, s)| r.accepted(s).map(|(b, _)| b));
                    r.step(m);
                    // Paxos Made Simple §2.2: never accept below the promise.
                    if let Some((ballot, first)) = accept {
                        let now_held = r.accepted(first).map(|(b, _)| b);
                        if ballot < promised && now_held == Some(ballot) && held != Some(ballot) {
                            let detail = format!(
                                "replica {to} accepted slot {} at {ballot} below its promise {promised}",
                                first.0
                            );
                            self.fail(Check::Acceptor, detail);
                        }
                    }
                    self.observe(i);
                }
            }
            Wire::Request { seq, op } => {
                if let Some(i) = self.index(to) {
                    self.request(i, from, seq, op);
                    self.carry_out_moves();
                }
            }
            Wire::Snapshot { up_to, data } => {
                if let Some(i) = self.index(to) {
                    if up_to > self.nodes[i].replica.applied()
                        && self.install_snapshot(i, up_to, data).is_err()
                    {
                        self.restart(i, false);
                    }
                }
            }
            Wire::Reply { seq, result } => {
                let Some(c) = self.clients.iter().position(|c| c.id == to) else {
                    return;
                };
                let Some((h, _, _)) = self.clients[c].outstanding else {
                    return;
                };
                if self.history[h].seq != seq {
                    return; // a late answer to an earlier operation
                }
                match result {
                    Reply::Done(out) => {
                        self.history[h].done = Some((self.now, out));
                        self.clients[c].outstanding = None;
                    }
                    Reply::NotLeader(hint) => {
                        let next = hint
                            .filter(|&l| l != from)
                            .unwrap_or_else(|| self.next_replica(from));
                        self.clients[c].target = next;
                        // Retry soon, not at once: an election may be under way.
                        self.clients[c].outstanding = Some((h, self.now + 3, false));
                    }
                }
            }
        }
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn request(&mut self, i: usize, client: NodeId, seq: u64, op: KvOp) {
        let node_id = self.nodes[i].id;
        if op.input == KvInput::Get {
            if self.cfg.node_bugs.local_reads {
                let v = self.nodes[i].kv.get(op.key);
                self.reply(node_id, client, seq, Reply::Done(KvOutput::Value(v)));
                return;
            }
            let node = &mut self.nodes[i];
            let ctx = node.next_read;
            node.next_read += 1;
            match node.replica.read_index(ctx) {
                Ok(()) => {
                    node.reads.insert(ctx, (client, seq, op.key));
                    let ballot = node.replica.leader_ballot().unwrap_or_default();
                    let all: Vec<&Replica> = self.nodes.iter().map(|n| &n.replica).collect();
                    self.track.read_started(i, ctx, ballot, &all);
                    if self.faults_on {
                        let m = self.sched.read_started(self.now, i);
                        self.moves.extend(m);
                    }
                }
                Err(e) => self.reply(node_id, client, seq, Reply::NotLeader(e.leader)),
            }
            return;
        }
        let command = Command {
            client: u64::from(client.0),
            seq,
            payload: op.encode(),
        };
        let node = &mut self.nodes[i];
        match node.replica.propose(command) {
            Ok(()) => {
                if self.cfg.node_bugs.ack_before_chosen {
                    let out = match op.input {
                        KvInput::Cas { .. } => KvOutput::Swapped(true),
                        _ => KvOutput::Ok,
                    };
                    self.reply(node_id, client, seq, Reply::Done(out));
                } else {
                    node.waiting.insert((u64::from(client.0), seq), client);
                }
            }
            Err(e) => self.reply(node_id, client, seq, Reply::NotLeader(e.leader)),
        }
    }

    /// Completes persists now and then, and carries out the replica's actions.
    fn node_act(&mut self, i: usize, faults: bool) -> Result<(), FailStop> {
        let every = self.cfg.compact_every_slots;
        let node = &self.nodes[i];
        if every > 0
            && node.replica.applied().0 >= node.snapshot_at.0 + every
            && self.rng.chance(0.2)
        {
            self.take_snapshot(i)?;
        }
        // Now and then one group commit makes everything submitted so far durable at once.
        let stuck = self.cfg.node_bugs.lose_completions;
        if !stuck && !self.nodes[i].pending.is_empty() && self.rng.chance(0.5) {
            let node = &mut self.nodes[i];
            if let Some(&(token, last)) = node.pending.back() {
                node.store.wait_durable(&last).map_err(|_| FailStop)?;
                node.pending.clear();
                node.replica.persisted(token);
                for e in std::mem::take(&mut node.pending_accepts) {
                    if let Some(d) = self.chosen.accepted(i, &e) {
                        self.fail(Check::Chosen, format!("replica {}: {d}", self.ids[i]));
                    }
                }
            }
        }
        let mut crash_after = false;
        // Persists and Applies carried out are given back to the core in bulk (`recycle`), as
        // a runtime may, so the simulation exercises that path too.
        let mut done = Vec::new();
        for a in self.nodes[i].replica.take_actions() {
            match a {
                Action::Persist { mut records, token } => {
                    if self.cfg.node_bugs.mangle_persisted_values && i == 0 {
                        mangle(&mut records);
                    }
                    self.track.persisted(i, &records);
                    for r in &records {
                        if let StoreRecord::Accept(e) = r {
                            if let Some(d) = self.chosen.proposed(e) {
                                self.fail(Check::Chosen, format!("replica {}: {d}", self.ids[i]));
                            }
                            self.nodes[i].pending_accepts.push(e.clone());
                        }
                    }
                    let node = &mut self.nodes[i];
                    let t = node.store.submit(&records).map_err(|_| FailStop)?;
                    node.pending.push_back((token, t));
                    done.push(Action::Persist { records, token });
                }
                Action::Send(m) => {
                    if let Some(d) = self.elect.sent(i, &m) {
                        self.fail(Check::Election, d);
                    }
                    match &m.body {
                        Body::Prepare { ballot, from } => {
                            self.track
                                .prepare_sent(i, &self.nodes[i].replica, *ballot, *from);
                        }
                        Body::Accept {
                            ballot,
                            first,
                            values,
                            ..
                        } if faults && self.nodes[i].replica.leader_ballot() == Some(*ballot) => {
                            let end = Slot(first.0 + values.len() as u64);
                            let mv = self.sched.accept_sent(
                                self.now,
                                &mut self.rng,
                                i,
                                *ballot,
                                (*first, end),
                            );
                            self.moves.extend(mv);
                        }
                        _ => {}
                    }
                    let node = &mut self.nodes[i];
                    match m.body {
                        Body::Promise { ballot, .. } => {
                            node.sent_promise = node.sent_promise.max(ballot);
                        }
                        Body::Accepted {
                            ballot, first, end, ..
                        } => {
                            for s in first.0..end.0 {
                                let e = node.sent_accepted.entry(Slot(s)).or_insert(ballot);
                                *e = (*e).max(ballot);
                            }
                        }
                        _ => {}
                    }
                    // Adversarial timing: sometimes an acceptor crashes right after it replied
                    // to a prepare (catches a promise sent before it was durable).
                    if faults
                        && matches!(m.body, Body::Promise { .. })
                        && self.rng.chance(self.cfg.rates.crash_after_promise)
                    {
                        crash_after = true;
                    }
                    let campaign = matches!(m.body, Body::PreVote { .. } | Body::Prepare { .. });
                    if campaign && self.nodes[i].muted_until > self.now {
                        continue;
                    }
                    self.net.send(self.now, m.from, m.to, Wire::Peer(m));
                }
                Action::Apply { slot, value } => {
                    self.apply(i, slot, &value);
                    done.push(Action::Apply { slot, value });
                }
                Action::ReadReady { ctx } => {
                    self.track.read_done(i, ctx);
                    let node = &mut self.nodes[i];
                    if let Some((client, seq, key)) = node.reads.remove(&ctx) {
                        let v = node.kv.get(key);
                        let id = node.id;
                        self.reply(id, client, seq, Reply::Done(KvOutput::Value(v)));
                    }
                }
                Action::ReadAborted { ctx, leader } => {
                    self.track.read_done(i, ctx);
                    let node = &mut self.nodes[i];
                    if let Some((client, seq, _)) = node.reads.remove(&ctx) {
                        let id = node.id;
                        self.reply(id, client, seq, Reply::NotLeader(leader));
                    }
                }
                Action::SnapshotHint { to, below } => {
                    // A peer needs slots we compacted away: send our newest snapshot (at most
                    // every 20 steps per peer).
                    let now = self.now;
                    let node = &mut self.nodes[i];
                    let last = node.snapshot_sent.get(&to).copied();
                    if last.is_none_or(|t| t + 20 <= now) {
                        if let Ok(Some(snap)) = node.snaps.latest() {
                            if snap.up_to >= below {
                                node.snapshot_sent.insert(to, now);
                                let w = Wire::Snapshot {
                                    up_to: snap.up_to,
                                    data: snap.data,
                                };
                                let from = node.id;
                                self.net.send(now, from, to, w);
                            }
                        }
                    }
                }
            }
        }
        self.nodes[i].replica.recycle(&mut done);
        if crash_after {
            // Nothing unsynced reaches the disk: only what was durable survives.
            let disk = self.nodes[i].disk.clone();
            let image = disk.crash(&CrashSpec {
                keep: vec![false; disk.pending_writes()],
                tear: None,
                namespace_ops_kept: disk.pending_namespace_ops(),
            });
            self.reboot(i, image);
        }
        Ok(())
    }

    fn apply(&mut self, i: usize, slot: Slot, value: &Value) {
        let id = self.nodes[i].id;
        match self.agreed.get(&slot) {
            Some(prev) if prev != value => {
                let detail = format!(
                    "slot {} applied as {:?} and, by replica {id} at step {}, as {:?}",
                    slot.0,
                    summary(prev),
                    self.now,
                    summary(value)
                );
                self.fail(Check::Agreement, detail);
                return;
            }
            Some(_) => {}
            None => {
                self.agreed.insert(slot, value.clone());
                self.track.chosen(slot, value);
                self.reference.apply(slot, value);
            }
        }
        if let Some(d) = self.chosen.applied(slot, value) {
            self.fail(
                Check::Chosen,
                format!("replica {id} at step {}: {d}", self.now),
            );
        }
        for c in value.commands() {
            if self.issued.get(&(c.client, c.seq)) != Some(&c.payload) {
                let detail = format!(
                    "replica {id} applied command (client {}, seq {}) that no client issued",
                    c.client, c.seq
                );
                self.fail(Check::Validity, detail);
                return;
            }
            let node = &mut self.nodes[i];
            let out = node.kv.apply(c);
            node.applied.push((c.client, c.seq));
            let want = self.reference.result(c.client, c.seq);
            if out.is_some() && out.as_ref() != want {
                let detail = format!(
                    "replica {id} answered (client {}, seq {}) at slot {} with {out:?}; its first execution gave {want:?}",
                    c.client, c.seq, slot.0
                );
                self.fail(Check::StateMachine, detail);
                return;
            }
            if let (Some(out), Some(client)) = (out, node.waiting.remove(&(c.client, c.seq))) {
                self.reply(id, client, c.seq, Reply::Done(out));
            }
        }
        if self.reference.after.get(&slot) != Some(self.nodes[i].kv.values()) {
            let detail = format!(
                "replica {id}'s state after slot {} is not the reference execution's (a command ran twice?)",
                slot.0
            );
            self.fail(Check::StateMachine, detail);
        }
    }

    fn final_checks(&mut self) {
        if std::env::var_os("PAXWAL_SIM_DEBUG").is_some() {
            for n in &self.nodes {
                eprintln!(
                    "replica {}: {:?} leader {:?} promised {} chosen {} applied {}",
                    n.id,
                    n.replica.role(),
                    n.replica.leader(),
                    n.replica.promised(),
                    n.replica.chosen().0,
                    n.replica.applied().0
                );
            }
            for h in &self.history {
                eprintln!(
                    "client {} seq {} {:?} invoked {} done {:?}",
                    h.client, h.seq, h.op, h.invoke, h.done
                );
            }
        }
        // Durability: every acknowledged write is applied by every replica at the end.
        for h in &self.history {
            if h.op.input == KvInput::Get || h.done.is_none() {
                continue;
            }
            for n in &self.nodes {
                if !n.applied.contains(&(h.client, h.seq)) {
                    let detail = format!(
                        "write (client {}, seq {}) acknowledged at step {} is not applied on replica {}",
                        h.client,
                        h.seq,
                        h.done.as_ref().map_or(0, |d| d.0),
                        n.id
                    );
                    self.fail(Check::Durability, detail);
                    return;
                }
            }
        }
        // Linearizability, per key.
        let mut by_key: BTreeMap<u64, Vec<Operation<KvInput, KvOutput>>> = BTreeMap::new();
        for h in &self.history {
            by_key.entry(h.op.key).or_default().push(Operation {
                invoke: h.invoke,
                done: h.done.clone(),
                input: h.op.input.clone(),
            });
        }
        for (key, ops) in &by_key {
            match check(&KvRegister, ops, 200_000) {
                Verdict::Linearizable => {}
                Verdict::Unknown => self.stats.linearizability_unknown += 1,
                Verdict::Violation => {
                    let detail = format!(
                        "key {key}: no linearization of its {} operations",
                        ops.len()
                    );
                    self.fail(Check::Linearizability, detail);
                    return;
                }
            }
        }
        // Liveness: every operation completed, every replica applied every chosen slot.
        if let Some(h) = self.history.iter().find(|h| h.done.is_none()) {
            let detail = format!(
                "operation (client {}, seq {}) invoked at step {} never completed ({} steps of liveness phase)",
                h.client,
                h.seq,
                h.invoke,
                self.cfg.steps - self.liveness_from()
            );
            self.fail(Check::Liveness, detail);
            return;
        }
        let last = self.agreed.keys().next_back().copied();
        for n in &self.nodes {
            if let Some(last) = last {
                if n.replica.applied() <= last {
                    let detail = format!(
                        "replica {} applied below slot {} only; {} slots are chosen",
                        n.id,
                        n.replica.applied().0,
                        last.0 + 1
                    );
                    self.fail(Check::Liveness, detail);
                    return;
                }
            }
        }
    }
}

/// Planted bug: flip a byte in every command payload of the Accept records.
fn mangle(records: &mut [crate::paxos::StoreRecord]) {
    for r in records {
        if let crate::paxos::StoreRecord::Accept(e) = r {
            let cmds: Vec<Command> = e
                .value
                .commands()
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    if let Some(b) = c.payload.last_mut() {
                        *b ^= 0x5a;
                    }
                    c
                })
                .collect();
            e.value = Value::new(cmds);
        }
    }
}

/// `(client, seq, crc32 of the payload)` of each command.
fn summary(v: &Value) -> Vec<(u64, u64, u32)> {
    v.commands()
        .iter()
        .map(|c| (c.client, c.seq, crc32fast::hash(&c.payload)))
        .collect()
}

/// Runs `seeds` on up to `threads` threads; calls `progress` after each run (from the worker
/// thread). Returns every report, in seed order.
pub fn run_many(
    seeds: &[u64],
    cfg: &SimConfig,
    threads: usize,
    progress: &(dyn Fn(&SimReport) + Sync),
) -> Vec<SimReport> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = parking_lot::Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(k) else {
                    return;
                };
                let r = run(seed, cfg);
                progress(&r);
                out.lock().push(r);
            });
        }
    });
    let mut v = out.into_inner();
    v.sort_by_key(|r| r.seed);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_replays_exactly_from_its_seed() {
        let cfg = SimConfig {
            steps: 300,
            ..SimConfig::default()
        };
        let a = run(7, &cfg);
        let b = run(7, &cfg);
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.violation, b.violation);
        assert!(a.stats.commands_chosen > 0);
    }

    #[test]
    fn without_faults_every_operation_completes() {
        let cfg = SimConfig {
            faults: false,
            steps: 300,
            ..SimConfig::default()
        };
        let r = run(1, &cfg);
        assert_eq!(r.violation, None);
        assert_eq!(r.stats.crashes, 0);
        assert!(r.stats.ops_completed > 30, "{:?}", r.stats);
        assert_eq!(r.stats.ops_completed, r.stats.ops_issued);
    }
}

//! Exhaustive model checking of the real Multi-Paxos core with stateright.
//!
//! The model's state holds three real [`Replica`]s (the core is sans-IO, so it is driven here
//! exactly as a runtime drives it), each with its acceptor store modelled as the list of
//! records made durable, replayed on a crash into a `DurableState` through the store's own
//! [`AcceptorState::apply`]; persists complete one at a time as model steps, and a crash keeps
//! only what completed. The network is a set of messages, each deliverable any number of times
//! in any order: that is loss (never delivered), duplication and reordering at once (a set
//! because nothing checked here looks at the network). Two clients each issue one
//! compare-and-set (and may retry it once, with the same `(client, seq)`) against the node's
//! key-value machine with its session table; every replica that applies a command answers the
//! client, and a client takes the first answer it receives.
//!
//! Steps: deliver a message; a timeout (ticks one replica until it acts: an election, or a
//! leader's heartbeat); complete a persist; crash and restart a replica; a client sends (or
//! resends) its command to a replica. Bounds: a budget of timeouts (so of leader changes),
//! crashes and retries.
//!
//! Properties: agreement (one value per slot, across replicas and incarnations), validity
//! (only issued commands are applied), the chosen-value monitor of the simulator
//! (`paxwal::sim::chosen`: P2b on the acceptors' durable votes, one value per ballot, a value
//! applied only once a majority durably accepted it), the acceptor monitor (a restarted
//! acceptor recovers every Promise and Accepted it sent; nothing is accepted below a promise),
//! the election monitor of the simulator (pre-vote before Phase 1; check-quorum), and
//! linearizability of the clients' answers with stateright's `LinearizabilityTester`. The same
//! tester is checked against the simulator's WGL checker on generated histories, linearizable
//! and not.
//!
//! The real core is checked breadth first from the initial state (`MODEL_CHECK_DEPTH=N`
//! deepens the bound, `MODEL_CHECK_LONG=1` runs a longer check).
//!
//! Every planted bug of [`Faults`] is hunted, each in a *scenario*: a short scripted prefix of
//! the model's own steps, each applied from the initial state through `next_state` (so the
//! search starts from a state the model reaches, and the prefix itself must break no rule),
//! then a breadth-first search from its end, bounded in steps, timeouts and crashes, with an
//! iteratively growing bound so the steps found after the prefix are as few as can be; the
//! counterexample printed is the prefix, then those steps. A scenario may also let the network lose messages in flight: they stay in
//! the state's network, the search just never delivers them, so every path it explores is a
//! path of the model. Bug conditions depend on parity (slot, ballot round, sequence number),
//! and the scenarios are picked to meet them: e.g. (e) acts at slots not divisible by 3, so
//! its scenario has the stale and the chosen values at slots 0 and 1; (i) acts at even rounds,
//! so its leader leads at round 2. Each scenario is also searched with the same bound on the
//! real core, which must break nothing there (otherwise the scenario itself would be the
//! violation); the states explored are reported.
#![cfg(feature = "sim")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::Instant;

use paxwal::node::kv::{KvMachine, KvOp, KvOutput};
use paxwal::paxos::codec::{decode_message, encode_message};
use paxwal::paxos::{
    Action, Body, Command, Config, Faults, Message, PersistToken, Replica, StoreRecord, Value,
};
use paxwal::sim::chosen::ChosenMonitor;
use paxwal::sim::linearizability::{check, Model as WglModel, Operation, Verdict};
use paxwal::sim::monitor::ElectionMonitor;
use paxwal::store::AcceptorState;
use paxwal::types::{Ballot, NodeId, Slot};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stateright::{Checker, Model, Property};

// ----- the sequential specification: one register with compare-and-set ------------------------

/// A compare-and-set on the register: set `new` if it holds `expected` (`None`: empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Cas {
    expected: Option<u8>,
    new: u8,
}

/// The register (stateright's side of the specification).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Register(Option<u8>);

impl SequentialSpec for Register {
    type Op = Cas;
    type Ret = bool;
    fn invoke(&mut self, op: &Cas) -> bool {
        let swapped = self.0 == op.expected;
        if swapped {
            self.0 = Some(op.new);
        }
        swapped
    }
}

/// The same register for the simulator's WGL checker.
struct WglRegister;

impl WglModel for WglRegister {
    type State = Option<u8>;
    type Input = Cas;
    type Output = bool;
    fn init(&self) -> Option<u8> {
        None
    }
    fn step(&self, s: &Option<u8>, op: &Cas) -> (Option<u8>, bool) {
        let mut r = Register(*s);
        let out = r.invoke(op);
        (r.0, out)
    }
}

// ----- the model ------------------------------------------------------------------------------

const KEY: &[u8] = b"k";

/// The clients' operations: client 0 sets the empty register to 1, client 1 moves 1 to 2.
const OPS: [Cas; 2] = [
    Cas {
        expected: None,
        new: 1,
    },
    Cas {
        expected: Some(1),
        new: 2,
    },
];

fn command(client: usize) -> Command {
    let op = OPS[client];
    Command {
        client: client as u64 + 1,
        seq: 1,
        payload: KvOp::Cas {
            key: KEY.to_vec(),
            expected: op.expected.map(|v| vec![v]),
            new: vec![op.new],
        }
        .encode(),
    }
}

#[derive(Clone)]
struct Bounds {
    replicas: usize,
    timeouts: u8,
    crashes: u8,
    retries: u8,
    /// Deliveries that leave the message in the network (duplicates).
    duplicates: u8,
    /// The replicas (a bit per index) whose timeouts, and whose crashes, are explored: a
    /// scenario may look only at some (every path explored is still a path of the model).
    timeout_of: u8,
    crash_of: u8,
    faults: Faults,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Msg {
    /// A peer message, in its wire encoding (`paxwal::paxos::codec`).
    Peer(Vec<u8>),
    /// A replica's answer to a client.
    Reply { client: usize, swapped: bool },
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum To {
    Replica(usize),
    Client(usize),
}

/// The node's key-value machine, hashed by its snapshot bytes (it has no `Hash` of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Kv(KvMachine);

impl std::hash::Hash for Kv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut b = Vec::new();
        self.0.encode(&mut b);
        b.hash(state);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Node {
    replica: Replica,
    /// The acceptor store: every record made durable, in order.
    durable: Vec<StoreRecord>,
    /// Persists emitted, not yet durable.
    pending: VecDeque<(PersistToken, Vec<StoreRecord>)>,
    kv: Kv,
    /// Ticks of this replica (the election monitor's clock).
    ticks: u64,
    /// Acceptor monitor: the highest Promise and, per slot, Accepted ballot sent.
    sent_promise: Ballot,
    sent_accepted: BTreeMap<Slot, Ballot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    nodes: Vec<Node>,
    net: BTreeSet<(To, Msg)>,
    /// Per client: how many times it sent its command, and whether it got its answer.
    sends: Vec<u8>,
    answered: Vec<bool>,
    history: LinearizabilityTester<usize, Register>,
    /// The value first applied at each slot, anywhere.
    chosen: BTreeMap<Slot, Value>,
    /// The chosen-value monitor of the simulator (P2b on durable votes, one value per
    /// ballot, applied values chosen first).
    votes: ChosenMonitor,
    elect: ElectionMonitor,
    timeouts: u8,
    crashes: u8,
    duplicates: u8,
    /// The first rule a step broke (agreement, validity, chosen value, acceptor, election).
    broken: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Deliver(To, Msg),
    /// Deliver and keep a copy in the network (a duplicate).
    DeliverCopy(To, Msg),
    Timeout(usize),
    Persist(usize),
    Crash(usize),
    Send {
        client: usize,
        to: usize,
    },
}

struct PaxosModel {
    b: Bounds,
    /// Where the search starts: the end state of a scenario's scripted prefix (`None`: the
    /// initial state).
    start: Option<State>,
    /// Messages the network lost in the prefix: still in the state's network (the start state
    /// is reached by the model's own steps), never delivered by the search.
    lost: BTreeSet<(To, Msg)>,
}

fn ids(n: usize) -> Vec<NodeId> {
    (1..=n as u32).map(NodeId).collect()
}

impl PaxosModel {
    fn config(&self, i: usize) -> Config {
        let mut cfg = Config::new(NodeId(i as u32 + 1), ids(self.b.replicas), i as u64 + 1);
        // Fixed, short timers: the model explores every interleaving of them anyway.
        cfg.election_timeout_ticks_min = 2;
        cfg.election_timeout_ticks_max = 2;
        cfg.heartbeat_ticks = 1;
        cfg
    }

    fn boot(&self, i: usize, durable: Vec<StoreRecord>) -> Node {
        let mut st = AcceptorState::default();
        for r in &durable {
            st.apply(r);
        }
        let mut replica = Replica::new(self.config(i), st.durable()).expect("valid config");
        replica.set_faults(self.b.faults);
        let mut kv = KvMachine::new();
        kv.set_faults(self.b.faults);
        Node {
            replica,
            durable,
            pending: VecDeque::new(),
            kv: Kv(kv),
            ticks: 0,
            sent_promise: Ballot::ZERO,
            sent_accepted: BTreeMap::new(),
        }
    }

    /// The initial state: every replica new and empty, nothing sent.
    fn initial(&self) -> State {
        let n = self.b.replicas;
        State {
            nodes: (0..n).map(|i| self.boot(i, Vec::new())).collect(),
            net: BTreeSet::new(),
            sends: vec![0; OPS.len()],
            answered: vec![false; OPS.len()],
            history: LinearizabilityTester::new(Register::default()),
            chosen: BTreeMap::new(),
            votes: ChosenMonitor::new(n),
            elect: ElectionMonitor::new(n, self.config(0).election_timeout_ticks_max),
            timeouts: 0,
            crashes: 0,
            duplicates: 0,
            broken: None,
        }
    }

    /// Carries out replica `i`'s actions.
    fn pump(&self, s: &mut State, i: usize) {
        let actions = s.nodes[i].replica.take_actions();
        for a in actions {
            match a {
                Action::Persist { records, token } => {
                    for r in &records {
                        if let StoreRecord::Accept(e) = r {
                            if let Some(d) = s.votes.proposed(e) {
                                s.fail(format!("chosen value: replica {}: {d}", i + 1));
                            }
                        }
                    }
                    s.nodes[i].pending.push_back((token, records));
                }
                Action::Send(m) => {
                    if let Some(d) = s.elect.sent(i, &m) {
                        s.fail(d);
                    }
                    let n = &mut s.nodes[i];
                    match &m.body {
                        Body::Promise { ballot, .. } => {
                            n.sent_promise = n.sent_promise.max(*ballot)
                        }
                        Body::Accepted { ballot, first, end } => {
                            for slot in first.0..end.0 {
                                let e = n.sent_accepted.entry(Slot(slot)).or_insert(*ballot);
                                *e = (*e).max(*ballot);
                            }
                        }
                        _ => {}
                    }
                    let to = (m.to.0 - 1) as usize;
                    let mut bytes = Vec::new();
                    encode_message(&m, &mut bytes);
                    s.net.insert((To::Replica(to), Msg::Peer(bytes)));
                }
                Action::Apply { slot, value } => {
                    if let Some(d) = s.votes.applied(slot, &value) {
                        s.fail(format!("chosen value: replica {}: {d}", i + 1));
                    }
                    match s.chosen.get(&slot) {
                        Some(v) if *v != value => {
                            s.fail(format!("agreement: slot {} applied as two values", slot.0))
                        }
                        Some(_) => {}
                        None => {
                            s.chosen.insert(slot, value.clone());
                        }
                    }
                    for c in value.commands() {
                        let client = c.client.wrapping_sub(1) as usize;
                        if client >= OPS.len() || *c != command(client) {
                            s.fail(format!("validity: applied an unissued command {c:?}"));
                            continue;
                        }
                        if let Some(KvOutput::Swapped(swapped)) = s.nodes[i].kv.0.apply_op(c) {
                            s.net
                                .insert((To::Client(client), Msg::Reply { client, swapped }));
                        }
                    }
                }
                _ => {}
            }
        }
        let (r, now) = (&s.nodes[i].replica, s.nodes[i].ticks);
        if let Some(d) = s.elect.observe(i, r, now) {
            s.fail(d);
        }
    }
}

impl State {
    fn fail(&mut self, why: String) {
        if self.broken.is_none() {
            self.broken = Some(why);
        }
    }
}

impl Model for PaxosModel {
    type State = State;
    type Action = Step;

    fn init_states(&self) -> Vec<State> {
        vec![self.start.clone().unwrap_or_else(|| self.initial())]
    }

    fn actions(&self, s: &State, out: &mut Vec<Step>) {
        if s.broken.is_some() {
            return; // a counterexample ends here
        }
        for (to, m) in &s.net {
            if !self.lost.is_empty() && self.lost.contains(&(*to, m.clone())) {
                continue;
            }
            out.push(Step::Deliver(*to, m.clone()));
            if s.duplicates < self.b.duplicates && matches!(to, To::Replica(_)) {
                out.push(Step::DeliverCopy(*to, m.clone()));
            }
        }
        for i in 0..self.b.replicas {
            if !s.nodes[i].pending.is_empty() {
                out.push(Step::Persist(i));
            }
            if s.timeouts < self.b.timeouts && self.b.timeout_of & (1 << i) != 0 {
                out.push(Step::Timeout(i));
            }
            if s.crashes < self.b.crashes && self.b.crash_of & (1 << i) != 0 {
                out.push(Step::Crash(i));
            }
        }
        for client in 0..OPS.len() {
            if !s.answered[client] && s.sends[client] <= self.b.retries {
                for to in 0..self.b.replicas {
                    if s.nodes[to].replica.leader_ballot().is_some() {
                        out.push(Step::Send { client, to });
                    }
                }
            }
        }
    }

    fn next_state(&self, last: &State, step: Step) -> Option<State> {
        let mut s = last.clone();
        let step = match step {
            Step::DeliverCopy(to, m) => {
                s.duplicates += 1;
                Step::Deliver(to, m)
            }
            Step::Deliver(to, m) => {
                s.net.remove(&(to, m.clone()));
                Step::Deliver(to, m)
            }
            other => other,
        };
        match step {
            Step::Deliver(To::Client(c), Msg::Reply { swapped, .. }) => {
                if s.answered[c] {
                    return None;
                }
                s.answered[c] = true;
                let _ = s.history.on_return(c, swapped);
            }
            Step::Deliver(To::Replica(i), Msg::Peer(bytes)) => {
                let m: Message = decode_message(&bytes).ok()?;
                let r = &s.nodes[i].replica;
                let accept = match &m.body {
                    Body::Accept { ballot, first, .. } => Some((*ballot, *first)),
                    _ => None,
                };
                let promised = r.promised();
                let held = accept.and_then(|(_, f)| r.accepted(f).map(|(b, _)| b));
                let now = s.nodes[i].ticks;
                s.elect.delivered(i, &m, now);
                s.nodes[i].replica.step(m);
                if let Some((ballot, first)) = accept {
                    let now_held = s.nodes[i].replica.accepted(first).map(|(b, _)| b);
                    if ballot < promised && now_held == Some(ballot) && held != Some(ballot) {
                        s.fail(format!(
                            "acceptor: accepted {ballot} below its promise {promised}"
                        ));
                    }
                }
                self.pump(&mut s, i);
            }
            Step::Deliver(..) | Step::DeliverCopy(..) => return None,
            Step::Timeout(i) => {
                s.timeouts += 1;
                // Ticks until the replica acts (an election starts, a heartbeat leaves).
                for _ in 0..8 {
                    s.nodes[i].replica.tick();
                    s.nodes[i].ticks += 1;
                    let before = s.net.len();
                    self.pump(&mut s, i);
                    if s.net.len() != before || !s.nodes[i].pending.is_empty() {
                        break;
                    }
                }
            }
            Step::Persist(i) => {
                let (token, records) = s.nodes[i].pending.pop_front()?;
                for r in &records {
                    if let StoreRecord::Accept(e) = r {
                        if let Some(d) = s.votes.accepted(i, e) {
                            s.fail(format!("chosen value: replica {}: {d}", i + 1));
                        }
                    }
                }
                s.nodes[i].durable.extend(records);
                s.nodes[i].replica.persisted(token);
                self.pump(&mut s, i);
            }
            Step::Crash(i) => {
                s.crashes += 1;
                let old = s.nodes[i].clone();
                let node = self.boot(i, old.durable.clone());
                // What the acceptor replied must be what it recovers.
                if node.replica.promised() < old.sent_promise {
                    s.fail(format!(
                        "acceptor: replica {} sent Promise {} but recovered {}",
                        i + 1,
                        old.sent_promise,
                        node.replica.promised()
                    ));
                }
                for (slot, b) in &old.sent_accepted {
                    if node.replica.accepted(*slot).is_none_or(|(kb, _)| kb < *b) {
                        s.fail(format!(
                            "acceptor: replica {} sent Accepted for slot {} at {b} but lost it",
                            i + 1,
                            slot.0
                        ));
                    }
                }
                s.nodes[i] = Node {
                    sent_promise: old.sent_promise,
                    sent_accepted: old.sent_accepted,
                    ..node
                };
                s.elect.restarted(i);
            }
            Step::Send { client, to } => {
                if s.sends[client] == 0 {
                    let _ = s.history.on_invoke(client, OPS[client]);
                }
                s.sends[client] += 1;
                s.nodes[to].replica.propose(command(client)).ok()?;
                self.pump(&mut s, to);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no rule broken", |_, s: &State| s.broken.is_none()),
            Property::always("linearizable", |_, s: &State| s.history.is_consistent()),
            Property::sometimes("both commands answered", |_, s: &State| {
                s.answered.iter().all(|&a| a)
            }),
        ]
    }
}

// ----- running it -----------------------------------------------------------------------------

fn bounds(faults: Faults) -> Bounds {
    Bounds {
        replicas: 3,
        timeouts: 3,
        crashes: 1,
        retries: 1,
        duplicates: 0,
        timeout_of: 0b111,
        crash_of: 0b111,
        faults,
    }
}

struct Outcome {
    states: usize,
    unique: usize,
    depth: usize,
    seconds: f64,
    /// The property broken and the steps (with their descriptions) that break it.
    counterexample: Option<(String, Vec<String>)>,
    answered: bool,
}

/// Explores `model` breadth first; `depth` is stateright's bound (the initial state has depth
/// 1 and states at the bound are not checked, so paths of up to `depth - 2` steps are).
fn explore(model: PaxosModel, depth: usize, stop_at_first: bool) -> Outcome {
    let t = Instant::now();
    let builder = model.checker().target_max_depth(depth);
    let c = if stop_at_first {
        builder
            .finish_when(stateright::HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join()
    } else {
        builder.spawn_bfs().join()
    };
    let mut counterexample = None;
    for name in ["no rule broken", "linearizable"] {
        if let Some(p) = c.discovery(name) {
            let path = p.into_vec();
            let last = &path[path.len() - 1].0;
            let why = match &last.broken {
                Some(b) => b.clone(),
                None => format!("history not linearizable: {:?}", last.history),
            };
            let steps = path
                .iter()
                .filter_map(|(s, a)| a.as_ref().map(|a| describe(s, a)))
                .collect();
            counterexample = Some((format!("{name}: {why}"), steps));
            break;
        }
    }
    Outcome {
        states: c.state_count(),
        unique: c.unique_state_count(),
        depth: c.max_depth(),
        seconds: t.elapsed().as_secs_f64(),
        counterexample,
        answered: c.discovery("both commands answered").is_some(),
    }
}

fn depth() -> usize {
    std::env::var("MODEL_CHECK_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(9)
}

#[test]
fn the_real_core_breaks_no_property_within_the_bound() {
    let long = std::env::var_os("MODEL_CHECK_LONG").is_some();
    let (b, depth) = if long {
        (
            Bounds {
                timeouts: 4,
                ..bounds(Faults::default())
            },
            30,
        )
    } else {
        (
            Bounds {
                duplicates: 1,
                ..bounds(Faults::default())
            },
            depth(),
        )
    };
    let o = explore(
        PaxosModel {
            b: b.clone(),
            start: None,
            lost: BTreeSet::new(),
        },
        depth,
        false,
    );
    eprintln!(
        "model check: {} replicas, {} commands, {} timeouts, {} crash, {} retry, {} duplicate: {} states ({} unique), depth {}, {:.1} s",
        b.replicas,
        OPS.len(),
        b.timeouts,
        b.crashes,
        b.retries,
        b.duplicates,
        o.states,
        o.unique,
        o.depth,
        o.seconds
    );
    if let Some((why, steps)) = o.counterexample {
        panic!(
            "the real core breaks a property: {why}\ntrace:\n  {}",
            steps.join("\n  ")
        );
    }
    // The CI bound is shallow (every interleaving of the first elections, proposals and a
    // crash); whether it reaches both answers is reported, not required.
    eprintln!("both commands answered on some path: {}", o.answered);
    assert!(
        o.unique > 10_000,
        "the bound covers too little: {} states",
        o.unique
    );
}

// ----- traces ---------------------------------------------------------------------------------

/// A value in a trace: `c0` is client 0's compare-and-set (empty to 1), `c1` client 1's (1 to
/// 2); `no-op` the empty batch.
fn value(v: &Value) -> String {
    if v.is_noop() {
        return "no-op".into();
    }
    let cs: Vec<String> = v
        .commands()
        .iter()
        .map(|c| format!("c{}", c.client.wrapping_sub(1)))
        .collect();
    cs.join("+")
}

fn body(b: &Body) -> String {
    match b {
        Body::PreVote { ballot, chosen } => format!("PreVote {ballot} (chosen {chosen})"),
        Body::PreVoteReply {
            ballot,
            granted,
            promised,
        } => format!(
            "PreVoteReply {ballot} {} (promised {promised})",
            if *granted { "granted" } else { "refused" }
        ),
        Body::Prepare { ballot, from } => format!("Prepare {ballot} from slot {from}"),
        Body::Promise {
            ballot, entries, ..
        } => {
            let es: Vec<String> = entries
                .iter()
                .map(|e| format!("slot {} {} at {}", e.slot, value(&e.value), e.ballot))
                .collect();
            format!("Promise {ballot} [{}]", es.join(", "))
        }
        Body::Accept {
            ballot,
            first,
            values,
            commit,
        } => {
            let vs: Vec<String> = values.iter().map(value).collect();
            format!(
                "Accept {ballot} slot {first} [{}] commit {commit}",
                vs.join(", ")
            )
        }
        Body::Accepted { ballot, first, end } => {
            format!("Accepted {ballot} slots {first}..{end}")
        }
        Body::Reject { ballot, promised } => format!("Reject {ballot} (promised {promised})"),
        Body::Heartbeat { ballot, commit, .. } => format!("Heartbeat {ballot} commit {commit}"),
        Body::HeartbeatAck {
            ballot,
            commit,
            chosen,
            ..
        } => format!("HeartbeatAck {ballot} commit {commit} chosen {chosen}"),
    }
}

fn record(r: &StoreRecord) -> String {
    match r {
        StoreRecord::Promise(b) => format!("promise {b}"),
        StoreRecord::Accept(e) => {
            format!("accept slot {} {} at {}", e.slot, value(&e.value), e.ballot)
        }
        StoreRecord::Chosen { up_to } => format!("chosen below {up_to}"),
        StoreRecord::TruncateAfter(s) => format!("truncate after slot {s}"),
        other => format!("{other:?}"),
    }
}

/// One step of a trace, taken from state `s`, in words.
fn describe(s: &State, step: &Step) -> String {
    let deliver = |to: &To, m: &Msg, copy: bool| {
        let how = if copy { "deliver a copy" } else { "deliver" };
        match (to, m) {
            (To::Replica(_), Msg::Peer(bytes)) => match decode_message(bytes) {
                Ok(m) => format!("{how} {} -> {}: {}", m.from, m.to, body(&m.body)),
                Err(_) => format!("{how} an undecodable message"),
            },
            (_, Msg::Reply { client, swapped }) => {
                format!("{how} to client {client}: swapped = {swapped}")
            }
            _ => format!("{how} {m:?}"),
        }
    };
    match step {
        Step::Deliver(to, m) => deliver(to, m, false),
        Step::DeliverCopy(to, m) => deliver(to, m, true),
        Step::Timeout(i) => {
            let r = &s.nodes[*i].replica;
            format!(
                "timeout n{} ({:?}{})",
                i + 1,
                r.role(),
                r.leader_ballot()
                    .map_or(String::new(), |b| format!(" at {b}"))
            )
        }
        Step::Persist(i) => {
            let rs: Vec<String> = s.nodes[*i]
                .pending
                .front()
                .map(|(_, rs)| rs.iter().map(record).collect())
                .unwrap_or_default();
            format!("persist on n{} completes: {}", i + 1, rs.join(", "))
        }
        Step::Crash(i) => format!("crash and restart n{}", i + 1),
        Step::Send { client, to } => format!("client {client} sends c{client} to n{}", to + 1),
    }
}

// ----- scenarios: a scripted prefix, then an exhaustive search --------------------------------

/// Builds a scenario's prefix: every step goes through the model's own `next_state` from the
/// initial state (so the prefix is a path of the model), and breaks no rule.
struct Script<'a> {
    model: &'a PaxosModel,
    state: State,
    steps: Vec<String>,
    lost: BTreeSet<(To, Msg)>,
}

fn kind(b: &Body) -> &'static str {
    match b {
        Body::PreVote { .. } => "PreVote",
        Body::PreVoteReply { .. } => "PreVoteReply",
        Body::Prepare { .. } => "Prepare",
        Body::Promise { .. } => "Promise",
        Body::Accept { .. } => "Accept",
        Body::Accepted { .. } => "Accepted",
        Body::Reject { .. } => "Reject",
        Body::Heartbeat { .. } => "Heartbeat",
        Body::HeartbeatAck { .. } => "HeartbeatAck",
    }
}

/// The ballot a message is about.
fn ballot_of(b: &Body) -> Ballot {
    match b {
        Body::PreVote { ballot, .. }
        | Body::PreVoteReply { ballot, .. }
        | Body::Prepare { ballot, .. }
        | Body::Promise { ballot, .. }
        | Body::Accept { ballot, .. }
        | Body::Accepted { ballot, .. }
        | Body::Reject { ballot, .. }
        | Body::Heartbeat { ballot, .. }
        | Body::HeartbeatAck { ballot, .. } => *ballot,
    }
}

impl Script<'_> {
    fn step(&mut self, step: Step) -> &mut Self {
        let what = describe(&self.state, &step);
        let next = self
            .model
            .next_state(&self.state, step)
            .unwrap_or_else(|| panic!("scenario step not possible: {what}"));
        assert!(
            next.broken.is_none() && next.history.is_consistent(),
            "the scenario's prefix itself breaks a rule at \"{what}\": {:?}",
            next.broken
        );
        self.steps.push(what);
        self.state = next;
        self
    }

    fn timeout(&mut self, i: usize) -> &mut Self {
        self.step(Step::Timeout(i))
    }

    fn persist(&mut self, i: usize) -> &mut Self {
        self.step(Step::Persist(i))
    }

    /// Completes every persist pending on replica `i`.
    fn persist_all(&mut self, i: usize) -> &mut Self {
        while !self.state.nodes[i].pending.is_empty() {
            self.persist(i);
        }
        self
    }

    fn send(&mut self, client: usize, to: usize) -> &mut Self {
        self.step(Step::Send { client, to })
    }

    /// Delivers the newest (highest-ballot) message of kind `k` from replica `from` to `to`
    /// (for an Accept, one for slot `slot`).
    fn deliver_slot(&mut self, from: usize, to: usize, k: &str, slot: Option<u64>) -> &mut Self {
        let mut found: Vec<(Ballot, To, Msg)> = self
            .state
            .net
            .iter()
            .filter(|&tm| !self.lost.contains(tm))
            .filter(|(t, m)| {
                let (To::Replica(t), Msg::Peer(bytes)) = (t, m) else {
                    return false;
                };
                let Ok(m) = decode_message(bytes) else {
                    return false;
                };
                let first = match &m.body {
                    Body::Accept { first, .. } => Some(first.0),
                    _ => None,
                };
                *t == to
                    && m.from == NodeId(from as u32 + 1)
                    && kind(&m.body) == k
                    && (slot.is_none() || first == slot)
            })
            .map(|(t, m)| {
                let Msg::Peer(bytes) = m else {
                    unreachable!("a peer message")
                };
                let b = decode_message(bytes).map_or(Ballot::ZERO, |m| ballot_of(&m.body));
                (b, *t, m.clone())
            })
            .collect();
        found.sort_by_key(|f| f.0);
        let newest = found.pop();
        let (_, t, m) = newest
            .filter(|(b, _, _)| found.last().is_none_or(|f| f.0 < *b))
            .unwrap_or_else(|| {
                panic!(
                    "scenario: no single newest {k} from n{} to n{} in the network",
                    from + 1,
                    to + 1
                )
            });
        self.step(Step::Deliver(t, m))
    }

    /// The network loses every peer message now in flight for which `lose` holds (given the
    /// sender's index, the addressee's index and the message): the search never delivers them.
    fn lose_where(&mut self, lose: impl Fn(usize, usize, &Body) -> bool) -> &mut Self {
        let mut what = Vec::new();
        for (t, m) in &self.state.net {
            let (To::Replica(_), Msg::Peer(bytes)) = (t, m) else {
                continue;
            };
            let Ok(d) = decode_message(bytes) else {
                continue;
            };
            let (from, to) = (d.from.0 as usize - 1, d.to.0 as usize - 1);
            if !self.lost.contains(&(*t, m.clone())) && lose(from, to, &d.body) {
                what.push(format!("{} -> {} {}", d.from, d.to, kind(&d.body)));
                self.lost.insert((*t, m.clone()));
            }
        }
        self.steps
            .push(format!("(the network loses: {})", what.join(", ")));
        self
    }

    /// The network loses every peer message now in flight.
    fn lose_all(&mut self) -> &mut Self {
        self.lose_where(|_, _, _| true)
    }

    fn deliver(&mut self, from: usize, to: usize, k: &str) -> &mut Self {
        self.deliver_slot(from, to, k, None)
    }

    /// Replica `leader` wins an election with `voter`'s votes: pre-vote, then Phase 1.
    fn elect(&mut self, leader: usize, voter: usize) -> &mut Self {
        self.timeout(leader)
            .deliver(leader, voter, "PreVote")
            .deliver(voter, leader, "PreVoteReply")
            .persist_all(leader)
            .deliver(leader, voter, "Prepare")
            .persist_all(voter)
            .deliver(voter, leader, "Promise");
        assert!(
            self.state.nodes[leader].replica.leader_ballot().is_some(),
            "scenario: n{} did not become leader",
            leader + 1
        );
        self
    }
}

/// A scenario: a scripted prefix of model steps, then a breadth-first search from its end
/// state, bounded by steps, timeouts and crashes.
struct Scenario {
    /// What the prefix sets up (for the report).
    story: &'static str,
    prefix: fn(&mut Script),
    /// The search's bound in steps after the prefix.
    steps: usize,
    /// Timeouts and crashes the search may take beyond the prefix's, and whose.
    timeouts: u8,
    crashes: u8,
    timeout_of: u8,
    crash_of: u8,
    /// The real core's outcome in this scenario: states, unique states and seconds, or the
    /// property it broke.
    real: OnceLock<Result<(usize, usize, f64), String>>,
}

/// Runs `sc`'s prefix, then its search up to `steps` steps, on a core with `faults`.
fn run_scenario(
    sc: &Scenario,
    faults: Faults,
    steps: usize,
    stop_at_first: bool,
) -> (Vec<String>, Outcome) {
    let script_model = PaxosModel {
        b: bounds(faults),
        start: None,
        lost: BTreeSet::new(),
    };
    let mut script = Script {
        model: &script_model,
        state: script_model.initial(),
        steps: Vec::new(),
        lost: BTreeSet::new(),
    };
    (sc.prefix)(&mut script);
    let Script {
        state,
        steps: prefix,
        lost,
        ..
    } = script;
    let b = Bounds {
        timeouts: state.timeouts + sc.timeouts,
        crashes: state.crashes + sc.crashes,
        timeout_of: sc.timeout_of,
        crash_of: sc.crash_of,
        ..bounds(faults)
    };
    let model = PaxosModel {
        b,
        start: Some(state),
        lost,
    };
    (prefix, explore(model, steps + 2, stop_at_first))
}

/// The planted bug `name` (the core with `faults`) breaks a property in scenario `sc`, and the
/// real core does not, within the same bound.
fn assert_found(name: &str, faults: Faults, sc: &Scenario) {
    // Breadth first with a growing bound (iterative deepening), so the trace is a shortest
    // one: stateright reports the last failing state of a block, not the first.
    let (mut states, mut unique, mut seconds) = (0, 0, 0.0);
    let mut hit = None;
    for steps in 1..=sc.steps {
        let (prefix, o) = run_scenario(sc, faults, steps, true);
        states += o.states;
        unique += o.unique;
        seconds += o.seconds;
        if let Some(c) = o.counterexample {
            hit = Some((prefix, c));
            break;
        }
    }
    let Some((prefix, (why, found))) = hit else {
        panic!(
            "planted bug {name} not found in the scenario \"{}\" within {} steps ({states} states, {unique} unique, {seconds:.1} s)",
            sc.story, sc.steps
        );
    };
    let mut trace: Vec<String> = prefix.iter().map(|p| format!("  {p}")).collect();
    trace.push(format!(
        "  -- the search from here ({} steps) --",
        found.len()
    ));
    trace.extend(found.iter().map(|f| format!("  {f}")));
    eprintln!(
        "planted bug {name}: found in the scenario \"{}\" after {states} states ({unique} unique) in {seconds:.1} s, {} + {} steps: {why}\ntrace:\n{}",
        sc.story,
        prefix.len(),
        found.len(),
        trace.join("\n")
    );
    // The same scenario and bound on the real core (once per scenario, shared by its bugs).
    let real = sc.real.get_or_init(|| {
        let (_, o) = run_scenario(sc, Faults::default(), sc.steps, false);
        match o.counterexample {
            Some((why, found)) => Err(format!(
                "{why}\ntrace (after the prefix):\n  {}",
                found.join("\n  ")
            )),
            None => Ok((o.states, o.unique, o.seconds)),
        }
    });
    let (states, unique, seconds) = real.clone().unwrap_or_else(|e| {
        panic!(
            "the real core breaks a property in the scenario \"{}\" (so it proves nothing about {name}): {e}",
            sc.story
        )
    });
    eprintln!(
        "real core, same scenario and bound ({name}): nothing broken in {states} states ({unique} unique, {} steps after the prefix) in {seconds:.1} s",
        sc.steps
    );
    assert!(
        unique > 1_000,
        "the scenario's bound covers too little on the real core: {unique} states"
    );
}

macro_rules! planted {
    ($test:ident, $field:ident, $scenario:expr) => {
        #[test]
        fn $test() {
            let f = Faults {
                $field: true,
                ..Faults::default()
            };
            assert_found(stringify!($field), f, &$scenario);
        }
    };
}

const ALL: u8 = 0b111;

/// Nothing scripted: the search starts from the initial state.
static FROM_THE_START: Scenario = Scenario {
    story: "from the initial state",
    prefix: |_| {},
    steps: 6,
    timeouts: 2,
    crashes: 1,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

/// n1 leads at ballot 1.1, elected with n2's votes.
static N1_LEADS: Scenario = Scenario {
    story: "n1 leads at 1.1",
    prefix: |s| {
        s.elect(0, 1).lose_all();
    },
    steps: 5,
    timeouts: 1,
    crashes: 1,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

/// n1 leads at 1.1 and has proposed c0 at slot 0 and c1 at slot 1; nothing delivered yet.
static TWO_SLOTS_PROPOSED: Scenario = Scenario {
    story: "n1 leads at 1.1 and proposed c0 at slot 0 and c1 at slot 1",
    prefix: |s| {
        s.elect(0, 1).lose_all().send(0, 0).send(1, 0);
    },
    steps: 6,
    timeouts: 1,
    crashes: 1,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

/// c0 is chosen at slot 0 (at 1.1, by n1 and n2) and applied on n1, whose answer to client 0
/// is in flight; client 0 has not heard it.
static ONE_COMMAND_APPLIED: Scenario = Scenario {
    story: "c0 chosen at slot 0 and applied on n1, its answer not yet received",
    prefix: |s| {
        s.elect(0, 1)
            .send(0, 0)
            .persist_all(0)
            .deliver_slot(0, 1, "Accept", Some(0))
            .persist_all(1)
            .deliver(1, 0, "Accepted")
            .lose_all();
    },
    steps: 7,
    timeouts: 1,
    crashes: 0,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

/// c0 is chosen at slot 0 at 1.1 (durable on n1 and n2); n3, which holds nothing, runs Phase
/// 1 at 2.3 with n2's pre-vote, its Prepares in flight.
static N3_RUNS_AFTER_A_CHOICE: Scenario = Scenario {
    story: "c0 chosen at slot 0 at 1.1 on n1 and n2; n3, holding nothing, starts Phase 1 at 2.3",
    prefix: |s| {
        s.elect(0, 1)
            .send(0, 0)
            .persist_all(0)
            .deliver_slot(0, 1, "Accept", Some(0))
            .persist_all(1)
            // n2 hears nothing from n1 for an election timeout (and asks for pre-votes).
            .timeout(1)
            .timeout(2)
            .deliver(2, 1, "PreVote")
            .deliver(1, 2, "PreVoteReply")
            // Kept: n3's Prepares, and n1's Accept of slot 0 to n3.
            .lose_where(|from, to, b| !(from == 2 || (to == 2 && kind(b) == "Accept")));
    },
    steps: 6,
    timeouts: 1,
    crashes: 1,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

/// n1 led at 1.1 and holds c0 at slot 0 and c1 at slot 1 (durable, on n1 only); n2 then led at
/// 2.2 with n3 and got c1 chosen at slot 0 and c0 at slot 1 (retries); n1 has promised 2.2
/// and now runs Phase 1 at 3.1 with n3's pre-vote, its Prepares in flight.
static N1_RUNS_WITH_STALE_VALUES: Scenario = Scenario {
    story: "n1 holds stale c0/c1 at slots 0/1 from 1.1, c1/c0 chosen there at 2.2; n1 starts Phase 1 at 3.1",
    prefix: |s| {
        s.elect(0, 1)
            .send(0, 0)
            .send(1, 0)
            .persist_all(0)
            .elect(1, 2)
            .send(1, 1)
            .send(0, 1)
            .persist_all(1)
            .deliver_slot(1, 2, "Accept", Some(0))
            .deliver_slot(1, 2, "Accept", Some(1))
            .persist_all(2)
            .deliver(1, 0, "Prepare")
            .persist_all(0)
            // n3 hears nothing from n2 for an election timeout (and asks for pre-votes).
            .timeout(2)
            .timeout(0)
            .deliver(0, 2, "PreVote")
            .deliver(2, 0, "PreVoteReply")
            // Kept: n1's Prepares at 3.1.
            .lose_where(|from, _, b| !(from == 0 && kind(b) == "Prepare" && ballot_of(b).round == 3));
    },
    steps: 6,
    timeouts: 1,
    crashes: 1,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

/// n2 leads at 2.2 (an even round), elected with n3 after n1 led at 1.1.
static N2_LEADS_AT_AN_EVEN_ROUND: Scenario = Scenario {
    story: "n2 leads at 2.2 after n1 led at 1.1",
    prefix: |s| {
        s.elect(0, 1).elect(1, 2).lose_all();
    },
    steps: 4,
    timeouts: 3,
    crashes: 1,
    timeout_of: ALL,
    crash_of: ALL,
    real: OnceLock::new(),
};

// The older, total bugs.
planted!(
    finds_promise_before_durable,
    promise_before_durable,
    FROM_THE_START
);
planted!(
    finds_ignore_highest_ballot_value,
    ignore_highest_ballot_value,
    N3_RUNS_AFTER_A_CHOICE
);
planted!(
    finds_accept_lower_ballot,
    accept_lower_ballot,
    TWO_SLOTS_PROPOSED
);
planted!(
    finds_truncate_suffix_on_conflict,
    truncate_suffix_on_conflict,
    TWO_SLOTS_PROPOSED
);
// The partial ones.
planted!(
    finds_first_value_wins,
    first_value_wins,
    N1_RUNS_WITH_STALE_VALUES
);
planted!(
    finds_promise_forgets_one_value,
    promise_forgets_one_value,
    N3_RUNS_AFTER_A_CHOICE
);
planted!(finds_commit_one_early, commit_one_early, N1_LEADS);
planted!(
    finds_sessions_reexecute_retry,
    sessions_reexecute_retry,
    ONE_COMMAND_APPLIED
);
planted!(
    finds_check_quorum_off,
    no_check_quorum,
    N2_LEADS_AT_AN_EVEN_ROUND
);
planted!(finds_pre_vote_off, no_prevote, FROM_THE_START);

// ----- the two linearizability checkers agree -------------------------------------------------

/// A tiny seeded generator (SplitMix64), so the histories are the same on every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One event of a recorded history: `(time, client, Some(op) for an invocation or None for a
/// return with its output)`.
type Event = (u64, usize, Result<Cas, bool>);

/// A history of `clients` clients (one operation outstanding each), executed against a real
/// register at random linearization points: linearizable by construction. With `corrupt`,
/// one answer is flipped, which may make it non-linearizable.
fn history(g: &mut Gen, clients: usize, ops: usize, corrupt: bool) -> Vec<Event> {
    let mut reg = Register::default();
    let mut events = Vec::new();
    // Per client: Some((op, result once linearized)).
    let mut open: Vec<Option<(Cas, Option<bool>)>> = vec![None; clients];
    let mut issued = 0;
    let mut t = 0;
    while issued < ops || open.iter().any(Option::is_some) {
        t += 1;
        let c = g.below(clients as u64) as usize;
        match open[c] {
            None if issued < ops => {
                let op = Cas {
                    expected: match g.below(3) {
                        0 => None,
                        k => Some(k as u8),
                    },
                    new: 1 + g.below(2) as u8,
                };
                events.push((t, c, Ok(op)));
                open[c] = Some((op, None));
                issued += 1;
            }
            None => {}
            Some((op, None)) => open[c] = Some((op, Some(reg.invoke(&op)))),
            Some((_, Some(r))) => {
                events.push((t, c, Err(r)));
                open[c] = None;
            }
        }
    }
    if corrupt {
        let returns: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].2.is_err())
            .collect();
        let k = returns[g.below(returns.len() as u64) as usize];
        if let Err(r) = &mut events[k].2 {
            *r = !*r;
        }
    }
    events
}

fn wgl_verdict(events: &[Event]) -> bool {
    let mut ops: Vec<Operation<Cas, bool>> = Vec::new();
    let mut open: BTreeMap<usize, usize> = BTreeMap::new();
    for &(t, c, e) in events {
        match e {
            Ok(op) => {
                open.insert(c, ops.len());
                ops.push(Operation {
                    invoke: t,
                    done: None,
                    input: op,
                });
            }
            Err(r) => {
                if let Some(i) = open.remove(&c) {
                    ops[i].done = Some((t, r));
                }
            }
        }
    }
    match check(&WglRegister, &ops, 1_000_000) {
        Verdict::Linearizable => true,
        Verdict::Violation => false,
        Verdict::Unknown => panic!("the WGL search gave up on {events:?}"),
    }
}

fn stateright_verdict(events: &[Event]) -> bool {
    let mut t = LinearizabilityTester::new(Register::default());
    for &(_, c, e) in events {
        let ok = match e {
            Ok(op) => t.on_invoke(c, op).is_ok(),
            Err(r) => t.on_return(c, r).is_ok(),
        };
        assert!(ok, "a well-formed history");
    }
    t.is_consistent()
}

#[test]
fn the_wgl_checker_and_stateright_agree_on_recorded_histories() {
    let mut g = Gen(2026);
    let (mut linearizable, mut not) = (0, 0);
    for k in 0..600 {
        let corrupt = k % 2 == 1;
        let h = history(&mut g, 2 + (k % 3), 3 + (k % 6), corrupt);
        let (a, b) = (wgl_verdict(&h), stateright_verdict(&h));
        assert_eq!(a, b, "the checkers disagree on {h:?}");
        if a {
            linearizable += 1;
        } else {
            not += 1;
        }
        if !corrupt {
            assert!(a, "a history built linearizable was judged not: {h:?}");
        }
    }
    // Built on purpose: two successful swaps from the empty register; a failed swap on an
    // empty register with no other writer; a read-your-write violation across real time.
    let crafted: [(Vec<Event>, bool); 3] = [
        (
            vec![
                (1, 0, Ok(OPS[0])),
                (2, 1, Ok(OPS[0])),
                (3, 0, Err(true)),
                (4, 1, Err(true)),
            ],
            false,
        ),
        (vec![(1, 0, Ok(OPS[0])), (2, 0, Err(false))], false),
        (
            vec![
                (1, 0, Ok(OPS[0])),
                (2, 0, Err(true)),
                (3, 1, Ok(OPS[0])),
                (4, 1, Err(true)),
            ],
            false,
        ),
    ];
    for (h, want) in &crafted {
        assert_eq!(wgl_verdict(h), *want, "WGL on {h:?}");
        assert_eq!(stateright_verdict(h), *want, "stateright on {h:?}");
        not += 1;
    }
    eprintln!("{linearizable} linearizable and {not} non-linearizable histories: verdicts agree");
    assert!(linearizable > 300 && not > 100, "{linearizable} / {not}");
}

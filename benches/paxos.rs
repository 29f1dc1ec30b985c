//! Throughput of the pure Multi-Paxos core: 3 replicas in one thread, messages passed in
//! memory (no serialization), every persist completed at once, no I/O, 64-byte commands.
//! Counts commands committed (chosen, as known to the leader) per second, one at a time,
//! pipelined with 64 / 1,024 / 8,192 in flight (one command per slot), and batched (1,024
//! commands per slot, 8,192 in flight). Only ratios measured in the same run mean anything on
//! a shared machine. Both systems run on mimalloc, the allocator the omnipaxos figures were
//! published with.
//!
//! The same harness runs omnipaxos 0.2.4 with its `MemoryStorage`, pumped the same way (the
//! library's one omnipaxos pump, `paxwal::bench::omnipaxos`, also behind the replication
//! benchmark's RocksDB comparison): in
//! both clusters the same node leads (the one omnipaxos elects), and every round each node in turn hands over its
//! output, each message going to its addressee at once (`take_actions_into` + `step`, or
//! `take_outgoing_messages` + `handle_incoming`). A paxwal persist completes at once (as a
//! `MemoryStorage` write does), and the replies it releases go out in the same turn. The
//! leader is topped up to the in-flight count with `propose` / `append`, progress is the
//! leader's decided point (`chosen` / `get_decided_idx`), omnipaxos `tick()`s every 10 ms of
//! wall time, and after each iteration both forget what every node has decided (`compact` /
//! `trim`) to keep memory flat. paxwal's replicas also emit an `Apply` per slot, which the
//! harness consumes without reading; the omnipaxos harness does not read its decided entries unless
//! `PAXOS_BENCH_OMNI_APPLY=1` (then every node's are read each round with
//! `read_decided_suffix`, as an application applying them would).
//!
//! The one asymmetry: after each turn the paxwal harness gives the persists it completed and
//! the Applies it consumed back to the replica with `Replica::recycle` (the documented way
//! for any runtime to drop carried-out actions: value handles released in runs, emptied lists
//! reused). omnipaxos has no counterpart. Messages are moved into `step`, as before.
//!
//! After criterion's own report the bench prints a table of the median throughput per
//! configuration, paxwal against omnipaxos, from the same run:
//!
//! ```text
//! cargo bench --bench paxos -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! `PAXOS_BENCH_ONLY=paxwal|omnipaxos` runs one system. `PAXOS_BENCH_PROFILE=SYSTEM/CONFIG`
//! (e.g. `paxwal/pipelined_1024`) skips criterion and commits a fixed number of commands, for
//! a profiler (`PAXOS_BENCH_PROFILE_ITERS` iterations of 65,536, default 4, after one warm-up
//! iteration), and prints the fastest iteration's thread CPU time.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use paxwal::bench::omnipaxos::OmniCluster;
use paxwal::paxos::{Action, Command, Config, DurableState, Replica, Role};
use paxwal::{NodeId, Slot};

const PAYLOAD_BYTES: usize = 64;
/// The index of the leading node in both clusters (they pump nodes in index order, so where
/// the leader sits changes how much happens in one round): the node omnipaxos elects here.
/// (A `leader_priority` would choose it, but made omnipaxos 0.2.4's leadership unstable.)
const LEADER: usize = 1;
/// Commands committed per measured iteration.
const COMMANDS_PER_ITER: u64 = 65_536;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The configurations: name, window slots, commands per slot, commands in flight.
const CONFIGS: [(&str, usize, usize, u64); 5] = [
    ("one_at_a_time", 1, 1, 1),
    ("pipelined_64", 64, 1, 64),
    ("pipelined_1024", 1024, 1, 1024),
    ("pipelined_8192", 8192, 1, 8192),
    ("batched_1024x8192", 64, 1024, 8192),
];

/// Commands per second of every measured sample (warm-up included), per `(config, system)`.
static SAMPLES: Mutex<BTreeMap<(usize, &'static str), Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(config: usize, system: &'static str, commands: u64, took: Duration) {
    let rate = commands as f64 / took.as_secs_f64().max(1e-9);
    if let Ok(mut s) = SAMPLES.lock() {
        s.entry((config, system)).or_default().push(rate);
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn human(rate: Option<f64>) -> String {
    match rate {
        Some(r) if r >= 1e6 => format!("{:.2}M", r / 1e6),
        Some(r) => format!("{:.0}k", r / 1e3),
        None => "-".to_string(),
    }
}

/// The median commands/s of each configuration, both systems, and their ratio.
fn print_table() {
    let Ok(s) = SAMPLES.lock() else {
        return;
    };
    if s.is_empty() {
        return;
    }
    println!();
    println!("| configuration | paxwal/s | omnipaxos/s | paxwal / omnipaxos |");
    println!("| --- | ---: | ---: | ---: |");
    for (i, (name, ..)) in CONFIGS.iter().enumerate() {
        let px = s.get(&(i, "paxwal")).and_then(|v| median(v));
        let op = s.get(&(i, "omnipaxos")).and_then(|v| median(v));
        if px.is_none() && op.is_none() {
            continue;
        }
        let ratio = match (px, op) {
            (Some(a), Some(b)) => format!("{:.2}x", a / b),
            _ => "-".to_string(),
        };
        println!("| {name} | {} | {} | {ratio} |", human(px), human(op));
    }
}

struct Cluster {
    replicas: Vec<Replica>,
    leader: usize,
    actions: Vec<Action>,
    proposed: u64,
    committed: u64,
    /// Slots below this were counted in `committed`.
    counted: Slot,
    in_flight: u64,
}

impl Cluster {
    fn new(window_slots_max: usize, batch_commands_max: usize, in_flight: u64) -> Cluster {
        let peers: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let replicas = peers
            .iter()
            .map(|&id| {
                let mut cfg = Config::new(id, peers.clone(), u64::from(id.0));
                cfg.window_slots_max = window_slots_max;
                cfg.batch_commands_max = batch_commands_max;
                cfg.batch_bytes_max = usize::MAX;
                cfg.window_bytes_max = usize::MAX;
                Replica::new(cfg, DurableState::default()).expect("valid config")
            })
            .collect();
        let mut c = Cluster {
            replicas,
            leader: 0,
            actions: Vec::new(),
            proposed: 0,
            committed: 0,
            counted: Slot(0),
            in_flight,
        };
        // The same node leads as in the omnipaxos cluster: only it times out.
        while c.replicas[LEADER].role() != Role::Leader {
            c.replicas[LEADER].tick();
            c.round();
        }
        c.leader = LEADER;
        c.counted = c.replicas[LEADER].chosen();
        c
    }

    /// Counts the commands of the slots the leader learned chosen since the last call (its
    /// decided point, as omnipaxos's `get_decided_idx`).
    fn count_committed(&mut self) {
        let r = &self.replicas[self.leader];
        while self.counted < r.chosen() {
            let commands = r
                .accepted(self.counted)
                .map_or(0, |(_, v)| v.commands().len());
            self.committed += commands as u64;
            self.counted = Slot(self.counted.0 + 1);
        }
    }

    /// One pump round, the same shape as omnipaxos's below: each replica in turn hands over
    /// its actions, and every message goes to its addressee at once. A persist completes at
    /// once (as omnipaxos's `MemoryStorage` writes do); the replies it releases are handed over
    /// in the same turn.
    fn round(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.replicas.len() {
            loop {
                self.replicas[i].take_actions_into(&mut self.actions);
                if self.actions.is_empty() {
                    break;
                }
                progress = true;
                let mut persisted = false;
                for a in &mut self.actions {
                    match a {
                        Action::Persist { token, .. } => {
                            self.replicas[i].persisted(*token);
                            persisted = true;
                        }
                        Action::Send(_) => {
                            // Moved out (a payload-free action is left in its place).
                            let taken = std::mem::replace(a, Action::ReadReady { ctx: 0 });
                            if let Action::Send(m) = taken {
                                let to = (m.to.0 - 1) as usize;
                                self.replicas[to].step(m);
                            }
                        }
                        _ => {}
                    }
                }
                // Carried out (the records "written", the Applies consumed): give them back.
                self.replicas[i].recycle(&mut self.actions);
                if !persisted {
                    break;
                }
            }
        }
        self.count_committed();
        progress
    }

    /// Commits `n` more commands, keeping `in_flight` outstanding.
    fn run(&mut self, n: u64) {
        let target = self.committed + n;
        while self.committed < target {
            while self.proposed < target && self.proposed - self.committed < self.in_flight {
                let cmd = Command {
                    client: 1,
                    seq: self.proposed,
                    payload: vec![7; PAYLOAD_BYTES],
                };
                self.replicas[self.leader]
                    .propose(cmd)
                    .expect("stable leader");
                self.proposed += 1;
            }
            self.round();
        }
        // Keep memory flat: forget what every replica applied (as a snapshot would allow).
        for r in &mut self.replicas {
            let applied = r.applied();
            r.compact(Slot(applied.0));
        }
    }
}

/// omnipaxos over its `MemoryStorage`, pumped by the library's one omnipaxos pump
/// (`paxwal::bench::omnipaxos`): one call commits `COMMANDS_PER_ITER` commands with `in_flight`
/// outstanding, then trims.
fn omnipaxos(batch: usize, in_flight: u64) -> impl FnMut() {
    let mut c = OmniCluster::in_memory(batch, PAYLOAD_BYTES).expect("omnipaxos cluster");
    c.set_read_decided(std::env::var_os("PAXOS_BENCH_OMNI_APPLY").is_some());
    if c.leader_index() != LEADER {
        eprintln!(
            "note: omnipaxos elected node index {}, paxwal's leader is index {LEADER}",
            c.leader_index()
        );
    }
    let debug = std::env::var_os("PAXOS_BENCH_DEBUG").is_some();
    move || {
        let failed = c.trim_failures();
        c.run(COMMANDS_PER_ITER, in_flight).expect("omnipaxos run");
        if debug && c.trim_failures() > failed {
            eprintln!("omnipaxos trim failed");
        }
    }
}

/// The pure paxwal core, the same way.
fn paxwal_core(window: usize, batch: usize, in_flight: u64) -> impl FnMut() {
    let mut c = Cluster::new(window, batch, in_flight);
    move || c.run(COMMANDS_PER_ITER)
}

/// One measured iteration of `system` ("paxwal" or "omnipaxos") in one configuration.
fn iteration(
    system: &str,
    window: usize,
    batch: usize,
    in_flight: u64,
) -> Option<Box<dyn FnMut()>> {
    match system {
        "paxwal" => Some(Box::new(paxwal_core(window, batch, in_flight))),
        "omnipaxos" => Some(Box::new(omnipaxos(batch, in_flight))),
        _ => None,
    }
}

fn bench_paxos(c: &mut Criterion) {
    let mut g = c.benchmark_group("paxos_core_3_replicas_64B");
    g.throughput(Throughput::Elements(COMMANDS_PER_ITER));
    let only = std::env::var("PAXOS_BENCH_ONLY").unwrap_or_default();
    for (i, &(name, window, batch, in_flight)) in CONFIGS.iter().enumerate() {
        for system in ["paxwal", "omnipaxos"] {
            if !(only.is_empty() || only == system) {
                continue;
            }
            let Some(mut iteration) = iteration(system, window, batch, in_flight) else {
                continue;
            };
            g.bench_function(BenchmarkId::new(system, name), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        iteration();
                    }
                    let took = start.elapsed();
                    record(i, system, iters * COMMANDS_PER_ITER, took);
                    took
                })
            });
        }
    }
    g.finish();
}

/// CPU time of this thread (less disturbed than wall time on a busy machine).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `PAXOS_BENCH_PROFILE=SYSTEM/CONFIG`: a fixed amount of work, no criterion. Prints the
/// fastest iteration's thread CPU time.
fn profile(spec: &str) {
    let (system, config) = spec.split_once('/').unwrap_or((spec, "pipelined_1024"));
    let Some(&(name, window, batch, in_flight)) = CONFIGS.iter().find(|c| c.0 == config) else {
        eprintln!("unknown configuration {config}");
        std::process::exit(2);
    };
    let iters: u64 = std::env::var("PAXOS_BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let Some(mut run) = iteration(system, window, batch, in_flight) else {
        eprintln!("unknown system {system}");
        std::process::exit(2);
    };
    run();
    let mut best = Duration::MAX;
    for _ in 0..iters {
        let t = thread_cpu_time();
        run();
        best = best.min(thread_cpu_time().saturating_sub(t));
    }
    let rate = COMMANDS_PER_ITER as f64 / best.as_secs_f64().max(1e-9);
    println!(
        "{system}/{name}: best of {iters}: {best:?} CPU per {COMMANDS_PER_ITER} commands ({})/s",
        human(Some(rate))
    );
}

fn main() {
    if let Ok(spec) = std::env::var("PAXOS_BENCH_PROFILE") {
        profile(&spec);
        return;
    }
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10)
        .configure_from_args();
    bench_paxos(&mut c);
    c.final_summary();
    print_table();
}

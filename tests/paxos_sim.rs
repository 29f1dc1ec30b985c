//! A seeded cluster simulation of the real Multi-Paxos core over the real acceptor store on the
//! simulated disk: persists complete at random later steps; crash-restarts lose whatever was not
//! synced (the replica restarts from what its store recovers); the network delays, drops,
//! duplicates and reorders messages and partitions nodes; an acceptor is sometimes crashed right
//! after it replies to a prepare. Checked: agreement (no two replicas
//! apply different entries at a slot), and, after a liveness phase with faults off, that every
//! command chosen anywhere is applied everywhere. Planted protocol bugs must be caught.
//! A failure prints its seed; `SEED=… cargo test --features sim --test paxos_sim` replays it.
#![cfg(feature = "sim")]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use paxwal::paxos::{Action, Command, Config, Entry, Message, PlantedBugs, Replica};
use paxwal::sim::{NetConfig, Network, Rng};
use paxwal::store::AcceptorStore;
use paxwal::wal::simdisk::{CrashSpec, SimDisk};
use paxwal::wal::{Appended, Options, Prealloc};
use paxwal::{NodeId, Slot};

const DIR: &str = "/acc";

fn store_opts() -> Options {
    Options {
        prealloc: Prealloc::Inline,
        segment_bytes: 256 << 10,
        ..Options::default()
    }
}

struct Node {
    disk: SimDisk,
    store: AcceptorStore,
    replica: Replica,
    pending: VecDeque<(u64, Appended)>,
    applied: BTreeMap<Slot, Entry>,
}

struct Outcome {
    violation: Option<String>,
    chosen_commands: usize,
    crashes: usize,
}

fn boot(disk: SimDisk, id: u32, n: u32, seed: u64, planted: PlantedBugs) -> Node {
    let store =
        AcceptorStore::open_with(Arc::new(disk.clone()), DIR, store_opts()).expect("store opens");
    let peers = (1..=n).map(NodeId).collect();
    let mut cfg = Config::new(NodeId(id), peers, seed);
    cfg.window_slots_max = 16;
    cfg.batch_commands_max = 4;
    let mut replica = Replica::new(cfg, &store.state());
    replica.planted = planted;
    Node {
        disk,
        store,
        replica,
        pending: VecDeque::new(),
        applied: BTreeMap::new(),
    }
}

fn simulate(seed: u64, n: u32, steps: u64, planted: PlantedBugs) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut net: Network<Message> = Network::new(
        NetConfig {
            delay_min: 1,
            delay_max: 4,
            loss: 0.05,
            duplicate: 0.03,
        },
        rng.fork(),
    );
    let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
    let mut nodes: Vec<Node> = (1..=n)
        .map(|i| boot(SimDisk::new(), i, n, seed ^ u64::from(i), planted))
        .collect();
    // slot -> the entry first applied there, anywhere.
    let mut agreed: BTreeMap<Slot, Entry> = BTreeMap::new();
    let mut next_cmd = 1u64;
    let mut crashes = 0;
    let liveness_from = steps * 2 / 3;
    for now in 0..steps {
        let faults = now < liveness_from;
        if !faults && now == liveness_from {
            net.heal();
            net.config.loss = 0.0;
            net.config.duplicate = 0.0;
        }
        if faults {
            if rng.chance(0.01) {
                let a = ids[rng.below(u64::from(n)) as usize];
                net.isolate(a, &ids);
            } else if rng.chance(0.02) {
                net.heal();
            }
            // Crash-restart: unsynced writes are lost (a random subset survives).
            if rng.chance(0.01) {
                let i = rng.below(u64::from(n)) as usize;
                let old = &nodes[i].disk;
                let keep: Vec<bool> = (0..old.pending_writes()).map(|_| rng.chance(0.5)).collect();
                let image = old.crash(&CrashSpec {
                    keep,
                    tear: None,
                    namespace_ops_kept: old.pending_namespace_ops(),
                });
                nodes[i] = boot(image, i as u32 + 1, n, seed ^ now, planted);
                crashes += 1;
            }
        }
        // A client proposes to whoever leads (not in the last 200 steps: the liveness check
        // wants every proposal given time to commit once faults stopped).
        if now + 200 < steps && rng.chance(0.3) {
            let cmd = Command {
                client: 1,
                seq: next_cmd,
                payload: next_cmd.to_le_bytes().to_vec(),
            };
            if nodes
                .iter_mut()
                .any(|nd| nd.replica.propose(cmd.clone()).is_ok())
            {
                next_cmd += 1;
            }
        }
        let mut crash_now: Vec<usize> = Vec::new();
        for (i, nd) in nodes.iter_mut().enumerate() {
            nd.replica.tick();
            // Now and then a group commit makes everything submitted so far durable at once.
            if !nd.pending.is_empty() && rng.chance(0.5) {
                while let Some((token, t)) = nd.pending.pop_front() {
                    nd.store.wait_durable(&t).expect("persist");
                    nd.replica.persisted(token);
                }
            }
            for a in nd.replica.take_actions() {
                match a {
                    Action::Persist { token, records } => {
                        let t = nd.store.submit(&records).expect("submit");
                        nd.pending.push_back((token, t));
                    }
                    Action::Send { to, msg } => {
                        // Adversarial timing: sometimes crash an acceptor right after it replies
                        // to a prepare, before anything it has not synced can reach the disk.
                        if faults && matches!(msg, Message::Promise { .. }) && rng.chance(0.2) {
                            crash_now.push(i);
                        }
                        net.send(now, ids[i], to, msg)
                    }
                    Action::Apply { slot, entry } => {
                        if let Some(prev) = agreed.get(&slot) {
                            if *prev != entry {
                                return Outcome {
                                    violation: Some(format!(
                                        "agreement: slot {slot} applied as {prev:?} and as {entry:?} (n{} at step {now})",
                                        i + 1
                                    )),
                                    chosen_commands: 0,
                                    crashes,
                                };
                            }
                        } else {
                            agreed.insert(slot, entry.clone());
                        }
                        nd.applied.insert(slot, entry);
                    }
                }
            }
        }
        for i in crash_now {
            let old = &nodes[i].disk;
            let image = old.crash(&CrashSpec {
                keep: vec![false; old.pending_writes()],
                tear: None,
                namespace_ops_kept: old.pending_namespace_ops(),
            });
            nodes[i] = boot(image, i as u32 + 1, n, seed ^ now ^ 0xC0, planted);
            crashes += 1;
        }
        for (from, to, msg) in net.deliver(now) {
            nodes[to.0 as usize - 1].replica.step(from, msg);
        }
    }
    // Liveness: with faults off for the last third, every chosen slot is applied everywhere.
    let chosen_commands = agreed
        .values()
        .map(|e| match e {
            Entry::Batch(cs) => cs.len(),
            Entry::Noop => 0,
        })
        .sum();
    if std::env::var("SIM_DEBUG").is_ok() {
        for (i, nd) in nodes.iter().enumerate() {
            eprintln!(
                "n{}: role {:?} leader {:?} commit {} promised {} applied {}",
                i + 1,
                nd.replica.role(),
                nd.replica.leader(),
                nd.replica.commit(),
                nd.replica.promised(),
                nd.applied.len()
            );
        }
    }
    for (i, nd) in nodes.iter().enumerate() {
        for (slot, e) in &agreed {
            if nd.applied.get(slot) != Some(e) {
                return Outcome {
                    violation: Some(format!("liveness: n{} never applied slot {slot}", i + 1)),
                    chosen_commands,
                    crashes,
                };
            }
        }
    }
    Outcome {
        violation: None,
        chosen_commands,
        crashes,
    }
}

fn seeds(default: std::ops::Range<u64>) -> std::ops::Range<u64> {
    match std::env::var("SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => s..s + 1,
        None => default,
    }
}

#[test]
fn agreement_and_liveness_hold_under_faults() {
    let (mut chosen, mut crashes, mut runs) = (0, 0, 0);
    for seed in seeds(0..1000) {
        for n in [3, 5] {
            let o = simulate(seed, n, 900, PlantedBugs::default());
            if let Some(v) = o.violation {
                panic!("SEED={seed} ({n} replicas): {v}");
            }
            chosen += o.chosen_commands;
            crashes += o.crashes;
            runs += 1;
        }
    }
    eprintln!("{runs} runs, {chosen} commands chosen, {crashes} crash-restarts, 0 violations");
    assert!(
        chosen > 0,
        "nothing was ever chosen: the simulation checks nothing"
    );
}

fn caught(planted: PlantedBugs) -> Option<(u64, String)> {
    seeds(0..1000).find_map(|seed| {
        [3, 5]
            .into_iter()
            .find_map(|n| simulate(seed, n, 900, planted).violation.map(|v| (seed, v)))
    })
}

#[test]
fn planted_bugs_are_caught() {
    let bugs = [
        (
            "accept a lower ballot",
            PlantedBugs {
                accept_lower_ballot: true,
                ..PlantedBugs::default()
            },
        ),
        (
            "new leader ignores the highest-ballot value",
            PlantedBugs {
                ignore_highest_ballot_value: true,
                ..PlantedBugs::default()
            },
        ),
        (
            "promise before it is durable",
            PlantedBugs {
                promise_before_durable: true,
                ..PlantedBugs::default()
            },
        ),
        (
            "truncate the suffix on conflict",
            PlantedBugs {
                truncate_suffix_on_conflict: true,
                ..PlantedBugs::default()
            },
        ),
    ];
    for (name, planted) in bugs {
        match caught(planted) {
            Some((seed, v)) => eprintln!("{name}: caught at SEED={seed}: {v}"),
            None => panic!("planted bug '{name}' was not caught in 1,000 seeds"),
        }
    }
}

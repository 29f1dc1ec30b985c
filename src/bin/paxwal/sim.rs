//! `paxwal sim`: the deterministic cluster simulation, over many seeds or one.

use std::io::IsTerminal;

use clap::ValueEnum;

use crate::progress_bar;

/// `paxwal sim`'s arguments.
#[derive(clap::Args)]
pub struct SimArgs {
    /// Number of seeds to run (seeds 0..N).
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// Run this one seed (replays a failure exactly).
    #[arg(long)]
    seed: Option<u64>,
    /// Replicas in the cluster: 3 or 5.
    #[arg(long, default_value_t = 3, value_parser = parse_replicas)]
    replicas: u32,
    /// Simulated steps per seed, at least 30 (the last third is the liveness phase).
    #[arg(long, default_value_t = 900, value_parser = parse_steps)]
    steps: u64,
    /// Clients per run.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Turn off fault injection.
    #[arg(long)]
    no_faults: bool,
    /// Plant a bug to see it caught: a (promise before durable), b (ignore the highest-ballot
    /// value), c (accept a lower ballot), d (truncate the suffix), reads (local reads), ack
    /// (acknowledge before chosen), mangle (a store that mangles values), stuck (persists never
    /// complete); partial breaks: e (first reported value wins for odd slots), f (a Promise
    /// forgets one value), g (commit point one slot early), h (sessions re-execute a retry),
    /// i (check-quorum off), j (pre-vote off).
    #[arg(long, value_enum)]
    planted: Option<PlantedArg>,
    /// Worker threads, at least 1 (default: the available cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Print the summary as one JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlantedArg {
    A,
    B,
    C,
    D,
    Reads,
    Ack,
    Mangle,
    Stuck,
    E,
    F,
    G,
    H,
    I,
    J,
}

/// Runs `paxwal sim`; returns its exit code (1 on any violation).
pub fn run(a: SimArgs) -> u8 {
    use paxwal::sim::{run_many, CoverageTally, SimConfig, SimReport, SimStats};
    use std::sync::atomic::{AtomicU64, Ordering};

    let mut cfg = SimConfig {
        replicas: a.replicas,
        steps: a.steps,
        clients: a.clients,
        faults: !a.no_faults,
        ..SimConfig::default()
    };
    match a.planted {
        Some(PlantedArg::A) => cfg.core_bugs.promise_before_durable = true,
        Some(PlantedArg::B) => cfg.core_bugs.ignore_highest_ballot_value = true,
        Some(PlantedArg::C) => cfg.core_bugs.accept_lower_ballot = true,
        Some(PlantedArg::D) => cfg.core_bugs.truncate_suffix_on_conflict = true,
        Some(PlantedArg::Reads) => cfg.node_bugs.local_reads = true,
        Some(PlantedArg::Ack) => cfg.node_bugs.ack_before_chosen = true,
        Some(PlantedArg::Mangle) => cfg.node_bugs.mangle_persisted_values = true,
        Some(PlantedArg::Stuck) => cfg.node_bugs.lose_completions = true,
        Some(PlantedArg::E) => cfg.core_bugs.first_value_wins = true,
        Some(PlantedArg::F) => cfg.core_bugs.promise_forgets_one_value = true,
        Some(PlantedArg::G) => cfg.core_bugs.commit_one_early = true,
        Some(PlantedArg::H) => cfg.core_bugs.sessions_reexecute_retry = true,
        Some(PlantedArg::I) => cfg.core_bugs.no_check_quorum = true,
        Some(PlantedArg::J) => cfg.core_bugs.no_prevote = true,
        None => {}
    }
    let seeds: Vec<u64> = match a.seed {
        Some(s) => vec![s],
        None => (0..a.seeds).collect(),
    };
    let threads = a
        .threads
        .map(|t| usize::try_from(t).unwrap_or(usize::MAX))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = std::io::stderr().is_terminal().then(|| {
        progress_bar(
            Some(seeds.len() as u64),
            "{bar:30} {pos}/{len} seeds  {msg}  [{elapsed_precise}]",
        )
    });
    let violations = AtomicU64::new(0);
    let chosen = AtomicU64::new(0);
    let progress = |r: &SimReport| {
        chosen.fetch_add(r.stats.commands_chosen, Ordering::Relaxed);
        if let Some(v) = &r.violation {
            violations.fetch_add(1, Ordering::Relaxed);
            let line = format!("seed {}: {v}", r.seed);
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
            b.set_message(format!(
                "{} commands chosen, {} violations",
                chosen.load(Ordering::Relaxed),
                violations.load(Ordering::Relaxed)
            ));
        }
    };
    let reports = run_many(&seeds, &cfg, threads, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut total = SimStats::default();
    let mut coverage = CoverageTally::default();
    for r in &reports {
        total.add(&r.stats);
        coverage.add(&r.stats.coverage);
    }
    let failed: Vec<u64> = reports
        .iter()
        .filter(|r| r.violation.is_some())
        .map(|r| r.seed)
        .collect();
    if a.json {
        let out = serde_json::json!({
            "seeds": reports.len(),
            "replicas": cfg.replicas,
            "stats": total,
            "coverage": coverage.to_json(),
            "violations": failed.len(),
            "failed_seeds": failed,
        });
        println!("{out}");
        return u8::from(!failed.is_empty());
    }
    // The coverage line first: the summary stays the last line.
    println!("{}", coverage.summary());
    println!(
        "seeds {} replicas {} steps {} commands chosen {} ops completed {}/{} faults injected {} (crashes {}, torn {}, fsync errors {}, partitions {}, dropped {}, duplicated {}) snapshots taken {} installed {} linearizability searches given up {} violations {}{}",
        reports.len(),
        cfg.replicas,
        total.steps,
        total.commands_chosen,
        total.ops_completed,
        total.ops_issued,
        total.faults(),
        total.crashes,
        total.torn_crashes,
        total.fsync_errors,
        total.partitions,
        total.messages_dropped,
        total.messages_duplicated,
        total.snapshots_taken,
        total.snapshots_installed,
        total.linearizability_unknown,
        failed.len(),
        match failed.first() {
            Some(&s) => format!(" (first: seed {s}; replay with {})", replay_command(&a, s)),
            None => String::new(),
        }
    );
    u8::from(!failed.is_empty())
}

/// The command that replays seed `seed` of this run exactly: every option that changes a run.
fn replay_command(a: &SimArgs, seed: u64) -> String {
    let mut c = format!(
        "paxwal sim --seed {seed} --replicas {} --steps {} --clients {}",
        a.replicas, a.steps, a.clients
    );
    if a.no_faults {
        c.push_str(" --no-faults");
    }
    if let Some(p) = a.planted.and_then(|p| p.to_possible_value()) {
        c.push_str(" --planted ");
        c.push_str(p.get_name());
    }
    c
}

fn parse_replicas(s: &str) -> Result<u32, String> {
    match s {
        "3" => Ok(3),
        "5" => Ok(5),
        _ => Err("the simulated cluster has 3 or 5 replicas".into()),
    }
}

fn parse_steps(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 30 => Ok(n),
        Ok(_) => Err("at least 30 steps: the last third of a run is its liveness phase".into()),
        Err(e) => Err(e.to_string()),
    }
}

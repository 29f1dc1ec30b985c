//! `paxwal demo`: starts a cluster of real `paxwal serve` processes on 127.0.0.1 in a temp
//! dir (real TCP, fsync on, a generated secret), drives a key-value workload, kills the leader
//! halfway (SIGKILL), shows the failover, restarts it and shows it catch up, checks that every
//! acknowledged write is readable from every replica, and ends with a summary table. Exit 0
//! only if every check passed; 130 when interrupted. The cluster is always torn down (also on
//! Ctrl-C).
//!
//! What "readable from every replica" means here: once every replica has applied every slot
//! the leader knew chosen, each key is read from each replica's own state (a local read, no
//! read-index round) and through the cluster (a linearizable read), and each answer must be
//! the key's last acknowledged value, or the value of a later write whose outcome its client
//! never learned (a timeout: it may or may not have been applied).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxwal::bench::cluster::{quantile, ClusterOptions, LocalCluster, NodeStatus};
use paxwal::node::net::Auth;
use paxwal::node::KvClient;
use paxwal::{Error, NodeId};

use crate::progress_bar;

/// Keys each client thread owns.
const KEYS_PER_CLIENT: u64 = 256;
/// One in this many operations is a read of one of the thread's own keys.
const READ_EVERY: u64 = 8;

/// `paxwal demo`'s arguments.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Replicas to start.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// How long the workload runs; the leader is killed at 35 % and restarted at 65 %.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Concurrent clients (one thread and one connection each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Snapshot every N slots (small, so that the killed replica misses compacted slots and
    /// catches up by snapshot transfer).
    #[arg(long, default_value_t = 500, hide = true)]
    snapshot_every: u64,
}

/// What a client thread knows about one of its keys.
#[derive(Default, Clone)]
struct KeyState {
    /// The last acknowledged put's value.
    acked: Option<u64>,
    /// Values of later puts whose outcome is unknown (timed out or failed); an earlier one
    /// can no longer apply once a later put of the same client is acknowledged (sessions).
    unknown: Vec<u64>,
}

impl KeyState {
    fn allows(&self, v: Option<u64>) -> bool {
        match v {
            None => self.acked.is_none(),
            Some(v) => self.acked == Some(v) || self.unknown.contains(&v),
        }
    }
}

#[derive(Default)]
struct ClientTally {
    keys: HashMap<u64, KeyState>,
    put_us: Vec<u64>,
    get_us: Vec<u64>,
    errors: u64,
    stale_reads: Vec<String>,
}

struct Shared {
    stop: AtomicBool,
    start: Instant,
    /// Acknowledged puts so far.
    acked: AtomicU64,
    /// When the leader was killed (ns since `start`; u64::MAX: not yet).
    killed_at_ns: AtomicU64,
    /// First acknowledgement of a put invoked after the kill (ns since `start`).
    resumed_at_ns: AtomicU64,
}

fn key_name(client: usize, k: u64) -> String {
    format!("demo-{client}-{k}")
}

fn client_loop(c: usize, mut kv: KvClient, sh: Arc<Shared>) -> ClientTally {
    let mut t = ClientTally::default();
    let mut i = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        i += 1;
        let k = i % KEYS_PER_CLIENT;
        let key = key_name(c, k);
        let t0 = Instant::now();
        if i % READ_EVERY == 0 {
            let k = (i / READ_EVERY) % KEYS_PER_CLIENT;
            let key = key_name(c, k);
            match kv.get(key.as_bytes()) {
                Ok(v) => {
                    t.get_us.push(t0.elapsed().as_micros() as u64);
                    let v = v.and_then(|b| std::str::from_utf8(&b).ok()?.parse::<u64>().ok());
                    let st = t.keys.get(&k).cloned().unwrap_or_default();
                    if !st.allows(v) {
                        t.stale_reads.push(format!(
                            "{key}: read {v:?}, last acknowledged {:?}",
                            st.acked
                        ));
                    }
                }
                Err(_) => t.errors += 1,
            }
            continue;
        }
        let value = i;
        let invoked_ns = sh.start.elapsed().as_nanos() as u64;
        match kv.put(key.as_bytes(), value.to_string().as_bytes()) {
            Ok(()) => {
                t.put_us.push(t0.elapsed().as_micros() as u64);
                let st = t.keys.entry(k).or_default();
                st.acked = Some(value);
                st.unknown.clear();
                sh.acked.fetch_add(1, Ordering::Relaxed);
                if invoked_ns > sh.killed_at_ns.load(Ordering::Relaxed) {
                    let now = sh.start.elapsed().as_nanos() as u64;
                    sh.resumed_at_ns.fetch_min(now, Ordering::Relaxed);
                }
            }
            Err(_) => {
                t.errors += 1;
                t.keys.entry(k).or_default().unknown.push(value);
            }
        }
    }
    t
}

/// Prints above the progress line (or plainly without one).
struct Out(Option<indicatif::ProgressBar>);

impl Out {
    fn line(&self, s: &str) {
        match &self.0 {
            Some(b) => b.println(s),
            None => println!("{s}"),
        }
    }
    fn progress(&self, s: String) {
        if let Some(b) = &self.0 {
            b.set_message(s);
        }
    }
    fn done(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn fmt_us(us: u64) -> String {
    if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} us")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// Runs `paxwal demo`; returns its exit code.
pub fn run(a: DemoArgs) -> Result<u8, Error> {
    if a.replicas < 3 || a.clients == 0 || !(a.seconds.is_finite() && a.seconds >= 4.0) {
        eprintln!("paxwal demo: needs --replicas >= 3 (to survive a leader's death), --clients >= 1 and --seconds >= 4");
        return Ok(crate::EXIT_USAGE);
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&interrupted))
            .map_err(|e| Error::Invalid(format!("cannot install a signal handler: {e}")))?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find the paxwal binary: {e}")))?;
    let fail = |e: paxwal::bench::cluster::ClusterError| Error::Invalid(format!("demo: {e}"));
    println!(
        "paxwal demo: {} replicas as `paxwal serve` processes on 127.0.0.1 (fsync on, generated secret), {} clients, {} s",
        a.replicas, a.clients, a.seconds
    );
    let mut cluster = LocalCluster::start(
        &exe,
        ClusterOptions {
            replicas: a.replicas,
            snapshot_every_slots: Some(a.snapshot_every),
            ..ClusterOptions::default()
        },
    )
    .map_err(fail)?;
    let leader0 = cluster.wait_leader(Duration::from_secs(30)).map_err(fail)?;
    let ports: Vec<String> = cluster
        .replicas()
        .iter()
        .map(|r| format!("n{} {}", r.id.0, r.client_addr))
        .collect();
    println!(
        "  cluster up in {}: {}; n{} leads",
        cluster.dir().display(),
        ports.join(", "),
        leader0.0
    );
    let r = drive(&mut cluster, &a, &interrupted);
    // The cluster (children, temp dir) goes when `cluster` drops, whatever happened.
    match r {
        Ok(code) => Ok(code),
        Err(Stop::Interrupted) => {
            eprintln!("paxwal demo: interrupted; cluster stopped and removed");
            Ok(130)
        }
        Err(Stop::Failed(e)) => Err(Error::Invalid(format!("demo: {e}"))),
    }
}

enum Stop {
    Interrupted,
    Failed(String),
}

impl From<paxwal::bench::cluster::ClusterError> for Stop {
    fn from(e: paxwal::bench::cluster::ClusterError) -> Stop {
        Stop::Failed(e.0)
    }
}

/// A check and whether it passed.
struct Check(String, bool);

fn drive(cluster: &mut LocalCluster, a: &DemoArgs, interrupted: &AtomicBool) -> Result<u8, Stop> {
    let total = Duration::from_secs_f64(a.seconds);
    let kill_at = total.mul_f64(0.35);
    let restart_at = total.mul_f64(0.65);
    let sh = Arc::new(Shared {
        stop: AtomicBool::new(false),
        start: Instant::now(),
        acked: AtomicU64::new(0),
        killed_at_ns: AtomicU64::new(u64::MAX),
        resumed_at_ns: AtomicU64::new(u64::MAX),
    });
    let out = Out(std::io::stderr().is_terminal().then(|| {
        let b = progress_bar(None, "{spinner} {msg}");
        b.enable_steady_tick(Duration::from_millis(120));
        b
    }));
    let mut threads = Vec::new();
    for c in 0..a.clients {
        let kv = cluster.client().with_timeout(Duration::from_secs(5));
        let sh = Arc::clone(&sh);
        threads.push(
            std::thread::Builder::new()
                .name(format!("demo-client-{c}"))
                .spawn(move || client_loop(c, kv, sh))
                .map_err(|e| Stop::Failed(format!("cannot start a client thread: {e}")))?,
        );
    }
    let stop_clients = |threads: Vec<std::thread::JoinHandle<ClientTally>>| {
        sh.stop.store(true, Ordering::Relaxed);
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let mut killed: Option<(NodeId, u64)> = None;
    let mut new_leader: Option<NodeId> = None;
    let mut killed_fsyncs = 0u64;
    let mut restarted: Option<(Instant, u64)> = None;
    let mut caught_up: Option<(f64, u64, NodeStatus)> = None;
    let mut last_status = Instant::now() - Duration::from_secs(1);
    let mut leader_seen: Option<NodeId> = None;
    let mut rate_mark = (Instant::now(), 0u64);
    let mut rate = 0.0;
    while sh.start.elapsed() < total
        || (restarted.is_some() && caught_up.is_none() && sh.start.elapsed() < total * 3)
    {
        if interrupted.load(Ordering::Relaxed) {
            out.done();
            stop_clients(threads);
            return Err(Stop::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(100));
        let now = sh.start.elapsed();
        if last_status.elapsed() >= Duration::from_millis(500) {
            last_status = Instant::now();
            leader_seen = cluster
                .statuses()
                .into_iter()
                .find(|(_, s)| s.is_leader())
                .map(|(id, _)| id);
            let n = sh.acked.load(Ordering::Relaxed);
            let dt = rate_mark.0.elapsed().as_secs_f64();
            if dt > 0.0 {
                rate = (n - rate_mark.1) as f64 / dt;
            }
            rate_mark = (Instant::now(), n);
        }
        if killed.is_none() && now >= kill_at {
            let leader = cluster.wait_leader(Duration::from_secs(10))?;
            let st = cluster.status(leader)?;
            killed_fsyncs = st.u64("fsyncs");
            cluster.kill(leader)?;
            sh.killed_at_ns
                .store(sh.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            out.line(&format!(
                "  {:5.1} s  killed the leader n{} (SIGKILL) at slot {} with {} writes acknowledged",
                now.as_secs_f64(),
                leader.0,
                thousands(st.applied()),
                thousands(sh.acked.load(Ordering::Relaxed))
            ));
            killed = Some((leader, st.applied()));
        }
        if let (Some((dead, _)), None) = (killed, new_leader) {
            let resumed = sh.resumed_at_ns.load(Ordering::Relaxed);
            if resumed != u64::MAX {
                let l = cluster.wait_leader(Duration::from_secs(10))?;
                let killed_ns = sh.killed_at_ns.load(Ordering::Relaxed);
                out.line(&format!(
                    "  {:5.1} s  n{} elected; writes resumed {:.2} s after n{} died",
                    secs(resumed),
                    l.0,
                    secs(resumed - killed_ns),
                    dead.0
                ));
                new_leader = Some(l);
            }
        }
        if let (Some((dead, was_at)), None) = (killed, restarted) {
            if now >= restart_at {
                let leader = cluster.wait_leader(Duration::from_secs(10))?;
                let st = cluster.status(leader)?;
                let target = st.chosen();
                let t0 = Instant::now();
                cluster.restart(dead)?;
                out.line(&format!(
                    "  {:5.1} s  restarted n{} (answering after {:.1} s; it stopped at slot {}; the leader is at slot {}, its log starts at slot {})",
                    sh.start.elapsed().as_secs_f64(),
                    dead.0,
                    t0.elapsed().as_secs_f64(),
                    thousands(was_at),
                    thousands(target),
                    thousands(st.u64("log_start"))
                ));
                restarted = Some((Instant::now(), target));
            }
        }
        if let (Some((dead, _)), Some((t0, target)), None) = (killed, restarted, &caught_up) {
            if let Ok(s) = cluster.status(dead) {
                if s.applied() >= target {
                    let took = t0.elapsed().as_secs_f64();
                    let how = if s.u64("snapshots_installed") > 0 {
                        format!(
                            "by snapshot transfer ({} snapshot(s) installed, {} chunk(s)) and the log",
                            s.u64("snapshots_installed"),
                            s.u64("chunks_received")
                        )
                    } else {
                        "from the leader's log".to_string()
                    };
                    out.line(&format!(
                        "  {:5.1} s  n{} caught up in {took:.2} s, {how}",
                        sh.start.elapsed().as_secs_f64(),
                        dead.0
                    ));
                    caught_up = Some((took, target, s));
                }
            }
        }
        let up = cluster
            .replicas()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|id| cluster.is_up(*id))
            .count();
        out.progress(format!(
            "{:5.1} s  {} writes acknowledged  {:>7.0}/s  leader {}  {up}/{} replicas up",
            now.as_secs_f64(),
            thousands(sh.acked.load(Ordering::Relaxed)),
            rate,
            leader_seen.map_or("-".to_string(), |l| format!("n{}", l.0)),
            a.replicas
        ));
    }
    let run_secs = sh.start.elapsed().as_secs_f64();
    let tallies = stop_clients(threads);
    out.done();
    let run_secs = run_secs.min(sh.start.elapsed().as_secs_f64());

    // The checks.
    let mut checks = Vec::new();
    let stale: Vec<&String> = tallies.iter().flat_map(|t| &t.stale_reads).collect();
    let reads: usize = tallies.iter().map(|t| t.get_us.len()).sum();
    checks.push(Check(
        format!(
            "every read during the run saw its client's latest acknowledged write ({} reads{})",
            thousands(reads as u64),
            stale
                .first()
                .map_or(String::new(), |s| format!("; first stale: {s}"))
        ),
        stale.is_empty(),
    ));
    let resumed = sh.resumed_at_ns.load(Ordering::Relaxed);
    let killed_ns = sh.killed_at_ns.load(Ordering::Relaxed);
    let failover =
        (resumed != u64::MAX && killed_ns != u64::MAX).then(|| secs(resumed - killed_ns));
    checks.push(Check(
        "writes resumed after the leader was killed".into(),
        failover.is_some(),
    ));
    checks.push(Check(
        "the restarted replica caught up".into(),
        caught_up.is_some(),
    ));
    let converged = cluster.wait_converged(Duration::from_secs(30));
    checks.push(Check(
        match &converged {
            Ok(slot) => format!(
                "every replica applied every chosen slot (up to slot {})",
                thousands(*slot)
            ),
            Err(e) => format!("every replica applied every chosen slot: {e}"),
        },
        converged.is_ok(),
    ));
    let statuses = cluster.statuses();
    let (bad, looked) = check_reads(cluster, &tallies);
    checks.push(Check(
        format!(
            "every acknowledged write is readable from every replica and through the cluster ({} keys x {} replicas + linearizable reads{})",
            thousands(tallies.iter().map(|t| t.keys.len() as u64).sum()),
            a.replicas,
            bad.first().map_or(String::new(), |b| format!("; first wrong: {b}"))
        ),
        bad.is_empty() && looked > 0,
    ));

    // The summary.
    let mut put_us: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.put_us.iter().copied())
        .collect();
    put_us.sort_unstable();
    let mut get_us: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.get_us.iter().copied())
        .collect();
    get_us.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let disk: Vec<String> = cluster
        .replicas()
        .iter()
        .map(|r| {
            format!(
                "n{} {}",
                r.id.0,
                mib(paxwal::bench::cluster::dir_bytes(&r.data_dir))
            )
        })
        .collect();
    let fsyncs: Vec<(NodeId, u64)> = statuses
        .iter()
        .map(|(id, s)| {
            let before = match killed {
                Some((k, _)) if k == *id => killed_fsyncs,
                _ => 0,
            };
            (*id, s.u64("fsyncs") + before)
        })
        .collect();
    let leader_cpf = statuses
        .iter()
        .find(|(_, s)| s.is_leader())
        .map(|(_, s)| s.get("commands_per_fsync").unwrap_or("?").to_string())
        .unwrap_or_else(|| "?".into());
    let total_fsyncs: u64 = fsyncs.iter().map(|(_, f)| f).sum();
    println!();
    let row = |k: &str, v: String| println!("  {k:<20} {v}");
    println!("summary");
    row(
        "writes",
        format!(
            "{} acknowledged in {run_secs:.1} s: {:.0} commands/s ({} timed out or failed, outcome checked)",
            thousands(put_us.len() as u64),
            put_us.len() as f64 / run_secs,
            thousands(errors)
        ),
    );
    row(
        "write latency",
        format!(
            "p50 {}, p99 {} (client-observed, fsync on a majority)",
            fmt_us(quantile(&put_us, 0.5)),
            fmt_us(quantile(&put_us, 0.99))
        ),
    );
    row(
        "read latency",
        format!(
            "p50 {}, p99 {} (linearizable: read index)",
            fmt_us(quantile(&get_us, 0.5)),
            fmt_us(quantile(&get_us, 0.99))
        ),
    );
    row(
        "failover",
        match (killed, failover) {
            (Some((k, _)), Some(f)) => format!(
                "{f:.2} s from SIGKILL of leader n{} to the first write acknowledged after it",
                k.0
            ),
            _ => "writes did not resume".into(),
        },
    );
    row(
        "catch-up",
        match &caught_up {
            Some((took, target, s)) => format!(
                "{took:.2} s to apply {} slots ({} snapshot(s) installed)",
                thousands(*target),
                s.u64("snapshots_installed")
            ),
            None => "did not catch up".into(),
        },
    );
    row(
        "fsyncs",
        format!(
            "{} ({}); {leader_cpf} commands per fsync on the leader",
            thousands(total_fsyncs),
            fsyncs
                .iter()
                .map(|(id, f)| format!("n{} {}", id.0, thousands(*f)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    row(
        "bytes on disk",
        format!("{} ({})", mib(cluster.disk_bytes()), disk.join(", ")),
    );
    let passed = checks.iter().filter(|c| c.1).count();
    row("checks", format!("{passed}/{} passed", checks.len()));
    for c in &checks {
        println!("    {} {}", if c.1 { "ok  " } else { "FAIL" }, c.0);
    }
    Ok(if passed == checks.len() { 0 } else { 1 })
}

/// Reads every key each client wrote from every replica (local reads, once they converged)
/// and through the cluster (linearizable); returns the wrong answers and how many reads were
/// made.
fn check_reads(cluster: &LocalCluster, tallies: &[ClientTally]) -> (Vec<String>, u64) {
    let auth: Auth = cluster.auth();
    let mut targets: Vec<Option<SocketAddr>> = cluster
        .replicas()
        .iter()
        .map(|r| Some(r.client_addr))
        .collect();
    targets.push(None);
    let tallies = Arc::new(tallies.iter().map(|t| t.keys.clone()).collect::<Vec<_>>());
    let results = Mutex::new((Vec::new(), 0u64));
    std::thread::scope(|s| {
        for target in &targets {
            let (auth, tallies, results) = (auth.clone(), Arc::clone(&tallies), &results);
            let cluster_addrs = cluster.client_addrs();
            s.spawn(move || {
                let mut kv =
                    KvClient::new(cluster_addrs, auth).with_timeout(Duration::from_secs(10));
                let mut bad = Vec::new();
                let mut n = 0u64;
                'all: for (c, keys) in tallies.iter().enumerate() {
                    for (k, st) in keys {
                        let key = key_name(c, *k);
                        let r = match target {
                            Some(addr) => kv.get_local(*addr, key.as_bytes()),
                            None => kv.get(key.as_bytes()),
                        };
                        let place = target.map_or("the cluster".to_string(), |a| a.to_string());
                        match r {
                            Ok(v) => {
                                n += 1;
                                let v = v.and_then(|b| {
                                    std::str::from_utf8(&b).ok()?.parse::<u64>().ok()
                                });
                                if !st.allows(v) {
                                    bad.push(format!(
                                        "{key} via {place}: {v:?}, last acknowledged {:?}",
                                        st.acked
                                    ));
                                }
                            }
                            Err(e) => {
                                bad.push(format!("{key} via {place}: {e}"));
                                break 'all;
                            }
                        }
                    }
                }
                if let Ok(mut r) = results.lock() {
                    r.0.extend(bad);
                    r.1 += n;
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

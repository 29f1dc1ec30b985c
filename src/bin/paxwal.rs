//! The `paxwal` command-line tool: benchmark, append to, dump, verify and inspect logs.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use paxwal::bench::{self, BenchConfig};
use paxwal::wal::verify::{self, SegmentState};
use paxwal::wal::{Options, SyncMode, Wal};
use paxwal::{Error, Lsn};

#[derive(Parser)]
#[command(
    name = "paxwal",
    version,
    about = "A replicated write-ahead log: benchmark, append, dump, verify and inspect logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with a log directory.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Benchmark durable appends against the raw disk, in one run.
    Bench(BenchArgs),
    /// Run the deterministic cluster simulation (the real Paxos core and acceptor store on
    /// simulated disks and network, with faults) and check it. Exit 1 on any violation.
    #[cfg(feature = "sim")]
    Sim(SimArgs),
}

#[cfg(feature = "sim")]
#[derive(clap::Args)]
struct SimArgs {
    /// Number of seeds to run (seeds 0..N).
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// Run this one seed (replays a failure exactly).
    #[arg(long)]
    seed: Option<u64>,
    /// Replicas in the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    replicas: u32,
    /// Simulated steps per seed (the last third is the liveness phase).
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(30..))]
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
    /// complete).
    #[arg(long, value_enum)]
    planted: Option<PlantedArg>,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the summary as one JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "sim")]
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
}

#[derive(Subcommand)]
enum LogCommand {
    /// Append stdin's lines (one entry each, without the newline); print each entry's LSN once
    /// it is durable.
    Append {
        /// The log directory (created if missing).
        dir: PathBuf,
        /// Segment size in bytes (for tests).
        #[arg(long, hide = true)]
        segment_bytes: Option<u64>,
    },
    /// Print `LSN<TAB>payload` for each entry, in order. Read-only.
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// First LSN to print.
        #[arg(long)]
        from: Option<u64>,
        /// Last LSN to print.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Check every checksum. Read-only. Exit 0 clean, 1 torn tail only, 2 corruption.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One line per segment: name, LSN range, bytes used/allocated, state.
    Inspect {
        /// The log directory.
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SyncArg {
    Always,
    Batched,
    Never,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Directory to run in (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Writer threads.
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// Bytes per entry.
    #[arg(long, default_value_t = 128)]
    entry_bytes: usize,
    /// Entries to append in all (default 20,000 unless --seconds is given).
    #[arg(long, conflicts_with = "seconds")]
    entries: Option<u64>,
    /// Run for this many seconds instead.
    #[arg(long)]
    seconds: Option<f64>,
    /// Sync mode.
    #[arg(long, value_enum, default_value = "always")]
    sync: SyncArg,
    /// Entries per append call.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Skip the raw-disk measurement.
    #[arg(long)]
    no_raw: bool,
    /// Sparse segments instead of zero-filled ones.
    #[arg(long)]
    sparse: bool,
    /// Fill the log with this many MiB (64 KiB entries) before the measured run.
    #[arg(long, default_value_t = 0)]
    prefill_mib: usize,
    /// Run the peer comparison instead (paxwal, okaywal, raft-engine, raw disk; needs a build
    /// with `--features compare`); prints markdown tables. With --paxos: also run omnipaxos
    /// 0.2.4 with its RocksDB storage in the same harness (needs `--features compare-omnipaxos`).
    #[arg(long)]
    compare: bool,
    /// With --compare: write an SVG chart (throughput vs writers) here.
    #[arg(long, requires = "compare")]
    chart: Option<PathBuf>,
    /// Instead of appending: build a log of this many MiB (4 KiB entries) and time reopening
    /// it with every checksum verified (warm, and cold where the page cache can be dropped).
    #[arg(long)]
    reopen_mib: Option<usize>,
    /// Instead of appending: the replication benchmark (3 replicas, each with its acceptor
    /// store on its own log in --dir, messages in memory, 64 B commands); --batch is then the
    /// most commands per slot and --entries the commands to commit (default 1,000,000).
    #[arg(long, conflicts_with = "reopen_mib")]
    paxos: bool,
    /// With --paxos: commands in flight (proposed, not yet committed on the leader).
    #[arg(long, default_value_t = 1024, requires = "paxos")]
    in_flight: u64,
}

fn main() -> ExitCode {
    // A bad command line exits 64 (EX_USAGE), never 2, which `log verify` uses for corruption.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage_error { 64 } else { 0 });
        }
    };
    // The simulator injects thousands of I/O errors on purpose; its logs stay off unless
    // PAXWAL_LOG asks for them.
    #[cfg(feature = "sim")]
    let quiet = matches!(cli.command, Command::Sim(_));
    #[cfg(not(feature = "sim"))]
    let quiet = false;
    let filter = match std::env::var("PAXWAL_LOG") {
        Ok(f) => tracing_subscriber::EnvFilter::new(f),
        Err(_) if quiet => tracing_subscriber::EnvFilter::new("off"),
        Err(_) => tracing_subscriber::EnvFilter::new("error"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let r = match cli.command {
        Command::Log { command } => match command {
            LogCommand::Append { dir, segment_bytes } => append(dir, segment_bytes),
            LogCommand::Dump { dir, from, to } => dump(dir, from, to),
            LogCommand::Verify { dir, json } => verify_cmd(dir, json),
            LogCommand::Inspect { dir } => inspect(dir),
        },
        Command::Bench(args) => bench_cmd(args),
        #[cfg(feature = "sim")]
        Command::Sim(args) => Ok(sim_cmd(args)),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("paxwal: {e}");
            ExitCode::from(if matches!(e, Error::Corruption { .. }) {
                2
            } else {
                1
            })
        }
    }
}

fn append(dir: PathBuf, segment_bytes: Option<u64>) -> Result<u8, Error> {
    let mut opts = Options::default();
    if let Some(b) = segment_bytes {
        opts.segment_bytes = b;
    }
    let wal = Wal::open(&dir, opts)?;
    let (tx, rx) = crossbeam::channel::unbounded();
    std::thread::scope(|s| -> Result<u8, Error> {
        let wal = &wal;
        // The reader keeps submitting while earlier entries wait for their fsync, so one
        // fsync covers every line read meanwhile (group commit).
        let reader = s.spawn(move || -> Result<(), Error> {
            let stdin = std::io::stdin();
            let mut lines = stdin.lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = lines
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| Error::io("read", "stdin", e))?;
                if n == 0 {
                    return Ok(());
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let t = wal.submit(&buf)?;
                if tx.send(t).is_err() {
                    return Ok(());
                }
            }
        });
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for t in rx.iter() {
            wal.wait_durable(&t)?;
            writeln!(out, "{}", t.last).map_err(|e| Error::io("write", "stdout", e))?;
            if rx.is_empty() {
                out.flush().map_err(|e| Error::io("write", "stdout", e))?;
            }
        }
        out.flush().map_err(|e| Error::io("write", "stdout", e))?;
        reader
            .join()
            .map_err(|_| Error::Invalid("the stdin reader panicked".into()))??;
        Ok(0)
    })?;
    wal.close()?;
    Ok(0)
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

fn dump(dir: PathBuf, from: Option<u64>, to: Option<u64>) -> Result<u8, Error> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a log directory",
            dir.display()
        )));
    }
    let wal = Wal::open(&dir, read_only())?;
    let from = Lsn(from.unwrap_or(0)).max(wal.first_lsn());
    let to = Lsn(to.unwrap_or(u64::MAX)).min(wal.last_lsn());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_all = || -> std::io::Result<Result<(), Error>> {
        if from <= to {
            for r in wal.iter(from..=to) {
                let (lsn, entry) = match r {
                    Ok(x) => x,
                    Err(e) => return Ok(Err(e)),
                };
                write!(out, "{lsn}\t")?;
                out.write_all(&entry)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(Ok(()))
    };
    match write_all() {
        Ok(r) => r.map(|_| 0),
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("write", "stdout", e)),
    }
}

fn verify_cmd(dir: PathBuf, json: bool) -> Result<u8, Error> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a log directory",
            dir.display()
        )));
    }
    let report = verify::verify(&dir)?;
    if json {
        let s = serde_json::to_string(&report).map_err(|e| Error::Invalid(e.to_string()))?;
        println!("{s}");
    } else {
        println!(
            "{} segment(s), LSN {}..={}",
            report.segments.len(),
            report.first_lsn,
            report.last_lsn
        );
        if let Some(t) = &report.torn {
            let last = t
                .last_lsn
                .map_or_else(|| "the end".to_owned(), |l| l.to_string());
            println!(
                "torn tail in {} at offset {}: LSN {} to {} were never acknowledged and would be dropped",
                t.segment, t.offset, t.first_lsn, last
            );
        }
        match &report.corruption {
            Some(c) => println!("CORRUPTION: {c}"),
            None if report.torn.is_none() => println!("clean: every checksum verified"),
            None => {}
        }
    }
    Ok(report.exit_code() as u8)
}

fn inspect(dir: PathBuf) -> Result<u8, Error> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a log directory",
            dir.display()
        )));
    }
    let report = verify::verify(&dir)?;
    for s in &report.segments {
        let range = if s.records == 0 {
            "-".to_owned()
        } else {
            format!("{}..={}", s.first_lsn, s.first_lsn + s.records - 1)
        };
        let state = match s.state {
            SegmentState::Sealed => "sealed",
            SegmentState::Active if s.records == 0 => "active (empty)",
            SegmentState::Active => "active",
            SegmentState::Spare => "spare (prepared, empty)",
            SegmentState::Unreachable => "unreachable (after damage)",
        };
        println!(
            "{}\tLSN {}\t{} / {} bytes\t{}",
            s.name, range, s.used_bytes, s.allocated_bytes, state
        );
    }
    Ok(0)
}

fn bench_cmd(a: BenchArgs) -> Result<u8, Error> {
    let tmp;
    let dir = match a.dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create dir", &d, e))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().map_err(|e| Error::io("create temp dir", "", e))?;
            tmp.path().to_owned()
        }
    };
    if a.paxos {
        return paxos_bench(
            &dir,
            a.in_flight,
            a.batch,
            a.entries,
            (!a.no_raw, !a.sparse, a.compare),
            a.json,
        );
    }
    if a.compare {
        return compare(&dir, a.chart.as_deref());
    }
    if let Some(mib) = a.reopen_mib {
        let r = bench::reopen(&dir, mib)?;
        if a.json {
            let s = serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string()))?;
            println!("{s}");
        } else {
            println!(
                "reopen of {} MiB (4 KiB entries, every checksum verified): warm {:.3} s (best of 3; all: {:?})",
                r.mib, r.warm_open_seconds[0], r.warm_open_seconds
            );
            match (r.cold_open_seconds, r.cold_raw_read_mib_per_sec, r.ratio_cold_open_to_raw_read) {
                (Some(c), Some(raw), Some(ratio)) => println!(
                    "  cold {c:.3} s; a plain cold read of the same files runs at {raw:.0} MiB/s; cold open = {ratio:.2} x that rate"
                ),
                _ => println!("  cold: skipped (dropping the page cache needs root)"),
            }
        }
        return Ok(0);
    }
    let delay = Duration::from_millis(1);
    let cfg = BenchConfig {
        dir,
        writers: a.writers,
        entry_bytes: a.entry_bytes,
        entries: if a.seconds.is_some() {
            a.entries
        } else {
            Some(a.entries.unwrap_or(20_000))
        },
        seconds: a.seconds,
        sync: match a.sync {
            SyncArg::Always => SyncMode::Always,
            SyncArg::Batched => SyncMode::Batched { max_delay: delay },
            SyncArg::Never => SyncMode::Never { max_delay: delay },
        },
        batch: a.batch,
        raw: !a.no_raw,
        zero_fill: !a.sparse,
        prefill_mib: a.prefill_mib,
    };
    let bar = (std::io::stdout().is_terminal() && !a.json).then(|| {
        progress_bar(
            cfg.entries,
            "{spinner} appending [{bar:40}] {pos}/{len} {per_sec}",
        )
    });
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let r = bench::run(&cfg, &progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if a.json {
        let s = serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string()))?;
        println!("{s}");
        return Ok(0);
    }
    println!(
        "paxwal: {} writer(s) x {} B, sync {}, {} entr{} per call",
        r.writers,
        r.entry_bytes,
        r.sync,
        r.batch,
        if r.batch == 1 { "y" } else { "ies" }
    );
    println!(
        "  {} entries in {:.2} s: {:.0} entries/s, {:.1} MiB/s, p50 {:.0} us, p99 {:.0} us",
        r.entries, r.seconds, r.entries_per_sec, r.mib_per_sec, r.p50_us, r.p99_us
    );
    println!(
        "  {} fsyncs, {:.2} entries per fsync",
        r.fsyncs, r.entries_per_fsync
    );
    println!(
        "  log: {} entries ({} MiB prefilled); resident: {:.1} MiB anonymous ({:.1} bytes per entry), {:.0} MiB file-backed (mapped segments)",
        r.log_entries,
        r.prefill_mib,
        r.rss_anon_mib,
        r.rss_anon_mib * (1 << 20) as f64 / r.log_entries.max(1) as f64,
        r.rss_file_mib
    );
    if r.raw_fsync_per_sec > 0.0 {
        println!(
            "raw disk, same directory, same run: {:.0} fdatasync/s after a 4 KiB overwrite, {:.0} MiB/s sequential write",
            r.raw_fsync_per_sec, r.raw_seq_mib_per_sec
        );
        println!(
            "  ratios: append calls/s = {:.2} x raw fdatasync rate; MiB/s = {:.2} x raw sequential",
            r.ratio_calls_to_raw_fsync, r.ratio_mib_to_raw_seq
        );
        if let (Some(raw), Some(ratio)) =
            (r.raw_batch_entries_per_sec, r.ratio_entries_to_raw_batch)
        {
            println!(
                "  raw write+fdatasync loop over the same batches: {raw:.0} entries/s; paxwal = {ratio:.2} x"
            );
        }
    }
    Ok(0)
}

#[cfg(feature = "compare")]
fn compare(dir: &std::path::Path, chart: Option<&std::path::Path>) -> Result<u8, Error> {
    let t =
        paxwal::compare::table(dir, chart).map_err(|e| Error::Invalid(format!("compare: {e}")))?;
    print!("{t}");
    Ok(0)
}

#[cfg(not(feature = "compare"))]
fn compare(_: &std::path::Path, _: Option<&std::path::Path>) -> Result<u8, Error> {
    Err(Error::Invalid(
        "this build has no peer engines: run `cargo run --release --features compare -- bench --compare`".into(),
    ))
}

#[cfg(feature = "sim")]
fn sim_cmd(a: SimArgs) -> u8 {
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
        None => {}
    }
    let seeds: Vec<u64> = match a.seed {
        Some(s) => vec![s],
        None => (0..a.seeds).collect(),
    };
    let threads = a
        .threads
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
            Some(s) => format!(
                " (first: seed {s}; replay with paxwal sim --seed {s} --replicas {} --steps {})",
                cfg.replicas, cfg.steps
            ),
            None => String::new(),
        }
    );
    println!("{}", coverage.summary());
    u8::from(!failed.is_empty())
}

/// A progress bar of `len` steps (a spinner if unknown) drawn with `template`.
fn progress_bar(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    let b = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

fn paxos_bench(
    dir: &std::path::Path,
    in_flight: u64,
    batch: usize,
    entries: Option<u64>,
    (raw, zero_fill, omnipaxos): (bool, bool, bool),
    json: bool,
) -> Result<u8, Error> {
    let commands = entries.unwrap_or(1_000_000);
    let cfg = paxwal::replbench::ReplBenchConfig {
        dir: dir.to_owned(),
        in_flight,
        batch,
        commands,
        warmup: (commands / 10).min(100_000),
        raw,
        zero_fill,
        omnipaxos,
    };
    let r = paxwal::replbench::run(&cfg)?;
    if json {
        let s = serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string()))?;
        println!("{s}");
        return Ok(0);
    }
    println!(
        "paxos: 3 replicas, acceptor stores on one disk (fsync on{}), {} B commands, {} in flight, at most {} per slot ({} slots in flight)",
        if r.zero_fill { "" } else { ", sparse segments" },
        r.payload_bytes, r.in_flight, r.batch, r.window_slots
    );
    println!(
        "  {} commands committed in {:.2} s: {:.0} commands/s; propose to commit p50 {:.0} us, p99 {:.0} us",
        r.commands, r.seconds, r.commands_per_sec, r.commit_p50_us, r.commit_p99_us
    );
    println!(
        "  {} fdatasyncs over the 3 stores ({:.0}/s), {:.1} commands per fdatasync; {:.2} Accept values sent per slot (2: none resent)",
        r.fsyncs, r.fsyncs_per_sec, r.commands_per_fsync, r.accepts_sent_per_slot
    );
    println!(
        "  written: {:.0} MiB/s (the three logs' frames and the zero-filling of new segments); resident: {:.0} MiB anonymous, {:.0} MiB file-backed",
        r.written_mib_per_sec, r.rss_anon_mib, r.rss_file_mib
    );
    if r.raw_fsync_per_sec > 0.0 {
        println!(
            "raw disk, same directory, same run: {:.0} fdatasync/s (one file), {:.0} fdatasync/s (three files, one thread each), {:.0} MiB/s sequential write",
            r.raw_fsync_per_sec, r.raw_fsync3_per_sec, r.raw_seq_mib_per_sec
        );
        println!(
            "  ratios: commands/s = {:.0} x the raw fdatasync rate; the stores' fdatasyncs/s = {:.2} x the raw three-file rate; written MiB/s = {:.2} x raw sequential",
            r.ratio_commands_to_raw_fsync, r.ratio_fsyncs_to_raw_fsync3, r.ratio_write_to_raw_seq
        );
    }
    if let (Some(o), Some(ratio)) = (r.omnipaxos_per_sec, r.ratio_to_omnipaxos) {
        println!(
            "omnipaxos 0.2.4 + RocksDB storage (sync writes), same harness, same run: {o:.0} commands/s; paxwal = {ratio:.2} x"
        );
    }
    if let (Some(q), Some(ratio)) = (r.omnipaxos_quoted_per_sec, r.ratio_to_omnipaxos_quoted) {
        println!(
            "  vs omnipaxos 0.2.4 + RocksDB storage, {q:.0} commands/s quoted for this configuration (not measured in this run): {ratio:.2} x"
        );
    }
    Ok(0)
}

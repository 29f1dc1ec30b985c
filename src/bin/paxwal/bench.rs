//! `paxwal bench`: the append benchmark, the reopen benchmark, the replication benchmark
//! (`--paxos`) and the peer comparison (`--compare`), each measured beside the raw disk.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use paxwal::bench::{self, BenchConfig};
use paxwal::wal::SyncMode;
use paxwal::Error;

use crate::{print_json, progress_bar};

#[derive(Clone, Copy, ValueEnum)]
enum SyncArg {
    Always,
    Batched,
    Never,
}

/// `paxwal bench`'s arguments.
#[derive(clap::Args)]
pub struct BenchArgs {
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
    #[arg(long, conflicts_with = "seconds", value_parser = clap::value_parser!(u64).range(1..))]
    entries: Option<u64>,
    /// Run for this many seconds instead (more than 0).
    #[arg(long, value_parser = parse_seconds)]
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
    /// Write synced groups through the page cache instead of with direct I/O.
    #[arg(long)]
    buffered: bool,
    /// Waiting writers park at once instead of yielding the CPU until their sync ends.
    #[arg(long)]
    no_spin: bool,
    /// Fill the log with this many MiB (64 KiB entries) before the measured run.
    #[arg(long, default_value_t = 0)]
    prefill_mib: usize,
    /// Compact behind the writers, keeping about this many MiB of entries (as a user taking
    /// snapshots would), so compacted segment files are recycled as the next segments.
    #[arg(long, conflicts_with_all = ["paxos", "reopen_mib", "compare"])]
    retain_mib: Option<usize>,
    /// Run the peer comparison instead (paxwal, okaywal, raft-engine, raw disk; needs a build
    /// with `--features compare`, and `--features compare-rocksdb` to add RocksDB); prints
    /// markdown tables. With --paxos: also run omnipaxos 0.2.4 with its RocksDB storage in the
    /// same harness (needs `--features compare-omnipaxos`).
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
    /// Instead of appending: the cluster benchmark: 3 `paxwal serve` processes on loopback
    /// (fsync on), 64 B puts from --clients concurrent clients (default: 1, 16 and 256 in
    /// turn, a fresh cluster each) for --seconds each (default 5).
    #[arg(long, conflicts_with_all = ["paxos", "reopen_mib", "compare", "entries"])]
    cluster: bool,
    /// With --cluster: concurrent clients.
    #[arg(long, requires = "cluster")]
    clients: Option<usize>,
    /// With --cluster: one command per slot (to measure what batching buys).
    #[arg(long, requires = "cluster")]
    no_batching: bool,
    /// With --paxos: commands in flight (proposed, not yet committed on the leader).
    #[arg(long, default_value_t = 1024, requires = "paxos")]
    in_flight: u64,
}

/// Runs `paxwal bench`; returns its exit code.
pub fn run(a: BenchArgs) -> Result<u8, Error> {
    if a.cluster {
        return crate::bench_cluster::run(a.clients, a.seconds, !a.no_batching, a.json);
    }
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
            (!a.no_raw, !a.sparse, a.no_spin, a.compare),
            a.json,
        );
    }
    if a.compare {
        return compare(&dir, a.chart.as_deref());
    }
    if let Some(mib) = a.reopen_mib {
        let r = bench::reopen(&dir, mib)?;
        if a.json {
            print_json(&r)?;
        } else {
            println!(
                "reopen of {} MiB (4 KiB entries, every checksum verified): warm {:.3} s (best of 3; all: {})",
                r.mib,
                r.warm_open_seconds.first().copied().unwrap_or(0.0),
                r.warm_open_seconds
                    .iter()
                    .map(|t| format!("{t:.3} s"))
                    .collect::<Vec<_>>()
                    .join(", ")
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
        buffered: a.buffered,
        no_spin: a.no_spin,
        prefill_mib: a.prefill_mib,
        retain_mib: a.retain_mib,
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
        print_json(&r)?;
        return Ok(0);
    }
    println!(
        "paxwal: {} writer(s) x {} B, sync {}, {} entr{} per call{}",
        r.writers,
        r.entry_bytes,
        r.sync,
        r.batch,
        if r.batch == 1 { "y" } else { "ies" },
        [
            (a.buffered, ", buffered writes"),
            (a.no_spin, ", no spinning")
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, label)| *label)
        .collect::<String>()
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
    if let Some(keep) = r.retain_mib {
        println!(
            "  compaction keeping ~{keep} MiB: {} segments compacted, {} segment files recycled",
            r.segments_compacted, r.segments_recycled
        );
    }
    if r.raw_fsync_per_sec > 0.0 {
        let direct = r
            .raw_direct_fsync_per_sec
            .map(|d| format!(" ({d:.0}/s after a direct one)"))
            .unwrap_or_default();
        println!(
            "raw disk, same directory, same run: {:.0} fdatasync/s after a 4 KiB overwrite{direct}, {:.0} MiB/s sequential write",
            r.raw_fsync_per_sec, r.raw_seq_mib_per_sec
        );
        // Only the ratios that mean something for the workload: the sync rate bounds durable
        // appends of small entries; bandwidth matters once a call carries at least 64 KiB.
        let mut ratios = Vec::new();
        if r.sync == "always" {
            ratios.push(format!(
                "append calls/s = {:.2} x raw fdatasync rate",
                r.ratio_calls_to_raw_fsync
            ));
            if let Some(d) = r.ratio_calls_to_raw_direct_fsync {
                ratios.push(format!("{d:.2} x the direct-write rate"));
            }
        }
        if r.batch * r.entry_bytes >= 64 << 10 || r.sync != "always" {
            ratios.push(format!(
                "MiB/s = {:.2} x raw sequential",
                r.ratio_mib_to_raw_seq
            ));
        }
        if !ratios.is_empty() {
            println!("  ratios: {}", ratios.join("; "));
        }
        if let (Some(raw), Some(ratio)) =
            (r.raw_batch_entries_per_sec, r.ratio_entries_to_raw_batch)
        {
            println!(
                "  raw write+fdatasync loop over the same batches: {raw:.0} entries/s into a pre-zeroed file; paxwal = {ratio:.2} x"
            );
        }
        if let (Some(raw), Some(ratio)) = (
            r.raw_batch_extending_entries_per_sec,
            r.ratio_entries_to_raw_batch_extending,
        ) {
            println!(
                "  the same loop extending a fresh file: {raw:.0} entries/s; paxwal = {ratio:.2} x"
            );
        }
        if let (Some(raw), Some(ratio)) = (
            r.raw_batch_zero_fill_entries_per_sec,
            r.ratio_entries_to_raw_batch_zero_fill,
        ) {
            println!(
                "  the same loop into a new 64 MiB file per 64 MiB, each zero-filled beside it (a growing log's own cost): {raw:.0} entries/s; paxwal = {ratio:.2} x"
            );
        }
    }
    Ok(0)
}

#[cfg(feature = "compare")]
fn compare(dir: &std::path::Path, chart: Option<&std::path::Path>) -> Result<u8, Error> {
    if cfg!(not(feature = "compare-rocksdb")) {
        eprintln!("RocksDB is not in this build: `cargo run --release --features compare-rocksdb -- bench --compare` adds it");
    }
    let t = paxwal::bench::peers::table(dir, chart)
        .map_err(|e| Error::Invalid(format!("compare: {e}")))?;
    print!("{t}");
    Ok(0)
}

#[cfg(not(feature = "compare"))]
fn compare(_: &std::path::Path, _: Option<&std::path::Path>) -> Result<u8, Error> {
    Err(Error::Invalid(
        "this build has no peer engines: run `cargo run --release --features compare -- bench --compare` (`--features compare-rocksdb` to add RocksDB)".into(),
    ))
}

fn paxos_bench(
    dir: &std::path::Path,
    in_flight: u64,
    batch: usize,
    entries: Option<u64>,
    (raw, zero_fill, no_spin, omnipaxos): (bool, bool, bool, bool),
    json: bool,
) -> Result<u8, Error> {
    let commands = entries.unwrap_or(1_000_000);
    let cfg = paxwal::bench::replication::ReplBenchConfig {
        dir: dir.to_owned(),
        in_flight,
        batch,
        commands,
        warmup: (commands / 10).min(100_000),
        raw,
        zero_fill,
        no_spin,
        omnipaxos,
    };
    let r = paxwal::bench::replication::run(&cfg)?;
    if json {
        print_json(&r)?;
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

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        Ok(_) => Err("a positive number of seconds".into()),
        Err(e) => Err(e.to_string()),
    }
}

//! The `paxwal` command-line tool: benchmark, append to, dump, verify and inspect logs; run a
//! replica of the key-value service, talk to a cluster, and demonstrate one.
//!
//! This file parses the command line, sets up logging and maps results to exit codes; each
//! command group lives in a file of its own (`log.rs`, `bench.rs` with `bench_cluster.rs`,
//! `sim.rs`, `serve.rs`, `kv.rs`, `demo.rs`) exposing its clap arguments and one `run`
//! function.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use paxwal::Error;

mod bench;
mod bench_cluster;
mod demo;
mod kv;
mod log;
mod serve;
#[cfg(feature = "sim")]
mod sim;

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
    Log(log::LogArgs),
    /// Benchmark durable appends against the raw disk, in one run.
    Bench(bench::BenchArgs),
    /// Run the deterministic cluster simulation (the real Paxos core and acceptor store on
    /// simulated disks and network, with faults) and check it. Exit 1 on any violation.
    #[cfg(feature = "sim")]
    Sim(sim::SimArgs),
    /// Run one replica of the key-value service (until SIGTERM/SIGINT: exit 0).
    Serve(serve::ServeArgs),
    /// One key-value operation on a running cluster (exit 0 done, 1 negative answer, 2 failed).
    Kv(kv::KvArgs),
    /// Start a local 3-replica cluster, write to it, kill its leader, restart it, check every
    /// write and summarize (exit 0 only if every check passed).
    Demo(demo::DemoArgs),
}

/// Exit code of a bad command line: 64 (EX_USAGE), never 2, which `log verify` uses for
/// corruption.
const EXIT_USAGE: u8 = 64;
/// Exit code of a detected corruption.
const EXIT_CORRUPTION: u8 = 2;
/// Exit code of any other error.
const EXIT_ERROR: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage_error { EXIT_USAGE } else { 0 });
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
        // `log` commands show warnings by default (a torn tail truncated, a file moved aside);
        // the others, whose output contracts are one line per error, only errors.
        Err(_) if matches!(cli.command, Command::Log(_)) => {
            tracing_subscriber::EnvFilter::new("warn")
        }
        Err(_) => tracing_subscriber::EnvFilter::new("error"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let r = match cli.command {
        Command::Log(args) => log::run(args),
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "sim")]
        Command::Sim(args) => Ok(sim::run(args)),
        Command::Serve(args) => serve::run(args),
        Command::Kv(args) => kv::run(args),
        Command::Demo(args) => demo::run(args),
    };
    exit_code(r)
}

/// The one mapping from a command's result to the process's exit code: the command's own
/// code on success; 2 for corruption; 1 for any other error (printed on stderr).
fn exit_code(r: Result<u8, Error>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("paxwal: {e}");
            ExitCode::from(
                if matches!(e, Error::Corruption { .. } | Error::CorruptFile { .. }) {
                    EXIT_CORRUPTION
                } else {
                    EXIT_ERROR
                },
            )
        }
    }
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

/// Prints `value` as one line of JSON.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Error> {
    let s = serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{s}");
    Ok(())
}

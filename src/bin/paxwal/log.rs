//! `paxwal log`: append to, dump, verify and inspect a log directory.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;

use paxwal::wal::verify::{self, SegmentState};
use paxwal::wal::{Options, Wal};
use paxwal::{Error, Lsn};

use crate::print_json;

/// `paxwal log`'s arguments.
#[derive(clap::Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Append stdin's lines (one entry each, without the newline); print each entry's LSN once
    /// it is durable.
    Append {
        /// The log directory (created if missing).
        dir: PathBuf,
        /// Segment size in bytes (for tests).
        #[arg(long, hide = true)]
        segment_bytes: Option<u64>,
        /// Keep about the last N durable entries: compact older ones while appending (whole
        /// segments go; their files are reused for new segments).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        keep: Option<u64>,
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

/// Runs one `paxwal log` command; returns its exit code.
pub fn run(args: LogArgs) -> Result<u8, Error> {
    match args.command {
        LogCommand::Append {
            dir,
            segment_bytes,
            keep,
        } => append(dir, segment_bytes, keep),
        LogCommand::Dump { dir, from, to } => dump(dir, from, to),
        LogCommand::Verify { dir, json } => verify_cmd(dir, json),
        LogCommand::Inspect { dir } => inspect(dir),
    }
}

fn append(dir: PathBuf, segment_bytes: Option<u64>, keep: Option<u64>) -> Result<u8, Error> {
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
        let mut compacted_at = 0u64;
        for t in rx.iter() {
            wal.wait_durable(&t)?;
            writeln!(out, "{}", t.last).map_err(|e| Error::io("write", "stdout", e))?;
            // Compact behind the durable entries, every 256 of them.
            if let Some(k) = keep.filter(|k| t.last.0 >= compacted_at + k + 256) {
                compacted_at = t.last.0 - k;
                wal.compact_before(Lsn(compacted_at))?;
            }
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

/// The read-only commands' check that `dir` is a log directory: it exists and holds META or a
/// segment (a mistyped path must not read as an empty, clean log).
fn require_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() && verify::is_log_dir(dir)? {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{} is not a log directory (no META, no segment)",
            dir.display()
        )))
    }
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

fn dump(dir: PathBuf, from: Option<u64>, to: Option<u64>) -> Result<u8, Error> {
    require_dir(&dir)?;
    let wal = Wal::open(&dir, read_only())?;
    if let Some(t) = &wal.recovery_report().torn {
        eprintln!(
            "paxwal: the log ends at a torn tail in segment {} at offset {} (LSN {} on): dump stops at LSN {}",
            t.segment,
            t.offset,
            t.lsn,
            wal.last_lsn()
        );
    }
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
    require_dir(&dir)?;
    let report = verify::verify(&dir)?;
    if json {
        print_json(&report)?;
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
                "torn tail in {} at offset {}: LSN {} to {}: no later frame proves them durable, so they are treated as a torn, unacknowledged tail and would be dropped",
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
    require_dir(&dir)?;
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
            SegmentState::Spare => "spare (preallocated, empty)",
            SegmentState::Unreachable => "unreachable (after damage)",
            SegmentState::Foreign => "foreign (not made by paxwal; left in place)",
        };
        println!(
            "{}\tLSN {}\t{} / {} bytes\t{}",
            s.name, range, s.used_bytes, s.allocated_bytes, state
        );
    }
    // The same verdict as `verify`: corruption exits 2, a torn tail 1.
    if let Some(c) = &report.corruption {
        eprintln!("paxwal: CORRUPTION: {c}");
    }
    Ok(report.exit_code() as u8)
}

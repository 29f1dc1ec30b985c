//! SIGKILL loop: a child `paxwal log append` is fed lines continuously and killed with SIGKILL
//! at a random moment; the log is then reopened through the library. Every LSN the child
//! acknowledged (printed) must be present with exactly the bytes sent, and the log must be a
//! gap-free prefix of what was sent. A process crash only: the page cache survives it (power
//! cuts are `tests/powercut.rs`). A second loop runs the child with `--keep`, so it compacts
//! behind its appends and reuses the compacted files as new segments: the log must then be a
//! gap-free range of what was sent, holding every acknowledged entry the child did not
//! compact, and a recovery that accepts a recycled file's old frames (a planted bug) must be
//! caught. Seeded: `SEED=…` replays the kill schedule.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxwal::wal::{Options, Wal};
use paxwal::Lsn;

fn line(i: u64) -> String {
    format!("kill-test entry {i} {}", "z".repeat((i % 300) as usize))
}

/// Segment size of the children: small, so they rotate (and recycle) often.
const SEGMENT_BYTES: u64 = 262_144;

/// What the kill loop saw.
struct Outcome {
    acked: u64,
    /// Rounds after which a segment of the log was a recycled file.
    rounds_with_recycled: usize,
}

/// A segment file whose header has the recycled flag (byte 32, bit 0); reads only headers.
fn holds_recycled_segment(dir: &Path) -> bool {
    use std::io::Read;
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        let mut head = [0u8; 37];
        p.extension().is_some_and(|x| x == "seg")
            && std::fs::File::open(&p).is_ok_and(|mut f| f.read_exact(&mut head).is_ok())
            && head[32] & 1 == 1
    })
}

/// Runs `kills` rounds: start `paxwal log append` (with `--keep keep` if given), feed it,
/// SIGKILL it, reopen with `reopen` options and check. `Err` describes the first violation.
fn kill_loop(
    seed: u64,
    kills: usize,
    keep: Option<u64>,
    reopen: Options,
) -> Result<Outcome, String> {
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let dir = tempfile::tempdir().unwrap();
    let mut out = Outcome {
        acked: 0,
        rounds_with_recycled: 0,
    };
    let mut log_end = 0u64;
    for round in 0..kills {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paxwal"));
        cmd.args([
            "log",
            "append",
            "--segment-bytes",
            &SEGMENT_BYTES.to_string(),
        ]);
        if let Some(k) = keep {
            cmd.args(["--keep", &k.to_string()]);
        }
        let mut child = cmd
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // This incarnation's entries start after whatever the log already holds.
        let base = log_end;
        let mut stdin = child.stdin.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = base + 1;
                while !stop.load(Ordering::Relaxed) {
                    if stdin.write_all((line(i) + "\n").as_bytes()).is_err() {
                        break;
                    }
                    i += 1;
                    if i % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        };
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let kill_after = Duration::from_millis(20 + rand() % 180);
        let t = Instant::now();
        let acks = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for l in stdout.lines() {
                match l {
                    Ok(l) => acked.push(l.parse::<u64>().unwrap()),
                    Err(_) => break,
                }
            }
            acked
        });
        while t.elapsed() < kill_after {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        feeder.join().unwrap();
        let acked = acks.join().unwrap();
        // Acks arrive in LSN order and only for entries this incarnation wrote.
        if acked.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(format!("round {round}: acks out of order"));
        }
        let wal = Wal::open(dir.path(), reopen.clone())
            .map_err(|e| format!("round {round}: reopen failed: {e}"))?;
        let (first, last) = (wal.first_lsn().0, wal.last_lsn().0);
        if let Some(&max) = acked.last() {
            if last < max {
                return Err(format!(
                    "round {round}: acknowledged LSN {max} lost, log ends at {last}"
                ));
            }
        }
        // Without compaction the log starts at 1; with it, the child compacted at most up to
        // its last durable entry minus `keep`.
        let first_max = keep.map_or(1, |k| {
            log_end
                .max(acked.last().copied().unwrap_or(0))
                .saturating_sub(k)
                .max(1)
        });
        if first > first_max {
            return Err(format!(
                "round {round}: the log starts at {first}, later than {first_max}"
            ));
        }
        for lsn in first..=last {
            match wal.read(Lsn(lsn)) {
                Ok(e) if *e == *line(lsn).as_bytes() => {}
                Ok(_) => return Err(format!("round {round}: LSN {lsn} has other bytes")),
                Err(e) => return Err(format!("round {round}: LSN {lsn} unreadable: {e}")),
            }
        }
        if holds_recycled_segment(dir.path()) {
            out.rounds_with_recycled += 1;
        }
        out.acked += acked.len() as u64;
        log_end = last;
        wal.close().unwrap();
    }
    Ok(out)
}

fn seed() -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    eprintln!("SEED={seed}");
    seed
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    let (seed, started) = (seed(), Instant::now());
    let out = kill_loop(seed, 24, None, Options::default())
        .unwrap_or_else(|e| panic!("SEED={seed}: {e}"));
    eprintln!(
        "24 SIGKILLs, {} acknowledged entries checked, {:.1} s",
        out.acked,
        started.elapsed().as_secs_f64()
    );
    assert!(out.acked > 0, "the children never acknowledged anything");
}

/// Entries to keep in the compacting loop: about four segments' worth.
const KEEP: u64 = 3_000;

#[test]
fn acknowledged_entries_survive_sigkill_while_compacting_and_recycling() {
    let (seed, started) = (seed(), Instant::now());
    let out = kill_loop(seed, 24, Some(KEEP), Options::default())
        .unwrap_or_else(|e| panic!("SEED={seed}: {e}"));
    eprintln!(
        "24 SIGKILLs with --keep {KEEP}: {} acknowledged entries, a recycled segment after {} rounds, {:.1} s",
        out.acked,
        out.rounds_with_recycled,
        started.elapsed().as_secs_f64()
    );
    assert!(out.acked > 0, "the children never acknowledged anything");
    assert!(
        out.rounds_with_recycled >= 4,
        "a recycled segment after only {} rounds",
        out.rounds_with_recycled
    );
}

#[test]
fn checker_catches_accepting_a_recycled_files_old_frames() {
    let mut broken = Options::default();
    broken.planted.accept_stale_frames = true;
    match kill_loop(seed(), 24, Some(KEEP), broken) {
        Err(e) => eprintln!("accepting old frames caught: {e}"),
        Ok(out) => panic!(
            "accepting a recycled file's old frames survived 24 SIGKILLs ({} rounds with a recycled segment)",
            out.rounds_with_recycled
        ),
    }
}

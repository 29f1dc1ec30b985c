//! SIGKILL loop: a child `paxwal log append` is fed lines continuously and killed with SIGKILL
//! at a random moment; the log is then reopened through the library. Every LSN the child
//! acknowledged (printed) must be present with exactly the bytes sent, and the log must be a
//! gap-free prefix of what was sent. A process crash only: the page cache survives it (power
//! cuts are `tests/powercut.rs`). Seeded: `SEED=…` replays the kill schedule.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paxwal::wal::{Options, Wal};
use paxwal::Lsn;

fn line(i: u64) -> String {
    format!("kill-test entry {i} {}", "z".repeat((i % 300) as usize))
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    eprintln!("SEED={seed}");
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let dir = tempfile::tempdir().unwrap();
    let kills = 24;
    let mut total_acked = 0u64;
    let mut log_end = 0u64;
    let started = Instant::now();
    for round in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paxwal"))
            .args(["log", "append", "--segment-bytes", "262144"])
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
        for w in acked.windows(2) {
            assert_eq!(w[1], w[0] + 1, "round {round}: acks out of order");
        }
        let wal = Wal::open(dir.path(), Options::default())
            .unwrap_or_else(|e| panic!("round {round} (SEED={seed}): reopen failed: {e}"));
        let last = wal.last_lsn().0;
        if let Some(&max) = acked.last() {
            assert!(
                last >= max,
                "round {round} (SEED={seed}): acknowledged LSN {max} lost, log ends at {last}"
            );
        }
        for lsn in 1..=last {
            let e = wal.read(Lsn(lsn)).unwrap();
            assert_eq!(
                &*e,
                line(lsn).as_bytes(),
                "round {round} (SEED={seed}): LSN {lsn} wrong"
            );
        }
        total_acked += acked.len() as u64;
        log_end = last;
        wal.close().unwrap();
    }
    eprintln!(
        "{kills} SIGKILLs, {total_acked} acknowledged entries checked, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(total_acked > 0, "the children never acknowledged anything");
}

//! Runs the fuzz target bodies (`paxwal::fuzzing`, `paxwal::wal::fuzzing`, `paxwal::paxos::fuzzing`) over seeded random inputs on stable
//! Rust, bounded in count, so CI exercises what `fuzz/` fuzzes: decoders over arbitrary bytes,
//! recovery over arbitrary edits of a valid log, and WAL operations with crash points against
//! a model, and the Paxos core stepped by arbitrary inputs under a durability oracle. The model
//! checker and the oracle are each shown to fail on a planted bug. `SEED=…` replays.

use paxwal::fuzzing::decoders;
use paxwal::paxos::fuzzing::replica_step;
use paxwal::paxos::Faults;
use paxwal::wal::fuzzing::{ops_vs_model, recovery_edits};
use paxwal::wal::PlantedBugs;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % max as u64) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed)
}

#[test]
fn decoders_never_panic_and_round_trip() {
    let mut rng = Rng(seed());
    for i in 0..20_000 {
        let mut data = rng.bytes(300);
        // Sometimes start from a plausible header so decoding gets further.
        if i % 3 == 0 && data.len() >= 8 {
            data[..4].copy_from_slice(b"PXWF");
        }
        decoders(&data).unwrap_or_else(|e| panic!("input {data:?}: {e}"));
    }
}

#[test]
fn recovery_over_edited_logs() {
    let mut rng = Rng(seed() ^ 1);
    for _ in 0..400 {
        let data = rng.bytes(40);
        recovery_edits(&data).unwrap_or_else(|e| panic!("input {data:?}: {e}"));
    }
}

#[test]
fn operations_with_crashes_match_the_model() {
    let mut rng = Rng(seed() ^ 2);
    for _ in 0..400 {
        let data = rng.bytes(120);
        ops_vs_model(&data, PlantedBugs::default())
            .unwrap_or_else(|e| panic!("input {data:?}: {e}"));
    }
}

#[test]
fn model_checker_catches_ack_before_fsync() {
    let mut rng = Rng(seed() ^ 3);
    let planted = PlantedBugs {
        ack_before_fsync: true,
        ..PlantedBugs::default()
    };
    let caught = (0..400)
        .filter(|_| ops_vs_model(&rng.bytes(120), planted).is_err())
        .count();
    assert!(
        caught > 0,
        "acking before fsync went unnoticed over 400 inputs"
    );
}

#[test]
fn the_paxos_core_never_panics_and_replies_only_once_durable() {
    let mut rng = Rng(seed() ^ 4);
    for _ in 0..3_000 {
        let data = rng.bytes(400);
        replica_step(&data, Faults::default()).unwrap_or_else(|e| panic!("input {data:?}: {e}"));
    }
}

#[test]
fn the_durability_oracle_catches_a_promise_sent_before_durable() {
    let mut rng = Rng(seed() ^ 5);
    let planted = Faults {
        promise_before_durable: true,
        ..Faults::default()
    };
    let caught = (0..3_000)
        .filter(|_| replica_step(&rng.bytes(400), planted).is_err())
        .count();
    assert!(caught > 0, "a promise before durable went unnoticed");
}

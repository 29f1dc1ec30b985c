//! Runs the fuzz target bodies (`paxwal::fuzzing`, `paxwal::wal::fuzzing`, `paxwal::paxos::fuzzing`) over seeded random inputs on stable
//! Rust, bounded in count, so CI exercises what `fuzz/` fuzzes: decoders over arbitrary bytes,
//! recovery over arbitrary edits of a valid log, and WAL operations with crash points against
//! a model, and the Paxos core stepped by arbitrary inputs under a durability oracle. The model
//! checker, the recovery oracle and the durability oracle are each shown to fail on a planted
//! bug. The bugs the bodies have found have regression tests here. `SEED=…` replays.

use paxwal::fuzzing::decoders;
use paxwal::paxos::codec::encode_message;
use paxwal::paxos::fuzzing::replica_step;
use paxwal::paxos::{Body, Faults, Message};
use paxwal::types::{Ballot, NodeId, Slot};
use paxwal::wal::fuzzing::{ops_vs_model, recovery_edits, recovery_edits_with, RECOVERY_BASES};
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
    for _ in 0..1_500 {
        let data = rng.bytes(40);
        recovery_edits_with(&data, PlantedBugs::default())
            .unwrap_or_else(|e| panic!("input {data:?}: {e}"));
    }
}

#[test]
fn every_base_log_opens_whole_in_every_mode() {
    for base in 0..RECOVERY_BASES as u8 {
        recovery_edits(&[base]).unwrap_or_else(|e| panic!("base {base}: {e}"));
    }
}

/// Random edits (bit flips and overwrites among them) against a recovery planted with `bug`:
/// how many inputs of `n` the oracle fails.
fn caught(bug: PlantedBugs, seed: u64, n: usize) -> usize {
    let mut rng = Rng(seed);
    (0..n)
        .filter(|_| {
            let data = rng.bytes(40);
            // A panic under the planted bug (a frame trusted without its checks, then parsed)
            // is a catch too.
            std::panic::catch_unwind(|| recovery_edits_with(&data, bug))
                .map_or(true, |r| r.is_err())
        })
        .count()
}

#[test]
fn the_recovery_oracle_catches_skipped_crc_checks() {
    let bug = PlantedBugs {
        skip_crc_check: true,
        ..PlantedBugs::default()
    };
    let n = caught(bug, seed() ^ 6, 300);
    assert!(
        n > 0,
        "recovery without crc checks went unnoticed over 300 inputs"
    );
}

#[test]
fn the_recovery_oracle_catches_stale_frames_accepted_in_a_recycled_segment() {
    let bug = PlantedBugs {
        accept_stale_frames: true,
        ..PlantedBugs::default()
    };
    // Base 2's active segment is a recycled file: unedited, its stale frames must not count.
    assert!(recovery_edits_with(&[2], bug).is_err());
    let n = caught(bug, seed() ^ 7, 300);
    assert!(
        n > 0,
        "stale frames accepted went unnoticed over 300 inputs"
    );
}

/// Minimal inputs for the recovery bugs `recovery_edits` found.
const RECOVERY_BUGS: [(&str, &[u8]); 5] = [
    // Base 0, META rewritten (valid checksum) to first LSN 0.
    ("META first LSN 0", &[0, 8, 0, 0, 255]),
    // Base 0, META rewritten to first segment 6 (none exists) and first LSN 45.
    ("META names a missing segment", &[0, 8, 0, 5, 44]),
    // Base 0, 3,872 bytes zeroed at offset 6,168 of the last segment.
    ("zeros inside the active segment", &[0, 3, 3, 8, 8, 242]),
    // Base 0, the last segment cut to 25,659 bytes: three bytes of a frame header at its end.
    (
        "a file cut inside a frame header",
        &[51, 45, 59, 153, 14, 184, 251, 62, 54, 104, 34, 190, 13, 115],
    ),
    // Base 2 (a recycled active segment), its last frame's padding torn: the data ends off a
    // block boundary at the old file's bytes, and an append after them was lost on reopening.
    (
        "old bytes in a recycled file's torn padding",
        &[11, 35, 10, 146, 18, 146, 49, 30, 0, 0, 0],
    ),
];

/// A Prepare at round `u64::MAX` from a peer, then ticks past the election timeout.
fn top_round_input() -> Vec<u8> {
    let mut raw = Vec::new();
    encode_message(
        &Message {
            from: NodeId(2),
            to: NodeId(1),
            body: Body::Prepare {
                ballot: Ballot::new(u64::MAX, NodeId(2)),
                from: Slot(0),
            },
        },
        &mut raw,
    );
    let mut data = vec![4, raw.len() as u8];
    data.extend(raw);
    data.extend([0; 64]);
    data
}

/// Found by `recovery_edits`: recovery trusted a META (checksum valid) naming LSN 0, or a
/// segment that does not exist (it opened empty at LSN 1 and the next open dropped what was
/// appended); skip-corrupted left the valid frames behind a zeroed hole in place, so they came
/// back after the next append.
#[test]
fn regression_recovery_bugs_found_by_fuzzing() {
    for (what, data) in RECOVERY_BUGS {
        recovery_edits(data).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Found by `paxos_step`: a peer's ballot round at `u64::MAX` overflowed the next round's
/// `+ 1` (a panic with overflow checks, a wrap to round 0 without).
#[test]
fn regression_paxos_top_round() {
    replica_step(&top_round_input(), Faults::default()).unwrap();
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

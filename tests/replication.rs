//! The replication harness (`paxwal::bench::replication`) over real acceptor stores on real logs: it
//! commits every command exactly once and in order; a slot is committed only once a majority of
//! the stores hold a durable accept for it (checked at every commit, and shown to catch a
//! harness that reports persists complete before their `fdatasync`); and after the stores are
//! reopened, every slot committed on the leader has its chosen value accepted on a majority.
//! Also the `paxwal bench --paxos` command line.

use std::collections::BTreeMap;

use paxwal::bench::replication::{Cluster, ClusterOptions};
use paxwal::store::AcceptorStore;
use paxwal::wal::Options;
use paxwal::Slot;

const COMMANDS: u64 = 20_000;

fn options(batch: usize, in_flight: u64) -> ClusterOptions {
    let mut o = ClusterOptions::new(batch, in_flight);
    o.compact_every = None;
    o.record_applied = true;
    o.check_durable_quorum = true;
    // Small segments: the run rotates through several.
    o.wal = Options {
        segment_bytes: 1 << 20,
        ..Options::default()
    };
    o
}

#[test]
fn every_command_commits_and_every_committed_slot_is_on_a_majority_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (batch, in_flight) = (16, 256);
    let mut cluster = Cluster::open(dir.path(), options(batch, in_flight)).unwrap();
    let stats = cluster.run(COMMANDS, in_flight).unwrap();
    assert_eq!(stats.commands, COMMANDS);
    assert!(stats.fsyncs > 0);
    let applied = cluster.applied().to_vec();
    cluster.close().unwrap();

    // Every command exactly once, in proposal order, in contiguous slots.
    let mut seqs = Vec::new();
    for (i, (slot, value)) in applied.iter().enumerate() {
        assert_eq!(*slot, Slot(i as u64), "applied slots are contiguous from 0");
        assert!(value.commands().len() <= batch);
        seqs.extend(value.commands().iter().map(|c| (c.client, c.seq)));
    }
    let want: Vec<(u64, u64)> = (0..COMMANDS).map(|s| (1, s)).collect();
    assert_eq!(seqs, want);

    // Reopen each store: every committed slot's chosen value is accepted on a majority.
    let states: Vec<_> = (1..=3)
        .map(|id| {
            let s =
                AcceptorStore::open(dir.path().join(format!("replica-{id}")), Options::default())
                    .unwrap();
            let st = s.state();
            s.close().unwrap();
            st
        })
        .collect();
    let mut on: BTreeMap<usize, u64> = BTreeMap::new();
    for (slot, value) in &applied {
        let holders = states
            .iter()
            .filter(|st| st.accepted.get(slot).is_some_and(|(_, v)| v == value))
            .count();
        assert!(
            holders >= 2,
            "slot {} is accepted on {holders} store(s)",
            slot.0
        );
        *on.entry(holders).or_default() += 1;
    }
    // The stores recorded a chosen point, and the promise covers the accepted ballots.
    for st in &states {
        let highest = st.accepted.values().map(|(b, _)| *b).max().unwrap();
        assert!(st.promised >= highest);
    }
    assert!(states.iter().filter(|st| st.chosen > Slot(0)).count() >= 2);
}

#[test]
fn the_durable_quorum_check_catches_acknowledging_before_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(16, 256);
    o.ack_on_submit = true;
    let mut cluster = Cluster::open(dir.path(), o).unwrap();
    let err = cluster
        .run(COMMANDS, 256)
        .expect_err("committing before the fdatasync went unnoticed");
    assert!(err.to_string().contains("durable accept"), "{err}");
    drop(cluster);
}

#[test]
fn bench_paxos_cli_reports_the_commits_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paxwal"))
        .args(["bench", "--paxos", "--batch", "16", "--in-flight", "256"])
        .args(["--entries", "20000", "--no-raw", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["commands"], 20_000);
    assert_eq!(r["batch"], 16);
    assert_eq!(r["window_slots"], 16);
    assert!(r["commands_per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["commands_per_fsync"].as_f64().unwrap() > 0.0);
    // The stores' directories are removed afterwards.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bench_paxos_compare_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "compare-omnipaxos") {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paxwal"))
        .args([
            "bench",
            "--paxos",
            "--compare",
            "--entries",
            "1000",
            "--no-raw",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compare-omnipaxos"));
}

#[test]
fn retransmitted_accepts_are_persisted_again_and_the_checks_still_hold() {
    // A tick every pump round: the leader resends every slot not acknowledged within two
    // rounds (always, since a sync takes many rounds), so followers accept and persist the same
    // slots again; commits must still be backed by a durable accept on a majority.
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(16, 256);
    o.tick = std::time::Duration::ZERO;
    let mut cluster = Cluster::open(dir.path(), o).unwrap();
    let stats = cluster.run(5_000, 256).unwrap();
    assert!(
        stats.accept_values_sent > 2 * stats.slots,
        "no retransmission happened: {stats:?}"
    );
    let applied = cluster.applied().to_vec();
    cluster.close().unwrap();
    let seqs: Vec<u64> = applied
        .iter()
        .flat_map(|(_, v)| v.commands().iter().map(|c| c.seq))
        .collect();
    assert_eq!(seqs, (0..5_000).collect::<Vec<_>>());
}

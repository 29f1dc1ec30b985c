//! The acceptor store under crashes (FAULTS 22–24): promises and accepts are acknowledged only
//! once durable, so after any crash image — any subset of unsynced writes lost, the last one
//! torn — the recovered promise is at least every acknowledged promise and every acknowledged
//! accept is still there (or superseded by a higher ballot for the same slot). Seeded; a
//! failure prints the seed.

use std::sync::Arc;

use paxwal::paxos::{Command, Entry, StoreRecord, Value};
use paxwal::store::AcceptorStore;
use paxwal::wal::simdisk::{CrashSpec, Faults, SimDisk, TearFill};
use paxwal::wal::{Options, PlantedBugs, Prealloc};
use paxwal::{Ballot, NodeId, Slot};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn opts(ack_before_fsync: bool) -> Options {
    Options {
        prealloc: Prealloc::Inline,
        segment_bytes: 64 << 10,
        planted: PlantedBugs {
            ack_before_fsync,
            ..PlantedBugs::default()
        },
        ..Options::default()
    }
}

fn seeds() -> std::ops::Range<u64> {
    match std::env::var("SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => s..s + 1,
        None => 1..201,
    }
}

#[test]
fn acknowledged_promises_and_accepts_survive_every_crash() {
    for seed in seeds() {
        if let Err(e) = run(seed, false) {
            panic!("seed {seed} (replay with SEED={seed}): {e}");
        }
    }
}

#[test]
fn checker_catches_acknowledging_before_fsync() {
    let caught = seeds().filter(|&s| run(s, true).is_err()).count();
    assert!(caught > 0, "acking before fsync went unnoticed");
}

/// One seeded run: random promises and accepts until the disk stops, a random crash image,
/// then the check.
fn run(seed: u64, ack_before_fsync: bool) -> Result<(), String> {
    {
        let mut rng = Rng(seed * 0x9E37_79B9 + 1);
        let disk = SimDisk::new();
        let stop = 20 + rng.next() % 200;
        disk.set_faults(Faults {
            stop_after_ops: Some(stop),
            ..Faults::default()
        });
        let mut acked_promise = Ballot::ZERO;
        let mut acked_accepts: Vec<(Slot, Ballot)> = Vec::new();
        if let Ok(store) =
            AcceptorStore::open_with(Arc::new(disk.clone()), "/acc", opts(ack_before_fsync))
        {
            let mut round = 1u64;
            for _ in 0..60 {
                let r = match rng.next() % 3 {
                    0 => {
                        round += rng.next() % 2;
                        let b = Ballot::new(round, NodeId((rng.next() % 3) as u32));
                        store.persist(&[StoreRecord::Promise(b)]).map(|_| {
                            acked_promise = acked_promise.max(b);
                        })
                    }
                    _ => {
                        let slot = Slot(1 + rng.next() % 20);
                        let b = Ballot::new(round, NodeId(1));
                        let payload = vec![(rng.next() % 251) as u8; (rng.next() % 700) as usize];
                        let value = Value::new(vec![Command {
                            client: 1,
                            seq: slot.0,
                            payload,
                        }]);
                        store
                            .persist(&[StoreRecord::Accept(Entry {
                                slot,
                                ballot: b,
                                value,
                            })])
                            .map(|_| acked_accepts.push((slot, b)))
                    }
                };
                if r.is_err() {
                    break;
                }
            }
        }
        let n = disk.pending_writes();
        let lens = disk.pending_write_lens();
        let tear = (n > 0).then(|| {
            let i = (rng.next() % n as u64) as usize;
            let at = (rng.next() % (lens[i].max(1) as u64)) as usize;
            (i, at, TearFill::Garbage(seed))
        });
        let image = disk.crash(&CrashSpec {
            keep: (0..n).map(|_| rng.next() % 2 == 0).collect(),
            tear,
            namespace_ops_kept: (rng.next() % (disk.pending_namespace_ops() as u64 + 1)) as usize,
        });
        let store = AcceptorStore::open_with(Arc::new(image), "/acc", opts(false))
            .map_err(|e| format!("reopen failed: {e}"))?;
        let st = store.state();
        if st.promised < acked_promise {
            return Err(format!(
                "promise {} < acknowledged {}",
                st.promised, acked_promise
            ));
        }
        for (slot, b) in acked_accepts {
            let got = st.accepted.get(&slot).map(|(b, _)| *b);
            if got.is_none_or(|g| g < b) {
                return Err(format!("accept of slot {slot} at {b} lost (have {got:?})"));
            }
            if st.promised < b {
                return Err("promise below an accepted ballot".into());
            }
        }
    }
    Ok(())
}

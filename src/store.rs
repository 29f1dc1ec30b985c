//! The acceptor store: a Paxos acceptor's durable state kept in the [`Wal`].
//!
//! The store persists the core's [`StoreRecord`]s, one per log entry, encoded by
//! [`crate::paxos::codec`]. Records go through the log's group commit like any other append: a
//! promise or an accepted value is acknowledged (and may be replied to) only once it is durable.
//! Recovery replays the log in LSN order:
//!
//! * `Promise(b)`: `promised = max(promised, b)`;
//! * `Accept(entry)`: the slot's accepted value becomes this one — a later record for a slot
//!   supersedes an earlier one; nothing is ever removed by a *suffix truncation* (Raft's "delete
//!   conflicting entries" is unsafe for Paxos: a value accepted by a quorum may be chosen before
//!   a later leader re-proposes it); and `promised = max(promised, entry.ballot)`, since an
//!   accepted ballot implies a promise at least that high even if the promise record itself was
//!   lost (FAULTS 24);
//! * `Chosen { up_to }`: every slot below `up_to` is known chosen;
//! * `Snapshot { up_to }`: a durable snapshot covers every slot below `up_to`; accepted values
//!   below it are dropped;
//! * `TruncateAfter(s)`: written only by the planted bug `Faults::truncate_suffix_on_conflict`
//!   (the store replays it faithfully, so the simulator sees the damage it does).
//!
//! Compaction ([`AcceptorStore::compact`]) first re-appends the live state — the snapshot mark,
//! the current promise, the chosen point and every accepted value at or above the snapshot
//! point — as a checkpoint, waits for it to be durable, and only then deletes the segments
//! before the checkpoint. So a segment is deleted only when every record in it is superseded or
//! covered by the snapshot, and the promise is durable elsewhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::paxos::codec::{decode_record, encode_record};
use crate::paxos::{DurableState, Entry, StoreRecord, Value};
use crate::types::{Ballot, Lsn, SegmentId, Slot};
use crate::wal::{Appended, Options, Vfs, Wal};

/// The acceptor's state as recovered from (and mirrored to) the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptorState {
    /// Highest ballot promised, explicitly or implied by an accept.
    pub promised: Ballot,
    /// Accepted `(ballot, value)` per slot at or above the snapshot point.
    pub accepted: BTreeMap<Slot, (Ballot, Value)>,
    /// Every slot below this one is chosen.
    pub chosen: Slot,
    /// A durable snapshot covers every slot below this one.
    pub snapshot: Slot,
}

impl AcceptorState {
    /// Applies one record, as recovery does.
    pub fn apply(&mut self, r: &StoreRecord) {
        match r {
            StoreRecord::Promise(b) => self.promised = self.promised.max(*b),
            StoreRecord::Accept(e) => {
                // An accept implies a promise at least that high (FAULTS 24). Track it here,
                // not only on open: compaction may drop the accept itself (below the snapshot)
                // and its checkpoint must still carry the promise it implied.
                self.promised = self.promised.max(e.ballot);
                if e.slot >= self.snapshot {
                    self.accepted.insert(e.slot, (e.ballot, e.value.clone()));
                }
            }
            StoreRecord::Chosen { up_to } => self.chosen = self.chosen.max(*up_to),
            StoreRecord::TruncateAfter(s) => {
                let _ = self.accepted.split_off(&Slot(s.0.saturating_add(1)));
            }
            StoreRecord::Snapshot { up_to } => {
                if *up_to > self.snapshot {
                    self.snapshot = *up_to;
                    self.accepted = self.accepted.split_off(up_to);
                }
            }
        }
    }

    /// The state in the form [`crate::paxos::Replica::new`] takes.
    pub fn durable(&self) -> DurableState {
        DurableState {
            promised: self.promised,
            accepted: self
                .accepted
                .iter()
                .map(|(s, (b, v))| Entry {
                    slot: *s,
                    ballot: *b,
                    value: v.clone(),
                })
                .collect(),
            chosen: self.chosen.max(self.snapshot),
            snapshot: self.snapshot,
        }
    }
}

fn encode(r: &StoreRecord) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    encode_record(r, &mut b);
    b
}

/// An acceptor's durable state over a [`Wal`].
#[derive(Debug)]
pub struct AcceptorStore {
    wal: Wal,
    /// Mirror of the state as submitted (durable or about to be). If a submitted record later
    /// fails to become durable the store must be reopened (the log is poisoned or the append
    /// failed): the mirror is only trusted while every submission succeeds.
    state: Mutex<AcceptorState>,
    compact_lock: Mutex<()>,
}

impl AcceptorStore {
    /// Opens the store in `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<AcceptorStore> {
        Self::from_wal(Wal::open(dir, opts)?)
    }

    /// Opens the store over any [`Vfs`] (the simulator's disk, for one).
    pub fn open_with(
        vfs: Arc<dyn Vfs>,
        dir: impl AsRef<Path>,
        opts: Options,
    ) -> Result<AcceptorStore> {
        Self::from_wal(Wal::open_with(vfs, dir, opts)?)
    }

    fn from_wal(wal: Wal) -> Result<AcceptorStore> {
        let mut state = AcceptorState::default();
        for r in wal.iter(wal.first_lsn()..=wal.last_lsn()) {
            let (lsn, entry) = r?;
            let rec = decode_record(&entry).map_err(|e| Error::Corruption {
                segment: SegmentId(0),
                path: wal.dir().to_owned(),
                offset: 0,
                lsn,
                reason: format!("log entry is not an acceptor record: {e}"),
            })?;
            state.apply(&rec);
        }
        Ok(AcceptorStore {
            wal,
            state: Mutex::new(state),
            compact_lock: Mutex::new(()),
        })
    }

    /// The state (including records submitted but not yet durable).
    pub fn state(&self) -> AcceptorState {
        self.state.lock().clone()
    }

    /// Queues records through the group commit; reply only after [`Self::wait_durable`].
    pub fn submit(&self, records: &[StoreRecord]) -> Result<Appended> {
        let encoded: Vec<Vec<u8>> = records.iter().map(encode).collect();
        let mut st = self.state.lock();
        let t = self.wal.submit_batch(&encoded)?;
        for r in records {
            st.apply(r);
        }
        Ok(t)
    }

    /// Waits until `t` is durable.
    pub fn wait_durable(&self, t: &Appended) -> Result<()> {
        self.wal.wait_durable(t)
    }

    /// The async counterpart of [`Self::wait_durable`]: a future, woken by the group commit,
    /// that resolves once the records of `t` are durable (see [`crate::wal::Wal::durable`]).
    pub fn durable(&self, t: &Appended) -> crate::wal::Durable<'_> {
        self.wal.durable(t)
    }

    /// True if `t` is durable (never blocks).
    pub fn is_durable(&self, t: &Appended) -> Result<bool> {
        self.wal.is_durable(t)
    }

    /// Submits and waits.
    pub fn persist(&self, records: &[StoreRecord]) -> Result<()> {
        let t = self.submit(records)?;
        self.wait_durable(&t)
    }

    /// Records that a durable snapshot covers every slot below `up_to`, checkpoints the live
    /// state and deletes the log segments that only hold superseded or snapshot-covered
    /// records. Returns the number of segments deleted. Call it only once the application's
    /// snapshot is durable.
    pub fn compact(&self, up_to: Slot) -> Result<usize> {
        let _g = self.compact_lock.lock();
        let (t, start) = {
            let mut st = self.state.lock();
            st.apply(&StoreRecord::Snapshot { up_to });
            let mut recs = vec![
                StoreRecord::Snapshot { up_to: st.snapshot },
                StoreRecord::Promise(st.promised),
            ];
            if st.chosen > Slot(0) {
                recs.push(StoreRecord::Chosen { up_to: st.chosen });
            }
            recs.extend(st.accepted.iter().map(|(s, (b, v))| {
                StoreRecord::Accept(Entry {
                    slot: *s,
                    ballot: *b,
                    value: v.clone(),
                })
            }));
            let encoded: Vec<Vec<u8>> = recs.iter().map(encode).collect();
            let t = self.wal.submit_batch(&encoded)?;
            (t, t.first)
        };
        self.wal.wait_durable(&t)?;
        self.wal.compact_before(start)
    }

    /// The underlying log.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Syncs and closes.
    pub fn close(self) -> Result<()> {
        self.wal.close()
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.wal.first_lsn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Command;
    use crate::types::NodeId;
    use proptest::prelude::*;

    fn b(round: u64, node: u32) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn val(bytes: &[u8]) -> Value {
        Value::new(vec![Command {
            client: 1,
            seq: 1,
            payload: bytes.to_vec(),
        }])
    }

    fn acc(slot: u64, ballot: Ballot, v: &[u8]) -> StoreRecord {
        StoreRecord::Accept(Entry {
            slot: Slot(slot),
            ballot,
            value: val(v),
        })
    }

    #[test]
    fn recovery_raises_the_promise_to_the_highest_accepted_ballot() {
        // FAULTS 24: an accepted ballot above the stored promise means the promise was lost.
        let mut s = AcceptorState::default();
        s.apply(&StoreRecord::Promise(b(1, 1)));
        s.apply(&acc(1, b(5, 2), b""));
        assert_eq!(s.promised, b(5, 2));
    }

    #[test]
    fn later_accept_supersedes_and_nothing_else_is_discarded() {
        // Paxos Made Simple §2.2: an acceptor keeps every accepted value; a later accept for
        // the same slot replaces it, and accepts for other slots are never removed.
        let dir = tempfile::tempdir().unwrap();
        let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
        store
            .persist(&[
                StoreRecord::Promise(b(1, 1)),
                acc(1, b(1, 1), b"a"),
                acc(2, b(1, 1), b"b"),
                acc(3, b(1, 1), b"c"),
            ])
            .unwrap();
        store
            .persist(&[StoreRecord::Promise(b(2, 2)), acc(2, b(2, 2), b"B")])
            .unwrap();
        let want = store.state();
        store.close().unwrap();
        let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
        let got = store.state();
        assert_eq!(got, want);
        assert_eq!(got.accepted.len(), 3);
        assert_eq!(got.accepted[&Slot(2)], (b(2, 2), val(b"B")));
        assert_eq!(got.accepted[&Slot(3)], (b(1, 1), val(b"c")));
    }

    #[test]
    fn a_log_entry_that_is_not_a_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Options::default()).unwrap();
        wal.append(b"\x09 not a record").unwrap();
        wal.close().unwrap();
        let err = AcceptorStore::open(dir.path(), Options::default()).unwrap_err();
        assert!(
            matches!(err, Error::Corruption { lsn: Lsn(1), .. }),
            "{err}"
        );
    }

    #[test]
    fn compaction_keeps_the_promise_an_accept_below_the_snapshot_implied() {
        // Found by the cluster simulation with snapshots: accepts at ballot 3 below the
        // snapshot were the only evidence of promise 3; the checkpoint wrote the older explicit
        // promise 1 and a crash then recovered promise 1 after a Promise 3 had been sent.
        let dir = tempfile::tempdir().unwrap();
        let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
        store
            .persist(&[StoreRecord::Promise(b(1, 1)), acc(0, b(3, 2), b"x")])
            .unwrap();
        store.compact(Slot(1)).unwrap();
        store.close().unwrap();
        let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
        assert_eq!(store.state().promised, b(3, 2));
        assert!(store.state().accepted.is_empty());
    }

    #[test]
    fn compaction_keeps_the_live_state_and_deletes_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            segment_bytes: 64 << 10,
            ..Options::default()
        };
        let store = AcceptorStore::open(dir.path(), opts.clone()).unwrap();
        store.persist(&[StoreRecord::Promise(b(7, 1))]).unwrap();
        for s in 0..200u64 {
            store.persist(&[acc(s, b(7, 1), &[s as u8; 500])]).unwrap();
        }
        store
            .persist(&[StoreRecord::Chosen { up_to: Slot(150) }])
            .unwrap();
        let deleted = store.compact(Slot(150)).unwrap();
        assert!(deleted > 0);
        let want = store.state();
        assert_eq!(want.accepted.len(), 50);
        store.close().unwrap();
        let store = AcceptorStore::open(dir.path(), opts).unwrap();
        assert!(store.first_lsn() > Lsn(1));
        assert_eq!(store.state(), want);
        assert_eq!(store.state().promised, b(7, 1));
        assert_eq!(store.state().durable().snapshot, Slot(150));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn replay_equals_applying_the_records(ops in proptest::collection::vec((0u8..5, 0u64..20, 0u64..6, 0u32..3), 1..60)) {
            let recs: Vec<StoreRecord> = ops.iter().map(|&(k, slot, round, node)| match k {
                0 => StoreRecord::Promise(b(round, node)),
                1 => acc(slot, b(round, node), &vec![slot as u8; (round * 3) as usize]),
                2 => StoreRecord::Chosen { up_to: Slot(slot) },
                3 => StoreRecord::TruncateAfter(Slot(slot)),
                _ => StoreRecord::Snapshot { up_to: Slot(slot / 4) },
            }).collect();
            let dir = tempfile::tempdir().unwrap();
            let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
            for chunk in recs.chunks(7) {
                store.persist(chunk).unwrap();
            }
            let mut model = AcceptorState::default();
            for r in &recs { model.apply(r); }
            store.close().unwrap();
            let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
            prop_assert_eq!(store.state(), model);
        }
    }
}

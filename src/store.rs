//! The acceptor store: a Paxos acceptor's durable state kept in the [`Wal`].
//!
//! Records go through the log's group commit like any other append: a promise or an accepted
//! value is acknowledged (and may be replied to) only once it is durable. Recovery replays the
//! log in LSN order:
//!
//! * `Promise(b)`: `promised = max(promised, b)`;
//! * `Accept { slot, ballot, value }`: the slot's accepted value becomes this one — a later
//!   record for a slot supersedes an earlier one; nothing is ever removed by a *suffix
//!   truncation* (Raft's "delete conflicting entries" is unsafe for Paxos: a value accepted by a
//!   quorum may be chosen before a later leader re-proposes it);
//! * `Chosen(s)`: every slot up to `s` is known chosen;
//! * `Snapshot(s)`: a durable snapshot covers every slot up to `s`; accepted values at or below
//!   it are dropped from memory.
//!
//! and finally sets `promised = max(promised, highest accepted ballot)` (an accepted ballot
//! implies a promise at least that high, even if the promise record itself was lost).
//!
//! Compaction ([`AcceptorStore::compact`]) first re-appends the live state — the current
//! promise and every accepted value above the snapshot point — as a checkpoint, waits for it to
//! be durable, and only then deletes the segments before the checkpoint. So a segment is
//! deleted only when every record in it is superseded or covered by the snapshot, and the
//! promise is durable elsewhere.
//!
//! Record layout (little-endian), one per WAL entry:
//!
//! ```text
//! u8 kind
//! 1 Promise:  u64 round, u32 node
//! 2 Accept:   u64 slot, u64 round, u32 node, value bytes (the rest of the entry)
//! 3 Chosen:   u64 slot
//! 4 Snapshot: u64 slot
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::types::{Ballot, Lsn, NodeId, SegmentId, Slot};
use crate::wal::{Appended, Options, Vfs, Wal};

/// One durable fact about the acceptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreRecord {
    /// The acceptor promised not to accept ballots below this one.
    Promise(Ballot),
    /// The acceptor accepted `value` for `slot` at `ballot`.
    Accept {
        /// The slot.
        slot: Slot,
        /// The ballot.
        ballot: Ballot,
        /// The value.
        value: Vec<u8>,
    },
    /// Every slot up to this one is chosen.
    Chosen(Slot),
    /// A durable snapshot covers every slot up to this one.
    Snapshot(Slot),
}

const KIND_PROMISE: u8 = 1;
const KIND_ACCEPT: u8 = 2;
const KIND_CHOSEN: u8 = 3;
const KIND_SNAPSHOT: u8 = 4;

impl StoreRecord {
    /// Encodes the record as one log entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        match self {
            StoreRecord::Promise(bal) => {
                b.push(KIND_PROMISE);
                b.extend_from_slice(&bal.round.to_le_bytes());
                b.extend_from_slice(&bal.node.0.to_le_bytes());
            }
            StoreRecord::Accept {
                slot,
                ballot,
                value,
            } => {
                b.reserve(value.len());
                b.push(KIND_ACCEPT);
                b.extend_from_slice(&slot.0.to_le_bytes());
                b.extend_from_slice(&ballot.round.to_le_bytes());
                b.extend_from_slice(&ballot.node.0.to_le_bytes());
                b.extend_from_slice(value);
            }
            StoreRecord::Chosen(s) => {
                b.push(KIND_CHOSEN);
                b.extend_from_slice(&s.0.to_le_bytes());
            }
            StoreRecord::Snapshot(s) => {
                b.push(KIND_SNAPSHOT);
                b.extend_from_slice(&s.0.to_le_bytes());
            }
        }
        b
    }

    /// Decodes one log entry; `None` if it is not a valid record.
    pub fn decode(b: &[u8]) -> Option<StoreRecord> {
        let u64_at = |at: usize| -> Option<u64> {
            b.get(at..at + 8)
                .map(|x| u64::from_le_bytes(x.try_into().unwrap_or([0; 8])))
        };
        let u32_at = |at: usize| -> Option<u32> {
            b.get(at..at + 4)
                .map(|x| u32::from_le_bytes(x.try_into().unwrap_or([0; 4])))
        };
        match *b.first()? {
            KIND_PROMISE if b.len() == 13 => Some(StoreRecord::Promise(Ballot::new(
                u64_at(1)?,
                NodeId(u32_at(9)?),
            ))),
            KIND_ACCEPT if b.len() >= 21 => Some(StoreRecord::Accept {
                slot: Slot(u64_at(1)?),
                ballot: Ballot::new(u64_at(9)?, NodeId(u32_at(17)?)),
                value: b[21..].to_vec(),
            }),
            KIND_CHOSEN if b.len() == 9 => Some(StoreRecord::Chosen(Slot(u64_at(1)?))),
            KIND_SNAPSHOT if b.len() == 9 => Some(StoreRecord::Snapshot(Slot(u64_at(1)?))),
            _ => None,
        }
    }
}

/// The acceptor's state as recovered from (and mirrored to) the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptorState {
    /// Highest ballot promised.
    pub promised: Ballot,
    /// Accepted `(ballot, value)` per slot above the snapshot point.
    pub accepted: BTreeMap<Slot, (Ballot, Vec<u8>)>,
    /// Every slot up to this one is chosen.
    pub chosen: Slot,
    /// A durable snapshot covers every slot up to this one.
    pub snapshot: Slot,
}

impl AcceptorState {
    /// Applies one record, as recovery does.
    pub fn apply(&mut self, r: &StoreRecord) {
        match r {
            StoreRecord::Promise(b) => self.promised = self.promised.max(*b),
            StoreRecord::Accept {
                slot,
                ballot,
                value,
            } => {
                if *slot > self.snapshot {
                    self.accepted.insert(*slot, (*ballot, value.clone()));
                }
            }
            StoreRecord::Chosen(s) => self.chosen = self.chosen.max(*s),
            StoreRecord::Snapshot(s) => {
                if *s > self.snapshot {
                    self.snapshot = *s;
                    self.accepted = self.accepted.split_off(&Slot(s.0 + 1));
                }
            }
        }
    }

    /// Raises the promise to the highest accepted ballot (FAULTS 24).
    fn settle(&mut self) {
        if let Some(max) = self.accepted.values().map(|(b, _)| *b).max() {
            self.promised = self.promised.max(max);
        }
    }
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
            let rec = StoreRecord::decode(&entry).ok_or_else(|| Error::Corruption {
                segment: SegmentId(0),
                path: wal.dir().to_owned(),
                offset: 0,
                lsn,
                reason: "log entry is not an acceptor record".into(),
            })?;
            state.apply(&rec);
        }
        state.settle();
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
        let encoded: Vec<Vec<u8>> = records.iter().map(StoreRecord::encode).collect();
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

    /// True if `t` is durable (never blocks).
    pub fn is_durable(&self, t: &Appended) -> Result<bool> {
        self.wal.is_durable(t)
    }

    /// Submits and waits.
    pub fn persist(&self, records: &[StoreRecord]) -> Result<()> {
        let t = self.submit(records)?;
        self.wait_durable(&t)
    }

    /// Records a durable snapshot at `slot`, checkpoints the live state and deletes the log
    /// segments that only hold superseded or snapshot-covered records. Returns the number of
    /// segments deleted.
    pub fn compact(&self, snapshot: Slot) -> Result<usize> {
        let _g = self.compact_lock.lock();
        let (t, start) = {
            let mut st = self.state.lock();
            st.apply(&StoreRecord::Snapshot(snapshot));
            let mut recs = vec![
                StoreRecord::Snapshot(snapshot),
                StoreRecord::Promise(st.promised),
            ];
            if st.chosen > Slot(0) {
                recs.push(StoreRecord::Chosen(st.chosen));
            }
            recs.extend(st.accepted.iter().map(|(s, (b, v))| StoreRecord::Accept {
                slot: *s,
                ballot: *b,
                value: v.clone(),
            }));
            let encoded: Vec<Vec<u8>> = recs.iter().map(StoreRecord::encode).collect();
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
    use proptest::prelude::*;

    fn b(round: u64, node: u32) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    #[test]
    fn records_round_trip_and_garbage_is_rejected() {
        let recs = [
            StoreRecord::Promise(b(3, 2)),
            StoreRecord::Accept {
                slot: Slot(9),
                ballot: b(3, 2),
                value: b"v".to_vec(),
            },
            StoreRecord::Chosen(Slot(4)),
            StoreRecord::Snapshot(Slot(2)),
        ];
        for r in &recs {
            assert_eq!(StoreRecord::decode(&r.encode()).as_ref(), Some(r));
        }
        assert_eq!(StoreRecord::decode(&[]), None);
        assert_eq!(StoreRecord::decode(&[9, 1, 2]), None);
        assert_eq!(StoreRecord::decode(&[KIND_PROMISE, 1]), None);
    }

    #[test]
    fn recovery_raises_the_promise_to_the_highest_accepted_ballot() {
        // FAULTS 24: an accepted ballot above the stored promise means the promise was lost.
        let mut s = AcceptorState::default();
        s.apply(&StoreRecord::Promise(b(1, 1)));
        s.apply(&StoreRecord::Accept {
            slot: Slot(1),
            ballot: b(5, 2),
            value: vec![],
        });
        s.settle();
        assert_eq!(s.promised, b(5, 2));
    }

    #[test]
    fn later_accept_supersedes_and_nothing_else_is_discarded() {
        // Paxos Made Simple §2.2: an acceptor keeps every accepted value; a later accept for
        // the same slot replaces it, and accepts for other slots are never removed.
        let dir = tempfile::tempdir().unwrap();
        let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
        let acc = |slot, ballot, v: &[u8]| StoreRecord::Accept {
            slot: Slot(slot),
            ballot,
            value: v.to_vec(),
        };
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
        assert_eq!(got.accepted[&Slot(2)], (b(2, 2), b"B".to_vec()));
        assert_eq!(got.accepted[&Slot(3)], (b(1, 1), b"c".to_vec()));
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
        for s in 1..=200u64 {
            store
                .persist(&[StoreRecord::Accept {
                    slot: Slot(s),
                    ballot: b(7, 1),
                    value: vec![s as u8; 500],
                }])
                .unwrap();
        }
        store.persist(&[StoreRecord::Chosen(Slot(150))]).unwrap();
        let deleted = store.compact(Slot(150)).unwrap();
        assert!(deleted > 0);
        let want = store.state();
        assert_eq!(want.accepted.len(), 50);
        store.close().unwrap();
        let store = AcceptorStore::open(dir.path(), opts).unwrap();
        assert!(store.first_lsn() > Lsn(1));
        assert_eq!(store.state(), want);
        assert_eq!(store.state().promised, b(7, 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn replay_equals_applying_the_records(ops in proptest::collection::vec((0u8..4, 1u64..20, 0u64..6, 0u32..3), 1..60)) {
            let recs: Vec<StoreRecord> = ops.iter().map(|&(k, slot, round, node)| match k {
                0 => StoreRecord::Promise(b(round, node)),
                1 => StoreRecord::Accept { slot: Slot(slot), ballot: b(round, node), value: vec![slot as u8; (round * 3) as usize] },
                2 => StoreRecord::Chosen(Slot(slot)),
                _ => StoreRecord::Snapshot(Slot(slot / 4)),
            }).collect();
            let dir = tempfile::tempdir().unwrap();
            let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
            for chunk in recs.chunks(7) {
                store.persist(chunk).unwrap();
            }
            let mut model = AcceptorState::default();
            for r in &recs { model.apply(r); }
            model.settle();
            store.close().unwrap();
            let store = AcceptorStore::open(dir.path(), Options::default()).unwrap();
            prop_assert_eq!(store.state(), model);
        }
    }
}

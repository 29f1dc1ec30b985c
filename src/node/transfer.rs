//! Snapshots on a policy, and their transfer to a replica that needs compacted slots.
//!
//! Every `snapshot_every_slots` applied slots the pump serializes the state machine and the
//! snapshotter writes it ([`Snapshots::write`](crate::snapshot::Snapshots::write): fsync,
//! rename, directory fsync) and only then compacts the acceptor log below it; the pump then
//! lets the core forget those slots ([`Replica::compact`](crate::paxos::Replica::compact)).
//!
//! Transfer is pulled by the receiver, so it resumes wherever it stopped: on the core's
//! `SnapshotHint` the leader sends `SnapshotOffer { up_to, len, crc }` (at most once a second
//! per peer); the receiver asks `SnapshotFetch { up_to, offset }` for the bytes it lacks and
//! gets `SnapshotChunk`s (each inside a checksummed frame) one at a time. A transfer that
//! stalls — a dropped connection, a lost chunk — is fetched again from its current offset
//! after 500 ms, and abandoned after 15 s. The whole snapshot's crc32 is checked before it is
//! written; the snapshotter makes it durable and compacts the log below it, and only then
//! does the pump restore the state machine from it and give the core
//! [`Replica::install_snapshot`](crate::paxos::Replica::install_snapshot) — no restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use super::proto::PeerMsg;
use super::pump::Pump;
use super::runtime::SnapJob;
use crate::paxos::Role;
use crate::types::{NodeId, Slot};

/// Largest snapshot a replica accepts from a peer.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

/// A snapshot this node holds, ready to serve in chunks.
pub(super) struct Cached {
    pub(super) up_to: Slot,
    pub(super) data: Arc<Vec<u8>>,
    pub(super) crc: u32,
}

impl Cached {
    pub(super) fn new(up_to: Slot, data: Arc<Vec<u8>>) -> Cached {
        let crc = crc32fast::hash(&data);
        Cached { up_to, data, crc }
    }
}

/// A snapshot being received.
pub(super) struct Incoming {
    pub(super) from: NodeId,
    pub(super) up_to: Slot,
    pub(super) len: u64,
    pub(super) crc: u32,
    pub(super) buf: Vec<u8>,
    pub(super) last_progress: Instant,
    pub(super) chunks: u64,
    pub(super) dropped_once: bool,
}

impl Pump {
    pub(super) fn maybe_snapshot(&mut self) {
        let every = self.cfg.snapshot_every_slots;
        let applied = self.replica.applied();
        if every == 0 || self.snapshotting || applied.0 < self.snapshot_at.0 + every {
            return;
        }
        let data = Arc::new(self.machine.snapshot());
        // A full queue: the snapshotter is busy installing; try again later.
        if self
            .snap_tx
            .try_send(SnapJob::Take(applied, Arc::clone(&data)))
            .is_ok()
        {
            self.snapshotting = true;
            self.snapshot_at = applied;
            self.pending_take = Some((applied, data));
        }
    }

    /// Peer `to` needs slots below `below`, which this replica compacted: offer the newest
    /// snapshot (at most once per second per peer).
    pub(super) fn offer(&mut self, to: NodeId, below: Slot) {
        let Some(c) = &self.cache else {
            return;
        };
        if c.up_to < below {
            return;
        }
        let now = Instant::now();
        if self
            .offered
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        self.offered.insert(to, now);
        Metrics::inc(&self.shared.metrics.transfers_sent);
        let offer = PeerMsg::SnapshotOffer {
            up_to: c.up_to,
            len: c.data.len() as u64,
            crc: c.crc,
        };
        tracing::info!(
            "offering the snapshot through slot {} ({} bytes) to replica {}",
            c.up_to.0,
            c.data.len(),
            to.0
        );
        self.send_peer(to, &offer);
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, up_to: Slot, offset: u64) {
        let Some(c) = &self.cache else {
            return;
        };
        if c.up_to != up_to {
            // We moved on to a newer snapshot: offer it instead.
            self.offered.remove(&from);
            let below = c.up_to;
            self.offer(from, below);
            return;
        }
        let len = c.data.len() as u64;
        let start = offset.min(len) as usize;
        let end = (start + self.cfg.transfer_chunk_bytes.max(1)).min(c.data.len());
        let chunk = PeerMsg::SnapshotChunk {
            up_to,
            len,
            crc: c.crc,
            offset: start as u64,
            data: c.data[start..end].to_vec(),
        };
        self.send_peer(from, &chunk);
    }

    pub(super) fn on_offer(&mut self, from: NodeId, up_to: Slot, len: u64, crc: u32) {
        if up_to <= self.replica.applied() || self.installing || len > SNAPSHOT_BYTES_MAX {
            return;
        }
        let offset = match &self.incoming {
            Some(i) if (i.up_to, i.len, i.crc) == (up_to, len, crc) => {
                // The same snapshot again (say, after a dropped connection): resume.
                i.buf.len() as u64
            }
            Some(i) if i.up_to > up_to && i.last_progress.elapsed() < Duration::from_secs(5) => {
                return;
            }
            _ => {
                tracing::info!(
                    "receiving the snapshot through slot {} ({len} bytes) from replica {}",
                    up_to.0,
                    from.0
                );
                self.incoming = Some(Incoming {
                    from,
                    up_to,
                    len,
                    crc,
                    buf: Vec::with_capacity(len.min(64 << 20) as usize),
                    last_progress: Instant::now(),
                    chunks: 0,
                    dropped_once: false,
                });
                0
            }
        };
        if let Some(i) = &mut self.incoming {
            i.from = from;
            i.last_progress = Instant::now();
        }
        self.send_peer(from, &PeerMsg::SnapshotFetch { up_to, offset });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_chunk(
        &mut self,
        from: NodeId,
        up_to: Slot,
        len: u64,
        crc: u32,
        offset: u64,
        data: Vec<u8>,
    ) {
        let Some(inc) = &mut self.incoming else {
            return;
        };
        if (inc.up_to, inc.len, inc.crc) != (up_to, len, crc)
            || offset != inc.buf.len() as u64
            || inc.buf.len() as u64 + data.len() as u64 > len
        {
            return; // a duplicate, a late chunk of another transfer, or a lie
        }
        inc.buf.extend_from_slice(&data);
        inc.chunks += 1;
        inc.last_progress = Instant::now();
        Metrics::inc(&self.shared.metrics.chunks_received);
        if inc.buf.len() as u64 == len {
            let Some(inc) = self.incoming.take() else {
                return;
            };
            if crc32fast::hash(&inc.buf) != crc {
                tracing::warn!(
                    "snapshot through slot {} from replica {}: checksum mismatch; dropped",
                    up_to.0,
                    from.0
                );
                return;
            }
            if self
                .snap_tx
                .try_send(SnapJob::Install(up_to, Arc::new(inc.buf)))
                .is_ok()
            {
                self.installing = true;
            }
            return;
        }
        if self.cfg.drop_transfer_after_chunks == Some(inc.chunks) && !inc.dropped_once {
            inc.dropped_once = true;
            tracing::warn!(
                "test hook: dropping the connection to replica {} mid-transfer",
                from.0
            );
            self.net.disconnect(from);
            return; // the stall timer fetches the rest once the connection is back
        }
        let fetch = PeerMsg::SnapshotFetch {
            up_to,
            offset: inc.buf.len() as u64,
        };
        self.send_peer(from, &fetch);
    }

    pub(super) fn on_installed(&mut self, up_to: Slot, data: Arc<Vec<u8>>) {
        self.installing = false;
        if up_to > self.replica.applied() && self.replica.role() != Role::Leader {
            if let Err(e) = self.machine.restore(&data) {
                self.shared
                    .fail(format!("snapshot through slot {}: {e}", up_to.0));
                return;
            }
            if self.replica.install_snapshot(up_to) {
                Metrics::inc(&self.shared.metrics.snapshots_installed);
                tracing::info!("installed the snapshot through slot {}", up_to.0);
            }
        }
        if self.cache.as_ref().is_none_or(|c| c.up_to < up_to) {
            self.cache = Some(Cached::new(up_to, data));
        }
        self.snapshot_at = self.snapshot_at.max(up_to);
        self.publish();
    }
}

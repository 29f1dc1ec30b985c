//! The data the core exchanges with the outside world: client commands, slot values, messages
//! between replicas, records for the acceptor store, and the actions a [`Replica`] asks its
//! runtime to carry out.
//!
//! [`Replica`]: super::Replica

use crate::types::{Ballot, NodeId, Slot};

use super::shared::{Clones, Shared};

/// A client command. `(client, seq)` identifies it across retries; see [`Sessions`] for the
/// exactly-once rule the state machine applies.
///
/// [`Sessions`]: super::Sessions
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Command {
    /// The client (session) that issued the command.
    pub client: u64,
    /// The client's sequence number for this command; a retry reuses it.
    pub seq: u64,
    /// Opaque bytes for the application's state machine.
    pub payload: Vec<u8>,
}

impl Command {
    /// Fixed bytes a command costs on the wire besides its payload (client, seq, length).
    pub const OVERHEAD_BYTES: usize = 20;

    /// The bytes this command counts for against the batch and window byte caps.
    pub fn size_bytes(&self) -> usize {
        Self::OVERHEAD_BYTES + self.payload.len()
    }
}

/// The value of one slot: a batch of client commands, shared (cheap to clone, so the same
/// value can go to every peer without copying). An empty batch is a no-op (what a new leader
/// proposes for a hole in the log).
///
/// A value is a view of a shared, reference-counted command array: a leader packs the
/// commands of every slot it proposes in one flush into one array, so proposing costs one
/// allocation per flush, and the core takes or gives back the references of a run of such
/// slots with one atomic operation (see `shared.rs`). Equality compares the commands.
#[derive(Clone)]
pub struct Value {
    shared: Shared,
    start: u32,
    len: u32,
}

impl Value {
    /// A batch of commands (at most `u32::MAX`).
    pub fn new(commands: Vec<Command>) -> Value {
        let len = u32::try_from(commands.len()).unwrap_or_else(|_| panic!("too many commands"));
        Value {
            shared: Shared::new(commands),
            start: 0,
            len,
        }
    }

    /// The no-op value (an empty batch).
    pub fn noop() -> Value {
        Value::new(Vec::new())
    }

    /// True for the no-op value.
    pub fn is_noop(&self) -> bool {
        self.len == 0
    }

    /// The commands in this batch, in the order they are to be applied.
    pub fn commands(&self) -> &[Command] {
        let start = self.start as usize;
        &self.shared.commands()[start..start + self.len as usize]
    }

    /// The bytes this value counts for against the window byte cap.
    pub fn size_bytes(&self) -> usize {
        4 + self
            .commands()
            .iter()
            .map(Command::size_bytes)
            .sum::<usize>()
    }

    /// The value of commands `start..start + len` of `shared` (a range the caller checked).
    pub(crate) fn from_parts(shared: Shared, start: u32, len: u32) -> Value {
        debug_assert!(start as usize + len as usize <= shared.commands().len());
        Value { shared, start, len }
    }

    /// `n` more handles of this value, for one atomic increment.
    pub(crate) fn clones(&self, n: usize) -> impl ExactSizeIterator<Item = Value> + '_ {
        let (start, len) = (self.start, self.len);
        self.shared
            .clones(n)
            .map(move |shared| Value { shared, start, len })
    }

    /// `n` more references to this value's command array, for one atomic increment (see
    /// [`Value::with_ref`]).
    pub(crate) fn refs(&self, n: usize) -> Clones {
        self.shared.clones(n)
    }

    /// A value with this one's commands that holds `r`, a reference to this value's array
    /// or to another that shares it.
    pub(crate) fn with_ref(&self, r: Shared) -> Value {
        debug_assert!(r.same(&self.shared));
        Value {
            shared: r,
            start: self.start,
            len: self.len,
        }
    }

    /// True if both are views of the same command array.
    pub(crate) fn shares(&self, other: &Value) -> bool {
        self.shared.same(&other.shared)
    }

    /// The number of handles to this value's command array (for tests).
    #[cfg(test)]
    pub(crate) fn handles(&self) -> usize {
        self.shared.refs()
    }

    /// A handle of each of `values`, in order, for one atomic increment per run of
    /// consecutive values that share an array.
    #[cfg(test)]
    pub(crate) fn clone_all(values: &[Value]) -> Vec<Value> {
        let mut out = Vec::with_capacity(values.len());
        let mut i = 0;
        while let Some(first) = values.get(i) {
            let run = values[i..].iter().take_while(|v| v.shares(first)).count();
            let mut refs = first.shared.clones(run);
            for v in &values[i..i + run] {
                let Some(shared) = refs.next() else {
                    break;
                };
                out.push(Value::from_parts(shared, v.start, v.len));
            }
            i += run;
        }
        out
    }

    /// Drops every value, for one atomic decrement per run of consecutive values that share
    /// an array.
    pub(crate) fn drop_all(values: impl IntoIterator<Item = Value>) {
        let mut release = Release::default();
        for v in values {
            release.push(v);
        }
    }
}

/// Values given up one at a time and released in runs: consecutive values that share a
/// command array cost one atomic decrement in all, when the run ends or this is dropped.
#[derive(Default)]
pub(crate) struct Release {
    run: Option<(Shared, usize)>,
}

impl Release {
    /// Gives up `v`.
    pub(crate) fn push(&mut self, v: Value) {
        match &mut self.run {
            Some((first, extra)) if first.same(&v.shared) => {
                // Given back with the run's first reference.
                std::mem::forget(v);
                *extra += 1;
            }
            _ => {
                if let Some((first, extra)) = self.run.replace((v.shared, 0)) {
                    first.release(extra);
                }
            }
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some((first, extra)) = self.run.take() {
            first.release(extra);
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.commands() == other.commands()
    }
}

impl Eq for Value {}

/// Hashes the commands, as equality compares them.
impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.commands().hash(state);
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Value").field(&self.commands()).finish()
    }
}

/// One accepted slot: the value an acceptor accepted for `slot` at `ballot`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The slot.
    pub slot: Slot,
    /// The ballot it was accepted at.
    pub ballot: Ballot,
    /// The accepted value.
    pub value: Value,
}

/// A message between two replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// What it says.
    pub body: Body,
}

/// The kinds of message. Ballots order everything: a message at a ballot below the receiver's
/// promise is answered with [`Body::Reject`] or ignored, never acted on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// Pre-vote: "would you support me if I ran Phase 1 at `ballot`?" Changes no state at the
    /// receiver; granted only if it has not heard from a live leader within the minimum election
    /// timeout and the candidate has chosen at least as many slots as the receiver.
    PreVote {
        /// The ballot the candidate would use.
        ballot: Ballot,
        /// The candidate's first unchosen slot.
        chosen: Slot,
    },
    /// Answer to [`Body::PreVote`].
    PreVoteReply {
        /// The ballot from the pre-vote being answered.
        ballot: Ballot,
        /// True if the receiver supports the candidate.
        granted: bool,
        /// The receiver's promised ballot (lets the candidate pick a ballot above it).
        promised: Ballot,
    },
    /// Phase 1a for every slot from `from` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's first unchosen slot.
        from: Slot,
    },
    /// Phase 1b: the acceptor promised `ballot` (durably) and reports what it accepted.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The `from` of the Prepare being answered.
        from: Slot,
        /// The acceptor's first unchosen slot.
        chosen: Slot,
        /// The acceptor's first slot still held in its log (slots below were compacted into a
        /// snapshot and cannot be reported).
        log_start: Slot,
        /// Every entry the acceptor holds at slots `>= max(from, log_start)`.
        entries: Vec<Entry>,
    },
    /// Phase 2a for the consecutive slots `first, first + 1, …`, one value each, with the
    /// leader's commit point (its first unchosen slot) piggybacked.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot of `values[0]`.
        first: Slot,
        /// The values, for consecutive slots.
        values: Vec<Value>,
        /// Every slot below this is chosen (the leader's first unchosen slot).
        commit: Slot,
    },
    /// Phase 2b: the acceptor accepted (durably) slots `first..end` at `ballot`.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// First slot accepted.
        first: Slot,
        /// One past the last slot accepted.
        end: Slot,
    },
    /// "Your ballot is below my promise": sent in answer to a Prepare, Accept or Heartbeat.
    Reject {
        /// The ballot of the message being rejected.
        ballot: Ballot,
        /// The receiver's promised ballot.
        promised: Ballot,
    },
    /// The leader's periodic message: its commit point, and a read-index round number.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// Every slot below this is chosen.
        commit: Slot,
        /// The read-index round this heartbeat confirms (0: none yet).
        read_round: u64,
    },
    /// Answer to [`Body::Heartbeat`].
    HeartbeatAck {
        /// The heartbeat's ballot.
        ballot: Ballot,
        /// The heartbeat's read round.
        read_round: u64,
        /// The heartbeat's commit point, echoed.
        commit: Slot,
        /// The follower's first unchosen slot after learning from the heartbeat; below
        /// `commit` means it lacks chosen values and needs catch-up.
        chosen: Slot,
    },
}

/// A record for the acceptor store. The store appends records in the order given (a later
/// record for the same slot supersedes an earlier one) and replays them in that order on
/// recovery to rebuild a [`DurableState`].
///
/// [`DurableState`]: super::DurableState
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoreRecord {
    /// The acceptor promised this ballot.
    Promise(Ballot),
    /// The acceptor accepted this entry (and so promised at least its ballot).
    Accept(Entry),
    /// Every slot below `up_to` is chosen (the accepted entry held for each is the chosen
    /// value).
    Chosen {
        /// Exclusive bound.
        up_to: Slot,
    },
    /// Forget every accepted entry above `slot`. Emitted ONLY by the planted bug
    /// [`Faults::truncate_suffix_on_conflict`]; a correct replica never discards an accepted
    /// value.
    ///
    /// [`Faults::truncate_suffix_on_conflict`]: super::Faults::truncate_suffix_on_conflict
    TruncateAfter(Slot),
    /// The application holds a durable snapshot covering every slot below `up_to`: accepted
    /// entries below it may be forgotten. Written by the runtime (never by the core) when it
    /// compacts; see [`crate::store::AcceptorStore::compact`].
    Snapshot {
        /// Exclusive bound.
        up_to: Slot,
    },
}

/// Identifies one [`Action::Persist`]. Tokens increase by one per persist, starting at 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistToken(pub u64);

/// Something the runtime must do for the replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Append `records` to the acceptor store, after the records of every earlier persist, make
    /// them durable, then call [`Replica::persisted`] with `token` (or a later token: a
    /// completion acknowledges every persist up to and including it).
    ///
    /// [`Replica::persisted`]: super::Replica::persisted
    Persist {
        /// The records, in order.
        records: Vec<StoreRecord>,
        /// The completion token.
        token: PersistToken,
    },
    /// Send this message. Messages that depend on durable state (Promise, Accepted) are only
    /// ever emitted after the persist they depend on completed, so they can be sent at once.
    Send(Message),
    /// Apply the chosen value of `slot` to the state machine. Emitted once per slot, in slot
    /// order, without gaps (no-ops included, with an empty batch).
    Apply {
        /// The slot.
        slot: Slot,
        /// Its chosen value.
        value: Value,
    },
    /// The linearizable read `ctx` may now be served from the local state machine: leadership
    /// was confirmed by a quorum after the read was requested and every slot that could have
    /// been chosen before it has been applied.
    ReadReady {
        /// The caller's read identifier.
        ctx: u64,
    },
    /// The read `ctx` cannot be served here any more (leadership was lost); retry elsewhere.
    ReadAborted {
        /// The caller's read identifier.
        ctx: u64,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// Peer `to` needs slots below `below`, which this replica has compacted into a snapshot:
    /// send it a snapshot covering at least up to `below`.
    SnapshotHint {
        /// The lagging peer.
        to: NodeId,
        /// The first slot this replica still holds in its log.
        below: Slot,
    },
}

/// Returned by [`Replica::propose`] and [`Replica::read_index`] on a replica that is not the
/// active leader.
///
/// [`Replica::propose`]: super::Replica::propose
/// [`Replica::read_index`]: super::Replica::read_index
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader:?})")]
pub struct NotLeader {
    /// The replica believed to lead, if any.
    pub leader: Option<NodeId>,
}

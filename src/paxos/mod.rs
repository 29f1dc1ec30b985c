//! The pure, deterministic Multi-Paxos core: no I/O, no clock, no threads.
//!
//! A [`Replica`] takes inputs — [`Replica::step`] (a message from a peer), [`Replica::tick`],
//! [`Replica::propose`] and [`Replica::persisted`] (a storage completion) — and queues
//! [`Action`]s as data, taken with [`Replica::take_actions`]:
//!
//! * `Persist { token, records }`: write these acceptor records durably (the
//!   [`crate::store::AcceptorStore`] does it through the WAL's group commit), then call
//!   `persisted(token)`. Completions must be reported in token order.
//! * `Send { to, msg }`: messages. A reply that depends on durable state (a promise, an accept)
//!   is only emitted after the matching `persisted` call.
//! * `Apply { slot, entry }`: a chosen entry, in slot order, exactly once per slot.
//!
//! Protocol (Lamport, "Paxos Made Simple" §3, with the usual Multi-Paxos refinements):
//! ballots are `(round, replica)`; a candidate runs phase 1 once for every slot above its commit
//! point; with a majority of promises it re-proposes, per slot, the value accepted at the highest
//! ballot and fills holes with no-ops, then runs phase 2 with up to `window_slots_max` slots in
//! flight, batching queued commands into one slot value. The leader's own accept counts once its
//! persist completes. The commit point rides on every accept and heartbeat; followers that lack a
//! chosen value fetch it. Leadership is sticky: a replica that heard from a live leader within
//! the election timeout ignores other candidates' prepares, so a replica returning from a
//! partition cannot depose a healthy leader.
//!
//! Invariant (checked in debug builds): `applied ≤ commit`, and every slot up to `commit` has a
//! known chosen value.

mod message;
mod replica;

pub use message::{Command, Entry, Message};
pub use replica::{Action, Config, NotLeader, PlantedBugs, Replica, Role};

//! The pure, deterministic Multi-Paxos core.
//!
//! A [`Replica`] is a state machine: inputs are peer messages ([`Replica::step`]), logical time
//! ([`Replica::tick`]), client commands ([`Replica::propose`]), linearizable reads
//! ([`Replica::read_index`]) and storage completions ([`Replica::persisted`]); the output is a
//! list of [`Action`]s ([`Replica::take_actions`]). No clock, no threads, no I/O; randomness
//! only from [`Config::seed`]. The runtime (or the simulator) carries the actions out.
//!
//! # The action contract
//!
//! - [`Action::Persist`]`{ records, token }`: append the records to the acceptor store after
//!   every earlier persist's records, make them durable, then call
//!   [`Replica::persisted`]`(token)`. Tokens are 1, 2, 3, … in emission order; a completion
//!   acknowledges every token up to it, so completions must be reported in order (a group
//!   commit may acknowledge many at once).
//! - [`Action::Send`]: deliver the message (best effort; loss, delay, duplication and
//!   reordering are tolerated). Replies that depend on durable state — Promise and Accepted —
//!   are emitted only after the persist covering everything buffered before them completed, so
//!   the runtime may send every `Send` as soon as it sees it.
//! - [`Action::Apply`]: apply the slot's chosen value; one per slot, in slot order, no gaps,
//!   no-ops included (empty batch). Deduplicate retried commands with [`Sessions`].
//! - [`Action::ReadReady`] / [`Action::ReadAborted`]: the outcome of a [`Replica::read_index`].
//! - [`Action::SnapshotHint`]: a peer needs slots this replica compacted away.
//!
//! Actions carried out may simply be dropped, or given back in bulk with
//! [`Replica::recycle`] — the cheaper way: the value handles they hold are released with one
//! atomic decrement per run of slots that share a command array (one per leader flush rather
//! than one per slot), and the emptied persist-record and Accept value lists are reused by
//! the next persists and Accepts instead of allocating new ones. A runtime would give back
//! each `Persist` once written (after calling [`Replica::persisted`]), each `Apply` once
//! applied, and each `Send` once encoded; actions of any replica may be given to any other.
//!
//! # Protocol
//!
//! Ballots are `(round, replica)`. A follower that hears from no leader for a randomized
//! election timeout runs a pre-vote round, then Phase 1 for every slot from its first unchosen
//! one (module `election`). The new leader re-proposes the highest-ballot value reported for each
//! slot and fills holes with no-ops, then runs Phase 2 pipelined: client commands are batched
//! into slot values and proposed while the window of in-flight slots has room (module `leader`).
//! The commit point rides on every Accept and heartbeat; followers learn chosen slots from it
//! and lagging followers are caught up from the leader's log (module `acceptor`).
//!
//! # Safety rules (DESIGN.md, "Paxos safety constraints")
//!
//! - An acceptor never replies Promise or Accepted before its state is durable.
//! - It never accepts a ballot below its promise.
//! - It never discards an accepted value: a later accept for the same slot supersedes it.
//! - On recovery `promised := max(promised, highest accepted ballot)` ([`Replica::new`]).
//!
//! # Log-pointer invariant
//!
//! `log_start <= applied <= chosen <= log_end`, where `log_start` is the first slot still held
//! (below it a durable snapshot covers the log), `applied` the first slot not yet emitted as
//! [`Action::Apply`], `chosen` the first slot not known chosen, and `log_end` one past the
//! highest accepted slot held. On the leader additionally `chosen == window base` and
//! `next_slot == chosen + in-flight slots`. Checked with `debug_assert!` after every input.
//!
//! [`Faults`] holds test-only planted bugs that prove the simulator's checkers work.

mod acceptor;
mod batcher;
pub mod codec;
mod config;
mod election;
#[doc(hidden)]
pub mod fuzzing;
mod leader;
mod log;
mod message;
mod quorum;
mod replica;
mod rng;
mod session;
mod shared;

#[cfg(test)]
mod tests;

pub use codec::DecodeError;
pub use config::{Config, ConfigError, DurableState, Faults, Role};
pub use message::{
    Action, Body, Command, Entry, Message, NotLeader, PersistToken, StoreRecord, Value,
};
pub use replica::Replica;
pub use session::{SessionCheck, Sessions};

//! Configuration, recovered durable state and the test-only planted bugs.

use crate::types::{Ballot, NodeId, Slot};

use super::message::Entry;

/// Static configuration of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This replica.
    pub id: NodeId,
    /// Every member of the cluster, this replica included (at most 64).
    pub peers: Vec<NodeId>,
    /// A follower starts an election after a random number of ticks in
    /// `election_timeout_ticks_min..=election_timeout_ticks_max` without hearing from a leader.
    /// It is also the stickiness window: a replica that heard from a live leader less than this
    /// many ticks ago refuses pre-votes.
    pub election_timeout_ticks_min: u32,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_ticks_max: u32,
    /// The leader sends a heartbeat (and retransmits unacknowledged accepts) every this many
    /// ticks.
    pub heartbeat_ticks: u32,
    /// Most slots the leader keeps in flight (proposed, not yet chosen).
    pub window_slots_max: usize,
    /// Most value bytes the leader keeps in flight (always at least one slot).
    pub window_bytes_max: usize,
    /// Most commands packed into one slot's value.
    pub batch_commands_max: usize,
    /// Most command bytes packed into one slot's value (always at least one command).
    pub batch_bytes_max: usize,
    /// Seed of the replica's PRNG (election jitter). Give every replica its own.
    pub seed: u64,
}

impl Config {
    /// A configuration with the defaults: election timeout 10–20 ticks, heartbeat every 2
    /// ticks, 1,024 slots / 64 MiB in flight, batches of up to 1,024 commands / 1 MiB.
    pub fn new(id: NodeId, peers: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            peers,
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_ticks: 2,
            window_slots_max: 1024,
            window_bytes_max: 64 << 20,
            batch_commands_max: 1024,
            batch_bytes_max: 1 << 20,
            seed,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: &str| Err(ConfigError(why.to_string()));
        if self.peers.is_empty() || self.peers.len() > 64 {
            return bad("peers must hold between 1 and 64 members");
        }
        let mut sorted = self.peers.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.peers.len() {
            return bad("peers holds a duplicate");
        }
        if !self.peers.contains(&self.id) {
            return bad("peers must include id");
        }
        if self.election_timeout_ticks_min == 0
            || self.election_timeout_ticks_max < self.election_timeout_ticks_min
        {
            return bad("election timeout must satisfy 0 < min <= max");
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_timeout_ticks_min {
            return bad("heartbeat_ticks must be in 1..election_timeout_ticks_min");
        }
        if self.window_slots_max == 0 || self.batch_commands_max == 0 {
            return bad("window_slots_max and batch_commands_max must be positive");
        }
        Ok(())
    }
}

/// An invalid [`Config`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid paxos configuration: {0}")]
pub struct ConfigError(pub String);

/// What the acceptor store recovered: the input to [`Replica::new`]. An empty store recovers
/// to `DurableState::default()`.
///
/// The store builds it by replaying its records in order: `promised` is the last
/// [`StoreRecord::Promise`], `accepted` keeps, per slot, the last [`StoreRecord::Accept`]
/// (a later record for a slot supersedes an earlier one), `chosen` the last
/// [`StoreRecord::Chosen`]. [`Replica::new`] itself raises `promised` to the highest accepted
/// ballot (an accept implies a promise), so the store need not.
///
/// [`Replica::new`]: super::Replica::new
/// [`StoreRecord::Promise`]: super::StoreRecord::Promise
/// [`StoreRecord::Accept`]: super::StoreRecord::Accept
/// [`StoreRecord::Chosen`]: super::StoreRecord::Chosen
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DurableState {
    /// The highest ballot promised.
    pub promised: Ballot,
    /// Accepted entries, at most one per slot, at slots `>= snapshot`.
    pub accepted: Vec<Entry>,
    /// Every slot below this is chosen.
    pub chosen: Slot,
    /// Every slot below this is covered by the application's durable snapshot (the replica
    /// starts applying from here).
    pub snapshot: Slot,
}

/// Deliberately broken behaviours, all off by default. They exist ONLY so that tests can
/// prove the simulator's checkers catch real safety bugs; never turn one on otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// (a) Send the Promise reply before the promise record is durable.
    pub promise_before_durable: bool,
    /// (b) A new leader ignores the values reported in Phase 1 and proposes no-ops instead.
    pub ignore_highest_ballot_value: bool,
    /// (c) An acceptor accepts a ballot below its promise.
    pub accept_lower_ballot: bool,
    /// (d) On accepting a value at slot `s`, an acceptor drops every accepted entry above `s`
    /// (Raft's suffix truncation, unsafe in Multi-Paxos) and tells the store to forget them
    /// with [`StoreRecord::TruncateAfter`].
    ///
    /// [`StoreRecord::TruncateAfter`]: super::StoreRecord::TruncateAfter
    pub truncate_suffix_on_conflict: bool,
    /// (e) Partial P2c break: merging Phase 1 reports, a new leader keeps, for slots not
    /// divisible by 3, the *first* value reported (its own, if it holds one) instead of the
    /// highest-ballot one.
    pub first_value_wins: bool,
    /// (f) For Prepares whose ballot round is not divisible by 3, an acceptor leaves the
    /// lowest-slot entry it holds out of its Promise.
    pub promise_forgets_one_value: bool,
    /// (g) A leader counts an even slot chosen one vote short of a majority (its commit point
    /// runs one slot early).
    pub commit_one_early: bool,
    /// (h) The session table executes again a retry whose sequence number is odd, instead of
    /// answering the remembered result (set on a [`Sessions`] with
    /// [`Sessions::set_faults`]).
    ///
    /// [`Sessions`]: super::Sessions
    /// [`Sessions::set_faults`]: super::Sessions::set_faults
    pub sessions_reexecute_retry: bool,
    /// (i) Check-quorum off for ballots whose round is even: such a leader cut off from a
    /// majority never steps down.
    pub no_check_quorum: bool,
    /// (j) Pre-vote off when the next ballot's round is odd: the replica runs Phase 1 at once
    /// when its election timeout fires.
    pub no_prevote: bool,
}

/// What a replica currently does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote round.
    PreCandidate,
    /// Runs Phase 1 at its ballot.
    Candidate,
    /// Leads at its ballot: Phase 1 done, proposes in Phase 2.
    Leader,
}

//! Coverage of the protocol situations the Paxos rules exist for, counted per run from the
//! outside: the simulator sees every message it delivers, every action a core emits, and each
//! core's state through its read-only accessors, so nothing here hooks into the core.
//!
//! A checker can only catch the break of a rule if the run reaches the situation that rule is
//! for: a P2c merge that keeps the wrong value is invisible unless Phase 1 ever hears two
//! different values for one slot. [`Coverage`] counts, per run, how often each situation came
//! up; [`CoverageTally`] turns many runs into "reached in this share of seeds".

use std::collections::{BTreeMap, BTreeSet};

use crate::paxos::{Body, Message, Replica, Role, StoreRecord, Value};
use crate::types::{Ballot, Slot};

/// How often each protocol situation came up in one run (or, added, in many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    /// A candidate's Phase 1 heard, for one slot, different values at different ballots (its
    /// own log included): the case the highest-ballot merge (P2c) exists for.
    pub phase1_conflicting_values: u64,
    /// A leader lost its leadership (crash, partition, higher ballot) while it knew slots
    /// chosen that no other replica knew chosen yet.
    pub leader_lost_unshared_chosen: u64,
    /// A value accepted at a slot by a minority only was replaced there by a different value
    /// at a higher ballot.
    pub minority_value_replaced: u64,
    /// An Accept or Prepare arrived below the receiver's promise.
    pub below_promise_arrivals: u64,
    /// A promise recovered from disk after a crash rejected a Prepare or Accept (before the
    /// replica promised anything new).
    pub recovered_promise_decided: u64,
    /// A read-index round was pending while a leader with a higher ballot than the reading
    /// leader's existed.
    pub read_spanning_leader_change: u64,
    /// A retried command was chosen again in a second slot after its first attempt had been
    /// chosen (the session table must not execute it twice).
    pub retry_of_applied_command: u64,
    /// A replica installed a snapshot while Accepts for slots at or above it were in flight
    /// to it.
    pub snapshot_with_accepts_in_flight: u64,
}

impl Coverage {
    /// The situations, in order: name and count.
    pub fn counts(&self) -> [(&'static str, u64); 8] {
        [
            ("phase1_conflicting_values", self.phase1_conflicting_values),
            (
                "leader_lost_unshared_chosen",
                self.leader_lost_unshared_chosen,
            ),
            ("minority_value_replaced", self.minority_value_replaced),
            ("below_promise_arrivals", self.below_promise_arrivals),
            ("recovered_promise_decided", self.recovered_promise_decided),
            (
                "read_spanning_leader_change",
                self.read_spanning_leader_change,
            ),
            ("retry_of_applied_command", self.retry_of_applied_command),
            (
                "snapshot_with_accepts_in_flight",
                self.snapshot_with_accepts_in_flight,
            ),
        ]
    }

    /// Adds another run's counts.
    pub fn add(&mut self, o: &Coverage) {
        self.phase1_conflicting_values += o.phase1_conflicting_values;
        self.leader_lost_unshared_chosen += o.leader_lost_unshared_chosen;
        self.minority_value_replaced += o.minority_value_replaced;
        self.below_promise_arrivals += o.below_promise_arrivals;
        self.recovered_promise_decided += o.recovered_promise_decided;
        self.read_spanning_leader_change += o.read_spanning_leader_change;
        self.retry_of_applied_command += o.retry_of_applied_command;
        self.snapshot_with_accepts_in_flight += o.snapshot_with_accepts_in_flight;
    }
}

/// Coverage over many runs: per situation, the number of runs that reached it at least once
/// and the number of times it came up in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoverageTally {
    /// Runs added.
    pub runs: u64,
    /// Per situation (in [`Coverage::counts`] order): runs that reached it.
    pub runs_reached: [u64; 8],
    /// Per situation: occurrences in all.
    pub total: Coverage,
}

impl CoverageTally {
    /// Adds one run's coverage.
    pub fn add(&mut self, c: &Coverage) {
        self.runs += 1;
        for (k, (_, n)) in c.counts().iter().enumerate() {
            self.runs_reached[k] += u64::from(*n > 0);
        }
        self.total.add(c);
    }

    /// Per situation: name, runs that reached it, their share in percent, occurrences.
    pub fn rows(&self) -> Vec<(&'static str, u64, f64, u64)> {
        self.total
            .counts()
            .iter()
            .zip(self.runs_reached)
            .map(|(&(name, total), reached)| {
                let pct = if self.runs == 0 {
                    0.0
                } else {
                    100.0 * reached as f64 / self.runs as f64
                };
                (name, reached, pct, total)
            })
            .collect()
    }

    /// One line for a summary: each situation with the share of runs that reached it.
    pub fn summary(&self) -> String {
        let rows: Vec<String> = self
            .rows()
            .iter()
            .map(|(name, _, pct, total)| format!("{name} {pct:.1}% ({total})"))
            .collect();
        format!(
            "coverage (share of seeds reaching each situation, occurrences): {}",
            rows.join(", ")
        )
    }

    /// The tally as JSON: per situation, runs reaching it, their percentage and occurrences.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (name, reached, pct, total) in self.rows() {
            m.insert(
                name.to_string(),
                serde_json::json!({
                    "seeds_reached": reached,
                    "percent": (pct * 10.0).round() / 10.0,
                    "occurrences": total,
                }),
            );
        }
        serde_json::Value::Object(m)
    }

    /// The smallest share of runs (percent) that reached any one situation.
    pub fn min_percent(&self) -> f64 {
        self.rows()
            .iter()
            .map(|r| r.2)
            .fold(f64::INFINITY, f64::min)
    }
}

/// What the tracker remembers of one replica (across its incarnations).
#[derive(Default)]
struct NodeTrack {
    /// While leading: the ballot and chosen point last seen.
    leading: Option<(Ballot, Slot)>,
    /// Per slot, the last entry this replica accepted (from its persist records).
    accepted: BTreeMap<Slot, (Ballot, Value)>,
    /// The promise this incarnation recovered from disk, while it has promised nothing newer.
    recovered_promise: Option<Ballot>,
    /// Read-index rounds pending here: ctx → (the leader's ballot, spanned a leader change).
    reads: BTreeMap<u64, (Ballot, bool)>,
}

/// Per slot, the first report a candidacy heard: `(ballot, value)`.
type Reports = BTreeMap<Slot, (Ballot, Value)>;

/// Watches a run and counts the situations of [`Coverage`].
pub(crate) struct Tracker {
    pub(crate) cov: Coverage,
    quorum: usize,
    nodes: Vec<NodeTrack>,
    /// Per candidacy `(replica index, ballot)`: per slot the first report heard, and whether
    /// this candidacy was already counted.
    phase1: BTreeMap<(usize, Ballot), (Reports, bool)>,
    /// Per `(slot, ballot)`: the replicas (bit per index) that accepted something there.
    accepted_by: BTreeMap<(Slot, Ballot), u64>,
    /// Per command `(client, seq)`: the first slot it was chosen in.
    chosen_in: BTreeMap<(u64, u64), Slot>,
    /// Slots already seen chosen.
    chosen_slots: BTreeSet<Slot>,
}

impl Tracker {
    pub(crate) fn new(replicas: usize) -> Tracker {
        Tracker {
            cov: Coverage::default(),
            quorum: replicas / 2 + 1,
            nodes: (0..replicas).map(|_| NodeTrack::default()).collect(),
            phase1: BTreeMap::new(),
            accepted_by: BTreeMap::new(),
            chosen_in: BTreeMap::new(),
            chosen_slots: BTreeSet::new(),
        }
    }

    /// A peer message is about to be stepped into replica `i`.
    pub(crate) fn before_step(&mut self, i: usize, r: &Replica, m: &Message) {
        let promised = r.promised();
        let below = match &m.body {
            Body::Prepare { ballot, .. } | Body::Accept { ballot, .. } => Some(*ballot < promised),
            _ => None,
        };
        if below == Some(true) {
            self.cov.below_promise_arrivals += 1;
            if self.nodes[i].recovered_promise == Some(promised) {
                self.cov.recovered_promise_decided += 1;
                // Counted once per recovery.
                self.nodes[i].recovered_promise = None;
            }
        }
        if let Body::Promise {
            ballot, entries, ..
        } = &m.body
        {
            if r.role() == Role::Candidate && promised == *ballot {
                let key = (i, *ballot);
                if let Some((reports, counted)) = self.phase1.get_mut(&key) {
                    for e in entries {
                        match reports.get(&e.slot) {
                            Some((b, v)) if *b != e.ballot && *v != e.value => {
                                if !*counted {
                                    *counted = true;
                                    self.cov.phase1_conflicting_values += 1;
                                }
                            }
                            Some(_) => {}
                            None => {
                                reports.insert(e.slot, (e.ballot, e.value.clone()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Replica `i` (core `r`) sent a Prepare at `ballot` for slots from `from`: its own log
    /// is its first report.
    pub(crate) fn prepare_sent(&mut self, i: usize, r: &Replica, ballot: Ballot, from: Slot) {
        let key = (i, ballot);
        if self.phase1.contains_key(&key) {
            return;
        }
        let mut own = BTreeMap::new();
        for &slot in self.nodes[i].accepted.range(from..).map(|(s, _)| s) {
            if let Some((b, v)) = r.accepted(slot) {
                own.insert(slot, (b, v.clone()));
            }
        }
        // Only the newest candidacies matter; keep the map small.
        if self.phase1.len() > 64 {
            self.phase1.clear();
        }
        self.phase1.insert(key, (own, false));
    }

    /// Replica `i` emitted these persist records.
    pub(crate) fn persisted(&mut self, i: usize, records: &[StoreRecord]) {
        for rec in records {
            let StoreRecord::Accept(e) = rec else {
                continue;
            };
            *self.accepted_by.entry((e.slot, e.ballot)).or_default() |= 1 << i;
            let prev = self.nodes[i]
                .accepted
                .insert(e.slot, (e.ballot, e.value.clone()));
            if let Some((b1, v1)) = prev {
                let voters = self
                    .accepted_by
                    .get(&(e.slot, b1))
                    .map_or(0, |m| m.count_ones() as usize);
                if b1 < e.ballot && v1 != e.value && voters < self.quorum {
                    self.cov.minority_value_replaced += 1;
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(i) {
            if records.iter().any(|r| matches!(r, StoreRecord::Promise(_))) {
                n.recovered_promise = None;
            }
        }
    }

    /// Replica `i` took an input: notice leadership gained or lost. `all` is every core.
    pub(crate) fn observe(&mut self, i: usize, all: &[&Replica]) {
        let r = all[i];
        if r.promised() != self.nodes[i].recovered_promise.unwrap_or(r.promised()) {
            self.nodes[i].recovered_promise = None;
        }
        match r.leader_ballot() {
            Some(b) => {
                self.nodes[i].leading = Some((b, r.chosen()));
                for n in &mut self.nodes {
                    for (rb, spanned) in n.reads.values_mut() {
                        *spanned |= *rb < b;
                    }
                }
            }
            None => self.leader_gone(i, all),
        }
    }

    fn leader_gone(&mut self, i: usize, all: &[&Replica]) {
        if let Some((_, chosen)) = self.nodes[i].leading.take() {
            let others = all
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, r)| r.chosen())
                .max()
                .unwrap_or(Slot(0));
            if chosen > others {
                self.cov.leader_lost_unshared_chosen += 1;
            }
        }
    }

    /// Replica `i` is about to crash (or restart its core): its leadership and reads end; `all`
    /// is every core before the crash.
    pub(crate) fn crashing(&mut self, i: usize, all: &[&Replica]) {
        self.leader_gone(i, all);
        let reads = std::mem::take(&mut self.nodes[i].reads);
        for (_, spanned) in reads.values() {
            self.cov.read_spanning_leader_change += u64::from(*spanned);
        }
    }

    /// Replica `i` rebooted and recovered `promised` from its disk.
    pub(crate) fn recovered(&mut self, i: usize, promised: Ballot) {
        self.nodes[i].recovered_promise = (promised > Ballot::ZERO).then_some(promised);
    }

    /// A read-index round `ctx` started on replica `i`, leading at `ballot`; `all` is every core.
    pub(crate) fn read_started(&mut self, i: usize, ctx: u64, ballot: Ballot, all: &[&Replica]) {
        let spanned = all
            .iter()
            .filter_map(|r| r.leader_ballot())
            .any(|b| b > ballot);
        self.nodes[i].reads.insert(ctx, (ballot, spanned));
    }

    /// The read-index round `ctx` on replica `i` ended (served or aborted).
    pub(crate) fn read_done(&mut self, i: usize, ctx: u64) {
        if let Some((_, spanned)) = self.nodes[i].reads.remove(&ctx) {
            self.cov.read_spanning_leader_change += u64::from(spanned);
        }
    }

    /// `slot` was applied somewhere with `value` for the first time.
    pub(crate) fn chosen(&mut self, slot: Slot, value: &Value) {
        if !self.chosen_slots.insert(slot) {
            return;
        }
        for c in value.commands() {
            match self.chosen_in.get(&(c.client, c.seq)) {
                Some(&first) if first != slot => self.cov.retry_of_applied_command += 1,
                Some(_) => {}
                None => {
                    self.chosen_in.insert((c.client, c.seq), slot);
                }
            }
        }
    }

    /// Replica `i` installs a snapshot below `up_to`; `in_flight` lists the peer messages on
    /// their way to it.
    pub(crate) fn snapshot_installed<'a>(
        &mut self,
        up_to: Slot,
        in_flight: impl Iterator<Item = &'a Message>,
    ) {
        let later = in_flight.into_iter().any(|m| match &m.body {
            Body::Accept { first, values, .. } => first.0 + values.len() as u64 > up_to.0,
            _ => false,
        });
        self.cov.snapshot_with_accepts_in_flight += u64::from(later);
    }
}

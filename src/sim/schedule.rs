//! Targeted fault schedules: beside the random faults, short scripted scenarios that wait for a
//! precise moment of the protocol and strike then, to drive the cluster into the situations
//! the Paxos rules exist for ([`super::coverage::Coverage`]). Random faults rarely line up
//! this way: a leader must be cut off right after it sent a window of Accepts, and the next
//! leader right after it re-proposed those slots, before Phase 1 ever hears two values for
//! one slot.
//!
//! The scheduler decides; the cluster carries out the moves it returns. It draws only
//! from the simulation's seeded random source, so a run still replays from its seed.
//!
//! Scenarios (one at a time; while one runs, the random partitions and heals pause):
//!
//! * **strand a window**: when the leader next sends Accepts, cut it off together with at
//!   most a minority (its window reaches only them); when a new leader with a higher ballot
//!   sends Accepts for those slots, cut *it* off a few steps later and bring the old leader's
//!   side back: the next Phase 1 hears the old value at the old ballot and the new one at
//!   the new ballot (if the new leader learns a slot chosen first, it is cut off at once,
//!   before its commit point travels). The stale side campaigns first: for a while the
//!   others' pre-votes are lost, so the next leader is one that holds the old value, and a
//!   Phase 1 merge that keeps the wrong one has the chance to;
//! * **majority window**: cut the leader's links to a minority of its peers, so its window
//!   reaches exactly a majority; once it knows a slot chosen that no peer knows chosen, cut
//!   it off from every replica (its clients still reach it and get their answers), and lose
//!   the pre-votes of the peers its window reached for a while: the next candidate is one
//!   that does not hold the chosen value, and its Phase 1 must find it in a Promise;
//! * **crash on learning**: when the leader knows a slot chosen that no other replica knows
//!   chosen yet, crash it before its commit point travels;
//! * **isolate a reading leader**: when a read-index round starts, cut the leader off, so a
//!   new leader is elected while the read is pending.
//!
//! (Crashing an acceptor right after it sent a Promise, and bringing it back while the older
//! leader's messages are still in flight, is a random fault already:
//! `FaultRates::crash_after_promise`.)

use super::rng::Rng;
use crate::types::{Ballot, Slot};

/// How often the targeted scenarios start.
#[derive(Clone, Debug)]
pub struct TargetedRates {
    /// Per step of the safety phase with no scenario running: a scenario is armed (each of
    /// the kinds equally likely).
    pub arm: f64,
    /// Most steps an armed scenario waits for its moment before it is dropped.
    pub wait_steps_max: u64,
}

impl Default for TargetedRates {
    fn default() -> TargetedRates {
        TargetedRates {
            arm: 0.02,
            wait_steps_max: 80,
        }
    }
}

/// What the cluster must do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Move {
    /// Cut these replicas (indexes) off from the rest (they still reach each other).
    CutOff(Vec<usize>),
    /// Heal every partition, then cut this replica off alone.
    HealAndIsolate(usize),
    /// Cut the links between the first replica and each of the others listed.
    Block(usize, Vec<usize>),
    /// Crash-restart this replica, down for this many steps.
    Crash(usize, u64),
    /// Until the step given, the pre-votes and Prepares these replicas send are lost (the
    /// others campaign first).
    Mute(Vec<usize>, u64),
}

/// How long the replicas that must not lead the next election stay muted: long enough for
/// another replica's election timeout (at most 20 ticks), pre-vote and Phase 1.
const MUTE_STEPS: u64 = 40;

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// Waiting for the leader's next Accepts.
    StrandArmed {
        until: u64,
    },
    /// The old leader (index) was cut off after proposing from `from` at `ballot`; waiting
    /// for a higher-ballot leader to propose those slots.
    Stranded {
        old: usize,
        side: Vec<usize>,
        ballot: Ballot,
        from: Slot,
        until: u64,
    },
    /// Cut the new leader off at step `at`, or at once when it knows a slot chosen first;
    /// the stranded side campaigns first.
    CutNewLeader {
        new: usize,
        side: Vec<usize>,
        at: u64,
    },
    MajorityArmed {
        until: u64,
    },
    /// The leader's window reaches only a majority; waiting for it to learn a slot chosen.
    MajorityWindow {
        leader: usize,
        cut: Vec<usize>,
        until: u64,
    },
    CrashOnLearnArmed {
        until: u64,
    },
    IsolateOnReadArmed {
        until: u64,
    },
    /// A scenario struck; keep the random partitions paused until `until`.
    Settle {
        until: u64,
    },
}

/// The targeted-scenario scheduler of one run.
pub(crate) struct Scheduler {
    rates: TargetedRates,
    replicas: usize,
    state: State,
    /// Scenarios that struck (for the run's statistics).
    pub(crate) struck: u64,
}

impl Scheduler {
    pub(crate) fn new(rates: TargetedRates, replicas: usize) -> Scheduler {
        Scheduler {
            rates,
            replicas,
            state: State::Idle,
            struck: 0,
        }
    }

    /// True while a scenario runs: the random partitions and heals pause.
    pub(crate) fn active(&self) -> bool {
        self.state != State::Idle
    }

    /// Stops every scenario (the liveness phase begins).
    pub(crate) fn stop(&mut self) {
        self.state = State::Idle;
    }

    /// Once per step of the safety phase.
    pub(crate) fn step(&mut self, now: u64, rng: &mut Rng) -> Vec<Move> {
        let expired = match &self.state {
            State::StrandArmed { until }
            | State::Stranded { until, .. }
            | State::CrashOnLearnArmed { until }
            | State::IsolateOnReadArmed { until }
            | State::MajorityArmed { until }
            | State::MajorityWindow { until, .. }
            | State::Settle { until } => now >= *until,
            State::CutNewLeader { .. } | State::Idle => false,
        };
        if expired {
            self.state = State::Idle;
        }
        match &self.state {
            State::Idle => {
                if self.replicas >= 3 && rng.chance(self.rates.arm) {
                    let until = now + self.rates.wait_steps_max;
                    self.state = match rng.below(4) {
                        0 => State::StrandArmed { until },
                        1 => State::CrashOnLearnArmed { until },
                        2 => State::MajorityArmed { until },
                        _ => State::IsolateOnReadArmed { until },
                    };
                }
                Vec::new()
            }
            State::CutNewLeader { new, side, at } if now >= *at => {
                let (new, side) = (*new, side.clone());
                self.cut_new_leader(now, new, &side)
            }
            _ => Vec::new(),
        }
    }

    /// Cuts the new leader off; the replicas off the stranded side are muted.
    fn cut_new_leader(&mut self, now: u64, new: usize, side: &[usize]) -> Vec<Move> {
        self.struck += 1;
        self.state = State::Settle { until: now + 40 };
        let others: Vec<usize> = (0..self.replicas)
            .filter(|j| *j != new && !side.contains(j))
            .collect();
        vec![
            Move::HealAndIsolate(new),
            Move::Mute(others, now + MUTE_STEPS),
        ]
    }

    /// Replica `i` sends an Accept at `ballot` for slots `first..end`; `leader` tells whether
    /// `i` leads (rather than catching a peer up).
    pub(crate) fn accept_sent(
        &mut self,
        now: u64,
        rng: &mut Rng,
        i: usize,
        ballot: Ballot,
        (first, end): (Slot, Slot),
    ) -> Vec<Move> {
        match &self.state {
            State::StrandArmed { .. } => {
                // The leader and fewer than a majority minus one peers: its window reaches
                // only a minority (for 3 replicas, the leader alone).
                let minority = (self.replicas - 1) / 2;
                let mut side = vec![i];
                let mut others: Vec<usize> = (0..self.replicas).filter(|&j| j != i).collect();
                for _ in 0..minority.saturating_sub(1) {
                    let k = rng.below(others.len() as u64) as usize;
                    side.push(others.swap_remove(k));
                }
                self.state = State::Stranded {
                    old: i,
                    side: side.clone(),
                    ballot,
                    from: first,
                    until: now + 120,
                };
                vec![Move::CutOff(side)]
            }
            State::Stranded {
                old,
                side,
                ballot: b1,
                from,
                ..
            } if i != *old && ballot > *b1 && end > *from => {
                // Let the new leader's Accepts land (delays are 1 to 4 steps).
                let at = now + 4 + rng.below(8);
                let side = side.clone();
                self.state = State::CutNewLeader { new: i, side, at };
                Vec::new()
            }
            State::MajorityArmed { .. } => {
                let minority = (self.replicas - 1) / 2;
                let mut others: Vec<usize> = (0..self.replicas).filter(|&j| j != i).collect();
                let mut cut = Vec::new();
                for _ in 0..minority {
                    let k = rng.below(others.len() as u64) as usize;
                    cut.push(others.swap_remove(k));
                }
                self.state = State::MajorityWindow {
                    leader: i,
                    cut: cut.clone(),
                    until: now + 60,
                };
                vec![Move::Block(i, cut)]
            }
            _ => Vec::new(),
        }
    }

    /// Leader `i` knows slots chosen that no other replica knows chosen yet.
    pub(crate) fn leader_ahead(&mut self, now: u64, rng: &mut Rng, i: usize) -> Vec<Move> {
        match &self.state {
            State::CrashOnLearnArmed { .. } => {
                self.struck += 1;
                self.state = State::Settle { until: now + 20 };
                vec![Move::Crash(i, rng.below(4))]
            }
            State::CutNewLeader { new, side, .. } if *new == i => {
                let side = side.clone();
                self.cut_new_leader(now, i, &side)
            }
            State::MajorityWindow { leader, cut, .. } if *leader == i => {
                // The peers the window reached hold the chosen value: they wait.
                let reached: Vec<usize> = (0..self.replicas)
                    .filter(|j| *j != i && !cut.contains(j))
                    .collect();
                self.struck += 1;
                self.state = State::Settle { until: now + 40 };
                vec![
                    Move::HealAndIsolate(i),
                    Move::Mute(reached, now + MUTE_STEPS),
                ]
            }
            _ => Vec::new(),
        }
    }

    /// A read-index round started on leader `i`.
    pub(crate) fn read_started(&mut self, now: u64, i: usize) -> Vec<Move> {
        if !matches!(self.state, State::IsolateOnReadArmed { .. }) {
            return Vec::new();
        }
        self.struck += 1;
        self.state = State::Settle { until: now + 40 };
        vec![Move::CutOff(vec![i])]
    }
}

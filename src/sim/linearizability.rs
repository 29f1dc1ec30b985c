//! A linearizability checker in the style of Wing & Gong with Lowe's memoisation: search for
//! an order of the operations that respects real time (an operation that returned before
//! another was invoked comes first) and that a sequential model accepts, output by output.
//! Operations that never returned may take effect at any point after their invocation, or not
//! at all. Histories are checked per key (linearizability is compositional), which keeps each
//! search small.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash;
    /// An operation's input.
    type Input;
    /// An operation's output.
    type Output: PartialEq + std::fmt::Debug;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// Applies `input` to `state`: the next state and the output.
    fn step(&self, state: &Self::State, input: &Self::Input) -> (Self::State, Self::Output);
}

/// One operation of a client history.
#[derive(Clone, Debug)]
pub struct Operation<I, O> {
    /// When it was invoked.
    pub invoke: u64,
    /// When it returned, with its output; `None` if it never returned.
    pub done: Option<(u64, O)>,
    /// Its input.
    pub input: I,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A valid linearization exists.
    Linearizable,
    /// None exists.
    Violation,
    /// The search exceeded its budget.
    Unknown,
}

/// Checks one history (one key) against `model`, exploring at most `budget` states.
pub fn check<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: usize,
) -> Verdict {
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    let completed: Vec<usize> = (0..n).filter(|&i| ops[i].done.is_some()).collect();
    let mut seen: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(Vec<u64>, M::State)> = vec![(vec![0u64; words], model.init())];
    let mut explored = 0usize;
    while let Some((set, state)) = stack.pop() {
        explored += 1;
        if explored > budget {
            return Verdict::Unknown;
        }
        let has = |i: usize| set[i / 64] >> (i % 64) & 1 == 1;
        if completed.iter().all(|&i| has(i)) {
            return Verdict::Linearizable;
        }
        // Earliest return among the remaining completed operations: nothing invoked after it
        // may be linearized before it.
        let min_ret = completed
            .iter()
            .filter(|&&i| !has(i))
            .filter_map(|&i| ops[i].done.as_ref().map(|d| d.0))
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in ops.iter().enumerate() {
            if has(i) || op.invoke > min_ret {
                continue;
            }
            let (next, out) = model.step(&state, &op.input);
            if let Some((_, expected)) = &op.done {
                if *expected != out {
                    continue;
                }
            }
            let mut s2 = set.clone();
            s2[i / 64] |= 1 << (i % 64);
            if seen.insert((s2.clone(), next.clone())) {
                stack.push((s2, next));
            }
        }
    }
    Verdict::Violation
}

/// A register per key with put, get and compare-and-set: the key-value machine the simulator
/// checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvRegister;

/// An operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Set the value.
    Put(u64),
    /// Read the value.
    Get,
    /// Set to `new` if the value is `expected`.
    Cas {
        /// The value required.
        expected: Option<u64>,
        /// The value to set.
        new: u64,
    },
}

/// A result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// A put completed.
    Ok,
    /// A get's value.
    Value(Option<u64>),
    /// Whether a compare-and-set applied.
    Swapped(bool),
}

impl Model for KvRegister {
    type State = Option<u64>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(&self, state: &Option<u64>, input: &KvInput) -> (Option<u64>, KvOutput) {
        match input {
            KvInput::Put(v) => (Some(*v), KvOutput::Ok),
            KvInput::Get => (*state, KvOutput::Value(*state)),
            KvInput::Cas { expected, new } => {
                if state == expected {
                    (Some(*new), KvOutput::Swapped(true))
                } else {
                    (*state, KvOutput::Swapped(false))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        invoke: u64,
        ret: Option<u64>,
        input: KvInput,
        out: KvOutput,
    ) -> Operation<KvInput, KvOutput> {
        Operation {
            invoke,
            done: ret.map(|r| (r, out)),
            input,
        }
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let h = vec![
            op(0, Some(10), KvInput::Put(1), KvOutput::Ok),
            op(1, Some(5), KvInput::Get, KvOutput::Value(Some(1))),
            op(2, Some(6), KvInput::Get, KvOutput::Value(None)),
        ];
        assert_eq!(check(&KvRegister, &h, 100_000), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_a_violation() {
        // Herlihy & Wing: a read invoked after a write returned must see it (or a later one).
        let h = vec![
            op(0, Some(1), KvInput::Put(1), KvOutput::Ok),
            op(2, Some(3), KvInput::Get, KvOutput::Value(None)),
        ];
        assert_eq!(check(&KvRegister, &h, 100_000), Verdict::Violation);
    }

    #[test]
    fn pending_operations_may_or_may_not_take_effect() {
        let pending_put = op(0, None, KvInput::Put(7), KvOutput::Ok);
        let saw = op(5, Some(6), KvInput::Get, KvOutput::Value(Some(7)));
        let missed = op(5, Some(6), KvInput::Get, KvOutput::Value(None));
        assert_eq!(
            check(&KvRegister, &[pending_put.clone(), saw], 1000),
            Verdict::Linearizable
        );
        assert_eq!(
            check(&KvRegister, &[pending_put, missed], 1000),
            Verdict::Linearizable
        );
    }

    #[test]
    fn two_successful_cas_from_the_same_value_is_a_violation() {
        let h = vec![
            op(0, Some(1), KvInput::Put(0), KvOutput::Ok),
            op(
                2,
                Some(9),
                KvInput::Cas {
                    expected: Some(0),
                    new: 1,
                },
                KvOutput::Swapped(true),
            ),
            op(
                3,
                Some(9),
                KvInput::Cas {
                    expected: Some(0),
                    new: 2,
                },
                KvOutput::Swapped(true),
            ),
        ];
        assert_eq!(check(&KvRegister, &h, 100_000), Verdict::Violation);
    }
}

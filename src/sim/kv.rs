//! The key-value state machine the simulator replicates: one register per key with put, get
//! and compare-and-set, plus the client session table that makes retried commands apply once.
//!
//! Command payload layout (little-endian):
//!
//! ```text
//! u8 tag | u64 key | body
//!   1 Put  u64 value
//!   2 Get  (nothing; reads normally go through a read-index round, not the log)
//!   3 Cas  u8 has_expected (0 or 1) | u64 expected | u64 new
//! ```
//!
//! Result layout: `0` (put done) · `1 | u8 present | u64 value` (a get) · `2 | u8 swapped`.

use std::collections::BTreeMap;

use super::linearizability::{KvInput, KvOutput};
use crate::paxos::{Command, Faults, Sessions};

/// An operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvOp {
    /// The key.
    pub key: u64,
    /// What to do with it.
    pub input: KvInput,
}

impl KvOp {
    /// Encodes the operation as a command payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(26);
        match &self.input {
            KvInput::Put(v) => {
                b.push(1);
                b.extend_from_slice(&self.key.to_le_bytes());
                b.extend_from_slice(&v.to_le_bytes());
            }
            KvInput::Get => {
                b.push(2);
                b.extend_from_slice(&self.key.to_le_bytes());
            }
            KvInput::Cas { expected, new } => {
                b.push(3);
                b.extend_from_slice(&self.key.to_le_bytes());
                b.push(u8::from(expected.is_some()));
                b.extend_from_slice(&expected.unwrap_or(0).to_le_bytes());
                b.extend_from_slice(&new.to_le_bytes());
            }
        }
        b
    }

    /// Decodes a payload; `None` if it is not a valid operation (never panics).
    pub fn decode(b: &[u8]) -> Option<KvOp> {
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let key = u64_at(1)?;
        let input = match (*b.first()?, b.len()) {
            (1, 17) => KvInput::Put(u64_at(9)?),
            (2, 9) => KvInput::Get,
            (3, 26) => {
                let expected = match b[9] {
                    0 => None,
                    1 => Some(u64_at(10)?),
                    _ => return None,
                };
                KvInput::Cas {
                    expected,
                    new: u64_at(18)?,
                }
            }
            _ => return None,
        };
        Some(KvOp { key, input })
    }
}

/// Encodes a result.
pub fn encode_output(out: &KvOutput) -> Vec<u8> {
    match out {
        KvOutput::Ok => vec![0],
        KvOutput::Value(v) => {
            let mut b = vec![1, u8::from(v.is_some())];
            b.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
            b
        }
        KvOutput::Swapped(s) => vec![2, u8::from(*s)],
    }
}

/// Decodes a result; `None` if malformed.
pub fn decode_output(b: &[u8]) -> Option<KvOutput> {
    match (*b.first()?, b.len()) {
        (0, 1) => Some(KvOutput::Ok),
        (1, 10) => {
            let v = u64::from_le_bytes(b[2..10].try_into().ok()?);
            match b[1] {
                0 => Some(KvOutput::Value(None)),
                1 => Some(KvOutput::Value(Some(v))),
                _ => None,
            }
        }
        (2, 2) if b[1] <= 1 => Some(KvOutput::Swapped(b[1] == 1)),
        _ => None,
    }
}

/// The replicated key-value machine. Deterministic: its state depends only on the commands
/// applied, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvMachine {
    values: BTreeMap<u64, u64>,
    sessions: Sessions,
}

impl KvMachine {
    /// An empty machine.
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    /// Test-only planted bugs of the session table ([`Faults::sessions_reexecute_retry`]).
    pub fn set_faults(&mut self, faults: Faults) {
        self.sessions.set_faults(faults);
    }

    /// Applies one chosen command at most once per `(client, seq)`: returns its result (the
    /// remembered one for a retry), or `None` for a stale or malformed command, which changes
    /// nothing.
    pub fn apply(&mut self, command: &Command) -> Option<KvOutput> {
        let op = KvOp::decode(&command.payload)?;
        let values = &mut self.values;
        let result = self.sessions.apply(command, |_| {
            let out = match op.input {
                KvInput::Put(v) => {
                    values.insert(op.key, v);
                    KvOutput::Ok
                }
                KvInput::Get => KvOutput::Value(values.get(&op.key).copied()),
                KvInput::Cas { expected, new } => {
                    let swapped = values.get(&op.key).copied() == expected;
                    if swapped {
                        values.insert(op.key, new);
                    }
                    KvOutput::Swapped(swapped)
                }
            };
            encode_output(&out)
        })?;
        decode_output(&result)
    }

    /// The machine's bytes, for a snapshot: `u32 count | (u64 key | u64 value)*`, then the
    /// session table ([`Sessions::encode`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for (k, v) in &self.values {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        self.sessions.encode(out);
    }

    /// Decodes a machine from the front of `b`, with the bytes it used; `None` if malformed.
    pub fn decode(b: &[u8]) -> Option<(KvMachine, usize)> {
        let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let mut at = 4usize;
        let mut values = BTreeMap::new();
        for _ in 0..n {
            let kv = b.get(at..at.checked_add(16)?)?;
            let k = u64::from_le_bytes(kv[..8].try_into().ok()?);
            let v = u64::from_le_bytes(kv[8..].try_into().ok()?);
            values.insert(k, v);
            at += 16;
        }
        let (sessions, used) = Sessions::decode(b.get(at..)?)?;
        Some((KvMachine { values, sessions }, at + used))
    }

    /// Every key's value.
    pub fn values(&self) -> &BTreeMap<u64, u64> {
        &self.values
    }

    /// The current value of `key` (what a read served after a read-index round returns).
    pub fn get(&self, key: u64) -> Option<u64> {
        self.values.get(&key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(seq: u64, key: u64, input: KvInput) -> Command {
        Command {
            client: 1,
            seq,
            payload: KvOp { key, input }.encode(),
        }
    }

    #[test]
    fn operations_round_trip_and_garbage_is_refused() {
        for input in [
            KvInput::Put(7),
            KvInput::Get,
            KvInput::Cas {
                expected: None,
                new: 3,
            },
            KvInput::Cas {
                expected: Some(3),
                new: 4,
            },
        ] {
            let op = KvOp { key: 9, input };
            let b = op.encode();
            assert_eq!(KvOp::decode(&b), Some(op));
            for cut in 0..b.len() {
                assert_eq!(KvOp::decode(&b[..cut]), None);
            }
        }
        for out in [
            KvOutput::Ok,
            KvOutput::Value(None),
            KvOutput::Value(Some(5)),
            KvOutput::Swapped(true),
        ] {
            assert_eq!(decode_output(&encode_output(&out)), Some(out));
        }
        assert_eq!(decode_output(&[2, 7]), None);
    }

    #[test]
    fn a_retried_cas_applies_once_and_returns_the_first_result() {
        let mut m = KvMachine::new();
        let put = cmd(1, 1, KvInput::Put(0));
        let cas = cmd(
            2,
            1,
            KvInput::Cas {
                expected: Some(0),
                new: 1,
            },
        );
        assert_eq!(m.apply(&put), Some(KvOutput::Ok));
        assert_eq!(m.apply(&cas), Some(KvOutput::Swapped(true)));
        // The retry, chosen in a second slot: same answer, no second effect.
        assert_eq!(m.apply(&cas), Some(KvOutput::Swapped(true)));
        assert_eq!(m.get(1), Some(1));
        // An older command of the same client is stale.
        assert_eq!(m.apply(&put), None);
        assert_eq!(m.get(1), Some(1));
        // A snapshot restores the values and the sessions: the retry still applies once.
        let mut b = Vec::new();
        m.encode(&mut b);
        let (mut back, used) = KvMachine::decode(&b).unwrap();
        assert_eq!((used, &back), (b.len(), &m));
        assert_eq!(back.apply(&cas), Some(KvOutput::Swapped(true)));
        assert_eq!(back, m);
    }
}

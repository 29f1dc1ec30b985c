//! The byte-keyed key-value machine the node serves (and the simulator replicates): put, get,
//! delete and compare-and-set, with the client session table that makes a retried command
//! apply once.
//!
//! Command payload layout (little-endian; `bytes` = `u32 len | len bytes`):
//!
//! ```text
//! u8 tag | bytes key | body
//!   1 Put     bytes value
//!   2 Get     (nothing: a get through the log; reads normally use a read-index round)
//!   3 Delete  (nothing)
//!   4 Cas     u8 has_expected (0 absent, 1 present) | [bytes expected] | bytes new
//! ```
//!
//! Output layout: `0` put done · `1 | u8 present | [bytes value]` a get · `2 | u8 existed` a
//! delete · `3 | u8 swapped` a compare-and-set.
//!
//! Snapshot layout: `u32 count | (bytes key | bytes value)*` in key order, then the session
//! table ([`Sessions::encode`]).

use std::collections::BTreeMap;

use super::bytes::{put_bytes, Reader};
use super::machine::{RestoreError, StateMachine};
use crate::paxos::{Command, Sessions};

/// Most bytes in a key or a value.
pub const KV_BYTES_MAX: usize = 1 << 20;

/// An operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Reads `key`.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Sets `key` to `new` if its value is `expected` (`None`: if it is absent).
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value the key must hold (`None`: the key must be absent).
        expected: Option<Vec<u8>>,
        /// The value to set.
        new: Vec<u8>,
    },
}

/// The result of a [`KvOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOutput {
    /// A put was applied.
    Ok,
    /// A get's answer.
    Value(Option<Vec<u8>>),
    /// A delete's answer: whether the key existed.
    Deleted(bool),
    /// A compare-and-set's answer: whether it swapped.
    Swapped(bool),
}

impl KvOp {
    /// The key the operation is about.
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. } => key,
        }
    }

    /// True for an operation that changes nothing (a get).
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Get { .. })
    }

    /// Encodes the operation as a command payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.key().len());
        match self {
            KvOp::Put { key, value } => {
                b.push(1);
                put_bytes(&mut b, key);
                put_bytes(&mut b, value);
            }
            KvOp::Get { key } => {
                b.push(2);
                put_bytes(&mut b, key);
            }
            KvOp::Delete { key } => {
                b.push(3);
                put_bytes(&mut b, key);
            }
            KvOp::Cas { key, expected, new } => {
                b.push(4);
                put_bytes(&mut b, key);
                match expected {
                    None => b.push(0),
                    Some(e) => {
                        b.push(1);
                        put_bytes(&mut b, e);
                    }
                }
                put_bytes(&mut b, new);
            }
        }
        b
    }

    /// Decodes a payload; `None` if it is not exactly one valid operation (never panics).
    pub fn decode(b: &[u8]) -> Option<KvOp> {
        let mut r = Reader::new(b);
        let tag = r.u8()?;
        let key = r.bytes_max(KV_BYTES_MAX)?;
        let op = match tag {
            1 => KvOp::Put {
                key,
                value: r.bytes_max(KV_BYTES_MAX)?,
            },
            2 => KvOp::Get { key },
            3 => KvOp::Delete { key },
            4 => {
                let expected = match r.u8()? {
                    0 => None,
                    1 => Some(r.bytes_max(KV_BYTES_MAX)?),
                    _ => return None,
                };
                KvOp::Cas {
                    key,
                    expected,
                    new: r.bytes_max(KV_BYTES_MAX)?,
                }
            }
            _ => return None,
        };
        r.end(op)
    }
}

impl KvOutput {
    /// Encodes the output.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            KvOutput::Ok => vec![0],
            KvOutput::Value(v) => {
                let mut b = vec![1, u8::from(v.is_some())];
                if let Some(v) = v {
                    put_bytes(&mut b, v);
                }
                b
            }
            KvOutput::Deleted(d) => vec![2, u8::from(*d)],
            KvOutput::Swapped(s) => vec![3, u8::from(*s)],
        }
    }

    /// Decodes an output; `None` if malformed (never panics).
    pub fn decode(b: &[u8]) -> Option<KvOutput> {
        let mut r = Reader::new(b);
        let out = match r.u8()? {
            0 => KvOutput::Ok,
            1 => match r.u8()? {
                0 => KvOutput::Value(None),
                1 => KvOutput::Value(Some(r.bytes_max(KV_BYTES_MAX)?)),
                _ => return None,
            },
            2 => KvOutput::Deleted(flag(r.u8()?)?),
            3 => KvOutput::Swapped(flag(r.u8()?)?),
            _ => return None,
        };
        r.end(out)
    }
}

fn flag(b: u8) -> Option<bool> {
    match b {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The replicated key-value machine. Deterministic: its state depends only on the commands
/// applied, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvMachine {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    sessions: Sessions,
}

impl KvMachine {
    /// An empty machine.
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    /// Executes `op` (no session check).
    fn execute(values: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: KvOp) -> KvOutput {
        match op {
            KvOp::Put { key, value } => {
                values.insert(key, value);
                KvOutput::Ok
            }
            KvOp::Get { key } => KvOutput::Value(values.get(&key).cloned()),
            KvOp::Delete { key } => KvOutput::Deleted(values.remove(&key).is_some()),
            KvOp::Cas { key, expected, new } => {
                let swapped = values.get(&key) == expected.as_ref();
                if swapped {
                    values.insert(key, new);
                }
                KvOutput::Swapped(swapped)
            }
        }
    }

    /// Applies one chosen command at most once per `(client, seq)`: its output (the
    /// remembered one for a retry), or `None` for a stale or malformed command, which changes
    /// nothing.
    pub fn apply_op(&mut self, command: &Command) -> Option<KvOutput> {
        let op = KvOp::decode(&command.payload)?;
        let values = &mut self.values;
        let out = self
            .sessions
            .apply(command, |_| Self::execute(values, op).encode())?;
        KvOutput::decode(&out)
    }

    /// Test-only planted bugs of the session table
    /// ([`Faults::sessions_reexecute_retry`](crate::paxos::Faults::sessions_reexecute_retry)).
    #[doc(hidden)]
    pub fn set_faults(&mut self, faults: crate::paxos::Faults) {
        self.sessions.set_faults(faults);
    }

    /// The current value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.values.get(key).map(Vec::as_slice)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if no key is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.values
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The machine's snapshot bytes (see the module docs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for (k, v) in &self.values {
            put_bytes(out, k);
            put_bytes(out, v);
        }
        self.sessions.encode(out);
    }

    /// Decodes a machine from the front of `b`, with the bytes it used; `None` if malformed.
    pub fn decode(b: &[u8]) -> Option<(KvMachine, usize)> {
        let mut r = Reader::new(b);
        let n = r.u32()?;
        let mut values = BTreeMap::new();
        for _ in 0..n {
            let k = r.bytes_max(KV_BYTES_MAX)?;
            let v = r.bytes_max(KV_BYTES_MAX)?;
            values.insert(k, v);
        }
        let (sessions, used) = Sessions::decode(b.get(r.at..)?)?;
        Some((KvMachine { values, sessions }, r.at + used))
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, command: &Command) -> Option<Vec<u8>> {
        self.apply_op(command).map(|o| o.encode())
    }

    fn query(&self, query: &[u8]) -> Option<Vec<u8>> {
        match KvOp::decode(query)? {
            KvOp::Get { key } => Some(KvOutput::Value(self.values.get(&key).cloned()).encode()),
            _ => None,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        match KvMachine::decode(data) {
            Some((m, used)) if used == data.len() => {
                *self = m;
                Ok(())
            }
            _ => Err(RestoreError("not a key-value snapshot".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(seq: u64, op: &KvOp) -> Command {
        Command {
            client: 1,
            seq,
            payload: op.encode(),
        }
    }

    fn put(k: &str, v: &str) -> KvOp {
        KvOp::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn operations_apply_once_per_client_seq() {
        let mut m = KvMachine::new();
        assert_eq!(m.apply_op(&cmd(1, &put("a", "1"))), Some(KvOutput::Ok));
        let cas = KvOp::Cas {
            key: "a".into(),
            expected: Some("1".into()),
            new: "2".into(),
        };
        assert_eq!(m.apply_op(&cmd(2, &cas)), Some(KvOutput::Swapped(true)));
        // The retry answers the remembered result and does not run again (it would fail now).
        assert_eq!(m.apply_op(&cmd(2, &cas)), Some(KvOutput::Swapped(true)));
        assert_eq!(m.get(b"a"), Some(&b"2"[..]));
        // A stale command changes nothing.
        assert_eq!(m.apply_op(&cmd(1, &put("a", "9"))), None);
        assert_eq!(m.get(b"a"), Some(&b"2"[..]));
        let absent = KvOp::Cas {
            key: "b".into(),
            expected: None,
            new: "x".into(),
        };
        assert_eq!(m.apply_op(&cmd(3, &absent)), Some(KvOutput::Swapped(true)));
        let del = KvOp::Delete { key: "a".into() };
        assert_eq!(m.apply_op(&cmd(4, &del)), Some(KvOutput::Deleted(true)));
        assert_eq!(m.apply_op(&cmd(5, &del)), Some(KvOutput::Deleted(false)));
        let get = KvOp::Get { key: "b".into() };
        assert_eq!(
            KvOutput::decode(&m.query(&get.encode()).expect("a get")),
            Some(KvOutput::Value(Some(b"x".to_vec())))
        );
        assert_eq!(m.query(&del.encode()), None, "only gets are queries");
    }

    #[test]
    fn snapshot_restores_values_and_sessions() {
        let mut m = KvMachine::new();
        m.apply_op(&cmd(1, &put("k", "v")));
        let snap = m.snapshot();
        let mut r = KvMachine::new();
        r.restore(&snap).expect("restores");
        assert_eq!(r, m);
        // The session table came along: the retry is still a duplicate.
        assert_eq!(r.apply_op(&cmd(1, &put("k", "other"))), Some(KvOutput::Ok));
        assert_eq!(r.get(b"k"), Some(&b"v"[..]));
        assert!(r.restore(&snap[..snap.len() - 1]).is_err());
        assert!(r.restore(b"junk").is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic_and_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                               k in proptest::collection::vec(any::<u8>(), 0..8),
                                               v in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = KvOp::decode(&bytes);
            let _ = KvOutput::decode(&bytes);
            let _ = KvMachine::decode(&bytes);
            for op in [KvOp::Put { key: k.clone(), value: v.clone() }, KvOp::Get { key: k.clone() },
                       KvOp::Delete { key: k.clone() },
                       KvOp::Cas { key: k.clone(), expected: Some(v.clone()), new: k.clone() },
                       KvOp::Cas { key: k.clone(), expected: None, new: v.clone() }] {
                prop_assert_eq!(KvOp::decode(&op.encode()), Some(op));
            }
            for out in [KvOutput::Ok, KvOutput::Value(None), KvOutput::Value(Some(v.clone())),
                        KvOutput::Deleted(true), KvOutput::Swapped(false)] {
                prop_assert_eq!(KvOutput::decode(&out.encode()), Some(out));
            }
        }
    }
}

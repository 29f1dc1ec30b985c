//! Byte encoding of [`Message`]s (for the transport) and [`StoreRecord`]s (for the acceptor
//! store). Little-endian, fixed-width integers, every length checked: decoding arbitrary bytes
//! returns an error, never panics and never allocates more than the input could hold.
//!
//! ```text
//! ballot   = round u64 | node u32                                    (12 bytes)
//! slot     = u64
//! command  = client u64 | seq u64 | len u32 | payload[len]
//! value    = count u32 | command[count]                              (count 0: no-op)
//! entry    = slot | ballot | value
//! message  = from u32 | to u32 | tag u8 | body
//!   1 PreVote      ballot | chosen slot
//!   2 PreVoteReply ballot | granted u8 (0 or 1) | promised ballot
//!   3 Prepare      ballot | from slot
//!   4 Promise      ballot | from slot | chosen slot | log_start slot | count u32 | entry[count]
//!   5 Accept       ballot | first slot | commit slot | count u32 | value[count]
//!   6 Accepted     ballot | first slot | end slot
//!   7 Reject       ballot | promised ballot
//!   8 Heartbeat    ballot | commit slot | read_round u64
//!   9 HeartbeatAck ballot | read_round u64 | commit slot | chosen slot
//! record   = tag u8 | body
//!   1 Promise      ballot
//!   2 Accept       entry
//!   3 Chosen       up_to slot
//!   4 TruncateAfter slot
//!   5 Snapshot     up_to slot
//! ```
//! A message or record must fill its buffer exactly: trailing bytes are an error.

use crate::types::{Ballot, NodeId, Slot};

use super::message::{Body, Command, Entry, Message, StoreRecord, Value};

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended early.
    #[error("truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Bytes missing.
        needed: usize,
        /// Where.
        offset: usize,
    },
    /// An unknown tag.
    #[error("unknown {what} tag {tag} at offset {offset}")]
    BadTag {
        /// What was being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
        /// Where.
        offset: usize,
    },
    /// A count larger than the remaining input could hold.
    #[error("{what} count {count} exceeds the remaining {remaining} bytes")]
    BadCount {
        /// What was counted.
        what: &'static str,
        /// The count found.
        count: u32,
        /// Bytes left.
        remaining: usize,
    },
    /// Bytes left over after a complete message or record.
    #[error("{extra} trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

// ----- encoding ----------------------------------------------------------------------------

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_ballot(out: &mut Vec<u8>, b: Ballot) {
    put_u64(out, b.round);
    put_u32(out, b.node.0);
}
fn put_len(out: &mut Vec<u8>, n: usize) {
    // Lengths above u32::MAX cannot be produced by the core (batch and window caps).
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}
fn put_value(out: &mut Vec<u8>, v: &Value) {
    put_len(out, v.commands().len());
    for c in v.commands() {
        put_u64(out, c.client);
        put_u64(out, c.seq);
        put_len(out, c.payload.len());
        out.extend_from_slice(&c.payload);
    }
}
fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    put_u64(out, e.slot.0);
    put_ballot(out, e.ballot);
    put_value(out, &e.value);
}

/// Appends the encoding of `msg` to `out`.
pub fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    put_u32(out, msg.from.0);
    put_u32(out, msg.to.0);
    match &msg.body {
        Body::PreVote { ballot, chosen } => {
            out.push(1);
            put_ballot(out, *ballot);
            put_u64(out, chosen.0);
        }
        Body::PreVoteReply {
            ballot,
            granted,
            promised,
        } => {
            out.push(2);
            put_ballot(out, *ballot);
            out.push(u8::from(*granted));
            put_ballot(out, *promised);
        }
        Body::Prepare { ballot, from } => {
            out.push(3);
            put_ballot(out, *ballot);
            put_u64(out, from.0);
        }
        Body::Promise {
            ballot,
            from,
            chosen,
            log_start,
            entries,
        } => {
            out.push(4);
            put_ballot(out, *ballot);
            put_u64(out, from.0);
            put_u64(out, chosen.0);
            put_u64(out, log_start.0);
            put_len(out, entries.len());
            for e in entries {
                put_entry(out, e);
            }
        }
        Body::Accept {
            ballot,
            first,
            values,
            commit,
        } => {
            out.push(5);
            put_ballot(out, *ballot);
            put_u64(out, first.0);
            put_u64(out, commit.0);
            put_len(out, values.len());
            for v in values {
                put_value(out, v);
            }
        }
        Body::Accepted { ballot, first, end } => {
            out.push(6);
            put_ballot(out, *ballot);
            put_u64(out, first.0);
            put_u64(out, end.0);
        }
        Body::Reject { ballot, promised } => {
            out.push(7);
            put_ballot(out, *ballot);
            put_ballot(out, *promised);
        }
        Body::Heartbeat {
            ballot,
            commit,
            read_round,
        } => {
            out.push(8);
            put_ballot(out, *ballot);
            put_u64(out, commit.0);
            put_u64(out, *read_round);
        }
        Body::HeartbeatAck {
            ballot,
            read_round,
            commit,
            chosen,
        } => {
            out.push(9);
            put_ballot(out, *ballot);
            put_u64(out, *read_round);
            put_u64(out, commit.0);
            put_u64(out, chosen.0);
        }
    }
}

/// Appends the encoding of `rec` to `out`.
pub fn encode_record(rec: &StoreRecord, out: &mut Vec<u8>) {
    match rec {
        StoreRecord::Promise(b) => {
            out.push(1);
            put_ballot(out, *b);
        }
        StoreRecord::Accept(e) => {
            out.push(2);
            put_entry(out, e);
        }
        StoreRecord::Chosen { up_to } => {
            out.push(3);
            put_u64(out, up_to.0);
        }
        StoreRecord::TruncateAfter(s) => {
            out.push(4);
            put_u64(out, s.0);
        }
        StoreRecord::Snapshot { up_to } => {
            out.push(5);
            put_u64(out, up_to.0);
        }
    }
}

// ----- decoding ----------------------------------------------------------------------------

const COMMAND_MIN_BYTES: usize = 20;
const VALUE_MIN_BYTES: usize = 4;
const ENTRY_MIN_BYTES: usize = 8 + 12 + VALUE_MIN_BYTES;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                needed: n - self.remaining(),
                offset: self.pos,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn slot(&mut self) -> Result<Slot, DecodeError> {
        Ok(Slot(self.u64()?))
    }

    fn ballot(&mut self) -> Result<Ballot, DecodeError> {
        Ok(Ballot {
            round: self.u64()?,
            node: NodeId(self.u32()?),
        })
    }

    /// A count of items of at least `min_bytes` each, checked against the remaining input.
    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<usize, DecodeError> {
        let count = self.u32()?;
        let remaining = self.remaining();
        if (count as usize).saturating_mul(min_bytes) > remaining {
            return Err(DecodeError::BadCount {
                what,
                count,
                remaining,
            });
        }
        Ok(count as usize)
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let n = self.count("command", COMMAND_MIN_BYTES)?;
        let mut commands = Vec::with_capacity(n);
        for _ in 0..n {
            let client = self.u64()?;
            let seq = self.u64()?;
            let len = self.count("payload byte", 1)?;
            let payload = self.take(len)?.to_vec();
            commands.push(Command {
                client,
                seq,
                payload,
            });
        }
        Ok(Value::new(commands))
    }

    fn entry(&mut self) -> Result<Entry, DecodeError> {
        Ok(Entry {
            slot: self.slot()?,
            ballot: self.ballot()?,
            value: self.value()?,
        })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

/// Decodes one message filling `buf` exactly.
pub fn decode_message(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let from = NodeId(r.u32()?);
    let to = NodeId(r.u32()?);
    let at = r.pos;
    let body = match r.u8()? {
        1 => Body::PreVote {
            ballot: r.ballot()?,
            chosen: r.slot()?,
        },
        2 => {
            let ballot = r.ballot()?;
            let at = r.pos;
            let granted = match r.u8()? {
                0 => false,
                1 => true,
                tag => {
                    return Err(DecodeError::BadTag {
                        what: "bool",
                        tag,
                        offset: at,
                    })
                }
            };
            Body::PreVoteReply {
                ballot,
                granted,
                promised: r.ballot()?,
            }
        }
        3 => Body::Prepare {
            ballot: r.ballot()?,
            from: r.slot()?,
        },
        4 => {
            let (ballot, from, chosen, log_start) = (r.ballot()?, r.slot()?, r.slot()?, r.slot()?);
            let n = r.count("entry", ENTRY_MIN_BYTES)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(r.entry()?);
            }
            Body::Promise {
                ballot,
                from,
                chosen,
                log_start,
                entries,
            }
        }
        5 => {
            let (ballot, first, commit) = (r.ballot()?, r.slot()?, r.slot()?);
            let n = r.count("value", VALUE_MIN_BYTES)?;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                values.push(r.value()?);
            }
            Body::Accept {
                ballot,
                first,
                values,
                commit,
            }
        }
        6 => Body::Accepted {
            ballot: r.ballot()?,
            first: r.slot()?,
            end: r.slot()?,
        },
        7 => Body::Reject {
            ballot: r.ballot()?,
            promised: r.ballot()?,
        },
        8 => Body::Heartbeat {
            ballot: r.ballot()?,
            commit: r.slot()?,
            read_round: r.u64()?,
        },
        9 => Body::HeartbeatAck {
            ballot: r.ballot()?,
            read_round: r.u64()?,
            commit: r.slot()?,
            chosen: r.slot()?,
        },
        tag => {
            return Err(DecodeError::BadTag {
                what: "message",
                tag,
                offset: at,
            })
        }
    };
    r.finish()?;
    Ok(Message { from, to, body })
}

/// Decodes one store record filling `buf` exactly.
pub fn decode_record(buf: &[u8]) -> Result<StoreRecord, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let rec = match r.u8()? {
        1 => StoreRecord::Promise(r.ballot()?),
        2 => StoreRecord::Accept(r.entry()?),
        3 => StoreRecord::Chosen { up_to: r.slot()? },
        4 => StoreRecord::TruncateAfter(r.slot()?),
        5 => StoreRecord::Snapshot { up_to: r.slot()? },
        tag => {
            return Err(DecodeError::BadTag {
                what: "record",
                tag,
                offset: 0,
            })
        }
    };
    r.finish()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ballot() -> impl Strategy<Value = Ballot> {
        (any::<u64>(), any::<u32>()).prop_map(|(r, n)| Ballot::new(r, NodeId(n)))
    }
    fn slot() -> impl Strategy<Value = Slot> {
        any::<u64>().prop_map(Slot)
    }
    fn value() -> impl Strategy<Value = Value> {
        prop::collection::vec(
            (
                any::<u64>(),
                any::<u64>(),
                prop::collection::vec(any::<u8>(), 0..40),
            )
                .prop_map(|(client, seq, payload)| Command {
                    client,
                    seq,
                    payload,
                }),
            0..4,
        )
        .prop_map(Value::new)
    }
    fn entry() -> impl Strategy<Value = Entry> {
        (slot(), ballot(), value()).prop_map(|(slot, ballot, value)| Entry {
            slot,
            ballot,
            value,
        })
    }
    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (ballot(), slot()).prop_map(|(ballot, chosen)| Body::PreVote { ballot, chosen }),
            (ballot(), any::<bool>(), ballot()).prop_map(|(ballot, granted, promised)| {
                Body::PreVoteReply {
                    ballot,
                    granted,
                    promised,
                }
            }),
            (ballot(), slot()).prop_map(|(ballot, from)| Body::Prepare { ballot, from }),
            (
                ballot(),
                slot(),
                slot(),
                slot(),
                prop::collection::vec(entry(), 0..4)
            )
                .prop_map(|(ballot, from, chosen, log_start, entries)| Body::Promise {
                    ballot,
                    from,
                    chosen,
                    log_start,
                    entries
                }),
            (
                ballot(),
                slot(),
                prop::collection::vec(value(), 0..4),
                slot()
            )
                .prop_map(|(ballot, first, values, commit)| Body::Accept {
                    ballot,
                    first,
                    values,
                    commit
                }),
            (ballot(), slot(), slot()).prop_map(|(ballot, first, end)| Body::Accepted {
                ballot,
                first,
                end
            }),
            (ballot(), ballot()).prop_map(|(ballot, promised)| Body::Reject { ballot, promised }),
            (ballot(), slot(), any::<u64>()).prop_map(|(ballot, commit, read_round)| {
                Body::Heartbeat {
                    ballot,
                    commit,
                    read_round,
                }
            }),
            (ballot(), any::<u64>(), slot(), slot()).prop_map(
                |(ballot, read_round, commit, chosen)| {
                    Body::HeartbeatAck {
                        ballot,
                        read_round,
                        commit,
                        chosen,
                    }
                }
            ),
        ]
    }
    fn record() -> impl Strategy<Value = StoreRecord> {
        prop_oneof![
            ballot().prop_map(StoreRecord::Promise),
            entry().prop_map(StoreRecord::Accept),
            slot().prop_map(|up_to| StoreRecord::Chosen { up_to }),
            slot().prop_map(StoreRecord::TruncateAfter),
            slot().prop_map(|up_to| StoreRecord::Snapshot { up_to }),
        ]
    }

    proptest! {
        #[test]
        fn message_round_trips_and_every_cut_fails(from in any::<u32>(), to in any::<u32>(), body in body()) {
            let msg = Message { from: NodeId(from), to: NodeId(to), body };
            let mut buf = Vec::new();
            encode_message(&msg, &mut buf);
            prop_assert_eq!(decode_message(&buf), Ok(msg));
            // Any strict prefix is incomplete; an extra byte is trailing garbage.
            for cut in 0..buf.len() {
                prop_assert!(decode_message(&buf[..cut]).is_err());
            }
            buf.push(0);
            prop_assert!(decode_message(&buf).is_err());
        }

        #[test]
        fn record_round_trips(rec in record()) {
            let mut buf = Vec::new();
            encode_record(&rec, &mut buf);
            prop_assert_eq!(decode_record(&buf), Ok(rec));
            prop_assert!(decode_record(&buf[..buf.len() - 1]).is_err());
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_message(&bytes);
            let _ = decode_record(&bytes);
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        // An Accept claiming 4 billion values in a 40-byte message.
        let mut buf = Vec::new();
        encode_message(
            &Message {
                from: NodeId(1),
                to: NodeId(2),
                body: Body::Accept {
                    ballot: Ballot::ZERO,
                    first: Slot(0),
                    values: vec![],
                    commit: Slot(0),
                },
            },
            &mut buf,
        );
        let n = buf.len();
        buf[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_message(&buf),
            Err(DecodeError::BadCount { what: "value", .. })
        ));
        assert!(matches!(
            decode_record(&[9]),
            Err(DecodeError::BadTag {
                what: "record",
                tag: 9,
                ..
            })
        ));
    }
}

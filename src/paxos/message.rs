//! Commands, slot values and messages.

use crate::types::{Ballot, Slot};

/// A client command. `(client, seq)` identifies it across retries (exactly-once application is
/// the state machine's job: it skips a `seq` it has already applied for that client).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Command {
    /// The client's id.
    pub client: u64,
    /// The client's sequence number for this command.
    pub seq: u64,
    /// The command itself.
    pub payload: Vec<u8>,
}

/// The value of one slot: a batch of commands, or a no-op filling a hole.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// Fills a slot a new leader found empty.
    Noop,
    /// Commands, applied in order.
    Batch(Vec<Command>),
}

impl Entry {
    /// Payload bytes (for batching caps).
    pub fn bytes(&self) -> usize {
        match self {
            Entry::Noop => 0,
            Entry::Batch(cs) => cs.iter().map(|c| c.payload.len() + 16).sum(),
        }
    }

    /// Encodes the entry (the acceptor store keeps it as the accepted value).
    ///
    /// ```text
    /// u8 kind (0 noop, 1 batch); batch: u32 count, then per command u64 client, u64 seq,
    /// u32 length, bytes
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Entry::Noop => vec![0],
            Entry::Batch(cs) => {
                let mut b = Vec::with_capacity(5 + self.bytes() + cs.len() * 4);
                b.push(1);
                b.extend_from_slice(&(cs.len() as u32).to_le_bytes());
                for c in cs {
                    b.extend_from_slice(&c.client.to_le_bytes());
                    b.extend_from_slice(&c.seq.to_le_bytes());
                    b.extend_from_slice(&(c.payload.len() as u32).to_le_bytes());
                    b.extend_from_slice(&c.payload);
                }
                b
            }
        }
    }

    /// Decodes an entry; `None` on malformed input (never panics).
    pub fn decode(b: &[u8]) -> Option<Entry> {
        let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
            let s = b.get(*at..at.checked_add(n)?)?;
            *at += n;
            Some(s)
        };
        let mut at = 0usize;
        match take(&mut at, 1)?[0] {
            0 if b.len() == 1 => Some(Entry::Noop),
            1 => {
                let n = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
                let mut cs = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let client = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
                    let seq = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
                    let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
                    let payload = take(&mut at, len)?.to_vec();
                    cs.push(Command {
                        client,
                        seq,
                        payload,
                    });
                }
                (at == b.len()).then_some(Entry::Batch(cs))
            }
            _ => None,
        }
    }
}

/// Messages between replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Phase 1a: promise not to accept below `ballot`; report accepted values from `from` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// First slot the candidate does not know chosen.
        from: Slot,
    },
    /// Phase 1b, sent only once the promise is durable.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// Accepted `(slot, ballot, value)` from the prepare's `from` on.
        accepted: Vec<(Slot, Ballot, Entry)>,
    },
    /// Phase 2a.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The value.
        entry: Entry,
        /// The leader's commit point.
        commit: Slot,
    },
    /// Phase 2b, sent only once the accept is durable.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
    },
    /// The receiver has promised a higher ballot than the message carried.
    Reject {
        /// The higher ballot promised.
        promised: Ballot,
    },
    /// Pre-vote: would the receiver join an election at `ballot`? Nothing is persisted; a
    /// replica only campaigns (raising its promise) once a majority says yes, so one that was
    /// cut off cannot disrupt a healthy leader when it returns.
    PreVote {
        /// The ballot the sender would campaign with.
        ballot: Ballot,
    },
    /// A yes to a pre-vote.
    PreVoteGranted {
        /// The ballot of the pre-vote.
        ballot: Ballot,
    },
    /// Heartbeat with the commit point.
    Commit {
        /// The leader's ballot.
        ballot: Ballot,
        /// Every slot up to here is chosen.
        commit: Slot,
    },
    /// A follower asks for chosen values from `from` on.
    Fetch {
        /// First slot wanted.
        from: Slot,
    },
    /// Chosen values, in slot order.
    Chosen {
        /// `(slot, value)` pairs.
        entries: Vec<(Slot, Entry)>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_bytes_are_rejected() {
        let e = Entry::Batch(vec![
            Command {
                client: 7,
                seq: 1,
                payload: b"put k v".to_vec(),
            },
            Command {
                client: 8,
                seq: 2,
                payload: vec![],
            },
        ]);
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
        assert_eq!(Entry::decode(&Entry::Noop.encode()), Some(Entry::Noop));
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Entry::decode(&bytes[..cut]), None, "prefix of {cut} bytes");
        }
        assert_eq!(Entry::decode(&[9]), None);
        assert_eq!(Entry::decode(&[1, 255, 255, 255, 255]), None);
    }
}

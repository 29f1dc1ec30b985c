//! What travels inside the transport's frames: the client protocol (requests and responses
//! on a client connection) and the peer protocol (Paxos messages, snapshot transfer and the
//! address a replica serves clients on).
//!
//! Every decoder is total: any bytes give a value or `None`, never a panic, and no length
//! read from the wire allocates more than the bytes actually present.
//!
//! Layouts (little-endian; `bytes` = `u32 len | len bytes`, `str` = UTF-8 `bytes`):
//!
//! ```text
//! request  = u8 kind | u64 id | body
//!   1 Write   u64 client | u64 seq | bytes payload     a command for the log
//!   2 Read    bytes query                              a linearizable read
//!   3 Status  (nothing)                                the node's status text
//!   4 LocalRead bytes query                            served from this replica's state as it
//!                                                      is (no read-index round: may be stale)
//! response = u8 kind | u64 id | body
//!   0 Done       bytes output
//!   1 NotLeader  u8 known | [str leader client address]
//!   2 Busy       (nothing)                             queues full: back off and retry
//!   3 Failed     str reason                            malformed request, stale command, fail-stop
//!   4 Status     str text
//! peer     = u8 kind | body
//!   1 Paxos          a Paxos message (paxos::codec)
//!   2 Address        str client address of the sender
//!   3 SnapshotOffer  u64 up_to | u64 len | u32 crc     "I hold a snapshot you need"
//!   4 SnapshotFetch  u64 up_to | u64 offset            "send me bytes from offset"
//!   5 SnapshotChunk  u64 up_to | u64 len | u32 crc | u64 offset | bytes data
//! ```

use super::bytes::{put_bytes, Reader};
use crate::paxos::codec::{decode_message, encode_message};
use crate::paxos::Message;
use crate::types::Slot;

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Propose a command; answered once it is applied.
    Write {
        /// The client's session.
        client: u64,
        /// The client's sequence number (a retry reuses it).
        seq: u64,
        /// The command for the state machine.
        payload: Vec<u8>,
    },
    /// A linearizable read.
    Read {
        /// The query for the state machine.
        query: Vec<u8>,
    },
    /// The node's status text.
    Status,
    /// A read served from this replica's state machine as it is, without a read-index round:
    /// possibly stale (for checking what one replica holds, never for linearizable reads).
    LocalRead {
        /// The query for the state machine.
        query: Vec<u8>,
    },
}

/// A response to a client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Applied (a write) or served (a read): the state machine's output.
    Done(Vec<u8>),
    /// This replica does not lead; the leader's client address if known.
    NotLeader(Option<String>),
    /// Overloaded: retry after a pause.
    Busy,
    /// Refused, with the reason.
    Failed(String),
    /// The status text.
    Status(String),
}

/// A message between replicas, inside a transport frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMsg {
    /// A message for the Paxos core.
    Paxos(Message),
    /// The sender serves clients at this address.
    Address(String),
    /// The sender holds a snapshot through `up_to` of `len` bytes with checksum `crc`.
    SnapshotOffer {
        /// Slots below this are covered.
        up_to: Slot,
        /// Its length in bytes.
        len: u64,
        /// crc32 of all its bytes.
        crc: u32,
    },
    /// Asks for the snapshot through `up_to`, from byte `offset` on.
    SnapshotFetch {
        /// Which snapshot.
        up_to: Slot,
        /// The first byte wanted.
        offset: u64,
    },
    /// Bytes `offset..offset + data.len()` of the snapshot through `up_to`.
    SnapshotChunk {
        /// Which snapshot.
        up_to: Slot,
        /// Its whole length.
        len: u64,
        /// crc32 of the whole snapshot.
        crc: u32,
        /// Where `data` starts.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
}

impl Request {
    /// Encodes the request with its id.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        match self {
            Request::Write {
                client,
                seq,
                payload,
            } => {
                b.push(1);
                b.extend_from_slice(&id.to_le_bytes());
                b.extend_from_slice(&client.to_le_bytes());
                b.extend_from_slice(&seq.to_le_bytes());
                put_bytes(&mut b, payload);
            }
            Request::Read { query } => {
                b.push(2);
                b.extend_from_slice(&id.to_le_bytes());
                put_bytes(&mut b, query);
            }
            Request::Status => {
                b.push(3);
                b.extend_from_slice(&id.to_le_bytes());
            }
            Request::LocalRead { query } => {
                b.push(4);
                b.extend_from_slice(&id.to_le_bytes());
                put_bytes(&mut b, query);
            }
        }
        b
    }

    /// Decodes `(id, request)`; `None` if malformed.
    pub fn decode(b: &[u8]) -> Option<(u64, Request)> {
        let mut r = Reader::new(b);
        let kind = r.u8()?;
        let id = r.u64()?;
        let req = match kind {
            1 => Request::Write {
                client: r.u64()?,
                seq: r.u64()?,
                payload: r.bytes()?,
            },
            2 => Request::Read { query: r.bytes()? },
            3 => Request::Status,
            4 => Request::LocalRead { query: r.bytes()? },
            _ => return None,
        };
        r.end((id, req))
    }
}

impl Response {
    /// Encodes the response to request `id`.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        let kind = match self {
            Response::Done(_) => 0,
            Response::NotLeader(_) => 1,
            Response::Busy => 2,
            Response::Failed(_) => 3,
            Response::Status(_) => 4,
        };
        b.push(kind);
        b.extend_from_slice(&id.to_le_bytes());
        match self {
            Response::Done(out) => put_bytes(&mut b, out),
            Response::NotLeader(None) => b.push(0),
            Response::NotLeader(Some(a)) => {
                b.push(1);
                put_bytes(&mut b, a.as_bytes());
            }
            Response::Busy => {}
            Response::Failed(s) | Response::Status(s) => put_bytes(&mut b, s.as_bytes()),
        }
        b
    }

    /// Decodes `(id, response)`; `None` if malformed.
    pub fn decode(b: &[u8]) -> Option<(u64, Response)> {
        let mut r = Reader::new(b);
        let kind = r.u8()?;
        let id = r.u64()?;
        let resp = match kind {
            0 => Response::Done(r.bytes()?),
            1 => match r.u8()? {
                0 => Response::NotLeader(None),
                1 => Response::NotLeader(Some(r.str()?)),
                _ => return None,
            },
            2 => Response::Busy,
            3 => Response::Failed(r.str()?),
            4 => Response::Status(r.str()?),
            _ => return None,
        };
        r.end((id, resp))
    }
}

impl PeerMsg {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        match self {
            PeerMsg::Paxos(m) => {
                b.push(1);
                encode_message(m, &mut b);
            }
            PeerMsg::Address(a) => {
                b.push(2);
                put_bytes(&mut b, a.as_bytes());
            }
            PeerMsg::SnapshotOffer { up_to, len, crc } => {
                b.push(3);
                b.extend_from_slice(&up_to.0.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&crc.to_le_bytes());
            }
            PeerMsg::SnapshotFetch { up_to, offset } => {
                b.push(4);
                b.extend_from_slice(&up_to.0.to_le_bytes());
                b.extend_from_slice(&offset.to_le_bytes());
            }
            PeerMsg::SnapshotChunk {
                up_to,
                len,
                crc,
                offset,
                data,
            } => {
                b.push(5);
                b.extend_from_slice(&up_to.0.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&crc.to_le_bytes());
                b.extend_from_slice(&offset.to_le_bytes());
                put_bytes(&mut b, data);
            }
        }
        b
    }

    /// Decodes a message; `None` if malformed.
    pub fn decode(b: &[u8]) -> Option<PeerMsg> {
        let mut r = Reader::new(b);
        let msg = match r.u8()? {
            1 => return decode_message(r.rest()).ok().map(PeerMsg::Paxos),
            2 => PeerMsg::Address(r.str()?),
            3 => PeerMsg::SnapshotOffer {
                up_to: Slot(r.u64()?),
                len: r.u64()?,
                crc: r.u32()?,
            },
            4 => PeerMsg::SnapshotFetch {
                up_to: Slot(r.u64()?),
                offset: r.u64()?,
            },
            5 => PeerMsg::SnapshotChunk {
                up_to: Slot(r.u64()?),
                len: r.u64()?,
                crc: r.u32()?,
                offset: r.u64()?,
                data: r.bytes()?,
            },
            _ => return None,
        };
        r.end(msg)
    }
}

/// Fuzz body: every decoder over arbitrary bytes, and re-encoding what decodes.
#[doc(hidden)]
pub fn fuzz_proto(data: &[u8]) {
    if let Some((id, req)) = Request::decode(data) {
        assert_eq!(Request::decode(&req.encode(id)), Some((id, req)));
    }
    if let Some((id, resp)) = Response::decode(data) {
        assert_eq!(Response::decode(&resp.encode(id)), Some((id, resp)));
    }
    if let Some(m) = PeerMsg::decode(data) {
        if !matches!(m, PeerMsg::Paxos(_)) {
            assert_eq!(PeerMsg::decode(&m.encode()), Some(m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_kind_round_trips() {
        let reqs = [
            Request::Write {
                client: 7,
                seq: 9,
                payload: b"p".to_vec(),
            },
            Request::Read {
                query: b"q".to_vec(),
            },
            Request::Status,
            Request::LocalRead {
                query: b"l".to_vec(),
            },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode(42)), Some((42, r)));
        }
        let resps = [
            Response::Done(b"o".to_vec()),
            Response::NotLeader(None),
            Response::NotLeader(Some("127.0.0.1:9".into())),
            Response::Busy,
            Response::Failed("why".into()),
            Response::Status("role leader".into()),
        ];
        for r in resps {
            assert_eq!(Response::decode(&r.encode(3)), Some((3, r)));
        }
        let peers = [
            PeerMsg::Address("127.0.0.1:1".into()),
            PeerMsg::SnapshotOffer {
                up_to: Slot(5),
                len: 10,
                crc: 3,
            },
            PeerMsg::SnapshotFetch {
                up_to: Slot(5),
                offset: 4,
            },
            PeerMsg::SnapshotChunk {
                up_to: Slot(5),
                len: 10,
                crc: 3,
                offset: 4,
                data: vec![1, 2],
            },
        ];
        for m in peers {
            assert_eq!(PeerMsg::decode(&m.encode()), Some(m));
        }
        // A trailing byte is refused.
        let mut b = Request::Status.encode(1);
        b.push(0);
        assert_eq!(Request::decode(&b), None);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            fuzz_proto(&bytes);
        }

        #[test]
        fn mutated_valid_messages_never_panic(at in any::<usize>(), flip in 1u8..=255, cut in any::<usize>()) {
            let valid = [
                Request::Write { client: 1, seq: 2, payload: b"payload".to_vec() }.encode(9),
                Response::NotLeader(Some("127.0.0.1:1".into())).encode(9),
                PeerMsg::SnapshotChunk { up_to: Slot(3), len: 9, crc: 1, offset: 2, data: vec![5; 9] }.encode(),
            ];
            for v in valid {
                let mut m = v.clone();
                let i = at % m.len();
                m[i] ^= flip;
                fuzz_proto(&m);
                fuzz_proto(&v[..cut % v.len()]);
            }
        }
    }
}

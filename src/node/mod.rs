//! The runtime that drives one [`Replica`](crate::paxos::Replica) for real: threads, the
//! authenticated TCP transport, the application's state machine, snapshots and their transfer,
//! the client protocol and metrics.
//!
//! * [`net`]: frames on the wire, the authenticated handshake, the peer transport.

pub mod net;

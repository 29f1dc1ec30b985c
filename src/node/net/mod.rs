//! The node's network layer: length-prefixed, checksummed frames, the challenge-response
//! handshake every connection (peer or client) passes before any of its bytes are read as
//! data, and the peer transport (one connection per replica pair, reconnect with backoff).
//!
//! * [`frame`]: `{ u32 LE len | u32 LE crc32(len ‖ payload) | payload }`, readers that never
//!   panic and never allocate for a lying length.
//! * [`auth`]: the cluster [`Secret`], and [`dial_handshake`] / [`accept_handshake`]: a mutual
//!   HMAC-SHA256 challenge-response with fresh nonces on both sides, bound to the claimed
//!   replica id.
//! * [`peer`]: [`PeerNet`], one connection per replica pair (the lower id dials), a reader and
//!   a writer thread per connection, bounded queues, reconnect with jittered backoff.
//!
//! The bytes are in `docs/format.md` ("Wire").

pub mod auth;
pub mod frame;
pub mod peer;

pub use auth::{accept_handshake, dial_handshake, Auth, AuthError, ConnKind, Expect, Secret};
#[doc(hidden)]
pub use frame::fuzz_frames;
pub use frame::{
    decode_frame, encode_frame, read_frame, write_frame, FrameError, FrameReader, FRAME_BYTES_MAX,
};
pub use peer::{NetStats, PeerNet, PeerNetConfig};

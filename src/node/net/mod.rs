//! The node's network layer: length-prefixed, checksummed frames, the challenge-response
//! handshake every connection (peer or client) passes before any of its bytes are read as
//! data, and the peer transport (one connection per replica pair, reconnect with backoff).

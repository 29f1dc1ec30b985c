//! Fuzz target bodies that span layers, as plain functions (the log's own are in
//! [`wal::fuzzing`](crate::wal::fuzzing), the Paxos core's in
//! [`paxos::fuzzing`](crate::paxos::fuzzing)): the cargo-fuzz targets in `fuzz/` call them, and
//! `tests/fuzz_bodies.rs` runs them over seeded random inputs on stable Rust. Each returns
//! `Err(description)` on a contract violation; a panic is a violation too.

use crate::paxos::codec::{decode_message, decode_record, encode_message, encode_record};

/// Every decoder over arbitrary bytes: the log's ([`crate::wal::fuzzing::log_decoders`]), the
/// acceptor store's records and the Paxos messages. None panics; whatever decodes re-encodes to
/// the same bytes.
pub fn decoders(data: &[u8]) -> Result<(), String> {
    crate::wal::fuzzing::log_decoders(data)?;
    if let Ok(r) = decode_record(data) {
        let mut again = Vec::new();
        encode_record(&r, &mut again);
        if again != data {
            return Err("acceptor record does not re-encode to its bytes".into());
        }
    }
    if let Ok(m) = decode_message(data) {
        let mut again = Vec::new();
        encode_message(&m, &mut again);
        if again != data {
            return Err("message does not re-encode to its bytes".into());
        }
    }
    Ok(())
}

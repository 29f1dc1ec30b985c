//! Fuzz target bodies that span layers, as plain functions (the log's own are in
//! [`wal::fuzzing`](crate::wal::fuzzing), the Paxos core's in
//! [`paxos::fuzzing`](crate::paxos::fuzzing)): the cargo-fuzz targets in `fuzz/` call them, and
//! `tests/fuzz_bodies.rs` runs them over seeded random inputs on stable Rust. Each returns
//! `Err(description)` on a contract violation; a panic is a violation too.

/// What a fuzz body does about an input whose only violation is one of the open bugs it has
/// found (each has a regression test in `tests/fuzz_bodies.rs`, ignored until it is fixed):
///
/// 1. Recovery trusts a `META` (checksum valid) whose first LSN is 0, or whose first segment
///    does not exist: the log opens with first LSN 0, or (in the modes that open past damage)
///    as an empty log at LSN 1 with `META` left as it was, so the next open drops what was
///    appended since ([`crate::wal::fuzzing::recovery_edits`]).
/// 2. Skip-corrupted stops at "zeros where acknowledged records should be" inside a segment
///    but leaves the valid frames behind the zeros in place: the next append is written before
///    them, and a reopen brings them back after it, the LSNs between reported skipped
///    ([`crate::wal::fuzzing::recovery_edits`]).
/// 3. A peer message carrying a ballot round at the top of `u64` overflows the next round's
///    `+ 1` in the Paxos core (`Replica::tick`, the election code): a panic with overflow
///    checks, a wrap to round 0 without ([`crate::paxos::fuzzing::replica_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownBugs {
    /// Report them like any other violation.
    Fail,
    /// Let an input through whose only violation is exactly one of them, so a long fuzz run
    /// looks for others (the cargo-fuzz targets do this unless `PAXWAL_FUZZ_KNOWN=fail`).
    Pass,
}

impl KnownBugs {
    /// `Fail` if the environment variable `PAXWAL_FUZZ_KNOWN` is `fail`, else `Pass` (for the
    /// cargo-fuzz targets).
    pub fn from_env() -> KnownBugs {
        static KNOWN: std::sync::OnceLock<KnownBugs> = std::sync::OnceLock::new();
        *KNOWN.get_or_init(|| match std::env::var("PAXWAL_FUZZ_KNOWN").as_deref() {
            Ok("fail") => KnownBugs::Fail,
            _ => KnownBugs::Pass,
        })
    }
}

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

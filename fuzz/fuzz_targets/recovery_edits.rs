//! Recovery in every mode over edits of base logs built once (several segments; compacted;
//! recycled segments with stale frames behind the tail): truncation, torn and zeroed tails
//! across segment boundaries, overwrites, bit flips, deleted and duplicated files, META and
//! segment-header rewrites.
#![no_main]
use paxwal::wal::fuzzing::recovery_edits;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = recovery_edits(data) {
        panic!("{e}");
    }
});

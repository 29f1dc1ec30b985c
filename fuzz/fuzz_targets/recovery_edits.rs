//! Recovery over arbitrary edits (truncate, append, overwrite, zero) of a valid log.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = paxwal::wal::fuzzing::recovery_edits(data) {
        panic!("{e}");
    }
});

//! WAL operations with crash points against an in-memory model.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = paxwal::wal::fuzzing::ops_vs_model(data, Default::default()) {
        panic!("{e}");
    }
});

//! One Paxos replica driven by arbitrary inputs: never panics, and replies only once durable.
#![no_main]
use paxwal::paxos::fuzzing::replica_step;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = replica_step(data, Default::default()) {
        panic!("{e}");
    }
});

//! One Paxos replica driven by arbitrary inputs: never panics, and replies only once durable.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = paxwal::paxos::fuzzing::replica_step(data, paxwal::paxos::Faults::default()) {
        panic!("{e}");
    }
});

//! One Paxos replica driven by arbitrary inputs: never panics, and replies only once durable.
//! Known open bugs pass unless `PAXWAL_FUZZ_KNOWN=fail`.
#![no_main]
use paxwal::fuzzing::KnownBugs;
use paxwal::paxos::fuzzing::replica_step_with;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = replica_step_with(data, Default::default(), KnownBugs::from_env()) {
        panic!("{e}");
    }
});

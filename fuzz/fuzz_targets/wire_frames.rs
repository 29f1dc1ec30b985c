//! Wire frames over arbitrary bytes: `decode_frame` and `read_frame` never panic, agree with
//! each other, and whatever decodes re-encodes to the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = paxwal::node::net::fuzz_frames(data) {
        panic!("{e}");
    }
});

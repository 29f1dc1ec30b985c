//! Frame, segment-header, META and acceptor-record decoding over arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = paxwal::fuzzing::decoders(data) {
        panic!("{e}");
    }
});

//! The node's client and peer messages over arbitrary bytes: every decoder is total (never
//! panics), and whatever decodes re-encodes to a message that decodes the same.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paxwal::node::proto::fuzz_proto(data);
});

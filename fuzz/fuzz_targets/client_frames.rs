//! libFuzzer target: `pinfeed::fuzzing::client_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinfeed::fuzzing::client_frames(data));

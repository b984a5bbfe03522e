//! libFuzzer target: `pinfeed::fuzzing::request_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinfeed::fuzzing::request_head(data));

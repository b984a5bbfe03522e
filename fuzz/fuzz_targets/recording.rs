//! libFuzzer target: `pinfeed::fuzzing::recording`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinfeed::fuzzing::recording(data));

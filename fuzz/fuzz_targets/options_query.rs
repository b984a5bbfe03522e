//! libFuzzer target: `pinfeed::fuzzing::options_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinfeed::fuzzing::options_query(data));

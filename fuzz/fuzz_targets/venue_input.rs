//! libFuzzer target: `pinfeed::fuzzing::venue_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinfeed::fuzzing::venue_input(data));

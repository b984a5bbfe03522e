//! libFuzzer target: `pinfeed::fuzzing::book_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinfeed::fuzzing::book_ops(data));

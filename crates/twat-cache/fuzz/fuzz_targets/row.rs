//! Fuzz target: see `twat_cache::fuzzing::row`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| twat_cache::fuzzing::row(data));

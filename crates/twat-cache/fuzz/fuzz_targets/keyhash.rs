//! Fuzz target: see `twat_cache::fuzzing::keyhash`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| twat_cache::fuzzing::keyhash(data));

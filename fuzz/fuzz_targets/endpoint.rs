//! `cargo +nightly fuzz run endpoint`: see `safeverbs_fuzz::endpoint` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeverbs_fuzz::endpoint::check(data));

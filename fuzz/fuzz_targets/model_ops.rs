//! `cargo +nightly fuzz run model_ops`: see `safeverbs_fuzz::model_ops` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeverbs_fuzz::model_ops::check(data));

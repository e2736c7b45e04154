//! `cargo +nightly fuzz run remote_region`: see `safeverbs_fuzz::remote_region` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeverbs_fuzz::remote_region::check(data));

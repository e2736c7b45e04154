//! `cargo +nightly fuzz run handshake`: see `safeverbs_fuzz::handshake` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeverbs_fuzz::handshake::check(data));

//! The compile-time half of the demo: every program a demo binary shows as
//! "does not compile" must fail to compile with exactly the message checked
//! in next to it. The cases in `tests/ui/` are the Rust versions of the C
//! programs in `demo/c/`; each names the case of the same rule in the
//! catalogue (`ui-tests/tests/ui/`), which `cargo test -p ui-tests` checks.
//!
//! Regenerate the demo's own `.stderr` files after a deliberate change
//! with `TRYBUILD=overwrite cargo test -p safeverbs-demo --test compile_fail`.

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "compile-fail cases run in the debug host test pass"
)]
fn cited_cases_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

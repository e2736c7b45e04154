//! Runs the catalogue: every `tests/ui/<rule>/<case>.rs` must fail to
//! compile with exactly the checked-in `.stderr`, every `tests/pass/*.rs`
//! must compile and run.
//!
//! Regenerate the expected errors after a deliberate change with
//! `TRYBUILD=overwrite cargo test -p ui-tests`, and read the diff: the
//! message a user sees is part of the product.

// The release build of the test binaries runs inside the Soft-RoCE machine
// (`./dev test`), whose view of the host is read-only: compiling the cases
// there is neither possible nor useful, since they need no device.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "compile-fail cases run in the debug host test pass"
)]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*/*.rs");
    cases.pass("tests/pass/*.rs");
}

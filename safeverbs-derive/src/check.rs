//! The rules a struct must meet before it is certified, each reported with
//! the span of what breaks it and how to fix it. The rules rustc checks
//! better (field types are `RdmaPod`, no padding) are left to the
//! generated code.

use crate::{ast::Input, ctxt::Ctxt};

/// Records in `cx` every rule `input` breaks.
pub(crate) fn check(input: &Input<'_>, cx: &Ctxt) {
    check_repr(input, cx);
    check_generics(input, cx);
}

fn check_repr(input: &Input<'_>, cx: &Ctxt) {
    if input.repr.layout.is_some() || input.repr.reported {
        return;
    }
    match &input.repr.attr {
        // `#[repr(packed)]` or `#[repr(align(N))]` alone: Rust's layout
        // with packing or alignment.
        Some(attr) => cx.error_spanned_by(
            attr,
            "`#[derive(RdmaPod)]` needs `C` in this `#[repr]` (e.g. #[repr(C, packed)]): \
             without it Rust's default layout may reorder fields and the peer must agree on it",
        ),
        None => cx.error_spanned_by(
            input.ident(),
            "`#[derive(RdmaPod)]` needs a fixed layout: add #[repr(C)]: Rust's default layout \
             may reorder fields and the peer must agree on it",
        ),
    }
}

fn check_generics(input: &Input<'_>, cx: &Ctxt) {
    let generics = &input.original.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            "`RdmaPod` cannot be derived for a generic struct: its layout, padding and \
             fingerprint would depend on the parameters; write a concrete struct for each \
             instantiation",
        );
    }
}

//! Collects the errors found while reading and checking the input, so that
//! all of them are reported at once.

use std::{cell::RefCell, fmt::Display};

use quote::ToTokens;

/// The errors found so far.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    /// An error spanning the tokens of `at`.
    pub(crate) fn error_spanned_by(&self, at: impl ToTokens, msg: impl Display) {
        self.syn_error(syn::Error::new_spanned(at, msg));
    }

    /// An error syn produced.
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    /// All errors, combined into one, or `Ok` when there were none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_inner().into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for err in errors {
            combined.combine(err);
        }
        Err(combined)
    }
}

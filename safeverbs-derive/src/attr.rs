//! The attributes the derive reads: `#[repr(...)]` and `#[rdma(...)]`.

use syn::{parenthesized, Attribute, Ident, LitInt, LitStr, Path};

use crate::ctxt::Ctxt;

/// The layout a `#[repr]` asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `#[repr(C)]`.
    C,
    /// `#[repr(transparent)]`.
    Transparent,
}

/// What the struct's `#[repr(...)]` attributes say.
#[derive(Default)]
pub(crate) struct Repr {
    /// `C` or `transparent`, if given.
    pub(crate) layout: Option<Layout>,
    /// `packed` or `packed(N)` was given.
    pub(crate) packed: bool,
    /// The first `#[repr]` attribute, if any, for error spans.
    pub(crate) attr: Option<Attribute>,
    /// A `#[repr(...)]` item was already reported as wrong.
    pub(crate) reported: bool,
}

/// Reads the `#[repr(...)]` attributes. `align(N)` and `packed(N)` are
/// accepted: the padding check catches any padding they cause, and the
/// fingerprint includes the resulting size and alignment.
pub(crate) fn repr(attrs: &[Attribute], cx: &Ctxt) -> Repr {
    let mut repr = Repr::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("repr")) {
        repr.attr.get_or_insert_with(|| attr.clone());
        let parsed = attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("C") {
                repr.layout = Some(Layout::C);
            } else if path.is_ident("transparent") {
                repr.layout = Some(Layout::Transparent);
            } else if path.is_ident("packed") {
                repr.packed = true;
                if meta.input.peek(syn::token::Paren) {
                    let content;
                    parenthesized!(content in meta.input);
                    content.parse::<LitInt>()?;
                }
            } else if path.is_ident("align") {
                let content;
                parenthesized!(content in meta.input);
                content.parse::<LitInt>()?;
            } else if path.is_ident("Rust") {
                repr.reported = true;
                cx.error_spanned_by(
                    path,
                    "`#[repr(Rust)]` is Rust's default layout, which may reorder fields, and \
                     the peer must agree on the layout: use #[repr(C)]",
                );
            } else {
                // Integer reprs and the like: rustc rejects them on structs
                // itself; say what to use instead.
                if meta.input.peek(syn::token::Paren) {
                    meta.input.parse::<proc_macro2::Group>()?;
                }
                repr.reported = true;
                cx.error_spanned_by(
                    path,
                    format_args!(
                        "`#[derive(RdmaPod)]` does not support `#[repr({})]`: use #[repr(C)] \
                         or #[repr(transparent)]",
                        quote::ToTokens::to_token_stream(path)
                    ),
                );
            }
            Ok(())
        });
        if let Err(err) = parsed {
            repr.reported = true;
            cx.syn_error(err);
        }
    }
    repr
}

/// What the struct's `#[rdma(...)]` attributes say.
#[derive(Default)]
pub(crate) struct Attrs {
    /// `#[rdma(crate = "path")]`: where `safeverbs` is.
    pub(crate) krate: Option<Path>,
    /// `#[rdma(fields = "Name")]`: the name of the field layout struct.
    pub(crate) fields: Option<Ident>,
}

/// Reads the struct's `#[rdma(...)]` attributes.
pub(crate) fn rdma(attrs: &[Attribute], cx: &Ctxt) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("rdma")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                let path = lit.parse::<Path>()?;
                set_once(&mut out.krate, path, &meta.path, "crate", cx);
            } else if meta.path.is_ident("fields") {
                let lit: LitStr = meta.value()?.parse()?;
                let name = lit.parse::<Ident>()?;
                set_once(&mut out.fields, name, &meta.path, "fields", cx);
            } else {
                return Err(meta.error(
                    "unknown `rdma` attribute: expected `crate = \"path\"` or \
                     `fields = \"Name\"`",
                ));
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }
    out
}

fn set_once<T>(slot: &mut Option<T>, value: T, at: &Path, key: &str, cx: &Ctxt) {
    if slot.is_some() {
        cx.error_spanned_by(at, format_args!("duplicate `rdma({key} = ...)` attribute"));
    } else {
        *slot = Some(value);
    }
}

/// Field attributes: only documentation is read (and copied to the field
/// layout); `#[rdma(...)]` has no meaning on a field.
pub(crate) fn field(attrs: &[Attribute], cx: &Ctxt) -> Vec<Attribute> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("rdma")) {
        cx.error_spanned_by(attr, "`#[rdma(...)]` goes on the struct, not on a field");
    }
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect()
}

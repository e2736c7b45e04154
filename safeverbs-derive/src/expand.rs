//! The generated code: the `RdmaPod` impl with its fingerprint, the padding
//! check, the field layout and its `HasFields` impl; or, when the input
//! breaks a rule, the errors and a minimal impl.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{ext::IdentExt, DeriveInput, Ident, Path, Type};

use crate::{
    ast::{Field, Input, Style},
    check,
    ctxt::Ctxt,
};

/// The whole derive: read, check, then expand.
pub(crate) fn derive(node: &DeriveInput) -> TokenStream {
    let cx = Ctxt::default();
    let input = Input::from_syn(node, &cx);
    if let Some(input) = &input {
        check::check(input, &cx);
    }
    let krate = input
        .as_ref()
        .and_then(|input| input.attrs.krate.clone())
        .unwrap_or_else(default_crate);
    match (cx.check(), input) {
        (Ok(()), Some(input)) => expand(&input, &krate),
        (result, _) => {
            let mut tokens = result
                .err()
                .map(|err| err.to_compile_error())
                .unwrap_or_default();
            tokens.extend(fallback(node, &krate));
            tokens
        }
    }
}

fn default_crate() -> Path {
    syn::parse_quote!(::safeverbs)
}

/// After an error: an impl without the checks, so that uses of the type
/// elsewhere do not add errors to the one that matters.
fn fallback(node: &DeriveInput, krate: &Path) -> TokenStream {
    let private = quote!(#krate::__private);
    let core = quote!(#private::core);
    let ident = &node.ident;
    let (impl_generics, ty_generics, where_clause) = node.generics.split_for_impl();
    // For a generic type, rustc cannot see the supertraits hold; state them.
    let supertraits = (!node.generics.params.is_empty()).then(|| {
        let predicates = where_clause.map(|w| &w.predicates).into_iter().flatten();
        quote! {
            where #(#predicates,)*
                Self: #core::marker::Copy + #core::marker::Send + #core::marker::Sync + 'static
        }
    });
    let where_clause = match supertraits {
        Some(tokens) => tokens,
        None => where_clause.to_token_stream(),
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            unsafe impl #impl_generics #private::RdmaPod for #ident #ty_generics #where_clause {
                const FINGERPRINT: u64 = 0;
            }
        };
    }
}

/// Paths and names shared by the pieces of the expansion.
struct Names<'a> {
    input: &'a Input<'a>,
    /// `path::to::safeverbs::__private`.
    private: TokenStream,
    /// `path::to::safeverbs::__private::core`.
    core: TokenStream,
    /// The struct's name.
    ident: &'a Ident,
    /// The field layout's name.
    fields_ident: Ident,
    /// The field layout's type parameter: `P`, unless a field type names
    /// something `P`.
    param: Ident,
    /// The struct's own where-predicates, if any.
    own: TokenStream,
    /// `for<'__rdma> FieldTy: RdmaPod, …` and the struct's own predicates.
    ///
    /// The field types are checked once, unconditionally, by the
    /// fingerprint (`<FieldTy as RdmaPod>::FINGERPRINT`), which makes the
    /// `RdmaPod` impl sound and gives one error per bad field. The other
    /// items need the bounds to be well-formed; written higher-ranked they
    /// are not "trivial bounds", which rustc would report again for each
    /// item.
    checked: TokenStream,
}

fn expand(input: &Input<'_>, krate: &Path) -> TokenStream {
    let private = quote!(#krate::__private);
    let ident = input.ident();
    let own = match &input.original.generics.where_clause {
        Some(w) => {
            let predicates = w.predicates.iter();
            quote!(#(#predicates,)*)
        }
        None => TokenStream::new(),
    };
    let bounds =
        distinct_types(&input.fields).map(|ty| quote!(for<'__rdma> #ty: #private::RdmaPod));
    let names = Names {
        input,
        core: quote!(#private::core),
        ident,
        fields_ident: input
            .attrs
            .fields
            .clone()
            .unwrap_or_else(|| format_ident!("{}Fields", ident.unraw(), span = ident.span())),
        param: type_param(ident, &input.fields),
        checked: quote!(#(#bounds,)* #own),
        own,
        private,
    };

    let pod = pod_impl(&names);
    let padding = padding_check(&names);
    let (layout, has_fields) = if input.style == Style::Unit {
        (TokenStream::new(), TokenStream::new())
    } else {
        (field_layout(&names), has_fields_impl(&names))
    };
    quote! {
        #layout

        const _: () = {
            #pod
            #padding
            #has_fields
        };
    }
}

/// The field types, each once (as written: `u32` and an alias of it are
/// two), for where-clauses that read well in the documentation.
fn distinct_types<'a>(fields: &'a [Field<'a>]) -> impl Iterator<Item = &'a Type> {
    let mut seen = Vec::new();
    fields.iter().map(|field| field.ty).filter(move |ty| {
        let key = ty.to_token_stream().to_string();
        let new = !seen.contains(&key);
        if new {
            seen.push(key);
        }
        new
    })
}

/// `tokens` with every span set to `span`, so that an error about them
/// points there.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(group) = &tt {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                tt = TokenTree::Group(respanned);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// `P`, or `P2`, `P3`, … if the struct's name or a field type mentions
/// the name.
fn type_param(ident: &Ident, fields: &[Field<'_>]) -> Ident {
    fn mentions(tokens: TokenStream, name: &str) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(ident) => ident == name,
            TokenTree::Group(group) => mentions(group.stream(), name),
            _ => false,
        })
    }
    let mut name = String::from("P");
    let mut n = 1;
    while *ident == name
        || fields
            .iter()
            .any(|f| mentions(f.ty.to_token_stream(), &name))
    {
        n += 1;
        name = format!("P{n}");
    }
    Ident::new(&name, Span::call_site())
}

/// `unsafe impl RdmaPod`, with the fingerprint of the documented scheme:
/// `"struct"`, name, size, alignment, then per field name, offset and the
/// field type's fingerprint.
fn pod_impl(names: &Names<'_>) -> TokenStream {
    let Names {
        input,
        private,
        core,
        ident,
        own,
        ..
    } = names;
    let name = ident.unraw().to_string();
    let fp = quote!(#private::fingerprint);
    let per_field = input.fields.iter().map(|field| {
        let (fname, member, ty) = (&field.name, &field.member, field.ty);
        // The check that the field type is `RdmaPod`: an error here
        // points at the field's type (its tokens keep their spans).
        quote! {
            let h = #fp::str(h, #fname);
            let h = #fp::num(h, #core::mem::offset_of!(#ident, #member) as u64);
            let h = #fp::num(h, <#ty as #private::RdmaPod>::FINGERPRINT);
        }
    });
    quote! {
        // SAFETY: `#[repr(C)]` or `#[repr(transparent)]` (checked by the
        // derive), every field is `RdmaPod` (the where-clause), and there is
        // no padding (the assertion below), so every bit pattern is valid
        // and there are no pointers.
        #[automatically_derived]
        unsafe impl #private::RdmaPod for #ident
        where
            // Holds when every field is `RdmaPod`; written higher-ranked so
            // that a field that is not (say a raw pointer) is reported once,
            // by the fingerprint, and not again as a supertrait.
            for<'__rdma> #ident: #core::marker::Send + #core::marker::Sync,
            #own
        {
            const FINGERPRINT: u64 = {
                let h = #fp::start("struct");
                let h = #fp::str(h, #name);
                let h = #fp::num(h, #core::mem::size_of::<#ident>() as u64);
                let h = #fp::num(h, #core::mem::align_of::<#ident>() as u64);
                #(#per_field)*
                h
            };
        }
    }
}

/// A `const` that fails to evaluate, naming each gap, if the struct has
/// padding.
///
/// Whether there is padding is decided here, with the real core library
/// alone: the size of the struct against the sum of its fields' sizes (in
/// a `#[repr(C)]` or `#[repr(transparent)]` struct fields do not overlap,
/// so they are equal exactly when no byte is padding). Core is named
/// through an `extern crate core` inside the block, not as `::core`, which
/// a user can point at their own crate (`extern crate self as core;`).
/// The user's `#[rdma(crate = ...)]` path is used only to *describe* the
/// padding, by calling `assert_no_padding`, whose message names each gap;
/// should that function return (a `__private` module the user wrote), the
/// `panic!` after it still fails the build. So no path the user chooses
/// can certify a padded struct.
fn padding_check(names: &Names<'_>) -> TokenStream {
    let Names {
        input,
        private,
        ident,
        ..
    } = names;
    let core = quote!(__rdma_core);
    let name = ident.unraw().to_string();
    let sizes = input.fields.iter().map(|field| {
        let ty = field.ty;
        quote!(#core::mem::size_of::<#ty>())
    });
    let fields = input.fields.iter().map(|field| {
        let (fname, member, ty) = (&field.name, &field.member, field.ty);
        quote! {
            (
                #fname,
                #core::mem::offset_of!(#ident, #member),
                #core::mem::size_of::<#ty>(),
            )
        }
    });
    let size = quote!(#core::mem::size_of::<#ident>());
    let backstop = format!(
        "`{name}` has padding (its size is not the sum of its fields' sizes), which would carry \
         undefined bytes to the peer; reorder the fields by decreasing alignment or fill each \
         gap with an explicit `_pad: [u8; N]` field (the `assert_no_padding` of the \
         `#[rdma(crate = ...)]` path did not report it)"
    );
    // The item and the calls are spanned on the struct's name, where a
    // failure is reported; the paths and expressions inside keep the
    // macro's own spans, so that lints such as `unused_qualifications` do
    // not blame the user.
    let real_core = quote!(extern crate core as #core;);
    let no_padding = quote!(#size == 0 #(+ #sizes)*);
    let describe = respan(quote!(#private::assert_no_padding), ident.span());
    let args = quote!(#name, #size, &[#(#fields),*]);
    let panic = respan(quote!(#core::panic!), ident.span());
    quote_spanned! {ident.span()=>
        const _: () = {
            #real_core
            if !(#no_padding) {
                #describe(#args);
                #panic("{}", #backstop);
            }
        };
    }
}

/// The field layout struct, next to the input struct (so it can be named)
/// with the same visibility and shape.
fn field_layout(names: &Names<'_>) -> TokenStream {
    let Names {
        input,
        private,
        ident,
        fields_ident,
        param,
        checked,
        ..
    } = names;
    let vis = &input.original.vis;
    let doc = format!(
        "Where each field of [`{name}`] lives: a field of type `F` is a `{param}::At<F>`, \
         that is a `LocalField<F>` in a local `MemoryRegion` and a `RemoteSegment<F>` in a \
         peer's region. Returned by `fields()`; generated by `#[derive(RdmaPod)]`.",
        name = ident.unraw(),
    );
    let members = input.fields.iter().map(|field| {
        let ty = field.ty;
        let fvis = &field.original.vis;
        let docs = if field.docs.is_empty() {
            let doc = format!("Where field `{}` lives.", field.name);
            quote!(#[doc = #doc])
        } else {
            let docs = &field.docs;
            quote!(#(#docs)*)
        };
        let name = field.original.ident.as_ref().map(|ident| quote!(#ident:));
        quote! {
            #docs
            #fvis #name <#param as #private::Project>::At<#ty>
        }
    });
    let decl = match input.style {
        Style::Named => quote!(where #checked { #(#members,)* }),
        _ => quote!(( #(#members,)* ) where #checked;),
    };
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis struct #fields_ident<#param: #private::Project> #decl
    }
}

/// `impl HasFields` (each member is the base projected to the field's
/// offset) and `Debug` for the field layout.
fn has_fields_impl(names: &Names<'_>) -> TokenStream {
    let Names {
        input,
        private,
        core,
        ident,
        fields_ident,
        param,
        checked,
        ..
    } = names;
    // The token comes from the library's `fields()` methods, the only
    // callers of `project_fields`: it is what lets this code, and nothing
    // the user writes, project a field.
    let project = input.fields.iter().map(|field| {
        let (member, ty) = (&field.member, field.ty);
        quote! {
            #member: #private::Project::project::<#ty>(
                base,
                #core::mem::offset_of!(#ident, #member),
                token,
            )
        }
    });
    let debug_bounds = distinct_types(&input.fields)
        .map(|ty| quote!(<#param as #private::Project>::At<#ty>: #core::fmt::Debug));
    let fields_name = fields_ident.to_string();
    let debug_body = match input.style {
        Style::Named => {
            let entries = input.fields.iter().map(|field| {
                let (name, member) = (&field.name, &field.member);
                quote!(.field(#name, &self.#member))
            });
            quote!(f.debug_struct(#fields_name) #(#entries)* .finish())
        }
        _ => {
            let entries = input.fields.iter().map(|field| {
                let member = &field.member;
                quote!(.field(&self.#member))
            });
            quote!(f.debug_tuple(#fields_name) #(#entries)* .finish())
        }
    };
    quote! {
        #[automatically_derived]
        impl #private::HasFields for #ident
        where
            #checked
            for<'__rdma> #ident: #core::marker::Copy,
        {
            type Fields<#param: #private::Project<Value = Self>> = #fields_ident<#param>;

            #[inline]
            fn project_fields<#param: #private::Project<Value = Self>>(
                base: &#param,
                token: #private::FieldToken,
            ) -> #fields_ident<#param> {
                #fields_ident { #(#project,)* }
            }
        }

        #[automatically_derived]
        impl<#param: #private::Project> #core::fmt::Debug for #fields_ident<#param>
        where
            #checked
            #(#debug_bounds,)*
        {
            fn fmt(&self, f: &mut #core::fmt::Formatter<'_>) -> #core::fmt::Result {
                #debug_body
            }
        }
    }
}

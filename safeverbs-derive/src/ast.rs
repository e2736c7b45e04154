//! The derive's input, read: the struct with its parsed attributes, keeping
//! the original syn nodes for error spans.

use syn::{ext::IdentExt, Attribute, Data, DeriveInput, Fields, Ident, Index, Member, Type};

use crate::{
    attr::{self, Attrs, Repr},
    ctxt::Ctxt,
};

/// A struct to derive `RdmaPod` for.
pub(crate) struct Input<'a> {
    /// The whole input.
    pub(crate) original: &'a DeriveInput,
    /// `#[repr(...)]`.
    pub(crate) repr: Repr,
    /// `#[rdma(...)]`.
    pub(crate) attrs: Attrs,
    /// Named (`{ a: T }`), tuple (`(T)`) or unit.
    pub(crate) style: Style,
    /// The fields, in declaration order.
    pub(crate) fields: Vec<Field<'a>>,
}

/// The shape of a struct's fields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `struct S { a: T }`.
    Named,
    /// `struct S(T);`.
    Tuple,
    /// `struct S;` or `struct S {}`.
    Unit,
}

/// One field.
pub(crate) struct Field<'a> {
    /// The field as written.
    pub(crate) original: &'a syn::Field,
    /// How to name it in a field expression: `seq` or `0`.
    pub(crate) member: Member,
    /// Its name in the fingerprint: the identifier without `r#`, or the
    /// index.
    pub(crate) name: String,
    /// Its type.
    pub(crate) ty: &'a Type,
    /// Its documentation, copied to the field layout.
    pub(crate) docs: Vec<Attribute>,
}

impl<'a> Input<'a> {
    /// Reads `node`; `None` (with the error recorded) unless it is a
    /// struct.
    pub(crate) fn from_syn(node: &'a DeriveInput, cx: &Ctxt) -> Option<Self> {
        let data = match &node.data {
            Data::Struct(data) => data,
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "`RdmaPod` cannot be derived for an enum: the peer or the NIC may write \
                     any bit pattern, and an enum is invalid for every value that is not one \
                     of its variants; store its integer representation (e.g. a `u8` field \
                     with named constants) and convert it with a checked `TryFrom`",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`RdmaPod` cannot be derived for a union: which field holds a valid value \
                     is not known, and a union may have padding; use a byte array field \
                     (`[u8; N]`) and decode it explicitly",
                );
                return None;
            }
        };
        let style = match &data.fields {
            Fields::Named(_) => Style::Named,
            Fields::Unnamed(_) => Style::Tuple,
            Fields::Unit => Style::Unit,
        };
        let fields = data
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| Field::from_syn(i, field, cx))
            .collect::<Vec<_>>();
        Some(Self {
            original: node,
            repr: attr::repr(&node.attrs, cx),
            attrs: attr::rdma(&node.attrs, cx),
            style: if fields.is_empty() {
                Style::Unit
            } else {
                style
            },
            fields,
        })
    }

    /// The struct's name.
    pub(crate) fn ident(&self) -> &'a Ident {
        &self.original.ident
    }
}

impl<'a> Field<'a> {
    fn from_syn(index: usize, field: &'a syn::Field, cx: &Ctxt) -> Self {
        let (member, name) = match &field.ident {
            Some(ident) => (Member::Named(ident.clone()), ident.unraw().to_string()),
            None => (
                Member::Unnamed(Index {
                    index: index as u32,
                    span: syn::spanned::Spanned::span(&field.ty),
                }),
                index.to_string(),
            ),
        };
        Field {
            original: field,
            member,
            name,
            ty: &field.ty,
            docs: attr::field(&field.attrs, cx),
        }
    }
}

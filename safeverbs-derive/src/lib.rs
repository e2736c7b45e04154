//! `#[derive(RdmaPod)]`: certifies a struct as plain old data that may
//! live in memory the NIC and a peer write, gives it a layout fingerprint,
//! and generates its field layout for named field segments.
//!
//! Use it through `safeverbs`, which re-exports it next to the trait
//! (`use safeverbs::RdmaPod;` names both). What it checks, what it
//! generates (the `<Name>Fields` layout) and its `#[rdma(...)]` attributes
//! are documented on the macro, [`RdmaPod`](derive@RdmaPod), which is the
//! page `safeverbs` shows for its re-export too.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;

use proc_macro::TokenStream;

// No intra-doc links in the macro's documentation: `safeverbs` shows it on
// its re-export, where links resolved in this crate (`crate`, items of
// this crate) point nowhere.
/// Certifies a `#[repr(C)]` or `#[repr(transparent)]` struct as `RdmaPod`,
/// with its layout fingerprint and field layout `<Name>Fields`.
///
/// Use it through `safeverbs`, which re-exports it next to the trait
/// (`use safeverbs::RdmaPod` names both):
///
/// ```
/// use safeverbs::{fingerprint, RdmaPod, RemoteRegion};
///
/// #[derive(RdmaPod, Clone, Copy)]
/// #[repr(C)]
/// pub struct Mailbox {
///     pub seq: u64,
///     pub len: u32,
///     pub flags: u32,
///     pub data: [u8; 64],
/// }
///
/// // Peers compare fingerprints when they connect; a renamed, reordered
/// // or resized field changes it.
/// assert_ne!(Mailbox::FINGERPRINT, 0);
///
/// // The derive also generates `MailboxFields<P>`: one member per field,
/// // here bounded segments of a peer's region (20 bytes as the peer sent
/// // them: address, length, rkey, big-endian).
/// let mut wire = [0u8; 20];
/// wire[..8].copy_from_slice(&0x1000u64.to_be_bytes());
/// wire[8..16].copy_from_slice(&(size_of::<Mailbox>() as u64).to_be_bytes());
/// let peer = RemoteRegion::<Mailbox>::decode(&wire)?;
/// let data = peer.fields().data; // RemoteSegment<[u8; 64]>
/// assert_eq!((data.addr(), data.len_bytes()), (0x1000 + 16, 64));
/// # Ok::<(), safeverbs::Error>(())
/// ```
///
/// # What it checks
///
/// Every rule is checked at compile time; a struct that breaks one does not
/// compile, with a message that says how to fix it:
///
/// - `#[repr(C)]` or `#[repr(transparent)]` (with `packed` or `align(N)` if
///   you like): Rust's default layout may reorder fields, and the peer must
///   agree on the layout.
/// - Every field is `RdmaPod` (integers, floats, arrays of them, other
///   derived structs): `bool`, `char`, references, pointers and enums are
///   refused, since a peer can write bytes that are not a valid value of
///   them. This is checked by rustc through a where-clause per field type,
///   so type aliases work.
/// - No padding: the size of the struct is the sum of its fields' sizes.
///   Padding bytes have no defined value, so they would leak memory
///   contents to the peer and make equal values compare unequal on the
///   wire. The error names each gap; fill it with an explicit
///   `_pad: [u8; N]` field or reorder the fields by decreasing alignment.
/// - No generic parameters, no enums, no unions.
///
/// No check can be turned off or replaced, with or without `unsafe`: the
/// `#[rdma(crate = ...)]` path below names where the library is, never
/// what is checked. Whether the struct has padding is decided with the
/// core library alone (its `size_of` against the sum of its fields'),
/// named through an `extern crate core` inside the generated block, so
/// neither that path nor a crate that calls itself `core`
/// (`extern crate self as core;`) changes it; and a failure stops the build
/// with core's `panic!` even if the `assert_no_padding` found at the path,
/// which only words the message, returns. The field types are checked
/// against the same `RdmaPod` trait that the generated `unsafe impl`
/// implements, whatever path names it: a path to some other trait
/// certifies nothing for `safeverbs`. What the derive cannot see is the
/// build itself: a Cargo dependency renamed to `core` replaces the core
/// library for the whole crate.
///
/// # What it generates
///
/// Inside a `const _: () = { … }` block (so nothing leaks into your
/// namespace):
///
/// - `unsafe impl RdmaPod` with `FINGERPRINT` computed as documented in
///   `safeverbs::fingerprint` (`"struct"`, the struct's name, size and
///   alignment, then each field's name, offset and type fingerprint);
/// - the padding check;
/// - `impl HasFields`, for structs with at least one field.
///
/// Next to the struct, with the struct's visibility, the field layout
/// `<Name>Fields<P>`: a struct of the same shape (named or tuple) with one
/// member per field, of type `P::At<FieldType>` and with the field's
/// visibility and documentation, so a private field stays private.
/// `region.fields()` returns it; nested derived structs project further
/// (`region.fields().header.fields()`). In a `packed` struct a field may
/// be unaligned: its remote segment is usable as is, but making a local
/// segment of it fails (segments are always aligned).
///
/// ## What a private field does and does not hide
///
/// Field privacy is about *names*, not bytes. A private field's member of
/// `<Name>Fields` is private, so code outside the struct's module cannot
/// name it through `fields()`: not as a local segment
/// (`region.fields().secret`), and not as a target in the peer's region
/// (`remote.fields().secret`, `connection.peer().fields().secret`). That is
/// all it does. It does not hide or protect the field's bytes:
///
/// - Locally, the owner of a region reaches every byte: the whole value
///   (`region.read_only()?.read()`, `read_write()`), any byte range
///   (`bytes_ro(..)`, `bytes_rw(..)`), and a reference when no peer can
///   write (`Segment::get`).
/// - Remotely, an rkey grants the whole region with the rights it was
///   registered with. A peer can target the whole value
///   (`RemoteRegion::whole`, `RemoteRegion::bytes`, the `Exposed` that
///   `Connection::peer` returns), and a peer that does not use SafeVerbs
///   reaches any byte of the region directly.
///
/// So keep what the peer must neither read nor write in a region you do not
/// expose, not in a private field of one you do.
///
/// The field layout and the impls other than `RdmaPod` carry where-clauses
/// `for<'__rdma> FieldType: RdmaPod`. They always hold for a struct that
/// compiles; they are there so that a field type that is not `RdmaPod` is
/// reported once, at the field, rather than once per generated item.
///
/// # Attributes
///
/// - `#[rdma(crate = "path")]`: where the `safeverbs` crate is, when it is
///   renamed or re-exported (default `::safeverbs`). It changes where the
///   generated code finds the library's items, not what is checked (see
///   above): a path to anything but `safeverbs` makes the derive fail to
///   compile or implement a trait that is not `safeverbs::RdmaPod`.
/// - `#[rdma(fields = "Name")]`: the name of the field layout struct
///   (default: the struct's name followed by `Fields`).
#[proc_macro_derive(RdmaPod, attributes(rdma))]
pub fn derive_rdma_pod(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}

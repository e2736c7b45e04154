//! `#[derive(RdmaPod)]`: layout fingerprints, field layouts and their
//! remote projections, on the host. The local projections need a device
//! (`ibv_reg_mr`); that test skips, saying why, when there is none.
#![allow(clippy::expect_used)]

mod common;

use common::{trials, Test};

use safeverbs::{
    fingerprint as fp, Access, Device, Error, HasFields, RdmaPod, RemoteRegion, RemoteSegment,
    REMOTE_REGION_LEN,
};

/// The example of the field layout documentation.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    len: u32,
    flags: u32,
    data: [u8; 4096],
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Header {
    seq: u64,
    len: u32,
    kind: u32,
}

/// A struct of a derived struct: its field layout projects further.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Envelope {
    header: Header,
    body: [u8; 64],
}

/// A newtype.
#[derive(RdmaPod, Clone, Copy)]
#[repr(transparent)]
struct Seq(u64);

/// A tuple struct.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Pair(u32, u32);

/// Packed: `b` is unaligned.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C, packed)]
struct Packed {
    a: u8,
    b: u64,
}

/// The fingerprint that the documented scheme gives, computed by hand from
/// literal names, sizes and offsets.
fn by_hand(name: &str, size: u64, align: u64, fields: &[(&str, u64, u64)]) -> u64 {
    let mut h = fp::num(fp::num(fp::str(fp::start("struct"), name), size), align);
    for &(field, offset, fingerprint) in fields {
        h = fp::num(fp::num(fp::str(h, field), offset), fingerprint);
    }
    h
}

fn header_by_hand() -> u64 {
    let (u64_, u32_) = (fp::primitive("u64", 8), fp::primitive("u32", 4));
    by_hand(
        "Header",
        16,
        8,
        &[("seq", 0, u64_), ("len", 8, u32_), ("kind", 12, u32_)],
    )
}

fn fingerprint_follows_the_documented_scheme() {
    let (u64_, u32_) = (fp::primitive("u64", 8), fp::primitive("u32", 4));
    let data = fp::array(fp::primitive("u8", 1), 4096);
    let mailbox = by_hand(
        "Mailbox",
        4112,
        8,
        &[
            ("seq", 0, u64_),
            ("len", 8, u32_),
            ("flags", 12, u32_),
            ("data", 16, data),
        ],
    );
    assert_eq!(Mailbox::FINGERPRINT, mailbox);
    assert_eq!(Header::FINGERPRINT, header_by_hand());
    let body = fp::array(fp::primitive("u8", 1), 64);
    assert_eq!(
        Envelope::FINGERPRINT,
        by_hand(
            "Envelope",
            80,
            8,
            &[("header", 0, header_by_hand()), ("body", 16, body)]
        )
    );
    assert_eq!(Seq::FINGERPRINT, by_hand("Seq", 8, 8, &[("0", 0, u64_)]));
    assert_eq!(
        Packed::FINGERPRINT,
        by_hand(
            "Packed",
            9,
            1,
            &[("a", 0, fp::primitive("u8", 1)), ("b", 1, u64_)]
        )
    );
    assert_eq!(
        Pair::FINGERPRINT,
        by_hand("Pair", 8, 4, &[("0", 0, u32_), ("1", 4, u32_)])
    );
}

fn fingerprint_is_pinned() {
    // Deployed peers compare this value: a change to the derive or to the
    // scheme that moves it breaks every one of them.
    assert_eq!(Mailbox::FINGERPRINT, 0x7934_5023_1559_232b);
}

/// The same struct, changed in one way each.
mod changed {
    use safeverbs::RdmaPod;

    pub(crate) mod renamed_field {
        #[derive(super::RdmaPod, Clone, Copy)]
        #[repr(C)]
        pub(crate) struct Mailbox {
            pub(crate) seq: u64,
            pub(crate) length: u32,
            pub(crate) flags: u32,
            pub(crate) data: [u8; 4096],
        }
    }

    pub(crate) mod reordered {
        #[derive(super::RdmaPod, Clone, Copy)]
        #[repr(C)]
        pub(crate) struct Mailbox {
            pub(crate) seq: u64,
            pub(crate) flags: u32,
            pub(crate) len: u32,
            pub(crate) data: [u8; 4096],
        }
    }

    pub(crate) mod resized {
        #[derive(super::RdmaPod, Clone, Copy)]
        #[repr(C)]
        pub(crate) struct Mailbox {
            pub(crate) seq: u64,
            pub(crate) len: u32,
            pub(crate) flags: u32,
            pub(crate) data: [u8; 2048],
        }
    }

    pub(crate) mod retyped {
        #[derive(super::RdmaPod, Clone, Copy)]
        #[repr(C)]
        pub(crate) struct Mailbox {
            pub(crate) seq: u64,
            pub(crate) len: u32,
            pub(crate) flags: i32,
            pub(crate) data: [u8; 4096],
        }
    }

    pub(crate) mod realigned {
        #[derive(super::RdmaPod, Clone, Copy)]
        #[repr(C, align(16))]
        pub(crate) struct Mailbox {
            pub(crate) seq: u64,
            pub(crate) len: u32,
            pub(crate) flags: u32,
            pub(crate) data: [u8; 4096],
        }
    }

    /// Same layout, other name.
    #[derive(RdmaPod, Clone, Copy)]
    #[repr(C)]
    pub(crate) struct Inbox {
        pub(crate) seq: u64,
        pub(crate) len: u32,
        pub(crate) flags: u32,
        pub(crate) data: [u8; 4096],
    }
}

fn fingerprint_changes_with_the_layout() {
    let variants = [
        Mailbox::FINGERPRINT,
        changed::renamed_field::Mailbox::FINGERPRINT,
        changed::reordered::Mailbox::FINGERPRINT,
        changed::resized::Mailbox::FINGERPRINT,
        changed::retyped::Mailbox::FINGERPRINT,
        changed::realigned::Mailbox::FINGERPRINT,
        changed::Inbox::FINGERPRINT,
    ];
    for (i, a) in variants.iter().enumerate() {
        for b in &variants[i + 1..] {
            assert_ne!(a, b, "variants {i} and another share a fingerprint");
        }
    }
    // A newtype is not the type it wraps.
    assert_ne!(Seq::FINGERPRINT, <u64 as RdmaPod>::FINGERPRINT);
}

/// The derive under `#![no_implicit_prelude]`: every path it emits is
/// fully qualified.
mod no_prelude {
    #![no_implicit_prelude]

    #[derive(::safeverbs::RdmaPod, ::core::clone::Clone, ::core::marker::Copy)]
    #[repr(C)]
    pub(crate) struct Quiet {
        pub(crate) a: u64,
        pub(crate) b: [u32; 2],
    }

    #[derive(::safeverbs::RdmaPod, ::core::clone::Clone, ::core::marker::Copy)]
    #[repr(transparent)]
    pub(crate) struct Wrapped(pub(crate) Quiet);
}

/// The derive under strict lints: what it emits (the `extern crate core`
/// and the qualified paths of the padding check included) is not blamed
/// on the user.
mod strict_lints {
    #![deny(unused_qualifications, unused_extern_crates, rust_2018_idioms)]

    #[derive(safeverbs::RdmaPod, Clone, Copy)]
    #[repr(C, align(16))]
    pub(crate) struct Strict {
        pub(crate) a: u64,
        pub(crate) b: [u8; 8],
    }

    pub(crate) const SIZE: usize = size_of::<Strict>();
}

/// `#[rdma(crate = "...")]` for a renamed dependency, and
/// `#[rdma(fields = "...")]`; also a field type alias, a raw identifier
/// and a field type named `P` (the layout's parameter is renamed).
mod attributes {
    extern crate safeverbs as renamed;

    pub(crate) type Word = u32;
    #[derive(renamed::RdmaPod, Clone, Copy)]
    #[repr(C)]
    pub(crate) struct P(pub(crate) u16, pub(crate) u16);

    #[derive(renamed::RdmaPod, Clone, Copy)]
    #[repr(C)]
    #[rdma(crate = "renamed", fields = "OddLayout")]
    pub(crate) struct Odd {
        pub(crate) r#type: Word,
        pub(crate) p: P,
    }
}

fn derive_options_and_odd_fields() {
    use attributes::{Odd, OddLayout};

    assert_eq!(
        Odd::FINGERPRINT,
        by_hand(
            "Odd",
            8,
            4,
            &[
                ("type", 0, fp::primitive("u32", 4)),
                ("p", 4, attributes::P::FINGERPRINT)
            ]
        )
    );
    let peer = decode::<Odd>(0x2000, size_of::<Odd>() as u64);
    let layout: OddLayout<RemoteSegment<Odd>> = peer.fields();
    assert_eq!(layout.r#type.addr(), 0x2000);
    assert_eq!(layout.p.fields().1.addr(), 0x2006);

    assert_eq!(strict_lints::SIZE, 16);
    let quiet = decode::<no_prelude::Wrapped>(0x3000, 16);
    assert_eq!(quiet.fields().0.fields().b.addr(), 0x3008);
}

/// What a peer would send for its region: address, length, rkey,
/// big-endian.
fn wire(addr: u64, len: u64, rkey: u32) -> [u8; REMOTE_REGION_LEN] {
    let mut out = [0; REMOTE_REGION_LEN];
    out[..8].copy_from_slice(&addr.to_be_bytes());
    out[8..16].copy_from_slice(&len.to_be_bytes());
    out[16..].copy_from_slice(&rkey.to_be_bytes());
    out
}

fn decode<T: RdmaPod>(addr: u64, len: u64) -> RemoteRegion<T> {
    RemoteRegion::<T>::decode(&wire(addr, len, 0x1234)).expect("a whole T")
}

fn remote_fields_are_bounded_segments_at_their_offsets() {
    let base = 0x7f00_0000_1000;
    let peer = decode::<Mailbox>(base, size_of::<Mailbox>() as u64);
    let fields = peer.fields();
    let seq: RemoteSegment<u64> = fields.seq;
    let data: RemoteSegment<[u8; 4096]> = fields.data;
    assert_eq!((seq.addr(), seq.len_bytes()), (base, 8));
    assert_eq!((fields.len.addr(), fields.len.len_bytes()), (base + 8, 4));
    assert_eq!(
        (fields.flags.addr(), fields.flags.len_bytes()),
        (base + 12, 4)
    );
    assert_eq!((data.addr(), data.len_bytes()), (base + 16, 4096));
    // Through the whole-value segment too.
    assert_eq!(peer.whole().fields().data, data);
    // The layout prints its members.
    let shown = format!("{fields:?}");
    assert!(
        shown.starts_with("MailboxFields { seq: RemoteSegment"),
        "{shown}"
    );

    // A peer that claims a region of another size is refused before any
    // field exists.
    assert!(matches!(
        RemoteRegion::<Mailbox>::decode(&wire(base, 16, 1)),
        Err(Error::BadDescriptor { len: 16, .. })
    ));
}

fn remote_fields_project_into_nested_structs() {
    let base = 0x10_0000;
    let peer = decode::<Envelope>(base, size_of::<Envelope>() as u64);
    let header: RemoteSegment<Header> = peer.fields().header;
    let len: RemoteSegment<u32> = peer.fields().header.fields().len;
    assert_eq!((header.addr(), header.len_bytes()), (base, 16));
    assert_eq!((len.addr(), len.len_bytes()), (base + 8, 4));
    assert_eq!(peer.fields().header.fields().kind.addr(), base + 12);
    assert_eq!(peer.fields().body.addr(), base + 16);

    // Tuple structs project by index.
    let pair = decode::<Pair>(0x40, 8);
    assert_eq!(pair.fields().1.addr(), 0x44);
    // A packed struct's unaligned field is a fine remote target.
    let packed = decode::<Packed>(0x100, 9);
    let b: RemoteSegment<u64> = packed.fields().b;
    assert_eq!((b.addr(), b.len_bytes()), (0x101, 8));
    assert_eq!(packed.fields().a.addr(), 0x100);

    let seq = decode::<Seq>(0x80, 8);
    let inner: RemoteSegment<u64> = seq.fields().0;
    assert_eq!((inner.addr(), inner.len_bytes()), (0x80, 8));
}

/// A generic helper over any derived struct, as a user would write one.
fn field_count<T: HasFields>() -> usize
where
    for<'a> T::Fields<RemoteSegment<T>>: std::fmt::Debug,
{
    let peer = decode::<T>(0, size_of::<T>() as u64);
    format!("{:?}", peer.whole().fields())
        .matches("RemoteSegment")
        .count()
}

fn field_layouts_are_usable_generically() {
    assert_eq!(field_count::<Mailbox>(), 4);
    assert_eq!(field_count::<Envelope>(), 2);
    assert_eq!(field_count::<Pair>(), 2);
}

fn local_fields_are_segments_at_their_offsets(dev: &Device) {
    let pd = dev.alloc_pd().expect("alloc_pd");
    let inbox = pd
        .register(Mailbox::zeroed(), Access::local())
        .expect("register");

    let mut data = inbox.fields().data.read_write().expect("data");
    assert_eq!(data.offset(), 16);
    assert_eq!(data.len_bytes(), 4096);
    // The same bytes again, read-write or read-only: refused.
    assert!(matches!(
        inbox.fields().data.read_write(),
        Err(Error::Overlap(_))
    ));
    assert!(inbox.fields().data.read_only().is_err());
    // Other fields are other bytes.
    let mut seq = inbox.fields().seq.read_write().expect("seq");
    assert_eq!(seq.offset(), 0);
    let flags = inbox.fields().flags.read_only().expect("flags");
    assert_eq!(flags.offset(), 12);
    seq.write(7);
    data.write([0xab; 4096]);
    drop((seq, data, flags));
    let whole = inbox.read_only().expect("whole").read();
    assert_eq!((whole.seq, whole.data[4095]), (7, 0xab));

    // Segments are aligned: an unaligned field of a packed struct has none.
    let packed = pd
        .register(Packed::zeroed(), Access::local())
        .expect("register");
    assert!(matches!(
        packed.fields().b.read_only(),
        Err(Error::Unaligned { start: 1, .. })
    ));
    assert_eq!(packed.fields().a.read_only().expect("a").offset(), 0);

    // Nested.
    let envelope = pd
        .register(Envelope::zeroed(), Access::local())
        .expect("register");
    let len = envelope
        .fields()
        .header
        .fields()
        .len
        .read_write()
        .expect("len");
    assert_eq!(len.offset(), 8);
    assert!(envelope.fields().header.read_only().is_err());
    assert_eq!(
        envelope.fields().body.read_only().expect("body").offset(),
        16
    );
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        host fingerprint_follows_the_documented_scheme,
        host fingerprint_is_pinned,
        host fingerprint_changes_with_the_layout,
        host derive_options_and_odd_fields,
        host remote_fields_are_bounded_segments_at_their_offsets,
        host remote_fields_project_into_nested_structs,
        host field_layouts_are_usable_generically,
        device local_fields_are_segments_at_their_offsets,
    ])
}

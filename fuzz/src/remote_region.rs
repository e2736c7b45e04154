//! Target `remote_region`: the descriptor of a peer's region,
//! [`RemoteRegion::<T>::decode`], for values and slices of several element
//! sizes (1, 3, 8, 24 bytes, and zero), and what a decoded descriptor
//! hands out (`bytes`, `slice`, `elem`, `whole`, `fields`).
//!
//! The input is decoded as it is for every type; its first 20 bytes are
//! also decoded on their own, and the rest gives the ranges and indices
//! asked of the result. Properties:
//!
//! 1. Exactly the descriptors of the documented shape are accepted: 20
//!    bytes, big-endian address, length and rkey; a length that is a whole
//!    run of `T` (`size_of::<T>()` for a value, a multiple of it for a
//!    slice, 0 for a slice of a zero-sized type); `addr + len` within
//!    `u64`. Anything else is an error value (the size, as
//!    `Error::Endpoint(Truncated | Oversized)`; the shape, as
//!    `Error::BadDescriptor` with the length, address and type, which its
//!    message names).
//! 2. Canonical: an accepted descriptor re-encodes to the same 20 bytes (no
//!    field is normalized).
//! 3. A part of it is handed out exactly when it lies inside it, at the
//!    address and of the length asked (computed here in `u128`); else
//!    `Error::RemoteOutOfBounds`. A field lies inside its value.
//! 4. Decoding allocates nothing when it accepts, and less than 1 KiB (the
//!    error's message) when it refuses.

use safeverbs::{DecodeError, Error, Nothing, RdmaBuf, RdmaPod, RemoteRegion, REMOTE_REGION_LEN};

use crate::{alloc, Take};

/// A derived struct of 24 bytes with fields at 0, 8 and 20.
#[derive(safeverbs::RdmaPod, Clone, Copy)]
#[repr(C)]
pub struct Record {
    pub id: u64,
    pub value: [u8; 12],
    pub flags: u32,
}

pub fn check(data: &[u8]) {
    decode::<[u8]>(data, Shape::Slice(1));
    decode::<u64>(data, Shape::One(8));
    decode::<Record>(data, Shape::One(24));
    decode::<[Record]>(data, Shape::Slice(24));
    decode::<[[u8; 3]]>(data, Shape::Slice(3));
    decode::<Nothing>(data, Shape::One(0));
    decode::<[Nothing]>(data, Shape::Slice(0));

    let Some(head) = data.get(..REMOTE_REGION_LEN) else {
        return;
    };
    let params = &data[REMOTE_REGION_LEN..];
    if let Some(r) = decode::<[u8]>(head, Shape::Slice(1)) {
        slice(&r, 1, params);
    }
    if let Some(r) = decode::<[u64]>(head, Shape::Slice(8)) {
        slice(&r, 8, params);
    }
    if let Some(r) = decode::<[[u8; 3]]>(head, Shape::Slice(3)) {
        slice(&r, 3, params);
    }
    if let Some(r) = decode::<[Record]>(head, Shape::Slice(24)) {
        slice(&r, 24, params);
    }
    if let Some(r) = decode::<[Nothing]>(head, Shape::Slice(0)) {
        slice(&r, 0, params);
    }
    if let Some(r) = decode::<u64>(head, Shape::One(8)) {
        value(&r, params);
    }
    if let Some(r) = decode::<Record>(head, Shape::One(24)) {
        value(&r, params);
        let f = r.fields();
        let base = addr_of(&r);
        for (what, seg, offset, len) in [
            ("id", (f.id.addr(), f.id.len_bytes()), 0, 8),
            ("value", (f.value.addr(), f.value.len_bytes()), 8, 12),
            ("flags", (f.flags.addr(), f.flags.len_bytes()), 20, 4),
        ] {
            assert_eq!(seg, (base + offset, len), "field {what}");
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// One value of this many bytes.
    One(u64),
    /// A slice of elements of this many bytes.
    Slice(u64),
}

fn addr_of<T: ?Sized + RdmaBuf>(r: &RemoteRegion<T>) -> u64 {
    u64::from_be_bytes(r.encode()[..8].try_into().unwrap())
}

/// Properties 1, 2 and 4 for `RemoteRegion<T>`.
fn decode<T: ?Sized + RdmaBuf>(data: &[u8], shape: Shape) -> Option<RemoteRegion<T>> {
    let (result, allocated) = alloc::count(|| RemoteRegion::<T>::decode(data));
    let ty = std::any::type_name::<T>();
    let Ok(bytes) = <&[u8; REMOTE_REGION_LEN]>::try_from(data) else {
        let (got, want) = (data.len(), REMOTE_REGION_LEN);
        match result {
            Err(Error::Endpoint(DecodeError::Truncated { got: g, want: w }))
                if got < want && (g, w) == (got, want) => {}
            Err(Error::Endpoint(DecodeError::Oversized { got: g, want: w }))
                if got > want && (g, w) == (got, want) => {}
            other => panic!("{ty}: {got} bytes gave {other:?}"),
        }
        assert_eq!(allocated, 0, "{ty}: the size error allocated");
        return None;
    };
    let mut t = Take(bytes);
    let (addr, len) = (t.u64(), t.u64());
    let whole = match shape {
        Shape::One(n) => len == n,
        Shape::Slice(0) => len == 0,
        Shape::Slice(n) => len % n == 0,
    };
    let valid = whole && addr.checked_add(len).is_some();
    match result {
        Ok(r) => {
            assert!(valid, "{ty}: accepted {bytes:02x?} as {r:?}");
            assert_eq!(r.encode(), *bytes, "{ty}: not canonical");
            assert_eq!(r.len_bytes(), len);
            assert_eq!(allocated, 0, "{ty}: decoding allocated");
            Some(r)
        }
        Err(e) => {
            assert!(!valid, "{ty}: refused a valid descriptor {bytes:02x?}: {e}");
            match &e {
                Error::BadDescriptor {
                    addr: a,
                    len: l,
                    ty: t,
                } => {
                    assert_eq!((*a, *l, *t), (addr, len, ty), "{ty}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("{len} bytes at {addr:#x}")), "{msg}");
                    assert!(msg.contains(ty), "{msg}");
                }
                other => panic!("{ty}: refused with {other:?}"),
            }
            assert!(
                allocated < 1024,
                "{ty}: the error allocated {allocated} bytes"
            );
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

/// Property 3 for a slice of elements of `n` bytes.
fn slice<T: RdmaPod>(r: &RemoteRegion<[T]>, n: u64, params: &[u8]) {
    let mut t = Take(params);
    let (a, b, i) = (t.u64(), t.u64(), t.u64());
    let (base, len) = (u128::from(addr_of(r)), u128::from(r.len_bytes()));
    let w = u128::from(n);
    bytes(r, a, b);
    // A slice of a zero-sized type has no elements (as a local one).
    let count = if n == 0 { 0 } else { len / w };
    let inside = a <= b && u128::from(b) <= count;
    match r.slice(a..b) {
        Ok(seg) => {
            assert!(inside, "slice({a}..{b}) of {r:?} gave {seg:?}");
            assert_eq!(u128::from(seg.addr()), base + u128::from(a) * w);
            assert_eq!(u128::from(seg.len_bytes()), u128::from(b - a) * w);
        }
        Err(e) => {
            assert!(!inside, "slice({a}..{b}) of {r:?} refused: {e}");
            assert!(matches!(e, Error::RemoteOutOfBounds { .. }), "{e:?}");
        }
    }
    let inside = u128::from(i) < count;
    match r.elem(i) {
        Ok(seg) => {
            assert!(inside, "elem({i}) of {r:?} gave {seg:?}");
            assert_eq!(u128::from(seg.addr()), base + u128::from(i) * w);
            assert_eq!(u128::from(seg.len_bytes()), w);
        }
        Err(e) => {
            assert!(!inside, "elem({i}) of {r:?} refused: {e}");
            assert!(matches!(e, Error::RemoteOutOfBounds { .. }), "{e:?}");
        }
    }
}

/// Property 3 for a single value.
fn value<T: RdmaPod>(r: &RemoteRegion<T>, params: &[u8]) {
    let whole = r.whole();
    assert_eq!(
        (whole.addr(), whole.len_bytes()),
        (addr_of(r), r.len_bytes())
    );
    let mut t = Take(params);
    bytes(r, t.u64(), t.u64());
}

/// Property 3 for bytes `a..b`.
fn bytes<T: ?Sized + RdmaBuf>(r: &RemoteRegion<T>, a: u64, b: u64) {
    let inside = a <= b && b <= r.len_bytes();
    match r.bytes(a..b) {
        Ok(seg) => {
            assert!(inside, "bytes({a}..{b}) of {r:?} gave {seg:?}");
            assert_eq!(seg.addr(), addr_of(r) + a);
            assert_eq!(seg.len_bytes(), b - a);
        }
        Err(e) => {
            assert!(!inside, "bytes({a}..{b}) of {r:?} refused: {e}");
            assert!(matches!(e, Error::RemoteOutOfBounds { .. }), "{e:?}");
        }
    }
}

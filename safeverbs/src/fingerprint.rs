//! Layout fingerprints: a stable 64-bit hash of a type's memory layout.
//!
//! Two programs agree on a type's layout when their fingerprints agree, so
//! peers exchange fingerprints at connect time and refuse a mismatch.
//!
//! The hash is 64-bit FNV-1a, computed at compile time (`const fn`), over:
//!
//! | type | bytes hashed, in order |
//! |---|---|
//! | primitive (`u32`, `f64`, …) | `"prim"`, its name, size (u64 LE) |
//! | array `[T; N]` | `"array"`, `T`'s fingerprint, `N` (u64 LE) |
//! | derived struct | `"struct"`, its name, size, alignment, then per field: name, offset, the field type's fingerprint (all u64 LE) |
//!
//! It depends only on names, sizes, alignments and offsets, so it is the
//! same on every build and platform where the layout is the same (a
//! `usize` field differs between 32- and 64-bit targets, as its layout
//! does). It is not a cryptographic hash: it catches mistakes, not forgery.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The starting state of a fingerprint.
pub const fn start(tag: &str) -> u64 {
    bytes(OFFSET, tag.as_bytes())
}

/// Feeds `data` into the hash `h`.
pub const fn bytes(mut h: u64, data: &[u8]) -> u64 {
    let mut i = 0;
    while i < data.len() {
        h ^= data[i] as u64;
        h = h.wrapping_mul(PRIME);
        i += 1;
    }
    // A separator, so that ("ab","c") and ("a","bc") differ.
    h ^= 0xff;
    h.wrapping_mul(PRIME)
}

/// Feeds a string into the hash.
pub const fn str(h: u64, s: &str) -> u64 {
    bytes(h, s.as_bytes())
}

/// Feeds a number (little-endian) into the hash.
pub const fn num(h: u64, n: u64) -> u64 {
    bytes(h, &n.to_le_bytes())
}

/// The fingerprint of a primitive type.
pub const fn primitive(name: &str, size: usize) -> u64 {
    num(str(start("prim"), name), size as u64)
}

/// The fingerprint of `[T; n]` given `T`'s.
pub const fn array(elem: u64, n: usize) -> u64 {
    num(num(start("array"), elem), n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RdmaPod;

    #[test]
    fn fingerprints_are_stable_and_distinguish_layouts() {
        // Pinned values: a change here breaks every deployed peer.
        assert_eq!(<u64 as RdmaPod>::FINGERPRINT, primitive("u64", 8));
        assert_ne!(<u64 as RdmaPod>::FINGERPRINT, <i64 as RdmaPod>::FINGERPRINT);
        assert_ne!(
            <[u8; 4] as RdmaPod>::FINGERPRINT,
            <[u8; 5] as RdmaPod>::FINGERPRINT
        );
        assert_ne!(
            <[u8; 4] as RdmaPod>::FINGERPRINT,
            <u32 as RdmaPod>::FINGERPRINT
        );
        assert_ne!(
            str(str(start("x"), "ab"), "c"),
            str(str(start("x"), "a"), "bc")
        );
    }
}

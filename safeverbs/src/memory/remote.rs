//! Memory of a peer: typed, bounded descriptors for RDMA WRITE and READ.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use crate::memory::pod::{RdmaBuf, RdmaPod};
use crate::setup::endpoint::DecodeError;
use crate::wire::{Put, Take};
use crate::{Error, Result};

/// Size of an encoded [`RemoteRegion`]: address, length, rkey, big-endian.
pub const REMOTE_REGION_LEN: usize = 20;

/// A region of a peer's registered memory: address, length and rkey, typed
/// by what the peer keeps there. Obtained from the peer (its
/// [`MemoryRegion::remote`](crate::MemoryRegion::remote), sent over the
/// wire).
pub struct RemoteRegion<T: ?Sized> {
    addr: u64,
    len: u64,
    rkey: u32,
    _type: PhantomData<fn(&T)>,
}

/// A bounded part of a peer's region: where an RDMA WRITE lands or an RDMA
/// READ comes from. An operation that does not fit fails before posting.
pub struct RemoteSegment<T: ?Sized> {
    pub(crate) addr: u64,
    pub(crate) len: u64,
    pub(crate) rkey: u32,
    _type: PhantomData<fn(&T)>,
}

macro_rules! plain_data_impls {
    ($name:ident) => {
        impl<T: ?Sized> Clone for $name<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T: ?Sized> Copy for $name<T> {}
        impl<T: ?Sized> PartialEq for $name<T> {
            fn eq(&self, other: &Self) -> bool {
                (self.addr, self.len, self.rkey) == (other.addr, other.len, other.rkey)
            }
        }
        impl<T: ?Sized> Eq for $name<T> {}
        impl<T: ?Sized> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("type", &std::any::type_name::<T>())
                    .field("addr", &format_args!("{:#x}", self.addr))
                    .field("len", &self.len)
                    .field("rkey", &format_args!("{:#x}", self.rkey))
                    .finish()
            }
        }
    };
}
plain_data_impls!(RemoteRegion);
plain_data_impls!(RemoteSegment);

impl<T: ?Sized + RdmaBuf> RemoteRegion<T> {
    pub(crate) fn new(addr: u64, len: u64, rkey: u32) -> Self {
        Self {
            addr,
            len,
            rkey,
            _type: PhantomData,
        }
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// The encoding to send to the peer.
    pub fn encode(&self) -> [u8; REMOTE_REGION_LEN] {
        let mut out = [0; REMOTE_REGION_LEN];
        Put::new(&mut out)
            .u64(self.addr)
            .u64(self.len)
            .u32(self.rkey);
        out
    }

    /// Decodes what a peer sent. The type is the caller's claim; the length
    /// must be a whole number of `T` units: `size_of::<T>()` bytes for a
    /// value, a multiple of the element's size for a slice (0 bytes for a
    /// slice of a zero-sized type), and the region must end within the
    /// address space (`addr + len` fits in a `u64`).
    ///
    /// Every field is kept as sent: an accepted descriptor
    /// [`encode`](Self::encode)s to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bytes: &[u8; REMOTE_REGION_LEN] = bytes.try_into().map_err(|_| {
            Error::Endpoint(if bytes.len() < REMOTE_REGION_LEN {
                DecodeError::Truncated {
                    got: bytes.len(),
                    want: REMOTE_REGION_LEN,
                }
            } else {
                DecodeError::Oversized {
                    got: bytes.len(),
                    want: REMOTE_REGION_LEN,
                }
            })
        })?;
        let mut r = Take::new(bytes);
        let this = Self::new(r.u64(), r.u64(), r.u32());
        let unit = T::UNIT as u64;
        let whole = if T::SIZED {
            this.len == unit
        } else if unit == 0 {
            // A run of zero-sized elements has no bytes.
            this.len == 0
        } else {
            this.len % unit == 0
        };
        if !whole || this.addr.checked_add(this.len).is_none() {
            return Err(Error::BadDescriptor {
                addr: this.addr,
                len: this.len,
                ty: std::any::type_name::<T>(),
            });
        }
        Ok(this)
    }

    fn sub<U: ?Sized>(&self, bytes: Range<u64>) -> Result<RemoteSegment<U>> {
        if bytes.start > bytes.end || bytes.end > self.len {
            return Err(Error::RemoteOutOfBounds {
                offset: bytes.start,
                len: bytes.end.saturating_sub(bytes.start),
                granted: self.len,
            });
        }
        Ok(RemoteSegment {
            addr: self.addr + bytes.start,
            len: bytes.end - bytes.start,
            rkey: self.rkey,
            _type: PhantomData,
        })
    }

    /// Bytes `range` of the peer's region.
    pub fn bytes(&self, range: Range<u64>) -> Result<RemoteSegment<[u8]>> {
        self.sub(range)
    }
}

impl<T: RdmaPod> RemoteRegion<T> {
    /// The whole value.
    pub fn whole(&self) -> RemoteSegment<T> {
        RemoteSegment {
            addr: self.addr,
            len: self.len,
            rkey: self.rkey,
            _type: PhantomData,
        }
    }
}

impl<T: RdmaPod> RemoteRegion<[T]> {
    /// Number of elements in the peer's slice (none for a zero-sized `T`,
    /// as [`MemoryRegion::len`](crate::MemoryRegion::len) counts them).
    fn elements(&self) -> u64 {
        self.len / (size_of::<T>() as u64).max(1)
    }

    /// Elements `range` of the peer's slice; [`Error::RemoteOutOfBounds`]
    /// unless `range.start <= range.end` and the range ends within
    /// the slice.
    pub fn slice(&self, range: Range<u64>) -> Result<RemoteSegment<[T]>> {
        let n = size_of::<T>() as u64;
        // Checked in elements, before any multiplication: a range past the
        // end cannot saturate into one that looks inside.
        if range.start > range.end || range.end > self.elements() {
            return Err(Error::RemoteOutOfBounds {
                offset: range.start.saturating_mul(n),
                len: range.end.saturating_sub(range.start).saturating_mul(n),
                granted: self.len,
            });
        }
        // Cannot overflow: `range.end * n <= self.len`.
        self.sub(range.start * n..range.end * n)
    }

    /// Element `index` of the peer's slice; [`Error::RemoteOutOfBounds`]
    /// unless there is an element
    /// `index`.
    pub fn elem(&self, index: u64) -> Result<RemoteSegment<T>> {
        let n = size_of::<T>() as u64;
        if index >= self.elements() {
            return Err(Error::RemoteOutOfBounds {
                offset: index.saturating_mul(n),
                len: n,
                granted: self.len,
            });
        }
        // Cannot overflow: `(index + 1) * n <= self.len`.
        self.sub(index * n..(index + 1) * n)
    }
}

impl<T: ?Sized> RemoteSegment<T> {
    /// Length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// The peer's address of the first byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The field of `len` bytes at `offset`; clamped to this segment, so a
    /// field layout can never reach past what the peer granted.
    pub(crate) fn sub_field<U: ?Sized>(&self, offset: u64, len: u64) -> RemoteSegment<U> {
        let offset = offset.min(self.len);
        RemoteSegment {
            // Cannot saturate: `addr + len` fits (checked when decoded).
            addr: self.addr.saturating_add(offset),
            len: len.min(self.len - offset),
            rkey: self.rkey,
            _type: PhantomData,
        }
    }

    /// Checks that `bytes` bytes fit, before anything is posted.
    pub(crate) fn check_fits(&self, bytes: usize) -> Result<()> {
        if bytes as u64 > self.len {
            return Err(Error::RemoteOutOfBounds {
                offset: 0,
                len: bytes as u64,
                granted: self.len,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::connection::Nothing;

    fn wire(addr: u64, len: u64, rkey: u32) -> [u8; REMOTE_REGION_LEN] {
        let mut out = [0; REMOTE_REGION_LEN];
        Put::new(&mut out).u64(addr).u64(len).u32(rkey);
        out
    }

    /// Rule: a peer's descriptor is accepted only with a length that is a
    /// whole run of its type; a run of zero-sized elements has no bytes.
    /// (Found by the `remote_region` fuzz target: 8 bytes were accepted as
    /// a `[[u8; 0]]`.)
    #[test]
    fn a_slice_of_zero_sized_elements_holds_no_bytes() {
        for len in [1u64, 8, u64::MAX] {
            let err = RemoteRegion::<[Nothing]>::decode(&wire(0x2000, len, 1)).unwrap_err();
            assert!(matches!(err, Error::BadDescriptor { .. }), "{err:?}");
        }
        let empty = RemoteRegion::<[Nothing]>::decode(&wire(0x2000, 0, 1)).unwrap();
        assert_eq!(empty.len_bytes(), 0);
        assert!(RemoteRegion::<Nothing>::decode(&wire(0x2000, 8, 1)).is_err());
        assert!(RemoteRegion::<Nothing>::decode(&wire(0x2000, 0, 1)).is_ok());
        // And it has no element.
        assert_eq!(empty.elements(), 0);
        assert!(empty.slice(0..0).is_ok());
        for (a, b) in [(0, 1), (1, 1), (1 << 40, 0)] {
            assert!(matches!(
                empty.slice(a..b),
                Err(Error::RemoteOutOfBounds { .. })
            ));
        }
        assert!(empty.elem(0).is_err());
    }

    /// Rule: an element range of a peer's slice is checked in elements,
    /// so that one past the end is refused however large it is. (Found by
    /// the `remote_region` fuzz target: `elem(u64::MAX)` of a `[u8]` of
    /// `u64::MAX` bytes at 0 gave an empty segment at its end, as the byte
    /// offsets saturated at `u64::MAX`, instead of an error.)
    #[test]
    fn element_ranges_past_the_end_are_refused_not_saturated() {
        // 2^64 - 1 is a multiple of 3: a region of the whole address space
        // is a whole run of 3-byte elements.
        let all = RemoteRegion::<[[u8; 3]]>::decode(&wire(0, u64::MAX, 1)).unwrap();
        assert_eq!(all.elements(), u64::MAX / 3);
        let past = u64::MAX / 3;
        for i in [past, past + 1, u64::MAX] {
            let err = all.elem(i).unwrap_err();
            assert!(matches!(err, Error::RemoteOutOfBounds { .. }), "{err:?}");
        }
        let last = all.elem(past - 1).unwrap();
        assert_eq!((last.addr(), last.len_bytes()), (u64::MAX - 3, 3));
        for (a, b) in [(u64::MAX, u64::MAX), (u64::MAX, past + 1), (past, u64::MAX)] {
            assert!(all.slice(a..b).is_err(), "{a}..{b}");
        }
        let tail = all.slice(past - 2..past).unwrap();
        assert_eq!((tail.addr(), tail.len_bytes()), (u64::MAX - 6, 6));
        // The same with bytes: element u64::MAX of a [u8] reaching there.
        let bytes = RemoteRegion::<[u8]>::decode(&wire(0, u64::MAX, 1)).unwrap();
        assert!(bytes.elem(u64::MAX).is_err());
        assert_eq!(bytes.elem(u64::MAX - 1).unwrap().addr(), u64::MAX - 1);
        // An inverted range is refused, even when both ends are past it.
        let some = RemoteRegion::<[u64]>::decode(&wire(0x1000, 64, 1)).unwrap();
        for (a, b) in [(5, 3), (1 << 62, 1 << 61)] {
            assert!(some.slice(a..b).is_err(), "{a}..{b}");
        }
        assert_eq!(some.slice(3..5).unwrap().len_bytes(), 16);
    }
}

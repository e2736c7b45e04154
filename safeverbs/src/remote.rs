//! Memory of a peer: typed, bounded descriptors for RDMA WRITE and READ.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use crate::endpoint::DecodeError;
use crate::pod::{RdmaBuf, RdmaPod};
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
        out[..8].copy_from_slice(&self.addr.to_be_bytes());
        out[8..16].copy_from_slice(&self.len.to_be_bytes());
        out[16..].copy_from_slice(&self.rkey.to_be_bytes());
        out
    }

    /// Decodes what a peer sent. The type is the caller's claim; the length
    /// must be a whole number of `T` units.
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
        let (addr, rest) = bytes.split_at(8);
        let (len, rkey) = rest.split_at(8);
        let to8 = |b: &[u8]| -> [u8; 8] { b.try_into().unwrap_or_default() };
        let this = Self::new(
            u64::from_be_bytes(to8(addr)),
            u64::from_be_bytes(to8(len)),
            u32::from_be_bytes(rkey.try_into().unwrap_or_default()),
        );
        let whole = if T::SIZED {
            this.len == T::UNIT as u64
        } else {
            this.len % (T::UNIT.max(1) as u64) == 0
        };
        if !whole || this.addr.checked_add(this.len).is_none() {
            return Err(Error::BadSelection(format!(
                "peer region of {} bytes at {:#x} is not a whole run of {}",
                this.len,
                this.addr,
                std::any::type_name::<T>()
            )));
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
    /// Elements `range` of the peer's slice.
    pub fn slice(&self, range: Range<u64>) -> Result<RemoteSegment<[T]>> {
        let n = size_of::<T>() as u64;
        self.sub(range.start.saturating_mul(n)..range.end.saturating_mul(n))
    }

    /// Element `index` of the peer's slice.
    pub fn elem(&self, index: u64) -> Result<RemoteSegment<T>> {
        let n = size_of::<T>() as u64;
        self.sub(index.saturating_mul(n)..index.saturating_add(1).saturating_mul(n))
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

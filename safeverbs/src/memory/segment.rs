//! Segments: typed, checked views of part of a region.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use crate::memory::interval::Access as Sharing;
use crate::memory::mode::{Mode, Writable};
use crate::memory::pod::{RdmaBuf, RdmaPod};
use crate::memory::region::RegionInner;
use crate::{Error, Result};

pub(crate) mod shared;

/// The untyped part of a segment: which bytes of which region, and the
/// overlap-map entry it holds. This is what a posted work request keeps in
/// the completion queue's slot table.
pub(crate) struct RawSegment {
    pub(crate) region: Arc<RegionInner>,
    pub(crate) offset: usize,
    pub(crate) len: usize,
    /// `None` for unchecked segments, which hold no map entry.
    sharing: Option<Sharing>,
}

impl RawSegment {
    pub(crate) fn acquire(
        region: Arc<RegionInner>,
        range: Range<usize>,
        sharing: Sharing,
    ) -> Result<Self> {
        crate::sync::lock(&region.map).acquire(range.clone(), sharing)?;
        Ok(Self {
            region,
            offset: range.start,
            len: range.end - range.start,
            sharing: Some(sharing),
        })
    }

    pub(crate) fn unchecked(region: Arc<RegionInner>, range: Range<usize>) -> Self {
        Self {
            region,
            offset: range.start,
            len: range.end - range.start,
            sharing: None,
        }
    }

    pub(crate) fn addr(&self) -> u64 {
        self.ptr() as u64
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        // `offset <= region.len` (checked when carved), so this stays in
        // the allocation; `wrapping_add` needs no unsafe.
        self.region.ptr.as_ptr().wrapping_add(self.offset)
    }
}

impl Drop for RawSegment {
    fn drop(&mut self) {
        if let Some(sharing) = self.sharing {
            crate::sync::lock(&self.region.map)
                .release(self.offset..self.offset + self.len, sharing);
        }
    }
}

/// Makes a segment `Send + Sync + Unpin` whatever `T` and `M` are (it
/// holds neither).
type Marker<T, M> = fn(&T) -> M;

/// A typed view of part of a [`MemoryRegion`](crate::MemoryRegion): a `T`
/// (or `[E]`) at a checked offset, read-only ([`Ro`](crate::Ro)) or
/// read-write ([`Rw`](crate::Rw)).
///
/// Posting an operation moves the segment in; the completion hands it back.
/// While it is posted, nothing in safe code can reach its bytes.
pub struct Segment<T: ?Sized, M> {
    pub(crate) raw: RawSegment,
    _type: PhantomData<Marker<T, M>>,
}

impl<T: ?Sized + RdmaBuf, M: Mode> fmt::Debug for Segment<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("type", &std::any::type_name::<T>())
            .field("mode", &std::any::type_name::<M>())
            .field("offset", &self.raw.offset)
            .field("len", &self.raw.len)
            .finish()
    }
}

impl<T: ?Sized + RdmaBuf, M: Mode> Segment<T, M> {
    /// The segment, handed to the user: every carve, and every segment a
    /// future hands back, comes through here.
    pub(crate) fn from_raw(raw: RawSegment) -> Self {
        // The model device checks that none of its queued requests still
        // uses these bytes (no cost without the feature, one comparison on
        // a real device).
        #[cfg(feature = "model")]
        if let Some(model) = raw.region.pd.device.model() {
            let writable = M::ACCESS == crate::memory::interval::Access::Exclusive;
            model.check_handed_back(raw.addr(), raw.len, writable);
        }
        Self {
            raw,
            _type: PhantomData,
        }
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> usize {
        self.raw.len
    }

    /// Offset in bytes from the start of its region.
    pub fn offset(&self) -> usize {
        self.raw.offset
    }

    fn ptr(&self) -> *mut T {
        T::from_raw(self.raw.ptr(), self.raw.len)
    }

    /// The bytes as a reference, when no peer can write them.
    ///
    /// Fails with [`Error::RemotelyWritable`] for a region a peer may write:
    /// read that by copy ([`read`](Segment::read), [`copy_to`](Segment::copy_to)).
    pub fn get(&self) -> Result<&T> {
        if self.raw.region.access.is_remotely_writable() {
            return Err(Error::RemotelyWritable);
        }
        // SAFETY: the bytes are in bounds and aligned for `T` (checked when
        // carved) and hold a valid `T` (every bit pattern is). Nothing can
        // write them while the reference lives:
        // - no peer: the region grants no remote write (checked above);
        // - not the NIC locally: it writes only into posted read-write
        //   segments, and any other read-write segment is kept off these
        //   bytes by the overlap map; this one, if read-write, is not
        //   posted, since posting takes it by value and we borrow it;
        // - not safe code: writing needs `&mut` of a read-write segment,
        //   which is this one (borrowed) or none.
        // Unchecked segments are excluded by their `unsafe` contract. The
        // reference lives no longer than `&self`, which keeps the region
        // alive.
        Ok(unsafe { &*self.ptr() })
    }
}

impl<T: RdmaPod, M: Mode> Segment<T, M> {
    /// A copy of the value. Safe even while a peer writes the memory: the
    /// copy is taken with volatile reads, and whatever mix of old and new
    /// bytes it sees is a valid `T`.
    pub fn read(&self) -> T {
        // SAFETY: in bounds and aligned for `T` (checked when carved), in a
        // live region (we hold its `Arc`); reading while other holders read
        // is allowed by `shared`'s contract, and nothing in the program
        // writes these bytes while this segment lives (the segment rules).
        unsafe { shared::read(self.ptr()) }
    }
}

impl<E: RdmaPod, M: Mode> Segment<[E], M> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.raw.len / size_of::<E>().max(1)
    }

    /// True for an empty segment.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// Copies the elements into `out` (which must have the same length).
    pub fn copy_to(&self, out: &mut [E]) -> Result<()> {
        if out.len() != self.len() {
            return Err(Error::OutOfBounds {
                start: 0,
                end: out.len(),
                len: self.len(),
            });
        }
        // SAFETY: `len()` elements in bounds and aligned (checked when
        // carved), in a live region; read as in `read`.
        unsafe { shared::copy_out(self.raw.ptr().cast::<E>(), out) };
        Ok(())
    }

    /// The elements, copied into a new vector.
    pub fn to_vec(&self) -> Vec<E> {
        let mut v = vec![E::zeroed(); self.len()];
        // Same length by construction, so this cannot fail.
        let _ = self.copy_to(&mut v);
        v
    }
}

impl<T: ?Sized + RdmaBuf, M: Mode> Segment<T, M> {
    /// The bytes as a mutable reference, when no peer can write them.
    pub fn get_mut(&mut self) -> Result<&mut T>
    where
        M: Writable,
    {
        if self.raw.region.access.is_remotely_writable() {
            return Err(Error::RemotelyWritable);
        }
        // SAFETY: as in `get`; in addition this read-write segment overlaps
        // no other live segment and is not posted (we hold it), so nothing
        // else reads or writes these bytes while `&mut self` lives.
        Ok(unsafe { &mut *self.ptr() })
    }
}

impl<T: RdmaPod, M: Mode> Segment<T, M> {
    /// Writes `value` into the segment.
    pub fn write(&mut self, value: T)
    where
        M: Writable,
    {
        // SAFETY: in bounds and aligned (checked when carved), in a live
        // region. Nothing else in the program reads or writes these bytes:
        // no other live segment overlaps a read-write one, and this one is
        // not posted (we hold it by `&mut`).
        unsafe { shared::write(self.ptr(), &value) };
    }
}

impl<E: RdmaPod, M: Mode> Segment<[E], M> {
    /// Copies `src` into the segment (which must have the same length).
    pub fn copy_from(&mut self, src: &[E]) -> Result<()>
    where
        M: Writable,
    {
        if src.len() != self.len() {
            return Err(Error::OutOfBounds {
                start: 0,
                end: src.len(),
                len: self.len(),
            });
        }
        // SAFETY: `len()` elements in bounds and aligned, in a live region;
        // exclusive as in `write`.
        unsafe { shared::copy_in(self.raw.ptr().cast::<E>(), src) };
        Ok(())
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: E)
    where
        M: Writable,
    {
        // SAFETY: `len()` elements in bounds and aligned, in a live region;
        // exclusive as in `write`.
        unsafe { shared::fill(self.raw.ptr().cast::<E>(), self.len(), value) };
    }
}

//! Registered memory, owned by the library.

use std::alloc::{self, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use safeverbs_sys as sys;

use crate::interval::IntervalMap;
use crate::mode::{Mode, Ro, Rw};
use crate::pd::{Access, PdInner, ProtectionDomain};
use crate::pod::{RdmaBuf, RdmaPod};
use crate::remote::RemoteRegion;
use crate::segment::{RawSegment, Segment};
use crate::{Error, Result};

/// Alignment of every region the library allocates (a page).
const PAGE: usize = 4096;

/// A typed memory region: memory the library allocated and registered with
/// the NIC, holding a `T` (or a `[T]`).
///
/// The region owns its memory and keeps its protection domain alive. Safe
/// code reaches the memory only through [`Segment`]s, which the region
/// hands out under the overlap rules, so memory the NIC may touch is never
/// visible as an ordinary reference at the same time. Dropping the region
/// handle frees nothing while a segment (posted or not) is alive.
pub struct MemoryRegion<T: ?Sized> {
    pub(crate) inner: Arc<RegionInner>,
    _type: PhantomData<fn(&T)>,
}

/// Who frees the memory of a region.
enum Backing {
    /// Allocated by the library with this layout.
    Owned(Layout),
    /// Brought by the user; this runs when the region is gone.
    External(Option<Box<dyn FnOnce() + Send + Sync>>),
}

pub(crate) struct RegionInner {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
    mr: NonNull<sys::ibv_mr>,
    pub(crate) lkey: u32,
    pub(crate) rkey: u32,
    pub(crate) access: Access,
    pub(crate) map: Mutex<IntervalMap>,
    backing: Backing,
    pub(crate) pd: Arc<PdInner>,
}

// SAFETY: the memory is reached only through raw pointers under the
// segment rules; the `ibv_mr` is only read; the map is behind a mutex; the
// external release closure is `Send + Sync`.
unsafe impl Send for RegionInner {}
// SAFETY: as above.
unsafe impl Sync for RegionInner {}

impl Drop for RegionInner {
    fn drop(&mut self) {
        // Deregister first: after this the NIC and every rkey holder lose
        // access, so the memory can be freed.
        // SAFETY: `mr` came from `ibv_reg_mr`; no segment is alive (each
        // holds an `Arc<RegionInner>`), so no work request uses it.
        let rc = unsafe { sys::ibv_dereg_mr(self.mr.as_ptr()) };
        if rc != 0 {
            // The NIC may still own the memory: leak it rather than free it.
            tracing::error!(rc, "ibv_dereg_mr failed; leaking the region's memory");
            return;
        }
        match &mut self.backing {
            // SAFETY: allocated in `allocate` with exactly this layout.
            Backing::Owned(layout) => unsafe { alloc::dealloc(self.ptr.as_ptr(), *layout) },
            Backing::External(release) => {
                if let Some(release) = release.take() {
                    release();
                }
            }
        }
    }
}

impl<T: ?Sized + RdmaBuf> fmt::Debug for MemoryRegion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRegion")
            .field("type", &std::any::type_name::<T>())
            .field("addr", &self.inner.ptr)
            .field("len", &self.inner.len)
            .field("rkey", &self.inner.rkey)
            .field("access", &self.inner.access)
            .finish()
    }
}

/// Allocates `bytes` zeroed bytes, page-aligned.
fn allocate(bytes: usize) -> Result<(NonNull<u8>, Layout)> {
    let layout = Layout::from_size_align(bytes.max(1), PAGE)
        .map_err(|_| Error::BadSelection(format!("a region of {bytes} bytes is too large")))?;
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc::alloc_zeroed(layout) };
    let ptr = NonNull::new(ptr).ok_or_else(|| Error::Verb {
        verb: "alloc",
        source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        hint: None,
    })?;
    Ok((ptr, layout))
}

impl ProtectionDomain {
    /// Registers a new region holding `value`.
    pub fn register<T: RdmaPod>(&self, value: T, access: Access) -> Result<MemoryRegion<T>> {
        let (ptr, layout) = allocate(size_of::<T>())?;
        // SAFETY: fresh allocation of at least `size_of::<T>()` bytes,
        // page-aligned (so aligned for `T`), not yet shared.
        unsafe { ptr.as_ptr().cast::<T>().write(value) };
        self.register_backing(ptr, size_of::<T>(), Backing::Owned(layout), access)
    }

    /// Registers a new region of `len` zeroed `T`s.
    pub fn register_zeroed<T: RdmaPod>(
        &self,
        len: usize,
        access: Access,
    ) -> Result<MemoryRegion<[T]>> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            Error::BadSelection(format!(
                "a region of {len} × {} bytes is too large",
                size_of::<T>()
            ))
        })?;
        let (ptr, layout) = allocate(bytes)?;
        self.register_backing(ptr, bytes, Backing::Owned(layout), access)
    }

    /// Registers a new region holding a copy of `values`.
    pub fn register_slice<T: RdmaPod>(
        &self,
        values: &[T],
        access: Access,
    ) -> Result<MemoryRegion<[T]>> {
        let region = self.register_zeroed::<T>(values.len(), access)?;
        // SAFETY: the region is fresh: no segment exists and the NIC was
        // given no work; it holds exactly `values.len()` elements.
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr(),
                region.inner.ptr.as_ptr().cast::<T>(),
                values.len(),
            )
        };
        Ok(region)
    }

    /// Registers memory the caller brings (hugepages, a mapped file, …) as
    /// a region of `bytes / size_of::<T>()` elements. `release` runs once
    /// the region is deregistered and no segment of it is left.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `bytes` bytes, aligned
    /// for `T`, and stay valid until `release` runs; nothing else may read
    /// or write that memory until then (the library hands it out under its
    /// own aliasing rules).
    pub unsafe fn register_external<T: RdmaPod>(
        &self,
        ptr: NonNull<u8>,
        bytes: usize,
        access: Access,
        release: impl FnOnce() + Send + Sync + 'static,
    ) -> Result<MemoryRegion<[T]>> {
        if ptr.as_ptr().align_offset(align_of::<T>()) != 0 {
            return Err(Error::BadSelection(
                "external memory is not aligned for its type".into(),
            ));
        }
        let bytes = bytes - bytes % size_of::<T>().max(1);
        self.register_backing(
            ptr,
            bytes,
            Backing::External(Some(Box::new(release))),
            access,
        )
    }

    fn register_backing<T: ?Sized + RdmaBuf>(
        &self,
        ptr: NonNull<u8>,
        len: usize,
        backing: Backing,
        access: Access,
    ) -> Result<MemoryRegion<T>> {
        // SAFETY: the PD is alive (we hold it); `ptr` is valid for `len`
        // bytes (owned allocation, or the caller's contract).
        let mr = unsafe {
            sys::ibv_reg_mr(
                self.inner.pd,
                ptr.as_ptr().cast(),
                len.max(1),
                access.0 as i32,
            )
        };
        let Some(mr) = NonNull::new(mr) else {
            let err = registration_error(len);
            if let Backing::Owned(layout) = backing {
                // SAFETY: allocated by `allocate` with this layout; never
                // registered, so the NIC never saw it.
                unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
            }
            return Err(err);
        };
        // SAFETY: `mr` is a live registration.
        let (lkey, rkey) = unsafe { ((*mr.as_ptr()).lkey, (*mr.as_ptr()).rkey) };
        Ok(MemoryRegion {
            inner: Arc::new(RegionInner {
                ptr,
                len,
                mr,
                lkey,
                rkey,
                access,
                map: Mutex::new(IntervalMap::new()),
                backing,
                pd: self.inner.clone(),
            }),
            _type: PhantomData,
        })
    }
}

/// The error of a failed `ibv_reg_mr`, naming the memlock limit when that
/// is the likely cause.
fn registration_error(bytes: usize) -> Error {
    let source = std::io::Error::last_os_error();
    if !matches!(source.raw_os_error(), Some(libc::ENOMEM | libc::EAGAIN)) {
        return Error::Verb {
            verb: "ibv_reg_mr",
            source,
            hint: None,
        };
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-parameter.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    let limit = match (rc, lim.rlim_cur) {
        (0, libc::RLIM_INFINITY) => "unlimited".to_owned(),
        (0, n) => format!("{n} bytes"),
        _ => "unknown".to_owned(),
    };
    Error::MemlockLimit {
        bytes,
        limit,
        source,
    }
}

impl<T: ?Sized + RdmaBuf> MemoryRegion<T> {
    /// Size of the region in bytes.
    pub fn len_bytes(&self) -> usize {
        self.inner.len
    }

    /// The access rights the region was registered with.
    pub fn access(&self) -> Access {
        self.inner.access
    }

    /// The key a peer needs to access the region (meaningful only when the
    /// region was registered with remote access).
    pub fn rkey(&self) -> u32 {
        self.inner.rkey
    }

    /// The descriptor a peer needs to RDMA into this region: address,
    /// length and rkey, typed. Send it with [`RemoteRegion::encode`].
    ///
    /// An rkey grants the whole region with the rights it was registered
    /// with; expose only regions meant for the peer.
    pub fn remote(&self) -> RemoteRegion<T> {
        RemoteRegion::new(
            self.inner.ptr.as_ptr() as u64,
            self.inner.len as u64,
            self.inner.rkey,
        )
    }

    /// Number of live segments (including posted ones).
    pub fn live_segments(&self) -> usize {
        self.inner.map.lock().map(|m| m.live()).unwrap_or(0)
    }

    /// A read-only view of bytes `range` of the region.
    pub fn bytes_ro(&self, range: Range<usize>) -> Result<Segment<[u8], Ro>> {
        carve(&self.inner, range)
    }

    /// A read-write view of bytes `range` of the region.
    ///
    /// Writing arbitrary bytes is sound: every bit pattern of an `RdmaPod`
    /// type is valid.
    pub fn bytes_rw(&self, range: Range<usize>) -> Result<Segment<[u8], Rw>> {
        carve(&self.inner, range)
    }
}

/// A segment over bytes `range` of `region`, viewed as `U`: bounds,
/// alignment and the overlap rules are checked.
pub(crate) fn carve<U: ?Sized + RdmaBuf, M: Mode>(
    region: &Arc<RegionInner>,
    range: Range<usize>,
) -> Result<Segment<U, M>> {
    let len = region.len;
    if range.start > range.end || range.end > len {
        return Err(Error::OutOfBounds {
            start: range.start,
            end: range.end,
            len,
        });
    }
    let aligned = (region.ptr.as_ptr() as usize + range.start) % U::ALIGN == 0;
    if !aligned || (range.end - range.start) % U::UNIT.max(1) != 0 {
        return Err(Error::BadSelection(format!(
            "bytes {}..{} are not a whole, aligned run of {}",
            range.start,
            range.end,
            std::any::type_name::<U>()
        )));
    }
    RawSegment::acquire(region.clone(), range, M::ACCESS).map(Segment::from_raw)
}

impl<T: RdmaPod> MemoryRegion<T> {
    /// A read-only segment over the whole value. Many may exist at once.
    pub fn read_only(&self) -> Result<Segment<T, Ro>> {
        carve(&self.inner, 0..size_of::<T>())
    }

    /// A read-write segment over the whole value; refused while any other
    /// segment of the region is alive.
    pub fn read_write(&self) -> Result<Segment<T, Rw>> {
        carve(&self.inner, 0..size_of::<T>())
    }

    /// A read-write segment over the whole value, without the overlap check.
    ///
    /// # Safety
    /// No other segment over these bytes may be alive, or be made, while
    /// this one lives: the NIC could write bytes another segment reads.
    pub unsafe fn read_write_unchecked(&self) -> Segment<T, Rw> {
        Segment::from_raw(RawSegment::unchecked(self.inner.clone(), 0..size_of::<T>()))
    }
}

impl<T: RdmaPod> MemoryRegion<[T]> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.inner.len / size_of::<T>().max(1)
    }

    /// True when the region holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn byte_range(&self, range: Range<usize>) -> Result<Range<usize>> {
        let n = size_of::<T>();
        match (range.start.checked_mul(n), range.end.checked_mul(n)) {
            (Some(s), Some(e)) if range.start <= range.end && range.end <= self.len() => Ok(s..e),
            _ => Err(Error::OutOfBounds {
                start: range.start.saturating_mul(n),
                end: range.end.saturating_mul(n),
                len: self.inner.len,
            }),
        }
    }

    /// A read-only segment over elements `range`.
    pub fn slice_ro(&self, range: Range<usize>) -> Result<Segment<[T], Ro>> {
        carve(&self.inner, self.byte_range(range)?)
    }

    /// A read-write segment over elements `range`.
    pub fn slice_rw(&self, range: Range<usize>) -> Result<Segment<[T], Rw>> {
        carve(&self.inner, self.byte_range(range)?)
    }

    /// A read-only segment over element `index`.
    pub fn elem_ro(&self, index: usize) -> Result<Segment<T, Ro>> {
        carve(
            &self.inner,
            self.byte_range(index..index.saturating_add(1))?,
        )
    }

    /// A read-write segment over element `index`.
    pub fn elem_rw(&self, index: usize) -> Result<Segment<T, Rw>> {
        carve(
            &self.inner,
            self.byte_range(index..index.saturating_add(1))?,
        )
    }

    /// A read-write segment over elements `range`, without the overlap
    /// check (bounds are still checked).
    ///
    /// # Safety
    /// No other segment over these elements may be alive, or be made,
    /// while this one lives.
    pub unsafe fn slice_rw_unchecked(&self, range: Range<usize>) -> Result<Segment<[T], Rw>> {
        let bytes = self.byte_range(range)?;
        Ok(Segment::from_raw(RawSegment::unchecked(
            self.inner.clone(),
            bytes,
        )))
    }
}

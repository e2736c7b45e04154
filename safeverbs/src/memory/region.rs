//! Registered memory, owned by the library.

use std::alloc::{self, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use safeverbs_sys as sys;

use crate::memory::interval::IntervalMap;
use crate::memory::mode::{Mode, Ro, Rw};
use crate::memory::pd::{Access, PdInner, ProtectionDomain};
use crate::memory::pod::{RdmaBuf, RdmaPod};
use crate::memory::remote::RemoteRegion;
use crate::memory::segment::{shared, RawSegment, Segment};
use crate::{Error, Result};

/// The least alignment of a region the library allocates (a page); more
/// when the type asks for more.
const PAGE: usize = 4096;

/// A typed memory region: memory the library allocated and registered with
/// the NIC, holding a `T` (or a `[T]`).
///
/// The region owns its memory and keeps its protection domain alive. Safe
/// code reaches the memory only through [`Segment`]s, which the region
/// hands out under the overlap rules, so memory the NIC may touch is never
/// visible as an ordinary reference at the same time. Dropping the region
/// handle frees nothing while a segment (posted or not) is alive.
///
/// Memory the library allocates is aligned for `T` and to at least a page
/// (4096 bytes): more when `T` asks for more (`#[repr(align(8192))]`).
///
/// # Field privacy is not access control
///
/// A private field of a derived `T` cannot be *named* outside its module
/// (`region.fields()` has no public member for it), but its bytes are the
/// region's: whoever holds the region reads and writes them through the
/// whole value ([`read_only`](Self::read_only)) or a byte range
/// ([`bytes_ro`](Self::bytes_ro), [`bytes_rw`](Self::bytes_rw)), and a
/// peer given the rkey reaches every byte the region was registered with.
/// See the derive's documentation ("What a private field does and does not
/// hide").
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
        let rc = unsafe { self.pd.device.inner.provider.dereg_mr(self.mr.as_ptr()) };
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

/// The layout of a library-owned region of `count` values of `T`: their
/// size (at least one byte, as the allocator requires), aligned for `T` and
/// to at least a page.
fn region_layout<T: RdmaPod>(count: usize) -> Result<Layout> {
    let too_large = || Error::RegionTooLarge {
        count,
        elem_size: size_of::<T>(),
    };
    let bytes = count.checked_mul(size_of::<T>()).ok_or_else(too_large)?;
    Layout::from_size_align(bytes.max(1), PAGE.max(align_of::<T>())).map_err(|_| too_large())
}

/// The one allocation of library-owned regions: zeroed memory for `count`
/// values of `T`, laid out by [`region_layout`], with the number of bytes
/// the values take.
fn allocate<T: RdmaPod>(count: usize) -> Result<(NonNull<u8>, Layout, usize)> {
    let layout = region_layout::<T>(count)?;
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc::alloc_zeroed(layout) };
    let ptr = NonNull::new(ptr).ok_or(Error::OutOfMemory {
        bytes: layout.size(),
    })?;
    // `region_layout` computed `count * size_of::<T>()` without overflow.
    Ok((ptr, layout, count * size_of::<T>()))
}

impl ProtectionDomain {
    /// Registers a new region holding `value`.
    ///
    /// The region is aligned for `T` and to at least a page, so a type
    /// with `#[repr(align(N))]` above a page gets its alignment.
    pub fn register<T: RdmaPod>(&self, value: T, access: Access) -> Result<MemoryRegion<T>> {
        let (ptr, layout, bytes) = allocate::<T>(1)?;
        // SAFETY: a fresh allocation of one `T`, aligned for it, that
        // nothing else has seen: no segment, no registration yet.
        unsafe { shared::write(ptr.as_ptr().cast::<T>(), &value) };
        self.register_backing(ptr, bytes, Backing::Owned(layout), access)
    }

    /// Registers a new region of `len` zeroed `T`s, aligned as in
    /// [`register`](Self::register).
    pub fn register_zeroed<T: RdmaPod>(
        &self,
        len: usize,
        access: Access,
    ) -> Result<MemoryRegion<[T]>> {
        let (ptr, layout, bytes) = allocate::<T>(len)?;
        self.register_backing(ptr, bytes, Backing::Owned(layout), access)
    }

    /// Registers a new region holding a copy of `values`, aligned as in
    /// [`register`](Self::register).
    pub fn register_slice<T: RdmaPod>(
        &self,
        values: &[T],
        access: Access,
    ) -> Result<MemoryRegion<[T]>> {
        let (ptr, layout, bytes) = allocate::<T>(values.len())?;
        // SAFETY: a fresh allocation of `values.len()` elements, aligned
        // for `T`, that nothing else has seen: no segment, no registration
        // yet.
        unsafe { shared::copy_in(ptr.as_ptr().cast::<T>(), values) };
        self.register_backing(ptr, bytes, Backing::Owned(layout), access)
    }

    /// Registers memory the caller brings (hugepages, a mapped file, …) as
    /// a region of `bytes / size_of::<T>()` elements (a remainder shorter
    /// than an element is left out). `release` runs once the region is
    /// deregistered and no segment of it is left.
    ///
    /// Fails with [`Error::EmptyRegion`] when `bytes` holds no whole `T`
    /// (in particular for 0 bytes): `ibv_reg_mr` cannot register nothing,
    /// and registering a byte the caller did not give would let whoever
    /// holds the rkey write it; with [`Error::ExternalUnaligned`] when `ptr`
    /// is not aligned for `T`. On any error, `release` is dropped without
    /// being called and the memory stays the caller's.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `bytes` bytes, and stay
    /// valid until `release` runs; nothing else may read
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
            return Err(Error::ExternalUnaligned {
                addr: ptr.as_ptr() as usize,
                ty: std::any::type_name::<T>(),
                align: align_of::<T>(),
            });
        }
        let len = external_len::<T>(bytes)?;
        self.register_backing(ptr, len, Backing::External(Some(Box::new(release))), access)
    }

    fn register_backing<T: ?Sized + RdmaBuf>(
        &self,
        ptr: NonNull<u8>,
        len: usize,
        backing: Backing,
        access: Access,
    ) -> Result<MemoryRegion<T>> {
        // `ibv_reg_mr` needs at least one byte. An owned allocation has at
        // least one (`region_layout`), even for no elements; external
        // memory of no whole element never gets here (`external_len`).
        let reg_len = len.max(1);
        // SAFETY: the PD is alive (we hold it); `ptr` is valid for
        // `reg_len` bytes (the owned allocation, or the caller's contract
        // with `len >= 1`).
        let mr = unsafe {
            let provider = &self.inner.device.inner.provider;
            provider.reg_mr(self.inner.pd, ptr.as_ptr().cast(), reg_len, access.0 as i32)
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

/// How many of the caller's `bytes` an external region of `T`s covers: the
/// whole elements, and never none.
fn external_len<T: RdmaPod>(bytes: usize) -> Result<usize> {
    let len = bytes - bytes % size_of::<T>().max(1);
    if len == 0 {
        return Err(Error::EmptyRegion {
            bytes,
            elem_size: size_of::<T>(),
        });
    }
    Ok(len)
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
        crate::sync::lock(&self.inner.map).live()
    }

    /// A read-only view of bytes `range` of the region.
    ///
    /// Any bytes, private fields of `T` included: privacy governs names,
    /// not bytes (see [above](MemoryRegion#field-privacy-is-not-access-control)).
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
        return Err(Error::Unaligned {
            start: range.start,
            end: range.end,
            ty: std::any::type_name::<U>(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Aligned above a page, as `#[repr(C, align(8192))]` makes a type.
    #[derive(Clone, Copy, PartialEq, Debug)]
    #[repr(C, align(8192))]
    struct AbovePage([u64; 1024]);

    // SAFETY: `Copy`, one array of `u64` filling the whole 8192 bytes (no
    // padding), every bit pattern valid, no pointers.
    unsafe impl RdmaPod for AbovePage {
        const FINGERPRINT: u64 = 1;
    }

    fn value(seed: u64) -> AbovePage {
        let mut words = [0u64; 1024];
        for (i, w) in words.iter_mut().enumerate() {
            *w = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
        }
        AbovePage(words)
    }

    /// An allocation the allocator refuses is `OutOfMemory` naming its
    /// size, not a verb's error. (Not under Miri, which stops the program
    /// at an allocation this large instead of returning null.) The result
    /// goes through `black_box`: an optimized build may otherwise drop an
    /// allocation nobody uses, and take it as successful.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_region_the_allocator_refuses_is_out_of_memory() {
        let count = (isize::MAX as usize / 2) & !(PAGE - 1);
        match std::hint::black_box(allocate::<u8>(count)) {
            Err(Error::OutOfMemory { bytes }) => assert_eq!(bytes, count),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("the allocator gave {count} bytes"),
        }
    }

    #[test]
    fn regions_are_aligned_for_their_type_and_to_a_page() {
        let layout = |align: usize, size: usize| Layout::from_size_align(size, align).ok();
        assert_eq!(region_layout::<u8>(10).ok(), layout(PAGE, 10));
        assert_eq!(region_layout::<u64>(0).ok(), layout(PAGE, 1));
        assert_eq!(region_layout::<AbovePage>(1).ok(), layout(8192, 8192));
        assert_eq!(region_layout::<AbovePage>(3).ok(), layout(8192, 3 * 8192));
        assert!(matches!(
            region_layout::<AbovePage>(usize::MAX / 2),
            Err(Error::RegionTooLarge { count, elem_size: 8192 }) if count == usize::MAX / 2
        ));
    }

    /// The allocation itself, with the value written and read back as
    /// `register` and `register_slice` do (no registration: runs on the
    /// host and under Miri, which checks the alignment of every access).
    #[test]
    fn allocations_above_a_page_hold_their_values() {
        let values = [value(1), value(2), value(3)];
        let (ptr, layout, bytes) = allocate::<AbovePage>(values.len()).expect("allocate");
        assert_eq!(
            ptr.as_ptr() as usize % 8192,
            0,
            "{ptr:p} is not 8192-aligned"
        );
        assert_eq!((bytes, layout.size()), (3 * 8192, 3 * 8192));
        let base = ptr.as_ptr().cast::<AbovePage>();
        // SAFETY: a fresh allocation of three `AbovePage`s, aligned for
        // them (asserted above), that nothing else has seen.
        unsafe {
            assert_eq!(shared::read(base.add(1)), AbovePage([0; 1024]));
            shared::copy_in(base, &values);
            assert_eq!(shared::read(base.add(2)), values[2]);
            shared::write(base, &value(9));
            assert_eq!(shared::read(base), value(9));
            alloc::dealloc(ptr.as_ptr(), layout);
        }
    }

    #[test]
    fn external_memory_of_no_whole_element_is_refused() {
        for (bytes, elem_size) in [(0, 1), (0, 4), (3, 4), (8191, 8192)] {
            let got = match elem_size {
                1 => external_len::<u8>(bytes),
                4 => external_len::<u32>(bytes),
                _ => external_len::<AbovePage>(bytes),
            };
            assert!(
                matches!(got, Err(Error::EmptyRegion { bytes: b, elem_size: e }) if b == bytes && e == elem_size),
                "{bytes} bytes of {elem_size}-byte elements: {got:?}"
            );
        }
        assert_eq!(external_len::<u8>(1).ok(), Some(1));
        assert_eq!(external_len::<u32>(9).ok(), Some(8));
        let msg = external_len::<u32>(0).err().map(|e| e.to_string());
        assert_eq!(
            msg.as_deref(),
            Some(
                "cannot register 0 bytes as a region of 4-byte elements: they hold no whole \
                 element; register at least 4 bytes"
            )
        );
    }
}

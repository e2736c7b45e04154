//! Which types may live in registered memory.

use core::mem::{align_of, size_of};

/// A plain-old-data type that may be placed in memory the NIC reads and
/// writes.
///
/// The NIC (and, for remotely accessible memory, a peer) writes raw bytes
/// into registered memory, so a type may go there only when every bit
/// pattern of its size is a valid value and it holds no pointers: integers,
/// floats, arrays of them, and `#[repr(C)]` structs of them with no padding.
/// `bool`, `char`, references, pointers and enums with niches do not qualify.
///
/// # Safety
/// Implement this only for types that are `Copy`, have no padding bytes,
/// for which every bit pattern is a valid value, and that contain no
/// pointers or references. Derive it (`#[derive(RdmaPod)]`) rather than
/// implementing it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be placed in registered memory: it is not `RdmaPod`",
    label = "not certified as plain old data",
    note = "registered memory holds only types whose every bit pattern is valid and that hold no \
            pointers: integers, floats, arrays of them, and `#[repr(C)]` structs of them \
            without padding (`#[derive(RdmaPod)]`)"
)]
pub unsafe trait RdmaPod: Copy + Send + Sync + 'static {
    /// The layout fingerprint of the type (see [`fingerprint`](crate::fingerprint)).
    const FINGERPRINT: u64;

    /// The all-zero value, which is valid for every `RdmaPod` type.
    fn zeroed() -> Self {
        // SAFETY: every bit pattern, so also all zeroes, is a valid `Self`
        // (the trait's contract).
        unsafe { core::mem::zeroed() }
    }
}

macro_rules! impl_pod {
    ($($t:ty),*) => {$(
        // SAFETY: primitive integers and floats are `Copy`, have no padding,
        // accept every bit pattern and hold no pointers.
        unsafe impl RdmaPod for $t {
            const FINGERPRINT: u64 =
                crate::fingerprint::primitive(stringify!($t), size_of::<$t>());
        }
    )*};
}
impl_pod!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize, f32, f64);

// SAFETY: an array of `RdmaPod` elements has no padding between elements
// (size is a multiple of align), accepts every bit pattern element-wise and
// holds no pointers.
unsafe impl<T: RdmaPod, const N: usize> RdmaPod for [T; N] {
    const FINGERPRINT: u64 = crate::fingerprint::array(T::FINGERPRINT, N);
}

mod sealed {
    pub trait Sealed {}
    impl<T: super::RdmaPod> Sealed for T {}
    impl<T: super::RdmaPod> Sealed for [T] {}
}

/// What a [`MemoryRegion`](crate::MemoryRegion) or a
/// [`Segment`](crate::Segment) can hold: one `RdmaPod` value or a slice of
/// them. Sealed; implemented for `T: RdmaPod` and `[T]`.
///
/// # Safety
/// Sealed: only this crate implements it, for `T` and `[T]` with
/// `T: RdmaPod`.
pub unsafe trait RdmaBuf: sealed::Sealed + Send + Sync + 'static {
    /// Alignment the memory must have.
    #[doc(hidden)]
    const ALIGN: usize;
    /// Size in bytes of one unit (the value, or one slice element).
    #[doc(hidden)]
    const UNIT: usize;
    /// True for a single value, false for a slice.
    #[doc(hidden)]
    const SIZED: bool;
    /// A pointer to `bytes` bytes at `ptr` viewed as `Self`.
    #[doc(hidden)]
    fn from_raw(ptr: *mut u8, bytes: usize) -> *mut Self;
}

// SAFETY: the pointer is only a cast; callers give `size_of::<T>()` bytes.
unsafe impl<T: RdmaPod> RdmaBuf for T {
    const ALIGN: usize = align_of::<T>();
    const UNIT: usize = size_of::<T>();
    const SIZED: bool = true;
    fn from_raw(ptr: *mut u8, _bytes: usize) -> *mut Self {
        ptr.cast()
    }
}

// SAFETY: the slice length is `bytes / size_of::<T>()`, never more than
// the bytes given.
unsafe impl<T: RdmaPod> RdmaBuf for [T] {
    const ALIGN: usize = align_of::<T>();
    const UNIT: usize = size_of::<T>();
    const SIZED: bool = false;
    fn from_raw(ptr: *mut u8, bytes: usize) -> *mut Self {
        let n = if size_of::<T>() == 0 {
            0
        } else {
            bytes / size_of::<T>()
        };
        core::ptr::slice_from_raw_parts_mut(ptr.cast::<T>(), n)
    }
}

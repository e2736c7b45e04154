//! The two kinds of segment: shared read-only views and exclusive
//! read-write ones.

use crate::interval;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Ro {}
    impl Sealed for super::Rw {}
}

/// Read-only: the NIC may read the bytes (send, RDMA WRITE source); many
/// read-only segments may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ro {}

/// Read-write: the NIC may also write the bytes (receive, RDMA READ
/// target); overlaps no other live segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rw {}

/// [`Ro`] or [`Rw`]. Sealed.
pub trait Mode: sealed::Sealed + Send + Sync + 'static {
    #[doc(hidden)]
    const ACCESS: interval::Access;
}
impl Mode for Ro {
    const ACCESS: interval::Access = interval::Access::Shared;
}
/// Modes whose segments may be written (receive buffers, RDMA READ
/// targets, `write`/`fill`/`copy_from`/`get_mut`): only [`Rw`].
#[diagnostic::on_unimplemented(
    message = "a read-only segment cannot be written: other segments may share its bytes, and the NIC may be sending them",
    label = "this is a `Segment<_, {Self}>`",
    note = "take a read-write segment instead: `region.read_write()`, `slice_rw(..)`, `bytes_rw(..)`, `elem_rw(..)` or `field.read_write()`"
)]
pub trait Writable: Mode {}
impl Writable for Rw {}
impl Mode for Rw {
    const ACCESS: interval::Access = interval::Access::Exclusive;
}

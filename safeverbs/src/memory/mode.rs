//! The two kinds of segment: shared read-only views and exclusive
//! read-write ones.

mod sealed {
    use crate::memory::interval::Access;

    /// Seals [`Mode`](super::Mode) and carries what the library needs of it.
    pub trait Sealed {
        /// How a segment of this mode shares its bytes.
        const ACCESS: Access;
    }
    impl Sealed for super::Ro {
        const ACCESS: Access = Access::Shared;
    }
    impl Sealed for super::Rw {
        const ACCESS: Access = Access::Exclusive;
    }
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
pub trait Mode: sealed::Sealed + Send + Sync + 'static {}
impl Mode for Ro {}
/// Modes whose segments may be written (receive buffers, RDMA READ
/// targets, `write`/`fill`/`copy_from`/`get_mut`): only [`Rw`].
#[diagnostic::on_unimplemented(
    message = "a read-only segment cannot be written: other segments may share its bytes, and the NIC may be sending them",
    label = "this is a `Segment<_, {Self}>`",
    note = "take a read-write segment instead: `region.read_write()`, `slice_rw(..)`, `bytes_rw(..)`, `elem_rw(..)` or `field.read_write()`"
)]
pub trait Writable: Mode {}
impl Writable for Rw {}
impl Mode for Rw {}

//! Memory: what the NIC may read and write, and who may touch it meanwhile.
//!
//! A protection domain ([`pd`]) registers [`region`]s of [`pod`] values; a
//! region is carved into [`segment`]s (read-only or read-write, the
//! [`mode`]), whose overlaps the region's [`interval`] map refuses; named
//! [`fields`] are segments of one field; a peer's memory is a [`remote`]
//! descriptor.

pub(crate) mod fields;
pub(crate) mod interval;
pub(crate) mod mode;
pub(crate) mod pd;
pub(crate) mod pod;
pub(crate) mod region;
pub(crate) mod remote;
pub(crate) mod segment;

//! Protection domains and access flags.

use std::fmt;
use std::sync::Arc;

use safeverbs_sys as sys;

use crate::device::Device;
use crate::{Error, Result};

/// What a memory region lets the NIC do with it. Local writes (receives and
/// RDMA READ targets) are always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access(pub(crate) u32);

impl Access {
    /// Local access only: the memory can be sent from, received into and be
    /// the target of our RDMA READs; no peer can touch it.
    pub const fn local() -> Self {
        Self(sys::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0)
    }
    /// Peers may RDMA WRITE into the memory (given its rkey).
    pub const fn remote_write() -> Self {
        Self::local().with(sys::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE)
    }
    /// Peers may RDMA READ the memory.
    pub const fn remote_read() -> Self {
        Self::local().with(sys::ibv_access_flags::IBV_ACCESS_REMOTE_READ)
    }
    /// Peers may read, write and run atomics on the memory.
    pub const fn remote_all() -> Self {
        Self::remote_write()
            .with(sys::ibv_access_flags::IBV_ACCESS_REMOTE_READ)
            .with(sys::ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC)
    }
    /// Both sets of rights.
    pub const fn union(self, other: Access) -> Self {
        Self(self.0 | other.0)
    }
    const fn with(self, flag: sys::ibv_access_flags) -> Self {
        Self(self.0 | flag.0)
    }
    /// True when a peer may change the memory (remote write or atomics):
    /// such memory is read by copy, never through a reference.
    pub const fn is_remotely_writable(self) -> bool {
        self.0
            & (sys::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE.0
                | sys::ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC.0)
            != 0
    }
    /// True when a peer may access the memory at all.
    pub const fn is_remote(self) -> bool {
        self.is_remotely_writable() || self.0 & sys::ibv_access_flags::IBV_ACCESS_REMOTE_READ.0 != 0
    }
}

/// A protection domain: the scope in which memory regions and queue pairs
/// may be used together. Cheap to clone.
#[derive(Clone)]
pub struct ProtectionDomain {
    pub(crate) inner: Arc<PdInner>,
}

pub(crate) struct PdInner {
    pub(crate) pd: *mut sys::ibv_pd,
    pub(crate) device: Device,
}

// SAFETY: an `ibv_pd` may be used from any thread; it is only read here.
unsafe impl Send for PdInner {}
// SAFETY: as above.
unsafe impl Sync for PdInner {}

impl Drop for PdInner {
    fn drop(&mut self) {
        // SAFETY: `pd` came from `ibv_alloc_pd`; regions and queue pairs
        // hold an `Arc<PdInner>`, so none is left.
        let rc = unsafe { self.device.inner.provider.dealloc_pd(self.pd) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_dealloc_pd failed");
        }
    }
}

impl fmt::Debug for ProtectionDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectionDomain")
            .field("device", &self.inner.device.name())
            .finish()
    }
}

impl Device {
    /// Allocates a protection domain.
    pub fn alloc_pd(&self) -> Result<ProtectionDomain> {
        // SAFETY: the context is open for as long as `self` lives.
        let pd = unsafe { self.inner.provider.alloc_pd(self.inner.ctx) };
        if pd.is_null() {
            return Err(Error::last_os("ibv_alloc_pd"));
        }
        Ok(ProtectionDomain {
            inner: Arc::new(PdInner {
                pd,
                device: self.clone(),
            }),
        })
    }
}

impl ProtectionDomain {
    /// The device this domain belongs to.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }
}

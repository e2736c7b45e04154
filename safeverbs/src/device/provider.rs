//! Who carries out the control-path verbs of a device: libibverbs, or
//! (feature `model`) the model device of [`crate::model`].
//!
//! Only creating, changing and destroying objects is dispatched here, once
//! per call. The data path (post, poll, arm) is not: `safeverbs-sys` calls
//! it through the context's provider table (`ibv_context::ops`), which the
//! model fills with its own functions, so posting costs the same with or
//! without the feature.
//!
//! Each function has the contract of the libibverbs function of the same
//! name, including `errno` on a null result; the model keeps it too.

use std::ffi::{c_int, c_void};

use safeverbs_sys as sys;

/// The provider of one device context.
#[derive(Clone)]
pub(crate) enum Provider {
    /// libibverbs and the kernel.
    Verbs,
    /// The model device (its fabric is kept by the model's own objects).
    #[cfg(feature = "model")]
    Model(crate::model::Model),
}

#[cfg(feature = "model")]
use crate::model::abi as model;

/// One arm per provider: `dispatch!(self, ibv_alloc_pd | alloc_pd(ctx))` calls
/// `sys::ibv_alloc_pd(ctx)` or `model::alloc_pd(ctx)`.
macro_rules! dispatch {
    ($provider:expr, $verbs:ident | $verb:ident($($arg:expr),*)) => {
        match $provider {
            Provider::Verbs => sys::$verbs($($arg),*),
            #[cfg(feature = "model")]
            Provider::Model(_) => model::$verb($($arg),*),
        }
    };
}

impl Provider {
    /// Whether a new completion channel's descriptor blocks (libibverbs':
    /// yes; the model's is created non-blocking).
    pub(crate) fn channels_block(&self) -> bool {
        matches!(self, Provider::Verbs)
    }
}

// Each function below: # Safety — the contract of `ibv_<name>` in
// libibverbs (live objects of this provider's context, valid pointers).
#[allow(clippy::missing_safety_doc)]
impl Provider {
    pub(crate) unsafe fn close_device(&self, ctx: *mut sys::ibv_context) -> c_int {
        // SAFETY: the caller keeps `ibv_close_device`'s contract.
        unsafe { dispatch!(self, ibv_close_device | close_device(ctx)) }
    }

    pub(crate) unsafe fn alloc_pd(&self, ctx: *mut sys::ibv_context) -> *mut sys::ibv_pd {
        // SAFETY: the caller keeps `ibv_alloc_pd`'s contract.
        unsafe { dispatch!(self, ibv_alloc_pd | alloc_pd(ctx)) }
    }

    pub(crate) unsafe fn dealloc_pd(&self, pd: *mut sys::ibv_pd) -> c_int {
        // SAFETY: the caller keeps `ibv_dealloc_pd`'s contract.
        unsafe { dispatch!(self, ibv_dealloc_pd | dealloc_pd(pd)) }
    }

    pub(crate) unsafe fn reg_mr(
        &self,
        pd: *mut sys::ibv_pd,
        addr: *mut c_void,
        len: usize,
        access: c_int,
    ) -> *mut sys::ibv_mr {
        // SAFETY: the caller keeps `ibv_reg_mr`'s contract.
        unsafe { dispatch!(self, ibv_reg_mr | reg_mr(pd, addr, len, access)) }
    }

    pub(crate) unsafe fn dereg_mr(&self, mr: *mut sys::ibv_mr) -> c_int {
        // SAFETY: the caller keeps `ibv_dereg_mr`'s contract.
        unsafe { dispatch!(self, ibv_dereg_mr | dereg_mr(mr)) }
    }

    pub(crate) unsafe fn create_cq(
        &self,
        ctx: *mut sys::ibv_context,
        cqe: c_int,
        cq_context: *mut c_void,
        channel: *mut sys::ibv_comp_channel,
        vector: c_int,
    ) -> *mut sys::ibv_cq {
        // SAFETY: the caller keeps `ibv_create_cq`'s contract.
        unsafe {
            dispatch!(
                self,
                ibv_create_cq | create_cq(ctx, cqe, cq_context, channel, vector)
            )
        }
    }

    pub(crate) unsafe fn destroy_cq(&self, cq: *mut sys::ibv_cq) -> c_int {
        // SAFETY: the caller keeps `ibv_destroy_cq`'s contract.
        unsafe { dispatch!(self, ibv_destroy_cq | destroy_cq(cq)) }
    }

    pub(crate) unsafe fn create_qp(
        &self,
        pd: *mut sys::ibv_pd,
        init: *mut sys::ibv_qp_init_attr,
    ) -> *mut sys::ibv_qp {
        // SAFETY: the caller keeps `ibv_create_qp`'s contract.
        unsafe { dispatch!(self, ibv_create_qp | create_qp(pd, init)) }
    }

    pub(crate) unsafe fn modify_qp(
        &self,
        qp: *mut sys::ibv_qp,
        attr: *mut sys::ibv_qp_attr,
        mask: c_int,
    ) -> c_int {
        // SAFETY: the caller keeps `ibv_modify_qp`'s contract.
        unsafe { dispatch!(self, ibv_modify_qp | modify_qp(qp, attr, mask)) }
    }

    pub(crate) unsafe fn destroy_qp(&self, qp: *mut sys::ibv_qp) -> c_int {
        // SAFETY: the caller keeps `ibv_destroy_qp`'s contract.
        unsafe { dispatch!(self, ibv_destroy_qp | destroy_qp(qp)) }
    }

    pub(crate) unsafe fn create_comp_channel(
        &self,
        ctx: *mut sys::ibv_context,
    ) -> *mut sys::ibv_comp_channel {
        // SAFETY: the caller keeps `ibv_create_comp_channel`'s contract.
        unsafe { dispatch!(self, ibv_create_comp_channel | create_comp_channel(ctx)) }
    }

    pub(crate) unsafe fn destroy_comp_channel(&self, ch: *mut sys::ibv_comp_channel) -> c_int {
        // SAFETY: the caller keeps `ibv_destroy_comp_channel`'s contract.
        unsafe { dispatch!(self, ibv_destroy_comp_channel | destroy_comp_channel(ch)) }
    }

    pub(crate) unsafe fn get_cq_event(
        &self,
        ch: *mut sys::ibv_comp_channel,
        cq: *mut *mut sys::ibv_cq,
        cq_context: *mut *mut c_void,
    ) -> c_int {
        // SAFETY: the caller keeps `ibv_get_cq_event`'s contract.
        unsafe { dispatch!(self, ibv_get_cq_event | get_cq_event(ch, cq, cq_context)) }
    }

    pub(crate) unsafe fn ack_cq_events(&self, cq: *mut sys::ibv_cq, n: u32) {
        // SAFETY: the caller keeps `ibv_ack_cq_events`'s contract.
        unsafe { dispatch!(self, ibv_ack_cq_events | ack_cq_events(cq, n)) }
    }
}

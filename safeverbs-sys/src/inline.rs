//! The verbs that `<infiniband/verbs.h>` defines as `static inline`
//! functions or macros, which bindgen cannot bind.
//!
//! Each one does what the C inline function does: the data-path verbs jump
//! straight through the provider's function table in `ibv_context::ops`, the
//! extended verbs look their entry up in `struct verbs_context` and fall back
//! to the compatibility symbol when the provider is too old.

use core::ffi::c_int;
use core::mem::{offset_of, size_of};
use core::ptr;

use crate::{
    _compat_ibv_port_attr, ibv_context, ibv_cq, ibv_gid_entry, ibv_port_attr, ibv_qp, ibv_recv_wr,
    ibv_send_wr, ibv_wc, verbs_context,
};

/// The value of `ibv_context::abi_compat` for contexts that are embedded in
/// a `struct verbs_context` (C's `__VERBS_ABI_IS_EXTENDED`).
pub const VERBS_ABI_IS_EXTENDED: *mut core::ffi::c_void = usize::MAX as *mut _;

/// Returned by the data-path wrappers when the provider left the entry of
/// its function table empty (C would jump to a null pointer).
const ENOSYS: c_int = 38;

extern "C" {
    /// The exported `ibv_query_port` symbol, which takes the pre-rdma-core
    /// port attributes; `verbs.h` hides it behind a macro.
    #[link_name = "ibv_query_port"]
    fn compat_ibv_query_port(
        context: *mut ibv_context,
        port_num: u8,
        port_attr: *mut _compat_ibv_port_attr,
    ) -> c_int;
}

/// Posts a chain of send work requests (`ibv_post_send(3)`).
///
/// Returns 0 or an errno value; on failure `*bad_wr` points at the first
/// request that was not posted.
///
/// # Safety
/// `qp` must point to a live queue pair created by libibverbs; `wr` must
/// point to a valid, null-terminated chain of work requests whose scatter
/// lists describe memory registered on the QP's protection domain that stays
/// valid until the requests complete; `bad_wr` must be valid for a write.
#[inline(always)]
pub unsafe fn ibv_post_send(
    qp: *mut ibv_qp,
    wr: *mut ibv_send_wr,
    bad_wr: *mut *mut ibv_send_wr,
) -> c_int {
    // SAFETY: `qp` is a live QP (caller), so its `context` points to the live
    // device context whose `ops` table the provider filled in.
    let op = unsafe { (*(*qp).context).ops.post_send };
    match op {
        // SAFETY: the provider's entry has the C signature of post_send; the
        // arguments satisfy its contract by this function's contract.
        Some(post) => unsafe { post(qp, wr, bad_wr) },
        None => ENOSYS,
    }
}

/// Posts a chain of receive work requests (`ibv_post_recv(3)`).
///
/// # Safety
/// As for [`ibv_post_send`], with a chain of receive requests whose buffers
/// stay valid and unaliased until the requests complete.
#[inline(always)]
pub unsafe fn ibv_post_recv(
    qp: *mut ibv_qp,
    wr: *mut ibv_recv_wr,
    bad_wr: *mut *mut ibv_recv_wr,
) -> c_int {
    // SAFETY: `qp` is a live QP (caller), so its context and ops are valid.
    let op = unsafe { (*(*qp).context).ops.post_recv };
    match op {
        // SAFETY: provider entry with post_recv's signature; caller's contract.
        Some(post) => unsafe { post(qp, wr, bad_wr) },
        None => ENOSYS,
    }
}

/// Polls up to `num_entries` completions into `wc` (`ibv_poll_cq(3)`).
///
/// Returns the number of completions written (0 when the CQ is empty) or a
/// negative value on error.
///
/// # Safety
/// `cq` must point to a live completion queue; `wc` must be valid for writes
/// of `num_entries` elements.
#[inline(always)]
pub unsafe fn ibv_poll_cq(cq: *mut ibv_cq, num_entries: c_int, wc: *mut ibv_wc) -> c_int {
    // SAFETY: `cq` is a live CQ (caller), so its context and ops are valid.
    let op = unsafe { (*(*cq).context).ops.poll_cq };
    match op {
        // SAFETY: provider entry with poll_cq's signature; caller's contract.
        Some(poll) => unsafe { poll(cq, num_entries, wc) },
        None => -ENOSYS,
    }
}

/// Arms the completion queue's notification (`ibv_req_notify_cq(3)`): the
/// next completion (or next solicited one) raises an event on its channel.
///
/// # Safety
/// `cq` must point to a live completion queue.
#[inline(always)]
pub unsafe fn ibv_req_notify_cq(cq: *mut ibv_cq, solicited_only: c_int) -> c_int {
    // SAFETY: `cq` is a live CQ (caller), so its context and ops are valid.
    let op = unsafe { (*(*cq).context).ops.req_notify_cq };
    match op {
        // SAFETY: provider entry with req_notify_cq's signature; caller's contract.
        Some(notify) => unsafe { notify(cq, solicited_only) },
        None => ENOSYS,
    }
}

/// The `struct verbs_context` that embeds `ctx`, or null for a context of
/// the old ABI (C's `verbs_get_ctx`).
///
/// # Safety
/// `ctx` must point to a live device context.
#[inline]
pub unsafe fn verbs_get_ctx(ctx: *mut ibv_context) -> *mut verbs_context {
    // SAFETY: `ctx` is valid for reads (caller).
    if unsafe { (*ctx).abi_compat } != VERBS_ABI_IS_EXTENDED {
        return ptr::null_mut();
    }
    // An extended context is the last member of its `verbs_context`; step
    // back to the start of the container. `wrapping_sub` keeps provenance
    // and cannot overflow-UB; the result is in bounds by the ABI marker.
    ctx.cast::<u8>()
        .wrapping_sub(offset_of!(verbs_context, context))
        .cast()
}

/// True when the provider's `verbs_context` is large enough to hold the
/// member at `offset` (C's `verbs_get_ctx_op` size check).
///
/// # Safety
/// `vctx` must point to a live `verbs_context`.
#[inline]
unsafe fn has_member(vctx: *mut verbs_context, offset: usize) -> bool {
    // SAFETY: `vctx` is valid for reads (caller).
    let sz = unsafe { (*vctx).sz };
    sz >= size_of::<verbs_context>() - offset
}

/// Queries a port's attributes (`ibv_query_port(3)`), through the
/// provider's extended entry when it has one, as the C macro does.
///
/// # Safety
/// `context` must point to a live device context and `port_attr` be valid
/// for a write of an `ibv_port_attr`.
pub unsafe fn ibv_query_port(
    context: *mut ibv_context,
    port_num: u8,
    port_attr: *mut ibv_port_attr,
) -> c_int {
    // SAFETY: `context` is a live context (caller).
    let vctx = unsafe { verbs_get_ctx(context) };
    // SAFETY: `vctx` is null or points to the live container of `context`.
    if !vctx.is_null() && unsafe { has_member(vctx, offset_of!(verbs_context, query_port)) } {
        // SAFETY: the size check says the member exists in the provider's struct.
        if let Some(query) = unsafe { (*vctx).query_port } {
            // SAFETY: provider entry with query_port's signature; `port_attr`
            // is writable for `size_of::<ibv_port_attr>()` bytes (caller).
            return unsafe { query(context, port_num, port_attr, size_of::<ibv_port_attr>()) };
        }
    }
    // SAFETY: `port_attr` is valid for a write of an `ibv_port_attr` (caller).
    unsafe { ptr::write_bytes(port_attr, 0, 1) };
    // SAFETY: the compat struct is a prefix of `ibv_port_attr` (rdma-core's
    // ABI promise, which is why the C macro casts the same way).
    unsafe { compat_ibv_query_port(context, port_num, port_attr.cast()) }
}

/// Reads one GID table entry with its type (`ibv_query_gid_ex(3)`).
///
/// # Safety
/// `context` must point to a live device context and `entry` be valid for a
/// write of an `ibv_gid_entry`.
pub unsafe fn ibv_query_gid_ex(
    context: *mut ibv_context,
    port_num: u32,
    gid_index: u32,
    entry: *mut ibv_gid_entry,
    flags: u32,
) -> c_int {
    // SAFETY: forwarded contract; the size is the entry type's own size.
    unsafe {
        crate::_ibv_query_gid_ex(
            context,
            port_num,
            gid_index,
            entry,
            flags,
            size_of::<ibv_gid_entry>(),
        )
    }
}

/// Reads every valid GID table entry of every port
/// (`ibv_query_gid_table(3)`); returns the number of entries or a negative
/// errno value.
///
/// # Safety
/// `context` must point to a live device context and `entries` be valid for
/// writes of `max_entries` elements.
pub unsafe fn ibv_query_gid_table(
    context: *mut ibv_context,
    entries: *mut ibv_gid_entry,
    max_entries: usize,
    flags: u32,
) -> isize {
    // SAFETY: forwarded contract; the size is the entry type's own size.
    unsafe {
        crate::_ibv_query_gid_table(
            context,
            entries,
            max_entries,
            flags,
            size_of::<ibv_gid_entry>(),
        )
    }
}

#[cfg(test)]
mod tests {
    //! The dispatchers are checked against a hand-built context whose
    //! function table records what it was called with; no device needed.
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn fake_post_send(
        _qp: *mut ibv_qp,
        wr: *mut ibv_send_wr,
        _bad: *mut *mut ibv_send_wr,
    ) -> c_int {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the test passes a valid work request.
        unsafe { (*wr).wr_id as c_int }
    }

    unsafe extern "C" fn fake_poll_cq(_cq: *mut ibv_cq, n: c_int, wc: *mut ibv_wc) -> c_int {
        // SAFETY: the test passes room for `n >= 1` completions.
        unsafe { (*wc).wr_id = 0xfeed };
        n.min(1)
    }

    #[test]
    fn data_path_verbs_jump_through_the_provider_table() {
        let mut ctx = ibv_context::default();
        ctx.ops.post_send = Some(fake_post_send);
        ctx.ops.poll_cq = Some(fake_poll_cq);
        let mut qp = ibv_qp {
            context: &mut ctx,
            ..Default::default()
        };
        let mut cq = ibv_cq {
            context: &mut ctx,
            ..Default::default()
        };
        let mut wr = ibv_send_wr {
            wr_id: 42,
            ..Default::default()
        };
        let mut bad = ptr::null_mut();
        // SAFETY: every pointer is to a live local; the fake ops touch only `wr`/`wc`.
        let rc = unsafe { ibv_post_send(&mut qp, &mut wr, &mut bad) };
        assert_eq!(rc, 42);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        let mut wc = [ibv_wc::default(); 4];
        // SAFETY: as above; `wc` has room for 4 completions.
        let n = unsafe { ibv_poll_cq(&mut cq, 4, wc.as_mut_ptr()) };
        assert_eq!((n, wc[0].wr_id), (1, 0xfeed));
    }

    #[test]
    fn an_empty_provider_entry_is_an_error_not_a_jump_to_null() {
        let mut ctx = ibv_context::default();
        let mut qp = ibv_qp {
            context: &mut ctx,
            ..Default::default()
        };
        let mut cq = ibv_cq {
            context: &mut ctx,
            ..Default::default()
        };
        let mut bad = ptr::null_mut();
        // SAFETY: live locals; every op is `None`, so nothing is called.
        unsafe {
            assert_eq!(ibv_post_recv(&mut qp, ptr::null_mut(), &mut bad), ENOSYS);
            assert_eq!(ibv_req_notify_cq(&mut cq, 0), ENOSYS);
            assert_eq!(ibv_poll_cq(&mut cq, 1, ptr::null_mut()), -ENOSYS);
        }
    }

    #[test]
    fn old_abi_contexts_have_no_verbs_context() {
        let mut ctx = ibv_context::default();
        // SAFETY: live local context.
        assert!(unsafe { verbs_get_ctx(&mut ctx) }.is_null());
    }

    #[test]
    fn extended_contexts_find_their_container() {
        let mut vctx = verbs_context::default();
        vctx.context.abi_compat = VERBS_ABI_IS_EXTENDED;
        vctx.sz = size_of::<verbs_context>();
        let found = unsafe { verbs_get_ctx(&mut vctx.context) };
        assert_eq!(found, &mut vctx as *mut verbs_context);
        // SAFETY: `found` is `vctx`.
        assert!(unsafe { has_member(found, offset_of!(verbs_context, query_port)) });
    }

    #[test]
    fn status_values_are_newtypes_not_enums() {
        // A value no provider defines yet must be representable.
        let future = crate::ibv_wc_status(4242);
        assert_ne!(future, crate::ibv_wc_status::IBV_WC_SUCCESS);
        let flags = crate::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE
            | crate::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE;
        assert_eq!(flags.0, 1 | 2);
    }
}

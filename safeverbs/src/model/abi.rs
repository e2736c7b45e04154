//! The model's verbs with libibverbs' signatures: the control verbs that
//! [`crate::device::provider`] dispatches to, and the data-path entry points that
//! the context's provider table (`ibv_context::ops`) points to.
//!
//! Every object handed out is a real libibverbs struct (`ibv_qp`, ...) at
//! the start of a `#[repr(C)]` box that also holds the object's number in
//! the model's state. The library reads the struct's fields as it would a
//! provider's (`qp_num`, `cqe`, `lkey`, `fd`, `context`), and never writes
//! them; the model reads only the number. A box lives from the verb that
//! creates it to the verb that destroys it, except a queue pair's, which
//! is kept a while longer so that a verb called on it after its
//! destruction aborts with a message instead of reading freed memory (see
//! [`Retired`]).

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use safeverbs_sys as sys;

use super::state::{Channel, Cq, Fabric, InlineData, Mr, Nic, Pd, Ptr, State};
use super::LIMITS;

/// A model device context.
#[repr(C)]
struct ModelContext {
    raw: sys::ibv_context,
    fabric: Arc<Fabric>,
    nic: u32,
    retired: Retired,
}

/// Any other model object: the libibverbs struct, then its number
/// ([`DESTROYED`] once a queue pair is destroyed).
#[repr(C)]
struct Object<R> {
    raw: R,
    id: AtomicU32,
}

/// The number of a destroyed queue pair: a verb called on it is a use
/// after destroy, and [`id`] stops the process, saying so.
const DESTROYED: u32 = u32::MAX;

/// How many destroyed queue pairs a context keeps (see [`Retired`]).
const QUARANTINE: usize = 64;

/// Destroyed queue pairs, not freed yet: a verb called on one of them is
/// caught by [`id`] instead of reading freed memory. Like a sanitizer's
/// quarantine, it keeps the latest [`QUARANTINE`]; the rest go with the
/// context.
struct Retired(Mutex<VecDeque<Ptr<sys::ibv_qp>>>);

impl Retired {
    /// Marks `qp` destroyed and keeps it; frees the oldest past the bound.
    ///
    /// # Safety
    /// `qp` came from `boxed` and is destroyed once.
    unsafe fn retire(&self, qp: *mut sys::ibv_qp) {
        // SAFETY: the contract: the box is ours and live.
        unsafe {
            (*qp.cast::<Object<sys::ibv_qp>>())
                .id
                .store(DESTROYED, Ordering::Relaxed)
        };
        let mut kept = crate::sync::lock(&self.0);
        kept.push_back(Ptr(qp));
        if kept.len() > QUARANTINE {
            if let Some(oldest) = kept.pop_front() {
                // SAFETY: retired once, so freed once; a verb call on it
                // now would be the use after free the quarantine is for.
                unsafe { free(oldest.0) };
            }
        }
    }
}

impl Drop for Retired {
    fn drop(&mut self) {
        let kept = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        for qp in kept.drain(..) {
            // SAFETY: each was retired once; its context is closing, so
            // no handle to it is left.
            unsafe { free(qp.0) };
        }
    }
}

fn boxed<R>(raw: R, id: u32) -> *mut R {
    Box::into_raw(Box::new(Object {
        raw,
        id: AtomicU32::new(id),
    }))
    .cast()
}

/// Frees an object made by [`boxed`].
///
/// # Safety
/// `obj` came from `boxed::<R>` and is not used again.
unsafe fn free<R>(obj: *mut R) {
    // SAFETY: the caller's contract: the box is ours and dropped once.
    drop(unsafe { Box::from_raw(obj.cast::<Object<R>>()) });
}

/// The number of an object made by [`boxed`].
///
/// # Safety
/// `obj` came from `boxed::<R>` and is live.
unsafe fn id<R>(obj: *mut R) -> u32 {
    // SAFETY: the caller's contract; `Object` is `repr(C)` with `raw`
    // first, so the pointer is the box's. A retired (destroyed) queue pair
    // is still allocated: see `Retired`.
    let id = unsafe { (*obj.cast::<Object<R>>()).id.load(Ordering::Relaxed) };
    #[allow(clippy::panic)] // The model's report of the caller's bug.
    if id == DESTROYED {
        panic!("model device: a verb was called on a destroyed queue pair (use after destroy)");
    }
    id
}

/// The context of a model context pointer.
///
/// # Safety
/// `ctx` came from [`open_device`] and is not closed.
unsafe fn context<'a>(ctx: *mut sys::ibv_context) -> &'a ModelContext {
    // SAFETY: the caller's contract; `raw` is the first field. Only
    // `fabric` and `nic` are read, never written after `open_device`.
    unsafe { &*ctx.cast::<ModelContext>() }
}

/// Sets `errno`, as a failing libibverbs call does.
fn set_errno(code: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() = code };
}

/// A null result with `errno` set.
fn null<T>(code: c_int) -> *mut T {
    set_errno(code);
    ptr::null_mut()
}

/// Opens a context on `fabric`: a new device with its own number.
pub(crate) fn open_device(fabric: &Arc<Fabric>) -> (*mut sys::ibv_context, u32) {
    let nic = {
        let mut st = fabric.lock();
        let id = st.id();
        st.nics.insert(id, Nic { gid: [0; 16] });
        id
    };
    let mut raw = sys::ibv_context::default();
    raw.ops.post_send = Some(post_send);
    raw.ops.post_recv = Some(post_recv);
    raw.ops.poll_cq = Some(poll_cq);
    raw.ops.req_notify_cq = Some(req_notify_cq);
    raw.cmd_fd = -1;
    raw.async_fd = -1;
    raw.num_comp_vectors = 1;
    let ctx = Box::into_raw(Box::new(ModelContext {
        raw,
        fabric: fabric.clone(),
        nic,
        retired: Retired(Mutex::new(VecDeque::new())),
    }));
    (ctx.cast(), nic)
}

/// # Safety
/// As `ibv_close_device`.
pub(crate) unsafe fn close_device(ctx: *mut sys::ibv_context) -> c_int {
    // SAFETY: the caller's contract.
    let c = unsafe { context(ctx) };
    {
        let mut st = c.fabric.lock();
        let nic = c.nic;
        let busy = st.pds.values().any(|p| p.nic == nic)
            || st.cqs.values().any(|q| q.nic == nic)
            || st.channels.values().any(|ch| ch.nic == nic);
        if busy {
            return libc::EBUSY;
        }
        st.nics.remove(&nic);
    }
    // SAFETY: made by `open_device`, closed once (the caller's contract).
    drop(unsafe { Box::from_raw(ctx.cast::<ModelContext>()) });
    0
}

/// # Safety
/// As `ibv_alloc_pd`.
pub(crate) unsafe fn alloc_pd(ctx: *mut sys::ibv_context) -> *mut sys::ibv_pd {
    // SAFETY: the caller's contract.
    let c = unsafe { context(ctx) };
    let mut st = c.fabric.lock();
    let id = st.id();
    st.pds.insert(id, Pd { nic: c.nic });
    boxed(
        sys::ibv_pd {
            context: ctx,
            handle: id,
        },
        id,
    )
}

/// # Safety
/// As `ibv_dealloc_pd`.
pub(crate) unsafe fn dealloc_pd(pd: *mut sys::ibv_pd) -> c_int {
    // SAFETY: the caller's contract: a live PD of a live context.
    let (c, id) = unsafe { (context((*pd).context), id(pd)) };
    let mut st = c.fabric.lock();
    if st.mrs.values().any(|m| m.pd == id) || st.qps.values().any(|q| q.pd == id) {
        return libc::EBUSY;
    }
    st.pds.remove(&id);
    drop(st);
    // SAFETY: made by `alloc_pd`; deallocated once.
    unsafe { free(pd) };
    0
}

/// # Safety
/// As `ibv_reg_mr`: `addr` is valid for reads and writes of `len` bytes
/// until `dereg_mr`.
pub(crate) unsafe fn reg_mr(
    pd: *mut sys::ibv_pd,
    addr: *mut c_void,
    len: usize,
    access: c_int,
) -> *mut sys::ibv_mr {
    use sys::ibv_access_flags as A;
    // SAFETY: the caller's contract.
    let (ctx, pd_id) = unsafe { ((*pd).context, id(pd)) };
    // SAFETY: a live PD's context is live.
    let c = unsafe { context(ctx) };
    let access = access as u32;
    let writable = A::IBV_ACCESS_REMOTE_WRITE.0 | A::IBV_ACCESS_REMOTE_ATOMIC.0;
    // The verbs require local write for remote write or atomics.
    if addr.is_null()
        || len == 0
        || len as u64 > LIMITS.max_mr_size
        || access & writable != 0 && access & A::IBV_ACCESS_LOCAL_WRITE.0 == 0
    {
        return null(libc::EINVAL);
    }
    let mut st = c.fabric.lock();
    if st.mrs.len() >= LIMITS.max_mr as usize {
        return null(libc::ENOMEM);
    }
    let key = st.mr_key();
    st.mrs.insert(
        key,
        Mr {
            pd: pd_id,
            base: Ptr(addr.cast()),
            len,
            access,
        },
    );
    let raw = sys::ibv_mr {
        context: ctx,
        pd,
        addr,
        length: len,
        handle: key,
        lkey: key,
        rkey: key,
    };
    boxed(raw, key)
}

/// # Safety
/// As `ibv_dereg_mr`.
pub(crate) unsafe fn dereg_mr(mr: *mut sys::ibv_mr) -> c_int {
    // SAFETY: the caller's contract: a live registration.
    let (c, key) = unsafe { (context((*mr).context), id(mr)) };
    // After this no step can reach the memory (`Mr`).
    c.fabric.lock().mrs.remove(&key);
    // SAFETY: made by `reg_mr`; deregistered once.
    unsafe { free(mr) };
    0
}

/// # Safety
/// As `ibv_create_comp_channel`.
pub(crate) unsafe fn create_comp_channel(ctx: *mut sys::ibv_context) -> *mut sys::ibv_comp_channel {
    // SAFETY: the caller's contract.
    let c = unsafe { context(ctx) };
    // SAFETY: plain flags; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return ptr::null_mut(); // errno is eventfd's
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw_fd = fd.as_raw_fd();
    let mut st = c.fabric.lock();
    if !start_engine(&c.fabric, &mut st) {
        return null(libc::EAGAIN);
    }
    let id = st.id();
    st.channels.insert(
        id,
        Channel {
            nic: c.nic,
            fd,
            events: Default::default(),
            unacked: Default::default(),
        },
    );
    let raw = sys::ibv_comp_channel {
        context: ctx,
        fd: raw_fd,
        refcnt: 0,
    };
    boxed(raw, id)
}

/// # Safety
/// As `ibv_destroy_comp_channel`.
pub(crate) unsafe fn destroy_comp_channel(ch: *mut sys::ibv_comp_channel) -> c_int {
    // SAFETY: the caller's contract: a live channel.
    let (c, id) = unsafe { (context((*ch).context), id(ch)) };
    let mut st = c.fabric.lock();
    if st.cqs.values().any(|q| q.channel == Some(id)) {
        return libc::EBUSY;
    }
    st.channels.remove(&id);
    drop(st);
    // SAFETY: made by `create_comp_channel`; destroyed once.
    unsafe { free(ch) };
    0
}

/// # Safety
/// As `ibv_create_cq`.
pub(crate) unsafe fn create_cq(
    ctx: *mut sys::ibv_context,
    cqe: c_int,
    cq_context: *mut c_void,
    channel: *mut sys::ibv_comp_channel,
    _vector: c_int,
) -> *mut sys::ibv_cq {
    // SAFETY: the caller's contract.
    let c = unsafe { context(ctx) };
    let Ok(capacity) = usize::try_from(cqe) else {
        return null(libc::EINVAL);
    };
    if capacity == 0 || capacity > LIMITS.max_cqe as usize {
        return null(libc::EINVAL);
    }
    // SAFETY: the caller's contract: null or a live channel.
    let channel_id = (!channel.is_null()).then(|| unsafe { id(channel) });
    let mut st = c.fabric.lock();
    if channel_id.is_some_and(|ch| st.channels.get(&ch).is_none_or(|ch| ch.nic != c.nic)) {
        return null(libc::EINVAL);
    }
    if st.cqs.len() >= LIMITS.max_cq as usize {
        return null(libc::ENOMEM);
    }
    let id = st.id();
    let raw = sys::ibv_cq {
        context: ctx,
        channel,
        cq_context,
        handle: id,
        cqe,
        ..Default::default()
    };
    let cq = boxed(raw, id);
    st.cqs.insert(
        id,
        Cq {
            nic: c.nic,
            capacity,
            // Full size now: completing never allocates (see `Sges`).
            entries: std::collections::VecDeque::with_capacity(capacity),
            armed: false,
            channel: channel_id,
            raw: Ptr(cq),
            broken: false,
        },
    );
    cq
}

/// # Safety
/// As `ibv_destroy_cq`.
pub(crate) unsafe fn destroy_cq(cq: *mut sys::ibv_cq) -> c_int {
    // SAFETY: the caller's contract: a live CQ.
    let (c, id) = unsafe { (context((*cq).context), id(cq)) };
    let mut st = c.fabric.lock();
    if st.qps.values().any(|q| q.send_cq == id || q.recv_cq == id) {
        return libc::EBUSY;
    }
    // libibverbs would wait for ever for unacknowledged events.
    let channel = st.cqs.get(&id).and_then(|q| q.channel);
    if let Some(ch) = channel.and_then(|ch| st.channels.get_mut(&ch)) {
        if ch.unacked.get(&id).copied().unwrap_or(0) > 0 {
            return libc::EBUSY;
        }
        ch.events.retain(|e| e.0 != cq);
        if ch.events.is_empty() {
            drain(&ch.fd);
        }
    }
    st.cqs.remove(&id);
    drop(st);
    // SAFETY: made by `create_cq`; destroyed once.
    unsafe { free(cq) };
    0
}

/// # Safety
/// As `ibv_create_qp`.
pub(crate) unsafe fn create_qp(
    pd: *mut sys::ibv_pd,
    init: *mut sys::ibv_qp_init_attr,
) -> *mut sys::ibv_qp {
    // SAFETY: the caller's contract: a live PD and a valid attribute block.
    let (ctx, pd_id, init) = unsafe { ((*pd).context, id(pd), &*init) };
    // SAFETY: a live PD's context is live.
    let c = unsafe { context(ctx) };
    if init.send_cq.is_null() || init.recv_cq.is_null() {
        return null(libc::EINVAL);
    }
    // SAFETY: the caller's contract: live CQs (of some model context; a CQ
    // of another context is refused by number).
    let (send_cq, recv_cq) = unsafe { (id(init.send_cq), id(init.recv_cq)) };
    let mut st = c.fabric.lock();
    let qpn = match st.create_qp(pd_id, init, send_cq, recv_cq) {
        Ok(qpn) => qpn,
        Err(code) => return null(code),
    };
    let raw = sys::ibv_qp {
        context: ctx,
        qp_context: init.qp_context,
        pd,
        send_cq: init.send_cq,
        recv_cq: init.recv_cq,
        handle: qpn,
        qp_num: qpn,
        state: sys::ibv_qp_state::IBV_QPS_RESET,
        qp_type: init.qp_type,
        ..Default::default()
    };
    boxed(raw, qpn)
}

/// # Safety
/// As `ibv_modify_qp`.
pub(crate) unsafe fn modify_qp(
    qp: *mut sys::ibv_qp,
    attr: *mut sys::ibv_qp_attr,
    mask: c_int,
) -> c_int {
    // SAFETY: the caller's contract: a live QP, a valid attribute block.
    // (The number first: it stops a use after destroy.)
    let (qpn, c, attr) = unsafe { (id(qp), context((*qp).context), &*attr) };
    c.fabric.lock().modify_qp(qpn, attr, mask as u32)
}

/// # Safety
/// As `ibv_destroy_qp`.
pub(crate) unsafe fn destroy_qp(qp: *mut sys::ibv_qp) -> c_int {
    // SAFETY: the caller's contract: a live QP.
    let (qpn, c) = unsafe { (id(qp), context((*qp).context)) };
    // Its queued requests go with it, without completions, as on a NIC.
    c.fabric.lock().qps.remove(&qpn);
    // SAFETY: made by `create_qp`; destroyed once (a second destruction
    // stopped at `id` above).
    unsafe { c.retired.retire(qp) };
    0
}

/// # Safety
/// As `ibv_get_cq_event`.
pub(crate) unsafe fn get_cq_event(
    ch: *mut sys::ibv_comp_channel,
    cq_out: *mut *mut sys::ibv_cq,
    cq_context: *mut *mut c_void,
) -> c_int {
    // SAFETY: the caller's contract: a live channel.
    let (c, id) = unsafe { (context((*ch).context), id(ch)) };
    let mut st = c.fabric.lock();
    let State { channels, cqs, .. } = &mut *st;
    let Some(channel) = channels.get_mut(&id) else {
        set_errno(libc::EINVAL);
        return -1;
    };
    let Some(cq) = channel.events.pop_front() else {
        set_errno(libc::EAGAIN);
        return -1;
    };
    if channel.events.is_empty() {
        drain(&channel.fd);
    }
    // SAFETY: events name live CQs (`destroy_cq` removes its own).
    let (cq_id, ctx) = unsafe { (self::id(cq.0), (*cq.0).cq_context) };
    if cqs.contains_key(&cq_id) {
        *channel.unacked.entry(cq_id).or_default() += 1;
    }
    // SAFETY: valid out-parameters (the caller's contract).
    unsafe {
        *cq_out = cq.0;
        *cq_context = ctx;
    }
    0
}

/// # Safety
/// As `ibv_ack_cq_events`.
pub(crate) unsafe fn ack_cq_events(cq: *mut sys::ibv_cq, n: u32) {
    // SAFETY: the caller's contract: a live CQ.
    let (c, id) = unsafe { (context((*cq).context), id(cq)) };
    let mut st = c.fabric.lock();
    let channel = st.cqs.get(&id).and_then(|q| q.channel);
    if let Some(ch) = channel.and_then(|ch| st.channels.get_mut(&ch)) {
        if let Some(count) = ch.unacked.get_mut(&id) {
            *count = count.saturating_sub(n);
        }
    }
}

/// Makes an event channel's descriptor readable.
pub(crate) fn signal(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer to our eventfd; the
    // counter cannot overflow with one write per event.
    let _ = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
}

/// Makes it not readable (no event pending).
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live buffer; the descriptor is
    // non-blocking, so an empty counter returns EAGAIN.
    let _ = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
}

/// Starts the thread that steps the model while a channel exists (event
/// mode has nobody polling); false if it could not be started.
fn start_engine(fabric: &Arc<Fabric>, st: &mut State) -> bool {
    if st.engine {
        return true;
    }
    let weak: Weak<Fabric> = Arc::downgrade(fabric);
    let spawned = std::thread::Builder::new()
        .name("safeverbs-model".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(1));
            let Some(fabric) = weak.upgrade() else {
                return;
            };
            let mut st = fabric.lock();
            if st.channels.is_empty() {
                st.engine = false;
                return;
            }
            st.run(4);
        });
    st.engine = spawned.is_ok();
    st.engine
}

unsafe extern "C" fn post_send(
    qp: *mut sys::ibv_qp,
    wr: *mut sys::ibv_send_wr,
    bad: *mut *mut sys::ibv_send_wr,
) -> c_int {
    // SAFETY: libibverbs' contract for `ibv_post_send` is `post`'s.
    unsafe { post(qp, wr, bad) }
}

unsafe extern "C" fn post_recv(
    qp: *mut sys::ibv_qp,
    wr: *mut sys::ibv_recv_wr,
    bad: *mut *mut sys::ibv_recv_wr,
) -> c_int {
    // SAFETY: libibverbs' contract for `ibv_post_recv` is `post`'s.
    unsafe { post(qp, wr, bad) }
}

/// A work request of either queue.
trait Request {
    fn next(&self) -> *mut Self;
    fn sg_list(&self) -> (*mut sys::ibv_sge, c_int);
    /// Queues the request on `qpn`.
    ///
    /// # Safety
    /// The post's contract (see [`post`]).
    unsafe fn queue(&self, st: &mut State, qpn: u32, sges: &[sys::ibv_sge]) -> Result<(), c_int>;
}

impl Request for sys::ibv_send_wr {
    fn next(&self) -> *mut Self {
        self.next
    }
    fn sg_list(&self) -> (*mut sys::ibv_sge, c_int) {
        (self.sg_list, self.num_sge)
    }
    unsafe fn queue(&self, st: &mut State, qpn: u32, sges: &[sys::ibv_sge]) -> Result<(), c_int> {
        let inline = match self.send_flags & sys::ibv_send_flags::IBV_SEND_INLINE.0 {
            0 => None,
            // SAFETY: the post's contract: an inline request's scatter
            // list holds bytes readable until the post returns.
            _ => Some(unsafe { InlineData::copy(sges) }.ok_or(libc::EINVAL)?),
        };
        st.queue_send(qpn, self, sges, inline)
    }
}

impl Request for sys::ibv_recv_wr {
    fn next(&self) -> *mut Self {
        self.next
    }
    fn sg_list(&self) -> (*mut sys::ibv_sge, c_int) {
        (self.sg_list, self.num_sge)
    }
    unsafe fn queue(&self, st: &mut State, qpn: u32, sges: &[sys::ibv_sge]) -> Result<(), c_int> {
        st.queue_recv(qpn, self, sges)
    }
}

/// Queues each request of the chain `wr` in order; the first refused is
/// left in `bad` with its errno returned, as the verbs say.
///
/// # Safety
/// libibverbs' contract for posting: `qp` is a live QP of this provider,
/// `wr` a valid chain whose scatter lists hold `num_sge` entries (whose
/// bytes, for an `IBV_SEND_INLINE` request, are readable until this
/// returns), `bad` a valid out-parameter.
unsafe fn post<W: Request>(qp: *mut sys::ibv_qp, wr: *mut W, bad: *mut *mut W) -> c_int {
    // SAFETY: the contract: a QP of this provider, live or retired (then
    // still allocated, and `id` below stops the process).
    let c = unsafe { context((*qp).context) };
    let mut st = c.fabric.hold_post(c.fabric.lock());
    // SAFETY: as above. Read after a hold, so that a queue pair destroyed
    // meanwhile is caught.
    let qpn = unsafe { id(qp) };
    let refuse_at = refusal(&mut st);
    let mut cur = wr;
    let mut k = 0;
    while !cur.is_null() {
        // SAFETY: each element of the chain is valid (the contract).
        let w = unsafe { &*cur };
        let (list, n) = w.sg_list();
        // SAFETY: `list` holds `n` entries (the contract).
        let sges = unsafe { sge_list(list, n) };
        let queued = match refuse_at {
            Some(at) if at == k => Err(libc::ENOMEM),
            // SAFETY: the contract.
            _ => unsafe { w.queue(&mut st, qpn, sges) },
        };
        k += 1;
        if let Err(code) = queued {
            // SAFETY: a valid out-parameter (the contract).
            unsafe { *bad = cur };
            return code;
        }
        cur = w.next();
    }
    doorbell(&mut st, bad)
}

/// Where an injected refusal stops the next post's chain.
fn refusal(st: &mut State) -> Option<usize> {
    match st.take_fault(|f| matches!(f, super::Fault::PostRefused { .. })) {
        Some(super::Fault::PostRefused { after }) => Some(after),
        _ => None,
    }
}

/// The end of a post: every request is queued; an injected doorbell
/// failure reports EIO with `bad_wr` NULL.
fn doorbell<W>(st: &mut State, bad: *mut *mut W) -> c_int {
    if st
        .take_fault(|f| *f == super::Fault::DoorbellFails)
        .is_none()
    {
        return 0;
    }
    // SAFETY: a valid out-parameter (the post's contract).
    unsafe { *bad = ptr::null_mut() };
    libc::EIO
}

/// # Safety
/// `list` holds `n` entries when `n > 0`.
unsafe fn sge_list<'a>(list: *mut sys::ibv_sge, n: c_int) -> &'a [sys::ibv_sge] {
    match usize::try_from(n) {
        // SAFETY: the caller's contract.
        Ok(n) if n > 0 && !list.is_null() => unsafe { std::slice::from_raw_parts(list, n) },
        _ => &[],
    }
}

unsafe extern "C" fn poll_cq(cq: *mut sys::ibv_cq, n: c_int, wc: *mut sys::ibv_wc) -> c_int {
    // SAFETY: libibverbs' contract for `ibv_poll_cq`: a live CQ of this
    // provider and room for `n` entries at `wc`.
    let (c, id) = unsafe { (context((*cq).context), id(cq)) };
    let mut st = c.fabric.lock();
    st.poll_steps();
    let Some(q) = st.cqs.get_mut(&id) else {
        return -libc::EINVAL;
    };
    if q.broken {
        return -libc::EIO;
    }
    let mut taken = 0;
    while taken < n.max(0) {
        let Some(e) = q.entries.pop_front() else {
            break;
        };
        // SAFETY: `taken < n`, within the caller's array (the contract).
        unsafe { wc.add(taken as usize).write(e) };
        taken += 1;
    }
    taken
}

unsafe extern "C" fn req_notify_cq(cq: *mut sys::ibv_cq, _solicited_only: c_int) -> c_int {
    // SAFETY: libibverbs' contract for `ibv_req_notify_cq`: a live CQ.
    let (c, id) = unsafe { (context((*cq).context), id(cq)) };
    match c.fabric.lock().cqs.get_mut(&id) {
        Some(q) => {
            q.armed = true;
            0
        }
        None => libc::EINVAL,
    }
}

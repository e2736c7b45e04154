//! Queue pairs: a builder, the typestate, connection, and teardown.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use safeverbs_sys as sys;

use crate::completions::completion::{Completion, RawCompletion, WcStatus};
use crate::completions::cq::{CompletionQueue, CqInner, Queue};
use crate::device::{mtu_enum, PortInfo};
use crate::memory::pd::{PdInner, ProtectionDomain};
use crate::posting::unsignaled::Uncovered;
use crate::queue_pair::credits::Credits;
pub(crate) use crate::queue_pair::credits::Gathered;
use crate::queue_pair::gate::Gate;
use crate::queue_pair::transport::{Failed, Init, Rc, Rtr, Rts, State, Transport};
use crate::setup::endpoint::Endpoint;
use crate::{Error, Result, Shutdown};

/// Options of the reliable transport (ignored by UC).
#[derive(Debug, Clone, Copy)]
struct Reliability {
    timeout: u8,
    retry_cnt: u8,
    rnr_retry: u8,
    min_rnr_timer: u8,
    max_rd_atomic: u8,
}

/// Builds a queue pair of transport `T`; see
/// [`ProtectionDomain::queue_pair`].
pub struct QpBuilder<T: Transport> {
    pd: ProtectionDomain,
    send_cq: Option<CompletionQueue>,
    recv_cq: Option<CompletionQueue>,
    max_send_wr: u32,
    max_recv_wr: u32,
    max_inline_data: u32,
    reliability: Reliability,
    fingerprint: (u64, &'static str),
    _t: PhantomData<T>,
}

impl<T: Transport> fmt::Debug for QpBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QpBuilder")
            .field("transport", &T::KIND)
            .field("max_send_wr", &self.max_send_wr)
            .field("max_recv_wr", &self.max_recv_wr)
            .field("max_inline_data", &self.max_inline_data)
            .finish_non_exhaustive()
    }
}

impl ProtectionDomain {
    /// Starts building a queue pair: `pd.queue_pair::<Rc>()` or `::<Uc>()`.
    pub fn queue_pair<T: Transport>(&self) -> QpBuilder<T> {
        QpBuilder {
            pd: self.clone(),
            send_cq: None,
            recv_cq: None,
            max_send_wr: 64,
            max_recv_wr: 64,
            max_inline_data: 0,
            // Finite on every provider: 7 means "for ever" for RNR retries
            // in the verbs, and for transport retries in rdma_rxe.
            reliability: Reliability {
                timeout: 14,
                retry_cnt: 6,
                rnr_retry: 6,
                min_rnr_timer: 20,
                max_rd_atomic: 1,
            },
            fingerprint: (0, "nothing declared"),
            _t: PhantomData,
        }
    }
}

impl<T: Transport> QpBuilder<T> {
    /// The completion queue of sends, writes and reads (required).
    pub fn send_cq(mut self, cq: &CompletionQueue) -> Self {
        self.send_cq = Some(cq.clone());
        self
    }
    /// The completion queue of receives (required; may be the send CQ).
    pub fn recv_cq(mut self, cq: &CompletionQueue) -> Self {
        self.recv_cq = Some(cq.clone());
        self
    }
    /// Outstanding send-queue requests (default 64). A full queue makes
    /// the next post wait.
    pub fn max_send_wr(mut self, n: u32) -> Self {
        self.max_send_wr = n;
        self
    }
    /// Outstanding receives (default 64).
    pub fn max_recv_wr(mut self, n: u32) -> Self {
        self.max_recv_wr = n;
        self
    }
    /// Bytes a send or write may carry inline, copied into the work
    /// request when it is posted (default 0: none; at most
    /// [`MAX_INLINE`](crate::MAX_INLINE)). The provider may allow more
    /// than asked; [`QueuePair::max_inline_data`] says what it allows, and
    /// [`QueuePair::send_inline`] posts such messages.
    pub fn max_inline_data(mut self, bytes: u32) -> Self {
        self.max_inline_data = bytes;
        self
    }
    /// The layout fingerprint this side declares, checked against the
    /// peer's at connect time; `what` names it in the error.
    pub fn fingerprint(mut self, fingerprint: u64, what: &'static str) -> Self {
        self.fingerprint = (fingerprint, what);
        self
    }

    /// Creates the queue pair and moves it to INIT.
    pub fn build(self) -> Result<QueuePair<T, Init>> {
        let send_cq = self
            .send_cq
            .ok_or(Error::Builder("no send completion queue given"))?;
        let recv_cq = self
            .recv_cq
            .ok_or(Error::Builder("no receive completion queue given"))?;
        let device = self.pd.device().clone();
        // The kernel resolves the CQs by handle in the QP's own context: a
        // CQ of another context would silently be some other CQ.
        for (cq, what) in [
            (
                &send_cq,
                "the send completion queue belongs to another device context",
            ),
            (
                &recv_cq,
                "the receive completion queue belongs to another device context",
            ),
        ] {
            if !cq.inner.device().same_context(&device) {
                return Err(Error::Foreign(what));
            }
        }
        let limit = device.limits().max_qp_wr;
        for (what, n) in [
            ("max_send_wr", self.max_send_wr),
            ("max_recv_wr", self.max_recv_wr),
        ] {
            if n == 0 || n > limit {
                return Err(Error::Limit {
                    what,
                    value: n.into(),
                    min: 1,
                    max: limit.into(),
                    bound: format!("device {}'s max_qp_wr", device.name()),
                });
            }
        }
        if self.max_inline_data as usize > crate::MAX_INLINE {
            return Err(Error::Limit {
                what: "max_inline_data",
                value: self.max_inline_data.into(),
                min: 0,
                max: crate::MAX_INLINE as u64,
                bound: "what SafeVerbs posts inline (MAX_INLINE)".into(),
            });
        }
        // Every request posted may produce a completion: the CQs must hold
        // them all, or the driver would overrun them.
        let (send_n, recv_n) = (self.max_send_wr as usize, self.max_recv_wr as usize);
        send_cq.inner.reserve(send_n)?;
        if let Err(e) = recv_cq.inner.reserve(recv_n) {
            send_cq.inner.unreserve(send_n);
            return Err(e);
        }
        let unreserve = || {
            send_cq.inner.unreserve(send_n);
            recv_cq.inner.unreserve(recv_n);
        };
        let mut init = sys::ibv_qp_init_attr {
            send_cq: send_cq.inner.raw(),
            recv_cq: recv_cq.inner.raw(),
            cap: sys::ibv_qp_cap {
                max_send_wr: self.max_send_wr,
                max_recv_wr: self.max_recv_wr,
                max_send_sge: 1,
                max_recv_sge: 1,
                max_inline_data: self.max_inline_data,
            },
            qp_type: T::QPT,
            sq_sig_all: 0,
            ..Default::default()
        };
        // SAFETY: the PD and both CQs are alive (we hold them); `init` is a
        // valid attribute block.
        let qp = unsafe { device.inner.provider.create_qp(self.pd.inner.pd, &mut init) };
        if qp.is_null() {
            unreserve();
            let mut err = Error::last_os("ibv_create_qp");
            if let Error::Verb { hint, .. } = &mut err {
                *hint = Some(
                    "the device may be out of queue pairs (DeviceLimits::max_qp), or the queue \
                     depths or max_inline_data too large",
                );
            }
            return Err(err);
        }
        let inner = Arc::new(QpInner {
            qp,
            // SAFETY: `qp` was just created and is live.
            qp_num: unsafe { (*qp).qp_num },
            gate: Gate::new(),
            shutdown: OnceLock::new(),
            destroyed: OnceLock::new(),
            port: device.port().clone(),
            psn: random_psn(),
            // What the provider allows (it writes back `cap`; it may allow
            // more than asked), within what a SafeVerbs future holds.
            max_inline: init.cap.max_inline_data.min(crate::MAX_INLINE as u32),
            uncovered: Uncovered::new(),
            send_credits: Credits::new(self.max_send_wr),
            recv_credits: Credits::new(self.max_recv_wr),
            reliability: self.reliability,
            fingerprint: self.fingerprint,
            send_cq: send_cq.inner,
            recv_cq: recv_cq.inner,
            pd: self.pd.inner,
        });
        let mut attr = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_INIT,
            pkey_index: 0,
            port_num: inner.port.port,
            qp_access_flags: T::REMOTE_ACCESS.0 | sys::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0,
            ..Default::default()
        };
        use sys::ibv_qp_attr_mask as M;
        inner.modify(
            &mut attr,
            M::IBV_QP_STATE | M::IBV_QP_PKEY_INDEX | M::IBV_QP_PORT | M::IBV_QP_ACCESS_FLAGS,
        )?;
        Ok(QueuePair::from_inner(inner))
    }
}

impl QpBuilder<Rc> {
    /// Local ACK timeout exponent: 4.096 µs × 2^`t` (default 14, about
    /// 67 ms; 0 waits forever).
    pub fn timeout(mut self, t: u8) -> Self {
        self.reliability.timeout = t.min(31);
        self
    }
    /// Transport retries before a request fails with `RETRY_EXC_ERR`
    /// (0..=7, default 6: with the default timeout a peer that is gone is
    /// reported after about 0.5 s). rdma_rxe (Soft-RoCE) treats 7 as
    /// "retry for ever".
    pub fn retry_count(mut self, n: u8) -> Self {
        self.reliability.retry_cnt = n.min(7);
        self
    }
    /// Receiver-not-ready retries before a send fails with
    /// `RNR_RETRY_EXC_ERR` (0..=7, default 6; 7 means for ever, so a peer
    /// that never posts a receive makes the send wait without a bound:
    /// give such operations a deadline, see [`Post::timeout`](crate::Post::timeout)).
    pub fn rnr_retry(mut self, n: u8) -> Self {
        self.reliability.rnr_retry = n.min(7);
        self
    }
    /// How long a peer whose send finds no receive posted here waits before
    /// retrying, as the verbs' 5-bit code (default 20, 10.24 ms; 12 is
    /// 0.64 ms, 31 is 491.52 ms). With the peer's default of 6 retries, a
    /// receive missing for about 70 ms fails its send.
    pub fn min_rnr_timer(mut self, code: u8) -> Self {
        self.reliability.min_rnr_timer = code.min(31);
        self
    }
    /// Outstanding RDMA READs/atomics this side may issue (default 1).
    pub fn max_rd_atomic(mut self, n: u8) -> Self {
        self.reliability.max_rd_atomic = n.max(1);
        self
    }
}

pub(crate) struct QpInner {
    qp: *mut sys::ibv_qp,
    /// The number completions of this queue pair carry.
    pub(crate) qp_num: u32,
    /// Every verb call on `qp` is made inside it; closed to destroy `qp`
    /// while handles remain (see [`QpInner::destroy`]).
    gate: Gate,
    /// Why SafeVerbs moved the queue pair to ERR, or destroyed it, if it did
    /// (the first cause): what later posts are refused with, and what a
    /// flush resolves with.
    shutdown: OnceLock<Shutdown>,
    /// Why SafeVerbs destroyed the queue pair with requests outstanding, if
    /// it did: what those requests resolve with (their completions never
    /// come, so whether they executed is not known, whatever shut the queue
    /// pair down before).
    destroyed: OnceLock<Shutdown>,
    port: PortInfo,
    psn: u32,
    /// The longest message a send or write may carry inline.
    pub(crate) max_inline: u32,
    /// Unsignaled sends no signaled one covers yet.
    pub(crate) uncovered: Uncovered,
    send_credits: Credits,
    recv_credits: Credits,
    reliability: Reliability,
    fingerprint: (u64, &'static str),
    pub(crate) send_cq: Arc<CqInner>,
    pub(crate) recv_cq: Arc<CqInner>,
    pub(crate) pd: Arc<PdInner>,
}

// SAFETY: an `ibv_qp` may be posted to from any thread (providers lock
// their queues); the rest is atomics and plain data.
unsafe impl Send for QpInner {}
// SAFETY: as above.
unsafe impl Sync for QpInner {}

impl Drop for QpInner {
    fn drop(&mut self) {
        // No request is in flight (each holds an `Arc<QpInner>` until its
        // completion is reaped or it is failed by `destroy`), and nobody
        // is inside the gate (they borrow `self`): unless `destroy` already
        // did, this destroys `qp`.
        if self.gate.close() {
            self.destroy_qp();
        }
        self.send_cq.unreserve(self.send_credits.max() as usize);
        self.recv_cq.unreserve(self.recv_credits.max() as usize);
    }
}

/// A verb call on a queue pair in progress: made inside its [`Gate`], so
/// `ibv_destroy_qp` cannot run meanwhile. Dropping it leaves the gate;
/// the last one out of a closed gate destroys the queue pair.
pub(crate) struct Inside<'a>(&'a QpInner);

impl Inside<'_> {
    /// The live `ibv_qp`, for the verb call this guard covers.
    pub(crate) fn raw(&self) -> *mut sys::ibv_qp {
        self.0.qp
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        if self.0.gate.leave() {
            self.0.finish_destroying();
        }
    }
}

impl QpInner {
    /// Enters the gate for a verb call on the queue pair (see [`Inside`]);
    /// refused, with the cause, once it is destroyed or being destroyed.
    pub(crate) fn enter(&self) -> Result<Inside<'_>> {
        let open = self.gate.enter();
        let inside = Inside(self);
        if open {
            return Ok(inside);
        }
        drop(inside);
        Err(Error::ShutDown(
            self.shutdown_cause().unwrap_or(Shutdown::Dropped),
        ))
    }

    /// Destroys the queue pair for `cause`, now or when the verb calls in
    /// progress on it end, while handles to it may remain: every request
    /// outstanding on it then resolves with [`Error::ShutDown`]`(cause)` and
    /// hands its segment back, and later posts are refused with the first
    /// shutdown cause.
    ///
    /// For when no flush can come ([`Shutdown::CqFailed`], or a queue pair
    /// that cannot be moved to ERR): after `ibv_destroy_qp` returns, the
    /// device touches none of the requests' memory (they go with the queue
    /// pair, without completions), so their resources can be handed back
    /// without one.
    pub(crate) fn destroy(&self, cause: Shutdown) {
        let _ = self.destroyed.set(cause);
        let _ = self.shutdown.set(cause);
        if self.gate.close() {
            self.finish_destroying();
        }
    }

    /// The destruction, by the one thread [`Gate`] chose: outside every
    /// verb call, after which nobody enters.
    fn finish_destroying(&self) {
        if !self.destroy_qp() {
            // The device may still be using the requests' memory: it stays
            // with them (leaked), never handed back.
            return;
        }
        self.send_cq.fail_requests_of(self);
        if !Arc::ptr_eq(&self.send_cq, &self.recv_cq) {
            self.recv_cq.fail_requests_of(self);
        }
    }

    /// `ibv_destroy_qp`; `false` if it failed. Called once, by the thread
    /// the gate chose.
    fn destroy_qp(&self) -> bool {
        // SAFETY: `qp` came from `ibv_create_qp`; the gate is closed and
        // empty and chose this caller alone, so no verb call on `qp` runs
        // now or later, and it is destroyed once.
        let rc = unsafe { self.pd.device.inner.provider.destroy_qp(self.qp) };
        if rc != 0 {
            tracing::error!(rc, qp_num = self.qp_num, "ibv_destroy_qp failed");
        }
        rc == 0
    }

    fn modify(&self, attr: &mut sys::ibv_qp_attr, mask: sys::ibv_qp_attr_mask) -> Result<()> {
        let inside = self.enter()?;
        // SAFETY: `qp` is live (we are inside its gate); `attr` is valid
        // for the fields `mask` names.
        let rc = unsafe {
            self.pd
                .device
                .inner
                .provider
                .modify_qp(inside.raw(), attr, mask.0 as i32)
        };
        drop(inside);
        if rc != 0 {
            return Err(Error::errno("ibv_modify_qp", rc));
        }
        Ok(())
    }

    pub(crate) fn cq(&self, queue: Queue) -> &Arc<CqInner> {
        match queue {
            Queue::Send => &self.send_cq,
            Queue::Recv => &self.recv_cq,
        }
    }

    fn credits(&self, queue: Queue) -> &Credits {
        match queue {
            Queue::Send => &self.send_credits,
            Queue::Recv => &self.recv_credits,
        }
    }

    /// Takes one slot of `queue`.
    pub(crate) fn take_credit(&self, queue: Queue) -> bool {
        self.credits(queue).take(1)
    }

    /// Gathers `n` slots of the send queue into `g` (see [`Credits`]).
    pub(crate) fn gather_send_credits(&self, n: u32, g: &mut Gathered) -> bool {
        self.send_credits.gather(n, g)
    }

    /// Gives back the send slots `g` gathered.
    pub(crate) fn abandon_send_credits(&self, g: &mut Gathered) {
        self.send_credits.abandon(g);
    }

    /// Reaps finished work of `queue` (which returns slots), then tries
    /// `take`; when there is no room yet, asks to be polled again
    /// (backpressure: the post waits, it does not overrun the queue).
    pub(crate) fn poll_credits(
        &self,
        queue: Queue,
        cx: &mut Context<'_>,
        take: impl FnOnce(&Self) -> bool,
    ) -> Poll<()> {
        if let Err(e) = self.cq(queue).poll() {
            tracing::error!(%e, "polling the completion queue failed");
        }
        if take(self) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The send queue's depth.
    pub(crate) fn max_send_wr(&self) -> u32 {
        self.send_credits.max()
    }

    pub(crate) fn release_credit(&self, queue: Queue) {
        self.credits(queue).give();
    }

    fn in_flight(&self) -> u32 {
        // The unsignaled chain's spare credit carries no request.
        let sends = self
            .send_credits
            .used()
            .saturating_sub(self.uncovered.spare());
        sends + self.recv_credits.used()
    }

    fn to_error(&self) -> Result<()> {
        let mut attr = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_ERR,
            ..Default::default()
        };
        self.modify(&mut attr, sys::ibv_qp_attr_mask::IBV_QP_STATE)
    }

    /// Moves the QP to ERR for `cause`: every request outstanding on it is
    /// flushed, and each resolves with [`Error::ShutDown`] naming the first
    /// cause recorded. Never waits.
    pub(crate) fn shut_down(self: &Arc<Self>, cause: Shutdown) {
        let _ = self.shutdown.set(cause);
        match self.to_error() {
            // Unsignaled requests that ran give no completion, and nothing
            // signaled follows them any more: cover them.
            Ok(()) => Uncovered::cover(self),
            // Destroyed already: nothing is left to flush.
            Err(Error::ShutDown(_)) => {}
            // No flush will come: destroying it is the only other way to
            // know the device is done with the requests' memory.
            Err(e) => {
                tracing::error!(%e, %cause, "could not move the queue pair to ERR; destroying it");
                self.destroy(cause);
            }
        }
    }

    /// Why SafeVerbs shut the queue pair down, if it did.
    pub(crate) fn shutdown_cause(&self) -> Option<Shutdown> {
        self.shutdown.get().copied()
    }

    /// What a completion of this queue pair means for its request: a flush
    /// after [`shut_down`](Self::shut_down) names the cause; the end of a
    /// request that the destruction overtook
    /// ([`RawCompletion::destroyed`]) names the destruction's.
    pub(crate) fn outcome(&self, completion: RawCompletion) -> Result<Completion> {
        let cause = if completion.destroyed {
            self.destroyed.get()
        } else if completion.status == WcStatus::WR_FLUSH_ERR {
            self.shutdown.get()
        } else {
            None
        };
        match cause {
            Some(&cause) => Err(Error::ShutDown(cause)),
            None => completion.into_result(),
        }
    }
}

/// A 24-bit starting packet sequence number, different for every QP.
fn random_psn() -> u32 {
    use std::hash::BuildHasher;
    // Each `RandomState` is seeded with fresh random keys.
    let h = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (h as u32) & 0x00ff_ffff
}

/// A queue pair of transport `T` (`Rc`, `Uc`) in state `S` (`Init`, `Rtr`,
/// `Rts`, `Failed`).
///
/// Transitions consume the value and return the next state (or the old one
/// with the error). The state is in the type: `send`, `write` and `read`
/// exist only on `Rts`, `recv` from `Init` on.
///
/// Dropping a queue pair never waits. With work in flight, or futures
/// still waiting for room in its queues, it moves the queue pair to ERR:
/// each outstanding request is flushed, as is each waiting future's once
/// it finds room, and resolves with
/// [`Error::ShutDown`]`(`[`Shutdown::Dropped`]`)`, and the queue pair
/// is destroyed when the last flush has been reaped: by the completion
/// queue's next poll (a pending future, the event driver,
/// [`CompletionQueue::poll`]), or, once every handle to the completion
/// queue is dropped too, by a background reaper.
pub struct QueuePair<T: Transport, S: State> {
    pub(crate) inner: Arc<QpInner>,
    _type: PhantomData<fn() -> (T, S)>,
}

impl<T: Transport, S: State> fmt::Debug for QueuePair<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePair")
            .field("transport", &T::KIND)
            .field("state", &std::any::type_name::<S>())
            .field("qp_num", &self.inner.qp_num)
            .field("in_flight", &self.inner.in_flight())
            .finish()
    }
}

impl<T: Transport, S: State> Drop for QueuePair<T, S> {
    fn drop(&mut self) {
        // Every request in flight (in its slot) and every future still
        // waiting for room holds a reference to the queue pair. While any
        // does, shut it down, so that all of them are flushed (the latter
        // once they post: with the handle gone, nothing else would flush or
        // destroy what they post). Alone, this handle destroys the queue
        // pair as it goes.
        if Arc::get_mut(&mut self.inner).is_none() {
            self.inner.shut_down(Shutdown::Dropped);
        }
    }
}

/// A failed transition: the error, and the queue pair in the state it was.
pub struct TransitionError<Q> {
    /// What went wrong.
    pub error: Error,
    /// The queue pair, unchanged.
    pub qp: Q,
}

impl<Q> fmt::Debug for TransitionError<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}
impl<Q> fmt::Display for TransitionError<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}
impl<Q> std::error::Error for TransitionError<Q> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
impl<Q> From<TransitionError<Q>> for Error {
    fn from(e: TransitionError<Q>) -> Self {
        e.error
    }
}

impl<T: Transport, S: State> QueuePair<T, S> {
    fn from_inner(inner: Arc<QpInner>) -> Self {
        Self {
            inner,
            _type: PhantomData,
        }
    }

    /// The same queue pair in another state, without running `Drop`.
    fn into_state<S2: State>(self) -> QueuePair<T, S2> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Arc` is
        // moved out exactly once.
        let inner = unsafe { std::ptr::read(&this.inner) };
        QueuePair::from_inner(inner)
    }

    /// The queue pair number.
    pub fn qp_num(&self) -> u32 {
        self.inner.qp_num
    }

    /// The longest message [`send_inline`](Self::send_inline) and
    /// [`write_inline`](Self::write_inline) take: what the provider allows
    /// for the [`max_inline_data`](QpBuilder::max_inline_data) asked, at
    /// most [`MAX_INLINE`](crate::MAX_INLINE); 0 unless asked.
    pub fn max_inline_data(&self) -> usize {
        self.inner.max_inline as usize
    }

    /// Requests posted on this queue pair whose completion has not been
    /// reaped yet.
    pub fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    /// What the peer needs to connect to this queue pair; send it with
    /// [`exchange`](crate::exchange).
    pub fn endpoint(&self) -> Endpoint {
        let port = &self.inner.port;
        Endpoint {
            transport: T::KIND,
            qpn: self.inner.qp_num,
            psn: self.inner.psn,
            lid: port.lid,
            gid: port.gid,
            mtu: port.active_mtu,
            port: port.port,
            fingerprint: self.inner.fingerprint.0,
        }
    }

    /// Moves the queue pair to the error state: every outstanding request
    /// completes with `WR_FLUSH_ERR` and its segment comes back.
    pub fn into_error(self) -> Result<QueuePair<T, Failed>, TransitionError<Self>> {
        match self.inner.to_error() {
            Ok(()) => Ok(self.into_state()),
            Err(error) => Err(TransitionError { error, qp: self }),
        }
    }
}

impl<T: Transport> QueuePair<T, Init> {
    /// INIT → RTR: connects the receive side to the peer's endpoint.
    pub fn to_rtr(self, remote: &Endpoint) -> Result<QueuePair<T, Rtr>, TransitionError<Self>> {
        match self.rtr(remote) {
            Ok(()) => Ok(self.into_state()),
            Err(error) => Err(TransitionError { error, qp: self }),
        }
    }

    fn rtr(&self, remote: &Endpoint) -> Result<()> {
        let inner = &self.inner;
        // The checks of a decoded endpoint, for one built by hand: each
        // names its field, where the verb would say only EINVAL.
        remote.validate()?;
        if remote.transport != T::KIND {
            return Err(Error::TransportMismatch {
                local: T::KIND,
                remote: remote.transport,
            });
        }
        let (local_fp, what) = inner.fingerprint;
        if local_fp != remote.fingerprint {
            return Err(crate::setup::connection::fingerprint_error(
                what,
                local_fp,
                remote.fingerprint,
            ));
        }
        let port = &inner.port;
        let mut attr = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_RTR,
            path_mtu: mtu_enum(port.active_mtu.min(remote.mtu)),
            dest_qp_num: remote.qpn,
            rq_psn: remote.psn,
            max_dest_rd_atomic: inner.reliability.max_rd_atomic,
            min_rnr_timer: inner.reliability.min_rnr_timer,
            ..Default::default()
        };
        attr.ah_attr.dlid = remote.lid;
        attr.ah_attr.port_num = port.port;
        if port.ethernet || remote.gid != [0; 16] {
            attr.ah_attr.is_global = 1;
            attr.ah_attr.grh.dgid.raw = remote.gid;
            attr.ah_attr.grh.sgid_index = port.gid_index;
            attr.ah_attr.grh.hop_limit = 64;
        }
        use sys::ibv_qp_attr_mask as M;
        let mut mask = M::IBV_QP_STATE
            | M::IBV_QP_AV
            | M::IBV_QP_PATH_MTU
            | M::IBV_QP_DEST_QPN
            | M::IBV_QP_RQ_PSN;
        if T::RELIABLE {
            mask = mask | M::IBV_QP_MAX_DEST_RD_ATOMIC | M::IBV_QP_MIN_RNR_TIMER;
        }
        inner.modify(&mut attr, mask)
    }

    /// INIT → RTR → RTS in one call. On failure the queue pair is
    /// destroyed (after reaping any posted receives) and the error returned.
    pub fn connect(self, remote: &Endpoint) -> Result<QueuePair<T, Rts>> {
        Ok(self.to_rtr(remote)?.to_rts()?)
    }
}

impl<T: Transport> QueuePair<T, Rtr> {
    /// RTR → RTS: the send side starts.
    pub fn to_rts(self) -> Result<QueuePair<T, Rts>, TransitionError<Self>> {
        let r = self.inner.reliability;
        let mut attr = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_RTS,
            sq_psn: self.inner.psn,
            timeout: r.timeout,
            retry_cnt: r.retry_cnt,
            rnr_retry: r.rnr_retry,
            max_rd_atomic: r.max_rd_atomic,
            ..Default::default()
        };
        use sys::ibv_qp_attr_mask as M;
        let mut mask = M::IBV_QP_STATE | M::IBV_QP_SQ_PSN;
        if T::RELIABLE {
            mask = mask
                | M::IBV_QP_TIMEOUT
                | M::IBV_QP_RETRY_CNT
                | M::IBV_QP_RNR_RETRY
                | M::IBV_QP_MAX_QP_RD_ATOMIC;
        }
        match self.inner.modify(&mut attr, mask) {
            Ok(()) => Ok(self.into_state()),
            Err(error) => Err(TransitionError { error, qp: self }),
        }
    }
}

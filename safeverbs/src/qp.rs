//! Queue pairs: a builder, the typestate, connection, and teardown.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use safeverbs_sys as sys;

use crate::cq::{CompletionQueue, CqInner, Queue};
use crate::device::{mtu_enum, PortInfo};
use crate::endpoint::Endpoint;
use crate::pd::{PdInner, ProtectionDomain};
use crate::transport::{Failed, Init, Rc, Rtr, Rts, State, Transport};
use crate::{Error, Result};

/// How long dropping a queue pair waits for its flushed requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of the reliable transport (ignored by UC).
#[derive(Debug, Clone, Copy)]
struct Reliability {
    timeout: u8,
    retry_cnt: u8,
    rnr_retry: u8,
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
            reliability: Reliability {
                timeout: 14,
                retry_cnt: 7,
                rnr_retry: 7,
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
        let limit = device.limits().max_qp_wr;
        for (what, n) in [
            ("max_send_wr", self.max_send_wr),
            ("max_recv_wr", self.max_recv_wr),
        ] {
            if n == 0 || n > limit {
                return Err(Error::BadSelection(format!(
                    "{what} = {n} is not possible on {} (1..={limit})",
                    device.name()
                )));
            }
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
                max_inline_data: 0,
            },
            qp_type: T::QPT,
            sq_sig_all: 0,
            ..Default::default()
        };
        // SAFETY: the PD and both CQs are alive (we hold them); `init` is a
        // valid attribute block.
        let qp = unsafe { sys::ibv_create_qp(self.pd.inner.pd, &mut init) };
        if qp.is_null() {
            unreserve();
            let mut err = Error::last_os("ibv_create_qp");
            if let Error::Verb { hint, .. } = &mut err {
                *hint = Some(
                    "the device may be out of queue pairs (DeviceLimits::max_qp) or the queue \
                     depths too large",
                );
            }
            return Err(err);
        }
        let inner = Arc::new(QpInner {
            qp,
            port: device.port().clone(),
            psn: random_psn(),
            send_credits: Credits::new(self.max_send_wr),
            recv_credits: Credits::new(self.max_recv_wr),
            reliability: self.reliability,
            fingerprint: self.fingerprint,
            send_cq: send_cq.inner,
            recv_cq: recv_cq.inner,
            _pd: self.pd.inner,
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
    /// (0..=7, default 7).
    pub fn retry_count(mut self, n: u8) -> Self {
        self.reliability.retry_cnt = n.min(7);
        self
    }
    /// Receiver-not-ready retries (0..=7, 7 = forever; default 7).
    pub fn rnr_retry(mut self, n: u8) -> Self {
        self.reliability.rnr_retry = n.min(7);
        self
    }
    /// Outstanding RDMA READs/atomics this side may issue (default 1).
    pub fn max_rd_atomic(mut self, n: u8) -> Self {
        self.reliability.max_rd_atomic = n.max(1);
        self
    }
}

/// Send- or receive-queue slots in use.
pub(crate) struct Credits {
    used: AtomicU32,
    max: u32,
}

impl Credits {
    fn new(max: u32) -> Self {
        Self {
            used: AtomicU32::new(0),
            max,
        }
    }
    /// Takes `n` slots at once (all or none).
    fn take(&self, n: u32) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }
    fn give(&self) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
    }
    fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }
}

pub(crate) struct QpInner {
    qp: *mut sys::ibv_qp,
    port: PortInfo,
    psn: u32,
    send_credits: Credits,
    recv_credits: Credits,
    reliability: Reliability,
    fingerprint: (u64, &'static str),
    pub(crate) send_cq: Arc<CqInner>,
    pub(crate) recv_cq: Arc<CqInner>,
    _pd: Arc<PdInner>,
}

// SAFETY: an `ibv_qp` may be posted to from any thread (providers lock
// their queues); the rest is atomics and plain data.
unsafe impl Send for QpInner {}
// SAFETY: as above.
unsafe impl Sync for QpInner {}

impl Drop for QpInner {
    fn drop(&mut self) {
        // SAFETY: `qp` came from `ibv_create_qp`. No request is in flight:
        // each holds an `Arc<QpInner>` until its completion is reaped.
        let rc = unsafe { sys::ibv_destroy_qp(self.qp) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_destroy_qp failed");
        }
        self.send_cq.unreserve(self.send_credits.max as usize);
        self.recv_cq.unreserve(self.recv_credits.max as usize);
    }
}

impl QpInner {
    pub(crate) fn raw(&self) -> *mut sys::ibv_qp {
        self.qp
    }

    fn qp_num(&self) -> u32 {
        // SAFETY: `qp` is live while `self` is.
        unsafe { (*self.qp).qp_num }
    }

    fn modify(&self, attr: &mut sys::ibv_qp_attr, mask: sys::ibv_qp_attr_mask) -> Result<()> {
        // SAFETY: `qp` is live; `attr` is valid for the fields `mask` names.
        let rc = unsafe { sys::ibv_modify_qp(self.qp, attr, mask.0 as i32) };
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

    /// Takes `n` slots of `queue` at once (all or none).
    pub(crate) fn take_credits(&self, queue: Queue, n: u32) -> bool {
        self.credits(queue).take(n)
    }

    /// Takes `n` slots of `queue`, reaping finished work first (which
    /// returns slots); when there is no room yet, asks to be polled again
    /// (backpressure: the post waits, it does not overrun the queue).
    pub(crate) fn poll_credits(&self, queue: Queue, n: u32, cx: &mut Context<'_>) -> Poll<()> {
        if let Err(e) = self.cq(queue).poll() {
            tracing::error!(%e, "polling the completion queue failed");
        }
        if self.take_credits(queue, n) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The send queue's depth.
    pub(crate) fn max_send_wr(&self) -> u32 {
        self.send_credits.max
    }

    pub(crate) fn release_credit(&self, queue: Queue) {
        self.credits(queue).give();
    }

    fn in_flight(&self) -> u32 {
        self.send_credits.used() + self.recv_credits.used()
    }

    fn to_error(&self) -> Result<()> {
        let mut attr = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_ERR,
            ..Default::default()
        };
        self.modify(&mut attr, sys::ibv_qp_attr_mask::IBV_QP_STATE)
    }

    /// Moves the QP to ERR and reaps the flushed requests, so that their
    /// resources go back before the QP is destroyed.
    fn drain(&self) {
        if self.in_flight() == 0 {
            return;
        }
        if let Err(e) = self.to_error() {
            tracing::warn!(%e, "could not move the queue pair to ERR while dropping it");
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.in_flight() > 0 {
            let reaped = self.send_cq.poll().unwrap_or(0) + self.recv_cq.poll().unwrap_or(0);
            if Instant::now() > deadline {
                tracing::error!(
                    in_flight = self.in_flight(),
                    "flushes did not arrive in {DRAIN_TIMEOUT:?}; leaking the queue pair"
                );
                return;
            }
            if reaped == 0 {
                std::thread::yield_now();
            }
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
/// exist only on `Rts`, `recv` from `Init` on. Dropping a queue pair with
/// work in flight moves it to ERR and reaps the flushes before destroying
/// it.
pub struct QueuePair<T: Transport, S: State> {
    pub(crate) inner: Arc<QpInner>,
    _type: PhantomData<fn() -> (T, S)>,
}

impl<T: Transport, S: State> fmt::Debug for QueuePair<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePair")
            .field("transport", &T::KIND)
            .field("state", &std::any::type_name::<S>())
            .field("qp_num", &self.inner.qp_num())
            .field("in_flight", &self.inner.in_flight())
            .finish()
    }
}

impl<T: Transport, S: State> Drop for QueuePair<T, S> {
    fn drop(&mut self) {
        self.inner.drain();
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
        self.inner.qp_num()
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
            qpn: self.inner.qp_num(),
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
        if remote.transport != T::KIND {
            return Err(Error::TransportMismatch {
                local: T::KIND,
                remote: remote.transport,
            });
        }
        let (local_fp, what) = inner.fingerprint;
        if local_fp != remote.fingerprint {
            return Err(Error::Fingerprint {
                what,
                local: local_fp,
                remote: remote.fingerprint,
            });
        }
        let port = &inner.port;
        let mut attr = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_RTR,
            path_mtu: mtu_enum(port.active_mtu.min(remote.mtu)),
            dest_qp_num: remote.qpn,
            rq_psn: remote.psn,
            max_dest_rd_atomic: inner.reliability.max_rd_atomic,
            min_rnr_timer: 12,
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

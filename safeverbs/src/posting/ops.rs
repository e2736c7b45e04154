//! Operations as futures: `send`, `recv`, `write`, `read`.
//!
//! Each takes its segment by value and resolves to
//! `(Result<Completion>, Segment)`. The work request's resources (segment,
//! queue pair) live in the completion queue's slot table, not in the
//! future: dropping the future mid-flight abandons them there until the
//! completion (or the flush) is reaped, and `mem::forget` only leaks.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use safeverbs_sys as sys;

use crate::completions::completion::Completion;
use crate::completions::cq::{CqInner, Queue, Resources};
use crate::completions::slots::WrId;
use crate::memory::mode::{Mode, Writable};
use crate::memory::pod::RdmaBuf;
use crate::memory::remote::RemoteSegment;
use crate::memory::segment::{RawSegment, Segment};
use crate::posting::deadline::Deadline;
use crate::posting::unsignaled::Joining;
use crate::queue_pair::qp::{QpInner, QueuePair};
use crate::queue_pair::transport::{CanRecv, CanSend, Reliable, State, Transport};
use crate::{Error, Result, Shutdown};

/// What to post.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    Send {
        imm: Option<u32>,
    },
    Write {
        addr: u64,
        rkey: u32,
        imm: Option<u32>,
    },
    Read {
        addr: u64,
        rkey: u32,
    },
    Recv,
}

impl Request {
    /// An RDMA WRITE (with immediate data or not) into `remote`.
    pub(crate) fn write_to<B: ?Sized>(remote: &RemoteSegment<B>, imm: Option<u32>) -> Self {
        Request::Write {
            addr: remote.addr,
            rkey: remote.rkey,
            imm,
        }
    }

    fn queue(self) -> Queue {
        match self {
            Request::Recv => Queue::Recv,
            _ => Queue::Send,
        }
    }
}

/// Where a single request is in its life: every single-request future
/// ([`Post`], [`Inline`](crate::Inline)) runs this phase machine, over
/// what it carries until it is posted (`P`: a segment, or inline bytes).
pub(crate) enum Phase<P> {
    /// Not posted yet: the queue was full.
    Waiting {
        request: Request,
        payload: P,
        qp: Arc<QpInner>,
    },
    /// Posted; what the NIC may use is in `cq`'s slot table under `id`.
    Posted { cq: Arc<CqInner>, id: WrId },
    /// Refused before posting.
    Failed { error: Error, payload: P },
    /// The output was taken.
    Done,
}

/// What a request carries to its posting: [`Payload::post`] posts it.
pub(crate) trait Payload: Sized {
    /// Posts `request` carrying `self`; a credit has been taken and the
    /// checks of its kind passed.
    fn post(self, qp: &Arc<QpInner>, request: Request) -> Phase<Self>;
}

/// What a single request's future hands back with its result.
pub(crate) enum Back<P> {
    /// Never posted: what it carried.
    Unposted(P),
    /// Completed: what the slot table kept for the NIC (the segment; none
    /// for an inline request, whose bytes the provider copied).
    Held(Option<RawSegment>),
}

/// The phase machine of one request and its deadline (see [`Phase`]).
pub(crate) struct InFlight<P> {
    phase: Phase<P>,
    deadline: Option<Deadline>,
}

impl<P> InFlight<P> {
    /// Posts at once if the queue has room (`checked` is what the checks
    /// before posting found), else waits for it.
    pub(crate) fn start(
        qp: &Arc<QpInner>,
        request: Request,
        payload: P,
        checked: Result<()>,
    ) -> Self
    where
        P: Payload,
    {
        let phase = if let Err(error) = checked {
            Phase::Failed { error, payload }
        } else if qp.take_credit(request.queue()) {
            payload.post(qp, request)
        } else {
            Phase::Waiting {
                request,
                payload,
                qp: qp.clone(),
            }
        };
        Self {
            phase,
            deadline: None,
        }
    }

    /// Refused before posting: resolves at once to `error`.
    pub(crate) fn failed(error: Error, payload: P) -> Self {
        Self {
            phase: Phase::Failed { error, payload },
            deadline: None,
        }
    }

    /// See [`Post::timeout`].
    pub(crate) fn set_timeout(&mut self, after: Duration) {
        self.deadline = Some(Deadline::after(after));
    }

    /// The phase, as `Debug` shows it.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.phase {
            Phase::Waiting { .. } => "waiting for a queue slot",
            Phase::Posted { .. } => "posted",
            Phase::Failed { .. } => "failed",
            Phase::Done => "done",
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<(Result<Completion>, Back<P>)>
    where
        P: Payload,
    {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Waiting {
                    request,
                    payload,
                    qp,
                } => {
                    let queue = request.queue();
                    if qp
                        .poll_credits(queue, cx, |qp| qp.take_credit(queue))
                        .is_ready()
                    {
                        self.phase = payload.post(&qp, request);
                        continue;
                    }
                    if let Some(deadline) = self.deadline.filter(|d| d.passed(cx, true)) {
                        let error = Error::Timeout(deadline.bound(), "room in the queue");
                        return Poll::Ready((Err(error), Back::Unposted(payload)));
                    }
                    self.phase = Phase::Waiting {
                        request,
                        payload,
                        qp,
                    };
                    return Poll::Pending;
                }
                Phase::Failed { error, payload } => {
                    return Poll::Ready((Err(error), Back::Unposted(payload)));
                }
                Phase::Posted { cq, id } => {
                    if let Poll::Ready((completion, res)) = cq.poll_request(id, cx) {
                        let result = res.qp.outcome(completion);
                        return Poll::Ready((result, Back::Held(res.segment)));
                    }
                    if let Some(deadline) = self.deadline {
                        if deadline.passed(cx, cq.busy_poll()) {
                            // The flush resolves the request; no need to
                            // check again.
                            self.deadline = None;
                            cq.shut_down_owner(id, Shutdown::DeadlineExpired);
                        }
                    }
                    self.phase = Phase::Posted { cq, id };
                    return Poll::Pending;
                }
                Phase::Done => return polled_after_ready(),
            }
        }
    }
}

impl<P> Drop for InFlight<P> {
    fn drop(&mut self) {
        if let Phase::Posted { cq, id } = &self.phase {
            // The NIC may still use the segment: leave it in the slot table
            // (abandoned) until the completion is reaped. If it already
            // completed, its resources are dropped here, outside the lock.
            let released = cq.slots().abandon(*id);
            drop(released);
        }
    }
}

/// A posted (or about to be posted) operation. Resolves to the completion
/// and the segment, handed back.
///
/// Polling it polls its completion queue (busy-poll mode), so it makes
/// progress on any executor. It is `Send + Sync + 'static`. Give it a bound
/// with [`timeout`](Self::timeout).
///
/// It is posted when it is created if its queue has room; otherwise when
/// it is polled and finds room. Futures that wait so are posted in the
/// order they find it, not the order they were created: where the order
/// of messages matters and the queue may be full, await each before
/// creating the next, or post them as one batch.
///
/// Like other futures it must not be polled after it returned `Ready`:
/// that panics in debug builds and stays `Pending` in release builds.
#[must_use = "the operation is posted; await it to get the segment back"]
pub struct Post<T: ?Sized, M> {
    flight: InFlight<RawSegment>,
    _type: PhantomData<fn() -> Segment<T, M>>,
}

impl<T: ?Sized + RdmaBuf, M: Mode> std::fmt::Debug for Post<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Post")
            .field("phase", &self.flight.describe())
            .finish()
    }
}

impl<T: ?Sized + RdmaBuf, M: Mode> Post<T, M> {
    fn start(qp: &Arc<QpInner>, request: Request, segment: RawSegment) -> Self {
        let checked = check_segment(qp, &segment);
        Self::of(InFlight::start(qp, request, segment, checked))
    }

    fn fail(error: Error, segment: RawSegment) -> Self {
        Self::of(InFlight::failed(error, segment))
    }

    fn of(flight: InFlight<RawSegment>) -> Self {
        Self {
            flight,
            _type: PhantomData,
        }
    }

    /// An operation refused before posting: resolves at once to `error`
    /// and the segment, handed back.
    pub(crate) fn refused(error: Error, segment: Segment<T, M>) -> Self {
        Self::fail(error, segment.raw)
    }
}

impl<T: ?Sized, M> Post<T, M> {
    /// Bounds the operation to `after` from now.
    ///
    /// If it is still waiting for room in its queue then, it is not posted
    /// and resolves with [`Error::Timeout`]. If it is posted, RDMA cannot
    /// cancel it alone: its queue pair is shut down, and the operation
    /// resolves with [`Error::ShutDown`]`(`[`Shutdown::DeadlineExpired`]`)`
    /// (as does every other request outstanding on that queue pair) once
    /// its flush is reaped, with its segment.
    ///
    /// ```no_run
    /// # use safeverbs::*;
    /// # async fn f(qp: QueuePair<Rc, Rts>, seg: Segment<[u8; 64], Rw>) {
    /// use std::time::Duration;
    /// let (res, seg) = qp.recv(seg).timeout(Duration::from_secs(5)).await;
    /// if let Err(Error::ShutDown(Shutdown::DeadlineExpired)) = res {
    ///     // nothing arrived in 5 s; the queue pair is in the error state
    /// }
    /// # }
    /// ```
    pub fn timeout(mut self, after: Duration) -> Self {
        self.flight.set_timeout(after);
        self
    }
}

/// What every post checks before it reaches the provider: the queue pair
/// takes requests.
pub(crate) fn check_queue_pair(qp: &QpInner) -> Result<()> {
    // A queue pair SafeVerbs has shut down takes nothing more: a request
    // posted to it in ERR need not be flushed (rxe does not), so it would
    // never resolve.
    match qp.shutdown_cause() {
        Some(cause) => Err(Error::ShutDown(cause)),
        None => Ok(()),
    }
}

/// What every post of a segment checks before it reaches the provider.
pub(crate) fn check_segment(qp: &QpInner, segment: &RawSegment) -> Result<()> {
    check_queue_pair(qp)?;
    // The lkey is resolved in the QP's protection domain: a region of
    // another one (or of another device context) must not be posted.
    if !Arc::ptr_eq(&segment.region.pd, &qp.pd) {
        return Err(Error::Foreign(
            "the segment's region was registered on another protection domain",
        ));
    }
    if u32::try_from(segment.len).is_err() {
        return Err(Error::Limit {
            what: "bytes in one work request",
            value: segment.len as u64,
            min: 0,
            max: u32::MAX.into(),
            bound: "the verbs' 32-bit length".into(),
        });
    }
    Ok(())
}

impl RawSegment {
    /// The segment as one gather (or scatter) entry; [`check_segment`]
    /// passed (its length fits).
    pub(crate) fn sge(&self) -> sys::ibv_sge {
        sys::ibv_sge {
            addr: self.addr(),
            length: self.len as u32,
            lkey: self.region.lkey,
        }
    }
}

impl Payload for RawSegment {
    /// [`check_segment`] passed.
    fn post(self, qp: &Arc<QpInner>, request: Request) -> Phase<Self> {
        let sge = self.sge();
        // The SGE lies in the segment's region, registered on the QP's PD
        // (`check_segment`), and the slot table keeps the segment.
        match post_one(qp, request, sge, 0, Some(self), Signal::Signaled) {
            Posting::Posted(cq, id) => Phase::Posted { cq, id },
            Posting::Refused(error, Some(payload)) => Phase::Failed { error, payload },
            // `post_one` hands back what it was given.
            Posting::Refused(_, None) => Phase::Done,
        }
    }
}

/// What [`post_one`] did.
pub(crate) enum Posting {
    /// The request is the device's, its resources in `cq`'s slot table.
    Posted(Arc<CqInner>, WrId),
    /// The provider took nothing: the error, and what the slot held.
    Refused(Error, Option<RawSegment>),
}

/// Whether a send asks for a completion of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// It does (receives always do); a future waits for it.
    Signaled,
    /// It rides on a later signaled send (see `unsignaled.rs`); nobody
    /// waits for it.
    Unsignaled,
    /// The request that covers the chain of a queue pair shut down
    /// (`Uncovered::cover`): signaled, posted on the chain's spare credit,
    /// and nobody waits for it.
    Cover,
}

/// Posts `request` over `sge` with the extra `flags`, keeping `held` in the
/// slot table until its completion is reaped (or, unsignaled, until a
/// later signaled completion of its queue covers it); a credit of its
/// queue has been taken. `sge`'s bytes lie in `held`'s segment (registered
/// on the QP's PD), or, inline (`IBV_SEND_INLINE` in `flags`), in memory
/// the caller keeps alive until this returns: the provider copies them
/// while posting.
pub(crate) fn post_one(
    qp: &Arc<QpInner>,
    request: Request,
    mut sge: sys::ibv_sge,
    flags: u32,
    held: Option<RawSegment>,
    signal: Signal,
) -> Posting {
    let queue = request.queue();
    // A cover's credit is the chain's spare, which stays with the chain
    // if the cover is not posted.
    let release = |qp: &QpInner| {
        if signal != Signal::Cover {
            qp.release_credit(queue);
        }
    };
    let inside = match qp.enter() {
        Ok(inside) => inside,
        Err(error) => {
            release(qp);
            return Posting::Refused(error, held);
        }
    };
    // A send that joins or covers the chain of uncovered unsignaled sends
    // is posted under its lock, so the chain's order is the queue's.
    let mut chain = match queue {
        Queue::Send => qp.uncovered.lock_for(signal),
        Queue::Recv => None,
    };
    let joining = match chain.as_mut() {
        Some(c) => c.join(qp, signal),
        None => Joining::signaled(),
    };
    if signal == Signal::Cover && chain.as_ref().is_none_or(|c| c.is_empty()) {
        // Covered meanwhile, which gave the spare back: nothing to do.
        return Posting::Refused(Error::ShutDown(Shutdown::Dropped), None);
    }
    let rider = chain.as_ref().and_then(|c| c.tail());
    let signaled = joining.signaled;
    let cq = qp.cq(queue).clone();
    // The slot is taken before posting: the completion may be reaped
    // before `ibv_post_*` even returns. Nobody waits for an unsignaled
    // request: abandoned at once, it is released when it is reaped.
    let id = {
        let mut slots = cq.slots();
        let id = slots.acquire(Resources {
            segment: held,
            qp: qp.clone(),
            queue,
            rider,
        });
        if signal != Signal::Signaled {
            let none = slots.abandon(id);
            debug_assert!(none.is_none(), "a request just posted is not completed");
        }
        id
    };
    // `refused`: the provider pointed `bad_wr` at our request, so it took
    // nothing.
    let (rc, refused, verb) = match request {
        Request::Recv => {
            let mut wr = sys::ibv_recv_wr {
                wr_id: id.0,
                next: std::ptr::null_mut(),
                sg_list: &mut sge,
                num_sge: 1,
            };
            let mut bad = std::ptr::null_mut();
            // SAFETY: the QP is live (we are inside its gate); `wr` is a
            // one-element chain whose SGE lies in the held segment
            // (`post_one`'s contract), kept alive and unaliased by the slot
            // table until the completion is reaped (or the QP is destroyed).
            let rc = unsafe { sys::ibv_post_recv(inside.raw(), &mut wr, &mut bad) };
            (rc, std::ptr::eq(bad, &wr), "ibv_post_recv")
        }
        _ => {
            let mut wr = send_wr(id, &mut sge, request);
            if !signaled {
                wr.send_flags = 0;
            }
            wr.send_flags |= flags;
            let mut bad = std::ptr::null_mut();
            // SAFETY: as for the receive (an unsignaled request's slot is
            // kept until a later signaled completion of this queue, or its
            // own error or flush, is reaped: `unsignaled.rs`), or, inline,
            // the SGE's bytes are alive until this returns (`post_one`'s
            // contract) and the provider copies them before it returns
            // (`IBV_SEND_INLINE`, `ibv_post_send(3)`); remote address and
            // rkey are checked by the NIC against the peer's registration.
            let rc = unsafe { sys::ibv_post_send(inside.raw(), &mut wr, &mut bad) };
            (rc, std::ptr::eq(bad, &wr), "ibv_post_send")
        }
    };
    // In the queue (refused requests are not): the chain follows it.
    if let Some(chain) = chain.as_mut() {
        qp.uncovered
            .posted(qp, chain, id, joining, rc == 0 || !refused);
    }
    drop(chain);
    // Out of the gate before anything that may take the slot table's lock
    // (a destruction, which this may run, completes requests there).
    drop(inside);
    if rc == 0 {
        // Shut down before we posted (a future that waited for room was
        // checked when it was made, not since) or while we did: a request
        // queued in ERR need not be flushed (rxe does not). The move to ERR
        // enters the gate too: after we left it, and it flushes this
        // request with the rest; or before, and then the cause, recorded
        // before that entry, is seen here (the gate's word orders the two),
        // and moving to ERR again flushes what the first move missed.
        if let Some(cause) = qp.shutdown_cause() {
            qp.shut_down(cause);
        }
        return Posting::Posted(cq, id);
    }
    if !refused {
        // The provider may have queued the request before failing (rxe
        // does, when its doorbell fails, and leaves `bad_wr` NULL): the NIC
        // may still use the segment. Fail the queue pair, so that the
        // request is flushed, and wait for that like for any completion.
        tracing::error!(
            rc,
            verb,
            "post failed after queueing; shutting the queue pair down"
        );
        qp.shut_down(Shutdown::PostFailed(rc.abs()));
        return Posting::Posted(cq, id);
    }
    let cancelled = cq.slots().cancel(id);
    match cancelled {
        Some(res) => {
            release(qp);
            Posting::Refused(Error::errno(verb, rc), res.segment)
        }
        // The queue pair was destroyed while we posted, which completed the
        // request (credit included): it resolves like any completion.
        None => Posting::Posted(cq, id),
    }
}

pub(crate) fn send_wr(id: WrId, sge: &mut sys::ibv_sge, request: Request) -> sys::ibv_send_wr {
    use sys::ibv_wr_opcode as O;
    let mut wr = sys::ibv_send_wr {
        wr_id: id.0,
        next: std::ptr::null_mut(),
        sg_list: sge,
        num_sge: 1,
        send_flags: sys::ibv_send_flags::IBV_SEND_SIGNALED.0,
        ..Default::default()
    };
    let (opcode, imm) = match request {
        Request::Send { imm: None } => (O::IBV_WR_SEND, None),
        Request::Send { imm } => (O::IBV_WR_SEND_WITH_IMM, imm),
        Request::Write { addr, rkey, imm } => {
            wr.wr.rdma = sys::ibv_send_wr__bindgen_ty_2__bindgen_ty_1 {
                remote_addr: addr,
                rkey,
            };
            (
                if imm.is_some() {
                    O::IBV_WR_RDMA_WRITE_WITH_IMM
                } else {
                    O::IBV_WR_RDMA_WRITE
                },
                imm,
            )
        }
        Request::Read { addr, rkey } => {
            wr.wr.rdma = sys::ibv_send_wr__bindgen_ty_2__bindgen_ty_1 {
                remote_addr: addr,
                rkey,
            };
            (O::IBV_WR_RDMA_READ, None)
        }
        Request::Recv => (O::IBV_WR_SEND, None),
    };
    wr.opcode = opcode;
    if let Some(imm) = imm {
        wr.__bindgen_anon_1.imm_data = imm.to_be();
    }
    wr
}

impl<T: ?Sized + RdmaBuf, M: Mode> Future for Post<T, M> {
    type Output = (Result<Completion>, Segment<T, M>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (result, back) = std::task::ready!(self.flight.poll(cx));
        match back {
            Back::Unposted(segment) | Back::Held(Some(segment)) => {
                Poll::Ready((result, Segment::from_raw(segment)))
            }
            // Every request a `Post` posts holds its segment.
            Back::Held(None) => polled_after_ready(),
        }
    }
}

/// A future polled after it returned `Ready`, or in a state only a bug
/// could cause (its slot gone, its segment not kept): loud in debug
/// builds, `Pending` in release.
pub(crate) fn polled_after_ready<T>() -> Poll<T> {
    #[allow(clippy::panic)] // The documented contract of `Future::poll`.
    if cfg!(debug_assertions) {
        panic!("a SafeVerbs future was polled after it completed (or lost its request)");
    }
    tracing::error!("a SafeVerbs future was polled after it completed (or lost its request)");
    Poll::Pending
}

impl<T: Transport, S: State> QueuePair<T, S> {
    /// Sends the segment's bytes to the peer's next posted receive.
    pub fn send<B: ?Sized + RdmaBuf, M: Mode>(&self, segment: Segment<B, M>) -> Post<B, M>
    where
        S: CanSend,
    {
        Post::start(&self.inner, Request::Send { imm: None }, segment.raw)
    }

    /// Sends with 32 bits of immediate data, delivered in the peer's
    /// completion.
    pub fn send_with_imm<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segment: Segment<B, M>,
        imm: u32,
    ) -> Post<B, M>
    where
        S: CanSend,
    {
        Post::start(&self.inner, Request::Send { imm: Some(imm) }, segment.raw)
    }

    /// RDMA WRITE: copies the segment into the peer's memory at `remote`,
    /// which must be at least as long. Refused before posting otherwise.
    pub fn write<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segment: Segment<B, M>,
        remote: RemoteSegment<B>,
    ) -> Post<B, M>
    where
        S: CanSend,
    {
        self.write_request(segment, remote, None)
    }

    /// RDMA WRITE with immediate data: also consumes one of the peer's
    /// receives, which completes with `imm`.
    pub fn write_with_imm<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segment: Segment<B, M>,
        remote: RemoteSegment<B>,
        imm: u32,
    ) -> Post<B, M>
    where
        S: CanSend,
    {
        self.write_request(segment, remote, Some(imm))
    }

    fn write_request<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segment: Segment<B, M>,
        remote: RemoteSegment<B>,
        imm: Option<u32>,
    ) -> Post<B, M> {
        match remote.check_fits(segment.raw.len) {
            Ok(()) => Post::start(&self.inner, Request::write_to(&remote, imm), segment.raw),
            Err(e) => Post::fail(e, segment.raw),
        }
    }
}

impl<T: Transport, S: State> QueuePair<T, S> {
    /// RDMA READ: copies the peer's memory at `remote` into the segment,
    /// which must not be longer. Only on reliable transports.
    pub fn read<B: ?Sized + RdmaBuf, M>(
        &self,
        segment: Segment<B, M>,
        remote: RemoteSegment<B>,
    ) -> Post<B, M>
    where
        T: Reliable,
        S: CanSend,
        M: Writable,
    {
        match remote.check_fits(segment.raw.len) {
            Ok(()) => {
                let request = Request::Read {
                    addr: remote.addr,
                    rkey: remote.rkey,
                };
                Post::start(&self.inner, request, segment.raw)
            }
            Err(e) => Post::fail(e, segment.raw),
        }
    }
}

impl<T: Transport, S: State> QueuePair<T, S> {
    /// Posts a receive into the segment; it completes when a send (or a
    /// write with immediate data) from the peer arrives.
    pub fn recv<B: ?Sized + RdmaBuf, M>(&self, segment: Segment<B, M>) -> Post<B, M>
    where
        S: CanRecv,
        M: Writable,
    {
        Post::start(&self.inner, Request::Recv, segment.raw)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_future_polled_after_ready_panics_in_debug_builds() {
        let polled = std::panic::catch_unwind(super::polled_after_ready::<()>);
        assert_eq!(polled.is_err(), cfg!(debug_assertions));
    }
}

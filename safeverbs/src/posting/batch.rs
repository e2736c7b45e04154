//! Batched posting: several sends or RDMA WRITEs behind one doorbell, with
//! one completion.
//!
//! A batch is posted as one chain of work requests (one `ibv_post_send`);
//! only the last is signaled. Every request still owns a slot (and so a
//! library-owned `wr_id`); the unsignaled ones *ride* on the signaled one:
//! when its completion is reaped, theirs are completed with it. If the
//! queue pair fails, every request gets its own error or flush completion,
//! as the verbs specify, and the batch reports the first error.
//!
//! The segments travel in a `Vec` that the completion hands back: pass the
//! same vector to the next batch and steady state allocates nothing.

use std::future::Future;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use safeverbs_sys as sys;

use crate::completions::completion::{Completion, RawCompletion};
use crate::completions::cq::{CqInner, Queue, Resources};
use crate::completions::slots::WrId;
use crate::memory::mode::Mode;
use crate::memory::pod::RdmaBuf;
use crate::memory::remote::RemoteSegment;
use crate::memory::segment::Segment;
use crate::posting::deadline::Deadline;
use crate::posting::ops::{check_segment, polled_after_ready, send_wr, Request};
use crate::queue_pair::qp::{Gathered, QpInner, QueuePair};
use crate::queue_pair::transport::{CanSend, State, Transport};
use crate::{Error, Result, Shutdown};

/// The most requests one batch may hold.
pub const MAX_BATCH: usize = 32;

// Inline on purpose: boxing the ids would allocate once per batch.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Not posted yet: the send queue had no room for the whole batch;
    /// `gathered` holds the slots taken so far.
    Waiting {
        qp: Arc<QpInner>,
        gathered: Gathered,
    },
    /// Posted; `ids[..n]` are the slots, the last one signaled.
    Posted {
        cq: Arc<CqInner>,
        ids: [WrId; MAX_BATCH],
        n: usize,
    },
    /// Refused before (or while) posting.
    Failed(Error),
    /// The output was taken.
    Done,
}

/// A posted batch ([`QueuePair::write_batch`], [`QueuePair::send_batch`]).
/// Resolves to the completion of the last request (or the first error of
/// any) and the segments, in order.
///
/// A batch of 1..=[`MAX_BATCH`] requests (and no more than the send queue's
/// depth) is posted as one chain of work requests: one `ibv_post_send`, one
/// doorbell. Only the last request is signaled; each of the others still
/// owns a slot of the completion queue (and so a library-owned `wr_id`) and
/// completes with the signaled one when its completion is reaped. If the
/// queue pair fails, every request gets its own error or flush completion,
/// and the batch reports the first error. Until the whole chain fits in the
/// send queue the batch waits without posting anything, and no single post
/// can take the room it is gathering.
///
/// The segments travel in the `Vec` given to the batch, which the
/// completion hands back: pass the same vector to the next batch and steady
/// state allocates nothing. Like [`Post`](crate::Post), a batch takes a
/// deadline with [`timeout`](Self::timeout), and dropping it frees nothing
/// the NIC may still use.
#[must_use = "the batch is posted; await it to get the segments back"]
pub struct PostBatch<B: ?Sized, M> {
    phase: Phase,
    /// Before posting and after completion: the segments. While posted:
    /// empty, its allocation kept for the way back.
    segments: Vec<Segment<B, M>>,
    /// Remote targets (address, rkey), or `None` for sends.
    targets: [Option<(u64, u32)>; MAX_BATCH],
    deadline: Option<Deadline>,
    _type: PhantomData<fn() -> M>,
}

impl<B: ?Sized, M> std::fmt::Debug for PostBatch<B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match &self.phase {
            Phase::Waiting { .. } => "waiting for queue slots",
            Phase::Posted { .. } => "posted",
            Phase::Failed(_) => "failed",
            Phase::Done => "done",
        };
        f.debug_struct("PostBatch")
            .field("phase", &phase)
            .field("len", &self.segments.len())
            .finish()
    }
}

impl<B: ?Sized + RdmaBuf, M: Mode> PostBatch<B, M> {
    fn new(
        qp: &Arc<QpInner>,
        segments: Vec<Segment<B, M>>,
        targets: [Option<(u64, u32)>; MAX_BATCH],
        checked: Result<()>,
    ) -> Self {
        let mut this = Self {
            phase: Phase::Done,
            segments,
            targets,
            deadline: None,
            _type: PhantomData,
        };
        let n = this.segments.len();
        let checked = checked.and_then(|()| {
            this.segments
                .iter()
                .try_for_each(|seg| check_segment(qp, &seg.raw))
        });
        let mut gathered = Gathered::default();
        this.phase = match checked {
            Err(e) => Phase::Failed(e),
            Ok(()) if n == 0 || n > MAX_BATCH || n > qp.max_send_wr() as usize => {
                Phase::Failed(Error::Limit {
                    what: "requests in a batch",
                    value: n as u64,
                    min: 1,
                    max: MAX_BATCH.min(qp.max_send_wr() as usize) as u64,
                    bound: format!(
                        "MAX_BATCH = {MAX_BATCH} and the send queue's depth {}",
                        qp.max_send_wr()
                    ),
                })
            }
            Ok(()) => match qp.uncovered.room_for_batch(n, qp.max_send_wr()) {
                Err(e) => Phase::Failed(e),
                Ok(()) if qp.gather_send_credits(n as u32, &mut gathered) => this.post(qp),
                Ok(()) => Phase::Waiting {
                    qp: qp.clone(),
                    gathered,
                },
            },
        };
        this
    }

    /// Bounds the batch to `after` from now, as
    /// [`Post::timeout`](crate::Post::timeout) does for one operation.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.deadline = Some(Deadline::after(after));
        self
    }

    /// Posts the chain; `n` credits have been taken and every segment
    /// passed [`check_segment`].
    fn post(&mut self, qp: &Arc<QpInner>) -> Phase {
        let n = self.segments.len();
        let inside = match qp.enter() {
            Ok(inside) => inside,
            Err(e) => {
                for _ in 0..n {
                    qp.release_credit(Queue::Send);
                }
                return Phase::Failed(e);
            }
        };
        let cq = qp.cq(Queue::Send).clone();
        let mut sges = [sys::ibv_sge::default(); MAX_BATCH];
        let mut ids = [WrId(0); MAX_BATCH];
        {
            let mut slots = cq.slots();
            let mut rider = None;
            for (k, seg) in self.segments.drain(..).enumerate() {
                let raw = seg.raw;
                // Lengths were checked to fit in u32 by `check_segment`.
                sges[k] = sys::ibv_sge {
                    addr: raw.addr(),
                    length: raw.len as u32,
                    lkey: raw.region.lkey,
                };
                let id = slots.acquire(Resources {
                    segment: Some(raw),
                    qp: qp.clone(),
                    queue: Queue::Send,
                    rider,
                });
                ids[k] = id;
                rider = Some(id);
            }
        }
        // Only `wrs[..n]` is written (and only it is reachable from the
        // head): not zeroing the rest saves a 4 KiB memset per batch. Every
        // write, every link, and the head posted come from one pointer to
        // the array: a reference to the array taken after a link was made
        // would invalidate it (Miri on the model device found exactly that).
        let mut wrs = [const { MaybeUninit::<sys::ibv_send_wr>::uninit() }; MAX_BATCH];
        let chain = wrs.as_mut_ptr().cast::<sys::ibv_send_wr>();
        for k in 0..n {
            let request = match self.targets[k] {
                Some((addr, rkey)) => Request::Write {
                    addr,
                    rkey,
                    imm: None,
                },
                None => Request::Send { imm: None },
            };
            let mut wr = send_wr(ids[k], &mut sges[k], request);
            if k + 1 < n {
                wr.send_flags = 0; // rides on the last one
                wr.next = chain.wrapping_add(k + 1);
            }
            // SAFETY: `k < n <= MAX_BATCH`: the element is in `wrs`
            // (`MaybeUninit<T>` has `T`'s layout), and written once.
            unsafe { chain.add(k).write(wr) };
        }
        let mut bad: *mut sys::ibv_send_wr = std::ptr::null_mut();
        // SAFETY: the QP is live (we are inside its gate); `wrs[..n]`,
        // written above, is a chain (the last `next` is null) whose SGEs
        // lie in regions registered on the QP's PD
        // (`check_segment`), kept alive and unaliased by the slot table
        // until reaped (or the QP is destroyed); `sges` and `wrs` outlive
        // the call.
        let rc = unsafe { sys::ibv_post_send(inside.raw(), chain, &mut bad) };
        // Out of the gate before taking the slot table's lock again (a
        // destruction, which this may run, completes requests there).
        drop(inside);
        if rc == 0 {
            // Shut down while we posted: ERR again flushes the chain too.
            if let Some(cause) = qp.shutdown_cause() {
                qp.shut_down(cause);
            }
            return Phase::Posted { cq, ids, n };
        }
        // Only the requests from `bad_wr` on were refused; if it points
        // nowhere in the chain (rxe leaves it NULL when its doorbell fails
        // after queueing), every request may be queued.
        let posted = (0..n)
            .position(|k| std::ptr::eq(chain.wrapping_add(k), bad))
            .unwrap_or(n);
        let mut slots = cq.slots();
        for &id in &ids[posted..n] {
            if let Some((res, completion)) = slots.reclaim(id) {
                // Completed already only if the queue pair was destroyed
                // while we posted, which returned the credit.
                if completion.is_none() {
                    qp.release_credit(Queue::Send);
                }
                self.segments.extend(res.segment.map(Segment::from_raw));
            }
        }
        drop(slots);
        if posted == 0 {
            return Phase::Failed(Error::errno("ibv_post_send", rc));
        }
        // The NIC may use the posted ones, whose last is unsignaled: fail
        // the queue pair, so that each is flushed, and wait for that. Their
        // segments then go before the refused ones, in `segments`.
        tracing::error!(
            rc,
            posted,
            n,
            "ibv_post_send failed after queueing; shutting the queue pair down"
        );
        qp.shut_down(Shutdown::PostFailed(rc.abs()));
        Phase::Posted { cq, ids, n: posted }
    }
}

impl<B: ?Sized + RdmaBuf, M: Mode> Future for PostBatch<B, M> {
    type Output = (Result<Completion>, Vec<Segment<B, M>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.phase, Phase::Done) {
                Phase::Waiting { qp, mut gathered } => {
                    let n = this.segments.len() as u32;
                    let take = |qp: &QpInner| qp.gather_send_credits(n, &mut gathered);
                    if qp.poll_credits(Queue::Send, cx, take).is_ready() {
                        this.phase = this.post(&qp);
                        continue;
                    }
                    // Unsignaled posts made before the gate was taken may
                    // have left too little room.
                    let error = match qp.uncovered.room_for_batch(n as usize, qp.max_send_wr()) {
                        Err(e) => Some(e),
                        Ok(()) => this
                            .deadline
                            .filter(|d| d.passed(cx, true))
                            .map(|d| Error::Timeout(d.bound(), "room in the send queue")),
                    };
                    if let Some(error) = error {
                        qp.abandon_send_credits(&mut gathered);
                        return Poll::Ready((Err(error), std::mem::take(&mut this.segments)));
                    }
                    this.phase = Phase::Waiting { qp, gathered };
                    return Poll::Pending;
                }
                Phase::Failed(e) => {
                    return Poll::Ready((Err(e), std::mem::take(&mut this.segments)))
                }
                Phase::Posted { cq, ids, n } => {
                    let Poll::Ready((completion, res)) = cq.poll_request(ids[n - 1], cx) else {
                        if let Some(deadline) = this.deadline {
                            if deadline.passed(cx, cq.busy_poll()) {
                                this.deadline = None;
                                cq.shut_down_owner(ids[n - 1], Shutdown::DeadlineExpired);
                            }
                        }
                        this.phase = Phase::Posted { cq, ids, n };
                        return Poll::Pending;
                    };
                    // Segments of requests refused by a failed post are
                    // already in `segments`: the posted ones go before them.
                    let refused = this.segments.len();
                    // The riders completed with the signaled request (or on
                    // their own, with an error): take them back in order.
                    let mut first_err: Option<RawCompletion> = None;
                    let mut slots = cq.slots();
                    for &id in &ids[..n - 1] {
                        if let Some((r, c)) = slots.reclaim(id) {
                            this.segments.extend(r.segment.map(Segment::from_raw));
                            if let Some(c) = c.filter(|c| c.into_result().is_err()) {
                                first_err.get_or_insert(c);
                            }
                        }
                    }
                    drop(slots);
                    this.segments.extend(res.segment.map(Segment::from_raw));
                    this.segments.rotate_left(refused);
                    let result = res.qp.outcome(first_err.unwrap_or(completion));
                    return Poll::Ready((result, std::mem::take(&mut this.segments)));
                }
                Phase::Done => return polled_after_ready(),
            }
        }
    }
}

impl<B: ?Sized, M> Drop for PostBatch<B, M> {
    fn drop(&mut self) {
        if let Phase::Waiting { qp, gathered } = &mut self.phase {
            qp.abandon_send_credits(gathered);
        }
        if let Phase::Posted { cq, ids, n } = &self.phase {
            // Leave every request to the slot table: the riders are
            // released when the signaled one's completion walks them.
            let mut slots = cq.slots();
            let released: [Option<Resources>; MAX_BATCH] =
                std::array::from_fn(|k| if k < *n { slots.abandon(ids[k]) } else { None });
            drop(slots);
            drop(released);
        }
    }
}

/// Checks every target and collects (address, rkey) pairs.
fn check_targets<B: ?Sized + RdmaBuf, M: Mode>(
    segments: &[Segment<B, M>],
    remotes: &[RemoteSegment<B>],
) -> (Result<()>, [Option<(u64, u32)>; MAX_BATCH]) {
    let mut targets = [None; MAX_BATCH];
    if remotes.len() != segments.len() {
        let e = Error::BatchTargets {
            segments: segments.len(),
            targets: remotes.len(),
        };
        return (Err(e), targets);
    }
    for (k, (seg, remote)) in segments.iter().zip(remotes).enumerate().take(MAX_BATCH) {
        if let Err(e) = remote.check_fits(seg.raw.len) {
            return (Err(e), targets);
        }
        targets[k] = Some((remote.addr, remote.rkey));
    }
    (Ok(()), targets)
}

impl<T: Transport, S: State> QueuePair<T, S> {
    /// RDMA WRITEs of `segments[k]` into `remotes[k]`, posted as one chain
    /// with one doorbell and one completion (see [`PostBatch`] for how a
    /// batch is posted, completed and handed back). Each target must be at
    /// least as long as its segment, and there must be as many targets as
    /// segments; otherwise the batch resolves at once with the error and
    /// posts nothing.
    pub fn write_batch<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segments: Vec<Segment<B, M>>,
        remotes: &[RemoteSegment<B>],
    ) -> PostBatch<B, M>
    where
        S: CanSend,
    {
        let (checked, targets) = check_targets(&segments, remotes);
        PostBatch::new(&self.inner, segments, targets, checked)
    }

    /// Sends of every segment, posted as one chain with one doorbell and
    /// one completion (see [`PostBatch`]); the peer receives them in order,
    /// one posted receive each.
    pub fn send_batch<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segments: Vec<Segment<B, M>>,
    ) -> PostBatch<B, M>
    where
        S: CanSend,
    {
        PostBatch::new(&self.inner, segments, [None; MAX_BATCH], Ok(()))
    }
}

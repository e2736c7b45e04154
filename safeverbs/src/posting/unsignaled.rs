//! Unsignaled sends and writes: requests that ask the NIC for no
//! completion of their own (selective signaling).
//!
//! A send queue runs in order, so the completion of a signaled request
//! says that every request posted before it on that queue has finished
//! too. An unsignaled request is therefore posted as a *rider* of the next
//! signaled request of its queue pair (the same mechanism as a batch's
//! riders, `batch.rs`): its segment waits in the slot table, abandoned
//! (no future waits for it), until a later signaled completion of its
//! queue, or an error or flush completion of its own, is reaped; then it
//! is released. The future of an unsignaled post resolves once it is
//! posted.
//!
//! The chain of riders not covered yet is kept per queue pair
//! ([`Uncovered`]), and every send that joins or closes it is posted under
//! its lock, so that the chain's order is the send queue's. Signaled posts
//! take the lock only while the chain is not empty. So that uncovered
//! requests never fill the queue (then nothing would ever cover them), the
//! library signals one of them itself once half the send queue is
//! uncovered.
//!
//! A queue pair shut down with uncovered requests would leave them
//! uncovered for ever: moving to ERR flushes the requests that have not
//! run, but one that ran gives no completion, and nothing signaled comes
//! after it any more. So a non-empty chain holds one spare send credit,
//! taken by the request that starts it and given back by the signaled one
//! that covers it; a shutdown spends it on a cover of its own, a
//! zero-length write posted in ERR ([`Uncovered::cover`]), whose flush
//! completion covers the chain. (The kernel drains a send queue the same
//! way.) A request that would start the chain when no credit is spare is
//! signaled instead.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::completions::cq::Queue;
use crate::completions::slots::WrId;
use crate::memory::mode::Mode;
use crate::memory::pod::RdmaBuf;
use crate::memory::remote::RemoteSegment;
use crate::memory::segment::{RawSegment, Segment};
use crate::posting::deadline::Deadline;
use crate::posting::ops::{check_segment, polled_after_ready, post_one, Posting, Request, Signal};
use crate::queue_pair::qp::{QpInner, QueuePair};
use crate::queue_pair::transport::{CanSend, State, Transport};
use crate::Error;
use safeverbs_sys as sys;

/// The unsignaled requests of one queue pair's send queue that no
/// signaled request posted after them covers yet.
pub(crate) struct Uncovered {
    /// The chain's length, written under the lock, read without it (by
    /// signaled posts, [`Uncovered::lock_for`], and by batches,
    /// [`Uncovered::room_for_batch`]).
    len: AtomicU32,
    chain: Mutex<Chain>,
}

/// The chain itself: its newest request, whose rider is the one before.
pub(crate) struct Chain {
    tail: Option<WrId>,
    len: u32,
}

impl Uncovered {
    pub(crate) fn new() -> Self {
        Self {
            len: AtomicU32::new(0),
            chain: Mutex::new(Chain { tail: None, len: 0 }),
        }
    }

    /// The chain, locked, for a send to be posted under: always for an
    /// unsignaled one; for a signaled one only while the chain is not
    /// empty (it then covers the chain). A signaled send that reads the
    /// length as 0 while an unsignaled one is being posted covers
    /// nothing, which is safe: it only releases nothing.
    pub(crate) fn lock_for(&self, signal: Signal) -> Option<MutexGuard<'_, Chain>> {
        let join = signal != Signal::Signaled || self.len.load(Ordering::Acquire) > 0;
        join.then(|| crate::sync::lock(&self.chain))
    }

    /// `id` was posted under `chain` as `joining` says: it joined the
    /// chain, or covered it (which gives the chain's spare credit back,
    /// unless it was posted on it: a cover); `queued` false: the provider
    /// refused it, and it changes nothing.
    pub(crate) fn posted(
        &self,
        qp: &QpInner,
        chain: &mut Chain,
        id: WrId,
        joining: Joining,
        queued: bool,
    ) {
        if !queued {
            if joining.spare_taken {
                qp.release_credit(Queue::Send);
            }
            return;
        }
        if joining.signaled {
            if chain.len > 0 && !joining.cover {
                qp.release_credit(Queue::Send);
            }
            chain.tail = None;
            chain.len = 0;
        } else {
            chain.tail = Some(id);
            chain.len += 1;
        }
        self.len.store(chain.len, Ordering::Release);
    }

    /// Whether the chain holds its spare credit now (it is not empty):
    /// a credit taken that no request uses yet.
    pub(crate) fn spare(&self) -> u32 {
        u32::from(self.len.load(Ordering::Acquire) > 0)
    }

    /// Covers the chain of `qp`, shut down and moved to ERR: a signaled
    /// zero-length write on the chain's spare credit, which is flushed
    /// (a zero-length write touches no memory even if it ran) and whose
    /// flush completion covers every request before it; if the provider
    /// refuses it, `qp` is destroyed instead.
    pub(crate) fn cover(qp: &Arc<QpInner>) {
        if qp.uncovered.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let request = Request::Write {
            addr: 0,
            rkey: 0,
            imm: None,
        };
        let sge = sys::ibv_sge {
            addr: 0,
            length: 0,
            lkey: 0,
        };
        // It holds no segment: nothing to hand back.
        let refused = matches!(
            post_one(qp, request, sge, 0, None, Signal::Cover),
            Posting::Refused(..)
        );
        if refused && qp.uncovered.len.load(Ordering::Acquire) > 0 {
            // Not covered meanwhile, and the provider refused the cover:
            // no completion will ever come for the chain, so destroy the
            // queue pair, which fails (and releases) every request of it.
            qp.destroy(crate::Shutdown::CoverRefused);
        }
    }

    /// Whether a batch of `n` can ever have its slots in a send queue of
    /// `depth`. A batch covers no unsignaled request, and while it gathers
    /// slots no single post gets one (`Credits`), so nothing would cover
    /// the uncovered ones: their slots would never come back, and a batch
    /// that needs them would wait for ever. It is refused instead.
    pub(crate) fn room_for_batch(&self, n: usize, depth: u32) -> crate::Result<()> {
        let uncovered = self.len.load(Ordering::Acquire);
        let spare = u32::from(uncovered > 0);
        if n as u64 + u64::from(uncovered + spare) <= u64::from(depth) {
            return Ok(());
        }
        Err(Error::BatchBehindUnsignaled {
            batch: n,
            depth,
            uncovered,
        })
    }
}

/// How a send posted under the chain goes: whether it asks for a
/// completion, and whether it took the chain's spare credit (it starts
/// the chain).
#[derive(Clone, Copy)]
pub(crate) struct Joining {
    pub(crate) signaled: bool,
    spare_taken: bool,
    cover: bool,
}

impl Joining {
    /// A request that asks for its completion and covers the chain.
    pub(crate) fn signaled() -> Self {
        Self {
            signaled: true,
            spare_taken: false,
            cover: false,
        }
    }
}

impl Chain {
    /// Decides how a send of `qp` posted now goes (see [`Joining`]): a
    /// signaled one, or a cover, covers the chain; an unsignaled one is
    /// signaled after all if half the send queue would be uncovered, or if
    /// it would start the chain and no credit is spare.
    pub(crate) fn join(&mut self, qp: &QpInner, signal: Signal) -> Joining {
        let unsignaled = Joining {
            signaled: false,
            spare_taken: false,
            cover: false,
        };
        match signal {
            Signal::Signaled => Joining::signaled(),
            Signal::Cover => Joining {
                cover: true,
                ..Joining::signaled()
            },
            Signal::Unsignaled if self.must_signal(qp.max_send_wr()) => Joining::signaled(),
            Signal::Unsignaled if self.len > 0 => unsignaled,
            Signal::Unsignaled if qp.take_credit(Queue::Send) => Joining {
                spare_taken: true,
                ..unsignaled
            },
            Signal::Unsignaled => Joining::signaled(),
        }
    }

    /// Whether no request is uncovered.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rider of a request posted now: the newest uncovered one.
    pub(crate) fn tail(&self) -> Option<WrId> {
        self.tail
    }

    /// Whether an unsignaled request posted now must be signaled after
    /// all: it would make half of a send queue of `depth` uncovered.
    pub(crate) fn must_signal(&self, depth: u32) -> bool {
        self.len + 1 >= (depth / 2).max(1)
    }
}

enum Phase {
    /// Not posted yet: the send queue was full.
    Waiting {
        request: Request,
        segment: RawSegment,
        qp: Arc<QpInner>,
    },
    /// Posted, or refused with the segment.
    Ready(Result<(), (Error, RawSegment)>),
    /// The output was taken.
    Done,
}

/// An unsignaled send or write, posted or waiting for room in its send
/// queue. Resolves once it is posted: to `Ok(())`, its segment kept by the
/// library until a later signaled request of the queue pair completes (or
/// the queue pair fails it); or to the error and the segment, handed back,
/// if it was refused before posting.
///
/// Dropping it before it is posted drops its segment; afterwards the
/// request is the device's and goes on.
#[must_use = "the operation is posted only when polled if its queue was full"]
pub struct Unsignaled<T: ?Sized, M> {
    phase: Phase,
    deadline: Option<Deadline>,
    _type: PhantomData<fn() -> Segment<T, M>>,
}

impl<T: ?Sized, M> std::fmt::Debug for Unsignaled<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match &self.phase {
            Phase::Waiting { .. } => "waiting for a queue slot",
            Phase::Ready(Ok(())) => "posted",
            Phase::Ready(Err(_)) => "failed",
            Phase::Done => "done",
        };
        f.debug_struct("Unsignaled").field("phase", &phase).finish()
    }
}

/// Posts an unsignaled request; a credit has been taken and
/// [`check_segment`] passed.
fn post(qp: &Arc<QpInner>, request: Request, segment: RawSegment) -> Phase {
    let sge = segment.sge();
    match post_one(qp, request, sge, 0, Some(segment), Signal::Unsignaled) {
        Posting::Posted(..) => Phase::Ready(Ok(())),
        Posting::Refused(error, Some(segment)) => Phase::Ready(Err((error, segment))),
        // `post_one` hands back what it was given.
        Posting::Refused(_, None) => Phase::Done,
    }
}

impl<T: ?Sized + RdmaBuf, M: Mode> Unsignaled<T, M> {
    fn start(qp: &Arc<QpInner>, request: Request, segment: RawSegment) -> Self {
        let phase = if let Err(error) = check_segment(qp, &segment) {
            Phase::Ready(Err((error, segment)))
        } else if qp.take_credit(Queue::Send) {
            post(qp, request, segment)
        } else {
            Phase::Waiting {
                request,
                segment,
                qp: qp.clone(),
            }
        };
        Self {
            phase,
            deadline: None,
            _type: PhantomData,
        }
    }

    /// Bounds the wait for room in the send queue to `after` from now:
    /// then it resolves with [`Error::Timeout`] and the segment, unposted.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.deadline = Some(Deadline::after(after));
        self
    }
}

impl<T: ?Sized + RdmaBuf, M: Mode> Future for Unsignaled<T, M> {
    type Output = Result<(), (Error, Segment<T, M>)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.phase, Phase::Done) {
                Phase::Waiting {
                    request,
                    segment,
                    qp,
                } => {
                    let take = |qp: &QpInner| qp.take_credit(Queue::Send);
                    if qp.poll_credits(Queue::Send, cx, take).is_ready() {
                        this.phase = post(&qp, request, segment);
                        continue;
                    }
                    if let Some(deadline) = this.deadline.filter(|d| d.passed(cx, true)) {
                        let error = Error::Timeout(deadline.bound(), "room in the send queue");
                        return Poll::Ready(Err((error, Segment::from_raw(segment))));
                    }
                    this.phase = Phase::Waiting {
                        request,
                        segment,
                        qp,
                    };
                    return Poll::Pending;
                }
                Phase::Ready(result) => {
                    return Poll::Ready(result.map_err(|(e, s)| (e, Segment::from_raw(s))))
                }
                Phase::Done => return polled_after_ready(),
            }
        }
    }
}

impl<T: Transport, S: State> QueuePair<T, S> {
    /// Sends the segment's bytes without a completion of their own
    /// (selective signaling): the future resolves once the request is
    /// posted, and the segment is released (dropped by the library) once
    /// a later signaled request of this queue pair completes, which says
    /// the NIC is done with it. Errors are not lost: a request that fails
    /// completes on its own, with an error, and moves the queue pair to
    /// ERR, which the next operation reports.
    ///
    /// Post a signaled operation (any other send, write or read) after a
    /// run of these to get their segments and send-queue slots back; the
    /// library signals one of them itself whenever half the send queue
    /// would be uncovered. Read-only carves suit them best: carve one for
    /// each, and the region can be written again once they are released.
    /// They are released by the thread that reaps the covering completion,
    /// just after it wakes the covering operation's future: when that
    /// future polls the queue itself (one task, busy-poll mode), before it
    /// resolves; when another thread reaps, possibly a moment after. A
    /// batch that would need their send-queue slots is refused (it covers
    /// none of them).
    ///
    /// A queue pair dropped (or otherwise shut down) with uncovered
    /// requests covers them itself: their segments come back once its
    /// flushes are reaped.
    ///
    /// A post that fails after the provider may have queued it resolves
    /// `Ok(())` too (nothing is handed back while the NIC may use it); the
    /// queue pair is shut down, which the next operation reports.
    ///
    /// ```no_run
    /// # use safeverbs::*;
    /// # async fn f(qp: QueuePair<Uc, Rts>, buf: MemoryRegion<[u8; 64]>,
    /// #            peer: RemoteSegment<[u8; 64]>) -> Result<()> {
    /// for _ in 0..31 {
    ///     qp.write_unsignaled(buf.read_only()?, peer).await.map_err(|(e, _)| e)?;
    /// }
    /// let (res, _) = qp.write(buf.read_only()?, peer).await; // covers the 31
    /// res?;
    /// let writable = buf.read_write()?; // every carve was released
    /// # Ok(()) }
    /// ```
    pub fn write_unsignaled<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segment: Segment<B, M>,
        remote: RemoteSegment<B>,
    ) -> Unsignaled<B, M>
    where
        S: CanSend,
    {
        let request = Request::write_to(&remote, None);
        match remote.check_fits(segment.raw.len) {
            Ok(()) => Unsignaled::start(&self.inner, request, segment.raw),
            Err(error) => Unsignaled {
                phase: Phase::Ready(Err((error, segment.raw))),
                deadline: None,
                _type: PhantomData,
            },
        }
    }

    /// Sends the segment to the peer's next receive without a completion
    /// of its own; see [`write_unsignaled`](Self::write_unsignaled).
    pub fn send_unsignaled<B: ?Sized + RdmaBuf, M: Mode>(
        &self,
        segment: Segment<B, M>,
    ) -> Unsignaled<B, M>
    where
        S: CanSend,
    {
        Unsignaled::start(&self.inner, Request::Send { imm: None }, segment.raw)
    }
}

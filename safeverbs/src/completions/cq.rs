//! Completion queues: where finished work requests are reaped and handed
//! to the futures waiting for them.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use safeverbs_sys as sys;

use crate::completions::completion::RawCompletion;
use crate::completions::events::{start_driver, Channel, CqMode};
use crate::completions::reaping::Reaping;
use crate::completions::slots::{Delivered, SlotTable, WrId};
use crate::device::Device;
use crate::memory::segment::RawSegment;
use crate::queue_pair::qp::QpInner;
use crate::{Error, Result};

/// How many completions one `ibv_poll_cq` call reaps at most.
const POLL_BATCH: usize = 32;

/// Which queue of a queue pair a request was posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Send,
    Recv,
}

/// What a posted work request keeps alive until its completion is reaped.
pub(crate) struct Resources {
    /// The memory the NIC reads or writes; none for an inline request,
    /// whose bytes the provider copied while posting.
    pub(crate) segment: Option<RawSegment>,
    pub(crate) qp: Arc<QpInner>,
    pub(crate) queue: Queue,
    /// For the signaled request of a batch: the unsignaled request posted
    /// just before it, which completes with it (and so on down the chain).
    pub(crate) rider: Option<WrId>,
}

pub(crate) type Slots = SlotTable<Resources, RawCompletion>;

/// A completion queue. Cheap to clone; queue pairs attached to it keep it
/// alive.
///
/// Completions are reaped by whoever polls it: a pending future (busy-poll
/// mode), the event driver (event mode), or [`poll`](Self::poll). When the
/// last handle is dropped with requests still in flight (for example the
/// flushes of a dropped queue pair), a background reaper polls it until
/// they are reaped.
#[derive(Clone)]
pub struct CompletionQueue {
    pub(crate) inner: Arc<CqInner>,
    _handle: Arc<Handle>,
}

/// Counts the user's handles: the last one hands unfinished work to the
/// reaper.
struct Handle(Arc<CqInner>);

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0.slots().live() > 0 {
            crate::completions::reaper::adopt(self.0.clone());
        }
    }
}

pub(crate) struct CqInner {
    cq: *mut sys::ibv_cq,
    capacity: usize,
    /// Entries reserved by the queues of attached queue pairs.
    reserved: AtomicUsize,
    slots: Mutex<Slots>,
    /// The reaper role (see [`CqInner::poll`]).
    reaping: Reaping,
    /// Completions whose `wr_id` matched no posted request.
    stale: AtomicU64,
    /// The completion channel in event mode.
    channel: Option<Channel>,
    device: Device,
}

// SAFETY: `ibv_cq` is thread-safe in libibverbs (providers lock their
// queues); the slot table and the reaper role are behind mutexes; the rest
// is atomics.
unsafe impl Send for CqInner {}
// SAFETY: as above.
unsafe impl Sync for CqInner {}

impl Drop for CqInner {
    fn drop(&mut self) {
        // SAFETY: `cq` came from `ibv_create_cq`; attached queue pairs hold
        // an `Arc<CqInner>`, so none is left.
        let rc = unsafe { self.device.inner.provider.destroy_cq(self.cq) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_destroy_cq failed");
        }
        // The channel (if any) is dropped after the CQ, as it must be.
    }
}

impl fmt::Debug for CompletionQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionQueue")
            .field("capacity", &self.inner.capacity)
            .field("reserved", &self.inner.reserved.load(Ordering::Relaxed))
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Device {
    /// Creates a completion queue with room for at least `entries`
    /// completions, in busy-poll mode.
    pub fn create_cq(&self, entries: usize) -> Result<CompletionQueue> {
        self.create_cq_with(entries, CqMode::BusyPoll)
    }

    /// Creates a completion queue in the given [`CqMode`].
    pub fn create_cq_with(&self, entries: usize, mode: CqMode) -> Result<CompletionQueue> {
        let max = self.limits().max_cqe as usize;
        if entries == 0 || entries > max {
            return Err(Error::Limit {
                what: "completion queue entries",
                value: entries as u64,
                min: 1,
                max: max as u64,
                bound: format!("device {}'s max_cqe", self.name()),
            });
        }
        let channel = match mode {
            CqMode::BusyPoll => None,
            _ => Some(Channel::create(self)?),
        };
        let raw_channel = channel.as_ref().map_or(std::ptr::null_mut(), Channel::raw);
        // SAFETY: the context is open; the channel is null or live.
        let cq = unsafe {
            self.inner.provider.create_cq(
                self.inner.ctx,
                entries as i32,
                std::ptr::null_mut(),
                raw_channel,
                0,
            )
        };
        if cq.is_null() {
            let mut err = Error::last_os("ibv_create_cq");
            if let Error::Verb { hint, .. } = &mut err {
                *hint =
                    Some("the device may be out of completion queues (see DeviceLimits::max_cq)");
            }
            return Err(err);
        }
        // SAFETY: `cq` is live; the provider may round the size up.
        let capacity = usize::try_from(unsafe { (*cq).cqe })
            .unwrap_or(entries)
            .max(entries);
        let inner = Arc::new(CqInner {
            cq,
            capacity,
            reserved: AtomicUsize::new(0),
            slots: Mutex::new(SlotTable::with_capacity(capacity)),
            reaping: Reaping::new(),
            stale: AtomicU64::new(0),
            channel,
            device: self.clone(),
        });
        if let Some(channel) = &inner.channel {
            start_driver(&inner, channel, mode)?;
        }
        Ok(CompletionQueue {
            _handle: Arc::new(Handle(inner.clone())),
            inner,
        })
    }
}

impl CompletionQueue {
    /// Number of completions the queue holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Work requests posted through this queue and not yet reaped and
    /// handed back (abandoned ones included).
    pub fn in_flight(&self) -> usize {
        self.inner.slots().live()
    }

    /// Completions seen whose `wr_id` matched no posted request (should stay
    /// 0; each one is also logged).
    pub fn stale_completions(&self) -> u64 {
        self.inner.stale.load(Ordering::Relaxed)
    }

    /// Reaps every available completion and wakes the futures waiting for
    /// them. Returns how many were reaped (0 also when another thread is
    /// reaping at that moment: it delivers what is there). Futures call this
    /// themselves when polled (busy-poll mode); call it to make progress for
    /// abandoned requests when no future is polled.
    pub fn poll(&self) -> Result<usize> {
        self.inner.poll()
    }
}

impl CqInner {
    pub(crate) fn raw(&self) -> *mut sys::ibv_cq {
        self.cq
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// True when pending futures must ask to be polled again: no driver
    /// will wake them (busy-poll mode, or an event driver that stopped).
    pub(crate) fn busy_poll(&self) -> bool {
        self.channel.as_ref().is_none_or(|c| c.driver().stopped())
    }

    /// The completion channel, in event mode.
    pub(crate) fn channel(&self) -> Option<&Channel> {
        self.channel.as_ref()
    }

    /// The completion of request `id` with its resources, or `Pending`.
    ///
    /// In event mode, register-then-recheck: the waker is stored in the
    /// slot first, then the queue is reaped, and the slot looked at again
    /// only if anything was reaped. A completion reaped by someone else in
    /// between wakes the stored waker, so none is lost; the driver wakes it
    /// later. In busy-poll mode a pending request asks to be polled again
    /// whatever happens, so nothing can be lost: the queue is reaped first
    /// and the slot looked at once (one slot-table lock fewer when the
    /// completion is there). Either way the mode that decides whether to
    /// ask is read again after the waker is stored: a driver that stops
    /// meanwhile wakes every stored waker (`events::stopped`), and one that
    /// stopped before is seen here.
    pub(crate) fn poll_request(
        &self,
        id: WrId,
        cx: &mut Context<'_>,
    ) -> Poll<(RawCompletion, Resources)> {
        // Only the order of the two steps depends on this reading.
        let busy = self.busy_poll();
        let mut polled = Poll::Pending;
        if !busy {
            polled = self.slots().poll(id, cx.waker());
        }
        if polled.is_pending() {
            let look = match self.poll() {
                Ok(n) => busy || n > 0,
                // The failure may have failed this request (`failed`).
                Err(e) => {
                    tracing::error!(%e, "polling the completion queue failed");
                    true
                }
            };
            if look {
                polled = self.slots().poll(id, cx.waker());
            }
        }
        match polled {
            Poll::Ready(Some(done)) => Poll::Ready(done),
            // Only the future that posted `id` takes its result, and then
            // it is done: it was polled again after `Ready`.
            Poll::Ready(None) => crate::posting::ops::polled_after_ready(),
            Poll::Pending => {
                if self.busy_poll() {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    /// Shuts down the queue pair of the posted request `id` (see
    /// [`QpInner::shut_down`]).
    pub(crate) fn shut_down_owner(&self, id: WrId, cause: crate::Shutdown) {
        let qp = self.slots().resources(id).map(|res| res.qp.clone());
        if let Some(qp) = qp {
            qp.shut_down(cause);
        }
    }

    /// The event driver's step: drain the channel, re-arm, reap.
    pub(crate) fn drive_events(&self) -> Result<usize> {
        match &self.channel {
            Some(channel) => self.handle_events(channel),
            None => self.poll(),
        }
    }

    pub(crate) fn slots(&self) -> MutexGuard<'_, Slots> {
        crate::sync::lock(&self.slots)
    }

    /// Reserves `n` entries for a queue pair's queue.
    pub(crate) fn reserve(&self, n: usize) -> Result<()> {
        let mut current = self.reserved.load(Ordering::Relaxed);
        loop {
            let needed = current + n;
            if needed > self.capacity {
                return Err(Error::CqTooSmall {
                    capacity: self.capacity,
                    attached: current,
                    requested: n,
                    needed,
                });
            }
            match self.reserved.compare_exchange(
                current,
                needed,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    pub(crate) fn unreserve(&self, n: usize) {
        self.reserved.fetch_sub(n, Ordering::AcqRel);
    }

    /// Reaps every available completion and delivers each to its request.
    ///
    /// One thread reaps at a time, so completions are delivered in the
    /// order the queue returned them (the verbs order those of one work
    /// queue; a batch's riders rely on it); a thread that finds another
    /// reaping does not wait, and what arrives meanwhile is never left
    /// unreaped (see [`Reaping`]).
    ///
    /// If polling fails, the queue has [failed](Self::failed).
    pub(crate) fn poll(&self) -> Result<usize> {
        // Resources whose future is gone, dropped after every lock is
        // released (a region's release hook may call back into us).
        let mut released = Vec::new();
        let result = self.reaping.run(|| self.reap(&mut released));
        drop(released);
        result.map_err(|rc| {
            self.failed(rc);
            Error::errno("ibv_poll_cq", rc)
        })
    }

    /// `ibv_poll_cq` returned the error `rc` (an overrun, or a device that
    /// failed): the requests outstanding here can never be reaped, flushes
    /// included. Their queue pairs are destroyed instead (see
    /// [`QpInner::destroy`]), which fails every request of theirs, in both
    /// queues, and hands its memory back; later requests here meet the same
    /// end when they are polled for.
    fn failed(&self, rc: i32) {
        let mut owners: Vec<Arc<QpInner>> = Vec::new();
        for (_, res) in self.slots().outstanding() {
            if !owners.iter().any(|qp| Arc::ptr_eq(qp, &res.qp)) {
                owners.push(res.qp.clone());
            }
        }
        for qp in owners {
            qp.destroy(crate::Shutdown::CqFailed(rc));
        }
    }

    /// Completes every request of the destroyed queue pair `qp` still
    /// outstanding here with a flush, as if it had been reaped: its future
    /// wakes (and sees [`Error::ShutDown`] through [`QpInner::outcome`]),
    /// or its resources are released if the future is gone.
    pub(crate) fn fail_requests_of(&self, qp: &QpInner) {
        let destroyed = RawCompletion::destroyed(qp.qp_num);
        let mut released = Vec::new();
        let mut wake = Vec::new();
        {
            let mut slots = self.slots();
            let ids: Vec<WrId> = slots
                .outstanding()
                .filter(|(_, res)| std::ptr::eq(Arc::as_ptr(&res.qp), qp))
                .map(|(id, _)| id)
                .collect();
            for id in ids {
                let reaped = |res: &Resources| res.qp.release_credit(res.queue);
                match slots.complete(id, destroyed, |_| true, reaped) {
                    Delivered::Wake(w) => wake.extend(w),
                    Delivered::Release(res) => released.push(res),
                    Delivered::Stale => {}
                }
            }
        }
        wake.into_iter().for_each(Waker::wake);
        drop(released);
    }

    /// Empties the queue; the caller is the queue's reaper. An error is
    /// `ibv_poll_cq`'s return value.
    fn reap(&self, released: &mut Vec<Resources>) -> std::result::Result<usize, i32> {
        let mut total = 0;
        // Not zeroed: an empty poll (the common case while spinning) costs
        // only the provider's call.
        let mut wcs = [const { std::mem::MaybeUninit::<sys::ibv_wc>::uninit() }; POLL_BATCH];
        loop {
            // SAFETY: `cq` is live while `self` is; `wcs` has room for
            // `POLL_BATCH` entries (`MaybeUninit<T>` has `T`'s layout).
            let n =
                unsafe { sys::ibv_poll_cq(self.cq, POLL_BATCH as i32, wcs.as_mut_ptr().cast()) };
            if n < 0 {
                return Err(n);
            }
            let n = (n as usize).min(POLL_BATCH);
            if n == 0 {
                return Ok(total);
            }
            // SAFETY: the provider initialised the first `n` entries, and
            // `MaybeUninit<ibv_wc>` has the layout of `ibv_wc`.
            let reaped =
                unsafe { std::slice::from_raw_parts(wcs.as_ptr().cast::<sys::ibv_wc>(), n) };
            self.deliver(reaped, released);
            total += n;
            if n < POLL_BATCH {
                return Ok(total);
            }
        }
    }

    /// Hands each completion to its request: wakes the future waiting for
    /// it, or moves the resources of an abandoned one to `released`.
    fn deliver(&self, wcs: &[sys::ibv_wc], released: &mut Vec<Resources>) {
        debug_assert!(
            wcs.len() <= POLL_BATCH,
            "one wake per completion of one poll"
        );
        // Wakers are collected under the lock and woken after it: waking
        // may re-enter.
        let mut wake = WakeList::new();
        {
            let mut slots = self.slots();
            for wc in wcs {
                let completion = RawCompletion::from_wc(wc);
                // A completion belongs to a request only if it came from
                // that request's queue pair.
                let belongs = |res: &Resources| res.qp.qp_num == wc.qp_num;
                let mut rider = None;
                let reaped = |res: &Resources| {
                    res.qp.release_credit(res.queue);
                    rider = res.rider;
                };
                match slots.complete(WrId(wc.wr_id), completion, belongs, reaped) {
                    Delivered::Wake(w) => w.into_iter().for_each(|w| wake.push(w)),
                    Delivered::Release(res) => released.push(res),
                    Delivered::Stale => {
                        self.stale.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            wr_id = wc.wr_id,
                            qp_num = wc.qp_num,
                            status = %completion.status,
                            "completion for an unknown work request ignored"
                        );
                        continue;
                    }
                }
                // Unsignaled requests (of a batch, or single ones that the
                // next signaled post covered) complete with the signaled
                // one posted after them. A rider that already completed on
                // its own (errors and flushes complete every request, in
                // order, so before this one) is left as it is.
                while let Some(id) = rider.take() {
                    let reaped = |res: &Resources| {
                        res.qp.release_credit(res.queue);
                        rider = res.rider;
                    };
                    if let Delivered::Release(res) = slots.complete(id, completion, belongs, reaped)
                    {
                        released.push(res);
                    }
                }
            }
        }
        drop(wake);
    }
}

/// Wakers to wake when dropped (after the slot table's lock is released),
/// at most one per completion of one poll; none is written until it is
/// pushed (an empty poll, or one that only releases, costs nothing here).
/// If delivering panics, the drop during unwinding still wakes them; if a
/// waker panics when woken, the rest are dropped unwoken.
struct WakeList {
    wakers: [MaybeUninit<Waker>; POLL_BATCH],
    /// `wakers[woken..len]` are initialised and not taken yet.
    len: usize,
    woken: usize,
}

impl WakeList {
    fn new() -> Self {
        Self {
            wakers: [const { MaybeUninit::uninit() }; POLL_BATCH],
            len: 0,
            woken: 0,
        }
    }

    /// Adds a waker; at most [`POLL_BATCH`] (more panics before writing).
    fn push(&mut self, waker: Waker) {
        self.wakers[self.len].write(waker);
        self.len += 1;
    }

    /// The next waker not taken yet, moved out.
    fn take(&mut self) -> Option<Waker> {
        (self.woken < self.len).then(|| {
            let k = self.woken;
            self.woken += 1;
            // SAFETY: `wakers[k]` was initialised by `push` (`k < len`) and
            // is read once: `woken` moved past it before the read.
            unsafe { self.wakers[k].assume_init_read() }
        })
    }
}

impl Drop for WakeList {
    fn drop(&mut self) {
        /// Drops what a panicking waker left, as the panic unwinds.
        struct Rest<'a>(&'a mut WakeList);
        impl Drop for Rest<'_> {
            fn drop(&mut self) {
                while let Some(waker) = self.0.take() {
                    drop(waker);
                }
            }
        }
        let rest = Rest(self);
        while let Some(waker) = rest.0.take() {
            waker.wake();
        }
    }
}

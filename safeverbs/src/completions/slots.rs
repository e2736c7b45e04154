//! The slot table: where the resources of posted work requests live until
//! their completion is reaped.
//!
//! The library owns `wr_id`: it is a slot index (low 32 bits) and the
//! slot's generation (high 32 bits), XORed with a salt drawn for each table,
//! so a stale, unknown or foreign id is detected, never misdelivered. A
//! slot's generations never repeat: a slot whose generation is exhausted is
//! retired, not reused. A completion is also checked against the request's
//! own queue (the `belongs` test of [`SlotTable::complete`]). A slot moves
//! through
//! `Free → Posted → (Done | Abandoned) → Free`; the future that posted the
//! request waits on `Posted` and takes the result from `Done`; a dropped
//! future turns `Posted` into `Abandoned`, whose resources are released
//! when the completion arrives.
//!
//! Pure bookkeeping (no FFI), tested under Miri.

use std::task::{Poll, Waker};

/// A library-owned work request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WrId(pub u64);

impl WrId {
    fn new(index: u32, generation: u32, salt: u64) -> Self {
        Self((u64::from(generation) << 32 | u64::from(index)) ^ salt)
    }
    fn index(self, salt: u64) -> usize {
        ((self.0 ^ salt) & 0xffff_ffff) as usize
    }
    fn generation(self, salt: u64) -> u32 {
        ((self.0 ^ salt) >> 32) as u32
    }
}

/// A salt for a new table: ids of one table mean nothing to another.
fn random_salt() -> u64 {
    use std::hash::BuildHasher;
    // Each `RandomState` is seeded with fresh random keys.
    std::collections::hash_map::RandomState::new().hash_one(0x5afe_u16)
}

enum State<R, C> {
    Free,
    Posted { waker: Option<Waker>, res: R },
    Done { res: R, completion: C },
    Abandoned { res: R },
}

struct Slot<R, C> {
    generation: u32,
    state: State<R, C>,
}

/// What [`SlotTable::complete`] found.
#[derive(Debug)]
pub enum Delivered<R> {
    /// A waiting future: wake it (after releasing the table's lock).
    Wake(Option<Waker>),
    /// Nobody waits: drop these resources (after releasing the lock).
    Release(R),
    /// No posted request has this id.
    Stale,
}

/// The slots of one completion queue.
pub struct SlotTable<R, C> {
    slots: Vec<Slot<R, C>>,
    free: Vec<u32>,
    live: usize,
    salt: u64,
}

impl<R, C> std::fmt::Debug for SlotTable<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTable")
            .field("slots", &self.slots.len())
            .field("live", &self.live)
            .finish()
    }
}

impl<R, C> SlotTable<R, C> {
    /// A table with room for `capacity` requests before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            live: 0,
            salt: random_salt(),
        }
    }

    /// Requests posted and not yet handed back (including abandoned ones).
    pub fn live(&self) -> usize {
        self.live
    }

    fn get(&mut self, id: WrId) -> Option<&mut Slot<R, C>> {
        let generation = id.generation(self.salt);
        // Generation 0 is never handed out (a retired slot has it).
        self.slots
            .get_mut(id.index(self.salt))
            .filter(|s| generation != 0 && s.generation == generation)
    }

    fn free_slot(&mut self, id: WrId) {
        let index = id.index(self.salt);
        if let Some(slot) = self.slots.get_mut(index) {
            slot.state = State::Free;
            self.live -= 1;
            match slot.generation.checked_add(1) {
                Some(next) => {
                    slot.generation = next;
                    self.free.push(index as u32);
                }
                // Every generation of this slot was used: retire it, so
                // that no id it handed out can ever match again.
                None => slot.generation = 0,
            }
        }
    }

    /// Stores `res` for a request about to be posted and returns its id.
    pub fn acquire(&mut self, res: R) -> WrId {
        self.live += 1;
        let state = State::Posted { waker: None, res };
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.state = state;
            return WrId::new(index, slot.generation, self.salt);
        }
        // More than 2^32 slots cannot be live: each holds a posted request.
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 1,
            state,
        });
        WrId::new(index, 1, self.salt)
    }

    /// Takes back the resources of a request whose post failed (waited
    /// for, or abandoned from the start: unsignaled).
    pub fn cancel(&mut self, id: WrId) -> Option<R> {
        let slot = self.get(id)?;
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Posted { res, .. } | State::Abandoned { res } => {
                self.free_slot(id);
                Some(res)
            }
            other => {
                slot.state = other;
                None
            }
        }
    }

    /// Takes back the resources of a rider of a batch (see `batch.rs`),
    /// whether its own completion came (an error or flush) or not.
    pub fn reclaim(&mut self, id: WrId) -> Option<(R, Option<C>)> {
        let slot = self.get(id)?;
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Posted { res, .. } => {
                self.free_slot(id);
                Some((res, None))
            }
            State::Done { res, completion } => {
                self.free_slot(id);
                Some((res, Some(completion)))
            }
            other => {
                slot.state = other;
                None
            }
        }
    }

    /// Records the completion of `id` if `belongs` accepts the request's
    /// resources (the completion came from the request's own queue);
    /// `reaped` then sees them once (to return credits) whoever waits for
    /// them.
    pub fn complete(
        &mut self,
        id: WrId,
        completion: C,
        belongs: impl FnOnce(&R) -> bool,
        reaped: impl FnOnce(&R),
    ) -> Delivered<R> {
        let Some(slot) = self.get(id) else {
            return Delivered::Stale;
        };
        let foreign = match &slot.state {
            State::Posted { res, .. } | State::Abandoned { res } => !belongs(res),
            State::Free | State::Done { .. } => false,
        };
        if foreign {
            return Delivered::Stale;
        }
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Posted { waker, res } => {
                reaped(&res);
                slot.state = State::Done { res, completion };
                Delivered::Wake(waker)
            }
            State::Abandoned { res } => {
                reaped(&res);
                self.free_slot(id);
                Delivered::Release(res)
            }
            other => {
                slot.state = other;
                Delivered::Stale
            }
        }
    }

    /// The completion of `id` with its resources, or `Pending` after
    /// remembering `waker` (the latest waker wins).
    pub fn poll(&mut self, id: WrId, waker: &Waker) -> Poll<Option<(C, R)>> {
        let Some(slot) = self.get(id) else {
            return Poll::Ready(None);
        };
        match &mut slot.state {
            State::Posted { waker: stored, .. } => {
                match stored {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *stored = Some(waker.clone()),
                }
                Poll::Pending
            }
            State::Done { .. } => match std::mem::replace(&mut slot.state, State::Free) {
                State::Done { res, completion } => {
                    self.free_slot(id);
                    Poll::Ready(Some((completion, res)))
                }
                _ => Poll::Ready(None),
            },
            State::Free | State::Abandoned { .. } => Poll::Ready(None),
        }
    }

    /// The resources of the request `id` while it is posted.
    pub fn resources(&mut self, id: WrId) -> Option<&R> {
        match &self.get(id)?.state {
            State::Posted { res, .. } | State::Abandoned { res } => Some(res),
            State::Free | State::Done { .. } => None,
        }
    }

    /// The ids and resources of every request posted and not completed
    /// yet (waited for or abandoned).
    pub fn outstanding(&self) -> impl Iterator<Item = (WrId, &R)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, s)| match &s.state {
                State::Posted { res, .. } | State::Abandoned { res } => {
                    Some((WrId::new(index as u32, s.generation, self.salt), res))
                }
                State::Free | State::Done { .. } => None,
            })
    }

    /// Clones of the wakers of every request still waiting for its
    /// completion (to wake them all when the event driver stops).
    pub fn wakers(&self) -> Vec<Waker> {
        self.slots
            .iter()
            .filter_map(|s| match &s.state {
                State::Posted { waker, .. } => waker.clone(),
                _ => None,
            })
            .collect()
    }

    /// The future waiting on `id` is gone. Returns resources to drop (after
    /// releasing the lock) when the request had already completed.
    pub fn abandon(&mut self, id: WrId) -> Option<R> {
        let slot = self.get(id)?;
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Posted { res, .. } => {
                slot.state = State::Abandoned { res };
                None
            }
            State::Done { res, .. } => {
                self.free_slot(id);
                Some(res)
            }
            other => {
                slot.state = other;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn waker() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn posted_then_completed_then_taken() {
        let mut t = SlotTable::<&str, u32>::with_capacity(4);
        let id = t.acquire("seg");
        let (count, w) = waker();
        assert!(t.poll(id, &w).is_pending());
        match t.complete(id, 7, |_| true, |_| {}) {
            Delivered::Wake(Some(w)) => w.wake(),
            _ => panic!("expected a waker"),
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(t.poll(id, &w), Poll::Ready(Some((7, "seg"))));
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn abandoned_resources_are_released_by_the_completion() {
        let mut t = SlotTable::<String, u32>::with_capacity(1);
        let id = t.acquire("seg".to_owned());
        assert!(t.abandon(id).is_none());
        assert_eq!(t.live(), 1, "the NIC still owns it");
        match t.complete(id, 0, |_| true, |_| {}) {
            Delivered::Release(r) => assert_eq!(r, "seg"),
            _ => panic!("expected release"),
        }
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn abandon_after_completion_releases_at_once() {
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(1);
        assert!(matches!(
            t.complete(id, 2, |_| true, |_| {}),
            Delivered::Wake(None)
        ));
        assert_eq!(t.abandon(id), Some(1));
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn stale_and_unknown_ids_are_reported_not_delivered() {
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(1);
        let (_, w) = waker();
        assert!(matches!(
            t.complete(id, 0, |_| true, |_| {}),
            Delivered::Wake(_)
        ));
        assert!(t.poll(id, &w).is_ready());
        // The slot is reused with a new generation: the old id is stale.
        let id2 = t.acquire(2);
        assert_eq!(id2.index(t.salt), id.index(t.salt));
        assert_ne!(id2, id);
        assert!(matches!(
            t.complete(id, 0, |_| true, |_| {}),
            Delivered::Stale
        ));
        assert!(matches!(
            t.complete(WrId(u64::MAX), 0, |_| true, |_| {}),
            Delivered::Stale
        ));
        assert!(matches!(
            t.complete(WrId(t.salt), 0, |_| true, |_| {}),
            Delivered::Stale
        ));
        assert!(t.poll(id2, &w).is_pending());
    }

    #[test]
    fn outstanding_lists_posted_and_abandoned_requests_only() {
        // What a failed CQ destroys the owners of, and what a destroyed
        // queue pair fails: requests the device may still complete.
        let mut t = SlotTable::<&str, u32>::with_capacity(8);
        let (_, w) = waker();
        let waited = t.acquire("waited");
        assert!(t.poll(waited, &w).is_pending());
        let abandoned = t.acquire("abandoned");
        assert!(t.abandon(abandoned).is_none());
        let forgotten = t.acquire("forgotten"); // never polled
        let done = t.acquire("done");
        let _ = t.complete(done, 1, |_| true, |_| {});
        let taken = t.acquire("taken");
        let _ = t.complete(taken, 2, |_| true, |_| {});
        assert_eq!(t.poll(taken, &w), Poll::Ready(Some((2, "taken"))));
        let mut listed: Vec<(WrId, &str)> = t.outstanding().map(|(id, r)| (id, *r)).collect();
        listed.sort_by_key(|(_, r)| *r);
        assert_eq!(
            listed,
            [
                (abandoned, "abandoned"),
                (forgotten, "forgotten"),
                (waited, "waited")
            ],
            "completed, taken and free slots are not outstanding"
        );
    }

    #[test]
    fn cancel_returns_resources_of_a_failed_post() {
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(9);
        assert_eq!(t.cancel(id), Some(9));
        assert_eq!(t.cancel(id), None);
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn the_latest_waker_wins() {
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(0);
        let (first, w1) = waker();
        let (second, w2) = waker();
        assert!(t.poll(id, &w1).is_pending());
        assert!(t.poll(id, &w2).is_pending());
        if let Delivered::Wake(Some(w)) = t.complete(id, 0, |_| true, |_| {}) {
            w.wake();
        }
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    /// A future re-polled with the waker the table already holds (the
    /// common case: one task spinning on its request) costs no waker
    /// clone, so no reference-count traffic.
    #[test]
    fn repolling_with_the_same_waker_does_not_clone_it() {
        use std::task::{RawWaker, RawWakerVTable};
        // A waker whose data is a clone counter; waking and dropping do
        // nothing.
        fn clone(data: *const ()) -> RawWaker {
            // SAFETY: `data` is the `AtomicUsize` the test made this waker
            // from, which outlives every clone (see below).
            unsafe { &*data.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
            RawWaker::new(data, &VTABLE)
        }
        fn noop(_: *const ()) {}
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
        let clones = AtomicUsize::new(0);
        let raw = RawWaker::new(std::ptr::from_ref(&clones).cast(), &VTABLE);
        // SAFETY: the vtable's functions keep `RawWaker`'s contract (clone
        // returns a waker of the same data and vtable; the others do
        // nothing), and `clones` outlives the waker and the table that
        // stores its clone (both are declared after it, so dropped first).
        let w = unsafe { Waker::from_raw(raw) };
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(0);
        for _ in 0..3 {
            assert!(t.poll(id, &w).is_pending());
        }
        assert_eq!(clones.load(Ordering::SeqCst), 1, "stored once, then kept");
    }

    #[test]
    fn many_requests_reuse_slots_without_growing() {
        let mut t = SlotTable::<usize, usize>::with_capacity(8);
        let (_, w) = waker();
        let n = if cfg!(miri) { 100 } else { 10_000 };
        for round in 0..n {
            let ids: Vec<_> = (0..8).map(|i| t.acquire(round + i)).collect();
            for (i, id) in ids.iter().enumerate() {
                if i % 2 == 0 {
                    assert!(t.abandon(*id).is_none());
                }
                let _ = t.complete(*id, i, |_| true, |_| {});
            }
            for (i, id) in ids.iter().enumerate() {
                if i % 2 == 1 {
                    assert_eq!(t.poll(*id, &w), Poll::Ready(Some((i, round + i))));
                }
            }
        }
        assert_eq!(t.live(), 0);
        assert_eq!(t.slots.len(), 8);
    }

    #[test]
    fn a_completion_from_another_queue_is_not_delivered() {
        let mut t = SlotTable::<u32, u8>::with_capacity(1);
        let id = t.acquire(7); // the request's queue is "7"
        let (_, w) = waker();
        assert!(matches!(
            t.complete(id, 0, |&queue| queue == 8, |_| {}),
            Delivered::Stale
        ));
        assert!(t.poll(id, &w).is_pending(), "still posted");
        assert!(t.abandon(id).is_none());
        assert!(matches!(
            t.complete(id, 0, |&queue| queue == 8, |_| {}),
            Delivered::Stale
        ));
        assert!(matches!(
            t.complete(id, 0, |&queue| queue == 7, |_| {}),
            Delivered::Release(7)
        ));
    }

    #[test]
    fn ids_of_one_table_mean_nothing_to_another() {
        let mut a = SlotTable::<u8, u8>::with_capacity(1);
        let mut b = SlotTable::<u8, u8>::with_capacity(1);
        assert_ne!(a.salt, b.salt, "each table draws its own salt");
        let in_a = a.acquire(1);
        let _in_b = b.acquire(2);
        // Both tables hand out slot 0, generation 1 first: only the salt
        // tells their ids apart.
        assert!(matches!(
            b.complete(in_a, 0, |_| true, |_| {}),
            Delivered::Stale
        ));
        assert_eq!(b.live(), 1);
    }

    #[test]
    fn an_exhausted_slot_is_retired_not_reused() {
        let mut t = SlotTable::<u8, u8>::with_capacity(2);
        let (_, w) = waker();
        let old = t.acquire(1);
        t.slots[0].generation = u32::MAX; // as after 2^32 - 1 reuses
        let last = WrId::new(0, u32::MAX, t.salt);
        assert!(matches!(
            t.complete(last, 0, |_| true, |_| {}),
            Delivered::Wake(_)
        ));
        assert!(t.poll(last, &w).is_ready());
        let next = t.acquire(2);
        assert_ne!(next.index(t.salt), 0, "the exhausted slot is not reused");
        for stale in [old, last, WrId::new(0, 0, t.salt), WrId::new(0, 1, t.salt)] {
            assert!(matches!(
                t.complete(stale, 0, |_| true, |_| {}),
                Delivered::Stale
            ));
        }
        assert_eq!(t.live(), 1);
    }
}

/// The slot table under the completion queue's protocol: the real
/// [`SlotTable`] and the real [`Reaping`](crate::completions::reaping::Reaping), with
/// the glue of `CqInner` mirrored here (`poll_request`, `poll`, `reap` and
/// `deliver` call into the device and cannot run under loom): a request's
/// future registers its waker, then reaps, then checks again; a reaper
/// completes the request under the table's lock and wakes the waker it got
/// back after letting go.
#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use std::collections::VecDeque;
    use std::task::{Poll, Wake, Waker};

    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::{Delivered, SlotTable, WrId};
    use crate::completions::reaping::Reaping;
    use crate::sync::{
        model,
        Ordering::{Relaxed, SeqCst},
    };

    /// The preemption bound of these models (see `crate::sync::model`).
    const PREEMPTIONS: usize = 5;

    /// What a posted request holds (its segment, its queue pair): counts
    /// its releases.
    struct Resources(Arc<Counts>);

    impl Drop for Resources {
        fn drop(&mut self) {
            self.0.released.fetch_add(1, SeqCst);
        }
    }

    #[derive(Default)]
    struct Counts {
        /// `Resources` dropped.
        released: AtomicUsize,
        /// Credits given back (the `reaped` hook of `complete`).
        credits: AtomicUsize,
    }

    /// A task's waker: counts its wakes.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn task() -> (std::sync::Arc<Task>, Waker) {
        let t = std::sync::Arc::new(Task::default());
        (t.clone(), Waker::from(t))
    }

    /// `CqInner` without the device: the device's queue is a list.
    struct Cq {
        slots: Mutex<SlotTable<Resources, u32>>,
        reaping: Reaping,
        device: Mutex<VecDeque<(WrId, u32)>>,
        /// Calls of the device queue's poll (see `reap`).
        polls: AtomicUsize,
        counts: Arc<Counts>,
        /// The event driver stopped (`DriverState::stopped`).
        stopped: AtomicBool,
    }

    impl Cq {
        /// A queue with one request posted.
        fn with_request() -> (Arc<Self>, WrId) {
            let counts = Arc::new(Counts::default());
            let mut slots = SlotTable::with_capacity(1);
            let id = slots.acquire(Resources(counts.clone()));
            let cq = Cq {
                slots: Mutex::new(slots),
                reaping: Reaping::new(),
                device: Mutex::new(VecDeque::new()),
                polls: AtomicUsize::new(0),
                counts,
                stopped: AtomicBool::new(false),
            };
            (Arc::new(cq), id)
        }

        /// The device finishes `id`.
        fn finish(&self, id: WrId) {
            self.device.lock().unwrap().push_back((id, 7));
        }

        /// `CqInner::poll`.
        fn poll(&self) -> usize {
            let mut released = Vec::new();
            let reaped = self.reaping.run(|| self.reap(&mut released));
            drop(released);
            reaped.unwrap_or(0)
        }

        /// `CqInner::reap` and `deliver`, one completion at a time.
        fn reap(&self, released: &mut Vec<Resources>) -> Result<usize, ()> {
            let mut n = 0;
            loop {
                let next = self.device.lock().map_err(|_| ())?.pop_front();
                // A point where loom may switch threads, as the OS may
                // after `ibv_poll_cq` returns (see the model in `reaping`).
                self.polls.fetch_add(1, Relaxed);
                let Some((id, completion)) = next else {
                    return Ok(n);
                };
                let delivered = self.slots.lock().map_err(|_| ())?.complete(
                    id,
                    completion,
                    |_| true,
                    |_| {
                        self.counts.credits.fetch_add(1, SeqCst);
                    },
                );
                match delivered {
                    Delivered::Wake(w) => w.into_iter().for_each(Waker::wake),
                    Delivered::Release(res) => released.push(res),
                    Delivered::Stale => panic!("a posted request's completion was stale"),
                }
                n += 1;
            }
        }

        /// `CqInner::poll_request`: register, reap, check again.
        fn poll_request(&self, id: WrId, waker: &Waker) -> Poll<Option<(u32, Resources)>> {
            let mut polled = self.slots.lock().unwrap().poll(id, waker);
            if polled.is_pending() && self.poll() > 0 {
                polled = self.slots.lock().unwrap().poll(id, waker);
            }
            polled
        }

        /// `CqInner::poll_request` in either mode: the mode read first
        /// orders the steps (event mode: register, reap, check again; busy
        /// polling: reap, look once); read again once the waker is stored,
        /// it decides whether the future asks to be polled again (`true`).
        fn poll_request_in_mode(
            &self,
            id: WrId,
            waker: &Waker,
        ) -> (Poll<Option<(u32, Resources)>>, bool) {
            let busy = self.stopped.load(SeqCst);
            let mut polled = Poll::Pending;
            if !busy {
                polled = self.slots.lock().unwrap().poll(id, waker);
            }
            if polled.is_pending() && (self.poll() > 0 || busy) {
                polled = self.slots.lock().unwrap().poll(id, waker);
            }
            let asks = polled.is_pending() && self.stopped.load(SeqCst);
            (polled, asks)
        }

        /// `events::stopped`: marks the driver stopped, then wakes every
        /// waker stored in the slots.
        fn stop_driver(&self) {
            self.stopped.store(true, SeqCst);
            let wakers = self.slots.lock().unwrap().wakers();
            wakers.into_iter().for_each(Waker::wake);
        }

        /// `Drop for Post`: abandon, and drop what comes back outside the
        /// lock.
        fn drop_request(&self, id: WrId) {
            let released = self.slots.lock().unwrap().abandon(id);
            drop(released);
        }
    }

    /// A future is polled (with one waker, then, still pending, with
    /// another: the task moved) while the device finishes its request and
    /// another thread reaps. Each time it is left pending, the waker it
    /// gave last is woken; its result comes exactly once; the credit comes
    /// back once; the resources are released once.
    #[test]
    fn loom_no_lost_wake_up_and_one_delivery() {
        model(PREEMPTIONS, || {
            let (cq, id) = Cq::with_request();
            let driver = {
                let cq = cq.clone();
                thread::spawn(move || {
                    cq.finish(id);
                    cq.poll();
                })
            };
            let future = {
                let cq = cq.clone();
                thread::spawn(move || {
                    let mut results = 0;
                    let mut last = None;
                    for _ in 0..2 {
                        let (task, waker) = task();
                        match cq.poll_request(id, &waker) {
                            Poll::Ready(Some((completion, _res))) => {
                                assert_eq!(completion, 7);
                                results += 1;
                                last = None;
                                break;
                            }
                            Poll::Ready(None) => panic!("no result for a posted request"),
                            Poll::Pending => last = Some((task, waker)),
                        }
                    }
                    (results, last)
                })
            };
            driver.join().unwrap();
            let (mut results, pending) = future.join().unwrap();
            if let Some((task, waker)) = pending {
                assert!(
                    task.0.load(SeqCst) >= 1,
                    "lost wake-up: the future was left pending and its waker never woken"
                );
                // The executor polls the woken future.
                match cq.poll_request(id, &waker) {
                    Poll::Ready(Some((7, _res))) => results += 1,
                    _ => panic!("woken, yet the result is not there"),
                }
            }
            assert_eq!(results, 1, "the result was delivered {results} times");
            assert!(
                cq.slots.lock().unwrap().live() == 0,
                "the slot was not freed"
            );
            assert_eq!(cq.counts.credits.load(SeqCst), 1, "credits given back");
            assert_eq!(cq.counts.released.load(SeqCst), 1, "resources released");
        });
    }

    /// A future is dropped (after one poll) while the device finishes its
    /// request and another thread reaps: the resources are released exactly
    /// once, by whichever comes second, and the credit comes back once.
    #[test]
    fn loom_a_dropped_future_races_its_completion() {
        model(PREEMPTIONS, || {
            let (cq, id) = Cq::with_request();
            let driver = {
                let cq = cq.clone();
                thread::spawn(move || {
                    cq.finish(id);
                    cq.poll();
                })
            };
            let future = {
                let cq = cq.clone();
                thread::spawn(move || {
                    let (_, waker) = task();
                    match cq.poll_request(id, &waker) {
                        Poll::Ready(Some(_)) => {} // done before the drop
                        Poll::Ready(None) => panic!("no result for a posted request"),
                        Poll::Pending => cq.drop_request(id),
                    }
                })
            };
            driver.join().unwrap();
            future.join().unwrap();
            assert!(
                cq.slots.lock().unwrap().live() == 0,
                "the slot was not freed"
            );
            assert_eq!(cq.counts.credits.load(SeqCst), 1, "credits given back");
            assert_eq!(cq.counts.released.load(SeqCst), 1, "resources released");
        });
    }

    /// The event driver stops while a future polls in event mode: the
    /// future is woken by the stopping driver, or asks to be polled again
    /// itself; never neither (nothing else would wake it: it would sleep
    /// for ever with its request outstanding).
    #[test]
    fn loom_a_stopping_driver_strands_no_waiter() {
        model(PREEMPTIONS, || {
            let (cq, id) = Cq::with_request();
            let driver = {
                let cq = cq.clone();
                thread::spawn(move || cq.stop_driver())
            };
            let (task, waker) = task();
            let (polled, asks) = cq.poll_request_in_mode(id, &waker);
            driver.join().unwrap();
            assert!(polled.is_pending(), "nothing completed");
            assert!(
                asks || task.0.load(SeqCst) > 0,
                "left pending with no wake-up to come"
            );
        });
    }
}

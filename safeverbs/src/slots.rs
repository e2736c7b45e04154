//! The slot table: where the resources of posted work requests live until
//! their completion is reaped.
//!
//! The library owns `wr_id`: it is a slot index (low 32 bits) and the
//! slot's generation (high 32 bits), so a stale or unknown id is detected,
//! never misdelivered. A slot moves through
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
    fn new(index: u32, generation: u32) -> Self {
        Self(u64::from(generation) << 32 | u64::from(index))
    }
    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
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
        }
    }

    /// Requests posted and not yet handed back (including abandoned ones).
    pub fn live(&self) -> usize {
        self.live
    }

    fn get(&mut self, id: WrId) -> Option<&mut Slot<R, C>> {
        self.slots
            .get_mut(id.index())
            .filter(|s| s.generation == id.generation())
    }

    fn free_slot(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.state = State::Free;
            // Generation 0 is never handed out, so wr_id 0 is never valid.
            slot.generation = slot.generation.wrapping_add(1).max(1);
            self.free.push(index as u32);
            self.live -= 1;
        }
    }

    /// Stores `res` for a request about to be posted and returns its id.
    pub fn acquire(&mut self, res: R) -> WrId {
        self.live += 1;
        let state = State::Posted { waker: None, res };
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.state = state;
            return WrId::new(index, slot.generation);
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 1,
            state,
        });
        WrId::new(index, 1)
    }

    /// Takes back the resources of a request whose post failed.
    pub fn cancel(&mut self, id: WrId) -> Option<R> {
        let slot = self.get(id)?;
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Posted { res, .. } => {
                self.free_slot(id.index());
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
                self.free_slot(id.index());
                Some((res, None))
            }
            State::Done { res, completion } => {
                self.free_slot(id.index());
                Some((res, Some(completion)))
            }
            other => {
                slot.state = other;
                None
            }
        }
    }

    /// Records the completion of `id`; `reaped` sees the request's
    /// resources once (to return credits) whoever waits for them.
    pub fn complete(&mut self, id: WrId, completion: C, reaped: impl FnOnce(&R)) -> Delivered<R> {
        let Some(slot) = self.get(id) else {
            return Delivered::Stale;
        };
        match std::mem::replace(&mut slot.state, State::Free) {
            State::Posted { waker, res } => {
                reaped(&res);
                slot.state = State::Done { res, completion };
                Delivered::Wake(waker)
            }
            State::Abandoned { res } => {
                reaped(&res);
                self.free_slot(id.index());
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
                    self.free_slot(id.index());
                    Poll::Ready(Some((completion, res)))
                }
                _ => Poll::Ready(None),
            },
            State::Free | State::Abandoned { .. } => Poll::Ready(None),
        }
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
                self.free_slot(id.index());
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
        match t.complete(id, 7, |_| {}) {
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
        match t.complete(id, 0, |_| {}) {
            Delivered::Release(r) => assert_eq!(r, "seg"),
            _ => panic!("expected release"),
        }
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn abandon_after_completion_releases_at_once() {
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(1);
        assert!(matches!(t.complete(id, 2, |_| {}), Delivered::Wake(None)));
        assert_eq!(t.abandon(id), Some(1));
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn stale_and_unknown_ids_are_reported_not_delivered() {
        let mut t = SlotTable::<u8, u8>::with_capacity(1);
        let id = t.acquire(1);
        let (_, w) = waker();
        assert!(matches!(t.complete(id, 0, |_| {}), Delivered::Wake(_)));
        assert!(t.poll(id, &w).is_ready());
        // The slot is reused with a new generation: the old id is stale.
        let id2 = t.acquire(2);
        assert_eq!(id2.index(), id.index());
        assert_ne!(id2, id);
        assert!(matches!(t.complete(id, 0, |_| {}), Delivered::Stale));
        assert!(matches!(
            t.complete(WrId(u64::MAX), 0, |_| {}),
            Delivered::Stale
        ));
        assert!(matches!(t.complete(WrId(0), 0, |_| {}), Delivered::Stale));
        assert!(t.poll(id2, &w).is_pending());
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
        if let Delivered::Wake(Some(w)) = t.complete(id, 0, |_| {}) {
            w.wake();
        }
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
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
                let _ = t.complete(*id, i, |_| {});
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
}

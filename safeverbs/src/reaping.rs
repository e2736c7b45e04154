//! One reaper at a time: the protocol by which the threads that poll a
//! completion queue take turns emptying it (see [`CqInner::poll`]).
//!
//! Two claims rest on it, and the loom models below check both on this code
//! (`./dev loom`):
//! - **no lost reap**: what is in the queue when any thread calls
//!   [`Reaping::run`] is reaped by someone before every `run` call has
//!   returned, though a thread that finds another reaping does not wait;
//! - **queue order**: never two reapers at once, so completions are handed
//!   out in the order the queue returned them (a batch's failed rider is
//!   delivered before the flush of the signaled request after it).
//!
//! What loom cannot check: it runs lock operations and `SeqCst` accesses in
//! one global order. The language's memory model is weaker: a failed
//! `try_lock` is a relaxed load there, so "`again` set, then the lock seen
//! held" in one thread and "lock let go, then `again` read" in the reaper
//! form a store-buffering pattern it does not forbid. Every mutex on the
//! targets we build for (locked read-modify-writes on x86-64, acquire and
//! release instructions on AArch64) orders them; a `SeqCst` fence after
//! each of the two first steps would make it hold by the model alone.
//!
//! [`CqInner::poll`]: crate::cq::CqInner::poll

use crate::sync::{AtomicBool, Mutex, Ordering, TryLockError};

/// The reaper role of one queue.
pub(crate) struct Reaping {
    /// Held by the one thread reaping.
    reaper: Mutex<()>,
    /// Set by a thread that wanted to reap while another was reaping.
    again: AtomicBool,
}

impl Reaping {
    pub(crate) fn new() -> Self {
        Self {
            reaper: Mutex::new(()),
            again: AtomicBool::new(false),
        }
    }

    /// Runs `reap` (which empties the queue and says how much it took) as
    /// the queue's one reaper, as often as needed; returns the total.
    ///
    /// A thread that finds another reaping does not wait: it asks the
    /// reaper to go round once more (`again`, checked after the reaper lets
    /// go) and returns 0, so what arrived meanwhile is never left unreaped.
    /// The first error of `reap` ends the call.
    pub(crate) fn run<E>(&self, mut reap: impl FnMut() -> Result<usize, E>) -> Result<usize, E> {
        let mut total = 0;
        loop {
            let reaper = match self.reaper.try_lock() {
                Ok(guard) => guard,
                // A panic cannot leave `()` half updated.
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    self.again.store(true, Ordering::SeqCst);
                    match self.reaper.try_lock() {
                        Ok(guard) => guard,
                        Err(TryLockError::Poisoned(p)) => p.into_inner(),
                        // The reaper will see `again` after it lets go.
                        Err(TryLockError::WouldBlock) => return Ok(total),
                    }
                }
            };
            self.again.store(false, Ordering::SeqCst);
            let reaped = reap();
            drop(reaper);
            total += reaped?;
            if !self.again.load(Ordering::SeqCst) {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use std::collections::VecDeque;

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::Reaping;
    use crate::sync::{model, Ordering::Relaxed};

    /// The preemption bound of this model (see `crate::sync::model`).
    const PREEMPTIONS: usize = 4;

    /// A completion queue: what the device has finished, in order, and how
    /// many entries it ever held.
    #[derive(Default)]
    struct Queue {
        entries: VecDeque<usize>,
        pushed: usize,
    }

    struct World {
        reaping: Reaping,
        queue: Mutex<Queue>,
        /// What was delivered, in order. Touched only by the reaper, with
        /// no lock of its own: two reapers at once are a data race, which
        /// loom reports.
        delivered: UnsafeCell<Vec<usize>>,
        /// Calls of the queue's poll (see `reap`).
        polls: AtomicUsize,
    }

    impl World {
        /// Empties the queue one entry at a time, as `CqInner::reap` does
        /// (`ibv_poll_cq`, then delivery under another lock).
        fn reap(&self) -> Result<usize, ()> {
            let mut n = 0;
            loop {
                let entry = self.queue.lock().map_err(|_| ())?.entries.pop_front();
                // A point where loom may switch threads, as the OS may
                // after `ibv_poll_cq` returns (loom switches only at
                // synchronising operations, and letting go of a lock is
                // not one): without it, finding the queue empty and
                // letting go of the reaper role would be one step.
                // Relaxed: it orders nothing between the threads.
                self.polls.fetch_add(1, Relaxed);
                let Some(entry) = entry else {
                    return Ok(n);
                };
                // SAFETY: only the reaper touches `delivered` until every
                // thread is joined; were two reapers to overlap, loom would
                // report the race here instead of running it.
                self.delivered.with_mut(|d| unsafe { (*d).push(entry) });
                n += 1;
            }
        }

        fn push(&self, entry: usize) {
            let mut q = self.queue.lock().unwrap();
            q.entries.push_back(entry);
            q.pushed += 1;
        }

        /// A thread's `poll`: returns how many entries the queue had held
        /// when it was called, all of which must be delivered by the end.
        fn poll(&self) -> usize {
            let pushed = self.queue.lock().unwrap().pushed;
            let _ = self.reaping.run(|| self.reap());
            pushed
        }
    }

    /// One thread completes two requests while two threads poll: each
    /// completion present when a poll began is delivered, in queue order,
    /// exactly once.
    #[test]
    fn loom_no_lost_reap_and_queue_order() {
        model(PREEMPTIONS, || {
            let w = Arc::new(World {
                reaping: Reaping::new(),
                queue: Mutex::new(Queue::default()),
                delivered: UnsafeCell::new(Vec::new()),
                polls: AtomicUsize::new(0),
            });
            let device = {
                let w = w.clone();
                thread::spawn(move || {
                    w.push(0);
                    w.push(1);
                })
            };
            let pollers: Vec<_> = (0..2)
                .map(|_| {
                    let w = w.clone();
                    thread::spawn(move || w.poll())
                })
                .collect();
            device.join().unwrap();
            let seen = pollers.into_iter().map(|p| p.join().unwrap()).max();
            // SAFETY: every thread is joined: nothing else touches it.
            let delivered = w.delivered.with(|d| unsafe { (*d).clone() });
            assert!(
                delivered.len() >= seen.unwrap_or(0),
                "lost reap: {seen:?} completions were queued when a poll began, \
                 {delivered:?} delivered when every poll had returned"
            );
            assert_eq!(
                delivered,
                (0..delivered.len()).collect::<Vec<_>>(),
                "delivered out of queue order or twice"
            );
        });
    }
}

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
//! The role is one atomic state (`IDLE`, `REAPING`, `AGAIN`), changed only
//! by read-modify-writes. Those are totally ordered on one location by the
//! language's memory model itself, so "ask for another round" and "let go"
//! cannot both miss each other (an earlier version paired a mutex with a
//! flag, which formed a store-buffering pattern the model does not forbid
//! and loom cannot show).
//!
//! [`CqInner::poll`]: crate::completions::cq::CqInner::poll

use crate::sync::{AtomicU8, Ordering};

/// Nobody reaps.
const IDLE: u8 = 0;
/// One thread reaps.
const REAPING: u8 = 1;
/// One thread reaps, and another asked it to go round once more.
const AGAIN: u8 = 2;

/// The reaper role of one queue: one atomic state, so that "ask the reaper
/// to go round again" and "the reaper lets go" are read-modify-writes of one
/// location, totally ordered: one of them always sees the other.
pub(crate) struct Reaping {
    state: AtomicU8,
}

/// Gives the role back if `reap` panics, so the queue is not left with a
/// reaper that is gone.
struct Release<'a>(&'a AtomicU8);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(IDLE, Ordering::Release);
    }
}

impl Reaping {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(IDLE),
        }
    }

    /// Runs `reap` (which empties the queue and says how much it took) as
    /// the queue's one reaper, as often as needed; returns the total.
    ///
    /// A thread that finds another reaping does not wait: it asks the
    /// reaper to go round once more (`AGAIN`) and returns 0; the reaper
    /// lets go only from `REAPING`, so what arrived meanwhile is never left
    /// unreaped. The first error of `reap` ends the call (and the role).
    pub(crate) fn run<E>(&self, mut reap: impl FnMut() -> Result<usize, E>) -> Result<usize, E> {
        // Take the role, or hand the work to whoever has it.
        loop {
            match self
                .state
                .compare_exchange(IDLE, REAPING, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(_) => {
                    let asked = self
                        .state
                        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
                            (s != IDLE).then_some(AGAIN)
                        });
                    if asked.is_ok() {
                        return Ok(0);
                    }
                    // The reaper let go meanwhile: try to take the role.
                }
            }
        }
        let release = Release(&self.state);
        let mut total = 0;
        loop {
            total += reap()?;
            // Let go, unless someone asked for another round.
            match self
                .state
                .compare_exchange(REAPING, IDLE, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    std::mem::forget(release);
                    return Ok(total);
                }
                // `AGAIN`: only we move it back, and only the reaper can be
                // asked, so the state is ours to reset.
                Err(_) => self.state.store(REAPING, Ordering::Relaxed),
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Reaping;

    /// A reaper that panics gives the role back: the next poll reaps.
    #[test]
    fn a_panicking_reap_gives_the_role_back() {
        let reaping = Reaping::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = reaping.run::<()>(|| panic!("the provider's poll panicked"));
        }));
        assert!(panicked.is_err());
        assert_eq!(
            reaping.run::<()>(|| Ok(3)),
            Ok(3),
            "the role was left taken"
        );
        assert_eq!(reaping.run::<()>(|| Err(())), Err(()));
        assert_eq!(
            reaping.run::<()>(|| Ok(1)),
            Ok(1),
            "an error gives the role back too"
        );
    }
}

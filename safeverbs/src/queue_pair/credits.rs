//! The slots of a work queue (its credits): single posts, batches that
//! gather slots behind a gate, and what a dropped batch gives back.
//!
//! The loom models below run this code with 2-3 threads (`./dev loom`).

use crate::sync::{AtomicBool, AtomicU32, Ordering};

/// Send- or receive-queue slots in use.
///
/// Single posts take one slot when one is free. A request for several
/// (a batch) that does not fit at once takes the *gate*: while it is held,
/// single posts wait, and the gate's holder gathers slots as they are
/// freed until it has all it needs. So a batch cannot be starved by single
/// posts, and two batches never hold part of the queue each.
pub(crate) struct Credits {
    used: AtomicU32,
    max: u32,
    gate: AtomicBool,
}

/// Slots gathered so far by a request for several (see [`Credits`]).
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    have: u32,
    gate: bool,
}

impl Credits {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            used: AtomicU32::new(0),
            max,
            gate: AtomicBool::new(false),
        }
    }
    /// The queue's depth.
    pub(crate) fn max(&self) -> u32 {
        self.max
    }
    /// Takes `n` slots at once (all or none); none while a batch holds the
    /// gate.
    pub(crate) fn take(&self, n: u32) -> bool {
        !self.gate.load(Ordering::Acquire)
            && self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    (u + n <= self.max).then_some(u + n)
                })
                .is_ok()
    }
    /// Takes as many free slots as there are, up to `n`.
    fn take_up_to(&self, n: u32) -> u32 {
        let mut took = 0;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                took = n.min(self.max.saturating_sub(u));
                (took > 0).then_some(u + took)
            });
        took
    }
    /// Gathers slots toward `n` for `g`; true when `g` holds all `n`.
    pub(crate) fn gather(&self, n: u32, g: &mut Gathered) -> bool {
        if g.have == 0 && !g.gate && self.take(n) {
            g.have = n;
            return true;
        }
        if !g.gate {
            let open = self
                .gate
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
            if open.is_err() {
                return false; // another batch is gathering
            }
            g.gate = true;
        }
        g.have += self.take_up_to(n - g.have);
        if g.have < n {
            return false;
        }
        self.gate.store(false, Ordering::Release);
        g.gate = false;
        true
    }
    /// Gives back what `g` gathered (a batch dropped before posting).
    pub(crate) fn abandon(&self, g: &mut Gathered) {
        for _ in 0..std::mem::take(&mut g.have) {
            self.give();
        }
        if std::mem::take(&mut g.gate) {
            self.gate.store(false, Ordering::Release);
        }
    }
    /// Gives back one slot.
    pub(crate) fn give(&self) {
        let given = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
        debug_assert!(given.is_ok(), "a credit given back that was not taken");
    }
    /// Slots in use now.
    pub(crate) fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Credits, Gathered};

    /// Single posts take every slot as it is freed; a batch that needs all
    /// four must still get them (the gate), and give back what it
    /// gathered if it is dropped.
    #[test]
    fn a_batch_is_not_starved_by_single_posts() {
        let c = Credits::new(4);
        assert!(c.take(4));
        let mut batch = Gathered::default();
        let mut rounds = 0;
        while !c.gather(4, &mut batch) {
            rounds += 1;
            assert!(rounds <= 4, "the batch never got its slots");
            c.give(); // a single post completes ...
            let _ = c.take(1); // ... and a new one tries at once
        }
        assert_eq!(c.used(), 4, "the batch holds the whole queue");
        assert!(!c.take(1), "full");
        for _ in 0..4 {
            c.give();
        }
        assert!(c.take(1), "the gate is open again");
    }

    #[test]
    fn a_batch_dropped_while_gathering_gives_everything_back() {
        let c = Credits::new(4);
        assert!(c.take(3));
        let mut batch = Gathered::default();
        assert!(!c.gather(4, &mut batch), "one slot free, four needed");
        assert!(!c.take(1), "single posts wait while a batch gathers");
        let mut other = Gathered::default();
        assert!(!c.gather(2, &mut other), "one batch gathers at a time");
        c.abandon(&mut batch);
        assert_eq!(c.used(), 3);
        assert!(c.take(1), "the gate is open again");
        c.abandon(&mut other);
        assert_eq!(c.used(), 4);
    }
}

#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use loom::sync::atomic::{AtomicBool, AtomicU32};
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    use super::{Credits, Gathered};
    use crate::sync::{model, Ordering::SeqCst};

    /// The preemption bound of these models (see `crate::sync::model`).
    const PREEMPTIONS: usize = 3;

    /// The queue's credits, the slots the threads say they hold (checked
    /// against the depth each time one takes some), and a count of slots
    /// given back that a waiting batch sleeps on, as a pending post is
    /// polled again: were it to wait for a give that never comes, loom
    /// reports the deadlock.
    struct Ledger {
        credits: Credits,
        held: AtomicU32,
        given: Mutex<u32>,
        gave: Condvar,
    }

    impl Ledger {
        fn new(max: u32, taken: u32) -> Arc<Self> {
            let credits = Credits::new(max);
            assert!(credits.take(taken));
            Arc::new(Self {
                credits,
                held: AtomicU32::new(taken),
                given: Mutex::new(0),
                gave: Condvar::new(),
            })
        }
        fn took(&self, n: u32) {
            let held = self.held.fetch_add(n, SeqCst) + n;
            assert!(
                held <= self.credits.max(),
                "{held} slots held on a queue of {}",
                self.credits.max()
            );
        }
        fn give(&self, n: u32) {
            self.held.fetch_sub(n, SeqCst);
            for _ in 0..n {
                self.credits.give();
            }
            *self.given.lock().unwrap() += n;
            self.gave.notify_all();
        }
        /// At the end: what the queue counts as used is what is held.
        fn settled(&self) {
            assert_eq!(
                self.credits.used(),
                self.held.load(SeqCst),
                "credits lost or created"
            );
        }
        /// Gathers `n` slots, sleeping until a slot is given back while it
        /// cannot; says (`gated`) when it holds the gate.
        fn batch(&self, n: u32, gated: &AtomicBool) -> Gathered {
            let mut g = Gathered::default();
            loop {
                let seen = *self.given.lock().unwrap();
                if self.credits.gather(n, &mut g) {
                    break;
                }
                gated.store(true, SeqCst);
                let mut given = self.given.lock().unwrap();
                while *given == seen {
                    given = self.gave.wait(given).unwrap();
                }
            }
            self.took(n);
            g
        }
    }

    /// A single post whose request completes (its slot comes back), then
    /// posts again if it can, and completes again. Fails if it got a slot
    /// although it asked after a batch had taken the gate.
    fn single(l: &Ledger, gated: &AtomicBool) {
        l.give(1);
        let after_gate = gated.load(SeqCst);
        if l.credits.take(1) {
            assert!(
                !after_gate,
                "a single post took a slot while a batch held the gate"
            );
            l.took(1);
            l.give(1);
        }
    }

    /// Two single posts hold the whole queue (depth 2) and post again
    /// while a batch of 2 gathers: the batch gets both slots (once the
    /// singles give back, they cannot take them again), never more than
    /// the depth is used, and no credit is lost or created.
    #[test]
    fn loom_a_gathering_batch_is_not_starved_by_singles() {
        model(PREEMPTIONS, || {
            let l = Ledger::new(2, 2);
            let gated = Arc::new(AtomicBool::new(false));
            let singles: Vec<_> = (0..2)
                .map(|_| {
                    let (l, gated) = (l.clone(), gated.clone());
                    thread::spawn(move || single(&l, &gated))
                })
                .collect();
            let g = l.batch(2, &gated);
            singles.into_iter().for_each(|s| s.join().unwrap());
            assert_eq!(g.have, 2);
            l.settled();
            assert_eq!(l.credits.used(), 2, "the batch holds the queue");
            l.give(2);
            l.settled();
            assert!(l.credits.take(2), "the gate is open again");
        });
    }

    /// As above, but the batch is dropped after one try (holding the gate,
    /// and part of the queue if a single gave back in time): it gives
    /// every slot back and opens the gate.
    #[test]
    fn loom_an_abandoned_batch_gives_back_its_slots_and_the_gate() {
        model(PREEMPTIONS, || {
            let l = Ledger::new(2, 2);
            let singles: Vec<_> = (0..2)
                .map(|_| {
                    let l = l.clone();
                    // The singles may post again once the batch is gone.
                    let ungated = AtomicBool::new(false);
                    thread::spawn(move || single(&l, &ungated))
                })
                .collect();
            let mut g = Gathered::default();
            if l.credits.gather(2, &mut g) {
                l.took(2);
                l.give(2);
            } else {
                l.credits.abandon(&mut g);
            }
            singles.into_iter().for_each(|s| s.join().unwrap());
            l.settled();
            assert_eq!(l.credits.used(), 0);
            assert!(l.credits.take(2), "the gate is open again");
        });
    }

    /// A single post holds one slot of two while two batches of 2 gather:
    /// only one may hold part of the queue (two would each wait for the
    /// other's slot forever: a deadlock, which loom reports); each
    /// completes, and gives its slots back when its requests complete.
    #[test]
    fn loom_two_batches_never_both_hold_part() {
        model(PREEMPTIONS, || {
            let l = Ledger::new(2, 1);
            let unused = Arc::new(AtomicBool::new(false));
            let other = {
                let (l, unused) = (l.clone(), unused.clone());
                thread::spawn(move || {
                    let _ = l.batch(2, &unused);
                    l.give(2);
                })
            };
            let single = {
                let l = l.clone();
                thread::spawn(move || l.give(1))
            };
            let _ = l.batch(2, &unused);
            l.give(2);
            single.join().unwrap();
            other.join().unwrap();
            l.settled();
            assert_eq!(l.credits.used(), 0);
        });
    }
}

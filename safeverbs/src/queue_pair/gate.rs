//! The gate of a queue pair: who may still call verbs on its `ibv_qp`, and
//! who destroys it while handles to it remain.
//!
//! Every post and transition enters the gate for the length of its verb
//! call. [`close`](Gate::close) refuses every later entry, and exactly one
//! thread is told to destroy the queue pair: the closer if nobody was
//! inside, otherwise the last one out. So `ibv_destroy_qp` never runs
//! during another verb call on the same queue pair, and never twice.
//!
//! One atomic word: the number of threads inside, a `CLOSED` bit, and a
//! `CLAIMED` bit that hands the destruction to one thread (a refused entry
//! also goes in and out, so more than one thread can see "closed, empty").

use crate::sync::{AtomicU32, Ordering};

const CLOSED: u32 = 1 << 31;
const CLAIMED: u32 = 1 << 30;
const INSIDE: u32 = CLAIMED - 1;

pub(crate) struct Gate {
    state: AtomicU32,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
        }
    }

    /// Goes in: `true` if the gate was open. Either way the caller is
    /// inside and must [`leave`](Self::leave).
    pub(crate) fn enter(&self) -> bool {
        // Acquire: an entry after a close sees it (one location, one order).
        // Release: what the caller did before it went in (a shutdown cause
        // recorded before the move to ERR) is seen by whoever leaves after
        // (`post_one`).
        self.state.fetch_add(1, Ordering::AcqRel) & CLOSED == 0
    }

    /// Goes out: `true` if the caller must now destroy the queue pair (it
    /// was the last one out of a closed gate, and the first to claim it).
    pub(crate) fn leave(&self) -> bool {
        // Release: the caller's verb call happens before the destruction,
        // which acquires this word.
        let before = self.state.fetch_sub(1, Ordering::AcqRel);
        before & (CLOSED | INSIDE) == CLOSED | 1 && self.claim()
    }

    /// Closes the gate: `true` if the caller must destroy the queue pair
    /// now (nobody was inside). Closing a closed gate does nothing.
    pub(crate) fn close(&self) -> bool {
        let before = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        before & (CLOSED | INSIDE) == 0 && self.claim()
    }

    /// The one destruction: `true` for the first thread that asks.
    fn claim(&self) -> bool {
        self.state.fetch_or(CLAIMED, Ordering::AcqRel) & CLAIMED == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn closing_an_empty_gate_destroys_at_once_and_only_once() {
        let g = Gate::new();
        assert!(g.close(), "nobody inside: the closer destroys");
        assert!(!g.close(), "a second close does nothing");
        assert!(!g.enter(), "a closed gate refuses");
        assert!(!g.leave(), "a refused entry does not destroy again");
    }

    #[test]
    fn the_last_one_out_of_a_closed_gate_destroys() {
        let g = Gate::new();
        assert!(g.enter() && g.enter());
        assert!(!g.close(), "two inside: not yet");
        assert!(!g.enter(), "closed");
        assert!(!g.leave(), "the refused one: two still inside");
        assert!(!g.leave(), "one still inside");
        assert!(g.leave(), "the last one out");
        assert!(!g.enter() && !g.leave(), "destroyed once");
    }

    #[test]
    fn an_open_gate_never_asks_for_destruction() {
        let g = Gate::new();
        for _ in 0..3 {
            assert!(g.enter());
            assert!(!g.leave());
        }
        assert!(g.close(), "still open until closed");
    }
}

#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    /// Two threads post while a third closes: the queue pair is destroyed
    /// exactly once, and never while a post that was let in is inside.
    #[test]
    fn loom_one_destruction_never_during_a_post() {
        crate::sync::model(3, || {
            // `inside`: posts let in and not yet out; `destroyed`: how
            // many times destruction ran.
            let g = Arc::new((Gate::new(), AtomicUsize::new(0), AtomicUsize::new(0)));
            let destroy = |s: &(Gate, AtomicUsize, AtomicUsize)| {
                assert_eq!(s.1.load(Ordering::SeqCst), 0, "destroyed during a post");
                s.2.fetch_add(1, Ordering::SeqCst);
            };
            let posters: Vec<_> = (0..2)
                .map(|_| {
                    let g = g.clone();
                    thread::spawn(move || {
                        if g.0.enter() {
                            g.1.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(g.2.load(Ordering::SeqCst), 0, "posted after destruction");
                            g.1.fetch_sub(1, Ordering::SeqCst);
                        }
                        if g.0.leave() {
                            destroy(&g);
                        }
                    })
                })
                .collect();
            if g.0.close() {
                destroy(&g);
            }
            for p in posters {
                p.join().unwrap();
            }
            assert_eq!(g.2.load(Ordering::SeqCst), 1, "destroyed exactly once");
        });
    }
}

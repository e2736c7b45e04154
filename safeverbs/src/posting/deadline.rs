//! Deadlines on operations ([`Post::timeout`](crate::Post::timeout)).
//!
//! RDMA cannot cancel one posted request: when a posted operation's
//! deadline passes, its queue pair is shut down
//! ([`Shutdown::DeadlineExpired`](crate::Shutdown::DeadlineExpired)), and
//! the operation resolves when its flush is reaped, with its buffer. An
//! operation still waiting for room in its queue is simply not posted.
//!
//! A future in busy-poll mode is polled again and again, so it notices the
//! deadline itself. In event mode nothing polls it until its completion
//! arrives, so it registers its waker with the process's timer thread,
//! which wakes it when the deadline passes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

/// When an operation gives up, and the bound the user chose.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    after: Duration,
}

impl Deadline {
    /// A deadline `after` from now (saturating far in the future).
    pub(crate) fn after(after: Duration) -> Self {
        let now = Instant::now();
        let at = now
            .checked_add(after)
            .unwrap_or_else(|| now + Duration::from_secs(u32::MAX.into()));
        Self { at, after }
    }

    /// The bound the user chose.
    pub(crate) fn bound(&self) -> Duration {
        self.after
    }

    /// True once the deadline has passed. Otherwise, unless the future is
    /// polled again anyway (`busy_poll`), arranges for `cx` to be woken
    /// when it passes.
    pub(crate) fn passed(&self, cx: &Context<'_>, busy_poll: bool) -> bool {
        if Instant::now() >= self.at {
            return true;
        }
        if !busy_poll {
            wake_at(self.at, cx.waker().clone());
        }
        false
    }
}

struct Timer {
    due: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
}

struct Entry {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();

/// Wakes `waker` at `at` (or soon after).
fn wake_at(at: Instant, waker: Waker) {
    let timer = TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            due: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        match std::thread::Builder::new()
            .name("safeverbs-timer".into())
            .spawn(move || timer.run())
        {
            Ok(_) => Some(timer),
            Err(e) => {
                tracing::error!(%e, "could not start the deadline timer thread");
                None
            }
        }
    });
    match timer {
        Some(timer) => {
            let mut due = crate::sync::lock(&timer.due);
            due.push(Reverse(Entry { at, waker }));
            timer.changed.notify_one();
        }
        // No timer: wake at once, so the future polls (and spins) until
        // its deadline rather than missing it.
        None => waker.wake(),
    }
}

impl Timer {
    fn run(&self) {
        let mut due = crate::sync::lock(&self.due);
        loop {
            let now = Instant::now();
            if due.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = due.pop() {
                    // Woken outside the lock: a waker may poll at once.
                    drop(due);
                    e.waker.wake();
                    due = crate::sync::lock(&self.due);
                }
                continue;
            }
            due = match due.peek().map(|Reverse(e)| e.at - now) {
                Some(wait) => {
                    self.changed
                        .wait_timeout(due, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(due).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

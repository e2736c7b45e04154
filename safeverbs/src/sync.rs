//! The synchronisation primitives of the concurrency core ([`reaping`],
//! [`credits`]): the standard library's, or loom's when the crate is built
//! for the loom models (`RUSTFLAGS="--cfg loom"`, see `./dev loom`), so that
//! the models run the library's own code, not a copy of it.
//!
//! A loom build is for the models only: loom's primitives work inside
//! `loom::model` alone.
//!
//! [`reaping`]: crate::completions::reaping
//! [`credits`]: crate::queue_pair::credits

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};

pub(crate) use std::sync::atomic::Ordering;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, whether or not a thread panicked while holding it: the one
/// poison policy of SafeVerbs, for every lock it takes (the model device's
/// included).
///
/// A poisoned lock tells that a panic left a critical section early. The
/// critical sections of SafeVerbs run no user code except a waker's clone
/// and drop, each between two whole changes of the guarded state; any
/// other panic in one is a broken invariant of SafeVerbs itself, a bug
/// after which no guarantee stands, poisoned lock or not. So poison never
/// marks data that is half updated by a cause a caller could provoke, and
/// refusing it would only turn one panic into the failure of every later
/// call on the object, its `Drop` included (which must neither panic nor
/// skip releasing what it holds).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the model `f` under loom, exploring every interleaving with at
/// most `preemptions` preemptions (unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise): each model picks the largest bound that keeps `./dev loom`
/// short.
#[cfg(all(test, loom))]
pub(crate) fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

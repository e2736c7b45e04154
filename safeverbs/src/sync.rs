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

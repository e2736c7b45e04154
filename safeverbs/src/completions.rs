//! Completions: the completion queue ([`cq`]) reaps what the NIC finished,
//! one reaper at a time ([`reaping`]), and hands each [`completion`] to its
//! request's entry in the [`slots`] table, waking its future; event mode
//! ([`events`]) wakes them from a completion channel, and the background
//! [`reaper`] finishes work whose every handle is gone.

pub(crate) mod completion;
pub(crate) mod cq;
pub(crate) mod events;
pub(crate) mod reaper;
pub(crate) mod reaping;
pub(crate) mod slots;

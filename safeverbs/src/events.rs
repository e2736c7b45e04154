//! Event mode: completion channels, so that waiting for a completion
//! sleeps instead of spinning.
//!
//! A completion queue in event mode is attached to an `ibv_comp_channel`
//! and armed with `ibv_req_notify_cq`. A driver waits for the channel's
//! file descriptor to become readable, then drains every event, acks them,
//! re-arms the queue and polls it, which wakes the futures whose work
//! completed. Two drivers exist: a portable notifier thread
//! ([`CqMode::Notifier`]) and, with the `tokio` feature, a task on the
//! current tokio runtime waiting through `AsyncFd` ([`CqMode::Tokio`]).
//!
//! Drivers hold only a `Weak` reference to the queue and a duplicate of the
//! channel's descriptor: they never keep the queue alive, and they touch the
//! channel only while an upgraded reference proves it still exists.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::time::Duration;

use safeverbs_sys as sys;

use crate::cq::CqInner;
use crate::{Error, Result};

/// How a completion queue's futures wait for their completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CqMode {
    /// A pending future polls its completion queue and asks to be polled
    /// again: lowest latency, one core busy while waiting. Works with every
    /// executor.
    #[default]
    BusyPoll,
    /// A completion channel and a notifier thread per queue: futures sleep
    /// until their completion arrives. Works with every executor.
    Notifier,
    /// A completion channel driven by a task on the current tokio runtime
    /// (through `AsyncFd`). Must be created inside a runtime.
    #[cfg(feature = "tokio")]
    Tokio,
}

/// How long the notifier thread sleeps between checks that its queue still
/// exists.
const NOTIFIER_TICK: Duration = Duration::from_millis(100);

/// An `ibv_comp_channel`.
pub(crate) struct Channel {
    ptr: NonNull<sys::ibv_comp_channel>,
}

impl Channel {
    pub(crate) fn create(ctx: *mut sys::ibv_context) -> Result<Self> {
        // SAFETY: `ctx` is an open device context (caller holds the device).
        let ptr = unsafe { sys::ibv_create_comp_channel(ctx) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::last_os("ibv_create_comp_channel"))?;
        let this = Self { ptr };
        // Events are drained until EAGAIN: the descriptor must not block.
        // SAFETY: the descriptor belongs to the live channel.
        let fd = unsafe { BorrowedFd::borrow_raw(this.fd()) };
        set_nonblocking(fd)?;
        Ok(this)
    }

    pub(crate) fn raw(&self) -> *mut sys::ibv_comp_channel {
        self.ptr.as_ptr()
    }

    fn fd(&self) -> RawFd {
        // SAFETY: the channel is live while `self` is.
        unsafe { (*self.ptr.as_ptr()).fd }
    }

    /// A duplicate of the channel's descriptor, for a driver to wait on.
    fn dup_fd(&self) -> Result<OwnedFd> {
        // SAFETY: the descriptor belongs to the live channel.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd()) };
        fd.try_clone_to_owned().map_err(|e| Error::Verb {
            verb: "dup",
            source: e,
            hint: None,
        })
    }

    /// Takes every pending event; returns how many.
    fn drain(&self) -> Result<u32> {
        let mut n = 0;
        loop {
            let mut cq = std::ptr::null_mut();
            let mut ctx = std::ptr::null_mut();
            // SAFETY: the channel is live; the out-parameters are valid.
            let rc = unsafe { sys::ibv_get_cq_event(self.raw(), &mut cq, &mut ctx) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                return match err.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(n),
                    _ => Err(Error::Verb {
                        verb: "ibv_get_cq_event",
                        source: err,
                        hint: None,
                    }),
                };
            }
            n += 1;
        }
    }
}

// SAFETY: a completion channel is a file descriptor wrapper; libibverbs'
// channel calls are thread-safe.
unsafe impl Send for Channel {}
// SAFETY: as above.
unsafe impl Sync for Channel {}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: the CQ attached to it was destroyed first (`CqInner`'s
        // drop order) and every event was acked.
        let rc = unsafe { sys::ibv_destroy_comp_channel(self.ptr.as_ptr()) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_destroy_comp_channel failed");
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a valid descriptor with integer arguments.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(Error::last_os("fcntl(O_NONBLOCK)"));
    }
    Ok(())
}

impl CqInner {
    /// Drains the channel's events, acks them, re-arms the queue, then
    /// reaps every completion (so none that arrived before re-arming is
    /// missed). Returns how many completions were reaped.
    pub(crate) fn handle_events(&self, channel: &Channel) -> Result<usize> {
        let events = channel.drain()?;
        if events > 0 {
            // SAFETY: the CQ is live and these events were taken from it.
            unsafe { sys::ibv_ack_cq_events(self.raw(), events) };
        }
        self.arm()?;
        self.poll()
    }

    /// Asks for an event on the next completion.
    pub(crate) fn arm(&self) -> Result<()> {
        // SAFETY: the CQ is live while `self` is.
        let rc = unsafe { sys::ibv_req_notify_cq(self.raw(), 0) };
        if rc != 0 {
            return Err(Error::errno("ibv_req_notify_cq", rc));
        }
        Ok(())
    }
}

/// Starts the driver of `mode` for a freshly created event-mode queue.
pub(crate) fn start_driver(cq: &Arc<CqInner>, channel: &Channel, mode: CqMode) -> Result<()> {
    let fd = channel.dup_fd()?;
    let weak = Arc::downgrade(cq);
    cq.arm()?;
    match mode {
        CqMode::BusyPoll => Ok(()),
        CqMode::Notifier => {
            std::thread::Builder::new()
                .name("safeverbs-cq".into())
                .spawn(move || notifier(weak, fd))
                .map_err(|e| Error::Verb {
                    verb: "thread spawn",
                    source: e,
                    hint: None,
                })?;
            Ok(())
        }
        #[cfg(feature = "tokio")]
        CqMode::Tokio => tokio_driver::spawn(weak, fd),
    }
}

/// The portable driver: waits for the descriptor with `poll(2)`, wakes up
/// now and then to notice that its queue is gone.
fn notifier(cq: Weak<CqInner>, fd: OwnedFd) {
    let tick = NOTIFIER_TICK.as_millis() as i32;
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, tick) };
        let Some(cq) = cq.upgrade() else { return };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            tracing::error!(err = %std::io::Error::last_os_error(), "completion channel poll failed");
            return;
        }
        if let Err(e) = cq.drive_events() {
            tracing::error!(%e, "completion channel failed; the notifier stops");
            return;
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_driver {
    use super::*;
    use tokio::io::unix::AsyncFd;

    pub(super) fn spawn(cq: Weak<CqInner>, fd: OwnedFd) -> Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::BadSelection("CqMode::Tokio needs to be used inside a tokio runtime".into())
        })?;
        let _entered = handle.enter();
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd` and owned by it:
        // it stays open and refers to the same description until the
        // `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| Error::Verb {
            verb: "AsyncFd::register",
            source: e.into(),
            hint: None,
        })?;
        handle.spawn(async move {
            loop {
                // Wake up now and then to notice that the queue is gone.
                let ready = tokio::time::timeout(NOTIFIER_TICK, fd.readable()).await;
                let Some(cq) = cq.upgrade() else { return };
                if let Ok(Ok(mut guard)) = ready {
                    guard.clear_ready();
                }
                if let Err(e) = cq.drive_events() {
                    tracing::error!(%e, "completion channel failed; the driver stops");
                    return;
                }
            }
        });
        Ok(())
    }
}

//! Event mode: completion channels, so that waiting for a completion
//! sleeps instead of spinning.
//!
//! A completion queue in event mode is attached to an `ibv_comp_channel`
//! and armed with `ibv_req_notify_cq`. A driver waits for the channel's
//! file descriptor to become readable, then drains every event (each one
//! acknowledged as it is taken), re-arms the queue and polls it, which
//! wakes the futures whose work completed. Two drivers exist: a portable
//! notifier thread ([`CqMode::Notifier`]) and, with the `tokio` feature, a
//! task on the current tokio runtime waiting through `AsyncFd`
//! ([`CqMode::Tokio`]).
//!
//! Drivers hold only a `Weak` reference to the queue and a duplicate of the
//! channel's descriptor: they never keep the queue alive, and they touch the
//! channel only while an upgraded reference proves it still exists.
//!
//! A driver can stop while its queue lives: an error of the channel or the
//! queue, a waker that panicked, the tokio runtime shutting down. Whatever
//! stops it records why in the [`DriverState`] it shares with the queue,
//! then wakes every waiting future. From then on the queue's futures poll
//! it themselves, as in [`CqMode::BusyPoll`]: nothing waits for a wake-up
//! that will not come, and nothing is handed back before its completion.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::Waker;
use std::time::Duration;

use safeverbs_sys as sys;

use crate::completions::cq::{CompletionQueue, CqInner};
use crate::device::provider::Provider;
use crate::device::Device;
use crate::{Error, Result};

/// How a completion queue's futures wait for their completions.
///
/// Passed to [`Device::create_cq_with`](crate::Device::create_cq_with);
/// [`Device::create_cq`](crate::Device::create_cq) uses the default,
/// [`BusyPoll`](CqMode::BusyPoll).
///
/// In the event modes a driver (a thread, or a tokio task) wakes the
/// futures. If it ever stops while the queue lives, it wakes every waiting
/// future, the queue falls back to busy polling (its futures still
/// complete, but spin while they wait), and
/// [`CompletionQueue::driver_error`] says why; the error is also logged
/// once.
///
/// ```no_run
/// use safeverbs::{CqMode, Device};
///
/// # fn main() -> Result<(), safeverbs::Error> {
/// let dev = Device::open_default()?;
/// let cq = dev.create_cq_with(256, CqMode::Notifier)?;
/// // ... attach queue pairs, await their operations from any executor ...
/// if let Some(e) = cq.driver_error() {
///     eprintln!("{e}"); // the futures still complete, busy-polling
/// }
/// # Ok(())
/// # }
/// ```
///
/// `CqMode::Tokio` exists with the crate's `tokio` feature
/// (`safeverbs = { version = "…", features = ["tokio"] }`). Create the queue
/// inside a tokio runtime that has its IO driver (`enable_io()` or
/// `enable_all()`); it needs no timer. Outside a runtime the call fails
/// with [`Error::NoTokioRuntime`], on a runtime without IO with
/// [`Error::TokioIoDisabled`]. Keep the runtime alive as long as the
/// queue: when it shuts down, the driver stops (see above).
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use safeverbs::{CqMode, Device};
///
/// let rt = tokio::runtime::Builder::new_multi_thread().enable_io().build()?;
/// let dev = Device::open_default()?;
/// let cq = rt.block_on(async { dev.create_cq_with(256, CqMode::Tokio) })?;
/// // ... attach queue pairs, await their operations in tasks of `rt` ...
/// # drop(cq);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
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
    /// (through `AsyncFd`, no extra thread). Only with the `tokio` feature.
    /// Must be created inside a runtime with IO enabled; see the
    /// [type's documentation](CqMode).
    #[cfg(feature = "tokio")]
    Tokio,
}

/// How long the notifier thread sleeps between checks that its queue still
/// exists.
const NOTIFIER_TICK: Duration = Duration::from_millis(100);

/// What a queue in event mode and its driver share.
#[derive(Default)]
pub(crate) struct DriverState {
    /// Set once, when the driver stops while its queue may still be used.
    stopped: OnceLock<Stopped>,
    /// Set when the channel is destroyed, with the waker of a driver that
    /// waits for it (the tokio task; the thread looks now and then).
    closed: Mutex<Closed>,
}

/// Why a driver stopped.
struct Stopped {
    mode: CqMode,
    reason: String,
}

#[derive(Default)]
struct Closed {
    closed: bool,
    waker: Option<Waker>,
}

impl DriverState {
    /// True once the driver stopped: nothing will wake the queue's futures.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.get().is_some()
    }

    fn error(&self) -> Option<Error> {
        self.stopped.get().map(|s| Error::EventDriverStopped {
            mode: s.mode,
            reason: s.reason.clone(),
        })
    }

    fn closed(&self) -> std::sync::MutexGuard<'_, Closed> {
        // The guarded data is two plain fields, valid whatever panicked.
        crate::sync::lock(&self.closed)
    }

    /// True when the channel is gone; otherwise `waker` is woken when it
    /// goes.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn is_closed_or_wake(&self, waker: &Waker) -> bool {
        let mut closed = self.closed();
        if !closed.closed {
            match &closed.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => closed.waker = Some(waker.clone()),
            }
        }
        closed.closed
    }

    fn is_closed(&self) -> bool {
        self.closed().closed
    }

    fn close(&self) {
        let waker = {
            let mut closed = self.closed();
            closed.closed = true;
            closed.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// An `ibv_comp_channel`.
pub(crate) struct Channel {
    ptr: NonNull<sys::ibv_comp_channel>,
    provider: Provider,
    driver: Arc<DriverState>,
}

impl Channel {
    pub(crate) fn create(device: &Device) -> Result<Self> {
        let provider = device.inner.provider.clone();
        // SAFETY: the context is open while `device` lives.
        let ptr = unsafe { provider.create_comp_channel(device.inner.ctx) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::last_os("ibv_create_comp_channel"))?;
        let this = Self {
            ptr,
            provider,
            driver: Arc::default(),
        };
        // Events are drained until EAGAIN: the descriptor must not block.
        if this.provider.channels_block() {
            // SAFETY: the descriptor belongs to the live channel.
            let fd = unsafe { BorrowedFd::borrow_raw(this.fd()) };
            set_nonblocking(fd)?;
        }
        Ok(this)
    }

    pub(crate) fn raw(&self) -> *mut sys::ibv_comp_channel {
        self.ptr.as_ptr()
    }

    /// The state shared with the queue's driver.
    pub(crate) fn driver(&self) -> &DriverState {
        &self.driver
    }

    fn fd(&self) -> RawFd {
        // SAFETY: the channel is live while `self` is.
        unsafe { (*self.ptr.as_ptr()).fd }
    }

    /// A duplicate of the channel's descriptor, for a driver to wait on.
    fn dup_fd(&self) -> Result<OwnedFd> {
        // SAFETY: the descriptor belongs to the live channel.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd()) };
        fd.try_clone_to_owned().map_err(|source| Error::Os {
            call: "dup",
            source,
        })
    }

    /// Takes every pending event, each acknowledged as it is taken; returns
    /// how many.
    fn drain(&self) -> Result<u32> {
        drain(self).map_err(|source| Error::Verb {
            verb: "ibv_get_cq_event",
            source,
            hint: None,
        })
    }
}

/// Where completion events come from: a channel, or a fake in unit tests.
trait EventSource {
    /// The next event's queue, `None` when no event is pending.
    fn take(&mut self) -> io::Result<Option<NonNull<sys::ibv_cq>>>;
    /// Acknowledges one event of `cq` taken by [`take`](Self::take).
    fn ack(&mut self, cq: NonNull<sys::ibv_cq>);
}

/// Takes every pending event of `source`. Each event is acknowledged in the
/// step that took it, before anything else can fail: an event taken and
/// never acknowledged would make `ibv_destroy_cq` of its queue wait for
/// ever. Returns how many were taken, or the error that stopped it (the
/// events taken before it are acknowledged too).
fn drain(mut source: impl EventSource) -> io::Result<u32> {
    let mut n = 0;
    while let Some(cq) = source.take()? {
        source.ack(cq);
        n += 1;
    }
    Ok(n)
}

impl EventSource for &Channel {
    fn take(&mut self) -> io::Result<Option<NonNull<sys::ibv_cq>>> {
        let mut cq = std::ptr::null_mut();
        let mut ctx = std::ptr::null_mut();
        // SAFETY: the channel is live; the out-parameters are valid.
        let rc = unsafe { self.provider.get_cq_event(self.raw(), &mut cq, &mut ctx) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(err),
            };
        }
        // libibverbs returns 0 only with the event's queue filled in.
        NonNull::new(cq).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a completion event without its queue",
            )
        })
    }

    fn ack(&mut self, cq: NonNull<sys::ibv_cq>) {
        // SAFETY: `cq` is the queue of an event just taken from this
        // channel, and the only queue attached to it is the `CqInner` that
        // owns the channel, which the caller holds (`handle_events` runs on
        // it). Even for another queue it would be live: `ibv_destroy_cq`
        // waits until every event taken for its queue is acknowledged.
        unsafe { self.provider.ack_cq_events(cq.as_ptr(), 1) };
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
        // drop order) and every event taken was acked (`drain`).
        let rc = unsafe { self.provider.destroy_comp_channel(self.ptr.as_ptr()) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_destroy_comp_channel failed");
        }
        // The driver may be waiting: tell it that its queue is gone.
        self.driver.close();
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a valid descriptor with integer arguments.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(Error::Os {
            call: "fcntl(O_NONBLOCK)",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl CqInner {
    /// Drains the channel's events (acknowledging each), re-arms the queue,
    /// then reaps every completion (so none that arrived before re-arming
    /// is missed). Returns how many completions were reaped.
    pub(crate) fn handle_events(&self, channel: &Channel) -> Result<usize> {
        channel.drain()?;
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

impl CompletionQueue {
    /// Why this queue's event driver stopped, if it did:
    /// [`Error::EventDriverStopped`] with the driver's mode and the cause.
    ///
    /// `None` while the driver runs, and always for a queue in
    /// [`CqMode::BusyPoll`]. After the driver stopped, the queue's futures
    /// poll it themselves: they still complete, but spin while they wait.
    /// Create a new queue (for `CqMode::Tokio`, in a runtime that lives as
    /// long as the queue) to sleep again.
    ///
    /// ```no_run
    /// use safeverbs::{CqMode, Device, Error};
    ///
    /// # fn main() -> Result<(), Error> {
    /// let cq = Device::open_default()?.create_cq_with(64, CqMode::Notifier)?;
    /// match cq.driver_error() {
    ///     None => {} // the notifier thread runs
    ///     Some(Error::EventDriverStopped { mode, reason }) => {
    ///         eprintln!("the {mode:?} driver stopped ({reason}); busy-polling now");
    ///     }
    ///     Some(other) => eprintln!("{other}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn driver_error(&self) -> Option<Error> {
        self.inner.channel()?.driver().error()
    }
}

/// Why a tokio driver task was dropped without stopping itself.
#[cfg(feature = "tokio")]
const RUNTIME_GONE: &str =
    "the tokio runtime it ran on shut down (keep the runtime alive as long as the queue)";

/// The end of a driver, however it comes: it records why the driver
/// stopped (unless its queue is gone) and wakes every waiting future.
/// Dropped with the driver, so a driver task dropped by its runtime
/// records its end too.
struct Watch {
    cq: Weak<CqInner>,
    state: Arc<DriverState>,
    mode: CqMode,
    end: End,
}

enum End {
    /// Still running (when dropped so: its runtime dropped it).
    Running,
    /// The queue is gone: nobody to tell.
    QueueGone,
    /// Stopped for this reason.
    Failed(String),
}

impl Watch {
    fn new(cq: Weak<CqInner>, state: Arc<DriverState>, mode: CqMode) -> Self {
        Self {
            cq,
            state,
            mode,
            end: End::Running,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let reason = match std::mem::replace(&mut self.end, End::QueueGone) {
            End::QueueGone => return,
            End::Failed(reason) => reason,
            End::Running if std::thread::panicking() => "it panicked".to_owned(),
            End::Running => match self.mode {
                #[cfg(feature = "tokio")]
                CqMode::Tokio => RUNTIME_GONE.to_owned(),
                _ => "it ended".to_owned(),
            },
        };
        if self.state.is_closed() {
            return;
        }
        let Some(cq) = self.cq.upgrade() else { return };
        stopped(&cq, &self.state, self.mode, reason);
    }
}

/// Records that the driver of `cq` stopped (logged once), then wakes every
/// future waiting on `cq`: from now on they poll the queue themselves.
///
/// No wake-up is lost: a future stores its waker in its slot, under the
/// slot table's lock, before it looks at `state` (`CqInner::poll_request`,
/// then `busy_poll`); this marks `state` before it collects the wakers
/// under that lock. Either the waker is collected here, or the future's
/// later look sees the mark.
fn stopped(cq: &CqInner, state: &DriverState, mode: CqMode, reason: String) {
    if state.stopped.set(Stopped { mode, reason }).is_ok() {
        if let Some(e) = state.error() {
            tracing::error!(%e, "event driver stopped");
        }
    }
    let wakers = cq.slots().wakers();
    for w in wakers {
        // A waker is user code: one that panics must not keep the others
        // from being woken.
        if catch_unwind(AssertUnwindSafe(|| w.wake())).is_err() {
            tracing::error!("a waker panicked while the stopped driver woke it");
        }
    }
}

/// One step of a driver: drain, re-arm, reap and wake. A waker that panics
/// stops the driver (its other wake-ups of that step may be lost); the
/// panic does not leave the driver.
fn step(cq: &CqInner) -> std::result::Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| cq.drive_events())) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(format!("a waker it called panicked ({msg})"))
        }
    }
}

/// Starts the driver of `mode` for a freshly created event-mode queue.
pub(crate) fn start_driver(cq: &Arc<CqInner>, channel: &Channel, mode: CqMode) -> Result<()> {
    let fd = channel.dup_fd()?;
    let weak = Arc::downgrade(cq);
    let state = channel.driver.clone();
    cq.arm()?;
    match mode {
        CqMode::BusyPoll => Ok(()),
        CqMode::Notifier => {
            std::thread::Builder::new()
                .name("safeverbs-cq".into())
                .spawn(move || notifier(Watch::new(weak, state, mode), fd))
                .map_err(|source| Error::Os {
                    call: "thread spawn",
                    source,
                })?;
            Ok(())
        }
        #[cfg(feature = "tokio")]
        CqMode::Tokio => tokio_driver::spawn(Watch::new(weak, state, mode), fd),
    }
}

/// The portable driver: waits for the descriptor with `poll(2)`, wakes up
/// now and then to notice that its queue is gone.
fn notifier(mut watch: Watch, fd: OwnedFd) {
    let tick = NOTIFIER_TICK.as_millis() as i32;
    watch.end = loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, tick) };
        let err = io::Error::last_os_error();
        let Some(cq) = watch.cq.upgrade() else {
            break End::QueueGone;
        };
        if ready < 0 && err.kind() != io::ErrorKind::Interrupted {
            break End::Failed(format!("poll(2) on the completion channel failed: {err}"));
        }
        if let Err(reason) = step(&cq) {
            break End::Failed(reason);
        }
    };
}

#[cfg(feature = "tokio")]
mod tokio_driver {
    use super::*;
    use std::task::Poll;
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub(super) fn spawn(watch: Watch, fd: OwnedFd) -> Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoTokioRuntime)?;
        let fd = register(fd)?;
        handle.spawn(run(watch, fd));
        Ok(())
    }

    /// Registers `fd` with the current runtime's IO driver.
    ///
    /// Tokio (1.x) offers no way to ask a runtime whether its IO driver is
    /// enabled: registering with one that has none panics ("IO is
    /// disabled"). That panic is caught here, before any state depends on
    /// the registration, and becomes [`Error::TokioIoDisabled`]; the panic
    /// hook still prints tokio's message. Built with `panic = "abort"`, the
    /// process aborts there instead.
    fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>> {
        let registered = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the `OwnedFd` is moved into the `AsyncFd` and owned by
            // it: it stays open and refers to the same description until the
            // `AsyncFd` drops it, and `as_raw_fd` always returns it.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        }));
        match registered {
            Ok(Ok(fd)) => Ok(fd),
            Ok(Err(e)) => Err(Error::Os {
                call: "AsyncFd::register",
                source: e.into_parts().1,
            }),
            Err(_) => Err(Error::TokioIoDisabled),
        }
    }

    enum Wake {
        Readable,
        Closed,
        Failed(io::Error),
    }

    /// The driver task. Needs no timer: the channel's `Drop` wakes it when
    /// the queue is gone. Nothing in it panics (a panicking waker is caught
    /// in `step`).
    async fn run(mut watch: Watch, fd: AsyncFd<OwnedFd>) {
        watch.end = loop {
            let wake = std::future::poll_fn(|cx| {
                if watch.state.is_closed_or_wake(cx.waker()) {
                    return Poll::Ready(Wake::Closed);
                }
                match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        // Cleared before draining until EAGAIN: an event
                        // after the clear marks it ready again.
                        guard.clear_ready();
                        Poll::Ready(Wake::Readable)
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Wake::Failed(e)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let Some(cq) = watch.cq.upgrade() else {
                break End::QueueGone;
            };
            match wake {
                Wake::Closed => break End::QueueGone,
                Wake::Failed(e) => {
                    break End::Failed(format!("waiting for the completion channel failed: {e}"))
                }
                Wake::Readable => {}
            }
            if let Err(reason) = step(&cq) {
                break End::Failed(reason);
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::{AsFd, FromRawFd};

    /// A descriptor made non-blocking reads `EAGAIN` instead of waiting
    /// (libibverbs' channels block; the model's are created non-blocking,
    /// so only this test and the device runs reach `set_nonblocking`).
    #[test]
    fn set_nonblocking_makes_reads_return_at_once() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both were just opened and are owned here alone.
        let (read, _write) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor owned here, integer arguments.
        let flags = || unsafe { libc::fcntl(read.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags() & libc::O_NONBLOCK, 0, "a pipe starts blocking");
        set_nonblocking(read.as_fd()).unwrap();
        assert_ne!(flags() & libc::O_NONBLOCK, 0);
        let mut buf = [0u8; 1];
        // SAFETY: reads at most one byte into a live buffer.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), 1) };
        assert_eq!(n, -1);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN)
        );
    }

    /// Yields `events` events, then fails (or reports none left).
    struct Fake {
        events: u32,
        fail: bool,
        acked: u32,
    }

    impl EventSource for &mut Fake {
        fn take(&mut self) -> io::Result<Option<NonNull<sys::ibv_cq>>> {
            if self.events > 0 {
                self.events -= 1;
                return Ok(Some(NonNull::dangling()));
            }
            if self.fail {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Ok(None)
        }
        fn ack(&mut self, _: NonNull<sys::ibv_cq>) {
            self.acked += 1;
        }
    }

    #[test]
    fn events_taken_are_acknowledged_even_when_draining_fails() {
        let mut fake = Fake {
            events: 3,
            fail: true,
            acked: 0,
        };
        let err = drain(&mut fake).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert_eq!(fake.acked, 3, "every event taken before the error is acked");

        let mut fake = Fake {
            events: 5,
            fail: false,
            acked: 0,
        };
        assert_eq!(drain(&mut fake).unwrap(), 5);
        assert_eq!(fake.acked, 5);
    }

    #[test]
    fn a_closed_channel_wakes_its_waiting_driver() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let state = DriverState::default();
        assert!(!state.is_closed_or_wake(&waker));
        state.close();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(state.is_closed_or_wake(&waker));
        assert!(!state.stopped());
    }
}

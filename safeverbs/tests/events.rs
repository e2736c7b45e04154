//! Event-mode completion queues: futures sleep until a driver (notifier
//! thread, or a tokio task) wakes them, and a driver that stops hands its
//! waiters to busy polling instead of leaving them hanging. On a real
//! (soft) device.
//!
//! The receiving side of every test is on the queue under test, the sending
//! side on a busy-poll queue of its own, and each receive is polled once
//! (and found pending) before its message is sent. So only the driver of
//! the queue under test can wake a receive: a driver that never wakes makes
//! these tests fail, not pass through the futures' own polling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{block_on, pattern, trials, Test};
use safeverbs::{
    Access, Completion, CompletionQueue, CqMode, Device, Error, MemoryRegion, QueuePair, Rc,
    Result, Rts, Rw, Segment,
};

/// The bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(10);
/// Bytes per message.
const MSG: usize = 512;
/// Receives in flight at once.
const WIDTH: usize = 4;

type Seg = Segment<[u8], Rw>;
type Received = (Result<Completion>, Seg);

/// Two connected RC queue pairs: `a` sends, on a busy-poll queue of its
/// own; `b` receives, on `cq`, the queue under test.
struct Split {
    /// The model, when the device is one (for what only it can see).
    model: Option<safeverbs::model::Model>,
    cq: CompletionQueue,
    a: QueuePair<Rc, Rts>,
    b: Arc<QueuePair<Rc, Rts>>,
    src: MemoryRegion<[u8]>,
    dst: MemoryRegion<[u8]>,
}

/// Creating a `CqMode::Tokio` queue needs to be inside a runtime (e.g.
/// under `Runtime::enter`).
fn split(dev: &Device, mode: CqMode) -> Split {
    let pd = dev.alloc_pd().unwrap();
    let send_cq = dev.create_cq(64).unwrap();
    let cq = dev.create_cq_with(64, mode).unwrap();
    let build = |cq: &CompletionQueue| {
        pd.queue_pair::<Rc>()
            .send_cq(cq)
            .recv_cq(cq)
            .max_send_wr(8)
            .max_recv_wr(8)
            .build()
            .unwrap()
    };
    let (a, b) = (build(&send_cq), build(&cq));
    let (ea, eb) = (a.endpoint(), b.endpoint());
    let (a, b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
    Split {
        model: dev.model().cloned(),
        cq,
        a,
        b: Arc::new(b),
        src: pd.register_zeroed::<u8>(MSG, Access::local()).unwrap(),
        dst: pd
            .register_zeroed::<u8>(WIDTH * MSG, Access::local())
            .unwrap(),
    }
}

impl Split {
    /// Sends `data` from `a` (busy-polling `a`'s own queue).
    fn send(&self, data: &[u8]) {
        let mut s = self.src.slice_rw(0..MSG).unwrap();
        s.copy_from(data).unwrap();
        let (res, _) = block_on(self.a.send(s));
        res.unwrap();
    }

    fn slot(&self, i: usize) -> Seg {
        self.dst.slice_rw(i * MSG..(i + 1) * MSG).unwrap()
    }
}

/// A future that counts its polls and reports each `Pending` on a channel.
struct Watched<F> {
    inner: Pin<Box<F>>,
    pending: mpsc::Sender<()>,
    polls: usize,
}

impl<F: Future> Future for Watched<F> {
    type Output = (F::Output, usize);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready((out, self.polls)),
            Poll::Pending => {
                let _ = self.pending.send(());
                Poll::Pending
            }
        }
    }
}

/// A waiter somewhere else: the receive `recv`, awaited by `spawn` (a
/// thread, a task). Returns once it has been polled and found pending, with
/// the channel its result arrives on.
fn wait_elsewhere(
    recv: impl Future<Output = Received> + Send + 'static,
    spawn: &dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>),
) -> mpsc::Receiver<(Received, usize)> {
    let (pending_tx, pending_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let watched = Watched {
        inner: Box::pin(recv),
        pending: pending_tx,
        polls: 0,
    };
    spawn(Box::pin(async move {
        let _ = done_tx.send(watched.await);
    }));
    pending_rx
        .recv_timeout(WAIT)
        .expect("the receive was never polled");
    done_rx
}

fn on_a_thread(f: Pin<Box<dyn Future<Output = ()> + Send>>) {
    std::thread::spawn(move || block_on(f));
}

/// `rounds` times: `WIDTH` receives on `s.b`, each awaited by `spawn` and
/// found pending, then their messages. Each must be woken once, by the
/// driver (two polls: no spinning), with the bytes sent, and the driver
/// must still run at the end.
fn the_driver_wakes_every_receiver(
    s: &Split,
    rounds: u64,
    spawn: &dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>),
) {
    for round in 0..rounds {
        let waiters: Vec<_> = (0..WIDTH)
            .map(|i| wait_elsewhere(s.b.recv(s.slot(i)), spawn))
            .collect();
        let data: Vec<_> = (0..WIDTH)
            .map(|i| pattern(MSG, round * 100 + i as u64))
            .collect();
        for d in &data {
            s.send(d);
        }
        for (i, done) in waiters.into_iter().enumerate() {
            let ((res, seg), polls) = done.recv_timeout(WAIT).unwrap_or_else(|_| {
                panic!(
                    "round {round}, receive {i}: not woken within {WAIT:?} although its message \
                     arrived: the driver did not wake it (driver_error: {:?})",
                    s.cq.driver_error()
                )
            });
            res.unwrap();
            assert_eq!(seg.to_vec(), data[i], "round {round}, receive {i}");
            assert_eq!(
                polls, 2,
                "round {round}, receive {i}: woken once, by the driver, not spinning"
            );
        }
        assert!(
            s.cq.driver_error().is_none(),
            "round {round}: {:?}",
            s.cq.driver_error()
        );
    }
    assert_eq!(s.cq.in_flight(), 0);
    // The driver takes and acknowledges every event: one left unread keeps
    // the channel readable (the driver would wake for ever), one not
    // acknowledged makes `ibv_destroy_cq` wait for ever.
    if let Some(m) = &s.model {
        let start = Instant::now();
        while m.unread_events() > 0 || m.unacked_events() > 0 {
            assert!(
                start.elapsed() < WAIT,
                "completion events the driver never took ({}) or never acknowledged ({}) \
                 within {WAIT:?}",
                m.unread_events(),
                m.unacked_events()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits (bounded) until `cq`'s driver reports that it stopped.
fn driver_stopped(cq: &CompletionQueue) -> (CqMode, String) {
    let start = Instant::now();
    loop {
        match cq.driver_error() {
            Some(Error::EventDriverStopped { mode, reason }) => return (mode, reason),
            Some(other) => panic!("unexpected driver error: {other}"),
            None if start.elapsed() > WAIT => panic!("the driver did not stop within {WAIT:?}"),
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn notifier_thread_wakes_sleeping_futures(dev: &Device) {
    let s = split(dev, CqMode::Notifier);
    the_driver_wakes_every_receiver(&s, 25, &on_a_thread);
    // Idle for several of the notifier's 100 ms ticks (its poll(2) times
    // out): it must keep waiting, not stop, and still wake the next ones.
    std::thread::sleep(Duration::from_millis(350));
    assert!(
        s.cq.driver_error().is_none(),
        "the notifier stopped while idle: {:?}",
        s.cq.driver_error()
    );
    the_driver_wakes_every_receiver(&s, 1, &on_a_thread);
    println!(
        "25 x {WIDTH} receives, each woken once by the notifier thread, then idle, then again"
    );
}

/// Wakes by panicking: a user's waker that misbehaves.
struct PanicOnWake;
impl Wake for PanicOnWake {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics when woken");
    }
}

fn a_stopped_notifier_hands_its_waiters_to_busy_polling(dev: &Device) {
    let s = split(dev, CqMode::Notifier);
    // The first receive's waker panics when the notifier wakes it, which
    // stops the notifier thread.
    let mut first = s.b.recv(s.slot(0));
    let bomb = Waker::from(Arc::new(PanicOnWake));
    assert!(Pin::new(&mut first)
        .poll(&mut Context::from_waker(&bomb))
        .is_pending());
    // The second waits on another thread, asleep.
    let second = wait_elsewhere(s.b.recv(s.slot(1)), &on_a_thread);
    let first_data = pattern(MSG, 1);
    s.send(&first_data);
    let (mode, reason) = driver_stopped(&s.cq);
    assert_eq!(mode, CqMode::Notifier);
    assert!(reason.contains("panicked"), "{reason}");
    // The stop woke the second receive, which now polls the queue itself:
    // its message arrives after the driver is gone.
    let second_data = pattern(MSG, 2);
    s.send(&second_data);
    let ((res, seg), polls) = second
        .recv_timeout(WAIT)
        .expect("a receive waiting on a stopped notifier never completed");
    res.unwrap();
    assert_eq!(seg.to_vec(), second_data);
    assert!(polls >= 2, "woken by the stop ({polls} polls)");
    // The first one's completion was reaped before its waker panicked.
    let noop = futures::task::noop_waker_ref();
    let Poll::Ready((res, seg)) = Pin::new(&mut first).poll(&mut Context::from_waker(noop)) else {
        panic!("the first receive's completion was lost");
    };
    res.unwrap();
    assert_eq!(seg.to_vec(), first_data);
    assert_eq!(s.cq.in_flight(), 0);
    println!("notifier stopped ({reason}); the waiting receive completed by busy polling");
}

#[cfg(feature = "tokio")]
mod tokio_mode {
    use super::*;
    use tokio::runtime::{Builder, Runtime};

    fn on(rt: &Runtime) -> impl Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + '_ {
        move |f| {
            rt.spawn(f);
        }
    }

    pub(super) fn tokio_driver_wakes_tasks(dev: &Device) {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let s = {
            let _in = rt.enter();
            split(dev, CqMode::Tokio)
        };
        the_driver_wakes_every_receiver(&s, 25, &on(&rt));
        println!("25 x {WIDTH} receives in tokio tasks, each woken once through AsyncFd");
    }

    pub(super) fn the_tokio_driver_needs_no_timer(dev: &Device) {
        let rt = Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build()
            .unwrap();
        let s = {
            let _in = rt.enter();
            split(dev, CqMode::Tokio)
        };
        the_driver_wakes_every_receiver(&s, 5, &on(&rt));
        // Without a timer to look now and then, the driver task still ends
        // when its queue goes.
        drop(s);
        let start = Instant::now();
        while rt.metrics().num_alive_tasks() > 0 {
            assert!(start.elapsed() < WAIT, "the driver task outlived its queue");
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("CqMode::Tokio on a runtime without timers: 5 x {WIDTH} receives woken");
    }

    /// More completions than one poll of the queue takes (32) arrive
    /// before the driver runs. No event comes for those a poll leaves, so
    /// the driver must reap them all when it handles the one event. On a
    /// current-thread runtime the driver task cannot run until the test's
    /// task yields, so all of them are there first.
    pub(super) fn one_event_reaps_a_burst_larger_than_one_poll(dev: &Device) {
        const N: usize = 100;
        let rt = Builder::new_current_thread().enable_all().build().unwrap();
        let _in = rt.enter();
        let pd = dev.alloc_pd().unwrap();
        let send_cq = dev.create_cq(2 * N + 2).unwrap();
        let cq = dev.create_cq_with(N, CqMode::Tokio).unwrap();
        let qp = |send: u32, recv: u32, recv_cq: &CompletionQueue| {
            let qp = pd.queue_pair::<Rc>().send_cq(&send_cq).recv_cq(recv_cq);
            qp.max_send_wr(send).max_recv_wr(recv).build().unwrap()
        };
        let (a, b) = (qp(N as u32, 1, &send_cq), qp(1, N as u32, &cq));
        let (ea, eb) = (a.endpoint(), b.endpoint());
        let (a, b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
        let src = pd
            .register_slice(&pattern(N * 8, 7), Access::local())
            .unwrap();
        let dst = pd.register_zeroed::<u8>(N * 8, Access::local()).unwrap();
        let got = rt.block_on(async {
            let recvs: Vec<_> = (0..N)
                .map(|k| b.recv(dst.slice_rw(k * 8..(k + 1) * 8).unwrap()))
                .collect();
            // Each receive stores its waker (and reaps nothing: nothing is
            // sent yet). From then on only a wake polls it again: `join_all`
            // of this many polls only the futures woken.
            let mut recvs = std::pin::pin!(futures::future::join_all(recvs));
            assert!(futures::poll!(&mut recvs).is_pending());
            let sends: Vec<_> = (0..N)
                .map(|k| a.send(src.slice_ro(k * 8..(k + 1) * 8).unwrap()))
                .collect();
            // Awaited without yielding to the runtime: its driver task
            // waits meanwhile.
            for (res, _) in block_on(futures::future::join_all(sends)) {
                res.unwrap();
            }
            // A real device may complete a receive a moment after the
            // sender's acknowledgement.
            std::thread::sleep(Duration::from_millis(50));
            tokio::time::timeout(WAIT, recvs).await
        });
        let got = got.unwrap_or_else(|_| panic!("not every receive of the burst of {N} was woken"));
        let want = pattern(N * 8, 7);
        for (k, (res, seg)) in got.into_iter().enumerate() {
            res.unwrap();
            assert_eq!(seg.to_vec(), want[k * 8..(k + 1) * 8], "message {k}");
        }
        println!("a burst of {N} completions, reaped on one event");
    }

    pub(super) fn tokio_mode_outside_a_runtime_is_a_named_error(dev: &Device) {
        let err = dev.create_cq_with(16, CqMode::Tokio).unwrap_err();
        assert!(matches!(err, Error::NoTokioRuntime), "{err}");
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }

    pub(super) fn tokio_mode_on_a_runtime_without_io_is_a_named_error(dev: &Device) {
        for rt in [
            Builder::new_current_thread().enable_time().build().unwrap(),
            Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap(),
        ] {
            let err = rt
                .block_on(async { dev.create_cq_with(16, CqMode::Tokio) })
                .unwrap_err();
            assert!(matches!(err, Error::TokioIoDisabled), "{err}");
            assert!(err.to_string().contains("enable_io"), "{err}");
        }
    }

    pub(super) fn a_stopped_tokio_driver_hands_its_waiters_to_busy_polling(dev: &Device) {
        let rt = Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let s = {
            let _in = rt.enter();
            split(dev, CqMode::Tokio)
        };
        // A receive waits, asleep, on a thread outside the runtime; then the
        // runtime, and with it the driver task, goes away.
        let waiting = wait_elsewhere(s.b.recv(s.slot(0)), &on_a_thread);
        drop(rt);
        let (mode, reason) = driver_stopped(&s.cq);
        assert_eq!(mode, CqMode::Tokio);
        assert!(reason.contains("shut"), "{reason}");
        let data = pattern(MSG, 7);
        s.send(&data);
        let ((res, seg), polls) = waiting
            .recv_timeout(WAIT)
            .expect("a receive waiting on a stopped tokio driver never completed");
        res.unwrap();
        assert_eq!(seg.to_vec(), data);
        assert!(polls >= 2, "woken by the stop ({polls} polls)");
        // New receives on the queue complete too.
        let recv = s.b.recv(s.slot(1));
        let data = pattern(MSG, 8);
        s.send(&data);
        let (res, seg) = block_on(recv);
        res.unwrap();
        assert_eq!(seg.to_vec(), data);
        assert_eq!(s.cq.in_flight(), 0);
        println!("tokio driver stopped ({reason}); the waiting receive completed by busy polling");
    }
}

fn main() -> std::process::ExitCode {
    #[allow(unused_mut)]
    let mut tests = trials![
        device notifier_thread_wakes_sleeping_futures,
        device a_stopped_notifier_hands_its_waiters_to_busy_polling,
    ];
    #[cfg(feature = "tokio")]
    tests.extend(trials![
        device tokio_mode::tokio_driver_wakes_tasks,
        device tokio_mode::the_tokio_driver_needs_no_timer,
        device tokio_mode::one_event_reaps_a_burst_larger_than_one_poll,
        device tokio_mode::tokio_mode_outside_a_runtime_is_a_named_error,
        device tokio_mode::tokio_mode_on_a_runtime_without_io_is_a_named_error,
        device tokio_mode::a_stopped_tokio_driver_hands_its_waiters_to_busy_polling,
    ]);
    common::run(tests)
}

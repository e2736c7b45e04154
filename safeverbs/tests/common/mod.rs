//! Shared set-up of the device tests: the harness (see `runner`), and two
//! queue pairs of one process connected to each other.
#![allow(
    dead_code,
    unreachable_pub,
    unused_imports,
    clippy::expect_used,
    clippy::panic
)]

pub mod runner;

pub(crate) use runner::{run, soft_roce, trials, Skip, Test, TestDevice};

use safeverbs::{CompletionQueue, Device, ProtectionDomain, QpBuilder, QueuePair, Rts, Transport};

/// The tests of this crate run on a real device (the Soft-RoCE machine's
/// rxe, or a NIC) where there is one, else on the model device
/// (`safeverbs::model`); `SAFEVERBS_MODEL=1` asks for the model anyway.
/// Inside the Soft-RoCE machine (`SAFEVERBS_SOFTROCE=1`) only the real
/// device will do.
impl TestDevice for Device {
    fn open() -> Result<Self, String> {
        // Miri cannot call libibverbs: under it only the model will do.
        let want_model =
            cfg!(miri) || std::env::var_os("SAFEVERBS_MODEL").is_some_and(|v| v == "1");
        let in_vm = std::env::var_os("SAFEVERBS_SOFTROCE").is_some();
        if !want_model || in_vm {
            match Device::open_default() {
                Ok(dev) => return Ok(dev),
                Err(e) if in_vm => return Err(e.to_string()),
                Err(_) => {}
            }
        }
        model()?.device().map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        match self.model() {
            Some(m) => format!(
                "{} (model, seed {:#x}: replay with SAFEVERBS_MODEL_SEED={:#x})",
                self.name(),
                m.seed(),
                m.seed()
            ),
            None => soft_roce(self.name()),
        }
    }

    fn is_real(&self) -> bool {
        self.model().is_none()
    }
}

/// A fresh model of this process's seed (`SAFEVERBS_MODEL_SEED`, or one
/// drawn once per process): every test of a run uses the same seed.
fn model() -> Result<safeverbs::model::Model, String> {
    static SEED: std::sync::OnceLock<Result<u64, String>> = std::sync::OnceLock::new();
    let seed = SEED.get_or_init(|| {
        safeverbs::model::Model::from_env()
            .map(|m| m.seed())
            .map_err(|e| e.to_string())
    });
    Ok(safeverbs::model::Model::new(seed.clone()?))
}

/// Another device context than `dev`'s: the same NIC opened again, or on
/// the model another device of its fabric.
pub fn another_context(dev: &Device) -> Device {
    match dev.model() {
        Some(m) => m.device().expect("another model device"),
        None => Device::open_default().expect("the device opened again"),
    }
}

/// For a test that needs a real device (another process as the peer, the
/// kernel's limits): skipped on the model, saying why.
pub fn real_device(dev: &Device, why: &str) -> Result<(), Skip> {
    match dev.model() {
        Some(_) => Err(Skip(format!("needs a real device: {why}"))),
        None => Ok(()),
    }
}

/// Everything a loopback test needs.
pub struct Pair<T: Transport> {
    pub dev: Device,
    pub pd: ProtectionDomain,
    pub cq: CompletionQueue,
    pub a: QueuePair<T, Rts>,
    pub b: QueuePair<T, Rts>,
}

/// Two queue pairs on one CQ, connected to each other, `depth` deep.
pub fn pair<T: Transport>(dev: &Device, depth: u32) -> Pair<T> {
    pair_with(dev, depth, |b| b)
}

/// [`pair`], each queue pair's builder given to `configure` first.
pub fn pair_with<T: Transport>(
    dev: &Device,
    depth: u32,
    configure: impl Fn(QpBuilder<T>) -> QpBuilder<T>,
) -> Pair<T> {
    let pd = dev.alloc_pd().expect("alloc_pd");
    let cq = dev.create_cq(4 * depth as usize).expect("create_cq");
    let build = || {
        configure(
            pd.queue_pair::<T>()
                .send_cq(&cq)
                .recv_cq(&cq)
                .max_send_wr(depth)
                .max_recv_wr(depth),
        )
        .build()
        .expect("build qp")
    };
    let (a, b) = (build(), build());
    let (ea, eb) = (a.endpoint(), b.endpoint());
    let a = a.connect(&eb).expect("connect a");
    let b = b.connect(&ea).expect("connect b");
    Pair {
        dev: dev.clone(),
        pd,
        cq,
        a,
        b,
    }
}

/// `n` repetitions, or a tenth of them (at least one) under Miri, which
/// runs the same code some thousand times slower.
pub fn scale(n: usize) -> usize {
    if cfg!(miri) {
        (n / 10).max(1)
    } else {
        n
    }
}

/// A deterministic byte pattern for message `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A number from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `cq` until at most `left` requests are in flight (abandoned ones
/// are released as their completions are reaped); fails after 10 s.
pub fn reap_until(cq: &CompletionQueue, left: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cq.in_flight() > left {
        assert!(
            std::time::Instant::now() < deadline,
            "{} requests in flight never completed (expected {left} left)",
            cq.in_flight()
        );
        cq.poll().expect("poll the completion queue");
    }
}

/// How long [`block_on`] waits for one future.
pub const WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `f` to completion on this thread, as `futures::executor::block_on`
/// does, but for at most [`WAIT_BOUND`]: a request that never completes
/// fails its test, saying so, instead of hanging the suite.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    block_on_within(WAIT_BOUND, f)
}

/// [`block_on`] with a bound of the caller's choosing. Allocates nothing
/// after a thread's first call (the `no_alloc` tests count on that).
pub fn block_on_within<F: std::future::Future>(bound: std::time::Duration, f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Instant;
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    }
    let deadline = Instant::now() + bound;
    let mut f = std::pin::pin!(f);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
            let now = Instant::now();
            assert!(now < deadline, "a wait exceeded its bound of {bound:?}");
            std::thread::park_timeout(deadline - now);
        }
    })
}

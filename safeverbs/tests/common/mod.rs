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

use safeverbs::{CompletionQueue, Device, ProtectionDomain, QueuePair, Rts, Transport};

/// The tests of this crate run on a real device (the Soft-RoCE machine's
/// rxe, or a NIC).
impl TestDevice for Device {
    fn open() -> Result<Self, String> {
        Device::open_default().map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        soft_roce(self.name())
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
    let pd = dev.alloc_pd().expect("alloc_pd");
    let cq = dev.create_cq(4 * depth as usize).expect("create_cq");
    let build = || {
        pd.queue_pair::<T>()
            .send_cq(&cq)
            .recv_cq(&cq)
            .max_send_wr(depth)
            .max_recv_wr(depth)
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

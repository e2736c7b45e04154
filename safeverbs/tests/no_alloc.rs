//! Steady state allocates nothing: 100 000 operations under a counting
//! global allocator, after warm-up, must make zero allocations: writes that
//! reuse one read-write segment, and sends each from a fresh read-only
//! carve (`qp.send(buf.read_only()?)`, the everyday way to send).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use common::{pair, trials, Skip, Test};
use futures::executor::block_on;
use safeverbs::{Access, Device, Rc};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The count is process-wide: the tests that read it run one at a time.
static COUNTING: Mutex<()> = Mutex::new(());

fn counting_alone() -> MutexGuard<'static, ()> {
    COUNTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const N: u64 = 100_000;

fn hundred_thousand_operations_allocate_nothing_after_warm_up(dev: &Device) -> Result<(), Skip> {
    common::real_device(
        dev,
        "the model device itself allocates as it runs, on the polling thread",
    )?;
    let _alone = counting_alone();
    let p = pair::<Rc>(dev, 16);
    let src = p.pd.register([0u8; 64], Access::local()).unwrap();
    let dst = p.pd.register([0u8; 64], Access::remote_write()).unwrap();
    let remote = dst.remote().whole();
    let mut seg = Some(src.read_write().unwrap());
    let mut op = |i: u64| {
        let mut s = seg.take().unwrap();
        s.write([i as u8; 64]);
        let (res, back) = block_on(p.a.write(s, remote));
        res.unwrap();
        seg = Some(back);
    };
    for i in 0..1_000 {
        op(i);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..N {
        op(i);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!("{N} RC writes after warm-up: {allocs} allocations");
    assert_eq!(allocs, 0);
    assert_eq!(p.cq.in_flight(), 0);
    assert_eq!(dst.read_only().unwrap().read(), [((N - 1) as u8); 64]);
    Ok(())
}

/// Sends, each from a read-only carve made for it and dropped after it:
/// the carve and its release must not allocate either.
///
/// Known bug (issue 12): every read-only carve allocates twice in
/// `interval.rs`, so this fails (2 allocations per send); the harness does
/// not run it unless asked (`--include-ignored`). Make it a plain device
/// test again when issue 12 is fixed.
fn hundred_thousand_sends_from_fresh_read_only_carves_allocate_nothing(dev: &Device) {
    let _alone = counting_alone();
    let p = pair::<Rc>(dev, 16);
    let src = p.pd.register([0x5au8; 64], Access::local()).unwrap();
    let dst = p.pd.register([0u8; 64], Access::local()).unwrap();
    let mut into = Some(dst.read_write().unwrap());
    let mut op = || {
        let recv = p.b.recv(into.take().unwrap());
        let (res, carve) = block_on(p.a.send(src.read_only().unwrap()));
        res.unwrap();
        drop(carve);
        let (res, back) = block_on(recv);
        assert_eq!(res.unwrap().byte_len, 64);
        into = Some(back);
    };
    for _ in 0..1_000 {
        op();
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..N {
        op();
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!("{N} RC sends from fresh read-only carves after warm-up: {allocs} allocations");
    assert_eq!(
        allocs,
        0,
        "{} allocations per send",
        allocs as f64 / N as f64
    );
    assert_eq!(p.cq.in_flight(), 0);
    assert_eq!(into.unwrap().read(), [0x5au8; 64]);
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device hundred_thousand_operations_allocate_nothing_after_warm_up,
        // Fails today: 200 000 allocations in 100 000 sends on rxe0.
        known_bug("issue 12: every read-only carve allocates twice (interval.rs)")
            hundred_thousand_sends_from_fresh_read_only_carves_allocate_nothing,
    ])
}

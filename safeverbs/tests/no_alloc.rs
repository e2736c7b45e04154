//! Steady state allocates nothing: 100 000 operations under a counting
//! global allocator, after warm-up, must make zero allocations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{device, pair};
use futures::executor::block_on;
use safeverbs::{Access, Rc};

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

#[test]
fn hundred_thousand_operations_allocate_nothing_after_warm_up() {
    let Some(dev) = device() else { return };
    let p = pair::<Rc>(&dev, 16);
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
    const N: u64 = 100_000;
    for i in 0..N {
        op(i);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!("{N} RC writes after warm-up: {allocs} allocations");
    assert_eq!(allocs, 0);
    assert_eq!(p.cq.in_flight(), 0);
    assert_eq!(dst.read_only().unwrap().read(), [((N - 1) as u8); 64]);
}

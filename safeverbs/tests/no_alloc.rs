//! Steady state allocates nothing: 100 000 operations under a counting
//! global allocator, after warm-up, must make zero allocations: writes that
//! reuse one read-write segment, and sends each from a fresh read-only
//! carve (`qp.send(buf.read_only()?)`, the everyday way to send), and
//! inline sends of a value on the stack. On the
//! host, without a device: the region's overlap map itself, carved and
//! released 100 000 times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use common::{block_on, pair, trials, Skip, Test};
use safeverbs::__bench::{IntervalMap, Sharing};
use safeverbs::{Access, Device, Rc, MAX_BATCH};

struct Counting;
/// Every allocation of the process (the device tests: the library's
/// threads count too).
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The allocations of this thread alone (the host test: the harness's
    /// other threads allocate while it runs). Const-initialised with no
    /// destructor, so reaching it never allocates.
    static MINE: Cell<u64> = const { Cell::new(0) };
}

/// Allocations made on the calling thread so far.
fn mine() -> u64 {
    MINE.with(Cell::get)
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // Fails only while the thread is being torn down: not counted then.
        let _ = MINE.try_with(|n| n.set(n.get() + 1));
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

/// A carve of the host test: which bytes, and how.
type Carve = (std::ops::Range<usize>, Sharing);

fn hundred_thousand_operations_allocate_nothing_after_warm_up(dev: &Device) -> Result<(), Skip> {
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

/// Batched writes of [`MAX_BATCH`] fresh read-only carves each, the
/// vector handed back reused for the next batch: neither the carves, nor
/// the chain, nor its completion allocate.
fn hundred_thousand_batched_writes_from_fresh_read_only_carves_allocate_nothing(
    dev: &Device,
) -> Result<(), Skip> {
    let _alone = counting_alone();
    let p = pair::<Rc>(dev, MAX_BATCH as u32);
    let src =
        p.pd.register_slice(&[[0x3cu8; 16]; MAX_BATCH], Access::local())
            .unwrap();
    let dst =
        p.pd.register_slice(&[[0u8; 16]; MAX_BATCH], Access::remote_write())
            .unwrap();
    let remote = dst.remote();
    let targets: Vec<_> = (0..MAX_BATCH as u64)
        .map(|k| remote.elem(k).unwrap())
        .collect();
    let mut segs = Vec::with_capacity(MAX_BATCH);
    let mut batch = || {
        segs.clear(); // the last batch's carves, released
        segs.extend((0..MAX_BATCH).map(|k| src.elem_ro(k).unwrap()));
        let (res, back) = block_on(p.a.write_batch(std::mem::take(&mut segs), &targets));
        res.unwrap();
        assert_eq!(back.len(), MAX_BATCH);
        segs = back;
    };
    for _ in 0..100 {
        batch();
    }
    let batches = N / MAX_BATCH as u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..batches {
        batch();
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "{} RC writes in {batches} batches of {MAX_BATCH} fresh read-only carves after warm-up: \
         {allocs} allocations",
        batches * MAX_BATCH as u64
    );
    assert_eq!(
        allocs,
        0,
        "{} allocations per batch",
        allocs as f64 / batches as f64
    );
    assert_eq!(p.cq.in_flight(), 0);
    assert_eq!(
        dst.slice_ro(0..MAX_BATCH).unwrap().to_vec(),
        [[0x3cu8; 16]; MAX_BATCH]
    );
    Ok(())
}

/// Sends, each from a read-only carve made for it and dropped after it:
/// the carve and its release must not allocate either.
fn hundred_thousand_sends_from_fresh_read_only_carves_allocate_nothing(
    dev: &Device,
) -> Result<(), Skip> {
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
    Ok(())
}

/// Inline sends from a stack array: no segment, no carve, and the future
/// holds its own copy only while it waits for room.
fn hundred_thousand_inline_sends_allocate_nothing(dev: &Device) -> Result<(), Skip> {
    let _alone = counting_alone();
    let p = common::pair_with::<Rc>(dev, 16, |b| b.max_inline_data(64));
    let dst = p.pd.register([0u8; 64], Access::local()).unwrap();
    let mut into = Some(dst.read_write().unwrap());
    let mut op = |i: u64| {
        let recv = p.b.recv(into.take().unwrap());
        block_on(p.a.send_inline(&[i as u8; 64])).unwrap();
        let (res, back) = block_on(recv);
        assert_eq!(res.unwrap().byte_len, 64);
        into = Some(back);
    };
    for i in 0..1_000 {
        op(i);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..N {
        op(i);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!("{N} RC inline sends after warm-up: {allocs} allocations");
    assert_eq!(allocs, 0);
    assert_eq!(p.cq.in_flight(), 0);
    assert_eq!(into.unwrap().read(), [((N - 1) as u8); 64]);
    Ok(())
}

/// The overlap map a region's carves go through (`RawSegment::acquire`
/// and its drop): after one warm-up round, 100 000 rounds of carving and
/// releasing (read-only alone, read-only over other read-only segments,
/// read-write, a batch of overlapping read-only carves) allocate nothing.
/// Counted on this thread only, so it may run beside other tests.
fn hundred_thousand_carves_and_releases_of_a_region_map_allocate_nothing() {
    // Its warm-up allocates: not while a device test counts the process.
    let _alone = counting_alone();
    let mut busy = IntervalMap::new();
    for k in 0..64usize {
        busy.acquire(k * 2048..k * 2048 + 4096, Sharing::Shared)
            .unwrap();
        busy.acquire(
            (1 << 20) + k * 8192..(1 << 20) + k * 8192 + 4096,
            Sharing::Exclusive,
        )
        .unwrap();
    }
    let rounds: [(&str, IntervalMap, &[Carve]); 4] = [
        (
            "one read-only carve",
            IntervalMap::new(),
            &[(0..64, Sharing::Shared)],
        ),
        (
            "one read-write carve",
            IntervalMap::new(),
            &[(0..64, Sharing::Exclusive)],
        ),
        (
            "read-only carves among 128 live segments",
            busy,
            &[
                (60 * 1024..68 * 1024, Sharing::Shared),
                ((1 << 20) + 4096..(1 << 20) + 8192, Sharing::Shared),
                (200 * 1024..300 * 1024, Sharing::Exclusive),
            ],
        ),
        (
            "a batch of 8 overlapping read-only carves",
            IntervalMap::new(),
            &[
                (0..64, Sharing::Shared),
                (32..96, Sharing::Shared),
                (16..48, Sharing::Shared),
                (0..200, Sharing::Shared),
                (150..151, Sharing::Shared),
                (0..64, Sharing::Shared),
                (300..400, Sharing::Shared),
                (250..350, Sharing::Shared),
            ],
        ),
    ];
    for (what, mut map, carves) in rounds {
        let live = map.live();
        let round = |map: &mut IntervalMap| {
            for (range, sharing) in carves {
                map.acquire(range.clone(), *sharing).unwrap();
            }
            for (range, sharing) in carves {
                map.release(range.clone(), *sharing);
            }
        };
        round(&mut map);
        let before = mine();
        for _ in 0..N {
            round(&mut map);
        }
        let allocs = mine() - before;
        println!("{N} rounds of {what} after warm-up: {allocs} allocations");
        assert_eq!(
            allocs,
            0,
            "{what}: {} allocations per round",
            allocs as f64 / N as f64
        );
        assert_eq!(map.live(), live, "{what}: every carve was released");
    }
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        host hundred_thousand_carves_and_releases_of_a_region_map_allocate_nothing,
        device hundred_thousand_operations_allocate_nothing_after_warm_up,
        device hundred_thousand_sends_from_fresh_read_only_carves_allocate_nothing,
        device hundred_thousand_batched_writes_from_fresh_read_only_carves_allocate_nothing,
        device hundred_thousand_inline_sends_allocate_nothing,
    ])
}

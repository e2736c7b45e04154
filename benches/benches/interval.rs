//! What a carve and its release cost in the segment overlap map, and what
//! they allocate: `cargo bench -p safeverbs-benches --bench interval`.
//!
//! Each case prints criterion's time per carve + release and the number of
//! heap allocations per carve + release (counted by this binary's global
//! allocator). For deterministic instruction counts, run one case in a
//! plain loop under callgrind:
//!
//! ```text
//! INTERVAL_LOOP=<case>:<iterations> valgrind --tool=callgrind <bench binary>
//! ```
//!
//! and take the difference of two iteration counts (the fixed set-up cancels).
//! `<case>` is the number printed before each case's name.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::Criterion;
use safeverbs::__bench::{IntervalMap, Sharing};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged, only
// counting allocations; `System` upholds `GlobalAlloc`'s contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: our caller gives `alloc`'s preconditions (non-zero size).
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller gives `ptr` from our `alloc`, i.e. `System`'s,
        // with the same layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One benchmark case: the live segments set up first, and the segment
/// carved and released in the measured loop.
struct Case {
    name: &'static str,
    live: fn(&mut IntervalMap),
    carve: (Range<usize>, Sharing),
}

fn none(_: &mut IntervalMap) {}

/// 64 disjoint read-write segments of 4 KiB, 8 KiB apart.
fn rw64(map: &mut IntervalMap) {
    for k in 0..64usize {
        map.acquire(k * 8192..k * 8192 + 4096, Sharing::Exclusive)
            .unwrap();
    }
}

/// 64 read-only segments of 4 KiB, overlapping by half: 65 pieces.
fn ro64(map: &mut IntervalMap) {
    for k in 0..64usize {
        map.acquire(k * 2048..k * 2048 + 4096, Sharing::Shared)
            .unwrap();
    }
}

/// 4096 disjoint read-write segments of 64 bytes, 128 bytes apart, from
/// byte 128 on: the worst case of a vector, an insert at the front.
fn rw4096(map: &mut IntervalMap) {
    for k in 1..=4096usize {
        map.acquire(k * 128..k * 128 + 64, Sharing::Exclusive)
            .unwrap();
    }
}

const CASES: [Case; 6] = [
    Case {
        name: "read-only carve + release, region otherwise empty",
        live: none,
        carve: (0..64, Sharing::Shared),
    },
    Case {
        name: "read-write carve + release, region otherwise empty",
        live: none,
        carve: (0..64, Sharing::Exclusive),
    },
    Case {
        name: "read-only carve + release, 64 read-write live",
        live: rw64,
        carve: (4096 + 8192..8192 + 8192, Sharing::Shared),
    },
    Case {
        name: "read-write carve + release, 64 read-write live",
        live: rw64,
        carve: (4096..8192, Sharing::Exclusive),
    },
    Case {
        name: "read-only carve + release over 3 pieces, 64 read-only live",
        live: ro64,
        carve: (60 * 1024..68 * 1024, Sharing::Shared),
    },
    Case {
        name: "read-write carve + release in front of 4096 read-write live",
        live: rw4096,
        carve: (0..64, Sharing::Exclusive),
    },
];

fn cycle(map: &mut IntervalMap, carve: &(Range<usize>, Sharing)) {
    let (range, sharing) = black_box(carve.clone());
    map.acquire(range.clone(), sharing).unwrap();
    map.release(range, sharing);
}

fn main() {
    if let Ok(spec) = std::env::var("INTERVAL_LOOP") {
        let (case, n) = spec.split_once(':').expect("INTERVAL_LOOP=<case>:<n>");
        let case = &CASES[case.parse::<usize>().expect("case number")];
        let n: u64 = n.parse().expect("iteration count");
        let mut map = IntervalMap::new();
        (case.live)(&mut map);
        for _ in 0..n {
            cycle(&mut map, &case.carve);
        }
        black_box(&map);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    for (i, case) in CASES.iter().enumerate() {
        let mut map = IntervalMap::new();
        (case.live)(&mut map);
        cycle(&mut map, &case.carve); // warm-up: capacity reaches its high-water mark
        const N: u64 = 100_000;
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..N {
            cycle(&mut map, &case.carve);
        }
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        println!(
            "[{i}] {}: {:.2} allocations per carve + release",
            case.name,
            allocs as f64 / N as f64
        );
        c.bench_function(&format!("[{i}] {}", case.name), |b| {
            b.iter(|| cycle(&mut map, &case.carve))
        });
    }
    c.final_summary();
}

//! What the safety layer costs per operation, without a device: the
//! segment overlap check, the slot table round trip, the endpoint codec and
//! building a work request. Target: each under 50 ns.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use safeverbs::__bench::{build_write_wr, Delivered, IntervalMap, Sharing, SlotTable, WrId};
use safeverbs::{Endpoint, TransportKind};

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn segment_carve_and_release(c: &mut Criterion) {
    // A region with 64 live segments, as a busy connection has; carving
    // takes the region's lock, checks and records the range, and releasing
    // undoes it.
    let map = Mutex::new(IntervalMap::new());
    for k in 0..64usize {
        map.lock()
            .unwrap()
            .acquire(k * 8192..k * 8192 + 4096, Sharing::Exclusive)
            .unwrap();
    }
    c.bench_function("segment carve + release (read-write, 64 live)", |b| {
        b.iter(|| {
            let range = black_box(4096..8192);
            map.lock()
                .unwrap()
                .acquire(range.clone(), Sharing::Exclusive)
                .unwrap();
            map.lock().unwrap().release(range, Sharing::Exclusive);
        })
    });
    c.bench_function("segment carve + release (read-only, 64 live)", |b| {
        b.iter(|| {
            let range = black_box(4096 + 8192..8192 + 8192);
            map.lock()
                .unwrap()
                .acquire(range.clone(), Sharing::Shared)
                .unwrap();
            map.lock().unwrap().release(range, Sharing::Shared);
        })
    });
}

fn slot_round_trip(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(Noop));
    let table = Mutex::new(SlotTable::<u64, u64>::with_capacity(256));
    // A steady state with 32 requests in flight.
    for k in 0..32 {
        table.lock().unwrap().acquire(k);
    }
    c.bench_function("slot acquire + complete + take", |b| {
        b.iter(|| {
            let id = table.lock().unwrap().acquire(black_box(7));
            let d = table.lock().unwrap().complete(id, 1, |_| true, |_| {});
            if let Delivered::Wake(Some(w)) = d {
                w.wake();
            }
            let _ = black_box(table.lock().unwrap().poll(id, &waker));
        })
    });
}

fn endpoint_codec(c: &mut Criterion) {
    let ep = Endpoint {
        transport: TransportKind::Rc,
        qpn: 0x11,
        psn: 0x12_3456,
        lid: 0,
        gid: [0xfe; 16],
        mtu: 1024,
        port: 1,
        fingerprint: 0xdead_beef,
    };
    c.bench_function("endpoint encode", |b| {
        b.iter(|| black_box(black_box(&ep).encode()))
    });
    let bytes = ep.encode();
    c.bench_function("endpoint decode (validated, checksummed)", |b| {
        b.iter(|| black_box(Endpoint::decode(black_box(&bytes)).unwrap()))
    });
}

fn work_request_build(c: &mut Criterion) {
    let mut sge = safeverbs_sys::ibv_sge {
        addr: 0x1000,
        length: 64,
        lkey: 7,
    };
    c.bench_function("work request build (RDMA WRITE)", |b| {
        b.iter(|| black_box(build_write_wr(black_box(WrId(42).0), &mut sge, 0x2000, 9)))
    });
}

criterion_group!(
    benches,
    segment_carve_and_release,
    slot_round_trip,
    endpoint_codec,
    work_request_build
);
criterion_main!(benches);

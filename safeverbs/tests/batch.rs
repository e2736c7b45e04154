//! Batched posting: one doorbell, one completion, every segment back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{block_on, block_on_within, pair, pattern, reap_until, trials, Skip, Test};
use safeverbs::model::Fault;
use safeverbs::{
    Access, Device, Error, MemoryRegion, Rc, RemoteSegment, Ro, Segment, Shutdown, Uc, MAX_BATCH,
};

fn write_batch_lands_every_write_and_returns_every_segment(dev: &Device) {
    let p = pair::<Uc>(dev, 64);
    const N: usize = 16;
    const SIZE: usize = 4096;
    let src =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::remote_write())
            .unwrap();
    let remotes: Vec<_> = (0..N)
        .map(|k| {
            dst.remote()
                .slice((k * SIZE) as u64..((k + 1) * SIZE) as u64)
                .unwrap()
        })
        .collect();
    let mut segs: Vec<_> = (0..N)
        .map(|k| src.slice_rw(k * SIZE..(k + 1) * SIZE).unwrap())
        .collect();
    for round in 0..common::scale(20) as u64 {
        for (k, s) in segs.iter_mut().enumerate() {
            s.copy_from(&pattern(SIZE, round * 100 + k as u64)).unwrap();
        }
        let (res, back) = block_on(p.a.write_batch(segs, &remotes));
        res.unwrap();
        assert_eq!(back.len(), N);
        segs = back;
        // UC: the completion says the writes left; a send behind them on
        // the same QP arrives after them.
        let flag = p.pd.register(0u64, Access::local()).unwrap();
        let recv = p.b.recv(flag.read_write().unwrap());
        let one = p.pd.register(1u64, Access::local()).unwrap();
        block_on(p.a.send(one.read_only().unwrap())).0.unwrap();
        block_on(recv).0.unwrap();
        for k in 0..N {
            let got = dst.bytes_ro(k * SIZE..(k + 1) * SIZE).unwrap().to_vec();
            assert_eq!(
                got,
                pattern(SIZE, round * 100 + k as u64),
                "round {round} write {k}"
            );
        }
    }
    assert_eq!(p.cq.in_flight(), 0, "riders were all reclaimed");
    println!("20 batches of {N} UC writes (one signaled each) intact");
}

fn send_batch_arrives_in_order(dev: &Device) {
    let p = pair::<Rc>(dev, 64);
    let src = p.pd.register_zeroed::<u64>(8, Access::local()).unwrap();
    let dst = p.pd.register_zeroed::<u64>(8, Access::local()).unwrap();
    let recvs: Vec<_> = (0..8).map(|k| p.b.recv(dst.elem_rw(k).unwrap())).collect();
    let segs: Vec<_> = (0..8)
        .map(|k| {
            let mut s = src.elem_rw(k).unwrap();
            s.write(1000 + k as u64);
            s
        })
        .collect();
    let (res, back) = block_on(p.a.send_batch(segs));
    res.unwrap();
    assert_eq!(back.len(), 8);
    for (k, (res, seg)) in block_on(futures::future::join_all(recvs))
        .into_iter()
        .enumerate()
    {
        res.unwrap();
        assert_eq!(seg.read(), 1000 + k as u64);
    }
}

fn a_dropped_batch_is_released_when_its_completion_arrives(dev: &Device) {
    let p = pair::<Rc>(dev, 64);
    let src =
        p.pd.register_zeroed::<u8>(MAX_BATCH * 64, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(MAX_BATCH * 64, Access::remote_write())
            .unwrap();
    let segs: Vec<_> = (0..MAX_BATCH)
        .map(|k| src.bytes_ro(k * 64..(k + 1) * 64).unwrap())
        .collect();
    let remotes: Vec<_> = (0..MAX_BATCH)
        .map(|k| {
            dst.remote()
                .bytes((k * 64) as u64..((k + 1) * 64) as u64)
                .unwrap()
        })
        .collect();
    drop(p.a.write_batch(segs, &remotes));
    reap_until(&p.cq, 0);
    assert_eq!(src.live_segments(), 0, "every rider's segment came back");
}

/// `n` stripes of `len` bytes: a source region holding a pattern, read-only
/// segments over each stripe, and a zeroed remote-writable target with a
/// remote segment per stripe.
struct Striped {
    data: Vec<u8>,
    src: MemoryRegion<[u8]>,
    dst: MemoryRegion<[u8]>,
    segs: Vec<Segment<[u8], Ro>>,
    remotes: Vec<RemoteSegment<[u8]>>,
}

fn striped<T: safeverbs::Transport>(
    p: &common::Pair<T>,
    n: usize,
    len: usize,
    seed: u64,
) -> Striped {
    let data = pattern(n * len, seed);
    let src = p.pd.register_slice(&data, Access::local()).unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(n * len, Access::remote_write())
            .unwrap();
    let segs = (0..n)
        .map(|k| src.bytes_ro(k * len..(k + 1) * len).unwrap())
        .collect();
    let remotes = (0..n)
        .map(|k| {
            dst.remote()
                .bytes((k * len) as u64..((k + 1) * len) as u64)
                .unwrap()
        })
        .collect();
    Striped {
        data,
        src,
        dst,
        segs,
        remotes,
    }
}

/// A dropped batch frees none of its riders' memory before the signaled
/// request's completion is reaped: until then each rider's bytes cannot be
/// carved read-write, and the receiver gets the bytes that were posted.
/// On the model the writes run only after the drop, so a rider released
/// early would be overwritten here and arrive wrong.
fn a_dropped_batchs_riders_stay_posted_until_its_completion(dev: &Device) {
    const N: usize = 8;
    const SIZE: usize = 256;
    let p = pair::<Rc>(dev, 16);
    let Striped {
        data,
        src,
        dst,
        segs,
        remotes,
    } = striped(&p, N, SIZE, 11);
    drop(p.a.write_batch(segs, &remotes));
    // Nothing was reaped yet: every request, riders included, still owns
    // its bytes. A carve that is granted anyway scribbles over them, as a
    // user reusing released memory would.
    let mut granted = Vec::new();
    for k in 0..N {
        if let Ok(mut seg) = src.bytes_rw(k * SIZE..(k + 1) * SIZE) {
            seg.fill(0xee);
            granted.push(k);
        }
    }
    reap_until(&p.cq, 0);
    for k in 0..N {
        assert_eq!(
            dst.bytes_ro(k * SIZE..(k + 1) * SIZE).unwrap().to_vec(),
            data[k * SIZE..(k + 1) * SIZE],
            "write {k} of the dropped batch: the receiver's bytes are not the ones posted \
             (carved read-write while posted: {granted:?})"
        );
    }
    assert!(
        granted.is_empty(),
        "requests {granted:?} of a dropped batch could be carved read-write before its completion"
    );
    assert_eq!(src.live_segments(), 0, "every segment came back");
}

/// A batch that gathers its slots in two steps (part at once, the rest as
/// single posts complete) takes exactly as many as it posts: afterwards
/// the whole send queue is free again, so a batch as deep as the queue
/// fits at once.
fn a_batch_that_gathers_its_slots_takes_no_more_than_it_posts(dev: &Device) {
    const DEPTH: usize = 4;
    const LEN: usize = 64;
    let p = pair::<Rc>(dev, DEPTH as u32);
    let src =
        p.pd.register_zeroed::<u8>(DEPTH * LEN + LEN, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(DEPTH * LEN + LEN, Access::remote_write())
            .unwrap();
    let seg = |k: usize| src.bytes_ro(k * LEN..(k + 1) * LEN).unwrap();
    let remote = |k: usize| {
        dst.remote()
            .bytes((k * LEN) as u64..((k + 1) * LEN) as u64)
            .unwrap()
    };
    // Three single writes hold three of the four slots ...
    let singles: Vec<_> = (0..3).map(|k| p.a.write(seg(k), remote(k))).collect();
    // ... so a batch of two finds one free slot: it takes it and waits.
    let mut batch = Box::pin(p.a.write_batch(vec![seg(3), seg(4)], &[remote(3), remote(4)]));
    assert!(format!("{batch:?}").contains("waiting"), "{batch:?}");
    // The singles complete; the batch's next poll reaps them and gathers
    // the one slot it still needs.
    if let Some(m) = dev.model() {
        m.settle(1000);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let noop = futures::task::noop_waker_ref();
    let (res, back) = loop {
        if let Poll::Ready(out) = batch.as_mut().poll(&mut Context::from_waker(noop)) {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the batch never posted: {batch:?}"
        );
    };
    res.unwrap();
    assert_eq!(back.len(), 2);
    for single in singles {
        block_on(single).0.unwrap();
    }
    // Every slot came back: a batch of the queue's whole depth fits.
    let segs: Vec<_> = (0..DEPTH).map(seg).collect();
    let remotes: Vec<_> = (0..DEPTH).map(remote).collect();
    drop(back);
    let (res, _) = block_on(
        p.a.write_batch(segs, &remotes)
            .timeout(Duration::from_secs(5)),
    );
    res.expect("a batch as deep as the send queue, once every earlier request completed");
}

/// A batch is one signaled request: its riders are unsignaled and produce
/// no completion of their own (one doorbell, one completion). Counted on
/// the model, whose `settle` runs every request before the queue is polled;
/// the batch is as long as a batch may be.
fn a_batch_produces_one_completion(dev: &Device) -> Result<(), Skip> {
    const N: usize = MAX_BATCH;
    const LEN: usize = 64;
    let Some(model) = dev.model() else {
        return Err(Skip(
            "counts completions after the model's `settle`; a real device completes at its own pace".into(),
        ));
    };
    let p = pair::<Rc>(dev, 64);
    let Striped {
        data,
        src: _,
        dst,
        segs,
        remotes,
    } = striped(&p, N, LEN, 5);
    let batch = p.a.write_batch(segs, &remotes);
    model.settle(10_000);
    assert_eq!(
        p.cq.poll().unwrap(),
        1,
        "a batch of {N} writes completes with one completion"
    );
    let (res, back) = block_on(batch);
    res.unwrap();
    assert_eq!(back.len(), N);
    assert_eq!(dst.bytes_ro(0..N * LEN).unwrap().to_vec(), data);
    assert_eq!(p.cq.in_flight(), 0);
    Ok(())
}

/// A batch whose doorbell fails after the provider queued it (`bad_wr`
/// NULL: every request may be with the NIC) is not handed back at once:
/// the queue pair is shut down, and the batch resolves once the flush is
/// reaped, with every segment.
fn a_batch_whose_doorbell_fails_after_queueing_waits_for_the_flush(
    dev: &Device,
) -> Result<(), Skip> {
    const N: usize = 4;
    const LEN: usize = 64;
    let Some(model) = dev.model() else {
        return Err(Skip(
            "injects a failing doorbell (the model's Fault::DoorbellFails)".into(),
        ));
    };
    let p = pair::<Rc>(dev, 16);
    let src =
        p.pd.register_zeroed::<u8>(N * LEN, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(N * LEN, Access::remote_write())
            .unwrap();
    let segs: Vec<_> = (0..N)
        .map(|k| src.bytes_ro(k * LEN..(k + 1) * LEN).unwrap())
        .collect();
    let remotes: Vec<_> = (0..N)
        .map(|k| {
            dst.remote()
                .bytes((k * LEN) as u64..((k + 1) * LEN) as u64)
                .unwrap()
        })
        .collect();
    model.inject(Fault::DoorbellFails);
    let (res, back) = block_on(
        p.a.write_batch(segs, &remotes)
            .timeout(Duration::from_secs(10)),
    );
    assert!(
        matches!(res, Err(Error::ShutDown(Shutdown::PostFailed(_)))),
        "{res:?}"
    );
    assert_eq!(back.len(), N, "every segment, after the flush");
    assert_eq!(p.cq.in_flight(), 0);
    Ok(())
}

/// A posted batch that never completes (its peer posts no receive, and
/// `rnr_retry(7)` retries for ever) ends at its deadline: the queue pair is
/// shut down, and every segment comes back.
fn a_posted_batchs_deadline_shuts_its_queue_pair_down(dev: &Device) {
    const N: usize = 4;
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(32).unwrap();
    let build = |rnr_retry| {
        let qp = pd.queue_pair::<Rc>().send_cq(&cq).recv_cq(&cq);
        qp.max_send_wr(8)
            .max_recv_wr(8)
            .rnr_retry(rnr_retry)
            .build()
            .unwrap()
    };
    let (a, b) = (build(7), build(6));
    let (ea, eb) = (a.endpoint(), b.endpoint());
    let (a, _b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
    let data = pattern(N * 8, 3);
    let src = pd.register_slice(&data, Access::local()).unwrap();
    let segs: Vec<_> = (0..N)
        .map(|k| src.bytes_ro(k * 8..(k + 1) * 8).unwrap())
        .collect();
    let started = Instant::now();
    let batch = a.send_batch(segs).timeout(Duration::from_millis(200));
    // The test's own bound, well past the batch's.
    let (res, back) = block_on_within(Duration::from_secs(10), batch);
    println!("after {:?}: {res:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        matches!(res, Err(Error::ShutDown(Shutdown::DeadlineExpired))),
        "{res:?}"
    );
    assert_eq!(back.len(), N, "every segment back");
    for (k, seg) in back.iter().enumerate() {
        assert_eq!(
            seg.to_vec(),
            data[k * 8..(k + 1) * 8],
            "segment {k}, in order"
        );
    }
    assert_eq!(cq.in_flight(), 0);
}

fn bad_batches_are_refused_before_posting(dev: &Device) {
    let p = pair::<Rc>(dev, 8);
    let src = p.pd.register_zeroed::<u8>(4096, Access::local()).unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(64, Access::remote_write())
            .unwrap();
    // Too long for the send queue of 8.
    let segs: Vec<_> = (0..9)
        .map(|k| src.bytes_ro(k * 64..(k + 1) * 64).unwrap())
        .collect();
    let remotes = vec![dst.remote().bytes(0..64).unwrap(); 9];
    let (res, back) = block_on(p.a.write_batch(segs, &remotes));
    let err = res.unwrap_err();
    println!("refused: {err}");
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "requests in a batch",
                value: 9,
                min: 1,
                max: 8,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(back.len(), 9);
    // No request at all.
    let none: Vec<safeverbs::Segment<[u8], safeverbs::Ro>> = Vec::new();
    let (res, back) = block_on(p.a.write_batch(none, &remotes[..0]));
    assert!(matches!(res, Err(Error::Limit { value: 0, .. })), "{res:?}");
    assert!(back.is_empty());
    // Two segments, one target.
    let segs = vec![src.bytes_ro(0..64).unwrap(), src.bytes_ro(64..128).unwrap()];
    let (res, back) = block_on(p.a.write_batch(segs, &remotes[..1]));
    assert!(
        matches!(
            res,
            Err(Error::BatchTargets {
                segments: 2,
                targets: 1
            })
        ),
        "{res:?}"
    );
    assert_eq!(back.len(), 2);
    // One target too small.
    let segs = vec![src.bytes_ro(0..128).unwrap()];
    let (res, back) = block_on(p.a.write_batch(segs, &[dst.remote().bytes(0..64).unwrap()]));
    assert!(matches!(res, Err(Error::RemoteOutOfBounds { .. })));
    assert_eq!(back.len(), 1);
    assert_eq!(p.cq.in_flight(), 0);
}

/// The release hook of a region brought with `register_external` runs when
/// its last segment goes, which may be a rider of a dropped batch: it runs
/// after the completion queue's locks are released, so it may use the
/// queue.
fn a_riders_resources_are_released_outside_the_completion_queues_locks(dev: &Device) {
    let p = pair::<Uc>(dev, 8);
    let memory: &'static mut [u64; 512] = Box::leak(Box::new([0u64; 512]));
    let (released_tx, released) = std::sync::mpsc::channel();
    let hook_cq = p.cq.clone();
    // SAFETY: the leaked array is valid for 4096 bytes for ever, aligned,
    // and used by nothing else.
    let external = unsafe {
        p.pd.register_external::<u8>(
            std::ptr::NonNull::from(memory).cast(),
            4096,
            Access::local(),
            move || {
                // Uses the queue whose reaping released the region (both
                // calls take its locks).
                let polled = hook_cq.poll();
                let _ = hook_cq.in_flight();
                let _ = released_tx.send(polled.is_ok());
            },
        )
    }
    .unwrap();
    let normal = p.pd.register_zeroed::<u8>(64, Access::local()).unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(128, Access::remote_write())
            .unwrap();
    // The external region's segment rides on the normal one's signaled write.
    let segs = vec![
        external.bytes_ro(0..64).unwrap(),
        normal.bytes_ro(0..64).unwrap(),
    ];
    let remotes = [
        dst.remote().bytes(0..64).unwrap(),
        dst.remote().bytes(64..128).unwrap(),
    ];
    drop(p.a.write_batch(segs, &remotes));
    drop(external); // the rider now holds the region's last reference
    let cq = p.cq.clone();
    std::thread::spawn(move || reap_until(&cq, 0));
    let ok = released
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the release hook never finished: it ran under a lock it needed");
    assert!(ok, "the hook could poll the completion queue");
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device write_batch_lands_every_write_and_returns_every_segment,
        device send_batch_arrives_in_order,
        device a_dropped_batch_is_released_when_its_completion_arrives,
        device a_dropped_batchs_riders_stay_posted_until_its_completion,
        device a_batch_that_gathers_its_slots_takes_no_more_than_it_posts,
        device a_batch_produces_one_completion,
        device a_batch_whose_doorbell_fails_after_queueing_waits_for_the_flush,
        device a_posted_batchs_deadline_shuts_its_queue_pair_down,
        device bad_batches_are_refused_before_posting,
        device a_riders_resources_are_released_outside_the_completion_queues_locks,
    ])
}

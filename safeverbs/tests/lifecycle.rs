//! Ownership, teardown and credit rules, on a real (soft) device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{block_on, pair, pattern, reap_until, trials, Skip, Test};
use safeverbs::{Access, Device, Error, Rc, Uc};

fn overlapping_read_write_segments_are_refused(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let region = pd.register_zeroed::<u8>(256, Access::local()).unwrap();
    let rw = region.bytes_rw(64..128).unwrap();
    let err = region.bytes_rw(96..160).unwrap_err();
    println!("refused: {err}");
    assert!(
        err.to_string().contains("96..160") && err.to_string().contains("64..128"),
        "{err}"
    );
    assert!(
        region.bytes_ro(100..101).is_err(),
        "read-only over read-write"
    );
    // Read-only views may overlap each other.
    let ro1 = region.bytes_ro(0..64).unwrap();
    let ro2 = region.bytes_ro(32..64).unwrap();
    assert!(region.bytes_rw(0..1).is_err());
    assert_eq!(region.live_segments(), 3);
    drop((rw, ro1, ro2));
    assert_eq!(
        region.live_segments(),
        0,
        "freed segments return their ranges"
    );
    let whole = region.bytes_rw(0..256).unwrap();
    assert_eq!(whole.len(), 256);
    assert!(matches!(
        region.bytes_ro(250..300),
        Err(Error::OutOfBounds { .. })
    ));
}

fn remotely_writable_memory_is_read_by_copy_only(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let shared = pd.register(5u64, Access::remote_write()).unwrap();
    let seg = shared.read_only().unwrap();
    assert!(matches!(seg.get(), Err(Error::RemotelyWritable)));
    assert_eq!(seg.read(), 5);
    let local = pd.register(6u64, Access::local()).unwrap();
    assert_eq!(*local.read_only().unwrap().get().unwrap(), 6);
}

fn a_dropped_future_keeps_its_memory_until_the_completion(dev: &Device) {
    let p = pair::<Rc>(dev, 16);
    let data = pattern(65_536, 9);
    let src = p.pd.register_slice(&data, Access::local()).unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(65_536, Access::remote_write())
            .unwrap();
    let remote = dst.remote().slice(0..65_536).unwrap();
    let fut = p.a.write(src.slice_ro(0..65_536).unwrap(), remote);
    // Drop the future and the region handle right after posting: the
    // segment in the slot table keeps the memory registered.
    drop(fut);
    drop(src);
    assert_eq!(p.cq.in_flight(), 1, "abandoned, not freed");
    reap_until(&p.cq, 0);
    assert_eq!(
        dst.bytes_ro(0..65_536).unwrap().to_vec(),
        data,
        "the NIC read valid memory"
    );
    assert_eq!(p.cq.in_flight(), 0, "the slot table is empty again");
}

fn a_forgotten_future_only_leaks(dev: &Device) {
    let p = pair::<Rc>(dev, 16);
    let src = p.pd.register([1u8; 4096], Access::local()).unwrap();
    let dst = p.pd.register([0u8; 4096], Access::remote_write()).unwrap();
    let fut = p.a.write(src.read_only().unwrap(), dst.remote().whole());
    std::mem::forget(fut);
    // The slot still owns the segment: the memory stays valid, and the
    // write lands.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dst.read_only().unwrap().read() != [1u8; 4096] {
        assert!(
            Instant::now() < deadline,
            "the forgotten write never landed"
        );
        p.cq.poll().unwrap();
    }
    p.cq.poll().unwrap();
    // The completion arrived, but nobody took it: the slot (and segment)
    // are leaked, never freed while in use.
    assert_eq!(p.cq.in_flight(), 1);
    assert_eq!(
        src.live_segments(),
        1,
        "the forgotten segment still holds its range"
    );
    assert!(src.read_write().is_err(), "and still excludes writers");
}

fn dropping_a_queue_pair_with_100_in_flight_flushes_them(dev: &Device) {
    let p = pair::<Uc>(dev, 128);
    let bufs =
        p.pd.register_zeroed::<u8>(100 * 64, Access::local())
            .unwrap();
    let recvs: Vec<_> = (0..100)
        .map(|i| p.b.recv(bufs.slice_rw(i * 64..(i + 1) * 64).unwrap()))
        .collect();
    assert_eq!(p.b.in_flight(), 100);
    let common::Pair { a, b, cq, pd, .. } = p;
    let started = Instant::now();
    drop(b); // moves to ERR, reaps the 100 flushes, then destroys
    println!(
        "dropped a QP with 100 receives in flight in {:?}",
        started.elapsed()
    );
    for (res, seg) in block_on(futures::future::join_all(recvs)) {
        let err = res.unwrap_err();
        assert!(err.is_flush(), "{err}");
        assert_eq!(seg.len(), 64, "the segment came back");
    }
    assert_eq!(cq.in_flight(), 0);
    assert_eq!(bufs.live_segments(), 0);
    drop((a, pd));
}

fn into_error_flushes_outstanding_receives(dev: &Device) {
    let p = pair::<Rc>(dev, 8);
    let buf = p.pd.register([0u32; 8], Access::local()).unwrap();
    let recv = p.a.recv(buf.read_write().unwrap());
    let common::Pair { a, .. } = p;
    let failed = a.into_error().unwrap();
    let (res, seg) = block_on(recv);
    let err = res.unwrap_err();
    println!("flushed: {err}");
    assert!(err.to_string().contains("WR_FLUSH_ERR"));
    drop(seg);
    assert_eq!(buf.live_segments(), 0);
    drop(failed);
}

/// Rule: a post beyond the send queue's depth is not posted: it waits
/// until an earlier request of the queue has completed and been reaped, so
/// the queue is never overrun. The peer posts no receive at first (and the
/// sender retries RNR for ever), so nothing can complete: the waiting posts
/// must stay waiting however often they are polled, and go out only once
/// the peer consumes.
fn a_full_send_queue_makes_the_next_post_wait(dev: &Device) {
    const DEPTH: usize = 4;
    const N: usize = 16;
    const LEN: usize = 64;
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(256).unwrap();
    let a = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(DEPTH as u32)
        .max_recv_wr(1)
        .rnr_retry(7) // for ever: the sends wait for the peer's receives
        .build()
        .unwrap();
    let b = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(1)
        .max_recv_wr(N as u32)
        .min_rnr_timer(12) // 0.64 ms between the sender's retries
        .build()
        .unwrap();
    let (ea, eb) = (a.endpoint(), b.endpoint());
    let (a, b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
    let src = pd.register_zeroed::<u8>(N * LEN, Access::local()).unwrap();
    {
        let mut all = src.bytes_rw(0..N * LEN).unwrap();
        for (i, chunk) in all.get_mut().unwrap().chunks_mut(LEN).enumerate() {
            chunk.fill(i as u8 + 1);
        }
    }
    // The test's own bound: a send still waiting (or posted) after 20 s
    // ends with an error instead of hanging.
    let bound = Duration::from_secs(20);
    let mut sends: Vec<_> = (0..N)
        .map(|i| {
            let seg = src.bytes_ro(i * LEN..(i + 1) * LEN).unwrap();
            Box::pin(a.send(seg).timeout(bound))
        })
        .collect();
    type Sending = std::pin::Pin<Box<safeverbs::Post<[u8], safeverbs::Ro>>>;
    let phases = |sends: &[Sending]| sends.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>();
    let posted = |phases: &[String]| {
        phases
            .iter()
            .enumerate()
            .filter(|(_, p)| p.contains("\"posted\""))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let first = phases(&sends);
    assert_eq!(
        posted(&first),
        (0..DEPTH).collect::<Vec<_>>(),
        "exactly the first {DEPTH} sends are posted: {first:?}"
    );
    assert!(
        first[DEPTH..]
            .iter()
            .all(|p| p.contains("waiting for a queue slot")),
        "the others wait: {first:?}"
    );
    assert_eq!(a.in_flight(), DEPTH as u32);
    // Poll everything, often: each poll reaps the CQ, but no send can
    // complete while the peer has no receive, so no slot comes back.
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let until = Instant::now() + Duration::from_millis(200);
    let mut rounds = 0;
    while Instant::now() < until {
        for f in &mut sends {
            assert!(
                f.as_mut().poll(&mut cx).is_pending(),
                "a send completed although the peer posted no receive"
            );
        }
        rounds += 1;
    }
    let polled = phases(&sends);
    assert_eq!(
        posted(&polled),
        (0..DEPTH).collect::<Vec<_>>(),
        "after {rounds} rounds of polls the posts beyond the depth still wait: {polled:?}"
    );
    assert_eq!(a.in_flight(), DEPTH as u32);
    println!(
        "{DEPTH} posted, {} waiting through {rounds} rounds of polls",
        N - DEPTH
    );
    // The peer consumes: every send goes out, each message exactly once.
    let dst = pd.register_zeroed::<u8>(N * LEN, Access::local()).unwrap();
    let recvs: Vec<_> = (0..N)
        .map(|i| b.recv(dst.slice_rw(i * LEN..(i + 1) * LEN).unwrap()))
        .collect();
    let (sent, received) = block_on(futures::future::join(
        futures::future::join_all(sends),
        futures::future::join_all(recvs.into_iter().map(|r| r.timeout(bound))),
    ));
    for (res, _) in sent {
        res.unwrap();
    }
    let mut got: Vec<Vec<u8>> = received
        .into_iter()
        .map(|(res, seg)| {
            assert_eq!(res.unwrap().byte_len as usize, LEN);
            seg.to_vec()
        })
        .collect();
    got.sort();
    let want: Vec<Vec<u8>> = (0..N).map(|i| vec![i as u8 + 1; LEN]).collect();
    assert_eq!(got, want, "every message arrived once");
    assert_eq!(cq.in_flight(), 0);
}

fn a_cq_too_small_for_its_queues_is_refused(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(16).unwrap();
    let cap = cq.capacity();
    let err = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(cap as u32)
        .max_recv_wr(8)
        .build()
        .unwrap_err();
    println!("refused: {err}");
    assert!(matches!(err, Error::CqTooSmall { .. }), "{err}");
    // The failed build reserved nothing.
    let ok = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .max_send_wr(4)
        .max_recv_wr(4)
        .build();
    assert!(ok.is_ok());
}

/// A completion queue may have exactly as many entries as the device
/// allows, and not one more (nor none).
fn a_cq_of_the_devices_limit_is_allowed_and_one_more_refused(dev: &Device) -> Result<(), Skip> {
    let max = dev.limits().max_cqe as usize;
    if max > 65_536 {
        // A NIC's limit is millions of entries: pinned memory a test
        // should not take.
        return Err(Skip(format!("a CQ of {max} entries is too big here")));
    }
    let cq = dev.create_cq(max).unwrap();
    assert!(cq.capacity() >= max);
    drop(cq);
    for entries in [0, max + 1] {
        let err = dev.create_cq(entries).unwrap_err();
        assert!(
            matches!(err, Error::Limit { what: "completion queue entries", value, min: 1, max: m, .. }
                if value == entries as u64 && m == max as u64),
            "{entries}: {err}"
        );
    }
    Ok(())
}

/// Dropping an idle completion queue destroys it at once: a device can
/// make and drop more of them than it can hold at one time.
fn dropped_cqs_free_their_place_on_the_device(dev: &Device) -> Result<(), Skip> {
    let max = dev.limits().max_cq;
    if cfg!(miri) || max > 65_536 {
        return Err(Skip(format!(
            "{} completion queues are too many here",
            max + 1
        )));
    }
    for k in 0..=max {
        let cq = dev.create_cq(4).unwrap_or_else(|e| {
            panic!("completion queue {k} failed, the {k} before it dropped: {e}")
        });
        drop(cq);
    }
    Ok(())
}

fn a_wrong_transport_or_fingerprint_is_refused_at_connect(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(512).unwrap();
    let rc = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .build()
        .unwrap();
    let uc = pd
        .queue_pair::<Uc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .build()
        .unwrap();
    let err = rc.to_rtr(&uc.endpoint()).unwrap_err();
    assert!(
        matches!(err.error, Error::TransportMismatch { .. }),
        "{err}"
    );
    let rc = err.qp; // handed back, still usable
    let typed = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .fingerprint(0xabcd, "Mailbox")
        .build()
        .unwrap();
    let err = typed.to_rtr(&rc.endpoint()).unwrap_err();
    println!("refused: {err}");
    assert!(err.to_string().contains("Mailbox") && err.to_string().contains("0x000000000000abcd"));
}

fn a_queue_pair_refuses_objects_of_another_device_context(dev: &Device) {
    // The same NIC opened twice (or another model device): two contexts.
    let other = common::another_context(dev);
    let pd = dev.alloc_pd().unwrap();
    let ours = dev.create_cq(64).unwrap();
    let theirs = other.create_cq(64).unwrap();
    for (send, recv) in [(&theirs, &ours), (&ours, &theirs)] {
        let err = pd
            .queue_pair::<Rc>()
            .send_cq(send)
            .recv_cq(recv)
            .build()
            .unwrap_err();
        println!("refused: {err}");
        assert!(matches!(err, Error::Foreign(_)), "{err}");
    }
    assert_eq!(ours.in_flight() + theirs.in_flight(), 0);
    // A region of another protection domain (here: of the other context)
    // is refused before posting, and its segment comes back.
    let p = pair::<Rc>(dev, 8);
    let foreign = other
        .alloc_pd()
        .unwrap()
        .register([7u8; 64], Access::local())
        .unwrap();
    let (res, seg) = block_on(p.a.recv(foreign.read_write().unwrap()));
    let err = res.unwrap_err();
    println!("refused: {err}");
    assert!(matches!(err, Error::Foreign(_)), "{err}");
    assert_eq!(seg.read(), [7u8; 64]);
    assert_eq!(p.a.in_flight(), 0, "nothing was posted");
}

fn dropping_a_queue_pair_never_waits_for_its_flushes(dev: &Device) {
    let p = pair::<Rc>(dev, 8);
    let buf = p.pd.register([5u8; 64], Access::local()).unwrap();
    let recv = p.b.recv(buf.read_write().unwrap());
    let common::Pair { a, b, cq, .. } = p;
    drop(b);
    // Dropping did not reap (had it reaped, it could have waited): the
    // flush is left for the CQ's next poll.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cq.poll().unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "no flush left to reap: the drop reaped it itself"
        );
    }
    let (res, seg) = block_on(recv);
    let err = res.unwrap_err();
    println!("after the drop: {err}");
    assert!(
        matches!(err, Error::ShutDown(safeverbs::Shutdown::Dropped)),
        "{err}"
    );
    assert_eq!(seg.read(), [5u8; 64]);
    assert_eq!(cq.in_flight(), 0);
    drop(a);
}

fn work_abandoned_with_every_handle_is_reaped_in_the_background(dev: &Device) {
    let p = pair::<Rc>(dev, 16);
    let buf =
        p.pd.register_zeroed::<u8>(16 * 64, Access::local())
            .unwrap();
    for i in 0..16 {
        drop(p.b.recv(buf.slice_rw(i * 64..(i + 1) * 64).unwrap()));
    }
    assert_eq!(buf.live_segments(), 16);
    drop(p); // the queue pairs, the CQ, the PD: every handle
    let deadline = Instant::now() + Duration::from_secs(10);
    while buf.live_segments() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} receives were never reaped",
            buf.live_segments()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn a_deadline_shuts_the_queue_pair_down_and_hands_the_buffer_back(dev: &Device) {
    // Miri has no poll(2), which the notifier thread waits in.
    let modes: &[_] = if cfg!(miri) {
        &[safeverbs::CqMode::BusyPoll]
    } else {
        &[safeverbs::CqMode::BusyPoll, safeverbs::CqMode::Notifier]
    };
    for &mode in modes {
        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq_with(32, mode).unwrap();
        let build = || {
            pd.queue_pair::<Rc>()
                .send_cq(&cq)
                .recv_cq(&cq)
                .max_send_wr(8)
                .max_recv_wr(8)
                .build()
                .unwrap()
        };
        let (a, b) = (build(), build());
        let (ea, eb) = (a.endpoint(), b.endpoint());
        let (a, _b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
        let buf = pd.register([9u8; 64], Access::local()).unwrap();
        let other = pd.register([3u8; 8], Access::local()).unwrap();
        let bystander = a.recv(other.read_write().unwrap());
        // Nobody sends: only the deadline can end the wait. The test's own
        // bound is a thread that gives up on it.
        let started = Instant::now();
        let recv = a
            .recv(buf.read_write().unwrap())
            .timeout(Duration::from_millis(200));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(block_on(async { (recv.await, bystander.await) }));
        });
        let ((res, seg), (other_res, _)) = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{mode:?}: the deadline never ended the wait"));
        let err = res.unwrap_err();
        println!("{mode:?}: after {:?}: {err}", started.elapsed());
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            matches!(err, Error::ShutDown(safeverbs::Shutdown::DeadlineExpired)),
            "{err}"
        );
        assert_eq!(seg.read(), [9u8; 64], "the buffer came back untouched");
        let other_err = other_res.unwrap_err();
        assert!(
            matches!(
                other_err,
                Error::ShutDown(safeverbs::Shutdown::DeadlineExpired)
            ),
            "every request of the queue pair names the cause: {other_err}"
        );
    }
}

fn a_future_polled_after_ready_fails_loudly_in_debug_builds(dev: &Device) {
    let p = pair::<Rc>(dev, 8);
    let buf = p.pd.register([0u8; 64], Access::local()).unwrap();
    let mut post = Box::pin(p.a.recv(buf.read_write().unwrap()));
    let (tx_res, tx_seg) = block_on(
        p.b.send(
            p.pd.register([1u8; 64], Access::local())
                .unwrap()
                .read_only()
                .unwrap(),
        ),
    );
    tx_res.unwrap();
    drop(tx_seg);
    let (res, seg) = block_on(post.as_mut());
    res.unwrap();
    assert_eq!(seg.read(), [1u8; 64]);
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let waker = futures::task::noop_waker();
        let _ = post
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
    }));
    assert_eq!(
        again.is_err(),
        cfg!(debug_assertions),
        "a second poll panics exactly in debug builds"
    );
}

/// A queue pair's number is the one its endpoint carries, and each queue
/// pair has its own; starting PSNs are drawn at random (a peer cannot
/// predict them).
fn queue_pairs_have_their_own_numbers_and_random_psns(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(1024).unwrap();
    let qps: Vec<_> = (0..6)
        .map(|_| {
            pd.queue_pair::<Rc>()
                .send_cq(&cq)
                .recv_cq(&cq)
                .build()
                .unwrap()
        })
        .collect();
    let mut numbers: Vec<u32> = qps.iter().map(|qp| qp.qp_num()).collect();
    for qp in &qps {
        assert_eq!(qp.qp_num(), qp.endpoint().qpn);
    }
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), qps.len(), "each its own number");
    let psns: std::collections::BTreeSet<u32> = qps.iter().map(|qp| qp.endpoint().psn).collect();
    assert!(psns.len() > 1, "six queue pairs, one PSN: {psns:?}");
}

/// A failed transition hands the queue pair back with the error, which is
/// also its `source` (for error reports that walk the chain).
fn a_failed_transition_names_its_cause_as_source(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(256).unwrap();
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .build()
        .unwrap();
    // An endpoint of a queue pair that does not exist on this device.
    let mut remote = qp.endpoint();
    remote.qpn = 0xff_fff0;
    remote.gid = [0; 16];
    remote.lid = 0;
    let failed = match qp.to_rtr(&remote) {
        Ok(_) => panic!("RTR towards no address succeeded"),
        Err(e) => e,
    };
    let source = std::error::Error::source(&failed).expect("the cause is the source");
    assert_eq!(source.to_string(), failed.error.to_string());
}

/// A batch that waits for room, and is dropped after it gathered part of
/// the queue, gives every slot it gathered back and lets single posts in
/// again.
fn a_batch_dropped_while_gathering_gives_its_slots_back(dev: &Device) {
    const DEPTH: u32 = 4;
    // Sends to a peer that never posts a receive wait for ever (RNR
    // retries 7): they keep their slots.
    let p = common::pair_with::<Rc>(dev, DEPTH, |b| b.rnr_retry(7));
    let src = p.pd.register_zeroed::<u8>(64, Access::local()).unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(64, Access::remote_write())
            .unwrap();
    let stuck: Vec<_> = (0..2)
        .map(|_| p.a.send(src.slice_ro(0..8).unwrap()))
        .collect();
    let segs: Vec<_> = (0..DEPTH as usize)
        .map(|k| src.slice_ro(k * 8..(k + 1) * 8).unwrap())
        .collect();
    let remotes: Vec<_> = (0..DEPTH as u64)
        .map(|k| dst.remote().slice(k * 8..(k + 1) * 8).unwrap())
        .collect();
    let mut batch = Box::pin(p.a.write_batch(segs, &remotes));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    for _ in 0..10 {
        assert!(
            batch.as_mut().poll(&mut cx).is_pending(),
            "only 2 of 4 slots are free"
        );
    }
    assert!(format!("{batch:?}").contains("waiting"), "{batch:?}");
    drop(batch);
    // The two free slots are free again, and the gate is open.
    let writes: Vec<_> = (0..2)
        .map(|k| {
            p.a.write(src.slice_ro(k * 8..(k + 1) * 8).unwrap(), remotes[k])
        })
        .collect();
    for w in &writes {
        assert!(
            format!("{w:?}").contains("posted"),
            "a single post after the batch: {w:?}"
        );
    }
    // Behind the stuck sends (one send queue runs in order) they never
    // run: dropping the queue pairs flushes them all.
    drop((writes, stuck));
}

fn a_post_waiting_for_room_is_flushed_once_its_queue_pair_is_dropped(dev: &Device) {
    let p = pair::<Rc>(dev, 1);
    let buf =
        p.pd.register_zeroed::<u8>(64 * 64, Access::local())
            .unwrap();
    let src = p.pd.register([3u8; 64], Access::local()).unwrap();
    // Receives until one waits for room (the queue holds what the
    // provider granted, at least 1).
    let mut posted = Vec::new();
    let waiting = loop {
        let k = posted.len();
        assert!(k < 63, "64 receives and none waits");
        let recv = p.b.recv(buf.slice_rw(k * 64..(k + 1) * 64).unwrap());
        if format!("{recv:?}").contains("waiting") {
            break recv;
        }
        posted.push(recv);
    };
    // The posted ones complete and are reaped: nothing is in flight.
    for recv in posted {
        let (res, _) = block_on(p.a.send(src.read_only().unwrap()));
        res.unwrap();
        block_on(recv).0.unwrap();
    }
    let common::Pair { a, b, cq, .. } = p;
    assert_eq!(b.in_flight(), 0);
    drop(b);
    // Its queue pair's handle is gone: what it posts now is flushed (else
    // nothing would ever complete it), and its segment comes back.
    let (res, seg) = common::block_on_within(Duration::from_secs(5), waiting);
    let err = res.unwrap_err();
    println!("the waiting receive: {err}");
    assert!(
        matches!(err, Error::ShutDown(safeverbs::Shutdown::Dropped)),
        "{err}"
    );
    assert_eq!(seg.len(), 64);
    assert_eq!(cq.in_flight(), 0, "nothing is left in flight");
    drop(a);
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device overlapping_read_write_segments_are_refused,
        device remotely_writable_memory_is_read_by_copy_only,
        device a_dropped_future_keeps_its_memory_until_the_completion,
        device a_forgotten_future_only_leaks,
        device dropping_a_queue_pair_with_100_in_flight_flushes_them,
        device into_error_flushes_outstanding_receives,
        device a_full_send_queue_makes_the_next_post_wait,
        device a_cq_too_small_for_its_queues_is_refused,
        device a_cq_of_the_devices_limit_is_allowed_and_one_more_refused,
        device dropped_cqs_free_their_place_on_the_device,
        device a_wrong_transport_or_fingerprint_is_refused_at_connect,
        device a_queue_pair_refuses_objects_of_another_device_context,
        device dropping_a_queue_pair_never_waits_for_its_flushes,
        device work_abandoned_with_every_handle_is_reaped_in_the_background,
        device a_deadline_shuts_the_queue_pair_down_and_hands_the_buffer_back,
        device a_future_polled_after_ready_fails_loudly_in_debug_builds,
        device queue_pairs_have_their_own_numbers_and_random_psns,
        device a_failed_transition_names_its_cause_as_source,
        device a_batch_dropped_while_gathering_gives_its_slots_back,
        device a_post_waiting_for_room_is_flushed_once_its_queue_pair_is_dropped,
    ])
}

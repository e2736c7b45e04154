//! Unsignaled sends and writes (selective signaling): their segments stay
//! the library's until a later signaled completion of their queue pair
//! says the NIC is done with them, their send-queue slots come back then,
//! and they never fill the queue. On the model device the DMA runs later
//! than the post, so a segment handed back at posting would be writable
//! while the NIC still reads it: the carve checks below would see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{block_on, pair, pattern, reap_until, trials, Test};
use safeverbs::{Access, Device, Error, Rc, Transport, Uc};

const SIZE: usize = 64;

/// Writes of fresh read-only carves, unsignaled, then one signaled write:
/// every byte lands, and then (not before) the source can be carved
/// read-write again and every slot is back.
fn unsignaled_writes_are_released_by_the_next_signaled_one<T: Transport>(dev: &Device) {
    const N: usize = 12;
    let p = pair::<T>(dev, 32);
    let src =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>((N + 1) * SIZE, Access::remote_write())
            .unwrap();
    src.slice_rw(0..N * SIZE)
        .unwrap()
        .copy_from(&pattern(N * SIZE, 7))
        .unwrap();
    for k in 0..N {
        let seg = src.slice_ro(k * SIZE..(k + 1) * SIZE).unwrap();
        let remote = dst
            .remote()
            .slice((k * SIZE) as u64..((k + 1) * SIZE) as u64)
            .unwrap();
        block_on(p.a.write_unsignaled(seg, remote)).unwrap();
    }
    // Posted, not covered: the library still holds every carve.
    assert!(
        matches!(src.slice_rw(0..SIZE), Err(Error::Overlap(_))),
        "an unsignaled write's segment was handed back before a completion covered it"
    );
    assert_eq!(p.a.in_flight(), N as u32, "their slots are taken");
    // UC: the peer's receive of a send behind them says they landed; RC:
    // the signaled write's own completion does.
    let flag = p.pd.register([0u8; 1], Access::local()).unwrap();
    let recv = p.b.recv(flag.read_write().unwrap());
    let last = p.pd.register([1u8; 1], Access::local()).unwrap();
    let (res, _) = block_on(p.a.send(last.read_only().unwrap()));
    res.unwrap();
    block_on(recv).0.unwrap();
    assert_eq!(p.a.in_flight(), 0, "covered, their slots came back");
    let mut again = src.slice_rw(0..N * SIZE).expect("every carve was released");
    assert_eq!(
        dst.bytes_ro(0..N * SIZE).unwrap().to_vec(),
        pattern(N * SIZE, 7),
        "every byte landed"
    );
    again.copy_from(&[0; N * SIZE]).unwrap();
    assert_eq!(p.cq.in_flight(), 0);
}

fn rc_unsignaled_writes_are_released_by_the_next_signaled_one(dev: &Device) {
    unsignaled_writes_are_released_by_the_next_signaled_one::<Rc>(dev);
}

fn uc_unsignaled_writes_are_released_by_the_next_signaled_one(dev: &Device) {
    unsignaled_writes_are_released_by_the_next_signaled_one::<Uc>(dev);
}

/// Nothing but unsignaled writes, far more than the queue holds: the
/// library signals one whenever half the queue is uncovered, so every
/// post goes through and at most half the queue stays taken.
fn unsignaled_writes_alone_never_fill_the_queue(dev: &Device) {
    const DEPTH: u32 = 8;
    let p = pair::<Rc>(dev, DEPTH);
    let src = p.pd.register([5u8; SIZE], Access::local()).unwrap();
    let dst = p.pd.register([0u8; SIZE], Access::remote_write()).unwrap();
    let write = || {
        common::block_on_within(
            std::time::Duration::from_secs(10),
            p.a.write_unsignaled(src.read_only().unwrap(), dst.remote().whole()),
        )
    };
    // Exactly: the first three stay uncovered, the fourth (half the queue)
    // is signaled after all and covers them.
    for _ in 0..DEPTH / 2 {
        write().unwrap();
    }
    reap_until(&p.cq, 0);
    assert_eq!(p.a.in_flight(), 0, "the fourth was signaled");
    let n = common::scale(1000) + 3;
    for _ in 0..n {
        write().unwrap();
    }
    reap_until(&p.cq, (DEPTH / 2 - 1) as usize);
    assert!(
        p.a.in_flight() < DEPTH / 2,
        "{} uncovered of {DEPTH}",
        p.a.in_flight()
    );
    println!(
        "{n} unsignaled writes on a queue of {DEPTH}: {} left uncovered",
        p.a.in_flight()
    );
}

/// Unsignaled sends, then a signaled one: the peer receives them all, in
/// order.
fn unsignaled_sends_arrive_in_order(dev: &Device) {
    const N: usize = 6;
    let p = pair::<Rc>(dev, 16);
    let src =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    src.slice_rw(0..N * SIZE)
        .unwrap()
        .copy_from(&pattern(N * SIZE, 9))
        .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    let recvs: Vec<_> = (0..N)
        .map(|k| p.b.recv(dst.slice_rw(k * SIZE..(k + 1) * SIZE).unwrap()))
        .collect();
    for k in 0..N - 1 {
        let seg = src.slice_ro(k * SIZE..(k + 1) * SIZE).unwrap();
        block_on(p.a.send_unsignaled(seg)).unwrap();
    }
    let (res, _) = block_on(p.a.send(src.slice_ro((N - 1) * SIZE..N * SIZE).unwrap()));
    res.unwrap();
    for (k, (res, seg)) in block_on(futures::future::join_all(recvs))
        .into_iter()
        .enumerate()
    {
        res.unwrap();
        assert_eq!(
            seg.to_vec(),
            pattern(N * SIZE, 9)[k * SIZE..(k + 1) * SIZE],
            "message {k}"
        );
    }
    assert_eq!(p.a.in_flight(), 0);
}

/// An unsignaled write the peer refuses (its target's registration does
/// not allow remote writes) completes on its own, with the error: the
/// queue pair moves to ERR, the signaled write after it is flushed, and
/// every unsignaled segment comes back.
fn a_failing_unsignaled_write_releases_everything(dev: &Device) {
    let p = pair::<Rc>(dev, 16);
    let src = p.pd.register([3u8; SIZE], Access::local()).unwrap();
    let dst = p.pd.register([0u8; SIZE], Access::remote_write()).unwrap();
    let readonly = p.pd.register([0u8; SIZE], Access::remote_read()).unwrap();
    block_on(p.a.write_unsignaled(src.read_only().unwrap(), dst.remote().whole())).unwrap();
    block_on(p.a.write_unsignaled(src.read_only().unwrap(), readonly.remote().whole())).unwrap();
    let (res, _) = block_on(p.a.write(src.read_only().unwrap(), dst.remote().whole()));
    assert!(
        res.is_err(),
        "the write after the failed one is flushed: {res:?}"
    );
    reap_until(&p.cq, 0);
    assert_eq!(p.a.in_flight(), 0);
    src.read_write()
        .expect("every unsignaled segment came back");
    assert_eq!(
        readonly.read_only().unwrap().read(),
        [0u8; SIZE],
        "untouched"
    );
}

/// Refused before posting, an unsignaled write hands its segment back.
fn an_unsignaled_write_too_long_for_its_target_is_refused(dev: &Device) {
    let p = pair::<Rc>(dev, 4);
    let src =
        p.pd.register_zeroed::<u8>(2 * SIZE, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(SIZE, Access::remote_write())
            .unwrap();
    let remote = dst.remote().slice(0..SIZE as u64).unwrap();
    match block_on(p.a.write_unsignaled(src.slice_ro(0..2 * SIZE).unwrap(), remote)) {
        Err((Error::RemoteOutOfBounds { .. }, seg)) => assert_eq!(seg.len(), 2 * SIZE),
        other => panic!(
            "expected RemoteOutOfBounds, got {:?}",
            other.map_err(|(e, _)| e)
        ),
    }
    assert_eq!(p.a.in_flight(), 0);
}

/// A batch that would need the slots of uncovered unsignaled requests
/// would wait for ever (it covers none, and single posts wait while it
/// gathers): it is refused with its segments, and goes through once a
/// signaled write covered them.
fn a_batch_that_cannot_fit_beside_uncovered_requests_is_refused(dev: &Device) {
    const DEPTH: u32 = 4;
    let p = pair::<Rc>(dev, DEPTH);
    let src = p.pd.register_zeroed::<u8>(64, Access::local()).unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(64, Access::remote_write())
            .unwrap();
    let remotes: Vec<_> = (0..DEPTH as u64)
        .map(|k| dst.remote().slice(k * 16..(k + 1) * 16).unwrap())
        .collect();
    let carves = || -> Vec<_> {
        (0..DEPTH as usize)
            .map(|k| src.slice_ro(k * 16..(k + 1) * 16).unwrap())
            .collect()
    };
    block_on(p.a.write_unsignaled(src.slice_ro(0..16).unwrap(), remotes[0])).unwrap();
    let bound = std::time::Duration::from_secs(10);
    let (res, back) = common::block_on_within(bound, p.a.write_batch(carves(), &remotes));
    match res {
        Err(Error::BatchBehindUnsignaled {
            batch,
            depth,
            uncovered,
        }) => assert_eq!((batch, depth, uncovered), (DEPTH as usize, DEPTH, 1)),
        other => panic!("expected the batch to be refused, got {other:?}"),
    }
    assert_eq!(back.len(), DEPTH as usize, "every segment back");
    drop(back);
    let (res, _) = block_on(p.a.write(src.slice_ro(0..16).unwrap(), remotes[1]));
    res.unwrap();
    let (res, back) = common::block_on_within(bound, p.a.write_batch(carves(), &remotes));
    res.unwrap();
    assert_eq!(back.len(), DEPTH as usize);
}

/// The limit is exact: `u` uncovered requests hold `u` slots plus the
/// chain's spare one, so in a send queue of 8 beside 2 of them a batch of
/// 5 fits (and lands) and a batch of 6 is refused. (Found by cargo-mutants:
/// the test above, one slot short, admits nothing at the edge.)
fn a_batch_fits_beside_uncovered_requests_up_to_the_last_slot(dev: &Device) {
    const DEPTH: u32 = 8;
    let p = pair::<Rc>(dev, DEPTH);
    let src =
        p.pd.register_slice(&pattern(128, 9), Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(128, Access::remote_write())
            .unwrap();
    let remotes: Vec<_> = (0..8u64)
        .map(|k| dst.remote().slice(k * 16..(k + 1) * 16).unwrap())
        .collect();
    let carves = |n: usize| -> Vec<_> {
        (0..n)
            .map(|k| src.slice_ro(k * 16..(k + 1) * 16).unwrap())
            .collect()
    };
    for k in [6, 7] {
        let seg = src.slice_ro(k * 16..(k + 1) * 16).unwrap();
        block_on(p.a.write_unsignaled(seg, remotes[k])).unwrap();
    }
    let bound = std::time::Duration::from_secs(10);
    let (res, back) = common::block_on_within(bound, p.a.write_batch(carves(6), &remotes[..6]));
    match res {
        Err(Error::BatchBehindUnsignaled {
            batch,
            depth,
            uncovered,
        }) => assert_eq!((batch, depth, uncovered), (6, DEPTH, 2)),
        other => panic!("a batch of 6 beside 2 uncovered in a queue of 8: {other:?}"),
    }
    drop(back);
    let (res, back) = common::block_on_within(bound, p.a.write_batch(carves(5), &remotes[..5]));
    res.unwrap_or_else(|e| panic!("a batch of 5 beside 2 uncovered in a queue of 8: {e}"));
    drop(back);
    assert_eq!(
        dst.slice_ro(0..128).unwrap().to_vec()[..80],
        pattern(128, 9)[..80],
        "the batch's bytes landed"
    );
    // A signaled write of the one gap covers the two.
    let (res, _) = block_on(p.a.write(src.slice_ro(80..96).unwrap(), remotes[5]));
    res.unwrap();
    assert_eq!(dst.slice_ro(0..128).unwrap().to_vec(), pattern(128, 9));
    assert_eq!(src.live_segments(), 0, "the uncovered two came back");
}

/// Unsignaled sends that ran (their messages arrived) and that nothing
/// signaled follows: dropping the queue pair releases them. Moving to ERR
/// flushes only what has not run, so without a cover of the library's own
/// their slots, carves and queue pair would be held for ever.
fn unsignaled_sends_that_ran_are_released_when_their_queue_pair_is_dropped(dev: &Device) {
    const N: usize = 3;
    let p = pair::<Rc>(dev, 16);
    let src =
        p.pd.register_slice(&pattern(N * SIZE, 5), Access::local())
            .unwrap();
    let land =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    let recvs: Vec<_> = (0..N)
        .map(|k| p.b.recv(land.slice_rw(k * SIZE..(k + 1) * SIZE).unwrap()))
        .collect();
    for k in 0..N {
        let seg = src.slice_ro(k * SIZE..(k + 1) * SIZE).unwrap();
        block_on(p.a.send_unsignaled(seg)).unwrap();
    }
    for (k, recv) in recvs.into_iter().enumerate() {
        let (res, seg) = block_on(recv);
        assert_eq!(res.unwrap().byte_len as usize, SIZE);
        assert_eq!(seg.to_vec(), pattern(N * SIZE, 5)[k * SIZE..(k + 1) * SIZE]);
    }
    assert_eq!(src.live_segments(), N, "uncovered: the library holds them");
    let common::Pair { a, b, cq, .. } = p;
    drop(a);
    reap_until(&cq, 0);
    assert_eq!(
        src.live_segments(),
        0,
        "the carves came back with the cover"
    );
    drop(b);
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device rc_unsignaled_writes_are_released_by_the_next_signaled_one,
        device uc_unsignaled_writes_are_released_by_the_next_signaled_one,
        device unsignaled_writes_alone_never_fill_the_queue,
        device unsignaled_sends_arrive_in_order,
        device a_failing_unsignaled_write_releases_everything,
        device an_unsignaled_write_too_long_for_its_target_is_refused,
        device a_batch_that_cannot_fit_beside_uncovered_requests_is_refused,
        device a_batch_fits_beside_uncovered_requests_up_to_the_last_slot,
        device unsignaled_sends_that_ran_are_released_when_their_queue_pair_is_dropped,
    ])
}

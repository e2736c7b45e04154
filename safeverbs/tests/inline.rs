//! Inline sends and writes: the message is copied while posting, so the
//! caller's memory is free at once, and every byte that arrives is the
//! message as it was when posted. On the model device the DMA runs later
//! than the post, so a message read at DMA time (not copied) would show
//! the bytes written over it here; under Miri, reading it after it was
//! freed is undefined behaviour that Miri reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{block_on, pair_with, pattern, reap_until, trials, Pair, Test};
use safeverbs::{Access, Device, Error, Opcode, Rc, Transport, Uc, MAX_INLINE};

/// What the tests' queue pairs ask for.
const INLINE: u32 = 64;

fn inline_pair<T: Transport>(dev: &Device, depth: u32) -> Pair<T> {
    pair_with::<T>(dev, depth, |b| b.max_inline_data(INLINE))
}

fn inline_sends_arrive_as_posted<T: Transport>(dev: &Device) {
    let p = inline_pair::<T>(dev, 16);
    let max = p.a.max_inline_data();
    assert!(max >= INLINE as usize, "asked for {INLINE}, allowed {max}");
    let sizes = [0, 1, 17, INLINE as usize];
    let dst =
        p.pd.register_zeroed::<u8>(sizes.len() * 128, Access::local())
            .unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        let recv = p.b.recv(dst.slice_rw(i * 128..(i + 1) * 128).unwrap());
        let mut message = pattern(size, 300 + i as u64);
        let sent = p.a.send_inline(&message[..]);
        // The message is the caller's again: overwrite it, then free it.
        message.iter_mut().for_each(|b| *b = 0xee);
        drop(message);
        let sent = block_on(sent).unwrap();
        assert_eq!(sent.opcode, Opcode::Send);
        let (got, seg) = block_on(recv);
        let got = got.unwrap();
        assert_eq!((got.opcode, got.byte_len as usize), (Opcode::Recv, size));
        assert_eq!(
            seg.to_vec()[..size],
            pattern(size, 300 + i as u64)[..],
            "{size} bytes inline"
        );
        assert!(seg.to_vec()[size..].iter().all(|&b| b == 0), "nothing more");
    }
    assert_eq!(p.cq.in_flight(), 0);
    println!("inline sends of {sizes:?} bytes arrived as posted (max_inline_data {max})");
}

fn rc_inline_sends_arrive_as_posted(dev: &Device) {
    inline_sends_arrive_as_posted::<Rc>(dev);
}

fn uc_inline_sends_arrive_as_posted(dev: &Device) {
    inline_sends_arrive_as_posted::<Uc>(dev);
}

fn inline_send_with_imm_delivers_the_immediate(dev: &Device) {
    let p = inline_pair::<Rc>(dev, 4);
    let dst = p.pd.register([0u8; 8], Access::local()).unwrap();
    let recv = p.b.recv(dst.read_write().unwrap());
    let sent = p.a.send_inline_with_imm(&0x0102_0304_0506_0708_u64, 0xfeed);
    block_on(sent).unwrap();
    let (got, seg) = block_on(recv);
    let got = got.unwrap();
    assert_eq!((got.opcode, got.imm), (Opcode::Recv, Some(0xfeed)));
    assert_eq!(seg.read(), 0x0102_0304_0506_0708_u64.to_ne_bytes());
}

fn inline_writes_land_as_posted<T: Transport>(dev: &Device) {
    let p = inline_pair::<T>(dev, 8);
    let target =
        p.pd.register_zeroed::<u8>(256, Access::remote_write())
            .unwrap();
    let data = pattern(48, 400);
    let mut message = data.clone();
    let remote = target.remote().slice(100..148).unwrap();
    let written = p.a.write_inline(&message[..], remote);
    message.iter_mut().for_each(|b| *b = 0xee);
    drop(message);
    assert_eq!(block_on(written).unwrap().opcode, Opcode::Write);
    // UC's send completion says only that the write left: a receive of a
    // send behind it (same queue, in order) says it landed.
    let flag = p.pd.register([0u8; 1], Access::local()).unwrap();
    let recv = p.b.recv(flag.read_write().unwrap());
    block_on(p.a.send_inline(&[1u8])).unwrap();
    block_on(recv).0.unwrap();
    let landed = target.bytes_ro(0..256).unwrap().to_vec();
    assert_eq!(landed[100..148], data[..], "the message");
    assert!(
        landed[..100].iter().chain(&landed[148..]).all(|&b| b == 0),
        "nothing outside the target"
    );
}

fn rc_inline_writes_land_as_posted(dev: &Device) {
    inline_writes_land_as_posted::<Rc>(dev);
}

fn uc_inline_writes_land_as_posted(dev: &Device) {
    inline_writes_land_as_posted::<Uc>(dev);
}

/// With the send queue full, the future keeps its own copy and posts it
/// when room frees up; the caller's message is free at once all the same.
fn an_inline_send_that_waits_for_room_keeps_a_copy(dev: &Device) {
    const DEPTH: u32 = 2;
    const N: usize = 5;
    let p = pair_with::<Rc>(dev, N as u32, |b| {
        b.max_inline_data(INLINE).max_send_wr(DEPTH)
    });
    let dst = p.pd.register_zeroed::<u8>(N * 32, Access::local()).unwrap();
    let recvs: Vec<_> = (0..N)
        .map(|i| p.b.recv(dst.slice_rw(i * 32..(i + 1) * 32).unwrap()))
        .collect();
    let mut sends = Vec::new();
    for i in 0..N {
        let mut message = pattern(32, 500 + i as u64);
        sends.push(p.a.send_inline(&message[..]));
        message.iter_mut().for_each(|b| *b = 0xee);
    }
    for (i, send) in sends.iter().enumerate() {
        let want = if i < DEPTH as usize {
            "posted"
        } else {
            "waiting"
        };
        let phase = format!("{send:?}");
        assert!(phase.contains(want), "send {i}: {phase}");
    }
    for (i, res) in block_on(futures::future::join_all(sends))
        .into_iter()
        .enumerate()
    {
        res.unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    // Waiting futures are posted in the order they find room when polled
    // (join_all's order here is not a promise): the posted ones first, in
    // order, then each waiting message exactly once.
    let mut got: Vec<Vec<u8>> = Vec::new();
    for (res, seg) in block_on(futures::future::join_all(recvs)) {
        res.unwrap();
        got.push(seg.to_vec());
    }
    let sent: Vec<Vec<u8>> = (0..N).map(|i| pattern(32, 500 + i as u64)).collect();
    let depth = DEPTH as usize;
    assert_eq!(got[..depth], sent[..depth], "the posted ones, in order");
    let (mut rest, mut waited) = (got[depth..].to_vec(), sent[depth..].to_vec());
    rest.sort();
    waited.sort();
    assert_eq!(
        rest, waited,
        "each waiting message once, as it was when created"
    );
    assert_eq!(p.cq.in_flight(), 0);
}

/// A message longer than the queue pair takes is refused before posting,
/// with the lengths, also where the provider allowed more than asked;
/// no builder asks for more than `MAX_INLINE`.
fn too_long_for_inline_is_refused_before_posting(dev: &Device) {
    let p = inline_pair::<Rc>(dev, 4);
    let max = p.a.max_inline_data();
    let long = vec![0u8; max + 1];
    match block_on(p.a.send_inline(&long[..])) {
        Err(Error::InlineTooLong { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected InlineTooLong, got {other:?}"),
    }
    let remote_target =
        p.pd.register_zeroed::<u8>(max + 1, Access::remote_write())
            .unwrap();
    let remote = remote_target.remote().slice(0..max as u64 + 1).unwrap();
    assert!(matches!(
        block_on(p.a.write_inline(&long[..], remote)),
        Err(Error::InlineTooLong { .. })
    ));
    assert_eq!(p.cq.in_flight(), 0, "nothing was posted");
    // Asked for nothing, a queue pair takes what its provider allows
    // anyway (the model: 0; rxe: 16, the room of its one SGE).
    let plain = common::pair::<Rc>(dev, 4);
    let granted = plain.a.max_inline_data();
    assert!(granted <= MAX_INLINE);
    let err = block_on(plain.a.send_inline(&vec![1u8; granted + 1][..])).unwrap_err();
    assert!(
        err.to_string().contains(&format!("at most {granted}")),
        "the message says why: {err}"
    );
    let too_much =
        p.pd.queue_pair::<Rc>()
            .send_cq(&p.cq)
            .recv_cq(&p.cq)
            .max_inline_data(MAX_INLINE as u32 + 1)
            .build();
    match too_much {
        Err(
            e @ Error::Limit {
                what: "max_inline_data",
                value,
                max,
                ..
            },
        ) => {
            assert_eq!((value, max), (MAX_INLINE as u64 + 1, MAX_INLINE as u64));
            assert!(e.to_string().contains("MAX_INLINE"), "{e}");
        }
        other => panic!("expected Error::Limit for max_inline_data, got {other:?}"),
    }
}

/// Dropped right after posting, an inline send still reaches the peer, and
/// its queue entry comes back when its completion is reaped.
fn a_dropped_inline_send_is_reaped(dev: &Device) {
    let p = inline_pair::<Rc>(dev, 4);
    let dst = p.pd.register([0u8; 4], Access::local()).unwrap();
    let recv = p.b.recv(dst.read_write().unwrap());
    drop(p.a.send_inline(&[9u8, 8, 7, 6]));
    let (res, seg) = block_on(recv);
    res.unwrap();
    assert_eq!(seg.read(), [9, 8, 7, 6]);
    reap_until(&p.cq, 0);
    assert_eq!(p.a.in_flight(), 0, "its credit came back");
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device rc_inline_sends_arrive_as_posted,
        device uc_inline_sends_arrive_as_posted,
        device inline_send_with_imm_delivers_the_immediate,
        device rc_inline_writes_land_as_posted,
        device uc_inline_writes_land_as_posted,
        device an_inline_send_that_waits_for_room_keeps_a_copy,
        device too_long_for_inline_is_refused_before_posting,
        device a_dropped_inline_send_is_reaped,
    ])
}

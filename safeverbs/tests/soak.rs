//! Soak: a long stream of sends of random sizes, with 10 % of the send
//! futures dropped right after posting and 1 % forgotten. Every message
//! carries its sequence number and a checksum that the receiver verifies:
//! each message arrives, once, in the order it was posted (one RC queue
//! pair delivers in order), and intact. Afterwards the slot table
//! holds exactly the forgotten requests and RSS has grown by no more than
//! their memory.
//!
//! `SAFEVERBS_SOAK_OPS` (default 1 000 000) and `SAFEVERBS_SOAK_SECS`
//! (default 300) bound the run; whichever is reached first ends it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::{block_on, env_or, pair, reap_until, rss_kib, trials, Test};
use safeverbs::{Access, Device, MemoryRegion, Rc};

const MAX: usize = 4096;
const RECVS: usize = 64;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// FNV-1a: cheap, and any corruption changes it.
fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The frame's header: length, checksum, sequence number.
const HEADER: usize = 16;

/// Fills `buf` with `[len u32][checksum u32][seq u64][payload]` for op
/// `seq`; the checksum covers the sequence number and the payload.
fn frame(buf: &mut [u8], seq: u64) {
    let len = buf.len();
    buf[8..HEADER].copy_from_slice(&seq.to_le_bytes());
    for (k, b) in buf[HEADER..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(k) as u8;
    }
    let sum = checksum(&buf[8..]);
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[4..8].copy_from_slice(&sum.to_le_bytes());
}

fn soak_random_sizes_dropped_and_forgotten_futures(dev: &Device) {
    // The model device runs in this process, several times slower than rxe.
    let ops = env_or(
        "SAFEVERBS_SOAK_OPS",
        if dev.model().is_some() {
            200_000
        } else {
            1_000_000
        },
    );
    let secs = env_or("SAFEVERBS_SOAK_SECS", 300);
    let p = pair::<Rc>(dev, 128);
    // Send buffers: one slot per outstanding send; forgotten sends get a
    // fresh region of their own (that memory is the accepted leak).
    let window = 32usize;
    let send_region =
        p.pd.register_zeroed::<u8>(window * MAX, Access::local())
            .unwrap();
    let recv_region =
        p.pd.register_zeroed::<u8>(RECVS * MAX, Access::local())
            .unwrap();
    let mut recvs: VecDeque<_> = (0..RECVS)
        .map(|k| {
            p.b.recv(recv_region.bytes_rw(k * MAX..(k + 1) * MAX).unwrap())
        })
        .collect();
    let mut sends: VecDeque<safeverbs::Post<[u8], safeverbs::Rw>> = VecDeque::new();
    let mut leaked: Vec<MemoryRegion<[u8]>> = Vec::new();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut dropped, mut forgotten, mut verified, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut rss_warm = 0;
    let mut posted = 0u64;

    // The receive of message `expected`: its length, checksum, and that it
    // is that message (not a repeat, not a later one).
    let verify_one = |recvs: &mut VecDeque<safeverbs::Post<[u8], safeverbs::Rw>>, expected: u64| {
        let next = recvs.pop_front().unwrap().timeout(Duration::from_secs(30));
        let (res, seg) = block_on(next);
        let c = res.unwrap_or_else(|e| panic!("the receive of message {expected}: {e}"));
        let data = seg.to_vec();
        let len = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
        assert_eq!(
            len, c.byte_len as usize,
            "length header of message {expected}"
        );
        let sum = u32::from_le_bytes(data[4..8].try_into().unwrap());
        assert_eq!(
            sum,
            checksum(&data[8..len]),
            "checksum of message {expected}"
        );
        let seq = u64::from_le_bytes(data[8..HEADER].try_into().unwrap());
        assert_eq!(
            seq, expected,
            "message {seq} arrived where message {expected} was due: lost, repeated or reordered"
        );
        recvs.push_back(p.b.recv(seg));
        len as u64
    };

    while posted < ops && Instant::now() < deadline {
        let len = HEADER + (rng.next() as usize % (MAX - HEADER)) + 1;
        let roll = rng.next() % 100;
        if roll == 0 {
            // Forget: a region of its own, leaked with the future.
            let region = p.pd.register_zeroed::<u8>(len, Access::local()).unwrap();
            let mut seg = region.bytes_rw(0..len).unwrap();
            frame(seg.get_mut().unwrap(), posted);
            let fut = p.a.send(seg);
            assert!(
                format!("{fut:?}").contains("\"posted\""),
                "the send queue was full: {fut:?}"
            );
            std::mem::forget(fut);
            leaked.push(region);
            forgotten += 1;
        } else {
            // Reuse the oldest send slot once its send is done.
            if sends.len() == window {
                let (res, _seg): (safeverbs::Result<_>, _) = block_on(sends.pop_front().unwrap());
                res.unwrap();
            }
            let slot = (posted as usize) % window;
            let mut seg = loop {
                match send_region.bytes_rw(slot * MAX..slot * MAX + len) {
                    Ok(seg) => break seg,
                    // An earlier send still holds the slot: finish the
                    // oldest one (or reap the completion of a dropped one).
                    Err(_) => match sends.pop_front() {
                        Some(fut) => drop(block_on(fut).0.unwrap()),
                        None => p.cq.poll().map(drop).unwrap(),
                    },
                }
            };
            frame(seg.get_mut().unwrap(), posted);
            let fut = p.a.send(seg);
            if roll <= 10 {
                // A dropped post that had not gone out yet would never be
                // sent: this soak drops posted ones only.
                assert!(
                    format!("{fut:?}").contains("\"posted\""),
                    "the send queue was full: {fut:?}"
                );
                drop(fut); // the slot table keeps the segment until done
                dropped += 1;
            } else {
                sends.push_back(fut);
            }
        }
        posted += 1;
        // Keep the receiver ahead of the sender.
        while posted - verified > (RECVS / 2) as u64 {
            bytes += verify_one(&mut recvs, verified);
            verified += 1;
        }
        if posted == 10_000 {
            rss_warm = rss_kib();
        }
    }
    while verified < posted {
        bytes += verify_one(&mut recvs, verified);
        verified += 1;
    }
    for fut in sends.drain(..) {
        block_on(fut).0.unwrap();
    }
    // Reap the completions of dropped futures.
    reap_until(&p.cq, forgotten as usize + RECVS);
    let rss_end = rss_kib();
    let elapsed = started.elapsed();
    println!(
        "soak: {posted} sends ({dropped} dropped, {forgotten} forgotten) in {elapsed:.1?}, \
         {verified} payloads verified ({} MiB), in flight after: {} ({} forgotten + {RECVS} receives), \
         RSS after warm-up {rss_warm} KiB -> {rss_end} KiB",
        bytes >> 20,
        p.cq.in_flight(),
        forgotten
    );
    assert_eq!(
        verified, posted,
        "every message arrived, in order, and matched its checksum"
    );
    assert_eq!(
        p.cq.in_flight() as u64,
        forgotten + RECVS as u64,
        "only forgotten requests remain"
    );
    // Forgotten requests keep their own region (page-sized allocations)
    // and slot; anything else must not grow.
    let allowed = 1024 + forgotten * 12;
    assert!(
        rss_warm == 0 || rss_end <= rss_warm + allowed,
        "RSS grew by {} KiB, more than the {allowed} KiB the forgotten requests account for",
        rss_end - rss_warm
    );
    drop(leaked);
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device soak_random_sizes_dropped_and_forgotten_futures,
    ])
}

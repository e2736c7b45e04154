//! Instructions per operation: the safe data path against a raw loop over
//! the sys crate's post and poll, side by side, counted by callgrind
//! (deterministic on a loaded machine, unlike a clock).
//!
//! `cargo bench -p safeverbs-benches --bench per_op` runs this binary once
//! per (provider, path) under `valgrind --tool=callgrind`, for two operation
//! counts, and prints the difference per operation, so setup and teardown
//! cancel out. Without valgrind it says so and prints nanoseconds per
//! operation instead (noisy: a clock on a shared machine).
//!
//! Providers, both in this process, on the model device's control path
//! (context, PD, MR, CQ, connected RC queue pairs):
//! - `null`: the context's `post_send` and `poll_cq` are replaced with a
//!   data path that moves no bytes: a signaled work request's completion is
//!   queued at once, and a poll hands it back. What is left is the cost of
//!   the layer above the provider; a real provider's post and poll (tens to
//!   hundreds of instructions on a NIC with user-space doorbells) come on
//!   top of both columns.
//! - `model`: the model device itself (deferred DMA, its scheduler, its
//!   lock), a provider with a cost of its own.
//!
//! Paths:
//! - `raw`: `ibv_post_send` of one signaled 64-byte RDMA WRITE, then
//!   `ibv_poll_cq` until its completion is reaped (what a C loop does);
//! - `safe`: `qp.write(segment, remote)` polled until it resolves (a noop
//!   waker: the future drives the queue itself, busy-poll mode);
//! - `raw-batch` / `safe-batch`: a chain of 32 writes, the last one
//!   signaled, behind one doorbell (`write_batch`), counted per write;
//! - `safe-inline`: `qp.write_inline(&value, remote)` of a 64-byte array
//!   on the stack, polled until it resolves (the null provider ignores the
//!   bytes, so this is the layer's cost: the copy into the future, the
//!   checks, the slot);
//! - `raw-unsignaled` / `safe-unsignaled`: one write per post, every 32nd
//!   signaled (`write_unsignaled` of a fresh read-only carve: the library
//!   signals every 32nd itself, half the queue of 64), counted per write.
//!
//! The targets (issue 12): safe ≤ 1.5 × raw for one signaled write,
//! ≤ 1.2 × raw per write of a batch.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::ffi::c_int;
use std::future::Future;
use std::pin::pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

use safeverbs::__bench::{raw_context, raw_cq, raw_qp, sge_of};
use safeverbs::model::Model;
use safeverbs::{Access, CompletionQueue, MemoryRegion, QueuePair, Rc, Rts};
use safeverbs_sys as sys;

const BATCH: usize = 32;
/// Writes per thread in the two-thread measurement.
const THREADED_WRITES: usize = 200_000;
/// Operation counts of the two runs whose difference is counted.
const RUNS: [usize; 2] = [2_048, 4_096];

// --- the null data path --------------------------------------------------

/// Completions queued by `null_post_send`, handed back by `null_poll_cq`:
/// one queue for every CQ of the process (each run uses one), behind a
/// lock as a provider's CQ is.
static NULL_CQ: Mutex<VecDeque<sys::ibv_wc>> = Mutex::new(VecDeque::new());

/// `post_send` of a provider that moves no bytes and completes every
/// signaled request at once.
///
/// # Safety
/// libibverbs' contract for `ibv_post_send`: `qp` live, `wr` a valid chain.
unsafe extern "C" fn null_post_send(
    qp: *mut sys::ibv_qp,
    mut wr: *mut sys::ibv_send_wr,
    _bad: *mut *mut sys::ibv_send_wr,
) -> c_int {
    // SAFETY: `qp` is live (the caller's contract).
    let qp_num = unsafe { (*qp).qp_num };
    let mut cq = NULL_CQ.lock().unwrap();
    while !wr.is_null() {
        // SAFETY: every element of the chain is valid (the contract).
        let w = unsafe { &*wr };
        if w.send_flags & sys::ibv_send_flags::IBV_SEND_SIGNALED.0 != 0 {
            cq.push_back(sys::ibv_wc {
                wr_id: w.wr_id,
                status: sys::ibv_wc_status::IBV_WC_SUCCESS,
                opcode: sys::ibv_wc_opcode::IBV_WC_RDMA_WRITE,
                qp_num,
                ..Default::default()
            });
        }
        wr = w.next;
    }
    0
}

/// `poll_cq` of the null provider.
///
/// # Safety
/// libibverbs' contract for `ibv_poll_cq`: `wc` has room for `n` entries.
unsafe extern "C" fn null_poll_cq(_cq: *mut sys::ibv_cq, n: c_int, wc: *mut sys::ibv_wc) -> c_int {
    let mut cq = NULL_CQ.lock().unwrap();
    let mut k = 0;
    while k < n {
        let Some(done) = cq.pop_front() else { break };
        // SAFETY: `k < n`, and `wc` has room for `n` (the contract).
        unsafe { wc.add(k as usize).write(done) };
        k += 1;
    }
    k
}

// --- the loops -------------------------------------------------------------

/// A waker that does nothing, without reference counting (so the count is
/// the future's own).
fn noop_waker() -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |_| RawWaker::new(std::ptr::null(), &VTABLE),
        |_| {},
        |_| {},
        |_| {},
    );
    // SAFETY: every function of the table ignores the (null) data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Polls `fut` until it resolves, as a busy-polling executor does.
fn spin<F: Future>(fut: F) -> F::Output {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

struct Setup {
    // Field order is drop order: the queue pairs before their CQ.
    /// One sending queue pair per thread, connected to one in `_b`.
    a: Vec<QueuePair<Rc, Rts>>,
    _b: Vec<QueuePair<Rc, Rts>>,
    cq: CompletionQueue,
    /// One source per thread.
    src: Vec<MemoryRegion<[u8; 64]>>,
    srcs: MemoryRegion<[[u8; 64]]>,
    dst: MemoryRegion<[[u8; 64]]>,
}

/// `pairs` connected RC queue pairs of one model device, all on one CQ.
fn setup(provider: &str, pairs: usize) -> Setup {
    let model = Model::new(0x5afe);
    // The library's cost alone: not the model's check of every segment
    // handed back (a test instrument, absent without the `model` feature).
    model.check_ownership(false);
    let dev = model.device().unwrap();
    let pd = dev.alloc_pd().unwrap();
    // Each queue pair reserves its send and receive depths (64 + 64).
    let cq = dev.create_cq(256 * pairs).unwrap();
    let build = || {
        pd.queue_pair::<Rc>()
            .send_cq(&cq)
            .recv_cq(&cq)
            .max_send_wr(64)
            .max_inline_data(64)
            .build()
            .unwrap()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        let (qa, qb) = (build(), build());
        let (ea, eb) = (qa.endpoint(), qb.endpoint());
        a.push(qa.connect(&eb).unwrap());
        b.push(qb.connect(&ea).unwrap());
    }
    let src = (0..pairs)
        .map(|_| pd.register([7u8; 64], Access::local()).unwrap())
        .collect();
    let srcs = pd
        .register_slice(&[[7u8; 64]; BATCH], Access::local())
        .unwrap();
    let dst = pd
        .register_slice(&[[0u8; 64]; BATCH], Access::remote_write())
        .unwrap();
    if provider == "null" {
        let ctx = raw_context(&dev);
        // SAFETY: `ctx` is the live context of `dev`; no other thread uses
        // it yet (busy-poll mode starts none), and every queue is idle, so
        // no request of the model is outstanding when its data path goes.
        unsafe {
            (*ctx).ops.post_send = Some(null_post_send);
            (*ctx).ops.poll_cq = Some(null_poll_cq);
        }
    }
    Setup {
        a,
        _b: b,
        cq,
        src,
        srcs,
        dst,
    }
}

/// `n` safe writes, one at a time, by the queue pair of thread `t`.
fn safe_writes(s: &Setup, t: usize, n: usize) {
    let target = s.dst.remote().elem(t as u64).unwrap();
    let mut seg = s.src[t].read_write().unwrap();
    for _ in 0..n {
        let (res, back) = spin(s.a[t].write(seg, target));
        res.unwrap();
        seg = back;
    }
}

/// `n` safe inline writes of a value on the stack, one at a time.
fn safe_inline_writes(s: &Setup, n: usize) {
    let target = s.dst.remote().elem(0).unwrap();
    for i in 0..n {
        spin(s.a[0].write_inline(&[i as u8; 64], target)).unwrap();
    }
}

/// `n` safe unsignaled writes of fresh read-only carves, one per post:
/// the library signals every 32nd (half the queue of 64), whose
/// completion releases the 31 before it.
fn safe_unsignaled_writes(s: &Setup, n: usize) {
    let target = s.dst.remote().elem(0).unwrap();
    for _ in 0..n {
        spin(s.a[0].write_unsignaled(s.src[0].read_only().unwrap(), target)).unwrap();
    }
}

/// `n` writes through the sys crate, one per post, every [`BATCH`]th
/// signaled and waited for (what a C loop with selective signaling does).
fn raw_unsignaled_writes(s: &Setup, n: usize) {
    let qp = raw_qp(&s.a[0]);
    let cq = raw_cq(&s.cq);
    let seg = s.src[0].read_write().unwrap();
    let mut sge = sge_of(&seg);
    let remote = s.dst.remote().elem(0).unwrap();
    let mut wr = sys::ibv_send_wr {
        num_sge: 1,
        opcode: sys::ibv_wr_opcode::IBV_WR_RDMA_WRITE,
        ..Default::default()
    };
    wr.wr.rdma.remote_addr = remote.addr();
    wr.wr.rdma.rkey = s.dst.rkey();
    let mut wc = [sys::ibv_wc::default(); 2];
    for k in 1..=n {
        wr.sg_list = &mut sge;
        wr.send_flags = if k % BATCH == 0 {
            sys::ibv_send_flags::IBV_SEND_SIGNALED.0
        } else {
            0
        };
        let mut bad = std::ptr::null_mut();
        // SAFETY: `qp` is the live RTS queue pair of `s.a[0]`; `wr` is one
        // request whose SGE lies in `seg`, registered on its PD and not
        // handed to anyone else while this loop runs.
        let rc = unsafe { sys::ibv_post_send(qp, &mut wr, &mut bad) };
        assert_eq!(rc, 0, "ibv_post_send");
        if k % BATCH == 0 {
            loop {
                // SAFETY: `cq` is live; `wc` has room for 2 entries.
                let got = unsafe { sys::ibv_poll_cq(cq, 2, wc.as_mut_ptr()) };
                assert!(got >= 0, "ibv_poll_cq");
                if got > 0 {
                    break;
                }
            }
        }
    }
    drop(seg);
}

/// `n` safe writes in batches of [`BATCH`].
fn safe_batches(s: &Setup, n: usize) {
    let remote = s.dst.remote();
    let targets: Vec<_> = (0..BATCH as u64).map(|k| remote.elem(k).unwrap()).collect();
    let mut segs: Vec<_> = (0..BATCH).map(|k| s.srcs.elem_rw(k).unwrap()).collect();
    for _ in 0..n / BATCH {
        let (res, back) = spin(s.a[0].write_batch(segs, &targets));
        res.unwrap();
        segs = back;
    }
}

/// `n` writes posted by thread `t` in chains of `chain` (the last one
/// signaled, `wr_id` = `t`) through the sys crate, as a C loop does; each
/// waits until its completion is reaped, by this thread or another one
/// (which counts it in `done[t]`: the CQ is shared).
fn raw_writes(s: &Setup, t: usize, chain: usize, n: usize, done: &[AtomicUsize]) {
    let qp = raw_qp(&s.a[t]);
    let cq = raw_cq(&s.cq);
    let seg = s.src[t].read_write().unwrap();
    let mut sges = [sge_of(&seg); BATCH];
    let remote = s.dst.remote().elem(t as u64).unwrap();
    let mut wrs: [sys::ibv_send_wr; BATCH] = std::array::from_fn(|k| {
        let mut wr = sys::ibv_send_wr {
            wr_id: t as u64,
            num_sge: 1,
            opcode: sys::ibv_wr_opcode::IBV_WR_RDMA_WRITE,
            ..Default::default()
        };
        wr.wr.rdma.remote_addr = remote.addr();
        wr.wr.rdma.rkey = s.dst.rkey();
        wr.send_flags = if k + 1 == chain {
            sys::ibv_send_flags::IBV_SEND_SIGNALED.0
        } else {
            0
        };
        wr
    });
    // Every link, every SGE pointer and the head posted come from one
    // pointer to each array, taken after the last use of the arrays
    // themselves (a later borrow of the array would invalidate them).
    let head = wrs.as_mut_ptr();
    let sge = sges.as_mut_ptr();
    for k in 0..chain {
        // SAFETY: `k < chain <= BATCH`: in bounds of both arrays.
        unsafe {
            (*head.add(k)).sg_list = sge.add(k);
            if k + 1 < chain {
                (*head.add(k)).next = head.add(k + 1);
            }
        }
    }
    let mut wc = [sys::ibv_wc::default(); 2];
    for posted in 1..=n / chain {
        let mut bad = std::ptr::null_mut();
        // SAFETY: `qp` is the live RTS queue pair of `s.a[t]`; the chain
        // is valid and its SGE lies in `seg`, registered on its PD and not
        // handed to anyone else while this loop runs.
        let rc = unsafe { sys::ibv_post_send(qp, head, &mut bad) };
        assert_eq!(rc, 0, "ibv_post_send");
        while done[t].load(Ordering::Acquire) < posted {
            // SAFETY: `cq` is live; `wc` has room for 2 entries.
            let got = unsafe { sys::ibv_poll_cq(cq, 2, wc.as_mut_ptr()) };
            assert!(got >= 0, "ibv_poll_cq");
            for c in &wc[..got as usize] {
                assert_eq!(c.status, sys::ibv_wc_status::IBV_WC_SUCCESS);
                done[c.wr_id as usize].fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    drop(seg);
}

/// One run of `path` over `n` writes on `provider` (what callgrind counts).
fn run(provider: &str, path: &str, n: usize) {
    let s = setup(provider, 1);
    let done = [AtomicUsize::new(0)];
    match path {
        "safe" => safe_writes(&s, 0, n),
        "safe-batch" => safe_batches(&s, n),
        "safe-inline" => safe_inline_writes(&s, n),
        "safe-unsignaled" => safe_unsignaled_writes(&s, n),
        "raw-unsignaled" => raw_unsignaled_writes(&s, n),
        "raw" => raw_writes(&s, 0, 1, n, &done),
        "raw-batch" => raw_writes(&s, 0, BATCH, n, &done),
        other => panic!("unknown path {other}"),
    }
}

/// Seconds for `threads` threads to make `n` single writes each on
/// `path` ("raw" or "safe"), each on its own queue pair, all on one CQ of
/// the null provider: from the first thread's start to the last one's end,
/// each read by the thread itself (the main thread may be descheduled
/// after the start).
fn threaded(path: &str, threads: usize, n: usize) -> f64 {
    let s = setup("null", threads);
    let done: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
    let start = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (s, done, start) = (&s, &done, &start);
                scope.spawn(move || {
                    start.wait();
                    let t0 = Instant::now();
                    match path {
                        "safe" => safe_writes(s, t, n),
                        _ => raw_writes(s, t, 1, n, done),
                    }
                    (t0, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    (last - first).as_secs_f64()
}

// --- the driver --------------------------------------------------------------

const PATHS: [&str; 7] = [
    "raw",
    "safe",
    "raw-batch",
    "safe-batch",
    "safe-inline",
    "raw-unsignaled",
    "safe-unsignaled",
];

/// Instructions of one run of this binary under callgrind, or `None` when
/// valgrind cannot run.
fn instructions(provider: &str, path: &str, n: usize) -> Option<u64> {
    let me = std::env::current_exe().ok()?;
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(me)
        .args(["--one", provider, path, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "per_op: {provider} {path} {n} failed under valgrind:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    // "==PID== Collected : 123456"
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(k) = args.iter().position(|a| a == "--one") {
        let n = args[k + 3].parse().unwrap();
        run(&args[k + 1], &args[k + 2], n);
        return;
    }
    let have_valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_valgrind {
        println!(
            "instructions per 64-byte RDMA WRITE (callgrind, runs of {} and {} writes, difference)",
            RUNS[0], RUNS[1]
        );
    } else {
        println!("valgrind not found: nanoseconds per write instead (a clock: noisy)");
    }
    for provider in ["null", "model"] {
        let mut per_op = [0f64; PATHS.len()];
        for (k, path) in PATHS.iter().enumerate() {
            per_op[k] = if have_valgrind {
                let counts = RUNS.map(|n| instructions(provider, path, n));
                match counts {
                    [Some(a), Some(b)] => (b as f64 - a as f64) / (RUNS[1] - RUNS[0]) as f64,
                    _ => f64::NAN,
                }
            } else {
                let n = RUNS[1];
                let t = Instant::now();
                run(provider, path, n);
                t.elapsed().as_nanos() as f64 / n as f64
            };
        }
        println!(
            "{provider:>5}: raw {:8.0}  safe {:8.0}  ({:.2}x, +{:.0})   per write of a batch of {BATCH}: raw {:6.0}  safe {:6.0}  ({:.2}x, +{:.0})",
            per_op[0],
            per_op[1],
            per_op[1] / per_op[0],
            per_op[1] - per_op[0],
            per_op[2],
            per_op[3],
            per_op[3] / per_op[2],
            per_op[3] - per_op[2],
        );
        println!(
            "{provider:>5}: safe inline write (write_inline, 64 B from the stack) {:8.0}  ({:.2}x raw, +{:.0})",
            per_op[4],
            per_op[4] / per_op[0],
            per_op[4] - per_op[0],
        );
        println!(
            "{provider:>5}: unsignaled single writes, every {BATCH}th signaled: raw {:6.0}  safe {:6.0}  ({:.2}x, +{:.0})",
            per_op[5],
            per_op[6],
            per_op[6] / per_op[5],
            per_op[6] - per_op[5],
        );
    }
    println!(
        "two threads, one CQ, null provider: aggregate write rate against one thread \
         (a clock: meaningful on a quiet machine only; {THREADED_WRITES} writes per thread, best of 3)"
    );
    for path in ["raw", "safe"] {
        let best = |threads| {
            (0..3)
                .map(|_| threaded(path, threads, THREADED_WRITES))
                .fold(f64::INFINITY, f64::min)
        };
        let (one, two) = (best(1), best(2));
        println!(
            "{path:>5}: 1 thread {:6.0} ns/write, 2 threads {:6.0} ns/write each: {:.2}x the rate of one",
            one * 1e9 / THREADED_WRITES as f64,
            two * 1e9 / THREADED_WRITES as f64,
            2.0 * one / two
        );
    }
}

//! Faults, hostile peers and bad input: nothing lost, nothing hung.
//!
//! The peer-process cases re-run this test binary as the peer (with
//! `SAFEVERBS_FAULT_PEER` set, `main` runs `peer_process` instead of the
//! tests), connect to it over TCP on loopback and RDMA over the soft
//! device, then kill it mid-stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{block_on, env_or, pattern, rss_kib, trials, Skip, Test};
use safeverbs::{
    exchange, tcp_connect, Access, CompletionQueue, Device, Error, ProtectionDomain, QueuePair, Rc,
    RemoteRegion, Rts, WcStatus,
};

const PEER_REGION: usize = 1 << 20;

/// The peer: exposes a 1 MiB remote-writable region, connects, says
/// "ready", writes a pattern into the survivor's region if asked, then
/// waits to be killed.
fn peer_process(port: &str) {
    let dev = Device::open_default().unwrap();
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(256).unwrap();
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(&cq)
        .recv_cq(&cq)
        .build()
        .unwrap();
    let region = pd
        .register_zeroed::<u8>(PEER_REGION, Access::remote_write())
        .unwrap();
    let mut s = tcp_connect(format!("127.0.0.1:{port}")).unwrap();
    s.write_all(&region.remote().encode()).unwrap();
    let mut theirs = [0u8; safeverbs::REMOTE_REGION_LEN];
    s.read_exact(&mut theirs).unwrap();
    let peer = exchange(&mut s, &qp.endpoint()).unwrap();
    let qp = qp.connect(&peer).unwrap();
    if let Ok(seed) = std::env::var("SAFEVERBS_FAULT_WRITE_SEED") {
        let target = RemoteRegion::<[u8]>::decode(&theirs).unwrap();
        let data = pattern(4096, seed.parse().unwrap());
        let src = pd.register_slice(&data, Access::local()).unwrap();
        let (res, _) = block_on(qp.write(
            src.slice_ro(0..4096).unwrap(),
            target.bytes(0..4096).unwrap(),
        ));
        res.unwrap();
    }
    s.write_all(b"R").unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

struct Peer {
    child: Child,
    qp: QueuePair<Rc, Rts>,
    remote: RemoteRegion<[u8]>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a peer process and connects `qp` (built with a short timeout) to
/// it. The peer writes `pattern(4096, seed)` into `ours` when `seed` is set.
fn start_peer(
    pd: &ProtectionDomain,
    cq: &CompletionQueue,
    ours: &RemoteRegion<[u8]>,
    seed: Option<u64>,
) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("SAFEVERBS_FAULT_PEER", port.to_string())
        .stdout(Stdio::null());
    if let Some(seed) = seed {
        cmd.env("SAFEVERBS_FAULT_WRITE_SEED", seed.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let mut s = accept_peer(&listener, &mut child);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut theirs = [0u8; safeverbs::REMOTE_REGION_LEN];
    s.read_exact(&mut theirs).unwrap();
    s.write_all(&ours.encode()).unwrap();
    let qp = pd
        .queue_pair::<Rc>()
        .send_cq(cq)
        .recv_cq(cq)
        .max_send_wr(256)
        .max_recv_wr(4)
        .timeout(10) // 4.2 ms
        .retry_count(3)
        .build()
        .unwrap();
    let peer = exchange(&mut s, &qp.endpoint()).unwrap();
    let qp = qp.connect(&peer).unwrap();
    let mut ready = [0u8; 1];
    s.read_exact(&mut ready).unwrap();
    Peer {
        child,
        qp,
        remote: RemoteRegion::decode(&theirs).unwrap(),
    }
}

/// Accepts the peer's connection, failing (not hanging) if the peer dies
/// or takes more than 30 s.
fn accept_peer(listener: &TcpListener, child: &mut Child) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the peer process exited before connecting: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the peer did not connect within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn setup(dev: &Device) -> (ProtectionDomain, CompletionQueue) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(1024).unwrap();
    (pd, cq)
}

fn peer_killed_with_1000_writes_in_flight_every_future_resolves(dev: &Device) -> Result<(), Skip> {
    common::real_device(
        dev,
        "the peer is another process, and the model lives in this one",
    )?;
    let (pd, cq) = setup(dev);
    let ours = pd
        .register_zeroed::<u8>(4096, Access::remote_write())
        .unwrap();
    let peer = start_peer(&pd, &cq, &ours.remote(), None);
    const N: usize = 1000;
    const SIZE: usize = 1024;
    let src = pd.register_zeroed::<u8>(N * SIZE, Access::local()).unwrap();
    let futs: Vec<_> = (0..N)
        .map(|i| {
            let remote = peer.remote.bytes(0..SIZE as u64).unwrap();
            peer.qp
                .write(src.bytes_ro(i * SIZE..(i + 1) * SIZE).unwrap(), remote)
        })
        .collect();
    let mut peer = peer;
    peer.child.kill().unwrap();
    peer.child.wait().unwrap();
    let killed = Instant::now();
    let results = block_on(futures::future::join_all(futs));
    let elapsed = killed.elapsed();
    let (mut ok, mut failed) = (0, 0);
    let mut statuses = std::collections::BTreeSet::new();
    for (res, seg) in results {
        assert_eq!(seg.len(), SIZE, "every segment comes back");
        match res {
            Ok(_) => ok += 1,
            Err(Error::Completion { status, .. }) => {
                failed += 1;
                statuses.insert(status.name());
                assert!(status == WcStatus::RETRY_EXC_ERR || status == WcStatus::WR_FLUSH_ERR);
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    println!(
        "peer killed: {ok} writes completed before, {failed} failed with {statuses:?}, \
         all {N} resolved {elapsed:?} after the kill"
    );
    assert!(failed > 0, "some writes must have been cut off");
    assert!(
        statuses.contains("RETRY_EXC_ERR"),
        "the first failure names the retry error"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "bounded by timeout x retries"
    );
    assert_eq!(cq.in_flight(), 0, "slot table empty");
    assert_eq!(src.live_segments(), 0);
    drop(peer);
    Ok(())
}

fn peer_restart_reconnects_and_earlier_data_is_intact(dev: &Device) -> Result<(), Skip> {
    common::real_device(
        dev,
        "the peer is another process, and the model lives in this one",
    )?;
    let (pd, cq) = setup(dev);
    let ours = pd
        .register_zeroed::<u8>(4096, Access::remote_write())
        .unwrap();
    let first = start_peer(&pd, &cq, &ours.remote(), Some(1));
    assert_eq!(ours.bytes_ro(0..4096).unwrap().to_vec(), pattern(4096, 1));
    drop(first); // killed
                 // Our region keeps what the dead peer wrote; a new peer reconnects to
                 // the same region and writes again.
    assert_eq!(ours.bytes_ro(0..4096).unwrap().to_vec(), pattern(4096, 1));
    let second = start_peer(&pd, &cq, &ours.remote(), Some(2));
    assert_eq!(ours.bytes_ro(0..4096).unwrap().to_vec(), pattern(4096, 2));
    // And we can write to it.
    let src = pd
        .register_slice(&pattern(4096, 3), Access::local())
        .unwrap();
    let (res, _) = block_on(second.qp.write(
        src.slice_ro(0..4096).unwrap(),
        second.remote.bytes(0..4096).unwrap(),
    ));
    res.unwrap();
    println!("restarted peer: old data intact, new connection writes");
    Ok(())
}

fn writes_beyond_the_grant_fail_on_the_nic_and_touch_nothing(dev: &Device) {
    let p = common::pair::<Rc>(dev, 8);
    // One 8 KiB buffer of which only the first 4 KiB are registered and
    // granted: the second half is the memory right past the grant.
    const HALF: usize = 4096;
    let base = Box::into_raw(vec![0u8; 2 * HALF].into_boxed_slice()).cast::<u8>();
    let addr = base as usize;
    let release = move || {
        let whole = std::ptr::slice_from_raw_parts_mut(addr as *mut u8, 2 * HALF);
        // SAFETY: the box leaked above, freed once, when the region (and
        // with it the registration) is gone.
        drop(unsafe { Box::from_raw(whole) });
    };
    // SAFETY: `base` is valid for 8 KiB until `release` frees it; the
    // region covers the first half, which nothing else touches.
    let granted = unsafe {
        p.pd.register_external::<u8>(
            std::ptr::NonNull::new(base).unwrap(),
            HALF,
            Access::remote_write(),
            release,
        )
    }
    .unwrap();
    // A hostile peer forges a descriptor twice as long from the real rkey.
    let mut forged = granted.remote().encode();
    forged[8..16].copy_from_slice(&(2 * HALF as u64).to_be_bytes());
    let forged = RemoteRegion::<[u8]>::decode(&forged).unwrap();
    let src =
        p.pd.register_slice(&[0xAAu8; 2 * HALF], Access::local())
            .unwrap();
    let (res, _) = block_on(p.a.write(
        src.slice_ro(0..2 * HALF).unwrap(),
        forged.bytes(0..2 * HALF as u64).unwrap(),
    ));
    let err = res.unwrap_err();
    println!("forged write past the grant: {err}");
    assert!(matches!(err, Error::Completion { status, .. } if status == WcStatus::REM_ACCESS_ERR));
    assert!(
        granted
            .bytes_ro(0..HALF)
            .unwrap()
            .to_vec()
            .iter()
            .all(|&b| b == 0),
        "the refused write left the granted bytes alone"
    );
    // SAFETY: the second half is inside the live allocation and belongs to
    // no region: only a NIC ignoring the grant could have written it.
    let past = unsafe { std::slice::from_raw_parts(base.add(HALF), HALF) };
    assert!(
        past.iter().all(|&b| b == 0),
        "memory past the grant is untouched"
    );
    drop(granted);

    // A stale rkey: the region is gone.
    let p = common::pair::<Rc>(dev, 8);
    let gone =
        p.pd.register_zeroed::<u8>(4096, Access::remote_write())
            .unwrap();
    let stale = gone.remote();
    drop(gone);
    let src = p.pd.register_slice(&[1u8; 64], Access::local()).unwrap();
    let (res, _) = block_on(p.a.write(src.slice_ro(0..64).unwrap(), stale.bytes(0..64).unwrap()));
    let err = res.unwrap_err();
    println!("write with a stale rkey: {err}");
    assert!(matches!(err, Error::Completion { status, .. } if status == WcStatus::REM_ACCESS_ERR));
}

fn backpressure_32_tasks_x_10000_ops_on_a_send_queue_of_16(dev: &Device) {
    let p = std::sync::Arc::new(common::pair::<Rc>(dev, 16));
    let tasks = env_or("SAFEVERBS_BACKPRESSURE_TASKS", 32) as usize;
    let per_task = env_or("SAFEVERBS_BACKPRESSURE_OPS", 10_000) as usize;
    let dst =
        p.pd.register_zeroed::<u8>(64 * tasks, Access::remote_write())
            .unwrap();
    let rss_before = rss_kib();
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let p = p.clone();
            let remote = dst
                .remote()
                .slice((t * 64) as u64..((t + 1) * 64) as u64)
                .unwrap();
            handles.push(tokio::spawn(async move {
                let src = p.pd.register_zeroed::<u8>(64, Access::local()).unwrap();
                let mut seg = src.slice_rw(0..64).unwrap();
                for i in 0..per_task {
                    seg.fill((t + i) as u8);
                    let (res, back) = p.a.write(seg, remote).await;
                    res.unwrap();
                    seg = back;
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let rss_after = rss_kib();
    let ops = tasks * per_task;
    println!(
        "backpressure: {ops} writes from {tasks} tasks on a send queue of 16 in {:?}; \
         RSS {rss_before} KiB -> {rss_after} KiB",
        started.elapsed()
    );
    for t in 0..tasks {
        assert_eq!(
            dst.bytes_ro(t * 64..(t + 1) * 64).unwrap().to_vec(),
            vec![(t + per_task - 1) as u8; 64]
        );
    }
    assert_eq!(p.cq.in_flight(), 0);
    assert!(rss_after < rss_before + 16 * 1024, "memory stays flat");
}

/// This thread's capability sets, as `capget` reports them (v3 layout).
#[derive(Clone, Copy)]
struct Caps {
    data: [CapData; 2],
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_IPC_LOCK: u32 = 14;

fn cap_header() -> CapHeader {
    CapHeader {
        version: 0x2008_0522,
        pid: 0,
    }
}

impl Caps {
    fn get() -> Result<Self, String> {
        let mut caps = Caps {
            data: [CapData::default(); 2],
        };
        // SAFETY: capget with a v3 header and room for two data words.
        let rc =
            unsafe { libc::syscall(libc::SYS_capget, &mut cap_header(), caps.data.as_mut_ptr()) };
        if rc != 0 {
            return Err(format!("capget: {}", std::io::Error::last_os_error()));
        }
        Ok(caps)
    }

    fn set(&self) -> Result<(), String> {
        // SAFETY: capset with a v3 header and two data words.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut cap_header(), self.data.as_ptr()) };
        if rc != 0 {
            return Err(format!("capset: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// Takes CAP_IPC_LOCK (which lets root lock memory past RLIMIT_MEMLOCK)
/// out of this thread's effective set; returns the sets to restore.
/// Capabilities are per thread on Linux, so this affects only the caller.
fn drop_ipc_lock() -> Result<Caps, String> {
    let saved = Caps::get()?;
    let mut without = saved;
    without.data[0].effective &= !(1 << CAP_IPC_LOCK);
    without.set()?;
    Ok(saved)
}

/// Rule: registering more than RLIMIT_MEMLOCK allows is an error that
/// names the limit. Root passes the limit through CAP_IPC_LOCK, so the test
/// drops it for its thread, as an unprivileged service runs; where that is
/// refused and the registration then succeeds, nothing could be checked:
/// the test is skipped, saying why (it does not pass).
fn registering_beyond_the_memlock_limit_names_the_limit(dev: &Device) -> Result<(), Skip> {
    common::real_device(
        dev,
        "the kernel pins registered memory against RLIMIT_MEMLOCK; the model does not",
    )?;
    let pd = dev.alloc_pd().unwrap();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-parameter.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) };
    assert_eq!(rc, 0);
    let low = libc::rlimit {
        rlim_cur: 1 << 20,
        rlim_max: old.rlim_max,
    };
    // SAFETY: lowering our own soft limit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &low) };
    assert_eq!(rc, 0);
    let dropped = drop_ipc_lock();
    let res = pd.register_zeroed::<u8>(64 << 20, Access::local());
    let restored = dropped.as_ref().map(Caps::set);
    // SAFETY: restoring the saved limit.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    if let Ok(Err(e)) = restored {
        panic!("could not give this thread its capabilities back: {e}");
    }
    match (res, dropped) {
        (Err(e), _) => {
            println!("64 MiB over a 1 MiB memlock limit: {e}");
            assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
            Ok(())
        }
        (Ok(_), Ok(_)) => {
            panic!("with CAP_IPC_LOCK dropped, 64 MiB over a 1 MiB memlock limit registered")
        }
        (Ok(_), Err(why)) => Err(Skip(format!(
            "CAP_IPC_LOCK could not be dropped ({why}), so the registration past the memlock \
             limit succeeded: the limit's error cannot be seen here"
        ))),
    }
}

/// Rule: a completion queue or a queue depth over the device's limits is
/// an error that names the limit, not an opaque errno.
fn queue_sizes_over_the_device_limits_name_the_limit(dev: &Device) {
    let limits = dev.limits();
    let max_cqe = limits.max_cqe as usize;
    let err = dev.create_cq(max_cqe + 1).unwrap_err();
    println!("over max_cqe: {err}");
    assert!(err.to_string().contains(&max_cqe.to_string()), "{err}");
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(64).unwrap();
    let over = limits
        .max_qp_wr
        .checked_add(1)
        .expect("max_qp_wr below u32::MAX");
    for (what, send, recv) in [("max_send_wr", over, 1), ("max_recv_wr", 1, over)] {
        let err = pd
            .queue_pair::<Rc>()
            .send_cq(&cq)
            .recv_cq(&cq)
            .max_send_wr(send)
            .max_recv_wr(recv)
            .build()
            .unwrap_err();
        println!("{what} over max_qp_wr: {err}");
        let text = err.to_string();
        assert!(
            text.contains(what) && text.contains(&limits.max_qp_wr.to_string()),
            "the error names {what} and the limit {}: {text}",
            limits.max_qp_wr
        );
    }
    // The limit itself is allowed (where it is small enough to build here).
    let max = limits.max_qp_wr;
    if max <= 1 << 16 {
        let big = dev.create_cq(2 * max as usize).unwrap();
        pd.queue_pair::<Rc>()
            .send_cq(&big)
            .recv_cq(&big)
            .max_send_wr(max)
            .max_recv_wr(max)
            .build()
            .unwrap_or_else(|e| panic!("queues of max_qp_wr = {max}: {e}"));
    }
}

/// With the default retry counts, a peer that never posts a receive, and a
/// peer that is gone, end in a named completion error, not a wait for ever.
fn default_retry_counts_give_up_on_a_silent_or_gone_peer(dev: &Device) {
    let p = common::pair::<Rc>(dev, 8);
    let msg = p.pd.register([1u8; 64], Access::local()).unwrap();
    // `b` posts no receive.
    let started = Instant::now();
    let (res, seg) = block_on(
        p.a.send(msg.read_only().unwrap())
            .timeout(Duration::from_secs(10)),
    );
    let err = res.unwrap_err();
    let waited = started.elapsed();
    println!("silent peer: after {waited:?}: {err}");
    assert!(
        matches!(err, Error::Completion { status, .. } if status == WcStatus::RNR_RETRY_EXC_ERR),
        "{err}"
    );
    // The receiver's RNR timer is the one asked for (default 10.24 ms, 6
    // retries: about 60 ms), not the verbs' code 0 (655 ms each: 4 s).
    assert!(
        waited < Duration::from_secs(2),
        "the RNR retries took {waited:?}: was the receiver's min_rnr_timer set?"
    );
    drop(seg);
    // A peer whose queue pair is destroyed.
    let p = common::pair::<Rc>(dev, 8);
    let msg = p.pd.register([2u8; 64], Access::local()).unwrap();
    let common::Pair { a, b, .. } = p;
    drop(b); // nothing in flight: destroyed at once
    let started = Instant::now();
    let (res, _) = block_on(
        a.send(msg.read_only().unwrap())
            .timeout(Duration::from_secs(10)),
    );
    let err = res.unwrap_err();
    println!("gone peer: after {:?}: {err}", started.elapsed());
    assert!(
        matches!(err, Error::Completion { status, .. } if status == WcStatus::RETRY_EXC_ERR),
        "{err}"
    );
}

fn main() -> std::process::ExitCode {
    // Re-run as the peer process of the peer tests.
    if let Ok(port) = std::env::var("SAFEVERBS_FAULT_PEER") {
        peer_process(&port);
        return std::process::ExitCode::SUCCESS;
    }
    common::run(trials![
        device peer_killed_with_1000_writes_in_flight_every_future_resolves,
        device peer_restart_reconnects_and_earlier_data_is_intact,
        device writes_beyond_the_grant_fail_on_the_nic_and_touch_nothing,
        device backpressure_32_tasks_x_10000_ops_on_a_send_queue_of_16,
        device registering_beyond_the_memlock_limit_names_the_limit,
        device queue_sizes_over_the_device_limits_name_the_limit,
        device default_retry_counts_give_up_on_a_silent_or_gone_peer,
    ])
}

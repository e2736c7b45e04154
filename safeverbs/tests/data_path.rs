//! Data-path tests on a real (soft) device: every byte that arrives is
//! checked. On a machine without a device they print why they skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{block_on, pair, pattern, trials, Test};
use safeverbs::{Access, Device, Error, Opcode, Rc, Transport, Uc};

const ALL_SIZES: [usize; 6] = [1, 64, 4096, 65_536, 262_144, 1 << 20];
/// Every size, or up to 4 KiB under Miri.
const SIZES: &[usize] = if cfg!(miri) {
    ALL_SIZES.split_at(3).0
} else {
    &ALL_SIZES
};

fn send_recv_sizes<T: Transport>(dev: &Device) {
    let p = pair::<T>(dev, 16);
    for (i, &size) in SIZES.iter().enumerate() {
        let data = pattern(size, i as u64);
        let src = p.pd.register_slice(&data, Access::local()).unwrap();
        let dst = p.pd.register_zeroed::<u8>(size, Access::local()).unwrap();
        let recv = p.b.recv(dst.slice_rw(0..size).unwrap());
        let (sent, _src_seg) = block_on(p.a.send(src.slice_ro(0..size).unwrap()));
        let (got, seg) = block_on(recv);
        let sent = sent.unwrap();
        let got = got.unwrap();
        assert_eq!(sent.opcode, Opcode::Send);
        assert_eq!((got.opcode, got.byte_len as usize), (Opcode::Recv, size));
        assert_eq!(
            seg.to_vec(),
            data,
            "{size} bytes over {:?}",
            T::default_name()
        );
    }
    assert_eq!(p.cq.in_flight(), 0);
    println!(
        "send/recv {:?}: sizes {SIZES:?} arrived intact",
        T::default_name()
    );
}

/// The transport's name in test output.
trait Name {
    fn default_name() -> &'static str;
}
impl<T: Transport> Name for T {
    fn default_name() -> &'static str {
        std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("?")
    }
}

fn rc_send_recv_1b_to_1mib(dev: &Device) {
    send_recv_sizes::<Rc>(dev);
}

fn uc_send_recv_1b_to_1mib(dev: &Device) {
    send_recv_sizes::<Uc>(dev);
}

fn write_and_write_imm<T: Transport>(dev: &Device) {
    let p = pair::<T>(dev, 16);
    for (i, &size) in SIZES.iter().enumerate() {
        let data = pattern(size, 100 + i as u64);
        let src = p.pd.register_slice(&data, Access::local()).unwrap();
        let target =
            p.pd.register_zeroed::<u8>(size, Access::remote_write())
                .unwrap();
        let remote = target.remote().slice(0..size as u64).unwrap();
        let (res, _) = block_on(p.a.write(src.slice_ro(0..size).unwrap(), remote));
        assert_eq!(res.unwrap().opcode, Opcode::Write);
        // The write has landed for RC when it completes; for UC the send
        // completion only says it left, so wait with a write-with-imm
        // behind it (ordered on the same QP) that the peer receives.
        let flag = p.pd.register([0u8; 8], Access::local()).unwrap();
        let recv = p.b.recv(flag.read_write().unwrap());
        let tail = p.pd.register([7u8; 8], Access::local()).unwrap();
        let tail_target = p.pd.register([0u8; 8], Access::remote_write()).unwrap();
        let (res, _) = block_on(p.a.write_with_imm(
            tail.read_only().unwrap(),
            tail_target.remote().whole(),
            0xC0FFEE + i as u32,
        ));
        res.unwrap();
        let (got, _) = block_on(recv);
        let got = got.unwrap();
        assert_eq!(got.opcode, Opcode::RecvWithImm);
        assert_eq!(got.imm, Some(0xC0FFEE + i as u32));
        assert_eq!(
            target.bytes_ro(0..size).unwrap().to_vec(),
            data,
            "write of {size} bytes"
        );
        assert_eq!(tail_target.read_only().unwrap().read(), [7u8; 8]);
    }
    println!(
        "write + write_with_imm {:?}: sizes {SIZES:?} intact",
        T::default_name()
    );
}

fn rc_write_and_write_with_imm(dev: &Device) {
    write_and_write_imm::<Rc>(dev);
}

fn uc_write_and_write_with_imm(dev: &Device) {
    write_and_write_imm::<Uc>(dev);
}

fn rc_read_1b_to_1mib(dev: &Device) {
    let p = pair::<Rc>(dev, 16);
    for (i, &size) in SIZES.iter().enumerate() {
        let data = pattern(size, 200 + i as u64);
        let source = p.pd.register_slice(&data, Access::remote_read()).unwrap();
        let dst = p.pd.register_zeroed::<u8>(size, Access::local()).unwrap();
        let (res, seg) = block_on(p.a.read(
            dst.slice_rw(0..size).unwrap(),
            source.remote().slice(0..size as u64).unwrap(),
        ));
        assert_eq!(res.unwrap().opcode, Opcode::Read);
        assert_eq!(seg.to_vec(), data);
    }
    println!("RDMA READ: sizes {SIZES:?} intact");
}

fn send_with_imm_delivers_the_immediate(dev: &Device) {
    let p = pair::<Rc>(dev, 4);
    let src =
        p.pd.register(0x1122_3344_5566_7788u64, Access::local())
            .unwrap();
    let dst = p.pd.register(0u64, Access::local()).unwrap();
    let recv = p.b.recv(dst.read_write().unwrap());
    let (res, _) = block_on(p.a.send_with_imm(src.read_only().unwrap(), 42));
    res.unwrap();
    let (got, seg) = block_on(recv);
    assert_eq!(got.unwrap().imm, Some(42));
    assert_eq!(seg.read(), 0x1122_3344_5566_7788);
}

fn out_of_bounds_remote_write_fails_before_posting(dev: &Device) {
    let p = pair::<Rc>(dev, 4);
    let src = p.pd.register_zeroed::<u8>(128, Access::local()).unwrap();
    let target =
        p.pd.register_zeroed::<u8>(64, Access::remote_write())
            .unwrap();
    assert!(matches!(
        target.remote().slice(0..65),
        Err(Error::RemoteOutOfBounds { granted: 64, .. })
    ));
    let remote = target.remote().slice(0..64).unwrap();
    let (res, seg) = block_on(p.a.write(src.slice_ro(0..128).unwrap(), remote));
    let err = res.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RemoteOutOfBounds {
                len: 128,
                granted: 64,
                ..
            }
        ),
        "{err}"
    );
    println!("refused: {err}");
    assert_eq!(seg.len(), 128, "the segment comes back");
    assert_eq!(p.cq.in_flight(), 0, "nothing was posted");
}

fn many_in_flight_from_tasks_on_a_multithreaded_tokio_runtime(dev: &Device) {
    let p = Arc::new(pair::<Rc>(dev, 64));
    const TASKS: usize = 8;
    let per_task = common::scale(200);
    const SIZE: usize = 256;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let p = p.clone();
            handles.push(tokio::spawn(async move {
                let src = p.pd.register_zeroed::<u8>(SIZE, Access::local()).unwrap();
                let dst =
                    p.pd.register_zeroed::<u8>(SIZE, Access::remote_write())
                        .unwrap();
                let mut seg = src.slice_rw(0..SIZE).unwrap();
                for i in 0..per_task {
                    let data = pattern(SIZE, (t * per_task + i) as u64);
                    seg.copy_from(&data).unwrap();
                    let (res, back) =
                        p.a.write(seg, dst.remote().slice(0..SIZE as u64).unwrap())
                            .await;
                    res.unwrap();
                    seg = back;
                    assert_eq!(dst.bytes_ro(0..SIZE).unwrap().to_vec(), data);
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(p.cq.in_flight(), 0);
    println!("{TASKS} tokio tasks x {per_task} RC writes checked");
}

fn many_in_flight_on_futures_executor(dev: &Device) {
    let p = pair::<Uc>(dev, 32);
    const N: usize = 32;
    const SIZE: usize = 1024;
    let src =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    let dst =
        p.pd.register_zeroed::<u8>(N * SIZE, Access::local())
            .unwrap();
    for round in 0..common::scale(10) as u64 {
        let mut recvs = Vec::new();
        let mut sends = Vec::new();
        for i in 0..N {
            let mut s = src.slice_rw(i * SIZE..(i + 1) * SIZE).unwrap();
            s.copy_from(&pattern(SIZE, round * 1000 + i as u64))
                .unwrap();
            recvs.push(p.b.recv(dst.slice_rw(i * SIZE..(i + 1) * SIZE).unwrap()));
            sends.push(p.a.send(s));
        }
        let sent = block_on(futures::future::join_all(sends));
        let got = block_on(futures::future::join_all(recvs));
        for (res, _) in sent {
            res.unwrap();
        }
        for (i, (res, seg)) in got.into_iter().enumerate() {
            res.unwrap();
            assert_eq!(seg.to_vec(), pattern(SIZE, round * 1000 + i as u64));
        }
    }
    assert_eq!(p.cq.in_flight(), 0);
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device rc_send_recv_1b_to_1mib,
        device uc_send_recv_1b_to_1mib,
        device rc_write_and_write_with_imm,
        device uc_write_and_write_with_imm,
        device rc_read_1b_to_1mib,
        device send_with_imm_delivers_the_immediate,
        device out_of_bounds_remote_write_fails_before_posting,
        device many_in_flight_from_tasks_on_a_multithreaded_tokio_runtime,
        device many_in_flight_on_futures_executor,
    ])
}

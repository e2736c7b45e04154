//! Event-mode completion queues: futures sleep until a driver (notifier
//! thread, or a tokio task) wakes them. On a real (soft) device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{device, pattern};
use futures::executor::block_on;
use safeverbs::{Access, CqMode, Device, Rc};

fn run_pingpongs(dev: &Device, mode: CqMode, rounds: u64) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq_with(64, mode).unwrap();
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
    let (a, b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
    let src = pd.register_zeroed::<u8>(512, Access::local()).unwrap();
    let dst = pd.register_zeroed::<u8>(512, Access::local()).unwrap();
    let mut s = src.slice_rw(0..512).unwrap();
    let mut d = dst.slice_rw(0..512).unwrap();
    for round in 0..rounds {
        let data = pattern(512, round);
        s.copy_from(&data).unwrap();
        let recv = b.recv(d);
        let (res, back) = block_on(a.send(s));
        res.unwrap();
        s = back;
        let (res, back) = block_on(recv);
        res.unwrap();
        assert_eq!(back.to_vec(), data);
        d = back;
    }
    assert_eq!(cq.in_flight(), 0);
}

#[test]
fn notifier_thread_wakes_sleeping_futures() {
    let Some(dev) = device() else { return };
    run_pingpongs(&dev, CqMode::Notifier, 200);
    println!("200 send/recv round trips woken by the notifier thread");
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_driver_wakes_tasks() {
    let Some(dev) = device() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq_with(256, CqMode::Tokio).unwrap();
        let build = || {
            pd.queue_pair::<Rc>()
                .send_cq(&cq)
                .recv_cq(&cq)
                .max_send_wr(32)
                .max_recv_wr(32)
                .build()
                .unwrap()
        };
        let (a, b) = (build(), build());
        let (ea, eb) = (a.endpoint(), b.endpoint());
        let (a, b) = (a.connect(&eb).unwrap(), b.connect(&ea).unwrap());
        let dst = pd
            .register_zeroed::<u8>(64 * 32, Access::remote_write())
            .unwrap();
        let a = std::sync::Arc::new(a);
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let a = a.clone();
            let pd = pd.clone();
            let remote = dst.remote().slice(t * 64..(t + 1) * 64).unwrap();
            tasks.push(tokio::spawn(async move {
                let src = pd.register_zeroed::<u8>(64, Access::local()).unwrap();
                let mut seg = src.slice_rw(0..64).unwrap();
                for i in 0..100u64 {
                    seg.copy_from(&pattern(64, t * 1000 + i)).unwrap();
                    let (res, back) = a.write(seg, remote).await;
                    res.unwrap();
                    seg = back;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for t in 0..8u64 {
            let got = dst
                .bytes_ro((t * 64) as usize..((t + 1) * 64) as usize)
                .unwrap()
                .to_vec();
            assert_eq!(got, pattern(64, t * 1000 + 99));
        }
        drop(b);
    });
    println!("8 tokio tasks x 100 RC writes woken through AsyncFd");
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_mode_outside_a_runtime_is_a_clear_error() {
    let Some(dev) = device() else { return };
    let err = dev.create_cq_with(16, CqMode::Tokio).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

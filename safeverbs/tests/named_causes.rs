//! Errors name their cause, on a device: a message longer than the
//! receive buffer, an endpoint without an address, a peer that declares no
//! layout. Without a device each test skips, saying why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{pair, pattern, trials, Test};
use futures::task::noop_waker;
use safeverbs::{Access, DecodeError, Device, Endpoint, Error, Rc};

/// Polls `op` to completion, or panics after 30 s.
fn wait<F: Future>(op: F) -> F::Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut op = pin!(op);
    loop {
        if let Poll::Ready(out) = op.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(Instant::now() < deadline, "no completion in 30 s");
        std::thread::yield_now();
    }
}

/// Rule: a message longer than the receive buffer says so, whichever
/// status the provider reports it with (rdma_rxe: LOC_QP_OP_ERR).
fn a_message_longer_than_the_receive_buffer_says_so(dev: &Device) {
    let p = pair::<Rc>(dev, 4);
    let small = p.pd.register([0u8; 16], Access::local()).unwrap();
    let big =
        p.pd.register_slice(&pattern(64, 3), Access::local())
            .unwrap();
    let recv = p.b.recv(small.read_write().unwrap());
    let (sent, _) = wait(p.a.send(big.slice_ro(0..64).unwrap()));
    let (received, back) = wait(recv);
    let err = received.expect_err("64 bytes into 16");
    let text = err.to_string();
    println!("receive: {text}; send: {sent:?}");
    assert!(matches!(err, Error::Completion { .. }), "{text}");
    assert!(text.contains("longer than the receive buffer"), "{text}");
    assert_eq!(back.len_bytes(), 16, "the receive's segment comes back");
}

/// Rule: an endpoint without an address (all-zero GID, LID 0) is refused
/// by name before the verb, which would say only EINVAL.
fn an_endpoint_without_an_address_is_refused_by_name(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(8).unwrap();
    let build = || {
        pd.queue_pair::<Rc>()
            .send_cq(&cq)
            .recv_cq(&cq)
            .max_send_wr(2)
            .max_recv_wr(2)
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let peer = Endpoint {
        gid: [0; 16],
        lid: 0,
        ..b.endpoint()
    };
    let err = a.connect(&peer).expect_err("no address");
    println!("{err}");
    match err {
        Error::Endpoint(DecodeError::InvalidField { field: "gid", .. }) => {}
        other => panic!("expected the gid to be named, got {other:?}"),
    }
}

/// Rule: a bare queue pair meeting a declared one is told that one side
/// declares nothing, not "for nothing declared".
fn a_queue_pair_that_declares_nothing_is_named_as_such(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(8).unwrap();
    let build = |fp: u64| {
        pd.queue_pair::<Rc>()
            .send_cq(&cq)
            .recv_cq(&cq)
            .max_send_wr(2)
            .max_recv_wr(2)
            .fingerprint(fp, "connection `Kv`")
            .build()
            .unwrap()
    };
    let (bare, declared) = (build(0), build(0x1234));
    let (eb, ed) = (bare.endpoint(), declared.endpoint());
    let err = bare.connect(&ed).expect_err("undeclared");
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::Undeclared { local: 0, .. }), "{text}");
    assert!(
        text.contains("this queue pair declares no layout"),
        "{text}"
    );
    assert!(!text.contains("nothing declared"), "{text}");
    let text = declared.connect(&eb).expect_err("undeclared").to_string();
    assert!(
        text.contains("the peer's queue pair declares no layout"),
        "{text}"
    );
    assert!(text.contains("connection `Kv`"), "{text}");
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device a_message_longer_than_the_receive_buffer_says_so,
        device an_endpoint_without_an_address_is_refused_by_name,
        device a_queue_pair_that_declares_nothing_is_named_as_such,
    ])
}

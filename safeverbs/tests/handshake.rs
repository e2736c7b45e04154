//! The connection handshake against a fake peer over real TCP, on a
//! device: what a peer that lies, stalls or plays the wrong part gets to
//! see, and how soon this end names the problem. Without a device the
//! harness skips each test, saying why. (The same steps without a device are unit tests
//! of the `connection` module.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{trials, Test};
use safeverbs::{
    connection, Declaration, Device, Endpoint, Error, RdmaPod, TransportKind, ENCODED_LEN,
};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Request {
    seq: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    last_seen: u64,
}

connection! {
    struct Kv: safeverbs::Rc {
        client sends Request;
        server sends Request, exposes Mailbox;
    }
}

/// An endpoint a fake client sends: right declaration, `transport`.
fn fake_endpoint(transport: TransportKind) -> [u8; ENCODED_LEN] {
    Endpoint {
        transport,
        qpn: 0x4242,
        psn: 7,
        lid: 0,
        gid: [0xfe; 16],
        mtu: 1024,
        port: 1,
        fingerprint: Kv::FINGERPRINT,
    }
    .encode()
}

/// Runs a real server end of `Kv` against a fake client that sends
/// `sent`, then stays silent with the stream open until the server is done.
/// Returns the server's result, how long it took, and every byte the fake
/// client received.
fn against(dev: &Device, sent: Vec<u8>, timeout: Option<Duration>) -> (Error, Duration, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let fake = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&sent).unwrap();
        // Silent until the server has given up (or 60 s).
        let _ = done_rx.recv_timeout(Duration::from_secs(60));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        got
    });
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(128).unwrap();
    let end = Kv::server(&pd).cq(&cq).prepare().unwrap();
    let (stream, _) = listener.accept().unwrap();
    let start = Instant::now();
    let result = match timeout {
        Some(t) => end.connect_within(stream, t),
        None => end.connect(stream),
    };
    let took = start.elapsed();
    let _ = done_tx.send(());
    let got = fake.join().unwrap();
    let err = result.expect_err("the fake client must be refused");
    println!("after {took:?}: {err}");
    (err, took, got)
}

/// Rule: the server checks everything about its peer (here its
/// transport) before it discloses the address and rkey of what it exposes.
fn a_peer_with_the_wrong_transport_learns_nothing_of_the_region(dev: &Device) {
    let (err, _, got) = against(dev, fake_endpoint(TransportKind::Uc).to_vec(), None);
    assert!(
        matches!(err, Error::TransportMismatch { .. }),
        "expected TransportMismatch, got {err}"
    );
    assert_eq!(
        got.len(),
        ENCODED_LEN,
        "only the server's endpoint may reach a refused peer, got {} bytes",
        got.len()
    );
}

/// Rule: a hello that is not SafeVerbs' is refused at its first wrong
/// byte, not after the handshake's timeout.
fn a_foreign_hello_is_refused_at_once(dev: &Device) {
    let mut sent = fake_endpoint(TransportKind::Rc).to_vec();
    sent.extend_from_slice(b"HTTP");
    let (err, took, _) = against(dev, sent, None);
    assert!(err.to_string().contains("not version 1"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Rule: a silent peer is a named timeout after the handshake's one
/// bound, not an EAGAIN.
fn a_silent_peer_is_a_named_timeout(dev: &Device) {
    let bound = Duration::from_secs(2);
    let (err, took, _) = against(dev, Vec::new(), Some(bound));
    assert!(matches!(err, Error::Timeout(d, _) if d == bound), "{err}");
    assert_eq!(
        err.to_string(),
        "timed out after 2s waiting for the peer's endpoint"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device a_peer_with_the_wrong_transport_learns_nothing_of_the_region,
        device a_foreign_hello_is_refused_at_once,
        device a_silent_peer_is_a_named_timeout,
    ])
}

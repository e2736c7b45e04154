//! Declared connections on a device: a client and a server end in one
//! process, on two threads, handshaking over TCP on loopback. Messages go
//! both ways with every byte checked; the client RDMA-writes (and reads
//! back) a field of the mailbox the server exposes; a peer with another
//! declaration, or the same role, is refused. Without a device each test
//! skips, saying why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::{pattern, trials, Test};
use futures::task::noop_waker;
use safeverbs::{connection, tcp_connect, Access, Declaration, Device, Error, Rc, RdmaPod};

const PAYLOAD: usize = 56;
const ROUNDS: u64 = 32;
const DEPTH: u32 = 4;
/// However a test goes wrong, it fails within this, rather than hang with
/// one thread waiting for the other.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Request {
    seq: u64,
    payload: [u8; PAYLOAD],
}

/// `Request` with a field renamed: same size, another layout fingerprint.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct OtherRequest {
    seq: u64,
    body: [u8; PAYLOAD],
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Response {
    seq: u64,
    /// The request's payload, reversed.
    echo: [u8; PAYLOAD],
    /// The sum of the request's payload bytes.
    sum: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    last_seen: u64,
    note: [u8; 24],
}

mod kv {
    use super::*;
    connection! {
        /// The declaration both ends of the working tests use.
        pub(crate) struct Kv: Rc {
            client sends Request;
            server sends Response, exposes Mailbox;
        }
    }
}

mod other {
    use super::*;
    connection! {
        /// The same name and shape as `kv::Kv`, but the client sends
        /// another message type.
        pub(crate) struct Kv: Rc {
            client sends OtherRequest;
            server sends Response, exposes Mailbox;
        }
    }
}

use kv::Kv;

const NOTE: [u8; 24] = *b"written by RDMA WRITE...";

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let addr = listener.local_addr().expect("local_addr");
    (listener, addr)
}

/// Accepts the peer, or panics after [`PATIENCE`] (say, when the other
/// thread failed before connecting).
fn accept(listener: &TcpListener) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no peer connected: {e}"),
        }
    }
}

/// Polls `op` to completion (the completion queues are in busy-poll mode,
/// so polling makes progress), or panics after [`PATIENCE`].
fn wait<F: Future>(op: F) -> F::Output {
    let deadline = Instant::now() + PATIENCE;
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut op = pin!(op);
    loop {
        if let Poll::Ready(out) = op.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(Instant::now() < deadline, "no completion in {PATIENCE:?}");
        thread::yield_now();
    }
}

fn request_payload(seq: u64) -> [u8; PAYLOAD] {
    pattern(PAYLOAD, seq).try_into().expect("PAYLOAD bytes")
}

/// The server: answers `ROUNDS` requests, checking each byte, then waits
/// for the last request and returns what the client wrote into the
/// mailbox.
fn serve(dev: &Device, listener: &TcpListener) -> Result<Mailbox, Error> {
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2 * DEPTH as usize)?;
    let end = Kv::server(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(DEPTH).max_recv_wr(DEPTH))
        .prepare()?;
    let requests = pd.register_zeroed::<Request>(DEPTH as usize, Access::local())?;
    let mut inbox = VecDeque::new();
    for i in 0..DEPTH as usize {
        inbox.push_back(end.recv(requests.elem_rw(i)?));
    }
    let conn = end.connect(accept(listener))?;

    let responses = pd.register(Response::zeroed(), Access::local())?;
    let mut out = responses.read_write()?;
    for seq in 1..=ROUNDS + 1 {
        let (done, slot) = wait(inbox.pop_front().expect("a posted receive"));
        let wc = done?;
        assert_eq!(wc.byte_len as usize, size_of::<Request>());
        let req = slot.read();
        assert_eq!(req.seq, seq, "requests arrive in order");
        assert_eq!(req.payload, request_payload(seq), "request {seq} bytes");
        inbox.push_back(conn.recv(slot));
        if seq > ROUNDS {
            break; // The last one says the mailbox is written.
        }
        let mut echo = req.payload;
        echo.reverse();
        let sum = req.payload.iter().map(|&b| u64::from(b)).sum();
        out.write(Response { seq, echo, sum });
        let (done, back) = wait(conn.send(out));
        done?;
        out = back;
    }
    // RC: the client's writes came before its last send, so they landed.
    Ok(conn.exposed().read_only()?.read())
}

fn round_trip_with_checked_bytes_and_a_write_into_the_exposed_mailbox(dev: &Device) {
    let (listener, addr) = listener();
    let mailbox = thread::scope(|s| {
        let server = s.spawn(|| serve(dev, &listener));

        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq(2 * DEPTH as usize).unwrap();
        let end = Kv::client(&pd)
            .cq(&cq)
            .queue_pair(|qp| qp.max_send_wr(DEPTH).max_recv_wr(DEPTH))
            .prepare()
            .unwrap();
        let responses = pd.register(Response::zeroed(), Access::local()).unwrap();
        let mut response = Some(end.recv(responses.read_write().unwrap()));
        let conn = end.connect(tcp_connect(addr).unwrap()).unwrap();
        assert_eq!(conn.peer().len_bytes() as usize, size_of::<Mailbox>());

        let requests = pd.register(Request::zeroed(), Access::local()).unwrap();
        let mut out = requests.read_write().unwrap();
        let mut last_seen = 0;
        for seq in 1..=ROUNDS {
            out.write(Request {
                seq,
                payload: request_payload(seq),
            });
            let (done, back) = wait(conn.send(out));
            done.unwrap();
            out = back;
            let (done, slot) = wait(response.take().unwrap());
            assert_eq!(done.unwrap().byte_len as usize, size_of::<Response>());
            let resp = slot.read();
            let mut want = request_payload(seq);
            want.reverse();
            assert_eq!(resp.seq, seq);
            assert_eq!(resp.echo, want, "response {seq} bytes");
            assert_eq!(resp.sum, want.iter().map(|&b| u64::from(b)).sum::<u64>());
            last_seen = resp.seq;
            response = Some(conn.recv(slot));
        }

        // RDMA WRITE into the fields the server exposes, then READ one back.
        let mine = pd
            .register(
                Mailbox {
                    last_seen,
                    note: NOTE,
                },
                Access::local(),
            )
            .unwrap();
        let fields = conn.peer().fields();
        let (done, _) = wait(conn.write(mine.fields().note.read_only().unwrap(), fields.note));
        done.unwrap();
        let (done, _) = wait(conn.write(
            mine.fields().last_seen.read_only().unwrap(),
            fields.last_seen,
        ));
        done.unwrap();
        let check = pd.register(0u64, Access::local()).unwrap();
        let (done, back) = wait(conn.read(check.read_write().unwrap(), fields.last_seen));
        done.unwrap();
        assert_eq!(back.read(), ROUNDS, "RDMA READ of the exposed field");

        out.write(Request {
            seq: ROUNDS + 1,
            payload: request_payload(ROUNDS + 1),
        });
        let (done, _) = wait(conn.send(out));
        done.unwrap();
        server.join().expect("server thread").unwrap()
    });
    assert_eq!(mailbox.last_seen, ROUNDS);
    assert_eq!(mailbox.note, NOTE);
}

fn a_peer_with_another_declaration_is_refused_with_both_fingerprints(dev: &Device) {
    assert_ne!(Kv::FINGERPRINT, other::Kv::FINGERPRINT);
    let (listener, addr) = listener();
    let (server, client) = thread::scope(|s| {
        let server = s.spawn(|| {
            let pd = dev.alloc_pd().unwrap();
            let cq = dev.create_cq(128).unwrap();
            Kv::server(&pd).cq(&cq).connect(accept(&listener)).map(drop)
        });
        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq(128).unwrap();
        let client = other::Kv::client(&pd)
            .cq(&cq)
            .connect(tcp_connect(addr).unwrap())
            .map(drop);
        (server.join().expect("server thread"), client)
    });

    for (side, result, local, remote) in [
        ("server", server, Kv::FINGERPRINT, other::Kv::FINGERPRINT),
        ("client", client, other::Kv::FINGERPRINT, Kv::FINGERPRINT),
    ] {
        let err = result.expect_err("a different declaration must be refused");
        let text = err.to_string();
        println!("{side}: {text}");
        match err {
            Error::Fingerprint {
                what,
                local: l,
                remote: r,
            } => {
                assert_eq!(what, "connection `Kv`");
                assert_eq!((l, r), (local, remote), "{side}");
            }
            other => panic!("{side}: expected Error::Fingerprint, got {other:?}"),
        }
        assert!(text.contains(&format!("{local:#018x}")), "{text}");
        assert!(text.contains(&format!("{remote:#018x}")), "{text}");
        assert!(text.contains("`Kv`"), "{text}");
    }
}

fn two_servers_are_refused(dev: &Device) {
    let (listener, addr) = listener();
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| {
            let pd = dev.alloc_pd().unwrap();
            let cq = dev.create_cq(128).unwrap();
            Kv::server(&pd).cq(&cq).connect(accept(&listener)).map(drop)
        });
        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq(128).unwrap();
        let b = Kv::server(&pd)
            .cq(&cq)
            .connect(tcp_connect(addr).unwrap())
            .map(drop);
        (a.join().expect("thread"), b)
    });
    for result in [a, b] {
        let text = result.expect_err("two servers").to_string();
        assert!(
            text.contains("the peer is the server of connection `Kv` too"),
            "{text}"
        );
    }
}

fn an_exposed_region_without_remote_access_is_refused(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let cq = dev.create_cq(128).unwrap();
    let local = pd.register(Mailbox::zeroed(), Access::local()).unwrap();
    let err = Kv::server(&pd).cq(&cq).expose(local).prepare().unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotExposable {
                role: "server",
                what: "connection `Kv`"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("without remote access"), "{err}");
}

/// A server end that exposes a zeroed mailbox, takes one request, and
/// returns what was written into the mailbox by then.
fn serve_mailbox(dev: &Device, listener: &TcpListener) -> Result<Mailbox, Error> {
    let pd = dev.alloc_pd()?;
    let cq = dev.create_cq(2 * DEPTH as usize)?;
    let end = Kv::server(&pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(DEPTH).max_recv_wr(DEPTH))
        .prepare()?;
    let requests = pd.register(Request::zeroed(), Access::local())?;
    let request = end.recv(requests.read_write()?);
    let conn = end.connect(accept(listener))?;
    let (done, slot) = wait(request);
    done?;
    assert_eq!(slot.read().seq, 99, "the closing request's bytes");
    Ok(conn.exposed().read_only()?.read())
}

/// Rule: an `Exposed` target belongs to the connection that handed it
/// out; any other connection refuses it before posting, even one of the
/// same declaration, and no byte of the other peer changes.
fn a_target_of_one_connection_is_refused_on_another(dev: &Device) {
    let (la, addr_a) = listener();
    let (lb, addr_b) = listener();
    let (a, b) = thread::scope(|s| {
        let server_a = s.spawn(|| serve_mailbox(dev, &la));
        let server_b = s.spawn(|| serve_mailbox(dev, &lb));
        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq(4 * DEPTH as usize).unwrap();
        let client = |addr| {
            Kv::client(&pd)
                .cq(&cq)
                .queue_pair(|qp| qp.max_send_wr(DEPTH).max_recv_wr(DEPTH))
                .connect(tcp_connect(addr).unwrap())
                .unwrap()
        };
        let (conn_a, conn_b) = (client(addr_a), client(addr_b));
        assert_ne!(conn_a.id(), conn_b.id());
        let target_a = conn_a.peer().fields().last_seen;
        assert_eq!(target_a.connection_id(), conn_a.id());

        let value = pd.register(0xAAAA_u64, Access::local()).unwrap();
        let (done, seg) = wait(conn_b.write(value.read_only().unwrap(), target_a));
        match done {
            Err(Error::WrongConnection { target, this, what }) => {
                assert_eq!((target, this), (conn_a.id(), conn_b.id()));
                assert_eq!(what, "connection `Kv`");
            }
            other => panic!("expected WrongConnection, got {other:?}"),
        }
        assert_eq!(seg.read(), 0xAAAA, "the segment comes back");
        assert_eq!(conn_b.in_flight(), 0, "refused before posting");
        let into = pd.register(0u64, Access::local()).unwrap();
        let (done, _) = wait(conn_b.read(into.read_write().unwrap(), target_a));
        assert!(
            matches!(done, Err(Error::WrongConnection { .. })),
            "{done:?}"
        );
        let (done, _) = wait(conn_b.write_with_imm(seg, target_a, 1));
        assert!(
            matches!(done, Err(Error::WrongConnection { .. })),
            "{done:?}"
        );

        // Each connection's own targets work.
        let (done, _) = wait(conn_a.write(value.read_only().unwrap(), target_a));
        done.unwrap();
        let bee = pd.register(0xBBBB_u64, Access::local()).unwrap();
        let (done, _) =
            wait(conn_b.write(bee.read_only().unwrap(), conn_b.peer().fields().last_seen));
        done.unwrap();

        let bye = pd
            .register(
                Request {
                    seq: 99,
                    payload: [0; PAYLOAD],
                },
                Access::local(),
            )
            .unwrap();
        for conn in [&conn_a, &conn_b] {
            let (done, _) = wait(conn.send(bye.read_only().unwrap()));
            done.unwrap();
        }
        (
            server_a.join().expect("server a").unwrap(),
            server_b.join().expect("server b").unwrap(),
        )
    });
    assert_eq!(a.last_seen, 0xAAAA);
    assert_eq!(b.last_seen, 0xBBBB, "the refused write did not land on B");
    assert_eq!((a.note, b.note), ([0; 24], [0; 24]));
}

/// Rule: a connection notices that its peer is gone: when the peer's end
/// of the control stream closes, every receive waiting on this end
/// resolves, within a bound, with the named cause.
fn a_peer_that_goes_away_ends_every_waiting_receive_with_the_cause(dev: &Device) {
    let (listener, addr) = listener();
    let outcome = thread::scope(|s| {
        let server = s.spawn(|| -> Result<_, Error> {
            let pd = dev.alloc_pd()?;
            let cq = dev.create_cq(2 * DEPTH as usize)?;
            let end = Kv::server(&pd)
                .cq(&cq)
                .queue_pair(|qp| qp.max_send_wr(DEPTH).max_recv_wr(DEPTH))
                .prepare()?;
            let requests = pd.register_zeroed::<Request>(DEPTH as usize, Access::local())?;
            let mut inbox = VecDeque::new();
            for i in 0..DEPTH as usize {
                inbox.push_back(end.recv(requests.elem_rw(i)?));
            }
            let conn = end.connect(accept(&listener))?;
            // The first request arrives, byte for byte.
            let (done, slot) = wait(inbox.pop_front().expect("posted"));
            done?;
            assert_eq!(slot.read().payload, request_payload(1));
            // Then the peer goes away: the other receives end.
            let start = Instant::now();
            let ends: Vec<_> = inbox.into_iter().map(|r| wait(r).0).collect();
            let took = start.elapsed();
            drop(conn);
            Ok((ends, took))
        });
        let pd = dev.alloc_pd().unwrap();
        let cq = dev.create_cq(2 * DEPTH as usize).unwrap();
        let conn = Kv::client(&pd)
            .cq(&cq)
            .queue_pair(|qp| qp.max_send_wr(DEPTH).max_recv_wr(DEPTH))
            .connect(tcp_connect(addr).unwrap())
            .unwrap();
        let request = pd
            .register(
                Request {
                    seq: 1,
                    payload: request_payload(1),
                },
                Access::local(),
            )
            .unwrap();
        let (done, _) = wait(conn.send(request.read_only().unwrap()));
        done.unwrap();
        drop(conn);
        server.join().expect("server thread").unwrap()
    });
    let (ends, took) = outcome;
    assert_eq!(ends.len(), DEPTH as usize - 1);
    for end in ends {
        match end {
            Err(Error::ShutDown(safeverbs::Shutdown::PeerClosed)) => {}
            other => panic!("expected the peer-closed shutdown, got {other:?}"),
        }
    }
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device round_trip_with_checked_bytes_and_a_write_into_the_exposed_mailbox,
        device a_peer_with_another_declaration_is_refused_with_both_fingerprints,
        device two_servers_are_refused,
        device an_exposed_region_without_remote_access_is_refused,
        device a_target_of_one_connection_is_refused_on_another,
        device a_peer_that_goes_away_ends_every_waiting_receive_with_the_cause,
    ])
}

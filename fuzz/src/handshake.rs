//! Target `handshake`: the connection handshake, up to where a device is
//! needed, run by the library's own code (`safeverbs::__fuzz::handshake`,
//! the steps `Prepared::connect` takes) against a peer that sends the
//! input.
//!
//! Byte 0 of the input sets how the peer behaves: bits 0-2 the most bytes
//! one read returns (1, 2, 4, … 128), bit 3 every other read interrupted,
//! bits 4-5 how the stream ends once the bytes are read (closed, silent,
//! reset), bit 6 which end this one plays (server or client of
//! [`Kv`]), bit 7 whether the first 51 bytes the peer sends get their
//! checksum recomputed (so that mutations of the endpoint reach the checks
//! after it). The rest is what the peer sends: its endpoint (51 bytes), its
//! hello (6), its region descriptor (20), its ready (1). Properties:
//!
//! 1. The handshake succeeds exactly when the peer sends a valid endpoint of
//!    the same declaration and transport, the hello of the other role, a
//!    region descriptor valid for the type it declares, and ready; it then
//!    returns that endpoint and region, having read exactly those 78 bytes.
//! 2. Nothing leaves before it is due: what this end sends is a prefix of
//!    its endpoint, hello, region descriptor and ready; its hello only
//!    after the peer's endpoint checked out, its region descriptor only
//!    after the peer's hello did, its ready only after the peer's region
//!    descriptor decoded. And each of these is sent once the check passes.
//! 3. A wrong byte is named when it arrives: the handshake reads no byte of
//!    the hello past the first wrong one, and nothing past the endpoint
//!    when the endpoint is refused.
//! 4. Errors are values of the documented variants: a peer of another
//!    declaration `Fingerprint`/`Undeclared`, another transport
//!    `TransportMismatch`, a bad frame `Endpoint`, a bad region descriptor
//!    `BadDescriptor`, a stream that ends early `Endpoint(Truncated)`
//!    (in the endpoint) or `PeerLeft` naming the step, one that goes silent
//!    `Timeout`, one that fails `Exchange` with its error.
//! 5. The stream's timeouts are put back; the handshake allocates less
//!    than 4 KiB whatever the peer sends (its messages; the bytes it
//!    sends go into a buffer made beforehand).

use std::io;

use safeverbs::__fuzz::{self, End, Peer, Run, HELLO_LEN, HELLO_MAGIC, HELLO_VERSION, READY};
use safeverbs::{
    connection, Client, Declaration, DecodeError, Endpoint, Error, RemoteRegion, Role, Server,
    TransportKind, ENCODED_LEN, REMOTE_REGION_LEN,
};

use crate::remote_region::Record;
use crate::{alloc, reseal};

connection! {
    /// The declaration both ends speak.
    pub struct Kv: safeverbs::Rc {
        client sends u64;
        server sends Record, exposes Record;
    }
}

/// This end's endpoint.
pub fn local() -> Endpoint {
    Endpoint {
        transport: TransportKind::Rc,
        qpn: 0x1234,
        psn: 0x42,
        lid: 0,
        gid: [0xfe; 16],
        mtu: 1024,
        port: 1,
        fingerprint: Kv::FINGERPRINT,
    }
}

/// This end's region descriptor.
pub const OURS: [u8; REMOTE_REGION_LEN] = [0x5a; REMOTE_REGION_LEN];

/// The hello of role `R`.
pub fn hello<R: Role>() -> [u8; HELLO_LEN] {
    let mut h = [0; HELLO_LEN];
    h[..4].copy_from_slice(&HELLO_MAGIC);
    h[4] = HELLO_VERSION;
    h[5] = R::WIRE;
    h
}

const STEP_1: usize = ENCODED_LEN;
const STEP_2: usize = STEP_1 + HELLO_LEN;
const STEP_3: usize = STEP_2 + REMOTE_REGION_LEN;
const STEP_4: usize = STEP_3 + 1;

pub fn check(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let mut peer_bytes = [0u8; 256];
    let n = bytes.len().min(peer_bytes.len());
    peer_bytes[..n].copy_from_slice(&bytes[..n]);
    let sent = &mut peer_bytes[..n];
    if control & 0x80 != 0 {
        if let Some(frame) = sent.first_chunk_mut::<ENCODED_LEN>() {
            reseal(frame);
        }
    }
    let peer = Peer {
        bytes: sent,
        chunk: 1 << (control & 7),
        interrupt: control & 8 != 0,
        end: match (control >> 4) & 3 {
            1 => End::Stall,
            2 => End::Reset,
            _ => End::Close,
        },
    };
    if control & 0x40 == 0 {
        one::<Server>(peer);
    } else {
        one::<Client>(peer);
    }
}

/// What the handshake should do with `bytes`, step by step.
struct Expected<T: ?Sized> {
    endpoint: Option<Endpoint>,
    hello: bool,
    region: Option<RemoteRegion<T>>,
    ready: bool,
}

fn one<R: Role>(peer: Peer<'_>) {
    let bytes = peer.bytes;
    let (run, allocated): (Run<R::PeerExposes<Kv>>, usize) =
        alloc::count(|| __fuzz::handshake::<Kv, R>(&local(), OURS, peer));
    assert!(
        run.timeouts_restored,
        "the stream's timeouts were not put back"
    );
    assert!(
        allocated < 4096,
        "the handshake allocated {allocated} bytes"
    );

    // What a correct end does, from the protocol's description.
    let endpoint = bytes
        .get(..STEP_1)
        .and_then(|b| Endpoint::decode(b).ok())
        .filter(|e| e.fingerprint == Kv::FINGERPRINT && e.transport == TransportKind::Rc);
    let hello_ok = endpoint.is_some() && bytes.get(STEP_1..STEP_2) == Some(&hello::<R::Peer>()[..]);
    let region = bytes
        .get(STEP_2..STEP_3)
        .filter(|_| hello_ok)
        .and_then(|b| RemoteRegion::<R::PeerExposes<Kv>>::decode(b).ok());
    let ready = region.is_some() && bytes.get(STEP_3) == Some(&READY);
    let want = Expected {
        endpoint,
        hello: hello_ok,
        region,
        ready,
    };

    // 2: what left, and when.
    let mut all = local().encode().to_vec();
    all.extend_from_slice(&hello::<R>());
    all.extend_from_slice(&OURS);
    all.push(READY);
    let due = if want.region.is_some() {
        STEP_4
    } else if want.hello {
        STEP_3
    } else if want.endpoint.is_some() {
        STEP_2
    } else {
        STEP_1
    };
    assert_eq!(run.sent[..], all[..due], "sent to the peer");

    // 1: success exactly when everything checks out.
    match (&run.result, want.ready) {
        (Ok((e, r)), true) => {
            assert_eq!(Some(*e), want.endpoint);
            assert_eq!(Some(*r), want.region);
            assert_eq!(run.consumed, STEP_4);
            return;
        }
        (Ok(ok), false) => panic!("accepted a peer that does not check out: {ok:?}"),
        (Err(e), true) => panic!("refused a good peer: {e}"),
        (Err(_), false) => {}
    }
    let Err(err) = &run.result else { return };
    assert!(!err.to_string().is_empty());
    assert!(run.consumed <= bytes.len().min(STEP_4));

    // 3 and 4: the first step that fails, and how.
    if want.endpoint.is_none() {
        assert!(run.consumed <= STEP_1, "read past a refused endpoint");
        let Some(frame) = bytes.get(..STEP_1) else {
            // Every failure of a short frame: the frame's own, or the
            // stream's end.
            return ended_in_frame(err, peer, bytes);
        };
        match Endpoint::decode(frame) {
            Err(d) => assert!(
                matches!(err, Error::Endpoint(e) if *e == d),
                "{err:?} for {d:?}"
            ),
            Ok(e) if e.fingerprint != Kv::FINGERPRINT => assert!(
                matches!(err, Error::Fingerprint { remote, .. } | Error::Undeclared { remote, .. }
                    if *remote == e.fingerprint),
                "{err:?}"
            ),
            Ok(e) => assert!(
                matches!(err, Error::TransportMismatch { remote, .. } if *remote == e.transport),
                "{err:?}"
            ),
        }
    } else if !want.hello {
        let theirs = &bytes[STEP_1..bytes.len().min(STEP_2)];
        let good = hello::<R::Peer>();
        match theirs.iter().zip(&good).position(|(a, b)| a != b) {
            Some(i) if i < 5 => {
                assert_eq!(
                    run.consumed,
                    STEP_1 + i + 1,
                    "read past the wrong byte {i} of the hello"
                );
                assert!(err.to_string().contains("not version 1"), "{err}");
                assert!(
                    matches!(err, Error::HelloMismatch { found, version: 1 }
                        if found[..] == theirs[..=i]),
                    "{err:?}"
                );
            }
            Some(_) => {
                assert_eq!(run.consumed, STEP_2);
                assert!(err.to_string().contains("too; one end must be"), "{err}");
                assert!(matches!(err, Error::SameRole { .. }), "{err:?}");
            }
            None => ended(err, peer, "the peer's connection hello"),
        }
    } else if want.region.is_none() {
        match bytes.get(STEP_2..STEP_3) {
            Some(_) => {
                assert_eq!(run.consumed, STEP_3);
                assert!(matches!(err, Error::BadDescriptor { .. }), "{err:?}");
            }
            None => ended(err, peer, "the descriptor of the peer's region"),
        }
    } else {
        match bytes.get(STEP_3) {
            Some(b) => {
                assert_eq!(run.consumed, STEP_4);
                assert!(matches!(err, Error::NotReady { found } if found == b), "{err:?}");
                assert!(
                    err.to_string().contains(&format!("{b:#04x}, not ready")),
                    "{err}"
                );
            }
            None => ended(err, peer, "the peer's queue pair to be ready"),
        }
    }
}

/// The error of a frame shorter than an endpoint: its header's, or the
/// stream's end.
fn ended_in_frame(err: &Error, peer: Peer<'_>, bytes: &[u8]) {
    let prefix = Endpoint::decode(bytes);
    match (err, peer.end) {
        (Error::Endpoint(e), _)
            if Err(*e) == prefix && !matches!(e, DecodeError::Truncated { .. }) => {}
        (Error::Endpoint(DecodeError::Truncated { got, .. }), End::Close) => {
            assert_eq!(*got, bytes.len());
        }
        _ => ended(err, peer, "the peer's endpoint"),
    }
}

/// The error of a stream that ended, as `peer.end` says, while `what` was
/// awaited.
fn ended(err: &Error, peer: Peer<'_>, what: &str) {
    match (err, peer.end) {
        (Error::PeerLeft { during }, End::Close) => {
            assert_eq!(*during, what);
            assert!(err.to_string().contains(what), "{err}");
        }
        (Error::Timeout(_, awaited), End::Stall) => assert_eq!(*awaited, what),
        (Error::Exchange(e), End::Reset) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        _ => panic!(
            "{err:?} when the stream ended ({:?}) awaiting {what}",
            peer.end
        ),
    }
}

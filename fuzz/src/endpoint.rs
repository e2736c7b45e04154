//! Target `endpoint`: the endpoint frame, from bytes ([`Endpoint::decode`])
//! and from a stream ([`Endpoint::read_from`]).
//!
//! Each input is checked three ways: as it is; with its first 51 bytes
//! resealed (the checksum recomputed, so that mutations reach the field
//! checks); and as the fields of an [`Endpoint`] that is encoded, then
//! decoded. Properties:
//!
//! 1. Canonical: `decode(b) == Ok(e)` only if `e.encode() == b` byte for
//!    byte, and `e.validate()` is `Ok`. No field is normalized: every bit
//!    of an accepted frame is what `encode` writes.
//! 2. The first failure, in the documented order (magic, version, size,
//!    body length, checksum, fields), is the error, and it describes the
//!    bytes (the magic found, the sizes, both checksums).
//! 3. `read_from` agrees with `decode` on the first frame's worth of bytes,
//!    whether the stream hands out everything at once or one byte per read
//!    with interruptions, and reads no byte past the one that shows the
//!    error: 4 bytes for a wrong magic, 7 for a wrong version or body
//!    length, else the frame (or all there is).
//! 4. Neither allocates anything.
//! 5. Round trip: an endpoint decodes from its own encoding exactly when it
//!    validates, and to itself; otherwise `decode` gives `validate`'s error.

use std::io::{self, Cursor, Read};

use safeverbs::{DecodeError, Endpoint, ReadError, TransportKind, ENCODED_LEN};

use crate::{alloc, crc32, reseal, Take};

const MAGIC: [u8; 4] = *b"SVEP";
const HEADER_LEN: usize = 7;
const COVERED: usize = ENCODED_LEN - 4;

pub fn check(data: &[u8]) {
    frame(data);
    if let Some(first) = data.first_chunk::<ENCODED_LEN>() {
        let mut sealed = *first;
        reseal(&mut sealed);
        frame(&sealed);
    }
    fields(data);
}

/// Hands out one byte per read, failing every other call with
/// `Interrupted`; then end of stream.
struct Trickle<'a> {
    data: &'a [u8],
    calls: usize,
    consumed: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 2 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match (self.data.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.data = rest;
                self.consumed += 1;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn as_decode(r: Result<Endpoint, ReadError>) -> Result<Endpoint, DecodeError> {
    match r {
        Ok(ep) => Ok(ep),
        Err(ReadError::Decode(e)) => Err(e),
        Err(e) => panic!("an in-memory stream cannot fail: {e}"),
    }
}

/// Properties 1 to 4 on `bytes`.
pub fn frame(bytes: &[u8]) {
    let ((decoded, by_cursor, by_trickle), allocated) = alloc::count(|| {
        let decoded = Endpoint::decode(bytes);
        let mut cursor = Cursor::new(bytes);
        let by_cursor = Endpoint::read_from(&mut cursor);
        let mut trickle = Trickle {
            data: bytes,
            calls: 0,
            consumed: 0,
        };
        let by_trickle = Endpoint::read_from(&mut trickle);
        (
            decoded,
            (by_cursor, cursor.position() as usize),
            (by_trickle, trickle.consumed),
        )
    });
    assert_eq!(
        allocated, 0,
        "decoding {bytes:02x?} allocated {allocated} bytes"
    );

    let first = &bytes[..bytes.len().min(ENCODED_LEN)];
    let want = Endpoint::decode(first);
    let stage = match want {
        Err(DecodeError::BadMagic { .. }) => MAGIC.len(),
        Err(DecodeError::UnsupportedVersion { .. } | DecodeError::BadLength { .. }) => HEADER_LEN,
        _ => ENCODED_LEN,
    };
    for (how, (got, consumed)) in [("cursor", by_cursor), ("trickle", by_trickle)] {
        assert_eq!(as_decode(got), want, "read_from ({how}) vs decode");
        assert_eq!(
            consumed,
            bytes.len().min(stage),
            "bytes read ({how}) for {want:?}"
        );
    }

    let magic_ok = bytes.get(..4).is_none_or(|m| m == MAGIC);
    let version_ok = bytes.get(4).is_none_or(|&v| v == 1);
    let length_ok = bytes.get(5..7).is_none_or(|l| l == [0, 40]);
    match decoded {
        Ok(ep) => {
            assert_eq!(
                ep.encode()[..],
                bytes[..],
                "accepted a non-canonical frame as {ep:?}"
            );
            assert_eq!(ep.validate(), Ok(()));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                DecodeError::BadMagic { found } => {
                    assert_eq!(&found[..], &bytes[..4]);
                    assert_ne!(found, MAGIC);
                }
                DecodeError::UnsupportedVersion { found, supported } => {
                    assert!(magic_ok);
                    assert_eq!((found, supported), (bytes[4], 1));
                    assert_ne!(found, 1);
                }
                DecodeError::BadLength { found, want } => {
                    assert!(magic_ok && version_ok);
                    assert_eq!(found.to_be_bytes(), [bytes[5], bytes[6]]);
                    assert_eq!(want, 40);
                    assert_ne!(found, 40);
                }
                DecodeError::Truncated { got, want } => {
                    assert!(magic_ok && version_ok && length_ok);
                    assert_eq!((got, want), (bytes.len(), ENCODED_LEN));
                    assert!(got < want);
                }
                DecodeError::Oversized { got, want } => {
                    assert!(magic_ok && version_ok && length_ok);
                    assert_eq!((got, want), (bytes.len(), ENCODED_LEN));
                    assert!(got > want);
                }
                DecodeError::Checksum { expected, found } => {
                    assert!(magic_ok && version_ok && length_ok);
                    assert_eq!(bytes.len(), ENCODED_LEN);
                    assert_eq!(expected, crc32(&bytes[..COVERED]));
                    assert_eq!(found.to_be_bytes(), bytes[COVERED..]);
                    assert_ne!(expected, found);
                }
                DecodeError::InvalidField { field, why, .. } => {
                    assert!(magic_ok && version_ok && length_ok);
                    assert_eq!(bytes.len(), ENCODED_LEN);
                    assert_eq!(crc32(&bytes[..COVERED]).to_be_bytes(), bytes[COVERED..]);
                    assert!(
                        ["transport", "qpn", "psn", "gid", "mtu"].contains(&field),
                        "{field}"
                    );
                    assert!(!why.is_empty());
                }
                other => panic!("an error this target does not know: {other:?}"),
            }
        }
    }
}

/// Property 5, on the endpoint whose fields are `data`.
fn fields(data: &[u8]) {
    let mut t = Take(data);
    let ep = Endpoint {
        transport: [TransportKind::Rc, TransportKind::Uc, TransportKind::Ud]
            [usize::from(t.u8() % 3)],
        port: t.u8(),
        qpn: t.u32(),
        psn: t.u32(),
        lid: t.u16(),
        gid: t.array(),
        mtu: t.u32(),
        fingerprint: t.u64(),
    };
    let bytes = ep.encode();
    let decoded = Endpoint::decode(&bytes);
    match ep.validate() {
        Ok(()) => assert_eq!(decoded, Ok(ep)),
        Err(e) => assert_eq!(decoded, Err(e)),
    }
    frame(&bytes);
}

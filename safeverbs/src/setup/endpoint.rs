//! The endpoint: what one side of a connection tells the other so that the
//! two queue pairs can be connected, and its wire encoding.
//!
//! # Wire format (version 1)
//!
//! An encoded endpoint is a fixed-size frame of [`ENCODED_LEN`] (51) bytes.
//! All integers are big-endian.
//!
//! | Offset | Size | Field         | Contents                                                     |
//! |-------:|-----:|---------------|--------------------------------------------------------------|
//! |      0 |    4 | magic         | `b"SVEP"`                                                    |
//! |      4 |    1 | version       | [`ENDPOINT_VERSION`] (1)                                     |
//! |      5 |    2 | body length   | length of the body that follows: 40 for version 1            |
//! |      7 |    1 | transport     | `IBV_QPT_*` value: 2 = RC, 3 = UC, 4 = UD                     |
//! |      8 |    1 | port          | port number of the sender (not validated)                    |
//! |      9 |    4 | qpn           | queue pair number, 24 bits; 0 and 1 rejected for RC and UC   |
//! |     13 |    4 | psn           | starting packet sequence number, 24 bits                     |
//! |     17 |    2 | lid           | local identifier                                             |
//! |     19 |   16 | gid           | global identifier, raw bytes; all zero only with a lid ≠ 0   |
//! |     35 |    4 | mtu           | active path MTU in bytes: 256, 512, 1024, 2048 or 4096       |
//! |     39 |    8 | fingerprint   | layout fingerprint (0 = none declared)                       |
//! |     47 |    4 | checksum      | CRC-32 (IEEE 802.3, as in zlib) of bytes 0..47               |
//!
//! The header (magic, version, body length) lets a future version extend the
//! body; version 1 rejects any other version and any body length but 40.
//!
//! # Decoding
//!
//! [`Endpoint::decode`] checks, in this order: the magic and the version (as
//! far as the bytes given reach, so that a foreign or newer peer is named as
//! such even when its frame has another size), the size of the frame, the
//! body length, the checksum, and finally each field. The first failure is
//! reported.
//!
//! [`Endpoint::read_from`] reads exactly one frame from a stream, into a
//! fixed-size buffer; it never allocates and never trusts a size given by the
//! peer. It reads the magic first and gives up at once if it is wrong, then
//! the rest of the header, then the body. A stream that ends before the frame
//! is complete gives [`ReadError::Decode`] with [`DecodeError::Truncated`]
//! (saying how many bytes arrived), not an `UnexpectedEof` I/O error; but a
//! wrong magic, version or body length among the bytes that did arrive is
//! reported first, exactly as [`Endpoint::decode`] would on those bytes.

use std::io;

use crate::queue_pair::transport::TransportKind;
use crate::wire::{Put, Take};

/// The version of the wire format this build writes and reads.
pub const ENDPOINT_VERSION: u8 = 1;

/// The size in bytes of one encoded endpoint.
pub const ENCODED_LEN: usize = HEADER_LEN + BODY_LEN + CHECKSUM_LEN;

const MAGIC: [u8; 4] = *b"SVEP";
/// Magic, version, body length.
const HEADER_LEN: usize = 4 + 1 + 2;
/// Transport, port, qpn, psn, lid, gid, mtu, fingerprint.
const BODY_LEN: usize = 1 + 1 + 4 + 4 + 2 + 16 + 4 + 8;
/// `BODY_LEN` as carried in the header.
const BODY_LEN_WIRE: u16 = 40;
const _: () = assert!(BODY_LEN == BODY_LEN_WIRE as usize);
const CHECKSUM_LEN: usize = 4;
/// The largest 24-bit value.
const MAX_24: u32 = 0xFF_FFFF;

/// The wire encoding of a [`TransportKind`]: its `IBV_QPT_*` value.
impl TransportKind {
    /// The `IBV_QPT_*` value used on the wire.
    fn wire(self) -> u8 {
        match self {
            TransportKind::Rc => 2,
            TransportKind::Uc => 3,
            TransportKind::Ud => 4,
        }
    }

    /// The kind for an `IBV_QPT_*` value, if it is one of ours.
    fn from_wire(value: u8) -> Option<Self> {
        match value {
            2 => Some(TransportKind::Rc),
            3 => Some(TransportKind::Uc),
            4 => Some(TransportKind::Ud),
            _ => None,
        }
    }
}

/// Everything a peer needs to connect its queue pair to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The kind of queue pair.
    pub transport: TransportKind,
    /// Queue pair number (24 bits).
    pub qpn: u32,
    /// Starting packet sequence number (24 bits).
    pub psn: u32,
    /// Local identifier of the port (InfiniBand; 0 on RoCE).
    pub lid: u16,
    /// Global identifier of the port (all zero if none is used).
    pub gid: [u8; 16],
    /// Active path MTU in bytes: 256, 512, 1024, 2048 or 4096.
    pub mtu: u32,
    /// Port number (not validated).
    pub port: u8,
    /// Layout fingerprint of what the connection exposes (0 = none declared).
    pub fingerprint: u64,
}

/// Why bytes are not a valid encoded [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than a frame.
    #[error("truncated: got {got} bytes, expected {want}")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
    /// More bytes than a frame.
    #[error("too long: got {got} bytes, expected {want}")]
    Oversized {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The frame does not start with `b"SVEP"`.
    #[error(
        "not a SafeVerbs endpoint (magic b\"{}\", expected b\"{}\"); is the peer a SafeVerbs \
         program of a compatible version?",
        .found.escape_ascii(),
        MAGIC.escape_ascii()
    )]
    BadMagic {
        /// The first four bytes received.
        found: [u8; 4],
    },
    /// The frame is of a format version this build does not speak.
    #[error(
        "endpoint format version {found} is not supported (this program speaks version \
         {supported}); run compatible SafeVerbs versions on both sides"
    )]
    UnsupportedVersion {
        /// The version in the frame.
        found: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// The body length in the header is not the one of this version.
    #[error(
        "endpoint body length {found} is wrong for format version {ENDPOINT_VERSION} (expected \
         {want})"
    )]
    BadLength {
        /// The body length in the frame.
        found: u16,
        /// The body length of this version.
        want: u16,
    },
    /// The checksum does not match the bytes.
    #[error(
        "endpoint checksum mismatch (computed {expected:#010x}, frame carries {found:#010x}); \
         the bytes were corrupted on the way"
    )]
    Checksum {
        /// The checksum computed over the bytes received.
        expected: u32,
        /// The checksum carried by the frame.
        found: u32,
    },
    /// A field holds a value that no valid endpoint has.
    #[error("invalid endpoint field `{field}` = {value}: {why}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Why [`Endpoint::read_from`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream failed.
    #[error("reading the peer's endpoint failed: {0}")]
    Io(#[from] io::Error),
    /// The bytes read are not a valid endpoint (including a stream that ended
    /// early: [`DecodeError::Truncated`]).
    #[error("malformed endpoint from peer: {0}")]
    Decode(#[source] DecodeError),
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        ReadError::Decode(e)
    }
}

/// CRC-32 (IEEE 802.3, as in zlib: reflected, polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc = (crc >> 8) ^ CRC_TABLE[usize::from((crc as u8) ^ byte)];
    }
    !crc
}

/// The byte-at-a-time CRC-32 table, computed at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Checks as much of the header as `bytes` holds: magic, then version.
fn check_header_prefix(bytes: &[u8]) -> Result<(), DecodeError> {
    if let Some(found) = bytes.first_chunk::<4>() {
        if *found != MAGIC {
            return Err(DecodeError::BadMagic { found: *found });
        }
    }
    if let Some(&found) = bytes.get(4) {
        if found != ENDPOINT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found,
                supported: ENDPOINT_VERSION,
            });
        }
    }
    if let Some(&[hi, lo]) = bytes.get(5..HEADER_LEN) {
        let found = u16::from_be_bytes([hi, lo]);
        if found != BODY_LEN_WIRE {
            return Err(DecodeError::BadLength {
                found,
                want: BODY_LEN_WIRE,
            });
        }
    }
    Ok(())
}

fn invalid(field: &'static str, value: u64, why: &'static str) -> DecodeError {
    DecodeError::InvalidField { field, value, why }
}

impl Endpoint {
    /// Checks the fields the way [`decode`](Self::decode) does: a 24-bit
    /// `qpn` that is not 0 or 1 for RC and UC, a 24-bit `psn`, an address
    /// (a `gid` that is not all zero, or a `lid` that is not 0), and an
    /// `mtu` of 256, 512, 1024, 2048 or 4096 bytes.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.qpn > MAX_24 {
            return Err(invalid(
                "qpn",
                self.qpn.into(),
                "queue pair numbers are 24 bits (at most 16777215)",
            ));
        }
        if self.qpn <= 1 && self.transport != TransportKind::Ud {
            return Err(invalid(
                "qpn",
                self.qpn.into(),
                "queue pair numbers 0 and 1 belong to the special queue pairs and cannot be \
                 connected",
            ));
        }
        if self.psn > MAX_24 {
            return Err(invalid(
                "psn",
                self.psn.into(),
                "packet sequence numbers are 24 bits (at most 16777215)",
            ));
        }
        if self.lid == 0 && self.gid == [0; 16] {
            return Err(invalid(
                "gid",
                0,
                "the endpoint has no address: its GID is all zero and its LID is 0 (a RoCE \
                 port needs a GID; is the peer's GID index one with an address?)",
            ));
        }
        if !matches!(self.mtu, 256 | 512 | 1024 | 2048 | 4096) {
            return Err(invalid(
                "mtu",
                self.mtu.into(),
                "the path MTU must be 256, 512, 1024, 2048 or 4096 bytes",
            ));
        }
        Ok(())
    }

    /// The wire encoding: [`ENCODED_LEN`] bytes holding, big-endian and in
    /// this order, `b"SVEP"`, the version (u8), the body length (u16, 40),
    /// transport (u8: 2 = RC, 3 = UC, 4 = UD), port (u8), qpn (u32), psn
    /// (u32), lid (u16), gid (16 bytes), mtu (u32), fingerprint (u64), and a
    /// CRC-32 (IEEE) of everything before it (u32).
    ///
    /// Fields are written as they are; an endpoint that fails
    /// [`validate`](Self::validate) encodes to bytes that
    /// [`decode`](Self::decode) rejects.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        Put::new(&mut out)
            .bytes(MAGIC)
            .u8(ENDPOINT_VERSION)
            .u16(BODY_LEN_WIRE)
            .u8(self.transport.wire())
            .u8(self.port)
            .u32(self.qpn)
            .u32(self.psn)
            .u16(self.lid)
            .bytes(self.gid)
            .u32(self.mtu)
            .u64(self.fingerprint);
        if let Some((covered, checksum)) = out.split_last_chunk_mut::<CHECKSUM_LEN>() {
            *checksum = crc32(covered).to_be_bytes();
        }
        out
    }

    /// Decodes one frame of exactly [`ENCODED_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Endpoint, DecodeError> {
        check_header_prefix(bytes)?;
        let frame: &[u8; ENCODED_LEN] = bytes.try_into().map_err(|_| {
            if bytes.len() < ENCODED_LEN {
                DecodeError::Truncated {
                    got: bytes.len(),
                    want: ENCODED_LEN,
                }
            } else {
                DecodeError::Oversized {
                    got: bytes.len(),
                    want: ENCODED_LEN,
                }
            }
        })?;
        let Some((covered, checksum)) = frame.split_last_chunk::<CHECKSUM_LEN>() else {
            return Err(DecodeError::Truncated {
                got: bytes.len(),
                want: ENCODED_LEN,
            });
        };
        let found = u32::from_be_bytes(*checksum);
        let expected = crc32(covered);
        if found != expected {
            return Err(DecodeError::Checksum { expected, found });
        }
        let mut r = Take::new(covered.get(HEADER_LEN..).unwrap_or_default());
        let transport = r.u8();
        let port = r.u8();
        let qpn = r.u32();
        let psn = r.u32();
        let lid = r.u16();
        let gid = r.bytes::<16>();
        let mtu = r.u32();
        let fingerprint = r.u64();
        let transport = TransportKind::from_wire(transport).ok_or_else(|| {
            invalid(
                "transport",
                transport.into(),
                "unknown transport (expected 2 = RC, 3 = UC or 4 = UD)",
            )
        })?;
        let endpoint = Endpoint {
            transport,
            qpn,
            psn,
            lid,
            gid,
            mtu,
            port,
            fingerprint,
        };
        endpoint.validate()?;
        Ok(endpoint)
    }

    /// Writes the encoding to `w`.
    pub fn write_to<W: io::Write>(&self, w: &mut W) -> Result<(), io::Error> {
        w.write_all(&self.encode())
    }

    /// Reads exactly one frame from `r` and decodes it.
    ///
    /// Reads no byte past the frame, allocates nothing, and stops as soon as
    /// the magic or the rest of the header is wrong (so a foreign peer that
    /// sends four bytes and waits is not waited for). A stream that ends
    /// before the frame is complete gives
    /// `ReadError::Decode(DecodeError::Truncated { got, want })` with the
    /// number of bytes that did arrive (after the magic and header bytes that
    /// did arrive have been checked), never an `UnexpectedEof` I/O error.
    /// Interrupted reads are retried; other I/O errors (including timeouts)
    /// are returned as [`ReadError::Io`].
    pub fn read_from<R: io::Read>(r: &mut R) -> Result<Endpoint, ReadError> {
        let mut frame = [0u8; ENCODED_LEN];
        let mut got = 0;
        for end in [MAGIC.len(), HEADER_LEN, ENCODED_LEN] {
            while got < end {
                let Some(buf) = frame.get_mut(got..end) else {
                    break;
                };
                match r.read(buf) {
                    Ok(0) => {
                        // Name a foreign or newer peer as such, as `decode`
                        // does, before calling the frame short.
                        check_header_prefix(frame.get(..got).unwrap_or_default())?;
                        return Err(DecodeError::Truncated {
                            got,
                            want: ENCODED_LEN,
                        }
                        .into());
                    }
                    Ok(n) => got += n.min(end - got),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            check_header_prefix(frame.get(..got).unwrap_or_default())?;
        }
        Ok(Endpoint::decode(&frame)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    fn sample() -> Endpoint {
        Endpoint {
            transport: TransportKind::Rc,
            qpn: 0x00AB_CDEF,
            psn: 0x0012_3456,
            lid: 0xBEEF,
            gid: [
                0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
            ],
            mtu: 4096,
            port: 1,
            fingerprint: 0x0123_4567_89AB_CDEF,
        }
    }

    /// Re-computes the checksum after a deliberate edit.
    fn reseal(bytes: &mut [u8; ENCODED_LEN]) {
        let crc = crc32(&bytes[..ENCODED_LEN - 4]);
        bytes[ENCODED_LEN - 4..].copy_from_slice(&crc.to_be_bytes());
    }

    /// The textbook bit-at-a-time CRC-32, to check the table against.
    fn crc32_bitwise(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc32_matches_bitwise() {
        let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        // All lengths together are quadratic work: Miri checks the short ones
        // and a few long ones.
        let long = if cfg!(miri) { 0..0 } else { 65..data.len() };
        for len in (0..=64).chain(long).chain([255, 256, 511, 512]) {
            assert_eq!(
                crc32(&data[..len]),
                crc32_bitwise(&data[..len]),
                "length {len}"
            );
        }
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn layout_is_as_documented() {
        assert_eq!(ENCODED_LEN, 51);
        assert_eq!(BODY_LEN, 40);
        let b = sample().encode();
        assert_eq!(&b[0..4], b"SVEP");
        assert_eq!(b[4], 1);
        assert_eq!(&b[5..7], &[0, 40]);
        assert_eq!(b[7], 2);
        assert_eq!(b[8], 1);
        assert_eq!(&b[9..13], &[0x00, 0xAB, 0xCD, 0xEF]);
        assert_eq!(&b[13..17], &[0x00, 0x12, 0x34, 0x56]);
        assert_eq!(&b[17..19], &[0xBE, 0xEF]);
        assert_eq!(&b[19..35], &sample().gid);
        assert_eq!(&b[35..39], &4096u32.to_be_bytes());
        assert_eq!(&b[39..47], &0x0123_4567_89AB_CDEFu64.to_be_bytes());
        assert_eq!(&b[47..51], &crc32(&b[..47]).to_be_bytes());
    }

    #[test]
    fn round_trip() {
        let mut cases = vec![sample()];
        for transport in [TransportKind::Rc, TransportKind::Uc, TransportKind::Ud] {
            for mtu in [256, 512, 1024, 2048, 4096] {
                cases.push(Endpoint {
                    transport,
                    mtu,
                    ..sample()
                });
            }
        }
        cases.push(Endpoint {
            qpn: 2,
            psn: 0,
            lid: 0,
            ..sample()
        });
        // InfiniBand without a GRH: the LID is the address.
        cases.push(Endpoint {
            lid: 7,
            gid: [0; 16],
            ..sample()
        });
        cases.push(Endpoint {
            qpn: MAX_24,
            psn: MAX_24,
            lid: u16::MAX,
            ..sample()
        });
        cases.push(Endpoint {
            transport: TransportKind::Ud,
            qpn: 0,
            ..sample()
        });
        cases.push(Endpoint {
            transport: TransportKind::Ud,
            qpn: 1,
            ..sample()
        });
        cases.push(Endpoint {
            port: 0,
            fingerprint: 0,
            ..sample()
        });
        cases.push(Endpoint {
            port: 255,
            fingerprint: u64::MAX,
            gid: [0xff; 16],
            ..sample()
        });
        for ep in cases {
            assert_eq!(ep.validate(), Ok(()));
            let bytes = ep.encode();
            assert_eq!(Endpoint::decode(&bytes), Ok(ep));
        }
    }

    #[test]
    fn every_truncation_is_truncated() {
        let bytes = sample().encode();
        for len in 0..ENCODED_LEN {
            assert_eq!(
                Endpoint::decode(&bytes[..len]),
                Err(DecodeError::Truncated {
                    got: len,
                    want: ENCODED_LEN
                }),
                "length {len}"
            );
        }
    }

    #[test]
    fn oversized() {
        let mut long = sample().encode().to_vec();
        for extra in 1..=3 {
            long.push(0);
            assert_eq!(
                Endpoint::decode(&long),
                Err(DecodeError::Oversized {
                    got: ENCODED_LEN + extra,
                    want: ENCODED_LEN
                })
            );
        }
        let two: Vec<u8> = [sample().encode(), sample().encode()].concat();
        assert_eq!(
            Endpoint::decode(&two),
            Err(DecodeError::Oversized {
                got: 2 * ENCODED_LEN,
                want: ENCODED_LEN
            })
        );
    }

    #[test]
    fn bad_magic() {
        let mut bytes = sample().encode();
        bytes[..4].copy_from_slice(b"HTTP");
        let err = Endpoint::decode(&bytes).unwrap_err();
        assert_eq!(err, DecodeError::BadMagic { found: *b"HTTP" });
        assert_eq!(
            err.to_string(),
            "not a SafeVerbs endpoint (magic b\"HTTP\", expected b\"SVEP\"); is the peer a \
             SafeVerbs program of a compatible version?"
        );
        // Reported even when the size is wrong too.
        assert_eq!(
            Endpoint::decode(b"GET / HTTP/1.1\r\n"),
            Err(DecodeError::BadMagic { found: *b"GET " })
        );
        let err = Endpoint::decode(&[0, 1, 2, 0xff]).unwrap_err();
        assert!(
            err.to_string().contains("magic b\"\\x00\\x01\\x02\\xff\""),
            "{err}"
        );
    }

    #[test]
    fn bad_version() {
        for version in [0u8, 2, 255] {
            let mut bytes = sample().encode();
            bytes[4] = version;
            reseal(&mut bytes);
            let want = DecodeError::UnsupportedVersion {
                found: version,
                supported: 1,
            };
            assert_eq!(Endpoint::decode(&bytes), Err(want));
            // A newer peer with a longer frame is still named as such.
            assert_eq!(Endpoint::decode(&[&bytes[..], &[0; 9]].concat()), Err(want));
        }
        let err = DecodeError::UnsupportedVersion {
            found: 2,
            supported: 1,
        };
        assert!(
            err.to_string().contains("version 2 is not supported"),
            "{err}"
        );
    }

    #[test]
    fn bad_length() {
        for len in [0u16, 39, 41, 0xffff] {
            let mut bytes = sample().encode();
            bytes[5..7].copy_from_slice(&len.to_be_bytes());
            reseal(&mut bytes);
            assert_eq!(
                Endpoint::decode(&bytes),
                Err(DecodeError::BadLength {
                    found: len,
                    want: 40
                })
            );
        }
    }

    #[test]
    fn flipped_bits_are_caught() {
        let good = sample().encode();
        for byte in 0..ENCODED_LEN {
            for bit in 0..8 {
                let mut bytes = good;
                bytes[byte] ^= 1 << bit;
                let err = Endpoint::decode(&bytes).unwrap_err();
                if byte < HEADER_LEN {
                    assert!(
                        matches!(
                            err,
                            DecodeError::BadMagic { .. }
                                | DecodeError::UnsupportedVersion { .. }
                                | DecodeError::BadLength { .. }
                        ),
                        "byte {byte} bit {bit}: {err:?}"
                    );
                } else {
                    assert!(
                        matches!(err, DecodeError::Checksum { .. }),
                        "byte {byte} bit {bit}: {err:?}"
                    );
                }
            }
        }
        let mut bytes = good;
        bytes[20] ^= 0x10;
        let expected = crc32(&bytes[..ENCODED_LEN - 4]);
        let found = crc32(&good[..ENCODED_LEN - 4]);
        assert_eq!(
            Endpoint::decode(&bytes),
            Err(DecodeError::Checksum { expected, found })
        );
    }

    fn decode_with(edit: impl FnOnce(&mut [u8; ENCODED_LEN])) -> Result<Endpoint, DecodeError> {
        let mut bytes = sample().encode();
        edit(&mut bytes);
        reseal(&mut bytes);
        Endpoint::decode(&bytes)
    }

    fn field_of(err: Result<Endpoint, DecodeError>) -> (&'static str, u64) {
        match err {
            Err(DecodeError::InvalidField { field, value, .. }) => (field, value),
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn bad_transport() {
        for t in [0u8, 1, 5, 255] {
            assert_eq!(field_of(decode_with(|b| b[7] = t)), ("transport", t.into()));
        }
    }

    #[test]
    fn bad_qpn() {
        let set =
            |v: u32| move |b: &mut [u8; ENCODED_LEN]| b[9..13].copy_from_slice(&v.to_be_bytes());
        for v in [0x0100_0000u32, u32::MAX] {
            assert_eq!(field_of(decode_with(set(v))), ("qpn", v.into()));
        }
        for transport in [2u8, 3] {
            for v in [0u32, 1] {
                let res = decode_with(|b| {
                    set(v)(b);
                    b[7] = transport;
                });
                assert_eq!(field_of(res), ("qpn", v.into()));
            }
        }
        for v in [0u32, 1] {
            let res = decode_with(|b| {
                set(v)(b);
                b[7] = 4;
            });
            assert_eq!(res.map(|e| e.qpn), Ok(v));
        }
        assert_eq!(decode_with(set(MAX_24)).map(|e| e.qpn), Ok(MAX_24));
    }

    #[test]
    fn bad_psn() {
        let set =
            |v: u32| move |b: &mut [u8; ENCODED_LEN]| b[13..17].copy_from_slice(&v.to_be_bytes());
        for v in [0x0100_0000u32, u32::MAX] {
            assert_eq!(field_of(decode_with(set(v))), ("psn", v.into()));
        }
        assert_eq!(decode_with(set(0)).map(|e| e.psn), Ok(0));
    }

    /// An endpoint must name an address: a GID, or (InfiniBand) a LID.
    #[test]
    fn endpoint_without_an_address_is_refused() {
        let err = decode_with(|b| {
            b[17..19].copy_from_slice(&0u16.to_be_bytes());
            b[19..35].copy_from_slice(&[0; 16]);
        })
        .unwrap_err();
        assert_eq!(field_of(Err(err)), ("gid", 0));
        assert!(err.to_string().contains("GID is all zero"), "{err}");
        let no_address = Endpoint {
            lid: 0,
            gid: [0; 16],
            ..sample()
        };
        assert_eq!(no_address.validate(), Err(err));
        // With a LID, or with any GID byte set, there is an address.
        for ep in [
            Endpoint {
                lid: 1,
                ..no_address
            },
            Endpoint {
                gid: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..no_address
            },
        ] {
            assert_eq!(ep.validate(), Ok(()));
        }
    }

    #[test]
    fn bad_mtu() {
        for v in [0u32, 1, 255, 257, 1500, 8192, 9000, u32::MAX] {
            let res = decode_with(|b| b[35..39].copy_from_slice(&v.to_be_bytes()));
            assert_eq!(field_of(res), ("mtu", v.into()));
        }
        let err = decode_with(|b| b[35..39].copy_from_slice(&1500u32.to_be_bytes())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid endpoint field `mtu` = 1500: the path MTU must be 256, 512, 1024, 2048 or \
             4096 bytes"
        );
    }

    #[test]
    fn validate_matches_decode() {
        let bad = [
            Endpoint {
                qpn: 0x0100_0000,
                ..sample()
            },
            Endpoint {
                qpn: 1,
                transport: TransportKind::Uc,
                ..sample()
            },
            Endpoint {
                psn: 0x0100_0000,
                ..sample()
            },
            Endpoint {
                mtu: 1000,
                ..sample()
            },
            Endpoint {
                lid: 0,
                gid: [0; 16],
                ..sample()
            },
        ];
        for ep in bad {
            let err = ep.validate().unwrap_err();
            assert_eq!(Endpoint::decode(&ep.encode()), Err(err));
        }
    }

    #[test]
    fn display_messages() {
        assert_eq!(TransportKind::Rc.to_string(), "RC");
        assert_eq!(TransportKind::Uc.to_string(), "UC");
        assert_eq!(TransportKind::Ud.to_string(), "UD");
        let cases = [
            (
                DecodeError::Truncated { got: 3, want: 51 },
                "truncated: got 3 bytes, expected 51",
            ),
            (
                DecodeError::Oversized { got: 60, want: 51 },
                "too long: got 60 bytes, expected 51",
            ),
            (
                DecodeError::BadLength { found: 7, want: 40 },
                "endpoint body length 7 is wrong for format version 1 (expected 40)",
            ),
            (
                DecodeError::Checksum {
                    expected: 1,
                    found: 0xdead_beef,
                },
                "endpoint checksum mismatch (computed 0x00000001, frame carries 0xdeadbeef); \
                 the bytes were corrupted on the way",
            ),
        ];
        for (err, msg) in cases {
            assert_eq!(err.to_string(), msg);
        }
        let read = ReadError::from(DecodeError::Truncated { got: 3, want: 51 });
        assert_eq!(
            read.to_string(),
            "malformed endpoint from peer: truncated: got 3 bytes, expected 51"
        );
        assert!(std::error::Error::source(&read).is_some());
    }

    #[test]
    fn write_then_read_from_cursor() {
        let a = sample();
        let b = Endpoint {
            transport: TransportKind::Ud,
            qpn: 77,
            mtu: 1024,
            ..sample()
        };
        let mut buf = Vec::new();
        a.write_to(&mut buf).unwrap();
        b.write_to(&mut buf).unwrap();
        buf.extend_from_slice(b"tail");
        assert_eq!(buf.len(), 2 * ENCODED_LEN + 4);
        let mut cursor = Cursor::new(buf);
        assert_eq!(Endpoint::read_from(&mut cursor).unwrap(), a);
        assert_eq!(Endpoint::read_from(&mut cursor).unwrap(), b);
        // Nothing past each frame was consumed.
        let mut rest = Vec::new();
        cursor.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"tail");
    }

    #[test]
    fn stream_that_ends_early() {
        let bytes = sample().encode();
        for len in 0..ENCODED_LEN {
            let mut cursor = Cursor::new(&bytes[..len]);
            match Endpoint::read_from(&mut cursor) {
                Err(ReadError::Decode(DecodeError::Truncated { got, want })) => {
                    assert_eq!((got, want), (len, ENCODED_LEN));
                }
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    /// Hands out at most one byte per read and fails every other call with
    /// `Interrupted`; errors with `kind` once the data runs out.
    struct Trickle<'a> {
        data: &'a [u8],
        calls: usize,
        at_end: Option<io::ErrorKind>,
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
                    Ok(1)
                }
                (None, _) => match self.at_end {
                    Some(kind) => Err(kind.into()),
                    None => Ok(0),
                },
                (Some(_), None) => Ok(0),
            }
        }
    }

    #[test]
    fn read_byte_by_byte_with_interruptions() {
        let bytes = sample().encode();
        let mut r = Trickle {
            data: &bytes,
            calls: 0,
            at_end: None,
        };
        assert_eq!(Endpoint::read_from(&mut r).unwrap(), sample());
        assert!(r.data.is_empty());
    }

    #[test]
    fn read_io_error_is_passed_on() {
        let bytes = sample().encode();
        let mut r = Trickle {
            data: &bytes[..10],
            calls: 0,
            at_end: Some(io::ErrorKind::ConnectionReset),
        };
        match Endpoint::read_from(&mut r) {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_stops_at_bad_magic() {
        // Four bytes of something else, then the stream would block forever
        // (here: fail) — the reader must not ask for more.
        let mut r = Trickle {
            data: b"HTTP",
            calls: 0,
            at_end: Some(io::ErrorKind::WouldBlock),
        };
        match Endpoint::read_from(&mut r) {
            Err(ReadError::Decode(DecodeError::BadMagic { found })) => assert_eq!(&found, b"HTTP"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_stops_at_bad_header() {
        let mut bytes = sample().encode();
        bytes[4] = 9;
        let mut r = Trickle {
            data: &bytes[..HEADER_LEN],
            calls: 0,
            at_end: Some(io::ErrorKind::WouldBlock),
        };
        match Endpoint::read_from(&mut r) {
            Err(ReadError::Decode(DecodeError::UnsupportedVersion {
                found: 9,
                supported: 1,
            })) => {}
            other => panic!("{other:?}"),
        }
        let mut bytes = sample().encode();
        bytes[6] = 99;
        let mut r = Trickle {
            data: &bytes[..HEADER_LEN],
            calls: 0,
            at_end: Some(io::ErrorKind::WouldBlock),
        };
        match Endpoint::read_from(&mut r) {
            Err(ReadError::Decode(DecodeError::BadLength {
                found: 99,
                want: 40,
            })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_reports_checksum() {
        let mut bytes = sample().encode();
        bytes[30] ^= 0xff;
        match Endpoint::read_from(&mut Cursor::new(&bytes[..])) {
            Err(ReadError::Decode(DecodeError::Checksum { .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    use crate::test_rng::Rng;

    fn random_endpoint(rng: &mut Rng) -> Endpoint {
        let mut gid = [0u8; 16];
        gid.iter_mut().for_each(|b| *b = rng.byte());
        Endpoint {
            transport: [TransportKind::Rc, TransportKind::Uc, TransportKind::Ud][rng.below(3)],
            qpn: rng.next() as u32
                & if rng.below(8) == 0 {
                    u32::MAX
                } else {
                    0x00FF_FFFF
                },
            psn: rng.next() as u32
                & if rng.below(8) == 0 {
                    u32::MAX
                } else {
                    0x00FF_FFFF
                },
            lid: rng.next() as u16,
            gid,
            mtu: [256, 512, 1024, 2048, 4096, 1500, 0][rng.below(7)],
            port: rng.byte(),
            fingerprint: rng.next(),
        }
    }

    /// Decodes `bytes` (must not panic); a success must re-encode to them.
    /// Reading them as a stream gives what decoding the first frame's worth
    /// of them gives.
    fn check_decode(bytes: &[u8]) -> bool {
        let first = &bytes[..bytes.len().min(ENCODED_LEN)];
        match Endpoint::read_from(&mut Cursor::new(bytes)) {
            Ok(ep) => assert_eq!(Endpoint::decode(first), Ok(ep)),
            Err(ReadError::Decode(err)) => assert_eq!(Endpoint::decode(first), Err(err)),
            Err(ReadError::Io(err)) => panic!("a cursor cannot fail: {err}"),
        }
        match Endpoint::decode(bytes) {
            Ok(ep) => {
                assert_eq!(&ep.encode()[..], bytes);
                assert_eq!(ep.validate(), Ok(()));
                true
            }
            Err(err) => {
                assert!(!err.to_string().is_empty());
                false
            }
        }
    }

    /// A fixed stand-in for the coverage-guided `endpoint` fuzz target
    /// (fuzz/, docs/fuzzing.md), which checks these properties and more
    /// (bytes read, no allocation). This loop stays so that a plain stable
    /// `cargo test`, and Miri, check them too.
    #[test]
    fn random_bytes_and_mutations() {
        let iterations = if cfg!(miri) { 200 } else { 100_000 };
        let mut rng = Rng(0x0dd_b1a5_ed5e_ed01);
        let mut accepted = 0usize;
        for _ in 0..iterations {
            // Entirely random bytes, sometimes behind a valid header.
            let len = rng.below(80);
            let mut buf = [0u8; 80];
            for chunk in buf.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            if rng.below(2) == 0 {
                buf[..HEADER_LEN].copy_from_slice(&sample().encode()[..HEADER_LEN]);
            }
            check_decode(&buf[..len]);

            // Random endpoints round-trip exactly when they validate.
            let ep = random_endpoint(&mut rng);
            let good = ep.encode();
            assert_eq!(Endpoint::decode(&good).is_ok(), ep.validate().is_ok());
            accepted += usize::from(check_decode(&good));

            // Mutations of a valid encoding; resealed half the time so that
            // field validation is reached.
            let mut bytes = good;
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(ENCODED_LEN);
                match rng.below(3) {
                    0 => bytes[i] ^= 1 << rng.below(8),
                    1 => bytes[i] = rng.byte(),
                    _ => bytes[i] = bytes[i].wrapping_add(1),
                }
            }
            if rng.below(2) == 0 {
                reseal(&mut bytes);
            }
            let cut = match rng.below(4) {
                0 => rng.below(ENCODED_LEN + 1),
                _ => ENCODED_LEN,
            };
            check_decode(&bytes[..cut]);
            let mut longer = [0u8; ENCODED_LEN + 8];
            longer[..ENCODED_LEN].copy_from_slice(&bytes);
            check_decode(&longer[..ENCODED_LEN + 1 + rng.below(8)]);
        }
        // The generator produces valid endpoints most of the time.
        assert!(accepted > iterations / 4, "{accepted} of {iterations}");
    }
}

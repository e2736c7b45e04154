//! The seed corpora: a few valid inputs of each target and their obvious
//! neighbours. `cargo run --example seeds` writes them under `corpus/`
//! (then `cargo fuzz cmin` keeps those that add coverage).

use safeverbs::{Client, Declaration, Endpoint, Role, Server, TransportKind, REMOTE_REGION_LEN};

use crate::handshake::{hello, local, Kv, OURS};

fn endpoint(transport: TransportKind, mtu: u32, fingerprint: u64) -> Endpoint {
    Endpoint {
        transport,
        qpn: 0x00AB_CDEF,
        psn: 0x0012_3456,
        lid: 0xBEEF,
        gid: [
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
        ],
        mtu,
        port: 1,
        fingerprint,
    }
}

fn descriptor(addr: u64, len: u64, rkey: u32) -> [u8; REMOTE_REGION_LEN] {
    let mut out = [0; REMOTE_REGION_LEN];
    out[..8].copy_from_slice(&addr.to_be_bytes());
    out[8..16].copy_from_slice(&len.to_be_bytes());
    out[16..].copy_from_slice(&rkey.to_be_bytes());
    out
}

/// What a good peer of role `R` (the other end of this one) sends.
fn good_peer<R: Role>(region_len: u64) -> Vec<u8> {
    let mut out = Endpoint {
        qpn: 0x4242,
        ..local()
    }
    .encode()
    .to_vec();
    out.extend_from_slice(&hello::<R::Peer>());
    out.extend_from_slice(&descriptor(0x7f00_0000_1000, region_len, 0x1234));
    out.push(safeverbs::__fuzz::READY);
    out
}

/// `(target, name, bytes)` of every seed.
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, name.to_string(), bytes));
    };

    let good = endpoint(TransportKind::Rc, 4096, 0x0123_4567_89AB_CDEF);
    add("endpoint", "rc-4096", good.encode().to_vec());
    add(
        "endpoint",
        "uc-1024",
        endpoint(TransportKind::Uc, 1024, 7).encode().to_vec(),
    );
    add(
        "endpoint",
        "ud-qpn1-256",
        Endpoint {
            qpn: 1,
            ..endpoint(TransportKind::Ud, 256, 0)
        }
        .encode()
        .to_vec(),
    );
    add(
        "endpoint",
        "ib-lid-only",
        Endpoint {
            gid: [0; 16],
            lid: 7,
            ..good
        }
        .encode()
        .to_vec(),
    );
    add("endpoint", "truncated", good.encode()[..30].to_vec());
    add(
        "endpoint",
        "two-frames",
        [good.encode(), good.encode()].concat(),
    );
    add(
        "endpoint",
        "http",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    );
    let mut v2 = good.encode();
    v2[4] = 2;
    add("endpoint", "version-2", v2.to_vec());
    let mut bad_mtu = good.encode();
    bad_mtu[35..39].copy_from_slice(&1500u32.to_be_bytes());
    crate::reseal(&mut bad_mtu);
    add("endpoint", "mtu-1500", bad_mtu.to_vec());

    add(
        "remote_region",
        "bytes-4096",
        descriptor(0x1000, 4096, 9).to_vec(),
    );
    add("remote_region", "u64", descriptor(0x2000, 8, 1).to_vec());
    add(
        "remote_region",
        "record",
        descriptor(0x3000, 24, 2).to_vec(),
    );
    add(
        "remote_region",
        "records-3",
        descriptor(0x3000, 72, 2).to_vec(),
    );
    add("remote_region", "empty", descriptor(0x4000, 0, 3).to_vec());
    add(
        "remote_region",
        "at-the-top",
        descriptor(u64::MAX - 8, 8, 4).to_vec(),
    );
    let mut ranged = descriptor(0x5000, 240, 5).to_vec();
    for v in [1u64, 4, 2] {
        ranged.extend_from_slice(&v.to_be_bytes());
    }
    add("remote_region", "records-with-ranges", ranged);
    // Regressions: what the target found (docs/fuzzing.md).
    add(
        "remote_region",
        "found-zst-slice-of-8-bytes",
        descriptor(0x2000, 8, 1).to_vec(),
    );
    let mut top = descriptor(0, u64::MAX, u32::MAX).to_vec();
    for v in [0u64, 0, u64::MAX] {
        top.extend_from_slice(&v.to_be_bytes());
    }
    add("remote_region", "found-elem-max-of-the-address-space", top);

    // Byte 0: 0x00 = one byte per read, closed, server; 0x47 = 128 bytes
    // per read, client; 0x80 = reseal; 0x18 = interrupted, silent.
    let server = good_peer::<Server>(0);
    let client = good_peer::<Client>(24);
    for (control, name) in [
        (0x00u8, "server"),
        (0x17, "server-stall"),
        (0x2b, "server-reset"),
    ] {
        add("handshake", name, [&[control][..], &server].concat());
    }
    for (control, name) in [(0x47u8, "client"), (0x4f, "client-interrupted")] {
        add("handshake", name, [&[control][..], &client].concat());
    }
    let mut other = server.clone();
    other[39..47].copy_from_slice(&(Kv::FINGERPRINT ^ 1).to_be_bytes());
    add(
        "handshake",
        "other-declaration-resealed",
        [&[0x80u8][..], &other].concat(),
    );
    add(
        "handshake",
        "server-ours",
        [&[0x00u8][..], &server[..51], &OURS].concat(),
    );
    add(
        "handshake",
        "truncated",
        [&[0x00u8][..], &server[..60]].concat(),
    );
    for (name, bytes) in crate::model_ops::seeds() {
        add("model_ops", name, bytes);
    }
    seeds
}

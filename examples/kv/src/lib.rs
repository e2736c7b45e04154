//! The key-value protocol that `kv_client` and `kv_server` share: the
//! messages, the mailbox, and the connection declaration that ties them
//! together.
//!
//! The client sends [`Request`]s, the server answers each with a
//! [`Response`], and the server exposes a [`Mailbox`] that the client
//! RDMA-writes into: when it is done, it writes the sequence number of the
//! last response it saw and a checksum of every response it received, and
//! the server checks both against what it sent. [`Kv`] declares all of it,
//! so the client cannot send a `Response`, cannot receive into a
//! `Request`, and can RDMA-write only into the `Mailbox`'s fields.

use safeverbs::{connection, Device, DeviceOptions, Rc, RdmaPod};

/// Longest key, in bytes.
pub const KEY_LEN: usize = 32;
/// Longest value, in bytes.
pub const VALUE_LEN: usize = 64;
/// Default TCP port of the connection handshake.
pub const DEFAULT_PORT: u16 = 18520;
/// Receives the server keeps posted.
pub const SERVER_DEPTH: u32 = 16;

/// What a request asks for ([`Request::op`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Store `value` under `key`.
    Put = 1,
    /// Look `key` up.
    Get = 2,
    /// Remove `key`.
    Delete = 3,
    /// The client is done: check the mailbox.
    Bye = 4,
}

impl Op {
    /// The operation with this number, if there is one.
    pub fn from_wire(op: u32) -> Option<Op> {
        [Op::Put, Op::Get, Op::Delete, Op::Bye]
            .into_iter()
            .find(|o| *o as u32 == op)
    }

    /// `"PUT"`, `"GET"`, …
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
            Op::Delete => "DELETE",
            Op::Bye => "BYE",
        }
    }
}

/// How a request went ([`Response::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done (for a GET, the value is in the response).
    Ok = 0,
    /// No such key.
    NotFound = 1,
    /// The request made no sense (unknown operation, bad length), or the
    /// mailbox did not hold what the server expected.
    Invalid = 2,
}

impl Status {
    /// The status with this number, if there is one.
    pub fn from_wire(status: u32) -> Option<Status> {
        [Status::Ok, Status::NotFound, Status::Invalid]
            .into_iter()
            .find(|s| *s as u32 == status)
    }

    /// `"OK"`, `"NOT FOUND"` or `"INVALID"`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotFound => "NOT FOUND",
            Status::Invalid => "INVALID",
        }
    }
}

/// What the client sends: one operation on one key.
#[derive(RdmaPod, Clone, Copy, Debug)]
#[repr(C)]
pub struct Request {
    /// Sequence number, from 1; the response carries it back.
    pub seq: u64,
    /// An [`Op`].
    pub op: u32,
    /// Bytes of `key` in use.
    pub key_len: u16,
    /// Bytes of `value` in use (PUT).
    pub value_len: u16,
    /// The key.
    pub key: [u8; KEY_LEN],
    /// The value (PUT).
    pub value: [u8; VALUE_LEN],
}

impl Request {
    /// A request, or why it cannot be one.
    pub fn new(seq: u64, op: Op, key: &[u8], value: &[u8]) -> Result<Self, String> {
        if key.len() > KEY_LEN || value.len() > VALUE_LEN {
            return Err(format!(
                "key of {} bytes or value of {} bytes is too long ({KEY_LEN} and {VALUE_LEN} at most)",
                key.len(),
                value.len()
            ));
        }
        let mut req = Request::zeroed();
        req.seq = seq;
        req.op = op as u32;
        req.key_len = key.len() as u16;
        req.value_len = value.len() as u16;
        req.key[..key.len()].copy_from_slice(key);
        req.value[..value.len()].copy_from_slice(value);
        Ok(req)
    }

    /// The key's bytes, or `None` if `key_len` is out of range.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.get(..usize::from(self.key_len))
    }

    /// The value's bytes, or `None` if `value_len` is out of range.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(..usize::from(self.value_len))
    }
}

/// What the server sends: the outcome of one request.
#[derive(RdmaPod, Clone, Copy, Debug)]
#[repr(C)]
pub struct Response {
    /// The request's sequence number.
    pub seq: u64,
    /// A [`Status`].
    pub status: u32,
    /// Bytes of `value` in use.
    pub value_len: u32,
    /// The value (GET), or a message (BYE).
    pub value: [u8; VALUE_LEN],
}

impl Response {
    /// A response carrying `value` (cut to [`VALUE_LEN`] bytes).
    pub fn new(seq: u64, status: Status, value: &[u8]) -> Self {
        let mut resp = Response::zeroed();
        let n = value.len().min(VALUE_LEN);
        resp.seq = seq;
        resp.status = status as u32;
        resp.value_len = n as u32;
        resp.value[..n].copy_from_slice(&value[..n]);
        resp
    }

    /// The value's bytes, or `None` if `value_len` is out of range.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(..self.value_len as usize)
    }

    /// Folds this response, every byte of it, into the running checksum
    /// `h` (64-bit FNV-1a).
    pub fn checksum(&self, h: u64) -> u64 {
        let h = fnv1a(h, &self.seq.to_le_bytes());
        let h = fnv1a(h, &self.status.to_le_bytes());
        let h = fnv1a(h, &self.value_len.to_le_bytes());
        fnv1a(h, &self.value)
    }
}

/// The starting value of a response checksum.
pub const CHECKSUM_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The region the server exposes; the client RDMA-writes into it.
#[derive(RdmaPod, Clone, Copy, Debug)]
#[repr(C)]
pub struct Mailbox {
    /// Sequence number of the last response the client saw.
    pub last_seen: u64,
    /// Checksum ([`Response::checksum`]) of every response the client saw.
    pub checksum: u64,
}

connection! {
    /// The key-value connection: over RC, the client sends [`Request`]s,
    /// the server sends [`Response`]s and exposes a [`Mailbox`]; the client
    /// exposes nothing.
    pub struct Kv: Rc {
        client sends Request;
        server sends Response, exposes Mailbox;
    }
}

/// Which RDMA device, port and GID to use. Anything not given comes from
/// `SAFEVERBS_DEVICE` / `SAFEVERBS_PORT` / `SAFEVERBS_GID_INDEX`, or else is
/// chosen automatically.
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    /// RDMA device, e.g. rxe0 or mlx5_0 [default: automatic]
    #[arg(long)]
    pub device: Option<String>,
    /// Port of the RDMA device (1-based) [default: automatic]
    #[arg(long)]
    pub ib_port: Option<u8>,
    /// GID table index [default: automatic, RoCE v2 over IPv4 first]
    #[arg(long)]
    pub gid_index: Option<u8>,
}

impl DeviceArgs {
    /// Opens the device these flags (merged with the environment) name,
    /// and prints what was chosen, after `who: `.
    pub fn open(&self, who: &str) -> safeverbs::Result<Device> {
        let flags = DeviceOptions {
            device: self.device.clone(),
            port: self.ib_port,
            gid_index: self.gid_index,
        };
        let dev = Device::open_with(&flags.or(DeviceOptions::from_env()?))?;
        println!("{who}: device {dev}");
        Ok(dev)
    }
}

/// Bytes as text for printing: UTF-8 where it is, escaped where not.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Shows the library's log on stderr: warnings and errors (say, "the peer
/// closed the connection"), or what `RUST_LOG` asks for
/// (`RUST_LOG=safeverbs=debug`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only if a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

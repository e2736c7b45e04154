//! SafeVerbs: memory-safe, typed RDMA verbs.
//!
//! RDMA lets the NIC read and write registered memory behind the
//! compiler's back. SafeVerbs keeps one rule: **memory the NIC may touch is
//! never visible to safe code as an ordinary Rust reference at the same
//! time.** From it follow the types:
//!
//! - [`MemoryRegion<T>`] owns its memory (aligned to a page, or more if `T`
//!   needs it) and holds its
//!   protection domain alive; only [`RdmaPod`] types go in.
//! - [`Segment<T, Ro|Rw>`](Segment) is a checked view of part of a region:
//!   read-only segments may overlap, a read-write one overlaps nothing.
//! - Posting moves the segment in; the completion hands it back:
//!   `qp.send(seg).await` is `(Result<Completion>, Segment)`. Using a posted
//!   buffer is a compile error.
//! - [`QueuePair<Transport, State>`](QueuePair) has its state in its type:
//!   `send`/`write`/`read` exist only on `Rts`, `recv` from `Init` on, RDMA
//!   READ only on `Rc`.
//! - Dropping a future frees nothing the NIC may still use: resources wait
//!   in the completion queue's slot table until the completion is reaped.
//!   Dropping a queue pair never waits: it moves the queue pair to ERR and
//!   leaves the flushes to the completion queue.
//! - Every wait has a bound: finite retry counts by default, and
//!   [`Post::timeout`] for a deadline of your own.
//!
//! # A ping-pong, both sides
//!
//! ```no_run
//! use safeverbs::{exchange, tcp_accept, tcp_connect, Access, Device, Rc};
//!
//! # async fn run(server: bool) -> Result<(), Box<dyn std::error::Error>> {
//! let dev = Device::open_default()?; // or SAFEVERBS_DEVICE=rxe0
//! let pd = dev.alloc_pd()?;
//! let cq = dev.create_cq(128)?;
//! let qp = pd.queue_pair::<Rc>().send_cq(&cq).recv_cq(&cq).build()?;
//! let buf = pd.register([0u8; 64], Access::local())?;
//!
//! let mut stream = if server {
//!     tcp_accept(&std::net::TcpListener::bind("0.0.0.0:7471")?)?
//! } else {
//!     tcp_connect("127.0.0.1:7471")?
//! };
//! // Post the receive before connecting, so the peer's send finds it.
//! let inbox = qp.recv(buf.read_write()?);
//! let peer = exchange(&mut stream, &qp.endpoint())?;
//! let qp = qp.connect(&peer)?;
//!
//! if server {
//!     let (done, msg) = inbox.await;
//!     println!("got {} bytes: {:?}", done?.byte_len, &msg.read()[..5]);
//!     let (done, _) = qp.send(msg).await; // answer with the same bytes
//!     done?;
//! } else {
//!     let out = pd.register(*b"ping............................................................", Access::local())?;
//!     let (done, _) = qp.send(out.read_only()?).await;
//!     done?;
//!     let (done, reply) = inbox.await;
//!     done?;
//!     assert_eq!(&reply.read()[..4], b"ping");
//! }
//! # Ok(()) }
//! ```
//!
//! # Deriving `RdmaPod` for your own types
//!
//! Only [`RdmaPod`] types go into a region: integers, floats, arrays of
//! them, and structs that derive it. The derive checks at compile time
//! that every bit pattern of the struct is a valid value and that the peer
//! can agree on its layout; a struct that breaks a rule does not compile,
//! and the error says how to fix it:
//!
//! - `#[repr(C)]` or `#[repr(transparent)]` (`packed` and `align(N)` may be
//!   added): Rust's default layout may reorder fields.
//! - Every field is `RdmaPod`: no `bool`, `char`, references, pointers or
//!   enums, which a peer could overwrite with bytes that are not a value.
//! - No padding: padding bytes have no defined value and would leak memory
//!   to the peer. The error names each gap; fill it with an explicit
//!   `_pad: [u8; N]` field, or order the fields by decreasing alignment.
//! - No generic parameters; no enums or unions.
//!
//! No rule can be turned off, with or without `unsafe`.
//!
//! Next to the struct, with its visibility, the derive generates the
//! **field layout** `<Name>Fields<P>`: one member per field, with the
//! field's name, visibility and documentation. `fields()` returns it, over
//! a local region ([`MemoryRegion::fields`], members are [`LocalField`]s,
//! made into [`Segment`]s under the overlap rules), over a peer's memory
//! ([`RemoteRegion::fields`], [`RemoteSegment::fields`]: bounded targets of
//! RDMA WRITE and READ) or over what a connection's peer exposes
//! ([`Exposed::fields`]). A field of a derived struct type projects further
//! (`region.fields().header.fields().len`). A private field's member is
//! private too: field privacy hides a field's *name*, not its bytes.
//!
//! ```no_run
//! use safeverbs::{Access, Device, RdmaPod};
//!
//! #[derive(RdmaPod, Clone, Copy)]
//! #[repr(C)]
//! struct Mailbox {
//!     seq: u64,
//!     len: u32,
//!     flags: u32,
//!     data: [u8; 64],
//! }
//!
//! # fn main() -> safeverbs::Result<()> {
//! let pd = Device::open_default()?.alloc_pd()?;
//! let inbox = pd.register(Mailbox::zeroed(), Access::remote_write())?;
//! let seq = inbox.fields().seq.read_only()?; // Segment<u64, Ro> at offset 0
//! let data = inbox.fields().data.read_write()?; // Segment<[u8; 64], Rw> at 16
//! let target = inbox.remote().fields().data; // RemoteSegment<[u8; 64]>, for a peer
//! # let _ = (seq, data, target); Ok(()) }
//! ```
//!
//! It also implements `RdmaPod::FINGERPRINT`, a hash of the struct's name,
//! size, alignment and fields (see [`fingerprint`]), which peers compare
//! when they connect. Two attributes go on the struct:
//!
//! - `#[rdma(crate = "path")]`: where `safeverbs` is when it is renamed or
//!   re-exported (default `::safeverbs`). It says where the generated code
//!   finds the library, never what is checked.
//! - `#[rdma(fields = "Name")]`: the name of the field layout (default:
//!   the struct's name followed by `Fields`).
//!
//! The macro's page, [`RdmaPod`](derive@RdmaPod), has the whole story: how
//! each rule is checked, what else is generated, and what a private field
//! does and does not hide.
//!
//! # Completion modes and Cargo features
//!
//! A completion queue's [`CqMode`] says how its futures wait:
//! [`BusyPoll`](CqMode::BusyPoll) (the default of
//! [`Device::create_cq`]: a pending future polls the queue itself, on any
//! executor), [`Notifier`](CqMode::Notifier) (a completion channel and a
//! thread per queue: futures sleep until their completion arrives, on any
//! executor) and, with the `tokio` feature, `Tokio` (the completion
//! channel driven by a task on the current tokio runtime through
//! `AsyncFd`). Choose one with [`Device::create_cq_with`].
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tokio` | no | `CqMode::Tokio`, and the `tokio` dependency |
//! | `model` | no | `safeverbs::model`, a pure-Rust RDMA device in this process: the whole API on a machine without RDMA, and under Miri (this crate's own tests always have it) |
//!
//! ```toml
//! [dependencies]
//! safeverbs = { version = "0.1", features = ["tokio"] }
//! ```
//!
//! Without features the crate depends on no async runtime: its futures run
//! on any executor. (`safeverbs-sys`, the raw bindings, has a feature of its
//! own, `rdmacm`, which also binds librdmacm; SafeVerbs itself does not use
//! it.)
//!
//! # Running without an RDMA card
//!
//! Soft-RoCE (`rdma_rxe`) gives any Linux machine a real verbs device; the
//! repository's `softroce/run -- <program>` boots a small virtual machine
//! with it when the host kernel has none.
#![forbid(clippy::undocumented_unsafe_blocks)]
// docs.rs builds on nightly with `--cfg docsrs`: mark what needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod completions;
mod device;
mod error;
pub mod fingerprint;
mod memory;
#[cfg(feature = "model")]
#[cfg_attr(docsrs, doc(cfg(feature = "model")))]
pub mod model;
mod posting;
mod queue_pair;
mod setup;
mod sync;
#[cfg(any(test, feature = "model"))]
mod test_rng;
mod wire;

pub use completions::completion::{Completion, Opcode, WcStatus};
pub use completions::cq::CompletionQueue;
pub use completions::events::CqMode;
pub use device::{device_names, Device, DeviceLimits, DeviceOptions, GidKind, PortInfo};
pub use error::{Error, Result, Shutdown};
pub use memory::fields::{FieldToken, HasFields, LocalField, Project};
pub use memory::interval::Conflict;
pub use memory::mode::{Mode, Ro, Rw, Writable};
pub use memory::pd::{Access, ProtectionDomain};
pub use memory::pod::{RdmaBuf, RdmaPod};
pub use memory::region::MemoryRegion;
pub use memory::remote::{RemoteRegion, RemoteSegment, REMOTE_REGION_LEN};
pub use memory::segment::Segment;
pub use posting::batch::{PostBatch, MAX_BATCH};
pub use posting::inline::{Inline, MAX_INLINE};
pub use posting::ops::Post;
pub use posting::unsignaled::Unsignaled;
pub use queue_pair::qp::{QpBuilder, QueuePair, TransitionError};
pub use queue_pair::transport::{
    CanRecv, CanSend, Failed, Init, Rc, Reliable, Rtr, Rts, State, Transport, TransportKind, Uc,
};
/// Derives [`RdmaPod`](trait@RdmaPod) for a `#[repr(C)]` struct, with its
/// field layout `<Name>Fields`; the rules in brief are on the
/// [crate page](crate#deriving-rdmapod-for-your-own-types), the whole of them
/// below.
pub use safeverbs_derive::RdmaPod;
pub use setup::connection::{
    declaration_fingerprint, Client, Connection, ConnectionBuilder, Declaration, Exposed, Nothing,
    Prepared, Role, Server,
};
pub use setup::endpoint::{DecodeError, Endpoint, ReadError, ENCODED_LEN, ENDPOINT_VERSION};
pub use setup::exchange::{
    exchange, exchange_within, tcp_accept, tcp_accept_within, tcp_connect, tcp_connect_within,
    EXCHANGE_TIMEOUT,
};

/// What `#[derive(RdmaPod)]` expands to refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::fingerprint;
    pub use crate::memory::fields::FieldToken;
    pub use crate::memory::fields::{HasFields, Project};
    pub use crate::memory::pod::RdmaPod;
    pub use core;

    /// The message of the padding check of `#[derive(RdmaPod)]`, evaluated
    /// in a `const`: unless the `fields` (name, offset, size, in
    /// declaration order) cover all `size` bytes of `ty`, it panics, which
    /// is a compile error naming each gap and how to fill it.
    ///
    /// Soundness does not rest on it: the derive calls it only once it has
    /// found padding itself (with the core library alone), and panics after it
    /// should it return, since `#[rdma(crate = ...)]` may point the call
    /// at a function of the user's.
    #[allow(clippy::panic)] // The panic is the compile error.
    pub const fn assert_no_padding(ty: &str, size: usize, fields: &[(&str, usize, usize)]) {
        let mut covered = 0;
        let mut i = 0;
        while i < fields.len() {
            covered += fields[i].2;
            i += 1;
        }
        if covered >= size {
            return;
        }
        let mut msg = Msg::new()
            .str("`")
            .str(ty)
            .str("` has ")
            .num(size - covered)
            .str(" bytes of padding, which would carry undefined bytes to the peer: ");
        let (mut end, mut first_gap, mut elided, mut i) = (0, 0, false, 0);
        while i <= fields.len() {
            let offset = if i < fields.len() { fields[i].1 } else { size };
            if offset > end && msg.len > 640 {
                // Keep room for the advice: the first gaps say enough.
                if !elided {
                    msg = msg.str(", and more");
                    elided = true;
                }
            } else if offset > end {
                msg = msg
                    .str(if first_gap == 0 { "" } else { ", " })
                    .num(offset - end);
                msg = if i == 0 {
                    msg.str(" bytes before `").str(fields[i].0).str("`")
                } else if i < fields.len() {
                    let between = msg.str(" bytes between `").str(fields[i - 1].0);
                    between.str("` and `").str(fields[i].0).str("`")
                } else {
                    msg.str(" bytes at the end, after `")
                        .str(fields[i - 1].0)
                        .str("`")
                };
                msg = msg.str(" (bytes ").num(end).str("..").num(offset).str(")");
                if first_gap == 0 {
                    first_gap = offset - end;
                }
            }
            if i < fields.len() && fields[i].1 + fields[i].2 > end {
                end = fields[i].1 + fields[i].2;
            }
            i += 1;
        }
        let msg = msg
            .str(". Reorder the fields by decreasing alignment, or fill each gap with an ")
            .str("explicit field such as `_pad: [u8; ")
            .num(first_gap)
            .str("]`");
        let (text, _) = msg.buf.split_at(msg.len);
        match core::str::from_utf8(text) {
            Ok(text) => panic!("{}", text),
            Err(_) => panic!("the struct has padding: reorder its fields or add `_pad` fields"),
        }
    }

    /// A message built at compile time (`format!` is not `const`).
    struct Msg {
        buf: [u8; 1024],
        len: usize,
    }

    impl Msg {
        const fn new() -> Self {
            Self {
                buf: [0; 1024],
                len: 0,
            }
        }

        /// Appends `s`, or as much of it as fits (at a character boundary).
        const fn str(mut self, s: &str) -> Self {
            let bytes = s.as_bytes();
            let mut i = 0;
            while i < bytes.len() && self.len < self.buf.len() {
                self.buf[self.len] = bytes[i];
                self.len += 1;
                i += 1;
            }
            // Truncated inside a character: drop its leading bytes.
            if i < bytes.len() {
                while self.len > 0 && self.buf[self.len - 1] & 0xc0 == 0x80 {
                    self.len -= 1;
                }
                if self.len > 0 && self.buf[self.len - 1] >= 0xc0 {
                    self.len -= 1;
                }
            }
            self
        }

        /// Appends `n` in decimal.
        const fn num(self, mut n: usize) -> Self {
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let (_, digits) = digits.split_at(at);
            match core::str::from_utf8(digits) {
                Ok(digits) => self.str(digits),
                Err(_) => self,
            }
        }
    }
}

/// Internals exposed for the benchmarks in `benches/`; not a public API.
#[doc(hidden)]
pub mod __bench {
    pub use crate::completions::slots::{Delivered, SlotTable, WrId};
    pub use crate::memory::interval::{Access as Sharing, IntervalMap};

    /// The device context behind `dev`: its provider table (`ops`) is what
    /// the per-operation benchmark replaces with a null data path.
    pub fn raw_context(dev: &crate::Device) -> *mut safeverbs_sys::ibv_context {
        dev.inner.ctx
    }

    /// The `ibv_qp` behind `qp` (null once it is destroyed), for the raw
    /// loop the benchmark compares the safe path with.
    pub fn raw_qp<T: crate::Transport, S: crate::State>(
        qp: &crate::QueuePair<T, S>,
    ) -> *mut safeverbs_sys::ibv_qp {
        qp.inner
            .enter()
            .map_or(std::ptr::null_mut(), |inside| inside.raw())
    }

    /// The scatter entry a post of `segment` carries.
    pub fn sge_of<T: ?Sized, M>(segment: &crate::Segment<T, M>) -> safeverbs_sys::ibv_sge {
        safeverbs_sys::ibv_sge {
            addr: segment.raw.addr(),
            length: segment.raw.len as u32,
            lkey: segment.raw.region.lkey,
        }
    }

    /// The `ibv_cq` behind `cq`.
    pub fn raw_cq(cq: &crate::CompletionQueue) -> *mut safeverbs_sys::ibv_cq {
        cq.inner.raw()
    }

    /// Builds the `ibv_send_wr` of a signaled RDMA WRITE, as the post path
    /// does.
    pub fn build_write_wr(
        id: u64,
        sge: &mut safeverbs_sys::ibv_sge,
        addr: u64,
        rkey: u32,
    ) -> safeverbs_sys::ibv_send_wr {
        crate::posting::ops::send_wr(
            WrId(id),
            sge,
            crate::posting::ops::Request::Write {
                addr,
                rkey,
                imm: None,
            },
        )
    }
}

/// Entry points for the fuzz targets in `fuzz/` (see `docs/fuzzing.md`):
/// the library's own handshake code, run against a scripted peer instead of
/// a TCP stream. Not a public API.
///
/// Everything a peer sends before a device is needed goes through the very
/// functions [`Prepared::connect`] runs: the endpoint exchange and its
/// checks, the hellos, the region descriptors and their decoding; only the
/// queue pair's transition, which needs a device, is left out (the peer's
/// region descriptor is decoded where `connect` would then connect).
#[doc(hidden)]
pub mod __fuzz {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::time::Duration;

    use crate::setup::connection::{handshake as run, Terms};
    use crate::setup::exchange::Stream;
    use crate::{Declaration, Endpoint, RemoteRegion, Result, Role, EXCHANGE_TIMEOUT};

    /// The connection hello's magic.
    pub const HELLO_MAGIC: [u8; 4] = crate::setup::connection::HELLO_MAGIC;
    /// The connection hello's version.
    pub const HELLO_VERSION: u8 = crate::setup::connection::HELLO_VERSION;
    /// The connection hello's size: magic, version, role.
    pub const HELLO_LEN: usize = crate::setup::connection::HELLO_LEN;
    /// The handshake's last byte.
    pub const READY: u8 = crate::setup::connection::READY;

    /// How the scripted peer's stream behaves once its bytes are all read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum End {
        /// The peer closed the stream: reads return 0.
        Close,
        /// The peer stays silent: reads time out (`WouldBlock`, as a socket
        /// with a read timeout reports it).
        Stall,
        /// The stream fails: reads return `ConnectionReset`.
        Reset,
    }

    /// A peer that sends `bytes` and then ends as `end` says.
    #[derive(Debug, Clone, Copy)]
    pub struct Peer<'a> {
        /// Everything the peer sends.
        pub bytes: &'a [u8],
        /// The most bytes one read returns (0 counts as 1).
        pub chunk: usize,
        /// Every other read fails with `Interrupted` first.
        pub interrupt: bool,
        /// What reads return once `bytes` are used up.
        pub end: End,
    }

    /// What one handshake did.
    #[derive(Debug)]
    pub struct Run<T: ?Sized> {
        /// The handshake's result: the peer's endpoint and region.
        pub result: Result<(Endpoint, RemoteRegion<T>)>,
        /// Every byte this end sent to the peer.
        pub sent: Vec<u8>,
        /// How many of the peer's bytes this end read.
        pub consumed: usize,
        /// Whether the stream's timeouts were put back as they were.
        pub timeouts_restored: bool,
    }

    struct Scripted<'a> {
        peer: Peer<'a>,
        at: Cell<usize>,
        calls: Cell<usize>,
        sent: RefCell<Vec<u8>>,
        timeouts: Cell<(Option<Duration>, Option<Duration>)>,
    }

    /// The timeouts the scripted stream starts with, to see them restored.
    const INITIAL: (Option<Duration>, Option<Duration>) = (Some(Duration::from_secs(77)), None);

    impl Stream for Scripted<'_> {
        fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
            let calls = self.calls.get() + 1;
            self.calls.set(calls);
            if self.peer.interrupt && calls % 2 == 1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let rest = self.peer.bytes.get(self.at.get()..).unwrap_or_default();
            if rest.is_empty() {
                return match self.peer.end {
                    End::Close => Ok(0),
                    End::Stall => Err(io::ErrorKind::WouldBlock.into()),
                    End::Reset => Err(io::ErrorKind::ConnectionReset.into()),
                };
            }
            let n = rest.len().min(buf.len()).min(self.peer.chunk.max(1));
            if let (Some(to), Some(from)) = (buf.get_mut(..n), rest.get(..n)) {
                to.copy_from_slice(from);
            }
            self.at.set(self.at.get() + n);
            Ok(n)
        }
        fn write(&self, buf: &[u8]) -> io::Result<usize> {
            self.sent.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
        fn read_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.timeouts.get().0)
        }
        fn write_timeout(&self) -> io::Result<Option<Duration>> {
            Ok(self.timeouts.get().1)
        }
        fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.timeouts.set((timeout, self.timeouts.get().1));
            Ok(())
        }
        fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.timeouts.set((self.timeouts.get().0, timeout));
            Ok(())
        }
    }

    /// Runs end `R` of connection `D`'s handshake, as
    /// [`Prepared::connect`](crate::Prepared::connect) does, against
    /// `peer`: this end sends `local` and, once the peer checks out, `ours`
    /// (an encoded region descriptor); the peer's region descriptor is
    /// decoded as `connect` decodes it. Then, where `connect` would move
    /// its queue pair to RTS, this end sends ready and waits for the
    /// peer's.
    pub fn handshake<D: Declaration, R: Role>(
        local: &Endpoint,
        ours: [u8; crate::REMOTE_REGION_LEN],
        peer: Peer<'_>,
    ) -> Run<R::PeerExposes<D>> {
        let stream = Scripted {
            peer,
            at: Cell::new(0),
            calls: Cell::new(0),
            // The whole handshake sends 78 bytes: no reallocation.
            sent: RefCell::new(Vec::with_capacity(128)),
            timeouts: Cell::new(INITIAL),
        };
        let result = run(
            &stream,
            EXCHANGE_TIMEOUT,
            Terms::of::<D, R>(),
            local,
            ours,
            |_, theirs| RemoteRegion::<R::PeerExposes<D>>::decode(theirs),
        )
        .map(|(region, peer)| (peer, region));
        Run {
            result,
            consumed: stream.at.get(),
            timeouts_restored: stream.timeouts.get() == INITIAL,
            sent: stream.sent.into_inner(),
        }
    }
}

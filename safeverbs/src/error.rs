//! The one error type of SafeVerbs.
//!
//! Every variant says what failed, with what, and, where there is one, what
//! to do about it.

use std::io;

use crate::completions::completion::WcStatus;
use crate::completions::events::CqMode;
use crate::memory::interval::Conflict;
use crate::queue_pair::transport::TransportKind;
use crate::setup::endpoint::DecodeError;

/// What a SafeVerbs call can fail with.
///
/// `Debug` prints the same message as `Display`, so that `fn main() ->
/// Result<(), Box<dyn Error>>` shows the hint rather than a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A verb returned an error.
    #[error("{verb} failed: {source}{}", hint_suffix(*.hint))]
    Verb {
        /// The libibverbs function, e.g. `ibv_reg_mr`.
        verb: &'static str,
        /// The errno it reported.
        source: io::Error,
        /// What to do about it, when something is known to help.
        hint: Option<&'static str>,
    },
    /// Registration failed for lack of lockable memory.
    #[error(
        "ibv_reg_mr of {bytes} bytes failed: {source}; the locked-memory limit RLIMIT_MEMLOCK \
         is {limit}: raise it with `ulimit -l unlimited` (or LimitMEMLOCK=infinity for a \
         systemd service), or register less"
    )]
    MemlockLimit {
        /// Bytes the registration asked for.
        bytes: usize,
        /// The soft RLIMIT_MEMLOCK, as text ("65536 bytes", "unlimited").
        limit: String,
        /// The errno.
        source: io::Error,
    },
    /// No RDMA device could be used.
    #[error(
        "no RDMA device found ({0}); to run without an RNIC, use the Soft-RoCE machine: \
         `softroce/run -- <your program>` (see softroce/README.md)"
    )]
    NoDevice(String),
    /// A system call other than a verb failed: duplicating a descriptor,
    /// making it non-blocking, starting the notifier thread, registering
    /// with tokio's IO driver.
    #[error("{call} failed: {source}")]
    Os {
        /// The call, e.g. `dup`.
        call: &'static str,
        /// The error it reported.
        source: io::Error,
    },
    /// The allocator had no memory for a region SafeVerbs allocates.
    #[error("allocating {bytes} bytes for a region failed: out of memory")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: usize,
    },
    /// A variable of the environment that SafeVerbs reads
    /// (`SAFEVERBS_PORT`, `SAFEVERBS_GID_INDEX`, `SAFEVERBS_MODEL_SEED`)
    /// holds a value it cannot use.
    #[error("{var}={value:?} is not {expected}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// What it holds.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// No RDMA device has the name asked for (`SAFEVERBS_DEVICE`,
    /// `DeviceOptions::device`).
    #[error("no RDMA device named {name:?}; this machine has: {}", .available.join(", "))]
    NoSuchDevice {
        /// The name asked for.
        name: String,
        /// The devices libibverbs lists.
        available: Vec<String>,
    },
    /// The device has no port of the number asked for.
    #[error("device {device} has no port {port} (ports 1..={ports})")]
    NoSuchPort {
        /// The device.
        device: String,
        /// The port asked for.
        port: u8,
        /// How many ports it has.
        ports: u8,
    },
    /// The port asked for is not active.
    #[error("port {port} of {device} is not active (state {state})")]
    PortNotActive {
        /// The device.
        device: String,
        /// The port.
        port: u8,
        /// Its `ibv_port_state`.
        state: u32,
    },
    /// The GID index asked for is not in the port's table.
    #[error("GID index {index} is not valid on port {port} of {device} (table of {table})")]
    NoSuchGid {
        /// The device.
        device: String,
        /// The port.
        port: u8,
        /// The index asked for.
        index: u8,
        /// The size of the port's GID table.
        table: u32,
    },
    /// A size or count outside what the device or SafeVerbs allows
    /// (queue depths, completion queue entries, `max_inline_data`, the
    /// requests of a batch, the bytes of one work request); nothing was
    /// created or posted.
    #[error("{what} = {value} is not possible with {bound}: it must be in {min}..={max}")]
    Limit {
        /// What was asked for, e.g. `max_send_wr`.
        what: &'static str,
        /// The value asked for.
        value: u64,
        /// The smallest possible.
        min: u64,
        /// The largest possible.
        max: u64,
        /// What sets the bound, e.g. "device rxe0's max_qp_wr".
        bound: String,
    },
    /// A batch given a different number of remote targets than segments;
    /// nothing was posted.
    #[error("a batch of {segments} segments needs as many remote targets, not {targets}")]
    BatchTargets {
        /// Segments in the batch.
        segments: usize,
        /// Remote targets given.
        targets: usize,
    },
    /// A region SafeVerbs would allocate is larger than an allocation can
    /// be.
    #[error("a region of {count} × {elem_size} bytes is too large")]
    RegionTooLarge {
        /// Values asked for.
        count: usize,
        /// Bytes of one value.
        elem_size: usize,
    },
    /// Memory handed to `register_external` is not aligned for its type.
    #[error("external memory at {addr:#x} is not aligned for {ty} (alignment {align})")]
    ExternalUnaligned {
        /// Its address.
        addr: usize,
        /// The type's name.
        ty: &'static str,
        /// The type's alignment.
        align: usize,
    },
    /// A range of a region that is not a whole, aligned run of the type
    /// it is viewed as.
    #[error("bytes {start}..{end} are not a whole, aligned run of {ty}")]
    Unaligned {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
        /// The type's name.
        ty: &'static str,
    },
    /// A peer's remote-region descriptor does not describe a whole run of
    /// the type it is decoded as (or its end overflows).
    #[error("peer region of {len} bytes at {addr:#x} is not a whole run of {ty}")]
    BadDescriptor {
        /// The address it names.
        addr: u64,
        /// The bytes it grants.
        len: u64,
        /// The type it is decoded as.
        ty: &'static str,
    },
    /// The region given to `connection!`'s builder to expose was
    /// registered without remote access, so its peer could not use it.
    #[error(
        "the region the {role} of {what} exposes was registered without remote access, so its \
         peer could not use it: register it with `Access::remote_write()` (or \
         `remote_read()`/`remote_all()`)"
    )]
    NotExposable {
        /// `client` or `server`.
        role: &'static str,
        /// The declaration (``connection `Kv` ``).
        what: &'static str,
    },
    /// A new segment would overlap a live read-write one (or a read-write
    /// segment would overlap anything live).
    #[error("{0}")]
    Overlap(#[from] Conflict),
    /// A range or index lies outside its region.
    #[error("range {start}..{end} is outside the region of {len} bytes")]
    OutOfBounds {
        /// First byte asked for.
        start: usize,
        /// One past the last byte asked for.
        end: usize,
        /// The size of the region.
        len: usize,
    },
    /// A remote access would go past what the peer granted.
    #[error(
        "remote access of {len} bytes at offset {offset} exceeds the peer's grant of {granted} bytes"
    )]
    RemoteOutOfBounds {
        /// Offset into the remote segment.
        offset: u64,
        /// Bytes the operation would touch.
        len: u64,
        /// Bytes the remote segment grants.
        granted: u64,
    },
    /// The memory may be written by a peer at any time: read it by copy.
    #[error(
        "the region is remotely writable: a reference to it could change under the reader; \
         read it by copy with `Segment::read`/`copy_to`"
    )]
    RemotelyWritable,
    /// A work completion finished with an error status.
    #[error("work completion failed: {status}{} (vendor error {vendor_err:#x})", status.hint())]
    Completion {
        /// The completion status, e.g. `RETRY_EXC_ERR`.
        status: WcStatus,
        /// The provider's vendor error code.
        vendor_err: u32,
    },
    /// The queues attached to a completion queue could overrun it.
    #[error(
        "completion queue of {capacity} entries is too small: {attached} are already reserved \
         and this queue pair needs {requested}; create the CQ with at least {needed} entries"
    )]
    CqTooSmall {
        /// Entries of the CQ.
        capacity: usize,
        /// Entries already reserved by other queue pairs.
        attached: usize,
        /// Entries this queue pair needs.
        requested: usize,
        /// The smallest size that would do.
        needed: usize,
    },
    /// A builder was used without a required option.
    #[error("queue pair builder: {0}")]
    Builder(&'static str),
    /// The peer's endpoint could not be decoded.
    #[error("malformed endpoint from peer: {0}")]
    Endpoint(#[from] DecodeError),
    /// The peer's endpoint is well-formed but does not fit this queue pair.
    #[error(
        "peer endpoint is for a {remote} queue pair, this one is {local}; both sides must use \
         the same transport"
    )]
    TransportMismatch {
        /// Our transport.
        local: TransportKind,
        /// The peer's transport.
        remote: TransportKind,
    },
    /// The peer declared a different layout.
    #[error("peer layout fingerprint {remote:#018x} differs from local {local:#018x} for {what}")]
    Fingerprint {
        /// What the fingerprint covers (a type or connection name).
        what: &'static str,
        /// Ours.
        local: u64,
        /// The peer's.
        remote: u64,
    },
    /// Reading or writing the out-of-band exchange failed.
    #[error("endpoint exchange failed: {0}")]
    Exchange(io::Error),
    /// The peer closed its stream during the exchange or the handshake.
    #[error("the peer closed the connection during the handshake, before {during}")]
    PeerLeft {
        /// What was awaited, e.g. "the peer's connection hello".
        during: &'static str,
    },
    /// The peer's connection hello is not this version of SafeVerbs'
    /// handshake (the bytes up to and including the first wrong one).
    #[error(
        "the peer's connection handshake is not version {version} of SafeVerbs' (got \
         {found:02x?}); is the peer a SafeVerbs program of a compatible version?"
    )]
    HelloMismatch {
        /// The hello's bytes received, up to the first wrong one.
        found: Vec<u8>,
        /// The version this build speaks.
        version: u8,
    },
    /// Both ends of a `connection!` declaration are the same role.
    #[error("the peer is the {peer} of {what} too; one end must be the {expected}")]
    SameRole {
        /// The role the peer announced (`client`, `server`, or `unknown
        /// role`).
        peer: &'static str,
        /// The declaration (``connection `Kv` ``).
        what: &'static str,
        /// The role the peer must be.
        expected: &'static str,
    },
    /// The peer's last handshake byte is not the one that says its queue
    /// pair is ready.
    #[error("the peer's connection handshake ended with {found:#04x}, not ready")]
    NotReady {
        /// The byte received.
        found: u8,
    },
    /// Waited too long.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),
    /// Objects of different device contexts or protection domains were
    /// used together.
    #[error(
        "{0}: a queue pair, its completion queues and the regions it posts must come from one \
         `Device` (each `Device::open` is a device context of its own) and one protection domain"
    )]
    Foreign(&'static str),
    /// SafeVerbs moved the queue pair to the error state (the request was
    /// flushed) or destroyed it (the request ended without a completion;
    /// see [`Shutdown::CqFailed`]).
    #[error(
        "the queue pair was shut down: {0}; every request outstanding on it ends with this error"
    )]
    ShutDown(Shutdown),
    /// The event driver of a completion queue stopped while the queue
    /// lives. The queue's futures now poll it themselves, as in
    /// `CqMode::BusyPoll`. See `CompletionQueue::driver_error`.
    #[error(
        "the event driver of a completion queue in CqMode::{mode:?} stopped: {reason}; its \
         futures now poll the queue themselves (they still complete, but spin while they \
         wait); create a new completion queue to sleep again"
    )]
    EventDriverStopped {
        /// The driver's mode.
        mode: CqMode,
        /// Why it stopped.
        reason: String,
    },
    /// `CqMode::Tokio` was asked for outside a tokio runtime.
    #[error(
        "CqMode::Tokio needs a tokio runtime: create the completion queue inside one (in \
         `Runtime::block_on`, a task, or after `Runtime::enter`), or use CqMode::Notifier"
    )]
    NoTokioRuntime,
    /// `CqMode::Tokio` was asked for on a tokio runtime without its IO
    /// driver.
    #[error(
        "CqMode::Tokio needs a tokio runtime with IO enabled: build the runtime with \
         `enable_io()` (or `enable_all()`), or use CqMode::Notifier"
    )]
    TokioIoDisabled,
    /// A batch that would need the send-queue slots of unsignaled requests
    /// no signaled one covers yet (see `QueuePair::write_unsignaled`):
    /// it would wait for ever, so it is refused; nothing was posted.
    #[error(
        "a batch of {batch} cannot fit in the send queue of {depth} while {uncovered} unsignaled \
         requests wait for a signaled one to cover them: post a signaled send or write first"
    )]
    BatchBehindUnsignaled {
        /// Requests in the batch.
        batch: usize,
        /// The send queue's depth.
        depth: u32,
        /// Unsignaled requests not covered yet.
        uncovered: u32,
    },
    /// A message too long to post inline on this queue pair (see
    /// `QueuePair::send_inline`); nothing was posted.
    #[error(
        "a message of {len} bytes cannot be posted inline: this queue pair takes at most {max} \
         (ask for more with QpBuilder::max_inline_data, up to MAX_INLINE, or send it from a \
         registered segment)"
    )]
    InlineTooLong {
        /// The message's bytes.
        len: usize,
        /// `QueuePair::max_inline_data`.
        max: usize,
    },
    /// Memory to register holds no whole element: nothing would be
    /// registered, and `ibv_reg_mr` cannot register nothing.
    #[error(
        "cannot register {bytes} bytes as a region of {elem_size}-byte elements: they hold no \
         whole element; register at least {} bytes", (*.elem_size).max(1)
    )]
    EmptyRegion {
        /// Bytes the caller gave.
        bytes: usize,
        /// Size of one element.
        elem_size: usize,
    },
    /// An RDMA WRITE or READ target handed out by another connection than
    /// the one asked to use it.
    #[error(
        "this RDMA target was handed out by connection #{target}, not by this one (#{this}) \
         of {what}: it names another peer's memory; take targets from this connection's \
         `peer()`"
    )]
    WrongConnection {
        /// The declaration, as errors name it (``connection `Kv` ``).
        what: &'static str,
        /// The connection that handed the target out.
        target: u64,
        /// The connection asked to use it.
        this: u64,
    },
    /// One end declares a layout and the other declares none.
    #[error("{}", undeclared(what, *local, *remote))]
    Undeclared {
        /// What the declaring end's fingerprint covers.
        what: &'static str,
        /// Ours (0: none declared).
        local: u64,
        /// The peer's (0: none declared).
        remote: u64,
    },
}

/// Why SafeVerbs moved a queue pair to the error state (see
/// [`Error::ShutDown`]). The first cause is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shutdown {
    /// The peer closed the connection (its control stream ended or broke).
    PeerClosed,
    /// An operation's deadline passed before it completed: RDMA cannot
    /// cancel one request, so the whole queue pair was failed.
    DeadlineExpired,
    /// A post failed (with this errno) after the provider had queued the
    /// work requests: they were recovered by failing the queue pair.
    PostFailed(i32),
    /// The queue pair was dropped with the request outstanding.
    Dropped,
    /// A completion queue of the queue pair failed: `ibv_poll_cq` returned
    /// this negative value (an overrun, or a device that failed). No flush
    /// can be reaped from it, so the queue pair was destroyed, which ends
    /// the device's use of every request's memory. A request that ends
    /// with it may or may not have executed (its completion may be the one
    /// the queue lost): every request outstanding at the destruction ends
    /// with it, even on a queue pair that was shut down before for another
    /// cause.
    CqFailed(i32),
    /// The queue pair was shut down (for another cause) with unsignaled
    /// requests that nothing signaled followed, and the provider refused
    /// the request that would have covered them: no completion could ever
    /// release them, so the queue pair was destroyed. As with
    /// [`CqFailed`](Self::CqFailed), a request that ends with it may or may
    /// not have executed, and every request outstanding at the destruction
    /// ends with it.
    CoverRefused,
}

impl std::fmt::Display for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("the peer closed the connection"),
            Self::DeadlineExpired => f.write_str("an operation's deadline passed"),
            Self::PostFailed(errno) => write!(
                f,
                "a post failed after the provider had queued it ({})",
                io::Error::from_raw_os_error(*errno)
            ),
            Self::Dropped => f.write_str("the queue pair was dropped"),
            Self::CqFailed(rc) => write!(
                f,
                "its completion queue failed (ibv_poll_cq returned {rc}), so the queue pair \
                 was destroyed"
            ),
            Self::CoverRefused => f.write_str(
                "the provider refused the request that would have covered its unsignaled \
                 requests, so the queue pair was destroyed",
            ),
        }
    }
}

fn undeclared(what: &str, local: u64, remote: u64) -> String {
    if local == 0 {
        format!(
            "this queue pair declares no layout, but the peer's declares fingerprint \
             {remote:#018x}: build this end from the peer's declaration (`connection!`), or \
             give the queue pair that fingerprint with `QpBuilder::fingerprint`"
        )
    } else {
        format!(
            "the peer's queue pair declares no layout (a bare queue pair?), but this end is \
             {what} (fingerprint {local:#018x}): build the peer from the same declaration"
        )
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn hint_suffix(hint: Option<&'static str>) -> String {
    hint.map(|h| format!("; {h}")).unwrap_or_default()
}

/// The result type of SafeVerbs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error from `verb`, with the errno it left behind.
    pub(crate) fn last_os(verb: &'static str) -> Self {
        Self::errno(
            verb,
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// An error from `verb` that returned the errno `code` (positive or
    /// negative).
    pub(crate) fn errno(verb: &'static str, code: i32) -> Self {
        let code = code.abs();
        let hint = match code {
            libc::ENOMEM => Some("the device or the locked-memory limit ran out of resources"),
            libc::EPERM | libc::EACCES => Some("run as root or give access to /dev/infiniband/*"),
            _ => None,
        };
        Self::Verb {
            verb,
            source: io::Error::from_raw_os_error(code),
            hint,
        }
    }

    /// True for a request flushed because its queue pair went to ERR
    /// (whether SafeVerbs moved it there, [`Error::ShutDown`], or not).
    /// False for [`Shutdown::CqFailed`]: that request was not flushed, its
    /// completion may be the one the failed queue lost. One case reads as a
    /// flush without being one: a queue pair that could not be moved to ERR
    /// (`ibv_modify_qp` failed) is destroyed instead, and its requests end
    /// with the shutdown's cause, for which this is true.
    pub fn is_flush(&self) -> bool {
        match self {
            Self::Completion { status, .. } => *status == WcStatus::WR_FLUSH_ERR,
            Self::ShutDown(cause) => !matches!(cause, Shutdown::CqFailed(_)),
            _ => false,
        }
    }
}

//! Transport and state markers of the queue-pair typestate.

use safeverbs_sys as sys;

/// The kind of a queue pair: what [`Transport::KIND`] names, and what an
/// endpoint carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Reliable connection.
    Rc,
    /// Unreliable connection.
    Uc,
    /// Unreliable datagram.
    Ud,
}

impl TransportKind {
    /// `"RC"`, `"UC"` or `"UD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Rc => "RC",
            TransportKind::Uc => "UC",
            TransportKind::Ud => "UD",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Rc {}
    impl Sealed for super::Uc {}
    impl Sealed for super::Init {}
    impl Sealed for super::Rtr {}
    impl Sealed for super::Rts {}
    impl Sealed for super::Failed {}
}

/// Reliable connected: acknowledged, ordered, with RDMA READ and atomics.
#[derive(Debug)]
pub enum Rc {}
/// Unreliable connected: sends and RDMA WRITEs, no acknowledgements, no
/// RDMA READ.
#[derive(Debug)]
pub enum Uc {}

/// A queue-pair transport. Sealed.
pub trait Transport: sealed::Sealed + Send + Sync + 'static {
    #[doc(hidden)]
    const KIND: TransportKind;
    #[doc(hidden)]
    const QPT: sys::ibv_qp_type;
    /// Rights the QP grants to incoming remote operations.
    #[doc(hidden)]
    const REMOTE_ACCESS: sys::ibv_access_flags;
    /// Whether the transport acknowledges (and so has timeouts, retries and
    /// RDMA READ).
    #[doc(hidden)]
    const RELIABLE: bool;
}

impl Transport for Rc {
    const KIND: TransportKind = TransportKind::Rc;
    const QPT: sys::ibv_qp_type = sys::ibv_qp_type::IBV_QPT_RC;
    const REMOTE_ACCESS: sys::ibv_access_flags = sys::ibv_access_flags(
        sys::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE.0
            | sys::ibv_access_flags::IBV_ACCESS_REMOTE_READ.0
            | sys::ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC.0,
    );
    const RELIABLE: bool = true;
}

impl Transport for Uc {
    const KIND: TransportKind = TransportKind::Uc;
    const QPT: sys::ibv_qp_type = sys::ibv_qp_type::IBV_QPT_UC;
    const REMOTE_ACCESS: sys::ibv_access_flags = sys::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE;
    const RELIABLE: bool = false;
}

/// Transports with RDMA READ (and atomics). Only [`Rc`].
#[diagnostic::on_unimplemented(
    message = "RDMA READ needs a reliable transport; `{Self}` has none",
    label = "RDMA READ is not available on `{Self}`",
    note = "use `Rc`: UC does not acknowledge, so it cannot carry READ responses or atomics"
)]
pub trait Reliable: Transport {}
impl Reliable for Rc {}

/// Initialized: receives may be posted; not connected yet.
#[derive(Debug)]
pub enum Init {}
/// Ready to receive: connected to a peer, receives only.
#[derive(Debug)]
pub enum Rtr {}
/// Ready to send: connected, every operation allowed.
#[derive(Debug)]
pub enum Rts {}
/// The error state: every outstanding request is flushed.
#[derive(Debug)]
pub enum Failed {}

/// A queue-pair state. Sealed.
pub trait State: sealed::Sealed + Send + Sync + 'static {}
impl State for Init {}
impl State for Rtr {}
impl State for Rts {}
impl State for Failed {}

/// States in which receives may be posted.
#[diagnostic::on_unimplemented(
    message = "receives cannot be posted on a queue pair in state `{Self}`",
    label = "this queue pair is in state `{Self}`",
    note = "post receives from `Init` on (`Init`, `Rtr`, `Rts`)"
)]
pub trait CanRecv: State {}

/// States in which sends, RDMA WRITEs and READs may be posted: only [`Rts`].
#[diagnostic::on_unimplemented(
    message = "cannot post a send, RDMA WRITE or RDMA READ on a queue pair in state `{Self}`",
    label = "this queue pair is in state `{Self}`, not `Rts`",
    note = "connect it first: `let qp = qp.connect(&peer)?;` (Init -> Rtr -> Rts); receives may be posted before"
)]
pub trait CanSend: State {}
impl CanSend for Rts {}
impl CanRecv for Init {}
impl CanRecv for Rtr {}
impl CanRecv for Rts {}

//! What a finished work request reports.

use std::fmt;

use safeverbs_sys as sys;

/// The status of a work completion, as the provider wrote it.
///
/// A newtype, not an enum: a provider may report a value this crate does
/// not know, and that must stay representable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WcStatus(pub u32);

impl WcStatus {
    /// Success.
    pub const SUCCESS: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_SUCCESS.0);
    /// Local length error.
    pub const LOC_LEN_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_LOC_LEN_ERR.0);
    /// Local QP operation error.
    pub const LOC_QP_OP_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_LOC_QP_OP_ERR.0);
    /// Local protection error.
    pub const LOC_PROT_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_LOC_PROT_ERR.0);
    /// Flushed: the queue pair entered the error state.
    pub const WR_FLUSH_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_WR_FLUSH_ERR.0);
    /// Remote invalid request.
    pub const REM_INV_REQ_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_REM_INV_REQ_ERR.0);
    /// Remote access error (bad rkey, bounds or permissions).
    pub const REM_ACCESS_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_REM_ACCESS_ERR.0);
    /// Remote operation error.
    pub const REM_OP_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_REM_OP_ERR.0);
    /// Transport retries exhausted.
    pub const RETRY_EXC_ERR: WcStatus = WcStatus(sys::ibv_wc_status::IBV_WC_RETRY_EXC_ERR.0);
    /// Receiver-not-ready retries exhausted.
    pub const RNR_RETRY_EXC_ERR: WcStatus =
        WcStatus(sys::ibv_wc_status::IBV_WC_RNR_RETRY_EXC_ERR.0);

    /// The status name without the `IBV_WC_` prefix, e.g. `RETRY_EXC_ERR`.
    pub fn name(self) -> &'static str {
        use sys::ibv_wc_status as S;
        match sys::ibv_wc_status(self.0) {
            S::IBV_WC_SUCCESS => "SUCCESS",
            S::IBV_WC_LOC_LEN_ERR => "LOC_LEN_ERR",
            S::IBV_WC_LOC_QP_OP_ERR => "LOC_QP_OP_ERR",
            S::IBV_WC_LOC_EEC_OP_ERR => "LOC_EEC_OP_ERR",
            S::IBV_WC_LOC_PROT_ERR => "LOC_PROT_ERR",
            S::IBV_WC_WR_FLUSH_ERR => "WR_FLUSH_ERR",
            S::IBV_WC_MW_BIND_ERR => "MW_BIND_ERR",
            S::IBV_WC_BAD_RESP_ERR => "BAD_RESP_ERR",
            S::IBV_WC_LOC_ACCESS_ERR => "LOC_ACCESS_ERR",
            S::IBV_WC_REM_INV_REQ_ERR => "REM_INV_REQ_ERR",
            S::IBV_WC_REM_ACCESS_ERR => "REM_ACCESS_ERR",
            S::IBV_WC_REM_OP_ERR => "REM_OP_ERR",
            S::IBV_WC_RETRY_EXC_ERR => "RETRY_EXC_ERR",
            S::IBV_WC_RNR_RETRY_EXC_ERR => "RNR_RETRY_EXC_ERR",
            S::IBV_WC_LOC_RDD_VIOL_ERR => "LOC_RDD_VIOL_ERR",
            S::IBV_WC_REM_INV_RD_REQ_ERR => "REM_INV_RD_REQ_ERR",
            S::IBV_WC_REM_ABORT_ERR => "REM_ABORT_ERR",
            S::IBV_WC_INV_EECN_ERR => "INV_EECN_ERR",
            S::IBV_WC_INV_EEC_STATE_ERR => "INV_EEC_STATE_ERR",
            S::IBV_WC_FATAL_ERR => "FATAL_ERR",
            S::IBV_WC_RESP_TIMEOUT_ERR => "RESP_TIMEOUT_ERR",
            S::IBV_WC_GENERAL_ERR => "GENERAL_ERR",
            S::IBV_WC_TM_ERR => "TM_ERR",
            S::IBV_WC_TM_RNDV_INCOMPLETE => "TM_RNDV_INCOMPLETE",
            _ => "UNKNOWN_STATUS",
        }
    }

    /// A short reading of what the status usually means.
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Self::RETRY_EXC_ERR => " (peer gone? no ACK within the QP's timeout and retries)",
            Self::RNR_RETRY_EXC_ERR => " (the peer posted no receive in time)",
            Self::WR_FLUSH_ERR => " (the queue pair is in the error state)",
            Self::REM_ACCESS_ERR => " (remote address, length or rkey outside the peer's grant)",
            Self::LOC_LEN_ERR => " (the message is longer than the receive buffer)",
            // rdma_rxe reports a message longer than the receive buffer so.
            Self::LOC_QP_OP_ERR => {
                " (on a receive: the message is longer than the receive buffer, as Soft-RoCE \
                 reports it; otherwise a work request this queue pair cannot run)"
            }
            Self::LOC_PROT_ERR => " (local buffer not registered on this protection domain)",
            _ => "",
        }
    }
}

impl fmt::Display for WcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "UNKNOWN_STATUS" => write!(f, "UNKNOWN_STATUS({})", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Debug for WcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The kind of operation a completion reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Opcode {
    /// A send finished.
    Send,
    /// An RDMA write finished.
    Write,
    /// An RDMA read finished.
    Read,
    /// A receive consumed a send.
    Recv,
    /// A receive consumed an RDMA write with immediate data.
    RecvWithImm,
    /// A value this crate does not know.
    Other(u32),
}

impl Opcode {
    fn from_raw(raw: u32) -> Self {
        use sys::ibv_wc_opcode as O;
        match sys::ibv_wc_opcode(raw) {
            O::IBV_WC_SEND => Self::Send,
            O::IBV_WC_RDMA_WRITE => Self::Write,
            O::IBV_WC_RDMA_READ => Self::Read,
            O::IBV_WC_RECV => Self::Recv,
            O::IBV_WC_RECV_RDMA_WITH_IMM => Self::RecvWithImm,
            _ => Self::Other(raw),
        }
    }
}

/// A successful work completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// What finished.
    pub opcode: Opcode,
    /// Bytes received (receives) or transferred. A receive consumed by the
    /// peer's RDMA WRITE with immediate data ([`Opcode::RecvWithImm`])
    /// counts the bytes that write transferred into its own target, not
    /// into this receive's segment (`ibv_poll_cq(3)`).
    pub byte_len: u32,
    /// Immediate data, when the peer sent some (host byte order).
    pub imm: Option<u32>,
    /// The local queue pair number.
    pub qp_num: u32,
}

/// A reaped work completion, as the slot table stores it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawCompletion {
    pub(crate) status: WcStatus,
    pub(crate) vendor_err: u32,
    pub(crate) completion: Completion,
    /// No device reported it: its queue pair was destroyed with the
    /// request outstanding (see [`RawCompletion::destroyed`]).
    pub(crate) destroyed: bool,
}

impl RawCompletion {
    pub(crate) fn from_wc(wc: &sys::ibv_wc) -> Self {
        let has_imm = wc.wc_flags & sys::ibv_wc_flags::IBV_WC_WITH_IMM.0 != 0;
        // SAFETY: both members of the anonymous union are a plain u32.
        let imm = unsafe { wc.__bindgen_anon_1.imm_data };
        Self {
            status: WcStatus(wc.status.0),
            vendor_err: wc.vendor_err,
            completion: Completion {
                opcode: Opcode::from_raw(wc.opcode.0),
                byte_len: wc.byte_len,
                imm: has_imm.then(|| u32::from_be(imm)),
                qp_num: wc.qp_num,
            },
            destroyed: false,
        }
    }

    /// The end of a request of queue pair `qp_num` that no device will
    /// report: its queue pair was destroyed (see `QpInner::destroy`). It
    /// reads as a flush, and its request resolves with the destruction's
    /// cause (`QpInner::outcome`): whether it executed is not known.
    pub(crate) fn destroyed(qp_num: u32) -> Self {
        Self {
            status: WcStatus::WR_FLUSH_ERR,
            vendor_err: 0,
            completion: Completion {
                // The verbs leave a flush's opcode undefined too.
                opcode: Opcode::Other(u32::MAX),
                byte_len: 0,
                imm: None,
                qp_num,
            },
            destroyed: true,
        }
    }

    pub(crate) fn into_result(self) -> crate::Result<Completion> {
        if self.status == WcStatus::SUCCESS {
            Ok(self.completion)
        } else {
            Err(crate::Error::Completion {
                status: self.status,
                vendor_err: self.vendor_err,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// A message longer than the receive buffer is named whichever of the
    /// two statuses the provider reports for it (rdma_rxe: LOC_QP_OP_ERR).
    #[test]
    fn receive_too_small_is_named_on_both_statuses() {
        for status in [WcStatus::LOC_LEN_ERR, WcStatus::LOC_QP_OP_ERR] {
            let text = Error::Completion {
                status,
                vendor_err: 0,
            }
            .to_string();
            assert!(text.contains(status.name()), "{text}");
            assert!(
                text.contains("longer than the receive buffer"),
                "{status}: {text}"
            );
        }
    }
}

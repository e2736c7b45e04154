//! The model's state: every object of every device of one fabric, behind
//! one lock, and the rules of the control verbs.
//!
//! Objects are keyed by numbers (BTreeMaps, so that iteration, and with it
//! the schedule, depends only on the seed). A queue pair's key is its QP
//! number; a memory region's is its key (lkey = rkey).

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use safeverbs_sys as sys;

use super::{Fault, LIMITS};
use crate::test_rng::Rng;
use crate::{Error, Result};

/// A raw pointer kept in the state; see each use for what it points to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ptr<T>(pub(crate) *mut T);

// SAFETY: the pointers are only dereferenced under the fabric's lock, by
// the rules their users document (registered memory: `Mr`; queues: `Cq`).
unsafe impl<T> Send for Ptr<T> {}

/// All devices of one model.
pub(crate) struct Fabric {
    pub(crate) seed: u64,
    state: Mutex<State>,
    /// Signalled when a held post is released ([`Fault::HeldPost`]).
    released: Condvar,
    /// Whether segments handed to the user are checked against the
    /// queued requests (`Model::check_handed_back`).
    pub(crate) checks: AtomicBool,
}

impl Fabric {
    pub(crate) fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            state: Mutex::new(State {
                rng: Rng(seed | 1),
                next_id: 1,
                nics: BTreeMap::new(),
                pds: BTreeMap::new(),
                mrs: BTreeMap::new(),
                cqs: BTreeMap::new(),
                qps: BTreeMap::new(),
                channels: BTreeMap::new(),
                faults: VecDeque::new(),
                held: false,
                engine: false,
            }),
            released: Condvar::new(),
            checks: AtomicBool::new(true),
        })
    }

    /// The state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Holds the post that takes an injected [`Fault::HeldPost`] (`st` is
    /// its lock) until [`release_held_post`](Self::release_held_post), or
    /// for at most [`HOLD_BOUND`]; the lock is free meanwhile.
    pub(crate) fn hold_post<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.take_fault(|f| *f == Fault::HeldPost).is_none() {
            return st;
        }
        st.held = true;
        let until = Instant::now() + HOLD_BOUND;
        while st.held {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.held = false;
                break;
            }
            st = match self.released.wait_timeout(st, left) {
                Ok((st, _)) => st,
                Err(e) => e.into_inner().0,
            };
        }
        st
    }

    /// Lets a held post go on; `false` if none was held.
    pub(crate) fn release_held_post(&self) -> bool {
        let mut st = self.lock();
        let was = std::mem::replace(&mut st.held, false);
        self.released.notify_all();
        was
    }
}

/// How long a held post waits at most for its release.
const HOLD_BOUND: Duration = Duration::from_secs(10);

pub(crate) struct State {
    pub(crate) rng: Rng,
    next_id: u32,
    pub(crate) nics: BTreeMap<u32, Nic>,
    pub(crate) pds: BTreeMap<u32, Pd>,
    pub(crate) mrs: BTreeMap<u32, Mr>,
    pub(crate) cqs: BTreeMap<u32, Cq>,
    pub(crate) qps: BTreeMap<u32, Qp>,
    pub(crate) channels: BTreeMap<u32, Channel>,
    pub(crate) faults: VecDeque<Fault>,
    /// A post is held inside its verb ([`Fault::HeldPost`]).
    held: bool,
    /// Whether the background stepping thread runs.
    pub(crate) engine: bool,
}

pub(crate) struct Nic {
    pub(crate) gid: [u8; 16],
}

pub(crate) struct Pd {
    pub(crate) nic: u32,
}

/// A registration. `base` is the pointer `ibv_reg_mr` was given: the
/// model reaches the memory only through it (as a NIC through its address
/// translation), so every access keeps the registration's provenance and
/// bounds. The caller of `ibv_reg_mr` keeps the memory valid until
/// `ibv_dereg_mr`, which removes the entry under the lock every access
/// holds.
pub(crate) struct Mr {
    pub(crate) pd: u32,
    pub(crate) base: Ptr<u8>,
    pub(crate) len: usize,
    pub(crate) access: u32,
}

pub(crate) struct Cq {
    pub(crate) nic: u32,
    pub(crate) capacity: usize,
    pub(crate) entries: VecDeque<sys::ibv_wc>,
    pub(crate) armed: bool,
    pub(crate) channel: Option<u32>,
    /// The `ibv_cq` an event names.
    pub(crate) raw: Ptr<sys::ibv_cq>,
    /// Overrun: every later poll fails.
    pub(crate) broken: bool,
}

pub(crate) struct Channel {
    pub(crate) nic: u32,
    /// An eventfd, readable while `events` is not empty.
    pub(crate) fd: OwnedFd,
    pub(crate) events: VecDeque<Ptr<sys::ibv_cq>>,
    /// Events taken and not yet acknowledged, per queue.
    pub(crate) unacked: BTreeMap<u32, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QpState {
    Reset,
    Init,
    Rtr,
    Rts,
    Err,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Rc,
    Uc,
}

pub(crate) struct Qp {
    pub(crate) nic: u32,
    pub(crate) pd: u32,
    pub(crate) kind: Kind,
    pub(crate) state: QpState,
    pub(crate) send_cq: u32,
    pub(crate) recv_cq: u32,
    pub(crate) cap: sys::ibv_qp_cap,
    pub(crate) sig_all: bool,
    pub(crate) access: u32,
    /// The peer: its GID and QP number (RTR).
    pub(crate) dest: Option<([u8; 16], u32)>,
    pub(crate) mtu: u32,
    /// The next PSN this side sends, and the next it expects.
    pub(crate) sq_psn: u32,
    pub(crate) rq_psn: u32,
    pub(crate) min_rnr_timer: u8,
    /// RDMA READs this side serves at once as the target (RTR's
    /// `max_dest_rd_atomic`): with none, an incoming READ is refused.
    pub(crate) max_dest_rd_atomic: u8,
    pub(crate) rnr_retry: u8,
    pub(crate) sq: VecDeque<SendWqe>,
    pub(crate) rq: VecDeque<RecvWqe>,
    /// Completions of requests that ran (their bytes moved) and whose
    /// acknowledgement has not come back yet, in send-queue order.
    pub(crate) acks: VecDeque<sys::ibv_wc>,
    /// In ERR: how many requests at the head of `sq` and of `rq` are still
    /// to be flushed. A request posted while in ERR waits behind them
    /// unflushed until the next move to ERR, as on rxe (the verbs leave
    /// it to the provider; the model does what the weakest one does).
    pub(crate) to_flush: (usize, usize),
}

impl Qp {
    /// Moves to ERR (asked for, or on an error): everything queued now is
    /// to be flushed.
    pub(crate) fn enter_error(&mut self) {
        self.state = QpState::Err;
        self.to_flush = (self.sq.len(), self.rq.len());
    }
}

/// A request's scatter/gather list, kept inline: queueing a request
/// allocates nothing once its queue has held that many (the no-allocation
/// tests run on the model too).
#[derive(Clone, Copy)]
pub(crate) struct Sges {
    list: [sys::ibv_sge; MAX_SGE],
    len: usize,
}

/// Scatter/gather entries per request (`DeviceLimits::max_sge`).
pub(crate) const MAX_SGE: usize = LIMITS.max_sge as usize;

impl Sges {
    /// `sges`, which the caller checked to hold at most [`MAX_SGE`].
    fn new(sges: &[sys::ibv_sge]) -> Self {
        let mut list = [sys::ibv_sge::default(); MAX_SGE];
        let len = sges.len().min(MAX_SGE);
        list[..len].copy_from_slice(&sges[..len]);
        Self { list, len }
    }

    pub(crate) fn as_slice(&self) -> &[sys::ibv_sge] {
        &self.list[..self.len]
    }
}

/// Inline bytes a queue pair may be created for (`max_inline_data`); the
/// model allows exactly what is asked, up to this.
pub(crate) const MAX_INLINE_DATA: usize = 256;

/// The bytes of an inline request, copied while it was posted.
#[derive(Clone, Copy)]
pub(crate) struct InlineData {
    bytes: [u8; MAX_INLINE_DATA],
    len: usize,
}

impl InlineData {
    /// The bytes of `sges`, in order; `None` if they are more than
    /// [`MAX_INLINE_DATA`].
    ///
    /// # Safety
    /// Each entry's `length` bytes at `addr` are readable now (what
    /// `ibv_post_send(3)` asks of an `IBV_SEND_INLINE` request's caller).
    pub(crate) unsafe fn copy(sges: &[sys::ibv_sge]) -> Option<Self> {
        let mut data = Self {
            bytes: [0; MAX_INLINE_DATA],
            len: 0,
        };
        for s in sges.iter().filter(|s| s.length > 0) {
            let n = s.length as usize;
            let end = data.len.checked_add(n).filter(|&e| e <= MAX_INLINE_DATA)?;
            // An address the library exposed (a pointer cast to an
            // integer), taken back as a pointer: no registration stands
            // behind inline data.
            let ptr = s.addr as usize as *const u8;
            // SAFETY: the caller's contract: `n` readable bytes at `ptr`.
            let src = unsafe { std::slice::from_raw_parts(ptr, n) };
            data.bytes[data.len..end].copy_from_slice(src);
            data.len = end;
        }
        Some(data)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where a request's DMA reads the bytes: this copy.
    pub(crate) fn source(&mut self) -> (*mut u8, usize) {
        (self.bytes.as_mut_ptr(), self.len)
    }
}

/// A send-queue request as posted: descriptors only, no bytes (but for
/// inline data, which is copied when posted).
pub(crate) struct SendWqe {
    pub(crate) wr_id: u64,
    pub(crate) opcode: sys::ibv_wr_opcode,
    pub(crate) signaled: bool,
    pub(crate) sges: Sges,
    pub(crate) inline: Option<InlineData>,
    pub(crate) remote_addr: u64,
    pub(crate) rkey: u32,
    pub(crate) imm: u32,
    /// RNR retries left, and when the next try may run.
    pub(crate) rnr_left: u8,
    pub(crate) not_before: Option<Instant>,
}

pub(crate) struct RecvWqe {
    pub(crate) wr_id: u64,
    pub(crate) sges: Sges,
}

pub(crate) const PSN_MASK: u32 = 0x00ff_ffff;

/// A request queued on the model whose memory the user was handed: its
/// queue pair and `wr_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) qpn: u32,
    pub(crate) wr_id: u64,
}

/// Whether an entry's bytes and `[addr, addr + len)` share a byte.
fn overlaps(sge: &sys::ibv_sge, addr: u64, len: usize) -> bool {
    let (start, end) = (
        u128::from(sge.addr),
        u128::from(sge.addr) + u128::from(sge.length),
    );
    let (from, to) = (u128::from(addr), u128::from(addr) + len as u128);
    start < to && from < end
}

impl State {
    /// A request queued and not run yet whose DMA conflicts with the user
    /// holding the `len` bytes at `addr`: one that will write them (a
    /// receive, an RDMA READ), or, if the user may write them (`writable`),
    /// one that will read them (a send or RDMA WRITE; not inline data,
    /// copied when it was posted). A queue pair in ERR runs nothing more
    /// (its requests are only flushed), so it claims nothing.
    pub(crate) fn claim(&self, addr: u64, len: usize, writable: bool) -> Option<Claim> {
        let live = self.qps.iter().filter(|(_, qp)| qp.state != QpState::Err);
        for (&qpn, qp) in live {
            let writes = qp.rq.iter().map(|w| (w.wr_id, &w.sges, true));
            let sends = qp.sq.iter().filter(|w| w.inline.is_none()).map(|w| {
                let writes = w.opcode == sys::ibv_wr_opcode::IBV_WR_RDMA_READ;
                (w.wr_id, &w.sges, writes)
            });
            for (wr_id, sges, writes) in writes.chain(sends) {
                let conflict = writes || writable;
                if conflict && sges.as_slice().iter().any(|s| overlaps(s, addr, len)) {
                    return Some(Claim { qpn, wr_id });
                }
            }
        }
        None
    }
}

impl State {
    pub(crate) fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn set_gid(&mut self, nic: u32, gid: [u8; 16]) -> Result<()> {
        match self.nics.get_mut(&nic) {
            Some(n) => {
                n.gid = gid;
                Ok(())
            }
            None => Err(Error::NoDevice("the model device is gone".into())),
        }
    }

    /// Takes the first injected fault that `pick` accepts.
    pub(crate) fn take_fault(&mut self, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let at = self.faults.iter().position(pick)?;
        self.faults.remove(at)
    }

    /// A new memory key: the object number and a random byte, so that
    /// keys are not guessable from one another.
    pub(crate) fn mr_key(&mut self) -> u32 {
        let id = self.id();
        (id << 8) | u32::from(self.rng.byte())
    }

    /// `ibv_create_qp`'s checks, then the queue pair in RESET.
    pub(crate) fn create_qp(
        &mut self,
        pd: u32,
        init: &sys::ibv_qp_init_attr,
        send_cq: u32,
        recv_cq: u32,
    ) -> std::result::Result<u32, i32> {
        let nic = self.pds.get(&pd).ok_or(libc::EINVAL)?.nic;
        for cq in [send_cq, recv_cq] {
            // A CQ of another context is not this context's to use.
            if self.cqs.get(&cq).is_none_or(|c| c.nic != nic) {
                return Err(libc::EINVAL);
            }
        }
        let kind = match init.qp_type {
            sys::ibv_qp_type::IBV_QPT_RC => Kind::Rc,
            sys::ibv_qp_type::IBV_QPT_UC => Kind::Uc,
            _ => return Err(libc::EOPNOTSUPP),
        };
        let cap = init.cap;
        if cap.max_send_wr == 0 && cap.max_recv_wr == 0
            || cap.max_send_wr > LIMITS.max_qp_wr
            || cap.max_recv_wr > LIMITS.max_qp_wr
            || cap.max_send_sge > LIMITS.max_sge
            || cap.max_recv_sge > LIMITS.max_sge
            || cap.max_inline_data as usize > MAX_INLINE_DATA
        {
            return Err(libc::EINVAL);
        }
        if self.qps.len() >= LIMITS.max_qp as usize {
            return Err(libc::ENOMEM);
        }
        let qpn = 0x100 + self.id();
        self.qps.insert(
            qpn,
            Qp {
                nic,
                pd,
                kind,
                state: QpState::Reset,
                send_cq,
                recv_cq,
                cap,
                sig_all: init.sq_sig_all != 0,
                access: 0,
                dest: None,
                mtu: super::MTU,
                sq_psn: 0,
                rq_psn: 0,
                min_rnr_timer: 0,
                max_dest_rd_atomic: 0,
                rnr_retry: 7,
                // Full size now: queueing never allocates (see `Sges`).
                sq: VecDeque::with_capacity(cap.max_send_wr as usize),
                rq: VecDeque::with_capacity(cap.max_recv_wr as usize),
                acks: VecDeque::with_capacity(cap.max_send_wr as usize),
                to_flush: (0, 0),
            },
        );
        Ok(qpn)
    }

    /// `ibv_modify_qp`: the transitions RC and UC allow, each with the
    /// attributes the verbs require for it.
    pub(crate) fn modify_qp(&mut self, qpn: u32, attr: &sys::ibv_qp_attr, mask: u32) -> i32 {
        use sys::ibv_qp_attr_mask as M;
        use sys::ibv_qp_state as S;
        let Some(qp) = self.qps.get_mut(&qpn) else {
            return libc::EINVAL;
        };
        let has = |m: M| mask & m.0 == m.0;
        if !has(M::IBV_QP_STATE) {
            return libc::EINVAL;
        }
        let rc = qp.kind == Kind::Rc;
        let next = match (qp.state, attr.qp_state) {
            (_, S::IBV_QPS_RESET) => {
                qp.sq.clear();
                qp.rq.clear();
                qp.acks.clear();
                qp.to_flush = (0, 0);
                QpState::Reset
            }
            (_, S::IBV_QPS_ERR) => {
                qp.enter_error();
                return 0;
            }
            (QpState::Reset | QpState::Init, S::IBV_QPS_INIT) => {
                if qp.state == QpState::Reset
                    && !(has(M::IBV_QP_PKEY_INDEX)
                        && has(M::IBV_QP_PORT)
                        && has(M::IBV_QP_ACCESS_FLAGS))
                {
                    return libc::EINVAL;
                }
                if has(M::IBV_QP_PORT) && attr.port_num != 1 {
                    return libc::EINVAL;
                }
                if has(M::IBV_QP_ACCESS_FLAGS) {
                    qp.access = attr.qp_access_flags;
                }
                QpState::Init
            }
            (QpState::Init, S::IBV_QPS_RTR) => {
                let needed = [
                    M::IBV_QP_AV,
                    M::IBV_QP_PATH_MTU,
                    M::IBV_QP_DEST_QPN,
                    M::IBV_QP_RQ_PSN,
                ];
                let reliable = [M::IBV_QP_MAX_DEST_RD_ATOMIC, M::IBV_QP_MIN_RNR_TIMER];
                if !needed.into_iter().all(has) || rc && !reliable.into_iter().all(has) {
                    return libc::EINVAL;
                }
                // An Ethernet port is reached by GID only.
                if attr.ah_attr.is_global == 0 {
                    return libc::EINVAL;
                }
                // IBV_MTU_256 (1) to IBV_MTU_4096 (5).
                if !(1..=5).contains(&attr.path_mtu.0) {
                    return libc::EINVAL;
                }
                // SAFETY: both members of the union are 16 plain bytes.
                let gid = unsafe { attr.ah_attr.grh.dgid.raw };
                qp.dest = Some((gid, attr.dest_qp_num));
                qp.mtu = crate::device::mtu_bytes(attr.path_mtu).min(super::MTU);
                qp.rq_psn = attr.rq_psn & PSN_MASK;
                qp.min_rnr_timer = attr.min_rnr_timer;
                qp.max_dest_rd_atomic = attr.max_dest_rd_atomic;
                QpState::Rtr
            }
            (QpState::Rtr, S::IBV_QPS_RTS) => {
                let reliable = [
                    M::IBV_QP_TIMEOUT,
                    M::IBV_QP_RETRY_CNT,
                    M::IBV_QP_RNR_RETRY,
                    M::IBV_QP_MAX_QP_RD_ATOMIC,
                ];
                if !has(M::IBV_QP_SQ_PSN) || rc && !reliable.into_iter().all(has) {
                    return libc::EINVAL;
                }
                qp.sq_psn = attr.sq_psn & PSN_MASK;
                qp.rnr_retry = attr.rnr_retry.min(7);
                QpState::Rts
            }
            _ => return libc::EINVAL,
        };
        qp.state = next;
        0
    }

    /// Queues one send request (`ibv_post_send`'s checks; no bytes read
    /// but the `inline` ones, copied while posting).
    pub(crate) fn queue_send(
        &mut self,
        qpn: u32,
        wr: &sys::ibv_send_wr,
        sges: &[sys::ibv_sge],
        inline: Option<InlineData>,
    ) -> std::result::Result<(), i32> {
        use sys::ibv_wr_opcode as O;
        let qp = self.qps.get_mut(&qpn).ok_or(libc::EINVAL)?;
        if !matches!(qp.state, QpState::Rts | QpState::Err) {
            return Err(libc::EINVAL);
        }
        let supported = match wr.opcode {
            O::IBV_WR_SEND
            | O::IBV_WR_SEND_WITH_IMM
            | O::IBV_WR_RDMA_WRITE
            | O::IBV_WR_RDMA_WRITE_WITH_IMM => true,
            O::IBV_WR_RDMA_READ => qp.kind == Kind::Rc,
            _ => false,
        };
        // Inline data: sends and writes only, up to what the queue pair
        // was created for.
        let inline_ok = inline.is_none_or(|d| {
            wr.opcode != O::IBV_WR_RDMA_READ && d.len() <= qp.cap.max_inline_data as usize
        });
        if !supported || !inline_ok || sges.len() > qp.cap.max_send_sge as usize {
            return Err(libc::EINVAL);
        }
        if qp.sq.len() + qp.acks.len() >= qp.cap.max_send_wr as usize {
            return Err(libc::ENOMEM);
        }
        // SAFETY: `rdma` is the member every opcode accepted here uses
        // (sends ignore it); both are plain integers.
        let rdma = unsafe { wr.wr.rdma };
        // SAFETY: `imm_data` is a plain integer member.
        let imm = unsafe { wr.__bindgen_anon_1.imm_data };
        let signaled = qp.sig_all || wr.send_flags & sys::ibv_send_flags::IBV_SEND_SIGNALED.0 != 0;
        let rnr_left = qp.rnr_retry;
        qp.sq.push_back(SendWqe {
            wr_id: wr.wr_id,
            opcode: wr.opcode,
            signaled,
            sges: Sges::new(sges),
            inline,
            remote_addr: rdma.remote_addr,
            rkey: rdma.rkey,
            imm,
            rnr_left,
            not_before: None,
        });
        Ok(())
    }

    /// Queues one receive (`ibv_post_recv`'s checks).
    pub(crate) fn queue_recv(
        &mut self,
        qpn: u32,
        wr: &sys::ibv_recv_wr,
        sges: &[sys::ibv_sge],
    ) -> std::result::Result<(), i32> {
        let qp = self.qps.get_mut(&qpn).ok_or(libc::EINVAL)?;
        if qp.state == QpState::Reset {
            return Err(libc::EINVAL);
        }
        if sges.len() > qp.cap.max_recv_sge as usize {
            return Err(libc::EINVAL);
        }
        if qp.rq.len() >= qp.cap.max_recv_wr as usize {
            return Err(libc::ENOMEM);
        }
        qp.rq.push_back(RecvWqe {
            wr_id: wr.wr_id,
            sges: Sges::new(sges),
        });
        Ok(())
    }

    /// Queues a completion on `cq`, raising its event if armed. A full
    /// queue (or an injected overrun) loses the completion and breaks the
    /// queue, and its queue pairs move to ERR.
    pub(crate) fn complete(&mut self, cq: u32, wc: sys::ibv_wc) {
        let injected = self.faults.iter().position(|f| *f == Fault::CqOverrun);
        let Some(q) = self.cqs.get_mut(&cq) else {
            return; // destroyed: nobody can reap it
        };
        if q.broken || q.entries.len() >= q.capacity || injected.is_some() {
            if let Some(at) = injected.filter(|_| !q.broken) {
                self.faults.remove(at);
            }
            q.broken = true;
            for qp in self.qps.values_mut() {
                if qp.send_cq == cq || qp.recv_cq == cq {
                    qp.enter_error();
                }
            }
            return;
        }
        q.entries.push_back(wc);
        let twice = self
            .faults
            .iter()
            .position(|f| *f == Fault::DuplicateCompletion);
        if let Some(at) = twice.filter(|_| q.entries.len() < q.capacity) {
            self.faults.remove(at);
            q.entries.push_back(wc);
        }
        if std::mem::take(&mut q.armed) {
            if let Some(ch) = q.channel.and_then(|id| self.channels.get_mut(&id)) {
                ch.events.push_back(q.raw);
                super::abi::signal(&ch.fd);
            }
        }
    }
}

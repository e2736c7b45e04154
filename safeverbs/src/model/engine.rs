//! The scheduler and the wire: each step runs the head request of one
//! queue pair, chosen by the seeded generator among those that can run;
//! its bytes move now, and its completions are queued now.

use std::time::{Duration, Instant};

use safeverbs_sys as sys;

use super::state::{Kind, Qp, QpState, RecvWqe, SendWqe, State, MAX_SGE, PSN_MASK};
use super::Fault;
use crate::completions::completion::WcStatus;

const LOCAL_WRITE: u32 = sys::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0;
const REMOTE_WRITE: u32 = sys::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE.0;
const REMOTE_READ: u32 = sys::ibv_access_flags::IBV_ACCESS_REMOTE_READ.0;

/// The RNR timer codes of the verbs (`min_rnr_timer`), in microseconds.
const RNR_DELAY_US: [u32; 32] = [
    655_360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840,
    5120, 7680, 10_240, 15_360, 20_480, 30_720, 40_960, 61_440, 81_920, 122_880, 163_840, 245_760,
    327_680, 491_520,
];

/// Where a request's bytes come from or go to, translated by key.
#[derive(Clone, Copy)]
struct Span {
    ptr: *mut u8,
    len: usize,
}

impl Default for Span {
    fn default() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }
}

/// The spans of one scatter/gather list, kept inline.
#[derive(Clone, Copy, Default)]
struct Spans {
    list: [Span; MAX_SGE],
    len: usize,
}

impl Spans {
    fn as_slice(&self) -> &[Span] {
        &self.list[..self.len]
    }
}

impl State {
    /// The steps one `ibv_poll_cq` runs: a seeded number from 0 to 3, so a
    /// poll may find nothing while work is pending.
    pub(crate) fn poll_steps(&mut self) {
        let n = self.rng.below(4);
        self.run(n);
    }

    /// Runs up to `max` steps, stopping early when nothing can run now.
    pub(crate) fn run(&mut self, max: usize) -> usize {
        (0..max).take_while(|_| self.step()).count()
    }

    fn step(&mut self) -> bool {
        let now = Instant::now();
        let can_run = |qp: &&Qp| match qp.state {
            _ if !qp.acks.is_empty() => true,
            QpState::Err => qp.to_flush != (0, 0),
            QpState::Rts => qp
                .sq
                .front()
                .is_some_and(|w| w.not_before.is_none_or(|t| now >= t)),
            _ => false,
        };
        // Counted, then the chosen one found again: no list to allocate.
        let ready = self.qps.values().filter(can_run).count();
        if ready == 0 {
            return false;
        }
        let pick = self.rng.below(ready);
        let Some(qpn) = self
            .qps
            .iter()
            .filter(|(_, qp)| can_run(qp))
            .nth(pick)
            .map(|(&qpn, _)| qpn)
        else {
            return false;
        };
        if self.take_fault(|f| *f == Fault::QpError).is_some() {
            if let Some(qp) = self.qps.get_mut(&qpn) {
                qp.enter_error();
            }
            return true;
        }
        let Some(qp) = self.qps.get(&qpn) else {
            return true;
        };
        // An acknowledgement comes back, or the next request runs (if it
        // can: else the acknowledgement).
        let head_ready = qp
            .sq
            .front()
            .is_some_and(|w| w.not_before.is_none_or(|t| now >= t));
        let ack = !qp.acks.is_empty() && (!head_ready || self.rng.below(2) == 0);
        match qp.state {
            _ if ack => self.acknowledge(qpn, 1),
            QpState::Err => self.flush_one(qpn),
            _ => self.execute(qpn, now),
        }
        true
    }

    /// Queues the completions of `n` acknowledged requests (all: `usize::MAX`),
    /// oldest first.
    fn acknowledge(&mut self, qpn: u32, n: usize) {
        let Some(cq) = self.qps.get(&qpn).map(|qp| qp.send_cq) else {
            return;
        };
        for _ in 0..n {
            let Some(qp) = self.qps.get_mut(&qpn) else {
                return;
            };
            let Some(wc) = qp.acks.pop_front() else {
                return;
            };
            self.complete(cq, wc);
        }
    }

    /// Flushes the head of one queue of an ERR queue pair (requests that
    /// already ran are acknowledged first: they completed before the error).
    fn flush_one(&mut self, qpn: u32) {
        self.acknowledge(qpn, usize::MAX);
        let Some(qp) = self.qps.get_mut(&qpn) else {
            return;
        };
        let (sq, rq) = qp.to_flush;
        let from_sq = sq > 0 && (rq == 0 || self.rng.below(2) == 0);
        let flushed = if from_sq {
            qp.to_flush.0 -= 1;
            qp.sq
                .pop_front()
                .map(|w| (qp.send_cq, w.wr_id, send_opcode(w.opcode)))
        } else if rq > 0 {
            qp.to_flush.1 -= 1;
            qp.rq
                .pop_front()
                .map(|r| (qp.recv_cq, r.wr_id, sys::ibv_wc_opcode::IBV_WC_RECV))
        } else {
            None
        };
        if let Some((cq, wr_id, opcode)) = flushed {
            let wc = wc(wr_id, WcStatus::WR_FLUSH_ERR, opcode, qpn, 0);
            self.complete(cq, wc);
        }
    }

    /// Runs the head of `qpn`'s send queue against its peer.
    fn execute(&mut self, qpn: u32, now: Instant) {
        use sys::ibv_wr_opcode as O;
        if let Some(Fault::Fail(status)) = self.take_fault(|f| matches!(f, Fault::Fail(_))) {
            return self.fail(qpn, status);
        }
        let Some(qp) = self.qps.get(&qpn) else {
            return;
        };
        let Some(w) = qp.sq.front() else {
            return;
        };
        let (kind, pd, mtu, sq_psn, dest) = (qp.kind, qp.pd, qp.mtu, qp.sq_psn, qp.dest);
        let (opcode, wr_id, len) = (w.opcode, w.wr_id, total(w.sges.as_slice()));
        let packets = u32::try_from(len.div_ceil(mtu as usize).max(1)).unwrap_or(PSN_MASK);

        // The peer must exist, be able to receive, and expect this PSN;
        // otherwise RC retries until it gives up and UC loses the message.
        let peer = dest.and_then(|(gid, dqpn)| {
            let nic = self
                .nics
                .iter()
                .find(|(_, n)| n.gid == gid)
                .map(|(&id, _)| id)?;
            let p = self.qps.get(&dqpn)?;
            (p.nic == nic && matches!(p.state, QpState::Rtr | QpState::Rts)).then_some(dqpn)
        });
        let Some(peer) = peer.filter(|p| kind == Kind::Uc || self.qps[p].rq_psn == sq_psn) else {
            return self.lost(qpn, packets, None);
        };

        let needs_recv = matches!(
            opcode,
            O::IBV_WR_SEND | O::IBV_WR_SEND_WITH_IMM | O::IBV_WR_RDMA_WRITE_WITH_IMM
        );
        if needs_recv && self.qps[&peer].rq.is_empty() {
            return match kind {
                Kind::Rc => self.receiver_not_ready(qpn, peer, now),
                Kind::Uc => self.lost(qpn, packets, Some(peer)),
            };
        }

        // Local side: every source (or READ target) by lkey, in our PD.
        let Some(w) = self.qps.get(&qpn).and_then(|qp| qp.sq.front()) else {
            return;
        };
        let local_need = if opcode == O::IBV_WR_RDMA_READ {
            LOCAL_WRITE
        } else {
            0
        };
        // Inline data is read from a copy of the one the request holds (no
        // key, no registration), which lives until the DMA below.
        let mut inline = w.inline;
        let local = match &mut inline {
            Some(data) => {
                let (ptr, len) = data.source();
                let mut spans = Spans::default();
                spans.list[0] = Span { ptr, len };
                spans.len = 1;
                Some(spans)
            }
            None => self.spans(w.sges.as_slice(), pd, local_need),
        };
        let Some(local) = local else {
            return self.fail(qpn, WcStatus::LOC_PROT_ERR);
        };
        let (remote_addr, rkey, imm) = (w.remote_addr, w.rkey, w.imm);

        // Remote side: an rkey span, or the receive at the head of the RQ.
        let peer_pd = self.qps[&peer].pd;
        let peer_access = self.qps[&peer].access;
        let remote = match opcode {
            O::IBV_WR_RDMA_WRITE | O::IBV_WR_RDMA_WRITE_WITH_IMM => {
                self.remote_span(rkey, remote_addr, len, peer_pd, REMOTE_WRITE & peer_access)
            }
            O::IBV_WR_RDMA_READ => {
                self.remote_span(rkey, remote_addr, len, peer_pd, REMOTE_READ & peer_access)
            }
            _ => None,
        };
        // A READ needs a responder resource at the target (RC only).
        if opcode == O::IBV_WR_RDMA_READ && self.qps[&peer].max_dest_rd_atomic == 0 {
            return self.fail(qpn, WcStatus::REM_INV_REQ_ERR);
        }
        let is_send = matches!(opcode, O::IBV_WR_SEND | O::IBV_WR_SEND_WITH_IMM);
        if !is_send && remote.is_none() {
            return match kind {
                Kind::Rc => self.fail(qpn, WcStatus::REM_ACCESS_ERR),
                Kind::Uc => self.lost(qpn, packets, Some(peer)),
            };
        }
        let recv = if needs_recv {
            self.qps.get_mut(&peer).and_then(|p| p.rq.pop_front())
        } else {
            None
        };
        let mut targets = Spans::default();
        if is_send {
            let r = recv.as_ref().map_or(&[][..], |r| r.sges.as_slice());
            match self.spans(r, peer_pd, LOCAL_WRITE) {
                Some(spans) if spans.as_slice().iter().map(|s| s.len).sum::<usize>() >= len => {
                    targets = spans
                }
                bad => {
                    let status = if bad.is_some() {
                        WcStatus::LOC_LEN_ERR
                    } else {
                        WcStatus::LOC_PROT_ERR
                    };
                    return self.receiver_failed(qpn, peer, recv, status);
                }
            }
        }

        // The DMA, from the source's spans into the target's.
        match opcode {
            O::IBV_WR_RDMA_READ => copy(remote.as_slice(), local.as_slice()),
            O::IBV_WR_RDMA_WRITE | O::IBV_WR_RDMA_WRITE_WITH_IMM => {
                copy(local.as_slice(), remote.as_slice())
            }
            _ => copy(local.as_slice(), targets.as_slice()),
        }

        let byte_len = u32::try_from(len).unwrap_or(u32::MAX);
        if let Some(r) = recv {
            let mut c = wc(
                r.wr_id,
                WcStatus::SUCCESS,
                if opcode == O::IBV_WR_RDMA_WRITE_WITH_IMM {
                    sys::ibv_wc_opcode::IBV_WC_RECV_RDMA_WITH_IMM
                } else {
                    sys::ibv_wc_opcode::IBV_WC_RECV
                },
                peer,
                byte_len,
            );
            c.src_qp = qpn;
            if matches!(
                opcode,
                O::IBV_WR_SEND_WITH_IMM | O::IBV_WR_RDMA_WRITE_WITH_IMM
            ) {
                c.wc_flags = sys::ibv_wc_flags::IBV_WC_WITH_IMM.0;
                c.__bindgen_anon_1.imm_data = imm;
            }
            let cq = self.qps[&peer].recv_cq;
            self.complete(cq, c);
        }
        let send_len = if opcode == O::IBV_WR_RDMA_READ {
            byte_len
        } else {
            0
        };
        self.succeed(qpn, packets, Some(peer), wr_id, send_len);
    }

    /// Translates `sges` by lkey in `pd`, each with the `need`ed access.
    fn spans(&self, sges: &[sys::ibv_sge], pd: u32, need: u32) -> Option<Spans> {
        let mut out = Spans::default();
        for s in sges.iter().take(MAX_SGE) {
            out.list[out.len] = self.translate(s.lkey, s.addr, s.length as usize, pd, need)?;
            out.len += 1;
        }
        Some(out)
    }

    /// A peer's rkey span; `need` is 0 when its queue pair does not allow
    /// the operation, which no registration satisfies.
    fn remote_span(&self, rkey: u32, addr: u64, len: usize, pd: u32, need: u32) -> Option<Span> {
        if need == 0 {
            return None;
        }
        self.translate(rkey, addr, len, pd, need)
    }

    /// The memory `[addr, addr + len)` of the registration `key`, if it is
    /// in `pd`, allows `need` and holds the whole range.
    fn translate(&self, key: u32, addr: u64, len: usize, pd: u32, need: u32) -> Option<Span> {
        let mr = self.mrs.get(&key)?;
        if mr.pd != pd || mr.access & need != need {
            return None;
        }
        let off = usize::try_from(addr.checked_sub(mr.base.0 as usize as u64)?).ok()?;
        if off.checked_add(len)? > mr.len {
            return None;
        }
        Some(Span {
            // In bounds of the registration (checked above), and derived
            // from its pointer: see `Mr`.
            ptr: mr.base.0.wrapping_add(off),
            len,
        })
    }

    /// A receiver whose RQ is empty: the sender waits the receiver's RNR
    /// timer and tries again, until its RNR retries run out (7: never).
    fn receiver_not_ready(&mut self, qpn: u32, peer: u32, now: Instant) {
        let delay = Duration::from_micros(u64::from(
            RNR_DELAY_US[usize::from(self.qps[&peer].min_rnr_timer & 31)],
        ));
        let Some(qp) = self.qps.get_mut(&qpn) else {
            return;
        };
        let forever = qp.rnr_retry == 7;
        let Some(w) = qp.sq.front_mut() else {
            return;
        };
        if w.rnr_left == 0 && !forever {
            return self.fail(qpn, WcStatus::RNR_RETRY_EXC_ERR);
        }
        if !forever {
            w.rnr_left -= 1;
        }
        w.not_before = Some(now + delay);
    }

    /// The receive could not take the message: it completes in error and
    /// its queue pair moves to ERR; an RC sender learns of it.
    fn receiver_failed(&mut self, qpn: u32, peer: u32, recv: Option<RecvWqe>, status: WcStatus) {
        if let Some(r) = recv {
            let cq = self.qps[&peer].recv_cq;
            self.complete(
                cq,
                wc(r.wr_id, status, sys::ibv_wc_opcode::IBV_WC_RECV, peer, 0),
            );
        }
        if let Some(p) = self.qps.get_mut(&peer) {
            p.enter_error();
        }
        let (kind, packets) = match self.qps.get(&qpn) {
            Some(qp) => (qp.kind, 1),
            None => return,
        };
        match kind {
            Kind::Rc if status == WcStatus::LOC_LEN_ERR => {
                self.fail(qpn, WcStatus::REM_INV_REQ_ERR)
            }
            Kind::Rc => self.fail(qpn, WcStatus::REM_OP_ERR),
            Kind::Uc => self.lost(qpn, packets, None),
        }
    }

    /// A message that never arrives: RC gives up (`RETRY_EXC_ERR`), UC
    /// reports success and the bytes are gone (its PSNs still advance).
    fn lost(&mut self, qpn: u32, packets: u32, peer: Option<u32>) {
        let Some(qp) = self.qps.get(&qpn) else {
            return;
        };
        match qp.kind {
            Kind::Rc => self.fail(qpn, WcStatus::RETRY_EXC_ERR),
            Kind::Uc => {
                let wr_id = qp.sq.front().map_or(0, |w| w.wr_id);
                self.succeed(qpn, packets, peer, wr_id, 0);
            }
        }
    }

    /// The head request failed with `status`: it completes (an error always
    /// does) and the queue pair moves to ERR, flushing the rest.
    fn fail(&mut self, qpn: u32, status: WcStatus) {
        // What ran before it completes first: one send queue stays in order.
        self.acknowledge(qpn, usize::MAX);
        let Some(qp) = self.qps.get_mut(&qpn) else {
            return;
        };
        let head = qp.sq.pop_front();
        qp.enter_error();
        if let Some(w) = head {
            let cq = qp.send_cq;
            self.complete(cq, wc(w.wr_id, status, send_opcode(w.opcode), qpn, 0));
        }
    }

    /// The head request ran: its completion (if signaled) waits for the
    /// acknowledgement, a later step; the PSNs of both ends advance by its
    /// packets.
    fn succeed(&mut self, qpn: u32, packets: u32, peer: Option<u32>, wr_id: u64, byte_len: u32) {
        let Some(qp) = self.qps.get_mut(&qpn) else {
            return;
        };
        let Some(SendWqe {
            opcode, signaled, ..
        }) = qp.sq.pop_front()
        else {
            return;
        };
        qp.sq_psn = qp.sq_psn.wrapping_add(packets) & PSN_MASK;
        if signaled {
            qp.acks.push_back(wc(
                wr_id,
                WcStatus::SUCCESS,
                send_opcode(opcode),
                qpn,
                byte_len,
            ));
        }
        if let Some(p) = peer.and_then(|p| self.qps.get_mut(&p)) {
            p.rq_psn = p.rq_psn.wrapping_add(packets) & PSN_MASK;
        }
    }
}

fn total(sges: &[sys::ibv_sge]) -> usize {
    sges.iter().map(|s| s.length as usize).sum()
}

/// Copies the bytes of `from`, in order, over `to`, as far as both go.
fn copy(from: &[Span], to: &[Span]) {
    let (mut i, mut j, mut a, mut b) = (0, 0, 0, 0);
    while let (Some(src), Some(dst)) = (from.get(i), to.get(j)) {
        let n = (src.len - a).min(dst.len - b);
        // SAFETY: `translate` made both spans: inside live registrations,
        // whose memory the registering code keeps valid until
        // `ibv_dereg_mr`, which cannot run while we hold the lock (`Mr`);
        // the target was checked for local or remote write access; `a + n`
        // and `b + n` stay within their spans. The two may overlap (a
        // region written onto itself): `copy` allows that. (Or the source
        // is the local copy of a request's inline data, `execute`'s, alive
        // and untouched while this runs.)
        unsafe { std::ptr::copy(src.ptr.add(a), dst.ptr.add(b), n) };
        a += n;
        b += n;
        if a == src.len {
            (i, a) = (i + 1, 0);
        }
        if b == dst.len {
            (j, b) = (j + 1, 0);
        }
    }
}

/// The completion opcode of a send-queue request.
fn send_opcode(op: sys::ibv_wr_opcode) -> sys::ibv_wc_opcode {
    use sys::ibv_wc_opcode as C;
    use sys::ibv_wr_opcode as O;
    match op {
        O::IBV_WR_RDMA_WRITE | O::IBV_WR_RDMA_WRITE_WITH_IMM => C::IBV_WC_RDMA_WRITE,
        O::IBV_WR_RDMA_READ => C::IBV_WC_RDMA_READ,
        _ => C::IBV_WC_SEND,
    }
}

fn wc(
    wr_id: u64,
    status: WcStatus,
    opcode: sys::ibv_wc_opcode,
    qpn: u32,
    byte_len: u32,
) -> sys::ibv_wc {
    sys::ibv_wc {
        wr_id,
        status: sys::ibv_wc_status(status.0),
        opcode,
        byte_len,
        qp_num: qpn,
        ..Default::default()
    }
}

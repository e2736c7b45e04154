//! A model RDMA device, in Rust, in this process (feature `model`).
//!
//! It implements the verbs SafeVerbs uses — context, protection domain,
//! memory registration (keys, bounds and access checked), completion
//! queues (capacity, overrun), RC and UC queue pairs (the state machine,
//! PSNs, RNR, flush on ERR), the completion channel (a real file
//! descriptor) — and a wire between the queue pairs of all devices of one
//! [`Model`]. It exists to make the library's safety claims falsifiable on
//! any machine, under Miri and in plain `cargo test`:
//!
//! - **DMA is deferred.** Posting only queues a request. Its bytes are read
//!   (send and write sources) and written (receive and read targets) at a
//!   later step, chosen by a seeded scheduler, just before its completion is
//!   queued. Memory the library handed back too early is read or written
//!   after the user got it back: the test sees wrong bytes, Miri a data race
//!   or a use after free. And before that, at the moment the library hands
//!   such memory to the user (a carve, or a segment given back with a
//!   result), the model panics, naming the queued request that still uses
//!   it ([`Model::check_ownership`]).
//! - **It reorders what the verbs allow and nothing else**: requests of
//!   different queue pairs run in a seeded order, completions are delayed (a
//!   poll may find nothing although work is pending; a send's completion,
//!   its acknowledgement, may come steps after the receiver's), but one
//!   send queue runs and completes in order.
//! - **It injects faults on demand** ([`Fault`]): a failing request status,
//!   a queue pair forced to ERR, a doorbell that fails after queueing, a
//!   completion queue overrun, a completion reported twice, a post held
//!   inside its verb while other threads run.
//!
//! Steps run inside `ibv_poll_cq` (of any queue of the model) and, while a
//! completion channel exists, on a background thread every millisecond, so
//! that event-mode queues progress without being polled.
//!
//! The same seed gives the same schedule for the same sequence of calls
//! (threads may still interleave differently). Test harnesses print the
//! seed; `SAFEVERBS_MODEL_SEED` replays it ([`Model::from_env`]).
//!
//! What it does not model: timing (a request to a queue pair that is gone
//! fails at its step, without the transport's retries; RNR waits do follow
//! the receiver's RNR timer), UD, SRQ, atomics, memory windows and inline
//! data (refused as unsupported), and more than one port.
//!
//! Two queue pairs of one model device, connected to each other:
//!
//! ```
//! use futures::executor::block_on;
//! use safeverbs::{model::Model, Access, Rc};
//!
//! # fn main() -> safeverbs::Result<()> {
//! let dev = Model::new(7).device()?; // or Model::from_env()?
//! let pd = dev.alloc_pd()?;
//! let cq = dev.create_cq(256)?;
//! let build = || pd.queue_pair::<Rc>().send_cq(&cq).recv_cq(&cq).build();
//! let (a, b) = (build()?, build()?);
//! let (ea, eb) = (a.endpoint(), b.endpoint());
//! let inbox = pd.register([0u8; 5], Access::local())?;
//! let receive = b.recv(inbox.read_write()?); // the DMA happens later
//! let (a, _b) = (a.connect(&eb)?, b.connect(&ea)?);
//! let out = pd.register(*b"hello", Access::local())?;
//! let (sent, _) = block_on(a.send(out.read_only()?));
//! sent?;
//! let (got, msg) = block_on(receive);
//! assert_eq!(got?.byte_len, 5);
//! assert_eq!(msg.read(), *b"hello");
//! # Ok(()) }
//! ```

pub(crate) mod abi;
mod engine;
mod state;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::completions::completion::WcStatus;
use crate::device::provider::Provider;
use crate::device::{Context, Device, DeviceLimits, GidKind, PortInfo};
use crate::{Error, Result};

pub(crate) use state::Fabric;

/// A fabric of model devices: their wire, their scheduler and its seed.
/// Cheap to clone; devices keep it alive.
#[derive(Clone)]
pub struct Model {
    pub(crate) fabric: Arc<Fabric>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("seed", &format_args!("{:#x}", self.seed()))
            .finish_non_exhaustive()
    }
}

/// A fault the model injects into the next operation it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The next send-queue request the model executes fails with this
    /// status, and its queue pair moves to ERR (as a failed request does):
    /// e.g. `RNR_RETRY_EXC_ERR`, `RETRY_EXC_ERR`, `REM_ACCESS_ERR`.
    Fail(WcStatus),
    /// The next queue pair with work queued is moved to ERR at the next
    /// step, as if the device had failed it: everything queued is flushed.
    QpError,
    /// The next `ibv_post_send` or `ibv_post_recv` queues its requests and
    /// then fails with `EIO`, leaving `bad_wr` NULL (as a provider whose
    /// doorbell fails does).
    DoorbellFails,
    /// The next post queues its first `after` requests and refuses the
    /// rest with `ENOMEM`, `bad_wr` pointing at the first refused (as a
    /// full queue does).
    PostRefused {
        /// Requests of the chain queued before the refusal.
        after: usize,
    },
    /// The next completion finds its queue full: it is lost, the queue is
    /// broken (every later poll fails with `EIO`) and its queue pairs move
    /// to ERR.
    CqOverrun,
    /// The next completion is queued twice, as a faulty device or driver
    /// might report it: the second names a request that the first already
    /// completed.
    DuplicateCompletion,
    /// The next `ibv_post_send` or `ibv_post_recv` waits inside the verb,
    /// before it looks at its queue pair, until
    /// [`Model::release_held_post`] (or 10 s pass), as a slow doorbell
    /// might: for tests of what other threads do meanwhile. The faults
    /// pending when it goes on apply to it then.
    HeldPost,
}

/// The limits every model device reports and enforces.
pub(crate) const LIMITS: DeviceLimits = DeviceLimits {
    max_qp: 1024,
    max_qp_wr: 4096,
    max_cq: 1024,
    max_cqe: 65536,
    max_mr: 65536,
    max_mr_size: 1 << 40,
    max_sge: 4,
    max_qp_rd_atom: 16,
};

/// The path MTU of a model port (rxe's on a 1500-byte Ethernet link).
pub(crate) const MTU: u32 = 1024;

impl Model {
    /// A fabric whose scheduler starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            fabric: Fabric::new(seed),
        }
    }

    /// A fabric seeded by `SAFEVERBS_MODEL_SEED` (decimal or `0x` hex), or
    /// by a fresh random seed when it is unset.
    pub fn from_env() -> Result<Self> {
        seed_from(std::env::var("SAFEVERBS_MODEL_SEED").ok()).map(Self::new)
    }

    /// The seed of the scheduler.
    pub fn seed(&self) -> u64 {
        self.fabric.seed
    }

    /// Opens a new model device on this fabric: its own context, port and
    /// GID (`::ffff:10.x.y.z`), reachable from every other device of the
    /// fabric.
    pub fn device(&self) -> Result<Device> {
        let (ctx, index) = abi::open_device(&self.fabric);
        // `::ffff:10.x.y.z`, x.y.z the device's number: unique on the
        // fabric while numbers fit in 24 bits (a GID shared by two devices
        // would misroute the wire).
        let mut gid = [0u8; 16];
        gid[10] = 0xff;
        gid[11] = 0xff;
        gid[12..].copy_from_slice(&(0x0a00_0000 | index).to_be_bytes());
        let set = match index {
            0..=0x00ff_ffff => self.fabric.lock().set_gid(index, gid),
            _ => Err(Error::NoDevice(
                "the model fabric has no device address left (2^24 objects made)".into(),
            )),
        };
        if let Err(e) = set {
            // SAFETY: `ctx` was just opened and nothing was made from it.
            unsafe { abi::close_device(ctx) };
            return Err(e);
        }
        let context = Context {
            ctx,
            name: format!("model{index}"),
            port: PortInfo {
                port: 1,
                lid: 0,
                gid_index: 0,
                gid,
                gid_kind: GidKind::RoceV2,
                active_mtu: MTU,
                ethernet: true,
            },
            limits: LIMITS,
            provider: Provider::Model(self.clone()),
        };
        Ok(Device {
            inner: Arc::new(context),
        })
    }

    /// Injects `fault` into the next operation it applies to (faults of
    /// one kind apply in the order injected).
    pub fn inject(&self, fault: Fault) {
        self.fabric.lock().faults.push_back(fault);
    }

    /// Lets the post held by [`Fault::HeldPost`] go on; `false` if no post
    /// was held.
    pub fn release_held_post(&self) -> bool {
        self.fabric.release_held_post()
    }

    /// Faults injected and not yet applied.
    pub fn pending_faults(&self) -> usize {
        self.fabric.lock().faults.len()
    }

    /// Completion events raised on the model's channels and not taken yet
    /// (`ibv_get_cq_event`). A channel with one keeps its descriptor
    /// readable: a driver that never takes them wakes again at once, for
    /// ever.
    pub fn unread_events(&self) -> usize {
        self.fabric
            .lock()
            .channels
            .values()
            .map(|c| c.events.len())
            .sum()
    }

    /// Completion events taken and not acknowledged yet
    /// (`ibv_ack_cq_events`): `ibv_destroy_cq` of their queue would wait
    /// for them for ever (the model refuses it with `EBUSY`).
    pub fn unacked_events(&self) -> u64 {
        self.fabric
            .lock()
            .channels
            .values()
            .flat_map(|c| c.unacked.values())
            .map(|&n| u64::from(n))
            .sum()
    }

    /// Turns off (or on again) the check that every segment SafeVerbs
    /// hands to the user, carved or given back with a result, is free of
    /// the model's queued requests: no request that has not run may
    /// still write its bytes, or read them while the user may write them.
    /// A hit panics, naming the request: it is a bug of the library. On by
    /// default; a benchmark that measures the library alone turns it off.
    pub fn check_ownership(&self, on: bool) {
        self.fabric.checks.store(on, Ordering::Relaxed);
    }

    /// Runs scheduler steps until no request can make progress now (a
    /// receiver that is not ready leaves its sender waiting) or `max`
    /// steps ran; returns how many ran. Polling does this a few steps at a
    /// time; tests call it to let the wire finish.
    pub fn settle(&self, max: usize) -> usize {
        self.fabric.lock().run(max)
    }
}

impl Model {
    /// The library hands the `len` bytes at `addr` to the user (a carve, or
    /// a segment given back with a result), writable or not: no request
    /// the model has queued and not run may still use them so (see
    /// [`State::claim`](state::State::claim)). One that does is a bug of
    /// the library (the NIC would move bytes the user holds), reported as
    /// Miri reports undefined behaviour: at once, with what it found.
    pub(crate) fn check_handed_back(&self, addr: u64, len: usize, writable: bool) {
        if !self.fabric.checks.load(Ordering::Relaxed) {
            return;
        }
        let claim = self.fabric.lock().claim(addr, len, writable);
        if let Some(claim) = claim {
            let how = if writable { "read-write" } else { "read-only" };
            #[allow(clippy::panic)] // A detected library bug, as a failed assertion.
            {
                panic!(
                    "SafeVerbs handed {len} bytes at {addr:#x} to the user {how} while the \
                     model device still had a request queued over them (queue pair {}, \
                     wr_id {:#x}) that has not run: memory handed back while the NIC owns it",
                    claim.qpn, claim.wr_id
                );
            }
        }
    }
}

impl Device {
    /// The model this device belongs to, if it is a model device.
    pub fn model(&self) -> Option<&Model> {
        match &self.inner.provider {
            Provider::Model(m) => Some(m),
            Provider::Verbs => None,
        }
    }
}

/// The seed `SAFEVERBS_MODEL_SEED` asks for (`value`), or a fresh one.
fn seed_from(value: Option<String>) -> Result<u64> {
    match value {
        Some(v) if !v.is_empty() => parse_seed(&v).ok_or(Error::BadEnv {
            var: "SAFEVERBS_MODEL_SEED",
            value: v,
            expected: "a number (decimal or 0x hex)",
        }),
        _ => Ok(random_seed()),
    }
}

fn parse_seed(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// A seed from the process's random hash keys (the OS's randomness; under
/// Miri, its own seeded generator).
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5afe_7e4b_u64) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed("0x2a"), Some(42));
        assert_eq!(parse_seed("zz"), None);
        assert_eq!(seed_from(Some("0x2a".into())).ok(), Some(42));
        assert!(seed_from(Some(String::new())).is_ok());
        assert!(matches!(
            seed_from(Some("zz".into())),
            Err(Error::BadEnv { var: "SAFEVERBS_MODEL_SEED", value, .. }) if value == "zz"
        ));
    }
}

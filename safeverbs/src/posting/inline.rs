//! Inline sends and writes: small messages that the provider copies into
//! the work request while posting (`IBV_SEND_INLINE`), so no registered
//! memory is involved and the caller's bytes are free again as soon as
//! the call returns.
//!
//! The future still waits for the completion (the send queue's entry is
//! the device's until then, and it reports errors). If the queue is full
//! when it is created, it copies the message into itself and posts it
//! when room frees up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use safeverbs_sys as sys;

use crate::completions::completion::Completion;
use crate::memory::pod::RdmaBuf;
use crate::memory::remote::RemoteSegment;
use crate::posting::ops::{
    check_queue_pair, post_one, InFlight, Payload, Phase, Posting, Request, Signal,
};
use crate::queue_pair::qp::{QpInner, QueuePair};
use crate::queue_pair::transport::{CanSend, State, Transport};
use crate::{Error, Result};

/// The longest message SafeVerbs posts inline, whatever a provider allows
/// (an [`Inline`] future holds a copy of its message while it waits for
/// room in the send queue).
pub const MAX_INLINE: usize = 256;

/// A copy of an inline message.
pub(crate) struct InlineBytes {
    bytes: [u8; MAX_INLINE],
    len: usize,
}

impl InlineBytes {
    /// The first [`MAX_INLINE`] bytes of `message` (longer ones are
    /// refused before posting, by [`check_inline`]).
    fn copy_of<B: ?Sized + RdmaBuf>(message: &B) -> Self {
        let len = std::mem::size_of_val(message).min(MAX_INLINE);
        // SAFETY: `B` is an `RdmaPod` value or slice (`RdmaBuf` is sealed
        // so), which has no padding: its first `len <= size_of_val` bytes
        // are initialised, and the borrow keeps them alive and unchanged
        // while they are read here.
        let src =
            unsafe { std::slice::from_raw_parts(std::ptr::from_ref(message).cast::<u8>(), len) };
        let mut bytes = [0; MAX_INLINE];
        bytes[..len].copy_from_slice(src);
        Self { bytes, len }
    }
}

impl Payload for InlineBytes {
    /// [`check_inline`] passed.
    fn post(self, qp: &Arc<QpInner>, request: Request) -> Phase<Self> {
        let sge = sys::ibv_sge {
            // An address the provider reads through while posting (an
            // `as` cast exposes the pointer's provenance for that).
            addr: self.bytes.as_ptr() as u64,
            length: self.len as u32, // at most MAX_INLINE
            lkey: 0,                 // not checked for inline data
        };
        // `self` lives in this frame until `post_one` returns, and the
        // provider copies the bytes before that.
        let inline = sys::ibv_send_flags::IBV_SEND_INLINE.0;
        match post_one(qp, request, sge, inline, None, Signal::Signaled) {
            Posting::Posted(cq, id) => Phase::Posted { cq, id },
            Posting::Refused(error, _) => Phase::Failed {
                error,
                payload: self,
            },
        }
    }
}

/// What an inline post checks before it reaches the provider.
fn check_inline(qp: &QpInner, len: usize) -> Result<()> {
    check_queue_pair(qp)?;
    let max = qp.max_inline as usize;
    if len > max {
        return Err(Error::InlineTooLong { len, max });
    }
    Ok(())
}

/// A posted (or about to be posted) inline send or write. Resolves to its
/// completion; the message was copied when it was posted, so nothing is
/// handed back.
///
/// Like [`Post`](crate::Post) it polls its completion queue, is
/// `Send + Sync + 'static`, can be dropped or forgotten at any point,
/// takes a [`timeout`](Self::timeout), and, if its queue is full when it
/// is created, is posted when polled (in the order waiting futures find
/// room).
#[must_use = "the operation is posted; await it to learn whether it succeeded"]
pub struct Inline {
    flight: InFlight<InlineBytes>,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline")
            .field("phase", &self.flight.describe())
            .finish()
    }
}

impl Inline {
    fn start<B: ?Sized + RdmaBuf>(qp: &Arc<QpInner>, request: Request, message: &B) -> Self {
        let checked = check_inline(qp, std::mem::size_of_val(message));
        let bytes = InlineBytes::copy_of(message);
        Self {
            flight: InFlight::start(qp, request, bytes, checked),
        }
    }

    /// Bounds the operation to `after` from now, as
    /// [`Post::timeout`](crate::Post::timeout) does.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.flight.set_timeout(after);
        self
    }
}

impl Future for Inline {
    type Output = Result<Completion>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.flight.poll(cx).map(|(result, _)| result)
    }
}

impl<T: Transport, S: State> QueuePair<T, S> {
    /// Sends `message` inline: the provider copies it into the work
    /// request while posting, so it needs no registered memory and is the
    /// caller's again when this returns. At most
    /// [`max_inline_data`](Self::max_inline_data) bytes (ask for them with
    /// [`QpBuilder::max_inline_data`](crate::QpBuilder::max_inline_data));
    /// a longer message resolves at once to [`Error::InlineTooLong`].
    ///
    /// ```no_run
    /// # use safeverbs::*;
    /// # async fn f(pd: ProtectionDomain, cq: CompletionQueue) -> Result<()> {
    /// let qp = pd.queue_pair::<Rc>().send_cq(&cq).recv_cq(&cq).max_inline_data(64).build()?;
    /// # let qp: QueuePair<Rc, Rts> = todo!();
    /// let mut header = [0u8; 16];
    /// header[0] = 7;
    /// let sent = qp.send_inline(&header);
    /// header[0] = 8; // already copied: the peer receives 7
    /// sent.await?;
    /// # Ok(()) }
    /// ```
    pub fn send_inline<B: ?Sized + RdmaBuf>(&self, message: &B) -> Inline
    where
        S: CanSend,
    {
        Inline::start(&self.inner, Request::Send { imm: None }, message)
    }

    /// [`send_inline`](Self::send_inline) with 32 bits of immediate data.
    pub fn send_inline_with_imm<B: ?Sized + RdmaBuf>(&self, message: &B, imm: u32) -> Inline
    where
        S: CanSend,
    {
        Inline::start(&self.inner, Request::Send { imm: Some(imm) }, message)
    }

    /// RDMA WRITE of `message`, inline (see
    /// [`send_inline`](Self::send_inline)), into the peer's memory at
    /// `remote`, which must be at least as long: refused before posting
    /// otherwise.
    pub fn write_inline<B: ?Sized + RdmaBuf>(&self, message: &B, remote: RemoteSegment<B>) -> Inline
    where
        S: CanSend,
    {
        let request = Request::write_to(&remote, None);
        match remote.check_fits(std::mem::size_of_val(message)) {
            Ok(()) => Inline::start(&self.inner, request, message),
            Err(error) => Inline {
                flight: InFlight::failed(error, InlineBytes::copy_of(message)),
            },
        }
    }
}

//! A connection's liveness: the control stream, watched.
//!
//! RDMA tells a receiver nothing when its peer dies: a posted receive just
//! waits (only sends retry, and time out). The TCP stream the two ends
//! handshook over does tell: when the peer's process exits, or is killed,
//! its kernel closes the stream (FIN, or RST), and reading it ends. So each
//! [`Connection`](crate::Connection) keeps its stream and a thread reads it:
//! when it ends, the queue pair is shut down with
//! [`Shutdown::PeerClosed`], and every request waiting on it, receives
//! included, resolves with [`Error::ShutDown`](crate::Error::ShutDown)
//! naming that cause.
//!
//! The thread holds only a `Weak` to the queue pair, so it keeps nothing
//! alive. Dropping the connection drops the [`Watch`], which sends the
//! peer one goodbye byte ([`GOODBYE`]) and shuts the stream down (socket
//! calls that do not block: the stream is non-blocking by then, and
//! nothing else was sent on it since the handshake): that ends the
//! thread's read, and the thread ends without touching the queue pair; the
//! peer sees the goodbye and the end of the stream, which tells it this end
//! left on purpose. A stream that ends without the goodbye (a killed
//! process) is the same shutdown, logged as a warning. Nothing waits for
//! the thread.
//!
//! One thread per connection, with a small stack, blocked in `read`: no
//! polling, and nothing to configure. A host that dies without closing
//! its sockets (power loss, a cut cable) is not seen this way; its peer's
//! sends still fail after the transport's retries.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::queue_pair::qp::QpInner;
use crate::{Error, Result, Shutdown};

/// The watcher thread's stack: it reads into a small buffer and logs.
const STACK: usize = 128 * 1024;

/// The one byte an end sends after the handshake: when its connection is
/// dropped, just before it closes the stream.
pub(crate) const GOODBYE: u8 = b'B';

/// Watches a connection's control stream until the connection drops.
pub(crate) struct Watch {
    stream: TcpStream,
    /// Set before this end shuts the stream down itself: the end of the
    /// stream is then not the peer's doing.
    closing: Arc<AtomicBool>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

impl Watch {
    /// Starts watching `stream`, which no one else reads: when the peer's
    /// end of it closes, `qp` (if it is still alive) is shut down with
    /// [`Shutdown::PeerClosed`]. `what` and `id` name the connection in
    /// the log.
    pub(crate) fn start(
        stream: TcpStream,
        qp: Weak<QpInner>,
        what: &'static str,
        id: u64,
    ) -> Result<Self> {
        let failed = |e: io::Error| {
            Error::Exchange(io::Error::new(
                e.kind(),
                format!("could not watch the connection's stream: {e}"),
            ))
        };
        // The handshake's bound is over: from now on the read waits for
        // the peer's end, however long the connection lives.
        stream.set_read_timeout(None).map_err(failed)?;
        let watched = stream.try_clone().map_err(failed)?;
        let closing = Arc::new(AtomicBool::new(false));
        let ours = closing.clone();
        std::thread::Builder::new()
            .name(format!("safeverbs-peer-{id}"))
            .stack_size(STACK)
            .spawn(move || watch(&watched, &qp, &ours, what, id))
            .map_err(failed)?;
        Ok(Self { stream, closing })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        // Non-blocking, so that the goodbye can never wait for room (there
        // is room: nothing else was sent since the handshake).
        let goodbye = self
            .stream
            .set_nonblocking(true)
            .and_then(|()| (&self.stream).write(&[GOODBYE]));
        if let Err(e) = goodbye {
            tracing::debug!(%e, "could not say goodbye on the connection's stream");
        }
        // Does not block either: it ends the watcher's read and tells the
        // peer.
        if let Err(e) = self.stream.shutdown(std::net::Shutdown::Both) {
            if e.kind() != io::ErrorKind::NotConnected {
                tracing::debug!(%e, "shutting the connection's stream down failed");
            }
        }
    }
}

/// The watcher thread: reads until the stream ends.
fn watch(stream: &TcpStream, qp: &Weak<QpInner>, closing: &AtomicBool, what: &str, id: u64) {
    let mut buf = [0u8; 256];
    let mut reader = stream;
    let mut goodbye = false;
    let how = loop {
        match reader.read(&mut buf) {
            Ok(0) => break "the stream ended".to_owned(),
            Ok(n) => {
                let bytes = buf.get(..n).unwrap_or_default();
                goodbye |= bytes.contains(&GOODBYE);
                if bytes.iter().any(|&b| b != GOODBYE) {
                    // The protocol sends nothing else after the handshake.
                    tracing::warn!(
                        connection = what,
                        id,
                        bytes = n,
                        "the peer sent bytes on the connection's stream after the handshake; \
                         ignored"
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break e.to_string(),
        }
    };
    if closing.load(Ordering::Acquire) {
        return;
    }
    let Some(qp) = qp.upgrade() else { return };
    if goodbye {
        tracing::debug!(
            connection = what,
            id,
            "the peer dropped its connection; shutting this end's queue pair down"
        );
    } else {
        tracing::warn!(
            connection = what,
            id,
            how = %how,
            "the peer closed the connection without a goodbye (did its process die?); \
             shutting this end's queue pair down"
        );
    }
    qp.shut_down(Shutdown::PeerClosed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (a, b)
    }

    /// Rule: dropping a connection never waits, and tells the peer: a
    /// goodbye, then the end of the stream.
    #[test]
    fn dropping_the_watch_says_goodbye_and_closes_without_waiting() {
        let (ours, theirs) = pair();
        // The peer reads nothing yet: dropping must not wait for it.
        let watch = Watch::start(ours, Weak::new(), "connection `Kv`", 1).unwrap();
        let start = Instant::now();
        drop(watch);
        assert!(start.elapsed() < Duration::from_secs(1), "drop waited");
        theirs
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        (&theirs).read_to_end(&mut got).unwrap();
        assert_eq!(got, [GOODBYE]);
    }
}

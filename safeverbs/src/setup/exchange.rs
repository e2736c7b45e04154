//! Swapping endpoints with a peer over TCP, every wait bounded.
//!
//! Each wait here has a bound the caller sees or chooses:
//! [`tcp_connect`] and [`tcp_accept`] wait at most [`EXCHANGE_TIMEOUT`]
//! for the peer ([`tcp_connect_within`] and [`tcp_accept_within`] take
//! another bound), and [`exchange`] gives the whole exchange one deadline,
//! [`EXCHANGE_TIMEOUT`] after it starts ([`exchange_within`]). A bound
//! that passes is [`Error::Timeout`], naming what was awaited.
//!
//! The encoding itself goes over any byte stream: see
//! [`Endpoint::write_to`] and [`Endpoint::read_from`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::setup::endpoint::{Endpoint, ReadError};
use crate::{Error, Result};

/// The default bound of each wait of the exchange, **30 seconds**: how long
/// [`tcp_connect`] retries, how long [`tcp_accept`] waits for a peer, and
/// the deadline of a whole handshake ([`exchange`],
/// [`Prepared::connect`](crate::Prepared::connect)). The `_within` variants
/// ([`tcp_connect_within`], [`tcp_accept_within`], [`exchange_within`],
/// [`Prepared::connect_within`](crate::Prepared::connect_within)) take
/// another bound.
///
/// ```
/// assert_eq!(safeverbs::EXCHANGE_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`tcp_connect`] waits between attempts while nothing listens.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Sends `local` and reads the peer's endpoint, both within
/// [`EXCHANGE_TIMEOUT`] from now. Both sides call this; the encoding is
/// small enough that writing first cannot deadlock.
///
/// A peer that sends nothing, or not all of its endpoint, in time gives
/// [`Error::Timeout`]; one that sends something else gives
/// [`Error::Endpoint`] as soon as the bytes that arrived show it (a wrong
/// magic after four bytes). The stream's own read and write timeouts are
/// put back afterwards.
pub fn exchange(stream: &mut TcpStream, local: &Endpoint) -> Result<Endpoint> {
    exchange_within(stream, local, EXCHANGE_TIMEOUT)
}

/// [`exchange`] within `timeout`, for the whole exchange.
pub fn exchange_within(
    stream: &mut TcpStream,
    local: &Endpoint,
    timeout: Duration,
) -> Result<Endpoint> {
    let mut stream = Deadline::new(stream, timeout)?;
    stream.exchange(local)
}

/// Connects to a peer for the exchange, retrying while it is not listening
/// yet, for up to [`EXCHANGE_TIMEOUT`]. The stream's reads and writes time
/// out after the same delay.
pub fn tcp_connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
    tcp_connect_within(addr, EXCHANGE_TIMEOUT)
}

/// [`tcp_connect`], retrying for up to `timeout` (each attempt bounded by
/// what is left of it); the stream's reads and writes time out after
/// `timeout`. Fails with [`Error::Timeout`] when no attempt succeeded in
/// time (the last attempt's error is logged).
pub fn tcp_connect_within(addr: impl ToSocketAddrs, timeout: Duration) -> Result<TcpStream> {
    let start = Instant::now();
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(Error::Exchange)?.collect();
    if addrs.is_empty() {
        return Err(Error::Exchange(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )));
    }
    loop {
        for a in &addrs {
            let Some(left) = left(start, timeout) else {
                return Err(Error::Timeout(timeout, "the peer's TCP listener"));
            };
            match TcpStream::connect_timeout(a, left) {
                Ok(s) => return configure(s, timeout),
                Err(e) => tracing::debug!(addr = %a, %e, "connecting to the peer failed; retrying"),
            }
        }
        match left(start, timeout) {
            Some(left) => std::thread::sleep(left.min(RETRY_PAUSE)),
            None => return Err(Error::Timeout(timeout, "the peer's TCP listener")),
        }
    }
}

/// Accepts one peer on `listener` for the exchange, waiting at most
/// [`EXCHANGE_TIMEOUT`]. The stream's reads and writes time out after the
/// same delay.
pub fn tcp_accept(listener: &TcpListener) -> Result<TcpStream> {
    tcp_accept_within(listener, EXCHANGE_TIMEOUT)
}

/// [`tcp_accept`], waiting at most `timeout` for a peer ([`Error::Timeout`]
/// after that); the stream's reads and writes time out after `timeout`.
///
/// The listener may be blocking or not; it is left as it was.
pub fn tcp_accept_within(listener: &TcpListener, timeout: Duration) -> Result<TcpStream> {
    let start = Instant::now();
    let fd = listener.as_raw_fd();
    // SAFETY: `fd` is the listener's open descriptor, borrowed for this
    // call; F_GETFL reads its status flags and nothing else.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(Error::Exchange(io::Error::last_os_error()));
    }
    let was_blocking = flags & libc::O_NONBLOCK == 0;
    // Non-blocking while waiting, so that a connection another thread
    // accepts first cannot leave `accept` blocked past the bound.
    listener.set_nonblocking(true).map_err(Error::Exchange)?;
    let accepted = accept_until(listener, start, timeout);
    if was_blocking {
        if let Err(e) = listener.set_nonblocking(false) {
            tracing::warn!(%e, "could not put the listener back in blocking mode");
        }
    }
    let stream = accepted?;
    stream.set_nonblocking(false).map_err(Error::Exchange)?;
    configure(stream, timeout)
}

fn accept_until(listener: &TcpListener, start: Instant, timeout: Duration) -> Result<TcpStream> {
    loop {
        match listener.accept() {
            Ok((s, _)) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Exchange(e)),
        }
        let Some(left) = left(start, timeout) else {
            return Err(Error::Timeout(
                timeout,
                "a peer to connect to the TCP listener",
            ));
        };
        let mut poll = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up, so that the wait does not end just before the bound.
        let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: `poll` is one valid `pollfd` for the listener's open
        // descriptor, and the count passed is 1.
        let rc = unsafe { libc::poll(&mut poll, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::Exchange(e));
            }
        }
    }
}

/// What is left of `timeout` since `start`, if anything.
fn left(start: Instant, timeout: Duration) -> Option<Duration> {
    let left = timeout.saturating_sub(start.elapsed());
    (!left.is_zero()).then_some(left)
}

fn configure(s: TcpStream, timeout: Duration) -> Result<TcpStream> {
    s.set_read_timeout(Some(timeout)).map_err(Error::Exchange)?;
    s.set_write_timeout(Some(timeout))
        .map_err(Error::Exchange)?;
    s.set_nodelay(true).map_err(Error::Exchange)?;
    Ok(s)
}

/// What a [`Deadline`] runs over: a byte stream whose reads and writes take
/// a timeout. A [`TcpStream`] in the library; an in-memory peer under the
/// fuzzer (`crate::__fuzz`), so that the handshake's own code reads the
/// fuzzer's bytes.
pub(crate) trait Stream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    fn flush(&self) -> io::Result<()>;
    fn read_timeout(&self) -> io::Result<Option<Duration>>;
    fn write_timeout(&self) -> io::Result<Option<Duration>>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut stream = self;
        Read::read(&mut stream, buf)
    }
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut stream = self;
        Write::write(&mut stream, buf)
    }
    fn flush(&self) -> io::Result<()> {
        let mut stream = self;
        Write::flush(&mut stream)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::read_timeout(self)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::write_timeout(self)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

/// A stream under one deadline: every read and write waits at most until
/// it, however the peer spreads its bytes. A bound that passes is
/// [`Error::Timeout`] with the whole budget and what was awaited. The
/// stream's own timeouts are put back when this is dropped.
pub(crate) struct Deadline<'a, S: Stream + ?Sized = TcpStream> {
    stream: &'a S,
    deadline: Option<Instant>,
    budget: Duration,
    saved: (Option<Duration>, Option<Duration>),
}

impl<'a, S: Stream + ?Sized> Deadline<'a, S> {
    pub(crate) fn new(stream: &'a S, budget: Duration) -> Result<Self> {
        let saved = (
            stream.read_timeout().map_err(Error::Exchange)?,
            stream.write_timeout().map_err(Error::Exchange)?,
        );
        Ok(Self {
            stream,
            // `None`: so far away that `Instant` cannot say it.
            deadline: Instant::now().checked_add(budget),
            budget,
            saved,
        })
    }

    /// The time left, or `TimedOut` once the deadline has passed.
    fn left(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(io::ErrorKind::TimedOut.into()),
            },
        }
    }

    /// The error for `e`, met while waiting for `what`: a timeout names the
    /// bound; an early end says the peer left.
    pub(crate) fn error(&self, e: io::Error, what: &'static str) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Error::Timeout(self.budget, what)
            }
            io::ErrorKind::UnexpectedEof => Error::PeerLeft { during: what },
            _ => Error::Exchange(e),
        }
    }

    pub(crate) fn send(&mut self, bytes: &[u8], what: &'static str) -> Result<()> {
        self.write_all(bytes).map_err(|e| self.error(e, what))
    }

    pub(crate) fn receive(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        self.read_exact(buf).map_err(|e| self.error(e, what))
    }

    /// Sends `local`, then reads the peer's endpoint.
    pub(crate) fn exchange(&mut self, local: &Endpoint) -> Result<Endpoint> {
        self.send(&local.encode(), "the peer took this end's endpoint")?;
        Endpoint::read_from(self).map_err(|e| match e {
            ReadError::Io(io) => self.error(io, "the peer's endpoint"),
            ReadError::Decode(d) => Error::Endpoint(d),
        })
    }
}

impl<S: Stream + ?Sized> Read for Deadline<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(self.left()?)?;
        self.stream.read(buf)
    }
}

impl<S: Stream + ?Sized> Write for Deadline<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(self.left()?)?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl<S: Stream + ?Sized> Drop for Deadline<'_, S> {
    fn drop(&mut self) {
        // Setting a socket option does not block.
        let (read, write) = self.saved;
        if let Err(e) = self
            .stream
            .set_read_timeout(read)
            .and_then(|()| self.stream.set_write_timeout(write))
        {
            tracing::debug!(%e, "could not restore the stream's timeouts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue_pair::transport::TransportKind;
    use crate::setup::endpoint::DecodeError;
    use std::thread;

    fn endpoint() -> Endpoint {
        Endpoint {
            transport: TransportKind::Rc,
            qpn: 0x11,
            psn: 0x22,
            lid: 0,
            gid: [0xfe; 16],
            mtu: 1024,
            port: 1,
            fingerprint: 7,
        }
    }

    /// A connected pair of TCP streams on loopback.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (a, b)
    }

    #[test]
    fn accept_is_bounded_and_says_what_it_waited_for() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        let err = tcp_accept_within(&listener, Duration::from_millis(200)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "bounded");
        assert!(
            matches!(err, Error::Timeout(d, _) if d == Duration::from_millis(200)),
            "{err}"
        );
        assert!(err.to_string().contains("a peer to connect"), "{err}");
        // Left blocking, as it was: a peer that connects now is accepted.
        let addr = listener.local_addr().unwrap();
        let client = thread::spawn(move || TcpStream::connect(addr).unwrap());
        let stream = tcp_accept_within(&listener, Duration::from_secs(5)).unwrap();
        assert_eq!(stream.read_timeout().unwrap(), Some(Duration::from_secs(5)));
        drop(client.join());
        // And a non-blocking listener stays non-blocking.
        listener.set_nonblocking(true).unwrap();
        assert!(tcp_accept_within(&listener, Duration::from_millis(10)).is_err());
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn connect_is_bounded_and_says_what_it_waited_for() {
        // A port that was just free: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let start = Instant::now();
        let err = tcp_connect_within(addr, Duration::from_millis(300)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "bounded");
        assert!(
            matches!(err, Error::Timeout(_, "the peer's TCP listener")),
            "{err}"
        );
    }

    #[test]
    fn exchange_has_one_deadline_for_the_whole_exchange() {
        let (mut ours, theirs) = pair();
        // The peer sends one byte of its endpoint every 100 ms: each read
        // is quick, the whole is not.
        let peer = thread::spawn(move || {
            let bytes = endpoint().encode();
            for b in bytes {
                if (&theirs).write_all(&[b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        let start = Instant::now();
        let err = exchange_within(&mut ours, &endpoint(), Duration::from_millis(500)).unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(
            matches!(err, Error::Timeout(d, "the peer's endpoint") if d == Duration::from_millis(500)),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "timed out after 500ms waiting for the peer's endpoint"
        );
        drop(ours);
        drop(peer.join());
    }

    #[test]
    fn exchange_stops_at_a_wrong_magic_and_restores_the_timeouts() {
        let (mut ours, theirs) = pair();
        ours.set_read_timeout(Some(Duration::from_secs(77)))
            .unwrap();
        (&theirs).write_all(b"HTTP").unwrap();
        // The peer then stays silent, but four bytes are enough.
        let start = Instant::now();
        let err = exchange_within(&mut ours, &endpoint(), Duration::from_secs(20)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(err, Error::Endpoint(DecodeError::BadMagic { found }) if &found == b"HTTP"),
            "{err}"
        );
        assert_eq!(ours.read_timeout().unwrap(), Some(Duration::from_secs(77)));
        drop(theirs);
    }

    #[test]
    fn exchange_round_trip() {
        let (mut a, mut b) = pair();
        let other = Endpoint {
            qpn: 0x33,
            ..endpoint()
        };
        let t = thread::spawn(move || exchange(&mut b, &other).unwrap());
        assert_eq!(exchange(&mut a, &endpoint()).unwrap(), other);
        assert_eq!(t.join().unwrap(), endpoint());
    }
}

//! Swapping endpoints with a peer over any byte stream.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::endpoint::{Endpoint, ReadError};
use crate::{Error, Result};

/// How long [`tcp_connect`] and [`tcp_accept`] streams wait for the peer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `local` and reads the peer's endpoint. Both sides call this; the
/// encoding is small enough that writing first cannot deadlock.
pub fn exchange<S: Read + Write>(stream: &mut S, local: &Endpoint) -> Result<Endpoint> {
    local.write_to(stream).map_err(Error::Exchange)?;
    stream.flush().map_err(Error::Exchange)?;
    Endpoint::read_from(stream).map_err(|e| match e {
        ReadError::Io(io) => Error::Exchange(io),
        ReadError::Decode(d) => Error::Endpoint(d),
    })
}

/// Connects to a peer for the exchange, retrying while it is not listening
/// yet, for up to [`EXCHANGE_TIMEOUT`]. Reads and writes on the stream
/// time out after the same delay.
pub fn tcp_connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
    let deadline = std::time::Instant::now() + EXCHANGE_TIMEOUT;
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(Error::Exchange)?.collect();
    loop {
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, EXCHANGE_TIMEOUT) {
                Ok(s) => return configure(s),
                Err(e) => last = Some(e),
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(last.map_or(
                Error::Timeout(EXCHANGE_TIMEOUT, "the peer's TCP listener"),
                Error::Exchange,
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Accepts one peer on `listener` for the exchange (streams time out after
/// [`EXCHANGE_TIMEOUT`]).
pub fn tcp_accept(listener: &TcpListener) -> Result<TcpStream> {
    let (s, _) = listener.accept().map_err(Error::Exchange)?;
    configure(s)
}

fn configure(s: TcpStream) -> Result<TcpStream> {
    s.set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .map_err(Error::Exchange)?;
    s.set_write_timeout(Some(EXCHANGE_TIMEOUT))
        .map_err(Error::Exchange)?;
    s.set_nodelay(true).map_err(Error::Exchange)?;
    Ok(s)
}

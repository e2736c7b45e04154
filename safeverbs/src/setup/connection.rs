//! Connection types: a declaration ([`connection!`](crate::connection!))
//! names the transport, the message each end sends and the region each end
//! exposes to its peer; [`Connection<D, Client>`](Connection) and
//! [`Connection<D, Server>`](Connection) are its two typed ends.

use std::fmt;
use std::marker::PhantomData;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::completions::cq::CompletionQueue;
use crate::fingerprint as fp;
use crate::memory::fields::{FieldToken, HasFields, Project};
use crate::memory::mode::{Mode, Rw, Writable};
use crate::memory::pd::{Access, ProtectionDomain};
use crate::memory::pod::RdmaPod;
use crate::memory::region::MemoryRegion;
use crate::memory::remote::{RemoteRegion, RemoteSegment, REMOTE_REGION_LEN};
use crate::memory::segment::Segment;
use crate::posting::ops::Post;
use crate::queue_pair::qp::{QpBuilder, QueuePair};
use crate::queue_pair::transport::TransportKind;
use crate::queue_pair::transport::{Init, Reliable, Rts, Transport};
use crate::setup::endpoint::Endpoint;
use crate::setup::exchange::{Deadline, Stream, EXCHANGE_TIMEOUT};
use crate::setup::liveness::Watch;
use crate::wire::Put;
use crate::{Error, Result};

/// A connection type: its transport, what each end sends and what each end
/// exposes to the other. Declare one with
/// [`connection!`](crate::connection!), which implements this trait.
pub trait Declaration: Send + Sync + 'static {
    /// The declaration's name, as written (`"Kv"`); part of the
    /// fingerprint.
    const NAME: &'static str;
    /// How errors name the declaration: ``connection `Kv` ``.
    const WHAT: &'static str;
    /// The transport of both ends ([`Rc`](crate::Rc), [`Uc`](crate::Uc)).
    type Transport: Transport;
    /// What the client sends and the server receives.
    type ClientSends: RdmaPod;
    /// The region the client exposes to the server ([`Nothing`] if none).
    type ClientExposes: RdmaPod;
    /// What the server sends and the client receives.
    type ServerSends: RdmaPod;
    /// The region the server exposes to the client ([`Nothing`] if none).
    type ServerExposes: RdmaPod;
    /// The declaration's fingerprint, which both ends exchange and compare
    /// when they connect (see [`connection!`](crate::connection!)). Leave
    /// the default.
    const FINGERPRINT: u64 = declaration_fingerprint::<Self>();
}

/// The fingerprint of the declaration `D`, as
/// [`connection!`](crate::connection!) documents it.
pub const fn declaration_fingerprint<D: Declaration + ?Sized>() -> u64 {
    let transport = match <D::Transport as Transport>::KIND {
        TransportKind::Rc => "RC",
        TransportKind::Uc => "UC",
        TransportKind::Ud => "UD",
    };
    let h = fp::str(fp::start("connection"), D::NAME);
    let h = fp::str(h, transport);
    let h = fp::str(h, "client");
    let h = fp::num(h, <D::ClientSends as RdmaPod>::FINGERPRINT);
    let h = fp::num(h, <D::ClientExposes as RdmaPod>::FINGERPRINT);
    let h = fp::str(h, "server");
    let h = fp::num(h, <D::ServerSends as RdmaPod>::FINGERPRINT);
    fp::num(h, <D::ServerExposes as RdmaPod>::FINGERPRINT)
}

/// The region of an end that exposes nothing: zero bytes and no fields, so
/// its peer has nothing to write into. What `connection!` puts where
/// `exposes` is left out.
pub type Nothing = [u8; 0];

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Client {}
    impl Sealed for super::Server {}
}

/// The end of a connection that connects ([`tcp_connect`](crate::tcp_connect)
/// side, by convention).
#[derive(Debug)]
pub enum Client {}

/// The end of a connection that accepts ([`tcp_accept`](crate::tcp_accept)
/// side, by convention).
#[derive(Debug)]
pub enum Server {}

/// [`Client`] or [`Server`]: which side of a [`Declaration`] an end plays.
/// Sealed.
pub trait Role: sealed::Sealed + Send + Sync + 'static {
    /// The other end.
    type Peer: Role<Peer = Self>;
    /// What this end of `D` sends.
    type Sends<D: Declaration>: RdmaPod;
    /// What this end of `D` receives: what its peer sends.
    type Receives<D: Declaration>: RdmaPod;
    /// The region this end of `D` exposes to its peer.
    type Exposes<D: Declaration>: RdmaPod;
    /// The region the peer of this end exposes to it.
    type PeerExposes<D: Declaration>: RdmaPod;
    /// `"client"` or `"server"`.
    const NAME: &'static str;
    /// The role on the wire.
    #[doc(hidden)]
    const WIRE: u8;
}

impl Role for Client {
    type Peer = Server;
    type Sends<D: Declaration> = D::ClientSends;
    type Receives<D: Declaration> = D::ServerSends;
    type Exposes<D: Declaration> = D::ClientExposes;
    type PeerExposes<D: Declaration> = D::ServerExposes;
    const NAME: &'static str = "client";
    const WIRE: u8 = 1;
}

impl Role for Server {
    type Peer = Client;
    type Sends<D: Declaration> = D::ServerSends;
    type Receives<D: Declaration> = D::ClientSends;
    type Exposes<D: Declaration> = D::ServerExposes;
    type PeerExposes<D: Declaration> = D::ClientExposes;
    const NAME: &'static str = "server";
    const WIRE: u8 = 2;
}

/// A part of the region that end `E` of connection `D` exposes to its
/// peer: the only target [`Connection::write`] and [`Connection::read`]
/// accept. Obtained from [`Connection::peer`], projected to fields by name
/// with [`fields`](Exposed::fields); it cannot be made from a
/// [`RemoteSegment`], from bytes, or at an offset or type of the caller's
/// choosing (only the field layout `#[derive(RdmaPod)]` generates can
/// project it, and that keeps each field's visibility: see
/// [`FieldToken`]).
///
/// It carries the peer's address and rkey, and belongs to the connection
/// that handed it out: any other connection, even one of the same
/// declaration, refuses it before posting ([`Error::WrongConnection`]).
pub struct Exposed<D, E, T> {
    remote: RemoteSegment<T>,
    /// The [`Connection::id`] of the connection that handed it out.
    conn: u64,
    _end: PhantomData<fn() -> (D, E)>,
}

impl<D, E, T> Exposed<D, E, T> {
    fn new(remote: RemoteSegment<T>, conn: u64) -> Self {
        Self {
            remote,
            conn,
            _end: PhantomData,
        }
    }

    /// The [`id`](Connection::id) of the connection that handed it out,
    /// the only one that accepts it.
    pub fn connection_id(&self) -> u64 {
        self.conn
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.remote.len_bytes()
    }

    /// The peer's address of the first byte.
    pub fn addr(&self) -> u64 {
        self.remote.addr()
    }
}

impl<D, E, T> Clone for Exposed<D, E, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D, E, T> Copy for Exposed<D, E, T> {}

impl<D, E, T> fmt::Debug for Exposed<D, E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposed")
            .field("connection", &std::any::type_name::<D>())
            .field("id", &self.conn)
            .field("by", &std::any::type_name::<E>())
            .field("type", &std::any::type_name::<T>())
            .field("addr", &format_args!("{:#x}", self.remote.addr()))
            .field("len", &self.remote.len_bytes())
            .finish()
    }
}

impl<D, E, T: RdmaPod> Project for Exposed<D, E, T> {
    type Value = T;
    type At<F: RdmaPod> = Exposed<D, E, F>;
    fn project<F: RdmaPod>(&self, offset: usize, token: FieldToken) -> Exposed<D, E, F> {
        Exposed::new(self.remote.project(offset, token), self.conn)
    }
}

impl<D, E, T: HasFields> Exposed<D, E, T> {
    /// The exposed value's fields by name, each an [`Exposed`] of the
    /// field's type, of the same connection.
    pub fn fields(&self) -> T::Fields<Exposed<D, E, T>> {
        T::project_fields(self, FieldToken::new())
    }
}

/// Every connection's [`id`](Connection::id): never 0, never reused in
/// one process (2^64 connections would take centuries).
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// The error for a peer whose declaration fingerprint is `remote` where
/// ours is `local`: naming a side that declares nothing as such.
pub(crate) fn fingerprint_error(what: &'static str, local: u64, remote: u64) -> Error {
    if local == 0 || remote == 0 {
        Error::Undeclared {
            what,
            local,
            remote,
        }
    } else {
        Error::Fingerprint {
            what,
            local,
            remote,
        }
    }
}

/// Builds end `R` of connection `D`: `Kv::client(&pd)` or
/// `Kv::server(&pd)` (generated by [`connection!`](crate::connection!)),
/// or [`Connection::builder`].
pub struct ConnectionBuilder<D: Declaration, R: Role> {
    pd: ProtectionDomain,
    qp: QpBuilder<D::Transport>,
    exposed: Option<MemoryRegion<R::Exposes<D>>>,
}

impl<D: Declaration, R: Role> fmt::Debug for ConnectionBuilder<D, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionBuilder")
            .field("connection", &D::NAME)
            .field("role", &R::NAME)
            .field("queue_pair", &self.qp)
            .field("exposed", &self.exposed)
            .finish()
    }
}

impl<D: Declaration, R: Role> ConnectionBuilder<D, R> {
    /// Starts building end `R` of `D` in `pd`.
    pub fn new(pd: &ProtectionDomain) -> Self {
        Self {
            pd: pd.clone(),
            qp: pd.queue_pair(),
            exposed: None,
        }
    }

    /// The completion queue of both the send and the receive queue.
    pub fn cq(self, cq: &CompletionQueue) -> Self {
        self.send_cq(cq).recv_cq(cq)
    }

    /// The completion queue of sends, writes and reads.
    pub fn send_cq(mut self, cq: &CompletionQueue) -> Self {
        self.qp = self.qp.send_cq(cq);
        self
    }

    /// The completion queue of receives.
    pub fn recv_cq(mut self, cq: &CompletionQueue) -> Self {
        self.qp = self.qp.recv_cq(cq);
        self
    }

    /// Any other queue-pair option: `.queue_pair(|qp| qp.max_send_wr(16))`,
    /// and on RC `timeout`, `retry_count`, … The fingerprint is always the
    /// declaration's.
    pub fn queue_pair(
        mut self,
        options: impl FnOnce(QpBuilder<D::Transport>) -> QpBuilder<D::Transport>,
    ) -> Self {
        self.qp = options(self.qp);
        self
    }

    /// The region this end exposes to its peer, registered by the caller
    /// (in this builder's protection domain) with remote access. Without
    /// it, [`prepare`](Self::prepare) registers a zeroed one, writable by
    /// the peer (and, on RC, readable).
    pub fn expose(mut self, region: MemoryRegion<R::Exposes<D>>) -> Self {
        self.exposed = Some(region);
        self
    }

    /// Creates the queue pair (state INIT, with the declaration's
    /// fingerprint) and the exposed region. Receives may be posted on the
    /// result before it connects.
    pub fn prepare(self) -> Result<Prepared<D, R>> {
        let exposed = match self.exposed {
            Some(region) => {
                if size_of::<R::Exposes<D>>() > 0 && !region.access().is_remote() {
                    return Err(Error::NotExposable {
                        role: R::NAME,
                        what: D::WHAT,
                    });
                }
                region
            }
            None => {
                let access = if size_of::<R::Exposes<D>>() == 0 {
                    // Nothing to grant.
                    Access::local()
                } else if <D::Transport as Transport>::RELIABLE {
                    Access::remote_write().union(Access::remote_read())
                } else {
                    Access::remote_write()
                };
                self.pd
                    .register(<R::Exposes<D> as RdmaPod>::zeroed(), access)?
            }
        };
        let qp = self.qp.fingerprint(D::FINGERPRINT, D::WHAT).build()?;
        Ok(Prepared {
            qp,
            exposed,
            _role: PhantomData,
        })
    }

    /// [`prepare`](Self::prepare), then [`connect`](Prepared::connect),
    /// for an end that posts no receive before connecting.
    pub fn connect(self, stream: TcpStream) -> Result<Connection<D, R>> {
        self.prepare()?.connect(stream)
    }

    /// [`prepare`](Self::prepare), then
    /// [`connect_within`](Prepared::connect_within).
    pub fn connect_within(self, stream: TcpStream, timeout: Duration) -> Result<Connection<D, R>> {
        self.prepare()?.connect_within(stream, timeout)
    }
}

/// End `R` of connection `D`, not connected yet: its queue pair is in
/// INIT and its exposed region registered. Post receives with
/// [`recv`](Prepared::recv), then [`connect`](Prepared::connect).
pub struct Prepared<D: Declaration, R: Role> {
    qp: QueuePair<D::Transport, Init>,
    exposed: MemoryRegion<R::Exposes<D>>,
    _role: PhantomData<fn() -> (D, R)>,
}

impl<D: Declaration, R: Role> fmt::Debug for Prepared<D, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("connection", &D::NAME)
            .field("role", &R::NAME)
            .field("queue_pair", &self.qp)
            .field("exposed", &self.exposed)
            .finish()
    }
}

/// The connection hello, after the endpoints: magic, version, role. The
/// region descriptor follows once both ends have checked each other.
pub(crate) const HELLO_MAGIC: [u8; 4] = *b"SVCN";
pub(crate) const HELLO_VERSION: u8 = 1;
pub(crate) const HELLO_LEN: usize = 4 + 1 + 1;
/// The last byte of the handshake: this end's queue pair is in RTS.
pub(crate) const READY: u8 = b'R';

fn role_name(wire: u8) -> &'static str {
    match wire {
        w if w == Client::WIRE => Client::NAME,
        w if w == Server::WIRE => Server::NAME,
        _ => "unknown role",
    }
}

/// What an end is, and so what it requires of its peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terms {
    /// The declaration, as errors name it.
    what: &'static str,
    fingerprint: u64,
    transport: TransportKind,
    /// This end's role on the wire, and the peer's.
    role: u8,
    peer_role: u8,
    /// `"client"` or `"server"`: the peer's role.
    peer_name: &'static str,
}

impl Terms {
    pub(crate) fn of<D: Declaration, R: Role>() -> Self {
        Self {
            what: D::WHAT,
            fingerprint: D::FINGERPRINT,
            transport: <D::Transport as Transport>::KIND,
            role: R::WIRE,
            peer_role: R::Peer::WIRE,
            peer_name: R::Peer::NAME,
        }
    }
}

/// The handshake of a connection, step by step, under one deadline.
///
/// Nothing this end keeps for its peer (the address and rkey of the region
/// it exposes) leaves before everything about the peer has been checked:
/// its endpoint, declaration and transport, then the magic, version and
/// role of its hello, each as soon as its bytes arrive.
struct Handshake<'a, S: Stream + ?Sized> {
    stream: Deadline<'a, S>,
    terms: Terms,
}

impl<S: Stream + ?Sized> Handshake<'_, S> {
    /// Step 1: endpoints, sent and read; the peer's declaration and
    /// transport checked.
    fn endpoints(&mut self, local: &Endpoint) -> Result<Endpoint> {
        let peer = self.stream.exchange(local)?;
        let t = self.terms;
        if peer.fingerprint != t.fingerprint {
            return Err(fingerprint_error(t.what, t.fingerprint, peer.fingerprint));
        }
        if peer.transport != t.transport {
            return Err(Error::TransportMismatch {
                local: t.transport,
                remote: peer.transport,
            });
        }
        Ok(peer)
    }

    /// Step 2: hellos: magic, version and role, each checked as soon as it
    /// arrives.
    fn hellos(&mut self) -> Result<()> {
        let t = self.terms;
        let mut hello = [0; HELLO_LEN];
        Put::new(&mut hello)
            .bytes(HELLO_MAGIC)
            .u8(HELLO_VERSION)
            .u8(t.role);
        self.stream
            .send(&hello, "the peer took this end's connection hello")?;
        let mut theirs = [0; HELLO_LEN];
        let what = "the peer's connection hello";
        for got in 1..=HELLO_LEN {
            self.stream.receive(&mut theirs[got - 1..got], what)?;
            let (seen, expected) = (&theirs[..got.min(4)], &HELLO_MAGIC[..got.min(4)]);
            if seen != expected || (got > 4 && theirs[4] != HELLO_VERSION) {
                return Err(Error::HelloMismatch {
                    found: theirs[..got.min(5)].to_vec(),
                    version: HELLO_VERSION,
                });
            }
        }
        if theirs[5] != t.peer_role {
            return Err(Error::SameRole {
                peer: role_name(theirs[5]),
                what: t.what,
                expected: t.peer_name,
            });
        }
        Ok(())
    }

    /// Step 3: region descriptors, now that the peer is checked.
    fn regions(&mut self, ours: [u8; REMOTE_REGION_LEN]) -> Result<[u8; REMOTE_REGION_LEN]> {
        self.stream
            .send(&ours, "the peer took this end's region descriptor")?;
        let mut theirs = [0; REMOTE_REGION_LEN];
        self.stream
            .receive(&mut theirs, "the descriptor of the peer's region")?;
        Ok(theirs)
    }

    /// Step 4, once this end's queue pair is in RTS: ready, both ways.
    fn ready(&mut self) -> Result<()> {
        self.stream
            .send(&[READY], "the peer took this end's ready")?;
        let mut ready = [0];
        self.stream
            .receive(&mut ready, "the peer's queue pair to be ready")?;
        if ready[0] != READY {
            return Err(Error::NotReady { found: ready[0] });
        }
        Ok(())
    }
}

/// The whole handshake over `stream` within `timeout`: endpoints, hellos,
/// region descriptors (`ours` sent), then `connect` with the peer's
/// endpoint and region descriptor, then ready.
pub(crate) fn handshake<S: Stream + ?Sized, Q>(
    stream: &S,
    timeout: Duration,
    terms: Terms,
    local: &Endpoint,
    ours: [u8; REMOTE_REGION_LEN],
    connect: impl FnOnce(&Endpoint, &[u8; REMOTE_REGION_LEN]) -> Result<Q>,
) -> Result<(Q, Endpoint)> {
    let mut handshake = Handshake {
        stream: Deadline::new(stream, timeout)?,
        terms,
    };
    let peer = handshake.endpoints(local)?;
    handshake.hellos()?;
    let theirs = handshake.regions(ours)?;
    let connected = connect(&peer, &theirs)?;
    handshake.ready()?;
    Ok((connected, peer))
}

impl<D: Declaration, R: Role> Prepared<D, R> {
    /// Posts a receive for the peer's next message (see
    /// [`Connection::recv`]); before connecting, so that the peer's first
    /// messages find it.
    pub fn recv(&self, into: Segment<R::Receives<D>, Rw>) -> Post<R::Receives<D>, Rw> {
        self.qp.recv(into)
    }

    /// The region this end exposes to its peer.
    pub fn exposed(&self) -> &MemoryRegion<R::Exposes<D>> {
        &self.exposed
    }

    /// What the peer needs to connect to this end (the handshake sends it).
    pub fn endpoint(&self) -> Endpoint {
        self.qp.endpoint()
    }

    /// Runs the handshake with the peer over `stream` (see
    /// [`connection!`](crate::connection!)), within [`EXCHANGE_TIMEOUT`],
    /// and connects.
    ///
    /// The connection keeps the stream: it is how each end learns that the
    /// other is gone. When the peer's end of the stream closes (the peer
    /// dropped its connection, exited or was killed), this end's queue pair
    /// is shut down and every request waiting on it, receives included,
    /// resolves with an error naming the cause; dropping the connection
    /// closes the stream, which tells the peer the same. So the stream is
    /// taken by value: nothing else may read from it or close it.
    ///
    /// Fails with [`Error::Fingerprint`] when the peer's declaration
    /// differs, [`Error::TransportMismatch`] when its transport does, with
    /// [`Error::Timeout`] when the handshake does not finish in time, and
    /// with [`Error::Exchange`] when the peer plays the same role, is not a
    /// SafeVerbs connection, or the stream fails. On failure the queue pair
    /// is destroyed, after its posted receives are flushed.
    pub fn connect(self, stream: TcpStream) -> Result<Connection<D, R>> {
        self.connect_within(stream, EXCHANGE_TIMEOUT)
    }

    /// [`connect`](Self::connect), with `timeout` for the whole handshake.
    pub fn connect_within(self, stream: TcpStream, timeout: Duration) -> Result<Connection<D, R>> {
        let local = self.qp.endpoint();
        let ours = self.exposed.remote().encode();
        let qp = self.qp;
        let ((qp, region), peer) = handshake(
            &stream,
            timeout,
            Terms::of::<D, R>(),
            &local,
            ours,
            |peer, theirs| {
                let region = RemoteRegion::<R::PeerExposes<D>>::decode(theirs)?;
                Ok((qp.connect(peer)?, region))
            },
        )?;
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            connection = D::NAME,
            id,
            role = R::NAME,
            qpn = qp.qp_num(),
            peer_qpn = peer.qpn,
            fingerprint = D::FINGERPRINT,
            "connected"
        );
        let watch = Watch::start(stream, Arc::downgrade(&qp.inner), D::WHAT, id)?;
        Ok(Connection {
            _watch: watch,
            id,
            qp,
            exposed: self.exposed,
            peer: region.whole(),
            _role: PhantomData,
        })
    }
}

/// End `R` ([`Client`] or [`Server`]) of connection `D`, connected: it
/// sends what `D` says `R` sends, receives what the peer sends, and RDMA
/// writes and reads only the region the peer exposes.
///
/// Built with `D::client(&pd)` / `D::server(&pd)` (see
/// [`connection!`](crate::connection!)) and [`Prepared::connect`]. Every
/// operation is the queue pair's own (segment moved in, handed back on
/// completion), with the declaration's types.
pub struct Connection<D: Declaration, R: Role> {
    /// First, so that it is dropped first: the stream's end is then this
    /// end's doing, not the peer's.
    _watch: Watch,
    id: u64,
    qp: QueuePair<D::Transport, Rts>,
    exposed: MemoryRegion<R::Exposes<D>>,
    peer: RemoteSegment<R::PeerExposes<D>>,
    _role: PhantomData<fn() -> (D, R)>,
}

impl<D: Declaration, R: Role> fmt::Debug for Connection<D, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("connection", &D::NAME)
            .field("id", &self.id)
            .field("role", &R::NAME)
            .field("queue_pair", &self.qp)
            .field("exposed", &self.exposed)
            .field("peer", &self.peer)
            .finish()
    }
}

impl<D: Declaration, R: Role> Connection<D, R> {
    /// Starts building this end: the same as `D::client(&pd)` or
    /// `D::server(&pd)`.
    pub fn builder(pd: &ProtectionDomain) -> ConnectionBuilder<D, R> {
        ConnectionBuilder::new(pd)
    }

    /// Sends a message of the type this end declares it sends, to the
    /// peer's next posted receive.
    pub fn send<M: Mode>(&self, message: Segment<R::Sends<D>, M>) -> Post<R::Sends<D>, M> {
        self.qp.send(message)
    }

    /// Sends a message with 32 bits of immediate data.
    pub fn send_with_imm<M: Mode>(
        &self,
        message: Segment<R::Sends<D>, M>,
        imm: u32,
    ) -> Post<R::Sends<D>, M> {
        self.qp.send_with_imm(message, imm)
    }

    /// Posts a receive for the peer's next message, of the type the peer
    /// sends.
    ///
    /// A send completes it with [`Opcode::Recv`](crate::Opcode::Recv) and
    /// `byte_len` the size of the message written into `into`. An RDMA
    /// WRITE with immediate data from the peer consumes a receive too: it
    /// completes with [`Opcode::RecvWithImm`](crate::Opcode::RecvWithImm)
    /// and the immediate data, and writes nothing into `into` (the data
    /// went to the target of the write). Its `byte_len` is then what the
    /// verbs define (`ibv_poll_cq(3)`): the number of bytes the incoming
    /// operation transferred, not counting the immediate data, so the
    /// length of the RDMA WRITE, not 0 and not the size of `into`; rdma_rxe
    /// (Soft-RoCE) reports the length written. Check the opcode before
    /// reading `into`.
    pub fn recv(&self, into: Segment<R::Receives<D>, Rw>) -> Post<R::Receives<D>, Rw> {
        self.qp.recv(into)
    }

    /// RDMA WRITE of `from` into `to`, a part of the region the peer
    /// exposes (of the same type), taken from [`peer`](Self::peer).
    pub fn write<B: RdmaPod, M: Mode>(
        &self,
        from: Segment<B, M>,
        to: Exposed<D, R::Peer, B>,
    ) -> Post<B, M> {
        match self.target(to) {
            Ok(to) => self.qp.write(from, to),
            Err(e) => Post::refused(e, from),
        }
    }

    /// RDMA WRITE with immediate data: also consumes one of the peer's
    /// receives, which completes with `imm`.
    pub fn write_with_imm<B: RdmaPod, M: Mode>(
        &self,
        from: Segment<B, M>,
        to: Exposed<D, R::Peer, B>,
        imm: u32,
    ) -> Post<B, M> {
        match self.target(to) {
            Ok(to) => self.qp.write_with_imm(from, to, imm),
            Err(e) => Post::refused(e, from),
        }
    }

    /// RDMA READ of `from`, a part of the region the peer exposes, into
    /// `into`. Only on RC, and the peer's region must allow remote reads
    /// (the default exposed region on RC does).
    pub fn read<B: RdmaPod, M: Writable>(
        &self,
        into: Segment<B, M>,
        from: Exposed<D, R::Peer, B>,
    ) -> Post<B, M>
    where
        D::Transport: Reliable,
    {
        match self.target(from) {
            Ok(from) => self.qp.read(into, from),
            Err(e) => Post::refused(e, into),
        }
    }

    /// The region the peer exposes to this end, as a whole: project it to
    /// its fields with `.fields()`, the targets of
    /// [`write`](Self::write) and [`read`](Self::read).
    pub fn peer(&self) -> Exposed<D, R::Peer, R::PeerExposes<D>> {
        Exposed::new(self.peer, self.id)
    }

    /// This connection's number: unique in the process, carried by every
    /// [`Exposed`] target it hands out.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peer's memory `to` names, if this connection handed it out.
    fn target<B>(&self, to: Exposed<D, R::Peer, B>) -> Result<RemoteSegment<B>> {
        if to.conn == self.id {
            Ok(to.remote)
        } else {
            Err(Error::WrongConnection {
                what: D::WHAT,
                target: to.conn,
                this: self.id,
            })
        }
    }

    /// The region this end exposes to its peer: what the peer wrote is read
    /// by copy from its segments (`exposed().fields().x.read_only()?.read()`).
    pub fn exposed(&self) -> &MemoryRegion<R::Exposes<D>> {
        &self.exposed
    }

    /// The queue pair number.
    pub fn qp_num(&self) -> u32 {
        self.qp.qp_num()
    }

    /// Requests posted on this end whose completion has not been reaped.
    pub fn in_flight(&self) -> u32 {
        self.qp.in_flight()
    }
}

/// Declares a connection type: its transport, the message each end sends
/// and the region each end exposes to its peer.
///
/// ```
/// use safeverbs::{connection, Declaration, Rc, RdmaPod};
///
/// #[derive(RdmaPod, Clone, Copy)]
/// #[repr(C)]
/// pub struct Request { pub seq: u64, pub key: [u8; 32] }
///
/// #[derive(RdmaPod, Clone, Copy)]
/// #[repr(C)]
/// pub struct Response { pub seq: u64, pub value: [u8; 64] }
///
/// #[derive(RdmaPod, Clone, Copy)]
/// #[repr(C)]
/// pub struct Mailbox { pub last_seen: u64 }
///
/// connection! {
///     /// Requests and responses over RC; the server exposes a mailbox that
///     /// the client writes into.
///     pub struct Kv: Rc {
///         client sends Request;
///         server sends Response, exposes Mailbox;
///     }
/// }
/// assert_eq!(Kv::WHAT, "connection `Kv`");
/// ```
///
/// `Rc` or `Uc` (any path to them) is the transport. `, exposes …` may be
/// left out for an end that exposes nothing ([`Nothing`](crate::Nothing)).
/// Every type named must be [`RdmaPod`](crate::RdmaPod).
///
/// # What it generates
///
/// - The declaration type `Kv`, with the given visibility and attributes. It
///   has no values: it is a type parameter. Its
///   [`Declaration`](crate::Declaration) implementation carries the types and
///   the fingerprint the two ends compare when they connect.
/// - `Kv::client(&pd)` and `Kv::server(&pd)`, which start building the two
///   ends, [`Connection<Kv, Client>`](crate::Connection) and
///   [`Connection<Kv, Server>`](crate::Connection).
///
/// The declaration is in the types of the ends:
///
/// - an end [`send`](crate::Connection::send)s only a `Segment` of what it
///   declares it sends, and [`recv`](crate::Connection::recv)s only into one
///   of what its peer sends: the client above cannot send a `Response`;
/// - RDMA WRITE and READ ([`write`](crate::Connection::write),
///   [`read`](crate::Connection::read)) take their target as an
///   [`Exposed`](crate::Exposed) part of the region the peer exposes, which
///   only the connection hands out ([`peer`](crate::Connection::peer)): the
///   client writes into `conn.peer().fields().last_seen` and nowhere else.
///
/// # Connecting
///
/// Both ends build their queue pair, register the region they expose (zeroed,
/// unless [`expose`](crate::ConnectionBuilder::expose) gives one) and may post
/// receives ([`Prepared::recv`](crate::Prepared::recv)) before
/// [`Prepared::connect`](crate::Prepared::connect) runs the handshake over any
/// byte stream ([`tcp_accept`](crate::tcp_accept) and
/// [`tcp_connect`](crate::tcp_connect) give one):
///
/// 1. The [`Endpoint`](crate::Endpoint)s are exchanged. Each carries the
///    declaration's fingerprint, and a peer whose fingerprint differs is
///    refused with [`Error::Fingerprint`](crate::Error::Fingerprint), which
///    names both values and the declaration: "peer layout fingerprint 0x…
///    differs from local 0x… for connection `Kv`".
/// 2. Each end sends its hello: magic, version and role. Two clients, or
///    two servers, are refused; so is a peer whose endpoint is of another
///    transport.
/// 3. Only then, each end sends the descriptor of the region it exposes
///    ([`RemoteRegion`](crate::RemoteRegion)): a peer refused above never
///    learns its address or rkey.
/// 4. The queue pair goes to RTS, and each end tells the other it is ready.
///    When `connect` returns, the peer's queue pair is connected too, and the
///    receives it posted before are in place.
///
/// The whole handshake has one deadline
/// ([`EXCHANGE_TIMEOUT`](crate::EXCHANGE_TIMEOUT), or the one given to
/// [`connect_within`](crate::Prepared::connect_within)), and each check is
/// made as soon as the bytes it needs arrive.
///
/// # Liveness
///
/// The connection keeps the TCP stream: when the peer's end of it closes
/// (the peer dropped its connection, or its process died), this end's queue
/// pair is shut down, and every request outstanding on it, receives
/// included, resolves with
/// [`Error::ShutDown`](crate::Error::ShutDown)`(`[`Shutdown::PeerClosed`](crate::Shutdown::PeerClosed)`)`:
/// "the peer closed the connection". Dropping a connection sends a goodbye
/// byte and closes the stream, so its peer learns the same; one that ends
/// without the goodbye (a killed process) is also logged as a warning.
///
/// # The fingerprint
///
/// [`Declaration::FINGERPRINT`](crate::Declaration::FINGERPRINT) is the FNV-1a
/// hash of [`fingerprint`](crate::fingerprint) over `"connection"`, the
/// declaration's name, the transport (`"RC"`, `"UC"`), then `"client"` and the
/// fingerprints of what the client sends and exposes, then `"server"` and the
/// same for the server. Two programs agree on it when they agree on the name,
/// the transport, the roles and the layout of all four types.
///
/// # Both ends
///
/// ```no_run
/// use std::net::TcpListener;
///
/// use safeverbs::{connection, tcp_accept, tcp_connect, Access, Device, Rc, RdmaPod};
/// # #[derive(RdmaPod, Clone, Copy)] #[repr(C)] pub struct Request { pub seq: u64, pub key: [u8; 32] }
/// # #[derive(RdmaPod, Clone, Copy)] #[repr(C)] pub struct Response { pub seq: u64, pub value: [u8; 64] }
/// # #[derive(RdmaPod, Clone, Copy)] #[repr(C)] pub struct Mailbox { pub last_seen: u64 }
/// # connection! { pub struct Kv: Rc { client sends Request; server sends Response, exposes Mailbox; } }
///
/// async fn server() -> Result<(), Box<dyn std::error::Error>> {
///     let dev = Device::open_default()?;
///     let (pd, cq) = (dev.alloc_pd()?, dev.create_cq(128)?);
///     let end = Kv::server(&pd).cq(&cq).prepare()?;
///     // Receives go before connecting, so the first request finds one.
///     let requests = pd.register(Request::zeroed(), Access::local())?;
///     let request = end.recv(requests.read_write()?);
///     let listener = TcpListener::bind("0.0.0.0:7472")?;
///     let conn = end.connect(tcp_accept(&listener)?)?;
///
///     let (done, request) = request.await;
///     done?;
///     let responses = pd.register(Response::zeroed(), Access::local())?;
///     let mut response = responses.read_write()?;
///     response.write(Response { seq: request.read().seq, value: [7; 64] });
///     let (done, _response) = conn.send(response).await; // a Request would not compile
///     done?;
///     // What the client wrote into the mailbox, read by copy.
///     let last_seen = conn.exposed().fields().last_seen.read_only()?.read();
///     println!("client has seen {last_seen}");
///     Ok(())
/// }
///
/// async fn client() -> Result<(), Box<dyn std::error::Error>> {
///     let dev = Device::open_default()?;
///     let (pd, cq) = (dev.alloc_pd()?, dev.create_cq(128)?);
///     let end = Kv::client(&pd).cq(&cq).prepare()?;
///     let responses = pd.register(Response::zeroed(), Access::local())?;
///     let response = end.recv(responses.read_write()?);
///     let conn = end.connect(tcp_connect("127.0.0.1:7472")?)?;
///
///     let request = pd.register(Request { seq: 1, key: [1; 32] }, Access::local())?;
///     let (done, _request) = conn.send(request.read_only()?).await;
///     done?;
///     let (done, response) = response.await;
///     done?;
///     // RDMA WRITE into the one field the server exposes for it.
///     let mut seq = pd.register(0u64, Access::local())?.read_write()?;
///     seq.write(response.read().seq);
///     let (done, _seq) = conn.write(seq, conn.peer().fields().last_seen).await;
///     done?;
///     Ok(())
/// }
/// ```
#[macro_export]
macro_rules! connection {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident : $transport:ty {
            client sends $client_sends:ty $(, exposes $client_exposes:ty)? ;
            server sends $server_sends:ty $(, exposes $server_exposes:ty)? $(;)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug)]
        $vis struct $name {
            _declaration: $crate::__private::core::convert::Infallible,
        }

        impl $crate::Declaration for $name {
            const NAME: &'static str = $crate::__private::core::stringify!($name);
            const WHAT: &'static str =
                $crate::__private::core::concat!("connection `", $crate::__private::core::stringify!($name), "`");
            type Transport = $transport;
            type ClientSends = $client_sends;
            type ClientExposes = $crate::__connection_exposes!($($client_exposes)?);
            type ServerSends = $server_sends;
            type ServerExposes = $crate::__connection_exposes!($($server_exposes)?);
        }

        impl $name {
            /// Starts building the client end of this connection.
            #[allow(dead_code)]
            $vis fn client(
                pd: &$crate::ProtectionDomain,
            ) -> $crate::ConnectionBuilder<$name, $crate::Client> {
                $crate::ConnectionBuilder::new(pd)
            }

            /// Starts building the server end of this connection.
            #[allow(dead_code)]
            $vis fn server(
                pd: &$crate::ProtectionDomain,
            ) -> $crate::ConnectionBuilder<$name, $crate::Server> {
                $crate::ConnectionBuilder::new(pd)
            }
        }
    };
    ($($tokens:tt)*) => {
        $crate::__private::core::compile_error!(
            "expected a connection declaration: `pub struct Name: Rc { client sends Request, \
             exposes ClientRegion; server sends Response, exposes ServerRegion; }` \
             (`, exposes …` is optional)"
        );
    };
}

/// The region type of an `exposes` clause, or [`Nothing`].
#[doc(hidden)]
#[macro_export]
macro_rules! __connection_exposes {
    () => {
        $crate::Nothing
    };
    ($exposes:ty) => {
        $exposes
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rc, Uc};

    #[derive(crate::RdmaPod, Clone, Copy)]
    #[rdma(crate = "crate")]
    #[repr(C)]
    struct Request {
        seq: u64,
    }

    #[derive(crate::RdmaPod, Clone, Copy)]
    #[rdma(crate = "crate")]
    #[repr(C)]
    struct Response {
        seq: u64,
    }

    #[derive(crate::RdmaPod, Clone, Copy)]
    #[rdma(crate = "crate")]
    #[repr(C)]
    struct Mailbox {
        last_seen: u64,
    }

    mod a {
        use super::*;
        crate::connection! {
            pub(super) struct Kv: Rc {
                client sends Request;
                server sends Response, exposes Mailbox;
            }
        }
    }

    mod b {
        use super::*;
        crate::connection! {
            /// The same, written again elsewhere.
            pub(super) struct Kv: crate::Rc {
                client sends Request, exposes Nothing;
                server sends Response, exposes Mailbox
            }
        }
    }

    crate::connection! {
        struct Swapped: Rc {
            client sends Response;
            server sends Request, exposes Mailbox;
        }
    }

    crate::connection! {
        struct OverUc: Uc {
            client sends Request;
            server sends Response, exposes Mailbox;
        }
    }

    crate::connection! {
        struct Renamed: Rc {
            client sends Request;
            server sends Response, exposes Mailbox;
        }
    }

    #[test]
    fn fingerprint_covers_name_transport_roles_and_types() {
        assert_eq!(a::Kv::FINGERPRINT, b::Kv::FINGERPRINT);
        assert_eq!(a::Kv::FINGERPRINT, declaration_fingerprint::<a::Kv>());
        for other in [
            Swapped::FINGERPRINT,
            OverUc::FINGERPRINT,
            Renamed::FINGERPRINT,
        ] {
            assert_ne!(a::Kv::FINGERPRINT, other);
        }
        // Pinned: the documented scheme, by hand.
        let h = fp::str(fp::str(fp::start("connection"), "Kv"), "RC");
        let h = fp::num(fp::str(h, "client"), Request::FINGERPRINT);
        let h = fp::num(h, Nothing::FINGERPRINT);
        let h = fp::num(fp::str(h, "server"), Response::FINGERPRINT);
        assert_eq!(a::Kv::FINGERPRINT, fp::num(h, Mailbox::FINGERPRINT));
        assert_eq!(a::Kv::WHAT, "connection `Kv`");
        assert_eq!(a::Kv::NAME, "Kv");
    }

    mod handshake {
        use super::super::*;
        use crate::setup::endpoint::ENCODED_LEN;
        use std::io::{Read, Write};
        use std::net::TcpListener;
        use std::thread;
        use std::time::Instant;

        use super::a::Kv;

        fn endpoint(fingerprint: u64, transport: TransportKind) -> Endpoint {
            Endpoint {
                transport,
                qpn: 0x1234,
                psn: 0x42,
                lid: 0,
                gid: [0xfe; 16],
                mtu: 1024,
                port: 1,
                fingerprint,
            }
        }

        fn hello(role: u8) -> [u8; HELLO_LEN] {
            let mut h = [0; HELLO_LEN];
            h[..4].copy_from_slice(&HELLO_MAGIC);
            h[4] = HELLO_VERSION;
            h[5] = role;
            h
        }

        const REGION: [u8; REMOTE_REGION_LEN] = [0x5a; REMOTE_REGION_LEN];

        /// This end (the server of `Kv`) runs the real handshake against a
        /// fake client, `peer`, over TCP on loopback. Returns this end's
        /// result, how long it took, and every byte the fake client
        /// received until this end closed the stream.
        fn against(
            timeout: Duration,
            peer: impl FnOnce(&TcpStream) + Send + 'static,
        ) -> (Result<((), Endpoint)>, Duration, Vec<u8>) {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let fake = thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                peer(&stream);
                let mut got = Vec::new();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let _ = (&stream).read_to_end(&mut got);
                got
            });
            let (stream, _) = listener.accept().unwrap();
            let start = Instant::now();
            let result = handshake(
                &stream,
                timeout,
                Terms::of::<Kv, Server>(),
                &endpoint(Kv::FINGERPRINT, TransportKind::Rc),
                REGION,
                |_, _| Ok(()),
            );
            let took = start.elapsed();
            drop(stream);
            (result, took, fake.join().unwrap())
        }

        /// What a fake client that checks out sends, up to `upto` bytes.
        fn good_client(upto: usize) -> Vec<u8> {
            let mut all = endpoint(Kv::FINGERPRINT, TransportKind::Rc)
                .encode()
                .to_vec();
            all.extend_from_slice(&hello(Client::WIRE));
            all.extend_from_slice(&[0; REMOTE_REGION_LEN]);
            all.push(READY);
            all.truncate(upto);
            all
        }

        #[test]
        fn a_good_peer_gets_the_region_and_connects() {
            let (result, _, got) = against(Duration::from_secs(20), |s| {
                let mut s = s;
                s.write_all(&good_client(usize::MAX)).unwrap();
            });
            let ((), peer) = result.unwrap();
            assert_eq!(peer.qpn, 0x1234);
            assert_eq!(got.len(), ENCODED_LEN + HELLO_LEN + REMOTE_REGION_LEN + 1);
            assert_eq!(got[ENCODED_LEN..][..HELLO_LEN], hello(Server::WIRE));
            assert_eq!(got[ENCODED_LEN + HELLO_LEN..][..REMOTE_REGION_LEN], REGION);
        }

        /// Rule: nothing about this end's region leaves before everything
        /// about the peer is checked.
        #[test]
        fn handshake_discloses_the_region_only_to_a_checked_peer() {
            let wrong_transport = endpoint(Kv::FINGERPRINT, TransportKind::Uc).encode();
            let wrong_fingerprint = endpoint(Kv::FINGERPRINT ^ 1, TransportKind::Rc).encode();
            let mut same_role = good_client(ENCODED_LEN);
            same_role.extend_from_slice(&hello(Server::WIRE));
            let cases: [(Vec<u8>, usize, &str); 3] = [
                (wrong_transport.to_vec(), ENCODED_LEN, "UC queue pair"),
                (wrong_fingerprint.to_vec(), ENCODED_LEN, "fingerprint"),
                (
                    same_role,
                    ENCODED_LEN + HELLO_LEN,
                    "server of connection `Kv` too",
                ),
            ];
            for (sent, disclosed, message) in cases {
                let (result, _, got) = against(Duration::from_secs(20), move |s| {
                    let mut s = s;
                    s.write_all(&sent).unwrap();
                });
                let err = result.unwrap_err();
                assert!(err.to_string().contains(message), "{err}");
                assert_eq!(got.len(), disclosed, "bytes sent to a refused peer ({err})");
                assert!(!got.windows(4).any(|w| w == [0x5a; 4]), "the region leaked");
            }
        }

        /// Rule: a peer that is not a SafeVerbs connection is named as
        /// such at the first byte that shows it, not after a timeout.
        #[test]
        fn a_foreign_hello_is_refused_at_its_first_wrong_byte() {
            for bad in [&b"X"[..], b"SVC!", b"SVCN\x09"] {
                let bad = bad.to_vec();
                let (result, took, _) = against(Duration::from_secs(20), move |s| {
                    let mut s = s;
                    let mut sent = good_client(ENCODED_LEN);
                    sent.extend_from_slice(&bad);
                    s.write_all(&sent).unwrap();
                    // Then silence, with the stream open.
                    thread::sleep(Duration::from_secs(3));
                });
                let err = result.unwrap_err();
                assert!(took < Duration::from_secs(2), "took {took:?}: {err}");
                assert!(err.to_string().contains("not version 1"), "{err}");
            }
        }

        /// Rule: one deadline bounds the whole handshake, however the peer
        /// spaces its bytes; its passing is `Error::Timeout`, naming the
        /// step.
        #[test]
        fn the_whole_handshake_has_one_deadline() {
            let (result, took, _) = against(Duration::from_millis(600), |s| {
                for b in good_client(usize::MAX) {
                    let mut s = s;
                    if s.write_all(&[b]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            });
            let err = result.unwrap_err();
            assert!(took < Duration::from_secs(3), "took {took:?}");
            assert!(
                matches!(err, Error::Timeout(d, _) if d == Duration::from_millis(600)),
                "{err}"
            );
            assert!(err
                .to_string()
                .starts_with("timed out after 600ms waiting for the peer's"));
        }

        #[test]
        fn a_silent_peer_is_a_timeout_not_eagain() {
            let (result, _, _) = against(Duration::from_millis(300), |_| {
                thread::sleep(Duration::from_secs(1));
            });
            let err = result.unwrap_err();
            assert_eq!(
                err.to_string(),
                "timed out after 300ms waiting for the peer's endpoint"
            );
        }

        #[test]
        fn a_peer_that_declares_nothing_is_named_as_such() {
            let (result, _, _) = against(Duration::from_secs(20), |s| {
                let mut s = s;
                s.write_all(&endpoint(0, TransportKind::Rc).encode())
                    .unwrap();
            });
            let err = result.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Undeclared { remote: 0, .. }), "{text}");
            assert!(text.contains("declares no layout"), "{text}");
            assert!(text.contains("connection `Kv`"), "{text}");
            assert!(!text.contains("nothing declared"), "{text}");
        }

        #[test]
        fn a_peer_that_leaves_midway_is_named() {
            let (result, _, _) = against(Duration::from_secs(20), |s| {
                let mut s = s;
                s.write_all(&good_client(ENCODED_LEN + 2)).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let text = result.unwrap_err().to_string();
            assert!(text.contains("the peer closed the connection"), "{text}");
        }
    }

    #[test]
    fn exposed_fields_stay_inside_the_peer_region() {
        let mut wire = [0u8; REMOTE_REGION_LEN];
        wire[..8].copy_from_slice(&0x4000u64.to_be_bytes());
        wire[8..16].copy_from_slice(&8u64.to_be_bytes());
        wire[16..].copy_from_slice(&7u32.to_be_bytes());
        let region = RemoteRegion::<Mailbox>::decode(&wire).expect("decode");
        let whole: Exposed<a::Kv, Server, Mailbox> = Exposed::new(region.whole(), 9);
        let last_seen: Exposed<a::Kv, Server, u64> = whole.fields().last_seen;
        assert_eq!((last_seen.addr(), last_seen.len_bytes()), (0x4000, 8));
        assert!(format!("{last_seen:?}").contains("Server"));
    }
}

// pass: the two ends of a declared connection, each sending its own message, receiving its peer's and writing (and on RC reading) only the fields its peer exposes.
use std::net::{TcpListener, TcpStream};

use safeverbs::{
    connection, tcp_accept, Access, Client, Connection, Declaration, ProtectionDomain, Rc, RdmaPod,
    Server,
};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
pub struct Request {
    pub seq: u64,
    pub key: [u8; 32],
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
pub struct Response {
    pub seq: u64,
    pub value: [u8; 64],
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
pub struct Mailbox {
    pub last_seen: u64,
    pub flags: u32,
    pub len: u32,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
pub struct ClientArea {
    pub value: [u8; 64],
}

connection! {
    /// Requests and responses; the client exposes where the server may put a value.
    pub struct Kv: Rc {
        client sends Request, exposes ClientArea;
        server sends Response, exposes Mailbox;
    }
}

connection! {
    /// One-way samples over UC; nothing exposed by the client.
    pub struct Samples: safeverbs::Uc {
        client sends Request;
        server sends Response, exposes Mailbox
    }
}

async fn client(pd: &ProtectionDomain, stream: TcpStream) -> safeverbs::Result<()> {
    let cq = pd.device().create_cq(16)?;
    let end = Kv::client(pd)
        .cq(&cq)
        .queue_pair(|qp| qp.max_send_wr(4).max_recv_wr(4).retry_count(3))
        .prepare()?;
    let responses = pd.register_zeroed::<Response>(2, Access::local())?;
    let first = end.recv(responses.elem_rw(0)?);
    let conn: Connection<Kv, Client> = end.connect(stream)?;

    let request = pd.register(
        Request {
            seq: 1,
            key: [1; 32],
        },
        Access::local(),
    )?;
    let (done, _request) = conn.send(request.read_only()?).await;
    done?;
    let (done, response) = first.await;
    done?;
    let mut seq = pd.register(0u64, Access::local())?.read_write()?;
    seq.write(response.read().seq);
    let (done, seq) = conn.write(seq, conn.peer().fields().last_seen).await;
    done?;
    let (done, _seq) = conn.read(seq, conn.peer().fields().last_seen).await;
    done?;
    let _value = conn.exposed().fields().value.read_only()?.read();
    Ok(())
}

async fn server(pd: &ProtectionDomain, listener: &TcpListener) -> safeverbs::Result<()> {
    let cq = pd.device().create_cq(16)?;
    let mailbox = pd.register(Mailbox::zeroed(), Access::remote_write())?;
    let end = Kv::server(pd).cq(&cq).expose(mailbox).prepare()?;
    let requests = pd.register(Request::zeroed(), Access::local())?;
    let request = end.recv(requests.read_write()?);
    let conn: Connection<Kv, Server> = end.connect(tcp_accept(listener)?)?;
    let (done, request) = request.await;
    done?;
    let response = pd.register(
        Response {
            seq: request.read().seq,
            value: [2; 64],
        },
        Access::local(),
    )?;
    let value = pd.register([3u8; 64], Access::local())?;
    let (done, _value) = conn
        .write(value.read_only()?, conn.peer().fields().value)
        .await;
    done?;
    let (done, _response) = conn.send(response.read_only()?).await;
    done?;
    Ok(())
}

async fn samples(pd: &ProtectionDomain, stream: TcpStream) -> safeverbs::Result<()> {
    let cq = pd.device().create_cq(16)?;
    let conn = Samples::client(pd).cq(&cq).connect(stream)?;
    let sample = pd.register(Request::zeroed(), Access::local())?;
    let (done, _sample) = conn.send_with_imm(sample.read_only()?, 7).await;
    done?;
    let flags = pd.register(1u32, Access::local())?;
    let (done, _flags) = conn
        .write_with_imm(flags.read_only()?, conn.peer().fields().flags, 9)
        .await;
    done?;
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = (client, server, samples);
    assert_ne!(Kv::FINGERPRINT, Samples::FINGERPRINT);
    assert_eq!(Kv::NAME, "Kv");
}

// typed connection: an end receives what its peer sends; C posts a 40-byte receive for a 72-byte response and the send fails at the far end, or receives it as the wrong struct.
use safeverbs::{Access, Client, Connection, ProtectionDomain, Rc, RdmaPod};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Request {
    seq: u64,
    key: [u8; 32],
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Response {
    seq: u64,
    value: [u8; 64],
}

safeverbs::connection! {
    struct Kv: Rc {
        client sends Request;
        server sends Response;
    }
}

fn misuse(pd: &ProtectionDomain, conn: &Connection<Kv, Client>) -> safeverbs::Result<()> {
    let inbox = pd.register(Request::zeroed(), Access::local())?;
    let inbox = inbox.read_write()?;
    let _recv = conn.recv(inbox);
    Ok(())
}

fn main() {}

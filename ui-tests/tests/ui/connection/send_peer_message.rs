// typed connection: an end sends only what its declaration says it sends; C posts any buffer, and the server reads a response as if it were a request.
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
    let response = pd.register(Response::zeroed(), Access::local())?;
    let response = response.read_only()?;
    let _send = conn.send(response);
    Ok(())
}

fn main() {}

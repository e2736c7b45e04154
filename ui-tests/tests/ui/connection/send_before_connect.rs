// typed connection: a prepared end only posts receives until the handshake has run; C posts a send on a queue pair still in INIT and gets EINVAL, or worse, a send to nobody.
use safeverbs::{Access, Client, Prepared, ProtectionDomain, Rc, RdmaPod};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Request {
    seq: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Response {
    seq: u64,
}

safeverbs::connection! {
    struct Kv: Rc {
        client sends Request;
        server sends Response;
    }
}

fn misuse(pd: &ProtectionDomain, end: &Prepared<Kv, Client>) -> safeverbs::Result<()> {
    let request = pd.register(Request::zeroed(), Access::local())?;
    let _send = end.send(request.read_only()?);
    Ok(())
}

fn main() {}

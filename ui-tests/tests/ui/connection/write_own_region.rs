// typed connection: an end writes into its peer's exposed region, not into what it exposes itself; C takes any rkey, including the one it sent the peer.
use safeverbs::{Access, Client, Connection, ProtectionDomain, Rc, RdmaPod};

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

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Area {
    ack: u64,
}

safeverbs::connection! {
    struct Kv: Rc {
        client sends Request, exposes Area;
        server sends Response, exposes Area;
    }
}

fn misuse(pd: &ProtectionDomain, conn: &Connection<Kv, Client>) -> safeverbs::Result<()> {
    let ack = pd.register(1u64, Access::local())?;
    let own = conn.exposed().remote();
    let _write = conn.write(ack.read_only()?, own.fields().ack);
    Ok(())
}

fn main() {}

// typed connection: RDMA WRITE lands only in the region the peer exposes; C writes to any address and rkey it was given, here the server's private statistics.
use safeverbs::{Access, Client, Connection, ProtectionDomain, Rc, RdmaPod, RemoteRegion};

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
struct Mailbox {
    last_seen: u64,
}

/// The server keeps this for itself; it is not in the declaration.
#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Stats {
    requests: u64,
}

safeverbs::connection! {
    struct Kv: Rc {
        client sends Request;
        server sends Response, exposes Mailbox;
    }
}

fn misuse(
    pd: &ProtectionDomain,
    conn: &Connection<Kv, Client>,
    stats: RemoteRegion<Stats>,
) -> safeverbs::Result<()> {
    let seq = pd.register(7u64, Access::local())?;
    let _write = conn.write(seq.read_only()?, stats.fields().requests);
    Ok(())
}

fn main() {}

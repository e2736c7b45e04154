// typed connection: RDMA READ of the peer's exposed region needs RC; C posts the READ on a UC queue pair and gets an error completion at run time.
use safeverbs::{Access, Client, Connection, ProtectionDomain, RdmaPod, Uc};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Sample {
    seq: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Counters {
    frames: u64,
}

safeverbs::connection! {
    struct Stream: Uc {
        client sends Sample;
        server sends Sample, exposes Counters;
    }
}

fn misuse(pd: &ProtectionDomain, conn: &Connection<Stream, Client>) -> safeverbs::Result<()> {
    let frames = pd.register(0u64, Access::local())?;
    let _read = conn.read(frames.read_write()?, conn.peer().fields().frames);
    Ok(())
}

fn main() {}

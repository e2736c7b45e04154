// typed remote memory: an RDMA READ needs the same type on both sides; C reads the peer's 8-byte counter into a 4-byte local.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RemoteSegment, Rts};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u32, Access::local())?;
    let _read = qp.read(region.read_write()?, remote);
    Ok(())
}

fn main() {}

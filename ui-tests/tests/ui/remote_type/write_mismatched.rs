// typed remote memory: an RDMA WRITE needs the same type on both sides; C writes 8 bytes of a `uint64_t` over the peer's 4-byte field.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RemoteSegment, Rts};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    remote: RemoteSegment<u32>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _write = qp.write(region.read_only()?, remote);
    Ok(())
}

fn main() {}

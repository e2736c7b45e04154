// read-only segment: an RDMA READ target needs `Segment<_, Rw>`; C lets the NIC overwrite a buffer other views share.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RemoteSegment, Rts};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _read = qp.read(region.read_only()?, remote);
    Ok(())
}

fn main() {}

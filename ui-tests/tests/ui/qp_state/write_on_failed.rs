// queue-pair state: RDMA WRITE exists only on `Rts`; C posts it on a QP in ERR.
use safeverbs::{Access, Failed, ProtectionDomain, QueuePair, Rc, RemoteSegment};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Failed>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _post = qp.write(region.read_only()?, remote);
    Ok(())
}

fn main() {}

// queue-pair state: RDMA WRITE exists only on `Rts`; C posts it on a QP in INIT.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc, RemoteSegment};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Init>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _post = qp.write(region.read_only()?, remote);
    Ok(())
}

fn main() {}

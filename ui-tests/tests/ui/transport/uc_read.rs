// RC-only operation: RDMA READ needs a reliable transport; C posts IBV_WR_RDMA_READ on a UC QP and gets EINVAL (or a failed completion).
use safeverbs::{Access, ProtectionDomain, QueuePair, RemoteSegment, Rts, Uc};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Uc, Rts>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _read = qp.read(region.read_write()?, remote);
    Ok(())
}

fn main() {}

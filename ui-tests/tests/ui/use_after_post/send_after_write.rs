// use after post: an RDMA WRITE source is moved in too; C lets you send from it while the write is in flight.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RemoteSegment, Rts};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let seg = region.read_only()?;
    let _write = qp.write(seg, remote);
    let _send = qp.send(seg);
    Ok(())
}

fn main() {}

// pass: RDMA READ on an RC queue pair in RTS, into a read-write segment of the same type as the peer's memory.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RemoteRegion, Rts};

async fn read_counters(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    peer: RemoteRegion<[u64]>,
) -> safeverbs::Result<Vec<u64>> {
    let local = pd.register_zeroed::<u64>(16, Access::local())?;
    // The whole value...
    let (done, first) = qp.read(local.elem_rw(0)?, peer.elem(0)?).await;
    done?;
    // ...or a run of elements.
    let (done, rest) = qp.read(local.slice_rw(1..16)?, peer.slice(1..16)?).await;
    done?;
    let mut out = vec![first.read()];
    out.extend(rest.to_vec());
    Ok(out)
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = read_counters;
}

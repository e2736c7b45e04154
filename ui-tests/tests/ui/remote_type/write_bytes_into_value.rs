// typed remote memory: raw bytes go to the peer's bytes (`RemoteRegion::bytes`), not into a typed field; C writes any length at any address.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RemoteSegment, Rts};

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    remote: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 8], Access::local())?;
    let _write = qp.write(region.bytes_ro(0..8)?, remote);
    Ok(())
}

fn main() {}

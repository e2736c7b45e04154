// pass: read-only segments may overlap each other, so the same bytes can be in several sends at once.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

async fn broadcast(
    pd: &ProtectionDomain,
    to_a: &QueuePair<Rc, Rts>,
    to_b: &QueuePair<Rc, Rts>,
) -> safeverbs::Result<()> {
    let region = pd.register([7u8; 256], Access::local())?;
    let whole = region.read_only()?;
    let same_again = region.read_only()?;
    let header = region.bytes_ro(0..16)?; // overlaps both
    let first = to_a.send(whole);
    let second = to_b.send(same_again);
    let third = to_b.send(header);
    // All three are posted before any is awaited.
    first.await.0?;
    second.await.0?;
    third.await.0?;
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = broadcast;
}

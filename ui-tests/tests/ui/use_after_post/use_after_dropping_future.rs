// use after post: dropping the future does not give the segment back (the NIC may still write it); C reuses the buffer of a request it gave up on.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let mut seg = region.read_write()?;
    drop(qp.recv(seg));
    seg.write(1);
    Ok(())
}

fn main() {}

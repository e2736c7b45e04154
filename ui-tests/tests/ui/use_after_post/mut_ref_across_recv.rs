// posted read-write segment: a `&mut` taken before posting cannot outlive the post; C keeps the pointer and writes through it.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let mut seg = region.read_write()?;
    let bytes = seg.get_mut()?;
    let _inbox = qp.recv(seg);
    bytes[0] = 1;
    Ok(())
}

fn main() {}

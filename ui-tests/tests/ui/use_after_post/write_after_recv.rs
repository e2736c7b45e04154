// use after post: `qp.recv` moves the segment in; C lets you write a buffer the NIC is about to receive into.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let mut seg = region.read_write()?;
    let _post = qp.recv(seg);
    seg.write(7);
    Ok(())
}

fn main() {}

// use after post: a segment is in at most one work request; C lets you post the same buffer twice at once.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Rts>) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let seg = region.read_only()?;
    let _first = qp.send(seg);
    let _second = qp.send(seg);
    Ok(())
}

fn main() {}

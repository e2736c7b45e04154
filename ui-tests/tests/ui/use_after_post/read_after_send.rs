// use after post: `qp.send` moves the segment in; C lets you read the buffer while the NIC still sends from it.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Rts>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let seg = region.read_only()?;
    let _post = qp.send(seg);
    let _ = seg.read();
    Ok(())
}

fn main() {}

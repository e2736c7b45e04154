// use after post: a `&` taken before sending cannot outlive the post; C keeps reading a buffer the NIC owns.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Rts>) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let seg = region.read_only()?;
    let bytes = seg.get()?;
    let _post = qp.send(seg);
    println!("{}", bytes[0]);
    Ok(())
}

fn main() {}

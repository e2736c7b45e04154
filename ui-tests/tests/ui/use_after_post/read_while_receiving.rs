// posted read-write segment: it lives in the future until completion; C lets you read bytes the NIC is writing.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let seg = region.read_write()?;
    let inbox = qp.recv(seg);
    let early = seg.read();
    drop((inbox, early));
    Ok(())
}

fn main() {}

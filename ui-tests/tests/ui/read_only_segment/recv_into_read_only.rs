// read-only segment: receives need `Segment<_, Rw>`; C lets the NIC write into a buffer other views share.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let _inbox = qp.recv(region.read_only()?);
    Ok(())
}

fn main() {}

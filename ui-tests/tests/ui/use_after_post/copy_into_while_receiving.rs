// posted read-write segment: no writes until the completion hands it back; C lets you memcpy into a posted receive buffer.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    let mut seg = region.slice_rw(0..64)?;
    let _inbox = qp.recv(seg);
    seg.copy_from(&[1; 64])?;
    Ok(())
}

fn main() {}

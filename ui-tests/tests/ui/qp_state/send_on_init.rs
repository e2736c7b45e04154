// queue-pair state: `send` exists only on `Rts`; C posts a send on a QP still in INIT and gets EINVAL (or a silent drop) at run time.
use safeverbs::{Access, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _post = qp.send(region.read_only()?);
    Ok(())
}

fn main() {}

// queue-pair state: `send` exists only on `Rts`; C posts a send on a QP in RTR, which can only receive.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rtr};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Rtr>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _post = qp.send(region.read_only()?);
    Ok(())
}

fn main() {}

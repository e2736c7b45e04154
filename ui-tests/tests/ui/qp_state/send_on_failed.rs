// queue-pair state: `send` exists only on `Rts`; C keeps posting on a QP in ERR, and every request is flushed.
use safeverbs::{Access, Failed, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Failed>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _post = qp.send(region.read_only()?);
    Ok(())
}

fn main() {}

// queue-pair transitions: `into_error` consumes the `Rts` value, so nothing is posted on a QP in ERR; C keeps posting and gets flushes.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

fn misuse(pd: &ProtectionDomain, qp: QueuePair<Rc, Rts>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _failed = qp.into_error()?;
    let _post = qp.send(region.read_only()?);
    Ok(())
}

fn main() {}

// queue-pair transitions: `to_rtr` consumes the `Init` value; C keeps using its stale idea of the QP's state.
use safeverbs::{Access, Endpoint, Init, ProtectionDomain, QueuePair, Rc};

fn misuse(
    pd: &ProtectionDomain,
    qp: QueuePair<Rc, Init>,
    peer: &Endpoint,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _rtr = qp.to_rtr(peer)?;
    let _inbox = qp.recv(region.read_write()?);
    Ok(())
}

fn main() {}

// queue-pair transitions: states only move forward, `to_rtr` does not exist on `Rts`; C moves an RTS QP back to RTR and gets EINVAL.
use safeverbs::{Endpoint, QueuePair, Rc, Rts};

fn misuse(qp: QueuePair<Rc, Rts>, peer: &Endpoint) -> safeverbs::Result<()> {
    let _qp = qp.to_rtr(peer)?;
    Ok(())
}

fn main() {}

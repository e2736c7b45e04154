// queue-pair transitions: `connect` is INIT -> RTR -> RTS and exists only on `Init`; C repeats the RTR modify on a QP already in RTR.
use safeverbs::{Endpoint, QueuePair, Rc, Rtr};

fn misuse(qp: QueuePair<Rc, Rtr>, peer: &Endpoint) -> safeverbs::Result<()> {
    let _qp = qp.connect(peer)?;
    Ok(())
}

fn main() {}

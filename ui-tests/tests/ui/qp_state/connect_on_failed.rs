// queue-pair transitions: a QP in ERR cannot be connected again; C modifies an ERR QP to RTR and gets EINVAL (it needs RESET first).
use safeverbs::{Endpoint, Failed, QueuePair, Rc};

fn misuse(qp: QueuePair<Rc, Failed>, peer: &Endpoint) -> safeverbs::Result<()> {
    let _qp = qp.connect(peer)?;
    Ok(())
}

fn main() {}

// queue-pair transitions: INIT -> RTS skips RTR, so `to_rts` does not exist on `Init`; C calls ibv_modify_qp(RTS) on INIT and gets EINVAL at run time.
use safeverbs::{Init, QueuePair, Rc};

fn misuse(qp: QueuePair<Rc, Init>) -> safeverbs::Result<()> {
    let _qp = qp.to_rts()?;
    Ok(())
}

fn main() {}

// RC-only builder option: `.timeout` (ACK timeout) exists only on `QpBuilder<Rc>`; in C, ibv_modify_qp ignores (or rejects) IBV_QP_TIMEOUT on a UC QP.
use safeverbs::{CompletionQueue, ProtectionDomain, Uc};

fn misuse(pd: &ProtectionDomain, cq: &CompletionQueue) -> safeverbs::Result<()> {
    let _qp = pd
        .queue_pair::<Uc>()
        .send_cq(cq)
        .recv_cq(cq)
        .timeout(3)
        .build()?;
    Ok(())
}

fn main() {}

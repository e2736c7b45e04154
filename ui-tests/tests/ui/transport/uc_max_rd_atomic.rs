// RC-only builder option: `.max_rd_atomic` (RDMA READ/atomic depth) exists only on `QpBuilder<Rc>`; C sets max_rd_atomic on a UC QP, which has no READ or atomics.
use safeverbs::{CompletionQueue, ProtectionDomain, Uc};

fn misuse(pd: &ProtectionDomain, cq: &CompletionQueue) -> safeverbs::Result<()> {
    let _qp = pd
        .queue_pair::<Uc>()
        .send_cq(cq)
        .recv_cq(cq)
        .max_rd_atomic(3)
        .build()?;
    Ok(())
}

fn main() {}

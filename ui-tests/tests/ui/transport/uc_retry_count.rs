// RC-only builder option: `.retry_count` (transport retry count) exists only on `QpBuilder<Rc>`; C sets retry_cnt on a UC QP, which never retries.
use safeverbs::{CompletionQueue, ProtectionDomain, Uc};

fn misuse(pd: &ProtectionDomain, cq: &CompletionQueue) -> safeverbs::Result<()> {
    let _qp = pd
        .queue_pair::<Uc>()
        .send_cq(cq)
        .recv_cq(cq)
        .retry_count(3)
        .build()?;
    Ok(())
}

fn main() {}

// RC-only builder option: `.rnr_retry` (receiver-not-ready retry count) exists only on `QpBuilder<Rc>`; C sets rnr_retry on a UC QP, which never retries.
use safeverbs::{CompletionQueue, ProtectionDomain, Uc};

fn misuse(pd: &ProtectionDomain, cq: &CompletionQueue) -> safeverbs::Result<()> {
    let _qp = pd
        .queue_pair::<Uc>()
        .send_cq(cq)
        .recv_cq(cq)
        .rnr_retry(3)
        .build()?;
    Ok(())
}

fn main() {}

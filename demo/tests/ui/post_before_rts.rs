// queue-pair state (catalogue: ui-tests/tests/ui/qp_state/send_on_init.rs): C posts its first message while the QP is in INIT, gets EINVAL, and rxe sends it anyway after RTS (demo/c/post_before_rts.c).
use safeverbs::{Access, CompletionQueue, Endpoint, ProtectionDomain, Rc};

fn first_message(
    pd: &ProtectionDomain,
    cq: &CompletionQueue,
    peer: &Endpoint,
) -> safeverbs::Result<()> {
    let qp = pd.queue_pair::<Rc>().send_cq(cq).recv_cq(cq).build()?; // INIT
    let buf = pd.register(*b"EARLY: posted while the QP was in INIT..", Access::local())?;
    let early = qp.send(buf.read_only()?); // not connected yet
    let qp = qp.connect(peer)?; // INIT -> RTR -> RTS
    drop((early, qp));
    Ok(())
}

fn main() {}

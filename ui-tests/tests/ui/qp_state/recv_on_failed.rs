// queue-pair state: receives from `Init` on; there is no RESET state type (a built QP is already in INIT), so the state that refuses them is `Failed`; C posts receives on a QP in ERR (or RESET).
use safeverbs::{Access, Failed, ProtectionDomain, QueuePair, Rc};

fn misuse(pd: &ProtectionDomain, qp: &QueuePair<Rc, Failed>) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _post = qp.recv(region.read_write()?);
    Ok(())
}

fn main() {}

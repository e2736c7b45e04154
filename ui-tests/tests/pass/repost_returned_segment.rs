// pass: the completion hands the segment back, and it is posted again: a receive loop with one buffer and no copies.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

async fn serve(pd: &ProtectionDomain, qp: &QueuePair<Rc, Rts>) -> safeverbs::Result<u64> {
    let region = pd.register([0u8; 1024], Access::local())?;
    let mut buf = region.read_write()?;
    let mut total = 0u64;
    loop {
        let (done, back) = qp.recv(buf).await;
        let len = done?.byte_len;
        if len == 0 {
            return Ok(total);
        }
        total += u64::from(len);
        // Echo it, then receive into the same buffer again.
        let (done, back) = qp.send(back).await;
        done?;
        buf = back;
    }
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = serve;
}

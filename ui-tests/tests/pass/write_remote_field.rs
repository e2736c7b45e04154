// pass: RDMA WRITE of one local field into the same field of the peer's mailbox, typed on both sides.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RdmaPod, RemoteRegion, Rts};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    len: u32,
    flags: u32,
    data: [u8; 4096],
}

async fn publish(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    peer: RemoteRegion<Mailbox>,
    payload: &[u8; 4096],
) -> safeverbs::Result<()> {
    let outbox = pd.register(Mailbox::zeroed(), Access::local())?;
    let mut data = outbox.fields().data.read_write()?;
    data.write(*payload);
    let mut seq = outbox.fields().seq.read_write()?;
    seq.write(1);
    // The data first, then the sequence number the peer polls (RC writes arrive in order).
    let (done, _data) = qp.write(data, peer.fields().data).await;
    done?;
    let (done, _seq) = qp.write(seq, peer.fields().seq).await;
    done?;
    // Or with immediate data, which also completes one of the peer's receives.
    let len = outbox.fields().len.read_only()?;
    let (done, _len) = qp.write_with_imm(len, peer.fields().len, 42).await;
    done?;
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = publish;
}

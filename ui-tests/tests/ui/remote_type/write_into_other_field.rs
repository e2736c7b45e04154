// typed remote memory: writing our `seq` (u64) into the peer's `len` (u32) does not type-check; C writes 8 bytes at the 4-byte field and clobbers `flags`.
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, RdmaPod, RemoteRegion, Rts};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    len: u32,
    flags: u32,
}

fn misuse(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    peer: RemoteRegion<Mailbox>,
) -> safeverbs::Result<()> {
    let outbox = pd.register(Mailbox::zeroed(), Access::local())?;
    let _write = qp.write(outbox.fields().seq.read_only()?, peer.fields().len);
    Ok(())
}

fn main() {}

// use after post (catalogue: ui-tests/tests/ui/use_after_post/read_after_send.rs): `qp.send` moves the segment in; C prepares the next message in the buffer of a send still in flight (demo/c/send_overwrite.c).
use safeverbs::{Access, ProtectionDomain, QueuePair, Rc, Rts};

fn send_two(pd: &ProtectionDomain, qp: &QueuePair<Rc, Rts>) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(4 << 20, Access::local())?;
    let mut msg = region.bytes_rw(0..4 << 20)?;
    msg.fill(1); // message n
    let sending = qp.send(msg);
    msg.fill(2); // message n+1, in the same buffer
    drop(sending);
    Ok(())
}

fn main() {}

// named field segments: only fields the type has; C adds a wrong offset to the buffer pointer.
use safeverbs::{Access, ProtectionDomain, RdmaPod};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    len: u32,
    flags: u32,
}

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(Mailbox::zeroed(), Access::local())?;
    let _nope = region.fields().nope.read_only()?;
    Ok(())
}

fn main() {}

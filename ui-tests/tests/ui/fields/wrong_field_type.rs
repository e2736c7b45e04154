// named field segments: a field's segment has the field's type; C computes `buf + offsetof(...)` and casts it to whatever it likes.
use safeverbs::{Access, ProtectionDomain, RdmaPod, Ro, Segment};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    len: u32,
    flags: u32,
}

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(Mailbox::zeroed(), Access::local())?;
    let _seq: Segment<u32, Ro> = region.fields().seq.read_only()?;
    Ok(())
}

fn main() {}

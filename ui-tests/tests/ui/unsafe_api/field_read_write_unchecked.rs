// unchecked API: `LocalField::read_write_unchecked` skips the overlap check, so it is `unsafe`; C receives into a field another request is sending.
use safeverbs::{Access, ProtectionDomain, RdmaPod};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    data: [u8; 56],
}

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(Mailbox::zeroed(), Access::local())?;
    let _data = region.fields().data.read_write_unchecked();
    Ok(())
}

fn main() {}

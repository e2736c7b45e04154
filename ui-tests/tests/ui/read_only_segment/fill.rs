// read-only segment: no `fill`; C memsets a buffer that another request is sending from.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    let mut seg = region.bytes_ro(0..64)?;
    seg.fill(0);
    Ok(())
}

fn main() {}

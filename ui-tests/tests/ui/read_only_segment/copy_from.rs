// read-only segment: no `copy_from`; C memcpys into a buffer that another request is sending from.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    let mut seg = region.slice_ro(0..64)?;
    seg.copy_from(&[1; 64])?;
    Ok(())
}

fn main() {}

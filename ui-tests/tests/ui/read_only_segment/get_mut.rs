// read-only segment: no `&mut` into memory other read-only segments (and the NIC) may read; C writes through any pointer.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let mut seg = region.read_only()?;
    seg.get_mut()?[0] = 1;
    Ok(())
}

fn main() {}

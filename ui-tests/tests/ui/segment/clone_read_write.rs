// segment: not `Clone`, so a read-write view stays the only one; C copies the pointer and posts both copies.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register([0u8; 64], Access::local())?;
    let seg = region.read_write()?;
    let _twin = seg.clone();
    Ok(())
}

fn main() {}

// registered memory: a region is not a slice, bytes are reached only through segments; C indexes the registered buffer directly.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    let _first = region[0];
    Ok(())
}

fn main() {}

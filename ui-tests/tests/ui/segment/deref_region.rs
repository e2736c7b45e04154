// registered memory: a region does not deref to its value, so no `&T` outlives a post; C dereferences the buffer pointer anytime.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _value: &u64 = &*region;
    Ok(())
}

fn main() {}

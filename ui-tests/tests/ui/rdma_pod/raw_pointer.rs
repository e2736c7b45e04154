// RdmaPod: no raw pointers; C sends a struct with a pointer, meaningless (or dangerous) in the peer's address space.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register(core::ptr::null::<u8>(), Access::local())?;
    Ok(())
}

fn main() {}

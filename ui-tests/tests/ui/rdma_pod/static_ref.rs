// RdmaPod: no references, even `&'static`; C registers a struct holding a pointer and the peer overwrites it.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register(&0u8, Access::local())?;
    Ok(())
}

fn main() {}

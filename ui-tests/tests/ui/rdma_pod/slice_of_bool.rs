// RdmaPod: slices follow the element rule, `[bool]` is refused too; C lets a peer write any byte into a `bool` array.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register_slice(&[true, false], Access::remote_write())?;
    Ok(())
}

fn main() {}

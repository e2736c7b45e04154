// RdmaPod: `Option<u32>` has a tag with invalid values; C lets a peer write a tag that is neither None nor Some.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register(Some(5u32), Access::remote_write())?;
    Ok(())
}

fn main() {}

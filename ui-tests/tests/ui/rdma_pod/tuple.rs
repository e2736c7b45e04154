// RdmaPod: a tuple has an unspecified layout and padding; C sends a padded struct and leaks whatever the padding bytes held.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register((1u8, 2u32), Access::local())?;
    Ok(())
}

fn main() {}

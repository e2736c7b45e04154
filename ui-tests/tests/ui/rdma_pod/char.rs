// RdmaPod: `char` has invalid bit patterns (surrogates, > 0x10FFFF); C lets a peer write any 32 bits into it.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register('x', Access::remote_write())?;
    Ok(())
}

fn main() {}

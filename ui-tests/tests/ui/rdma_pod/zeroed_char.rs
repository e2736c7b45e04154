// RdmaPod: `register_zeroed` is checked too: `char` has invalid bit patterns; C lets a peer write any 32 bits into it.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register_zeroed::<char>(16, Access::remote_write())?;
    Ok(())
}

fn main() {}

// RdmaPod: only types valid for every bit pattern go into registered memory; in C a peer writes 2 into a `bool`.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register(true, Access::remote_write())?;
    Ok(())
}

fn main() {}

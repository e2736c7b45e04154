// read-only segment: no `write`, the bytes may be in a send right now through an overlapping segment; C writes anyway.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let mut seg = region.read_only()?;
    seg.write(1);
    Ok(())
}

fn main() {}

// read-only segment: the mode is in the type, an annotation cannot upgrade it; C has only `void *`.
use safeverbs::{Access, ProtectionDomain, Rw, Segment};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _seg: Segment<u64, Rw> = region.read_only()?;
    Ok(())
}

fn main() {}

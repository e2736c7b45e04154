// unchecked API: `slice_rw_unchecked` skips the overlap check, so it is `unsafe`; C posts two receives over the same bytes.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    let _seg = region.slice_rw_unchecked(0..32)?;
    Ok(())
}

fn main() {}

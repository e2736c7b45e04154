// unchecked API: `read_write_unchecked` skips the overlap check, so it is `unsafe`; C hands out overlapping receive buffers without a word.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _seg = region.read_write_unchecked();
    Ok(())
}

fn main() {}

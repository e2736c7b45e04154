// segment: no `Index`/`Deref`, access goes through `read`/`write`/`get_mut` whose borrows end before a post; C indexes a posted buffer.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    let mut seg = region.slice_rw(0..64)?;
    seg[0] = 1;
    Ok(())
}

fn main() {}

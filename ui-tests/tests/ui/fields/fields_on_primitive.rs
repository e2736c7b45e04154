// named field segments: only derived structs have fields; C's `offsetof` on a scalar is whatever the macro expands to.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let _fields = region.fields();
    Ok(())
}

fn main() {}

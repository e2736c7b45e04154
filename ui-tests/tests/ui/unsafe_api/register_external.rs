// unchecked API: registering memory the library did not allocate is `unsafe` (its validity is the caller's promise); C registers a dangling pointer.
use std::ptr::NonNull;

use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain, ptr: NonNull<u8>) -> safeverbs::Result<()> {
    let _region = pd.register_external::<u8>(ptr, 4096, Access::local(), || ())?;
    Ok(())
}

fn main() {}

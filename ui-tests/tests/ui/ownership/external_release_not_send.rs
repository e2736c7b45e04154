// Send resources: `register_external`'s release hook runs on whichever thread drops the last segment, so it must be `Send + Sync`; C calls a thread-bound callback from another thread.
use std::ptr::NonNull;
use std::rc::Rc;

use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain, ptr: NonNull<u8>) -> safeverbs::Result<()> {
    let owner = Rc::new(());
    // SAFETY: (for the sake of the test) `ptr` is 4096 writable bytes owned by the caller.
    let _region =
        unsafe { pd.register_external::<u8>(ptr, 4096, Access::local(), move || drop(owner))? };
    Ok(())
}

fn main() {}

// 'static resources: `register_external`'s release hook may run on any thread after this function returns, so it cannot borrow a local; C frees memory from a callback whose context is gone.
use std::ptr::NonNull;

use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain, ptr: NonNull<u8>) -> safeverbs::Result<()> {
    let freed = std::sync::atomic::AtomicBool::new(false);
    // SAFETY: (for the sake of the test) `ptr` is 4096 writable bytes owned by the caller.
    let _region = unsafe {
        pd.register_external::<u8>(ptr, 4096, Access::local(), || {
            freed.store(true, std::sync::atomic::Ordering::Release)
        })?
    };
    Ok(())
}

fn main() {}

// owned registered memory: the library owns what the NIC touches, a borrowed local buffer cannot be registered; C registers a stack array and returns.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let local_array = [0u8; 64];
    let _region = pd.register(&local_array, Access::local())?;
    Ok(())
}

fn main() {}

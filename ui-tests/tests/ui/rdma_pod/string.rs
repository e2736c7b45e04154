// RdmaPod: `String` owns a heap pointer; C sends the `char *`, not the bytes, and a peer write frees garbage.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register(String::from("hello"), Access::local())?;
    Ok(())
}

fn main() {}

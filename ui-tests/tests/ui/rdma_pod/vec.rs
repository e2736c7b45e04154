// RdmaPod: `Vec<u8>` is a pointer, length and capacity, not bytes; use `register_slice` or `register_zeroed`; C registers `&vec` and sends the header.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let _region = pd.register(vec![0u8; 64], Access::local())?;
    Ok(())
}

fn main() {}

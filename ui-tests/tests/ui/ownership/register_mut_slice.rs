// owned registered memory: there is no API taking `&mut [u8]`, the borrow would end while the NIC still writes; C registers a caller's buffer and frees it later.
use safeverbs::{Access, ProtectionDomain};

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let mut buf = vec![0u8; 64];
    let _region = pd.register(&mut buf[..], Access::local())?;
    Ok(())
}

fn main() {}

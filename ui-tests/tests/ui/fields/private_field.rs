// named field segments: the field layout keeps each field's visibility; C exposes every offset of every struct.
use safeverbs::{Access, ProtectionDomain, RdmaPod};

mod protocol {
    use safeverbs::RdmaPod;

    #[derive(RdmaPod, Clone, Copy)]
    #[repr(C)]
    pub struct Mailbox {
        pub seq: u64,
        secret: u64,
    }
}

fn misuse(pd: &ProtectionDomain) -> safeverbs::Result<()> {
    let region = pd.register(protocol::Mailbox::zeroed(), Access::local())?;
    let _secret = region.fields().secret.read_only()?;
    Ok(())
}

fn main() {}

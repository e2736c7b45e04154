// RdmaPod derive: no references in registered memory, not even `&'static str`; C sends a `char *` the peer cannot follow (or a peer overwrites ours).
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Named {
    name: &'static str,
}

fn main() {}

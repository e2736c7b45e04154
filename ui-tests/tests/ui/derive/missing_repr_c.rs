// RdmaPod derive: `#[repr(C)]` is required, Rust's layout may reorder fields; C's layout is fixed, but two compilers (or versions) of a Rust peer would disagree.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
struct Message {
    seq: u64,
    len: u32,
    flags: u32,
}

fn main() {}

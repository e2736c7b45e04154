// RdmaPod derive: every field must be RdmaPod, and `bool` is not (only 0 and 1 are valid); C lets a peer write 2 into it.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Flags {
    seq: u64,
    ready: bool,
    _pad: [u8; 7],
}

fn main() {}

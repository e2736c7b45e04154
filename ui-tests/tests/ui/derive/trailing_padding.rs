// RdmaPod derive: no trailing padding either; C sends `sizeof(struct)` bytes, 4 of them never written.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Message {
    seq: u64,
    len: u32,
}

fn main() {}

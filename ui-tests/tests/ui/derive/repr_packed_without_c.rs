// RdmaPod derive: `packed` alone still leaves the field order to rustc; C's `__attribute__((packed))` keeps declaration order.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(packed)]
struct Message {
    tag: u8,
    seq: u64,
}

fn main() {}

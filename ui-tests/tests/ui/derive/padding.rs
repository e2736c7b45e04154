// RdmaPod derive: no padding; C sends `struct { uint8_t tag; uint64_t seq; }` and leaks 7 uninitialized bytes to the peer.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Message {
    tag: u8,
    seq: u64,
}

fn main() {}

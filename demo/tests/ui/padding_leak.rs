// RdmaPod derive: no padding (catalogue: ui-tests/tests/ui/derive/padding.rs); C builds `struct message { uint8_t tag; uint64_t seq; }` in a reused send buffer and its 7 padding bytes carry the previous message's password to the peer (demo/c/padding_leak.c).
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Message {
    tag: u8,
    seq: u64,
}

fn main() {}

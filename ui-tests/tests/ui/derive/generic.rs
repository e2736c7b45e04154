// RdmaPod derive: no generic structs, their layout (and padding) depends on the parameter; C has no generics, it copy-pastes and forgets one.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Slot<T> {
    seq: u64,
    value: T,
}

fn main() {}

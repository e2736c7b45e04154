// RdmaPod derive: field types are checked by rustc, so an alias does not hide a `bool`; C's typedef hides anything.
use safeverbs::RdmaPod;

type Ready = bool;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Flags {
    ready: Ready,
}

fn main() {}

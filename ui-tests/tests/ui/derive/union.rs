// RdmaPod derive: no unions (which member is valid is not in the type); C reads whichever member it likes.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
union Word {
    int: u64,
    float: f64,
}

fn main() {}

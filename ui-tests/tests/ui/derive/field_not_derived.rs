// RdmaPod derive: a nested struct must be certified too; C nests any struct, padding and pointers included.
use safeverbs::RdmaPod;

#[derive(Clone, Copy)]
#[repr(C)]
struct Header {
    seq: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Message {
    header: Header,
    data: [u8; 64],
}

fn main() {}

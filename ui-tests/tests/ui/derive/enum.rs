// RdmaPod derive: no enums, a peer can write a discriminant that names no variant; C's enum is an int that takes any value.
use safeverbs::RdmaPod;

#[derive(RdmaPod, Clone, Copy)]
#[repr(u8)]
enum Kind {
    Hello = 1,
    Bye = 2,
}

fn main() {}

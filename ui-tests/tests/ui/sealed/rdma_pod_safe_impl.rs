// RdmaPod certification: implementing it by hand is an `unsafe impl` (and `#[derive(RdmaPod)]` is the way); C declares any struct wire-safe.
use safeverbs::RdmaPod;

#[derive(Clone, Copy)]
#[repr(C)]
struct Header {
    seq: u64,
}

impl RdmaPod for Header {
    const FINGERPRINT: u64 = 0;
}

fn main() {}

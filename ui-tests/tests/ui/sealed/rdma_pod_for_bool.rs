// RdmaPod certification: a user cannot certify a foreign type such as `bool` (orphan rule); C reinterprets any bytes as `bool`.
use safeverbs::RdmaPod;

// SAFETY: it is not safe, and that is the point.
unsafe impl RdmaPod for bool {
    const FINGERPRINT: u64 = 0;
}

fn main() {}

//! The properties the fuzz targets check, one module per target; each
//! `fuzz_targets/<name>.rs` calls `<name>::check` on libFuzzer's bytes.
//! docs/fuzzing.md lists them.
//!
//! Every check panics (a crash, to libFuzzer) when a property fails; the
//! library under test must not panic on any input, so a panic inside it is
//! a crash too.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod alloc;
pub mod endpoint;
pub mod handshake;
pub mod model_ops;
pub mod remote_region;
pub mod seeds;

/// CRC-32 (IEEE 802.3, as in zlib), bit by bit: the endpoint frame's
/// checksum, computed independently of the library's table.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Re-computes the checksum of an endpoint frame (its last four bytes),
/// so that a mutated frame reaches the checks after the checksum.
pub fn reseal(frame: &mut [u8; safeverbs::ENCODED_LEN]) {
    let (covered, checksum) = frame.split_at_mut(safeverbs::ENCODED_LEN - 4);
    checksum.copy_from_slice(&crc32(covered).to_be_bytes());
}

/// Reads fixed-size values from the front of a byte slice, zeros once it
/// runs out: how a target builds structured values from any input.
pub struct Take<'a>(pub &'a [u8]);

impl Take<'_> {
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = self.0.len().min(N);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}

//! The one codec of what SafeVerbs sends a peer: the endpoint frame
//! ([`Endpoint`](crate::Endpoint)), the remote-region descriptor
//! ([`RemoteRegion`](crate::RemoteRegion)) and the connection hello. Each is
//! a run of fixed-size fields, in order, integers big-endian, in a buffer
//! of the frame's fixed size.

/// Writes consecutive fields into a buffer.
pub(crate) struct Put<'a>(&'a mut [u8]);

impl<'a> Put<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self(buf)
    }

    /// The next `N` bytes. A frame's buffer holds all its fields: a field
    /// past its end is a bug of the frame's layout (checked in debug
    /// builds; dropped otherwise).
    pub(crate) fn bytes<const N: usize>(&mut self, bytes: [u8; N]) -> &mut Self {
        let rest = std::mem::take(&mut self.0);
        debug_assert!(rest.len() >= N, "a field past the end of its frame");
        if let Some((head, tail)) = rest.split_first_chunk_mut::<N>() {
            *head = bytes;
            self.0 = tail;
        }
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes([v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(v.to_be_bytes())
    }
}

/// Reads consecutive fields from a buffer (zeros past its end, which a
/// frame's fixed layout never reaches: its size is checked first).
pub(crate) struct Take<'a>(&'a [u8]);

impl<'a> Take<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self(buf)
    }

    /// The next `N` bytes.
    pub(crate) fn bytes<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.0 = tail;
                *head
            }
            None => [0; N],
        }
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let [v] = self.bytes();
        v
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.bytes())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.bytes())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_in_order_big_endian_and_read_back() {
        let mut buf = [0; 18];
        Put::new(&mut buf)
            .bytes(*b"AB")
            .u8(3)
            .u16(0x0405)
            .u32(0x0607_0809)
            .u64(0x0a0b_0c0d_0e0f_1011)
            .u8(0x12);
        assert_eq!(
            buf,
            *b"AB\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12"
        );
        let mut r = Take::new(&buf);
        assert_eq!(r.bytes::<2>(), *b"AB");
        assert_eq!((r.u8(), r.u16(), r.u32()), (3, 0x0405, 0x0607_0809));
        assert_eq!((r.u64(), r.u8()), (0x0a0b_0c0d_0e0f_1011, 0x12));
        assert_eq!(r.u8(), 0, "zeros past the end");
    }
}

// pass: a peer's region travels as 20 bytes (address, length, rkey) and comes back typed and bounded; runs without a device.
use safeverbs::{RemoteRegion, RemoteSegment, REMOTE_REGION_LEN};

fn wire(addr: u64, len: u64, rkey: u32) -> [u8; REMOTE_REGION_LEN] {
    let mut out = [0; REMOTE_REGION_LEN];
    out[..8].copy_from_slice(&addr.to_be_bytes());
    out[8..16].copy_from_slice(&len.to_be_bytes());
    out[16..].copy_from_slice(&rkey.to_be_bytes());
    out
}

fn main() -> safeverbs::Result<()> {
    let bytes = wire(0x1000, 64 * 8, 0xabcd);
    let peer = RemoteRegion::<[u64]>::decode(&bytes)?;
    assert_eq!(peer.encode(), bytes);
    assert_eq!(peer.len_bytes(), 512);

    let third: RemoteSegment<u64> = peer.elem(2)?;
    assert_eq!((third.addr(), third.len_bytes()), (0x1010, 8));
    let run: RemoteSegment<[u64]> = peer.slice(4..8)?;
    assert_eq!((run.addr(), run.len_bytes()), (0x1020, 32));
    let raw: RemoteSegment<[u8]> = peer.bytes(0..3)?;
    assert_eq!(raw.len_bytes(), 3);

    // Bounds are checked before anything is posted.
    assert!(peer.elem(64).is_err());
    assert!(peer.slice(60..65).is_err());
    // A length that is not a whole number of `u64`s, or a truncated message, is refused.
    assert!(RemoteRegion::<[u64]>::decode(&wire(0x1000, 12, 1)).is_err());
    assert!(RemoteRegion::<[u64]>::decode(&bytes[..10]).is_err());
    // A single value must be exactly its size.
    let one = RemoteRegion::<u32>::decode(&wire(0x2000, 4, 7))?;
    assert_eq!(one.whole().len_bytes(), 4);
    assert!(RemoteRegion::<u32>::decode(&wire(0x2000, 8, 7)).is_err());
    Ok(())
}

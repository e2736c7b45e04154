// pass: the layouts the derive accepts (repr C, transparent, packed C, explicit padding, arrays of structs); runs without a device.
use safeverbs::{RdmaPod, RemoteRegion};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Padded {
    tag: u8,
    _pad: [u8; 7], // the padding made explicit, so it has a value
    seq: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C, packed)]
struct Packed {
    tag: u8,
    seq: u64,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(transparent)]
struct Seq(u64);

#[derive(RdmaPod, Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    words: [u64; 8],
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Ring {
    head: Seq,
    tail: Seq,
    slots: [Padded; 4],
}

fn main() -> safeverbs::Result<()> {
    assert_eq!(size_of::<Packed>(), 9);
    let zero = Ring::zeroed();
    assert_eq!(zero.head.0 + zero.tail.0, 0);
    // Different layouts, different fingerprints.
    assert_ne!(Padded::FINGERPRINT, Packed::FINGERPRINT);
    assert_ne!(Seq::FINGERPRINT, u64::FINGERPRINT);
    assert_ne!(Line::FINGERPRINT, 0);
    // A peer's ring, projected by name.
    let mut wire = [0u8; safeverbs::REMOTE_REGION_LEN];
    wire[..8].copy_from_slice(&0x8000u64.to_be_bytes());
    wire[8..16].copy_from_slice(&(size_of::<Ring>() as u64).to_be_bytes());
    let ring = RemoteRegion::<Ring>::decode(&wire)?;
    assert_eq!(ring.fields().tail.addr(), 0x8008);
    assert_eq!(ring.fields().slots.len_bytes(), 64);
    let _ = zero.slots[0].tag + zero.slots[0]._pad[0];
    let _ = Line { words: [0; 8] }.words;
    let packed = Packed { tag: 1, seq: 2 };
    let _ = (packed.tag, { packed.seq });
    let _ = (Padded {
        tag: 0,
        _pad: [0; 7],
        seq: 0,
    })
    .seq;
    Ok(())
}

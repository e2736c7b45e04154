// pass: a derived struct nested in another projects further by name, locally and on the peer's side; the offsets part runs without a device.
use safeverbs::{Access, Device, RdmaPod, RemoteRegion, RemoteSegment, Ro, Rw, Segment};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Header {
    seq: u64,
    len: u32,
    flags: u32,
}

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    header: Header,
    data: [u8; 64],
}

/// A tuple struct works too.
#[derive(RdmaPod, Clone, Copy)]
#[repr(transparent)]
struct Counter(u64);

fn local_fields() -> safeverbs::Result<()> {
    let pd = Device::open_default()?.alloc_pd()?;
    let inbox = pd.register(Mailbox::zeroed(), Access::local())?;
    let header = inbox.fields().header;
    let len: Segment<u32, Ro> = header.fields().len.read_only()?;
    let flags: Segment<u32, Ro> = header.fields().flags.read_only()?; // read-only segments may coexist
    let mut data: Segment<[u8; 64], Rw> = inbox.fields().data.read_write()?; // disjoint from the header
    data.write([b'x'; 64]);
    assert_eq!((len.offset(), flags.offset(), data.offset()), (8, 12, 16));

    let counter = pd.register(Counter(0), Access::local())?;
    let mut value = counter.fields().0.read_write()?;
    value.write(41);
    Ok(())
}

fn main() -> safeverbs::Result<()> {
    // The peer's side needs no device: decode what it sent and project.
    let mut wire = [0u8; safeverbs::REMOTE_REGION_LEN];
    wire[..8].copy_from_slice(&0x4000u64.to_be_bytes());
    wire[8..16].copy_from_slice(&(size_of::<Mailbox>() as u64).to_be_bytes());
    let peer = RemoteRegion::<Mailbox>::decode(&wire)?;
    let flags: RemoteSegment<u32> = peer.fields().header.fields().flags;
    let data: RemoteSegment<[u8; 64]> = peer.fields().data;
    assert_eq!((flags.addr(), flags.len_bytes()), (0x4000 + 12, 4));
    assert_eq!((data.addr(), data.len_bytes()), (0x4000 + 16, 64));
    assert_ne!(Mailbox::FINGERPRINT, Header::FINGERPRINT);

    // Needs an RDMA device: named, never called.
    let _ = local_fields;
    Ok(())
}

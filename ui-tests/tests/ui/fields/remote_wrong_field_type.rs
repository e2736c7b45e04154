// named remote fields: a peer's field keeps its type; C adds an offset to the peer's address and writes any width there.
use safeverbs::{RdmaPod, RemoteRegion, RemoteSegment};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Mailbox {
    seq: u64,
    len: u32,
    flags: u32,
}

fn misuse(peer: RemoteRegion<Mailbox>) {
    let _seq: RemoteSegment<u32> = peer.fields().seq;
}

fn main() {}

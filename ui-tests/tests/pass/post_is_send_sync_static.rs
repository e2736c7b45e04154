// pass: futures and resources are `Send + Sync + 'static`, so a posted operation can move to another thread or task.
use safeverbs::{
    Access, CompletionQueue, Device, Init, MemoryRegion, Post, ProtectionDomain, QueuePair, Rc,
    RemoteRegion, RemoteSegment, Ro, Rts, Rw, Segment, Uc,
};

fn assert_send_static<T: Send + Sync + 'static>(_: &T) {}

fn assert_type<T: Send + Sync + 'static>() {}

fn posted_elsewhere(
    pd: &ProtectionDomain,
    qp: &QueuePair<Rc, Rts>,
    peer: RemoteSegment<u64>,
) -> safeverbs::Result<()> {
    let region = pd.register(0u64, Access::local())?;
    let send = qp.send(region.read_only()?);
    assert_send_static(&send);
    let target = pd.register(0u64, Access::local())?;
    let read = qp.read(target.read_write()?, peer);
    assert_send_static(&read);
    // The future outlives this stack frame: it owns the segment, the region and the queue pair.
    let waiter = std::thread::spawn(move || (send, read));
    let _ = waiter.join();
    Ok(())
}

fn main() {
    // Type-level checks run without a device.
    assert_type::<Post<u64, Ro>>();
    assert_type::<Post<[u8], Rw>>();
    assert_type::<Segment<[u8], Rw>>();
    assert_type::<MemoryRegion<[u64]>>();
    assert_type::<QueuePair<Rc, Rts>>();
    assert_type::<QueuePair<Uc, Init>>();
    assert_type::<RemoteRegion<[u8]>>();
    assert_type::<RemoteSegment<u64>>();
    assert_type::<CompletionQueue>();
    assert_type::<ProtectionDomain>();
    assert_type::<Device>();
    assert_type::<safeverbs::Error>();
    // Needs an RDMA device: named, never called.
    let _ = posted_elsewhere;
}

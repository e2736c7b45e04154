// pass: what a segment allows while the caller holds it: copies out of any segment, writes and `&mut` into read-write ones.
use safeverbs::{Access, Device};

fn fill_and_check() -> safeverbs::Result<()> {
    let pd = Device::open_default()?.alloc_pd()?;
    let region = pd.register_zeroed::<u8>(64, Access::local())?;
    {
        let mut rw = region.slice_rw(0..64)?;
        rw.fill(0xab);
        rw.copy_from(&[1; 64])?;
        rw.get_mut()?[0] = 2; // local-only region: a `&mut` is fine while not posted
    } // dropped: the bytes may be shared again
    let ro = region.slice_ro(0..64)?;
    let also_ro = region.bytes_ro(0..8)?;
    assert_eq!(ro.to_vec()[0], 2);
    assert_eq!(also_ro.get()?[1], 1);

    let remote = pd.register(0u64, Access::remote_write())?;
    let mut word = remote.read_write()?;
    word.write(5); // a peer may write it too: access by copy...
    assert_eq!(word.read(), 5);
    assert!(word.get_mut().is_err()); // ...never by reference
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = fill_and_check;
}

// pass: the unchecked segment constructors are available inside `unsafe`, with the caller's proof in a SAFETY comment.
use safeverbs::{Access, Device};

fn carve_halves() -> safeverbs::Result<()> {
    let pd = Device::open_default()?.alloc_pd()?;
    let region = pd.register_zeroed::<u32>(64, Access::local())?;
    // SAFETY: the two halves are disjoint and no other segment of `region` exists while they live.
    let (mut low, mut high) = unsafe {
        (
            region.slice_rw_unchecked(0..32)?,
            region.slice_rw_unchecked(32..64)?,
        )
    };
    low.fill(1);
    high.fill(2);
    let counter = pd.register(0u64, Access::local())?;
    // SAFETY: `seg` is the only segment of `counter`.
    let mut seg = unsafe { counter.read_write_unchecked() };
    seg.write(1);
    Ok(())
}

fn main() {
    // Needs an RDMA device: named, never called, so this case only has to compile.
    let _ = carve_halves;
}

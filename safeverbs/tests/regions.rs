//! Registering memory: the library's own allocations are aligned for
//! their type, and memory the caller brings is registered exactly as given.
//! Both need a device (`ibv_reg_mr`); on a machine without one they print
//! why they skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{block_on, trials, Test};

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use safeverbs::{Access, Device, Error, Rc, RdmaPod};

/// Aligned above a page (two pages), as a user may declare a type to get
/// huge-page or cache-set placement.
#[derive(RdmaPod, Clone, Copy, PartialEq, Debug)]
#[repr(C, align(8192))]
struct TwoPages {
    seq: u64,
    data: [u8; 8184],
}

fn value(seed: u8) -> TwoPages {
    let mut data = [0u8; 8184];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7) ^ seed;
    }
    TwoPages {
        seq: u64::from(seed) << 32 | 0xfeed,
        data,
    }
}

fn regions_are_aligned_for_types_above_a_page(dev: &Device) {
    let p = common::pair::<Rc>(dev, 4);
    // Several of each, so that a 4096-aligned allocator result cannot be
    // 8192-aligned by luck every time.
    let mut regions = Vec::new();
    for seed in 0..8 {
        let region = p.pd.register(value(seed), Access::local()).unwrap();
        let slice =
            p.pd.register_slice(&[value(seed), value(seed + 1)], Access::local())
                .unwrap();
        let zeroed =
            p.pd.register_zeroed::<TwoPages>(2, Access::local())
                .unwrap();
        let addrs = [
            region.remote().whole().addr(),
            slice.remote().bytes(0..0).unwrap().addr(),
            zeroed.remote().bytes(0..0).unwrap().addr(),
        ];
        for addr in addrs {
            assert_eq!(addr % 8192, 0, "region at {addr:#x} is not 8192-aligned");
        }
        assert_eq!(region.read_only().unwrap().read(), value(seed));
        assert_eq!(
            slice.slice_ro(0..2).unwrap().to_vec(),
            [value(seed), value(seed + 1)]
        );
        assert_eq!(zeroed.elem_ro(1).unwrap().read(), TwoPages::zeroed());
        regions.push(region);
    }
    // The NIC reads and writes them too: send one into another.
    let into = p.pd.register(TwoPages::zeroed(), Access::local()).unwrap();
    let recv = p.b.recv(into.read_write().unwrap());
    let (sent, _) = block_on(p.a.send(regions[5].read_only().unwrap()));
    sent.unwrap();
    let (got, seg) = block_on(recv);
    assert_eq!(got.unwrap().byte_len as usize, size_of::<TwoPages>());
    assert_eq!(seg.read(), value(5));
    println!("8 KiB-aligned regions: aligned, read back and sent intact");
}

fn external_memory_of_no_whole_element_is_refused(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let mut buf = vec![0u64; 2];
    let ptr = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let hook = || {
        let released = released.clone();
        move || released.store(true, Ordering::SeqCst)
    };
    // SAFETY: `buf` is valid for 16 bytes (15 from its second byte), and outlives
    // every region made here (each is dropped before it); nothing else
    // touches it meanwhile.
    unsafe {
        let empty = pd.register_external::<u8>(ptr, 0, Access::remote_write(), hook());
        assert!(
            matches!(
                empty,
                Err(Error::EmptyRegion {
                    bytes: 0,
                    elem_size: 1
                })
            ),
            "0 bytes: {empty:?}"
        );
        let short = pd.register_external::<u64>(ptr, 7, Access::remote_write(), hook());
        assert!(
            matches!(
                short,
                Err(Error::EmptyRegion {
                    bytes: 7,
                    elem_size: 8
                })
            ),
            "7 bytes of u64: {short:?}"
        );
        let odd = NonNull::new(ptr.as_ptr().wrapping_add(1)).unwrap();
        let unaligned = pd.register_external::<u64>(odd, 8, Access::remote_write(), hook());
        assert!(
            matches!(unaligned, Err(Error::ExternalUnaligned { addr, align: 8, .. })
                if addr == odd.as_ptr() as usize),
            "an unaligned u64: {unaligned:?}"
        );
        assert!(
            !released.load(Ordering::SeqCst),
            "a refused registration does not run the release hook"
        );
        let one = pd
            .register_external::<u64>(ptr, 15, Access::remote_write(), hook())
            .unwrap();
        assert_eq!(
            (one.len(), one.len_bytes(), one.remote().len_bytes()),
            (1, 8, 8)
        );
        drop(one);
    }
    assert!(
        released.load(Ordering::SeqCst),
        "the registered region ran its hook"
    );
    drop(buf);
}

/// Unchecked carves (`unsafe`): exactly the bytes asked for, bounds still
/// checked, and no entry in the region's overlap map (and `is_empty` says
/// what a segment's length says).
fn unchecked_carves_cover_the_bytes_asked_for(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let region = pd.register_slice(&[0u32; 8], Access::local()).unwrap();
    // A region always holds an element (an empty one is refused).
    assert_eq!((region.len(), region.is_empty()), (8, false));
    // SAFETY: no other segment of `region` lives or is made while `seg`
    // does (the checked carve below comes after it is dropped).
    let mut seg = unsafe { region.slice_rw_unchecked(2..5) }.unwrap();
    assert_eq!((seg.offset(), seg.len(), seg.len_bytes()), (8, 3, 12));
    assert!(!seg.is_empty());
    assert!(region.slice_ro(4..4).unwrap().is_empty(), "an empty carve");
    assert_eq!(
        region.live_segments(),
        0,
        "an unchecked segment holds no map entry"
    );
    seg.copy_from(&[7, 8, 9]).unwrap();
    drop(seg);
    assert_eq!(
        region.slice_ro(0..8).unwrap().to_vec(),
        [0, 0, 7, 8, 9, 0, 0, 0]
    );
    // SAFETY: refused before any segment is made.
    let past = unsafe { region.slice_rw_unchecked(6..9) };
    assert!(
        matches!(
            past,
            Err(Error::OutOfBounds {
                start: 24,
                end: 36,
                len: 32
            })
        ),
        "{past:?}"
    );
    let value = pd.register([1u16; 4], Access::local()).unwrap();
    // SAFETY: the only segment of `value`.
    let whole = unsafe { value.read_write_unchecked() };
    assert_eq!((whole.offset(), whole.len_bytes()), (0, 8));
    assert_eq!(whole.read(), [1u16; 4]);
}

/// A region's rkey is the one its descriptor carries to the peer, and each
/// remotely accessible region has its own.
fn each_region_has_its_own_rkey_and_its_descriptor_carries_it(dev: &Device) {
    let pd = dev.alloc_pd().unwrap();
    let a = pd.register([0u8; 64], Access::remote_write()).unwrap();
    let b = pd.register([0u8; 64], Access::remote_write()).unwrap();
    for r in [&a, &b] {
        let wire = r.remote().encode();
        let carried = u32::from_be_bytes(wire[16..20].try_into().unwrap());
        assert_eq!(r.rkey(), carried, "the descriptor's rkey (bytes 16..20)");
    }
    assert_ne!(a.rkey(), b.rkey(), "two registrations, one rkey");
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        device regions_are_aligned_for_types_above_a_page,
        device external_memory_of_no_whole_element_is_refused,
        device unchecked_carves_cover_the_bytes_asked_for,
        device each_region_has_its_own_rkey_and_its_descriptor_carries_it,
    ])
}

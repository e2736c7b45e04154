//! The one way the library reads and writes region memory: memory the NIC,
//! or a peer through it, may write while we access it.
//!
//! # The argument, once
//!
//! A registered region's bytes change outside the program: the NIC writes
//! a posted receive or RDMA READ target, and a peer with remote-write
//! rights writes any byte of the region at any moment, posted or not. To
//! the compiler, plain accesses (`copy_nonoverlapping`, `ptr::read`,
//! `*p = v`) are accesses to memory nothing else touches: it may split,
//! merge, repeat or drop them, and forward a copied value from one load to
//! a later use of the same memory. Racing with such a write is a data
//! race, undefined behaviour. Volatile accesses are Rust's operations for
//! memory that changes outside the program: each is done exactly once and
//! neither removed, merged nor invented. So every access to region memory
//! in this crate is volatile, and is made here:
//!
//! - Inside the program, no two threads race: the segment rules (the
//!   overlap map, posting by value, the contracts of the unchecked
//!   constructors) let a range be written by one holder at a time while
//!   nobody reads it, and read by any number of holders of read-only
//!   segments while nobody writes it.
//! - Against the NIC and the peer, a copy may be *torn*: some bytes old,
//!   some new. Volatile makes no access atomic. Every bit pattern of an
//!   [`RdmaPod`] type is a valid value, so a torn copy is still a valid
//!   value; ordering a message with its flag is the protocol's business,
//!   with the fences below on our side.
//! - Reading the bytes of a private value (what [`write`] and [`copy_in`]
//!   store) is sound because an `RdmaPod` type has no padding: all its
//!   bytes are initialised.
//!
//! Each function copies in machine words (`usize`) where the region side
//! is aligned, and in bytes at the ends, so a large copy costs one
//! volatile access per word, not per byte. Reads end with an acquire
//! fence and writes with a release fence, so that what the program did
//! before a write (or does after a read) is not moved across it.
//!
//! # Safety, for every function here
//!
//! `region` points to region memory valid for the bytes the call names
//! (in bounds of a live region, which the caller keeps alive) and aligned
//! for the element type. A read may run while other holders read the same
//! bytes; a write only while no other part of the program reads or writes
//! them (the segment rules above, or a fresh allocation nobody else has
//! seen). The private side is an ordinary Rust reference, so it never
//! overlaps region memory that the NIC or a peer may write.

use std::mem::MaybeUninit;
use std::ptr::addr_of;
use std::sync::atomic::{fence, Ordering};

use crate::memory::pod::RdmaPod;

/// The unit of a volatile copy in the aligned middle of a range.
type Word = usize;
const WORD: usize = size_of::<Word>();

/// A copy of the `T` at `region`.
///
/// # Safety
/// See the [module](self): `region` is valid for reads of one `T`.
pub(crate) unsafe fn read<T: RdmaPod>(region: *const T) -> T {
    let mut out = MaybeUninit::<T>::uninit();
    // SAFETY: `region` per the caller; `out` is a private `T`, valid for
    // `size_of::<T>()` bytes of writes and distinct from region memory.
    unsafe { load(region.cast(), out.as_mut_ptr().cast(), size_of::<T>()) };
    fence(Ordering::Acquire);
    // SAFETY: `load` wrote all `size_of::<T>()` bytes, and every bit
    // pattern is a valid `T` (`RdmaPod`).
    unsafe { out.assume_init() }
}

/// Stores `value` at `region`.
///
/// # Safety
/// See the [module](self): `region` is valid for writes of one `T`.
pub(crate) unsafe fn write<T: RdmaPod>(region: *mut T, value: &T) {
    // SAFETY: `region` per the caller; `value` is a private `T` whose
    // bytes are all initialised (`RdmaPod` has no padding).
    unsafe { store(region.cast(), addr_of!(*value).cast(), size_of::<T>()) };
    fence(Ordering::Release);
}

/// Copies the `out.len()` elements at `region` into `out`.
///
/// # Safety
/// See the [module](self): `region` is valid for reads of `out.len()`
/// elements.
pub(crate) unsafe fn copy_out<E: RdmaPod>(region: *const E, out: &mut [E]) {
    // SAFETY: `region` per the caller; `out` is private and `size_of_val`
    // bytes long; every bit pattern is a valid `E`, so writing bytes into
    // it keeps it valid.
    unsafe { load(region.cast(), out.as_mut_ptr().cast(), size_of_val(out)) };
    fence(Ordering::Acquire);
}

/// Copies `src` into the `src.len()` elements at `region`.
///
/// # Safety
/// See the [module](self): `region` is valid for writes of `src.len()`
/// elements.
pub(crate) unsafe fn copy_in<E: RdmaPod>(region: *mut E, src: &[E]) {
    // SAFETY: `region` per the caller; `src` is private and all its bytes
    // are initialised (`RdmaPod` has no padding).
    unsafe { store(region.cast(), src.as_ptr().cast(), size_of_val(src)) };
    fence(Ordering::Release);
}

/// Sets the `count` elements at `region` to `value`.
///
/// # Safety
/// See the [module](self): `region` is valid for writes of `count`
/// elements.
pub(crate) unsafe fn fill<E: RdmaPod>(region: *mut E, count: usize, value: E) {
    /// Small elements are repeated in a private buffer of this many bytes
    /// first, so that they too are stored a word at a time.
    const STAGE: usize = 256;
    let unit = size_of::<E>();
    if unit == 0 {
        return;
    }
    // SAFETY: `value` is a private `E`, all of whose `unit` bytes are
    // initialised (`RdmaPod` has no padding).
    let bytes = unsafe { std::slice::from_raw_parts(addr_of!(value).cast::<u8>(), unit) };
    let mut stage = [0u8; STAGE];
    let per_chunk = if unit > STAGE { 1 } else { STAGE / unit };
    let chunk: &[u8] = if per_chunk == 1 {
        bytes
    } else {
        for at in stage.chunks_exact_mut(unit).take(per_chunk) {
            at.copy_from_slice(bytes);
        }
        &stage[..per_chunk * unit]
    };
    let mut done = 0;
    while done < count {
        let n = per_chunk.min(count - done);
        // SAFETY: `done + n <= count`, so the destination is in the range
        // the caller gave; `chunk` holds `n * unit` private, initialised
        // bytes (`n <= per_chunk`).
        unsafe { store(region.add(done).cast(), chunk.as_ptr(), n * unit) };
        done += n;
    }
    fence(Ordering::Release);
}

/// Copies `len` bytes from region memory at `region` to private memory at
/// `out`, with volatile reads.
///
/// # Safety
/// `region` as in the [module](self) for reads of `len` bytes; `out` valid
/// for writes of `len` bytes, private (not region memory).
unsafe fn load(region: *const u8, out: *mut u8, len: usize) {
    let head = region.align_offset(WORD).min(len);
    let mut i = 0;
    // SAFETY: each access is at `i < len` (or `i + WORD <= len`), so on
    // both sides in the ranges the caller gave. The region side is read
    // with volatile accesses, words only at word-aligned addresses (past
    // the `head` bytes); the private side may be unaligned, so words are
    // written unaligned.
    unsafe {
        while i < head {
            out.add(i).write(region.add(i).read_volatile());
            i += 1;
        }
        // Four words per turn: the accesses stay one per word, the loop
        // overhead is shared.
        while len - i >= 4 * WORD {
            let at = region.add(i).cast::<Word>();
            let words = [
                at.read_volatile(),
                at.add(1).read_volatile(),
                at.add(2).read_volatile(),
                at.add(3).read_volatile(),
            ];
            out.add(i).cast::<[Word; 4]>().write_unaligned(words);
            i += 4 * WORD;
        }
        while len - i >= WORD {
            let word = region.add(i).cast::<Word>().read_volatile();
            out.add(i).cast::<Word>().write_unaligned(word);
            i += WORD;
        }
        while i < len {
            out.add(i).write(region.add(i).read_volatile());
            i += 1;
        }
    }
}

/// Copies `len` bytes from private memory at `src` to region memory at
/// `region`, with volatile writes.
///
/// # Safety
/// `region` as in the [module](self) for writes of `len` bytes; `src` valid
/// for reads of `len` initialised bytes, private (not region memory).
unsafe fn store(region: *mut u8, src: *const u8, len: usize) {
    let head = region.align_offset(WORD).min(len);
    let mut i = 0;
    // SAFETY: as in `load`, the roles swapped: the region side is written
    // with volatile accesses, words only at word-aligned addresses; the
    // private side is read unaligned.
    unsafe {
        while i < head {
            region.add(i).write_volatile(src.add(i).read());
            i += 1;
        }
        while len - i >= 4 * WORD {
            let words = src.add(i).cast::<[Word; 4]>().read_unaligned();
            let at = region.add(i).cast::<Word>();
            at.write_volatile(words[0]);
            at.add(1).write_volatile(words[1]);
            at.add(2).write_volatile(words[2]);
            at.add(3).write_volatile(words[3]);
            i += 4 * WORD;
        }
        while len - i >= WORD {
            let word = src.add(i).cast::<Word>().read_unaligned();
            region.add(i).cast::<Word>().write_volatile(word);
            i += WORD;
        }
        while i < len {
            region.add(i).write_volatile(src.add(i).read());
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-aligned stand-in for region memory, 80 bytes long.
    fn region() -> Box<[u64; 10]> {
        Box::new([0; 10])
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Every length up to nine words (the four-word turns, single words and
    /// bytes), at every offset within a word: the
    /// bytes arrive, and no byte outside the range is touched.
    #[test]
    fn copies_move_exactly_the_bytes_at_every_alignment() {
        for offset in 0..WORD + 1 {
            for len in 0..=9 * WORD {
                let mut mem = region();
                let base = mem.as_mut_ptr().cast::<u8>();
                let src = pattern(len, offset as u8);
                let mut back = vec![0u8; len];
                // SAFETY: `offset + len <= 80`, inside `mem`, which only
                // this test uses.
                unsafe {
                    copy_in(base.add(offset), &src);
                    copy_out(base.add(offset), &mut back);
                }
                assert_eq!(back, src, "offset {offset}, len {len}");
                // SAFETY: `mem` is ours and no copy is running.
                let all = unsafe { std::slice::from_raw_parts(base, 80) };
                assert!(all[..offset].iter().all(|&b| b == 0));
                assert!(all[offset + len..].iter().all(|&b| b == 0));
            }
        }
    }

    /// Typed reads and writes of values of several sizes and alignments,
    /// with the private side unaligned to the region side.
    #[test]
    fn values_round_trip() {
        let mut mem = region();
        let base = mem.as_mut_ptr().cast::<u8>();
        // SAFETY: every access is inside `mem` and aligned for its type.
        unsafe {
            write(base.add(1).cast::<[u8; 13]>(), &[7; 13]);
            assert_eq!(read(base.add(1).cast::<[u8; 13]>()), [7; 13]);
            write(base.add(16).cast::<u64>(), &0x0102_0304_0506_0708);
            assert_eq!(read(base.add(16).cast::<u64>()), 0x0102_0304_0506_0708);
            assert_eq!(read(base.add(16).cast::<u32>()), 0x0506_0708);
            write(base.add(36).cast::<[u32; 5]>(), &[1, 2, 3, 4, 5]);
            assert_eq!(read(base.add(36).cast::<[u32; 5]>()), [1, 2, 3, 4, 5]);
            let mut out = [0u16; 3];
            copy_out(base.add(36).cast::<u16>(), &mut out);
            assert_eq!(out, [1, 0, 2]);
        }
    }

    /// Small elements (staged a chunk at a time), odd sizes, and elements
    /// larger than the staging buffer.
    #[test]
    fn fill_repeats_the_value() {
        let mut mem = vec![0u64; 200];
        let base = mem.as_mut_ptr().cast::<u8>();
        // SAFETY: every fill stays inside `mem` (1600 bytes), aligned for
        // its element type.
        unsafe {
            fill(base.add(3), 1000, 0xa5u8);
            let mut out = vec![0u8; 1002];
            copy_out(base.add(2), &mut out);
            assert_eq!((out[0], out[1001]), (0, 0));
            assert!(out[1..1001].iter().all(|&b| b == 0xa5));

            fill(base.add(1).cast::<[u8; 3]>(), 300, [1, 2, 3]);
            let mut out = vec![[0u8; 3]; 300];
            copy_out(base.add(1).cast::<[u8; 3]>(), &mut out);
            assert!(out.iter().all(|e| *e == [1, 2, 3]));

            fill(base.cast::<[u16; 300]>(), 2, [0xbeef; 300]);
            assert_eq!(read(base.add(598).cast::<u16>()), 0xbeef);
            assert_eq!(read(base.add(1198).cast::<u16>()), 0xbeef);
            // Past the two elements: untouched.
            assert_eq!(read(base.add(1200).cast::<u16>()), 0);

            fill(base.cast::<u64>(), 0, 1);
            fill(base.cast::<[u8; 0]>(), 5, []);
            assert_eq!(read(base.cast::<u16>()), 0xbeef);
        }
    }

    /// The rule this module exists for, checked on the source: outside it,
    /// no code copies or dereferences memory with the raw accessors that
    /// region memory would need. (Reading the source needs the file
    /// system, which Miri isolates.)
    #[test]
    #[cfg_attr(miri, ignore = "reads the source files")]
    fn region_memory_is_reached_only_through_this_module() {
        const EVERYWHERE: [&str; 8] = [
            "copy_nonoverlapping",
            "ptr::copy",
            "read_volatile",
            "write_volatile",
            "read_unaligned",
            "write_unaligned",
            "write_bytes",
            "ptr::swap",
        ];
        // The files that hold pointers into regions (`RegionInner::ptr`,
        // `RawSegment::ptr`): no plain `ptr::read`/`ptr::write` either.
        const REGION_FILES: [&str; 3] = ["region.rs", "segment.rs", "fields.rs"];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.clone()];
        let mut offences = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read src") {
                    files.push(entry.expect("entry").path());
                }
                continue;
            }
            // The model device's engine is the NIC: its DMA is the other
            // side of this rule, not library code.
            let exempt = path.ends_with("segment/shared.rs") || path.ends_with("model/engine.rs");
            if exempt || path.extension() != Some("rs".as_ref()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let mut bad = EVERYWHERE.iter().filter(|t| code.contains(*t)).peekable();
                let plain = REGION_FILES.contains(&name)
                    && (code.contains("ptr::read") || code.contains("ptr::write"));
                if bad.peek().is_some() || plain {
                    offences.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(
            offences.is_empty(),
            "region memory must be read and written through `segment::shared`:\n{}",
            offences.join("\n")
        );
    }
}

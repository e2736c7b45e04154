// RdmaPod derive: a crate that renames itself `core` cannot fake the sizes the padding check adds up; C's `sizeof` is never checked against the fields at all.
extern crate self as core;

use safeverbs::RdmaPod;

/// What `::core::mem` now names: sizes that make every struct look
/// exactly covered by its fields.
pub mod mem {
    pub use std::mem::{align_of, offset_of};

    pub const fn size_of<T>() -> usize {
        0
    }
}

pub use std::{fmt, marker, panic};

#[derive(RdmaPod, Clone, Copy)]
#[repr(C)]
struct Message {
    tag: u8,
    seq: u64,
}

fn main() {}

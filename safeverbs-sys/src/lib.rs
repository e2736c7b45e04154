//! Raw bindings to libibverbs, generated at build time by bindgen from the
//! system's `<infiniband/verbs.h>` (found with pkg-config), and the data-path
//! verbs that the header only provides as `static inline` functions.
//!
//! This crate is the unsafe floor of [SafeVerbs]; applications use the safe
//! `safeverbs` crate instead.
//!
//! - Enumerations whose values the C side writes (`ibv_wc_status`,
//!   `ibv_qp_state`, `ibv_port_state`, …) are `u32` newtypes with associated
//!   constants, never Rust enums: an unknown value from a newer provider is a
//!   value, not undefined behaviour. Flag sets (`ibv_access_flags`,
//!   `ibv_send_flags`, `ibv_qp_attr_mask`, …) are bitfield newtypes with `|`.
//! - [`ibv_post_send`], [`ibv_post_recv`], [`ibv_poll_cq`],
//!   [`ibv_req_notify_cq`] call the provider's function pointers directly, as
//!   the C inline functions do: no extra C call on the hot path.
//! - bindgen's layout assertions are compiled into the crate, so a struct
//!   whose size, alignment or field offsets differ from the C compiler's view
//!   fails the build.
//!
//! With the `rdmacm` feature the crate also binds `<rdma/rdma_cma.h>` and
//! links librdmacm.
//!
//! [SafeVerbs]: https://docs.rs/safeverbs
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]
#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

mod bindings {
    #![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
    #![allow(missing_docs, unreachable_pub, rustdoc::all)]
    #![allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks)]
    #![allow(clippy::missing_safety_doc, clippy::restriction)]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
pub use bindings::*;

mod inline;
pub use inline::*;

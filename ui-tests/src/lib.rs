//! The compile-fail catalogue of SafeVerbs' safety rules.
//!
//! This crate has no code of its own. Its test, `cargo test -p ui-tests`,
//! runs [trybuild] over two folders:
//!
//! - `tests/ui/<rule>/<case>.rs`: each file makes one mistake that a C
//!   verbs program compiles (its first line says which), and must fail to
//!   compile with exactly the error in the `.stderr` beside it. The error a
//!   user sees is part of the product, so it is pinned too.
//! - `tests/pass/<case>.rs`: the intended patterns, which must compile (and
//!   run: code that needs an RDMA device is named in `main`, never called).
//!
//! After a deliberate change to the library or to rustc, regenerate the
//! expected errors with `TRYBUILD=overwrite cargo test -p ui-tests` and read
//! every diff; never edit a `.stderr` by hand.
//!
//! # The rules, by folder
//!
//! | folder | rule |
//! | --- | --- |
//! | `use_after_post` | posting moves the segment into the operation; it is back only with the completion, and no reference taken before the post outlives it |
//! | `read_only_segment` | `Segment<_, Ro>` may be shared, so it is never written: not a receive buffer, not an RDMA READ target, no `write`/`fill`/`copy_from`/`get_mut` |
//! | `segment` | registered memory is reached only through segments: no indexing or deref of a region or segment, no cloning a segment |
//! | `qp_state` | `send`/`write`/`read` only on `Rts`, `recv` from `Init` on, transitions only forward and consuming, `QueuePair` is not `Clone` |
//! | `transport` | RC-only builder options and RDMA READ do not exist on UC |
//! | `rdma_pod` | only `RdmaPod` types go into a region |
//! | `derive` | `#[derive(RdmaPod)]` refuses padding, a missing `#[repr(C)]`, generics, enums, unions and non-`RdmaPod` fields |
//! | `fields` | named field segments have the field's type, exist only for fields the type has and keep their visibility |
//! | `remote_type` | RDMA WRITE and READ need the same type locally and remotely |
//! | `ownership` | no borrowed buffer can be registered; what outlives the call (release hooks) is `Send + Sync + 'static` |
//! | `unsafe_api` | the unchecked constructors and external memory need `unsafe` |
//! | `sealed` | states, modes and the `RdmaPod` certificate cannot be forged |
//!
//! [trybuild]: https://docs.rs/trybuild

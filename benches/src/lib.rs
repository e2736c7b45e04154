//! Microbenchmarks of SafeVerbs' safety layer: `cargo bench -p
//! safeverbs-benches`. They need no RDMA device. The side-by-side
//! comparison with perftest runs in the Soft-RoCE machine:
//! `scripts/compare-perftest`.

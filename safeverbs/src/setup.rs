//! Connection setup: the [`endpoint`] each side sends, its [`exchange`]
//! over TCP, typed [`connection`]s built on it, and the [`liveness`] of the
//! control stream that carried it.

pub(crate) mod connection;
pub(crate) mod endpoint;
pub(crate) mod exchange;
pub(crate) mod liveness;

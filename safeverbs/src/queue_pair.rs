//! Queue pairs: their typestate ([`transport`] and state markers), the
//! queue pair itself and its builder ([`qp`]), the credits of its work
//! queues ([`credits`]), and the [`gate`] that keeps `ibv_destroy_qp` away
//! from every other verb call on it.

pub(crate) mod credits;
pub(crate) mod gate;
pub(crate) mod qp;
pub(crate) mod transport;

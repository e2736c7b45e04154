//! Posting: operations as futures that own their segments while the NIC
//! may use them, one at a time ([`ops`]) or chained behind one doorbell
//! ([`batch`]), or copied into the request while posting
//! ([`inline`]), or riding on a later signaled one ([`unsignaled`]), with
//! [`deadline`]s.

pub(crate) mod batch;
pub(crate) mod deadline;
pub(crate) mod inline;
pub(crate) mod ops;
pub(crate) mod unsignaled;

//! The identity service's rules, free of I/O: what a valid client registration is,
//! which scopes each kind of principal may hold, and what goes into a trust list.

pub mod client;
pub mod issuer;
pub mod scopes;

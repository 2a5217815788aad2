//! The license service's rules, free of I/O: what a valid license is, which authorities
//! may register, how ID numbers are checked and hashed, and what a license credential
//! says.

pub mod authority;
pub mod credential;
pub mod id_number;
pub mod license;

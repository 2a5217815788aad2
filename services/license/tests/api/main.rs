//! License service tests: a real server (license and the identity service it registers
//! its key with) on an ephemeral loopback port, a real tonic client, and every test on
//! both SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod concurrency;
mod faults;
mod helpers;
mod keys;
mod lifecycle;
mod rate_limit;
mod status;
mod validation;

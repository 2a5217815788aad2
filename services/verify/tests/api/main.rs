//! The verify gateway against real identity and license services on loopback: each
//! region is identity + license on one server, each gateway its own server; the audit
//! runs on SQLite and PostgreSQL, the shared cache on a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod federation;
mod helpers;
mod http;
mod offline;
mod outcomes;
mod resilience;
mod tls;

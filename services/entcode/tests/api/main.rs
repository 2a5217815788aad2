//! API tests of the enterprise-code service against real identity and license services,
//! on SQLite with the in-process cache and on PostgreSQL with Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod codes;
mod helpers;
mod permits;
mod presentations;
mod rotation;
mod scan_page;
mod scenarios;
mod sdjwt;

//! Inspection service tests: identity, license and inspection on one real server on an
//! ephemeral loopback port, a real tonic client, a manual clock, and every test on both
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod flow;
mod helpers;
mod keys;
mod listing;
mod refusals;
mod rules;

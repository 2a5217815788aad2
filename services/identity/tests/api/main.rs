//! Identity service tests: a real server on an ephemeral loopback port, a real tonic
//! client, and every test on both SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clients;
mod helpers;
mod token_endpoint;
mod tokens;
mod trust;

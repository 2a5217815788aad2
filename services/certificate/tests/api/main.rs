//! Certificate service tests: a real server (identity, license and certificate on one
//! ephemeral loopback port), real tonic clients, every test on SQLite and PostgreSQL.
//! The license check runs for real: the certificate service fetches license
//! credentials over gRPC and verifies them against identity's trust list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod disputes;
mod helpers;
mod issuance;
mod lifecycle;

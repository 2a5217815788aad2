//! Test support for credmesh: real backends for tests, never mocks.
//!
//! Tests run against real SQLite files, a real PostgreSQL server and real Redis
//! (standalone and cluster). `make test` starts the shared servers once (see
//! `scripts/test-env.sh`) and exports their addresses; tests that must kill a
//! server start their own private instance.
//!
//! # Layout
//! - [`backend`]: SQLite or PostgreSQL, and fresh databases on either.
//! - [`grpc`]: bearer-token requests, refusal assertions, and raw gRPC calls with
//!   arbitrary bytes for malformed-input tests.
//! - [`postgres`]: a fresh database per test on the shared server.
//! - [`sqlite`]: a fresh SQLite file per test.
//! - [`redis`]: the shared standalone and cluster addresses, and private servers.

pub mod backend;
pub mod grpc;
pub mod postgres;
pub mod redis;
pub mod sqlite;

pub use backend::{BOTH, Backend, Databases};
pub use grpc::{assert_status, with_token};

/// Where every test clock starts: Monday 2026-09-21 22:13:20 CST, in seconds since the
/// epoch.
pub const T0: i64 = 1_790_000_000;

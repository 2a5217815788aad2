//! A fresh PostgreSQL database per test on the shared test server.
//!
//! `make test` starts one throw-away server (`scripts/test-env.sh`) and exports its
//! address as `CREDMESH_TEST_POSTGRES_URL`. Each test creates its own database there,
//! so tests run in parallel without seeing each other's rows; the server and all its
//! databases are discarded when the run ends.

use anyhow::Context as _;
use sqlx::Connection as _;

/// The environment variable naming the shared test server.
pub const ENV: &str = "CREDMESH_TEST_POSTGRES_URL";

/// The shared server's URL (without a database name), e.g.
/// `postgres://postgres@127.0.0.1:55432`.
///
/// # Panics
/// When the variable is unset: the test cannot run without its real backend, and
/// skipping it would pass without testing anything.
pub fn server_url() -> String {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
        _ => panic!(
            "{ENV} is not set: run the tests with `make test`, or start the test servers \
             with `scripts/test-env.sh start` and source `target/test-env/env`"
        ),
    }
}

/// Creates a new, empty database on the shared server and returns its URL.
pub async fn fresh_database() -> anyhow::Result<String> {
    let server = server_url();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .with_context(|| format!("connecting to the test postgres server at {server}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .context("creating a test database")?;
    admin.close().await.ok();
    Ok(format!("{server}/{name}"))
}

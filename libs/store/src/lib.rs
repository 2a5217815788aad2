//! Storage shared by every credmesh service: one `DATABASE_URL` gives a SQLite or a
//! PostgreSQL pool, and the pieces every service needs on top of it.
//!
//! Each service owns its schema (database per service) behind a repository trait with
//! two implementations, SQLite and PostgreSQL. sqlx's `Any` driver cannot carry both
//! (no TIMESTAMPTZ, no `query!`), so a service writes its repository body once inside a
//! macro and instantiates it for both backends; the SQL text is shared because sqlx
//! accepts `$1` parameters on SQLite too. Where dialects differ, the macro passes the
//! difference in (see [`dialect`]).
//!
//! # Layout
//! - [`Db`]: the pool, chosen from the URL; migrations ([`ServiceMigrations`]).
//! - [`idempotency`]: retried mutations answer the first result, never act twice.
//! - [`audit`]: the append-only audit log (who, when, what), written in the same
//!   transaction as the change it records.
//! - [`page`]: opaque page tokens for list RPCs.
//! - [`fault`]: which database failures are transient (answered `UNAVAILABLE`).
//! - [`requests`]: the idempotency key, page tokens and replays of a gRPC request, as
//!   statuses (one copy for every service's adapter).
//! - [`status_bits`]: reading the status-list tables every issuing service keeps.

pub mod audit;
pub mod dialect;
pub mod fault;
pub mod idempotency;
pub mod page;
pub mod requests;
pub mod status_bits;

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

pub use sqlx;

/// Which database a pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in WAL mode: `credmesh dev` and single-machine installs.
    Sqlite,
    /// A PostgreSQL server: production.
    Postgres,
}

impl Backend {
    /// The name used in logs and metrics (`db.system`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// A PostgreSQL connection idle in the pool at least this long is pinged before it is
/// handed out (see [`Db::connect`]); one in steady use is not.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pool settings; every value has a default that suits a small service.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Maximum pooled connections (default 10; SQLite serialises writes anyway).
    pub max_connections: u32,
    /// How long to wait for a connection or a lock before failing (default 5 s).
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A service's migrations for both backends, from `sqlx::migrate!`.
///
/// Service migrations are numbered from 100; the common tables of this crate use
/// versions below 100. Both sets live in one `_sqlx_migrations` table, so each migrator
/// ignores the other's versions.
#[derive(Debug)]
pub struct ServiceMigrations {
    /// `sqlx::migrate!("./migrations/sqlite")`.
    pub sqlite: Migrator,
    /// `sqlx::migrate!("./migrations/postgres")`.
    pub postgres: Migrator,
}

/// A connection pool to one service's database.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

impl Db {
    /// Connects to `url`: `sqlite:PATH` / `sqlite://PATH` (the file is created, WAL
    /// journal) or `postgres://…` / `postgresql://…`.
    pub async fn connect(url: &str, options: &DbOptions) -> anyhow::Result<Db> {
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("invalid sqlite url {}", redact_url(url)))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(options.acquire_timeout)
                .foreign_keys(true);
            // No ping before a connection is handed out: a SQLite connection is a file
            // handle in this process and cannot have been dropped by a server, and the
            // ping is one more round trip to the connection's worker thread on every
            // acquire, which a one-statement write paid twice. sqlx still tests a connection
            // when it is returned, and a broken one fails its statement like any error.
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .with_context(|| format!("opening sqlite database {}", redact_url(url)))?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)
                .with_context(|| format!("invalid postgres url {}", redact_url(url)))?;
            // A ping before a connection is handed out only when it sat idle a while.
            // sqlx pings every connection when it comes back to the pool, so one in
            // steady use was checked moments ago; pinging again on every acquire was one
            // more round trip to the server per transaction. One idle for longer may have
            // been dropped by the server, a proxy or a restart: it is pinged, and if that
            // fails it is closed and acquire takes another or opens a new one.
            let pool = PgPoolOptions::new()
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_WHEN_IDLE_FOR {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .with_context(|| format!("connecting to postgres {}", redact_url(url)))?;
            Ok(Db::Postgres(pool))
        } else {
            anyhow::bail!(
                "unsupported database url {}: use sqlite:PATH or postgres://…",
                redact_url(url)
            )
        }
    }

    /// The backend of this pool.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the common tables and then the service's migrations.
    pub async fn migrate(&self, service: ServiceMigrations) -> anyhow::Result<()> {
        let ServiceMigrations {
            sqlite: mut own_sqlite,
            postgres: mut own_postgres,
        } = service;
        match self {
            Db::Sqlite(pool) => {
                let mut common = sqlx::migrate!("./migrations/sqlite");
                common.set_ignore_missing(true);
                common.run(pool).await.context("common sqlite migrations")?;
                own_sqlite.set_ignore_missing(true);
                own_sqlite
                    .run(pool)
                    .await
                    .context("service sqlite migrations")?;
            }
            Db::Postgres(pool) => {
                let mut common = sqlx::migrate!("./migrations/postgres");
                common.set_ignore_missing(true);
                common
                    .run(pool)
                    .await
                    .context("common postgres migrations")?;
                own_postgres.set_ignore_missing(true);
                own_postgres
                    .run(pool)
                    .await
                    .context("service postgres migrations")?;
            }
        }
        Ok(())
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .context("database ping")
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Starts a write transaction on SQLite with `BEGIN IMMEDIATE`, taking the write lock
/// up front: a deferred transaction that reads and then writes can fail with
/// `SQLITE_BUSY` when another writer got in between, which would surface as a spurious
/// error under concurrent requests.
pub async fn begin_sqlite_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Starts a PostgreSQL transaction (read committed; the repository takes row locks
/// where it reads before it writes). The counterpart of [`begin_sqlite_write`], so a
/// repository macro can name one `begin` path per backend.
pub async fn begin_postgres_write(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin().await
}

/// Whether an error is a unique-constraint violation (a concurrent insert won).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// A URL with its password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The OpenTelemetry `db.system.name` of a backend named as the stores' macros name it
/// (`sqlite`, `postgres`): `sqlite` or `postgresql`. Store methods put it on their spans.
pub fn system_name(dialect: &str) -> &'static str {
    match dialect {
        "postgres" | "postgresql" => "postgresql",
        _ => "sqlite",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}

//! A service's SQLite database: a pool of connections that read, and one connection
//! that writes.
//!
//! SQLite lets one connection write at a time, so several pooled connections taking
//! turns at writing gain nothing and lose three ways:
//! - a writer that finds the lock taken sleeps in SQLite's busy handler (1, 2, 5, 10 ms
//!   …) instead of being woken when the lock is free;
//! - a connection whose database another connection has written since it last ran
//!   throws its page cache away and reads the pages again;
//! - the pool pings every connection handed back to it, one more hand-off to the
//!   connection's worker thread per write.
//!
//! So every write goes through one connection kept outside the pool, behind an async
//! lock that queues writers in order (the usual one-writer pattern of SQLite servers).
//! Reads use the pool and run beside the writer, as WAL allows. A write that waits
//! longer than the acquire timeout fails with [`sqlx::Error::PoolTimedOut`], as an
//! acquire from the pool would.
//!
//! [`SqliteDatabase`] is an [`Executor`] that reads through the pool, so a repository
//! names `&db` for reads and [`SqliteDatabase::writer`] or [`SqliteDatabase::begin_write`]
//! for writes.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::Arc,
    time::Duration,
};

use futures::{future::BoxFuture, stream::BoxStream};
use sqlx::{
    ConnectOptions as _, Describe, Either, Execute, Executor, SqlStr, Sqlite, SqliteConnection,
    pool::PoolConnection,
    sqlite::{
        SqliteConnectOptions, SqlitePool, SqliteQueryResult, SqliteRow, SqliteStatement,
        SqliteTransactionManager, SqliteTypeInfo,
    },
};
use sqlx_core::transaction::TransactionManager as _;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// One service's SQLite database: the read pool and the write connection.
#[derive(Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
    writer: Arc<Writer>,
}

struct Writer {
    options: SqliteConnectOptions,
    wait: Duration,
    /// `None` until the first write, and again after the connection failed.
    conn: Arc<Mutex<Option<SqliteConnection>>>,
}

impl fmt::Debug for SqliteDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDatabase")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl SqliteDatabase {
    /// A database reading through `pool` and writing through one more connection opened
    /// with `options` at the first write; writers wait at most `wait` for their turn.
    pub(crate) fn new(pool: SqlitePool, options: SqliteConnectOptions, wait: Duration) -> Self {
        Self {
            pool,
            writer: Arc::new(Writer {
                options,
                wait,
                conn: Arc::new(Mutex::new(None)),
            }),
        }
    }

    /// The read pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A read connection from the pool.
    pub async fn acquire(&self) -> Result<PoolConnection<Sqlite>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// A transaction on a read connection, for reads that must see one snapshot.
    /// Writes go through [`Self::begin_write`].
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin().await
    }

    /// The write connection, for statements that write in autocommit (one statement,
    /// one transaction). Writers queue for it in order; hold it no longer than the
    /// write. Fails with `PoolTimedOut` after the acquire timeout, and with
    /// `PoolClosed` once the database is closed.
    pub async fn writer(&self) -> Result<SqliteWriter, sqlx::Error> {
        if self.pool.is_closed() {
            return Err(sqlx::Error::PoolClosed);
        }
        let lock = Arc::clone(&self.writer.conn).lock_owned();
        let mut guard = tokio::time::timeout(self.writer.wait, lock)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if guard.is_none() {
            *guard = Some(self.writer.options.connect().await?);
        }
        Ok(SqliteWriter { guard })
    }

    /// A write transaction on the write connection, begun with `BEGIN IMMEDIATE`. It
    /// ends with [`SqliteWrite::commit`]; dropped before, it is rolled back.
    pub async fn begin_write(&self) -> Result<SqliteWrite, sqlx::Error> {
        let mut writer = self.writer().await?;
        let begun = SqliteTransactionManager::begin(
            &mut writer,
            Some(SqlStr::from_static("BEGIN IMMEDIATE")),
        )
        .await;
        writer.keep_if_sound(begun)?;
        Ok(SqliteWrite {
            writer: Some(writer),
        })
    }

    /// Closes the pool and the write connection, waiting for a write in progress.
    pub async fn close(&self) {
        self.pool.close().await;
        let conn = self.writer.conn.lock().await.take();
        if let Some(conn) = conn
            && let Err(err) = sqlx::Connection::close(conn).await
        {
            tracing::warn!(error = %err, "closing the sqlite write connection");
        }
    }
}

/// The write connection, held by one writer at a time (see [`SqliteDatabase::writer`]).
#[derive(Debug)]
pub struct SqliteWriter {
    guard: OwnedMutexGuard<Option<SqliteConnection>>,
}

impl SqliteWriter {
    /// Passes `result` on; if it is a failure of the connection itself rather than an
    /// error SQLite answered (a crashed worker thread, an I/O error), the connection is
    /// dropped and the next writer opens a new one.
    pub fn keep_if_sound<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(err) = &result
            && !matches!(err, sqlx::Error::Database(_))
        {
            *self.guard = None;
        }
        result
    }
}

impl Deref for SqliteWriter {
    type Target = SqliteConnection;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &SqliteConnection {
        self.guard
            .as_ref()
            .expect("the write connection is open while it is held")
    }
}

impl DerefMut for SqliteWriter {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.guard
            .as_mut()
            .expect("the write connection is open while it is held")
    }
}

/// A write transaction on the write connection (see [`SqliteDatabase::begin_write`]).
/// Statements run on `&mut *tx`.
#[derive(Debug)]
pub struct SqliteWrite {
    /// `None` once committed or rolled back.
    writer: Option<SqliteWriter>,
}

impl SqliteWrite {
    /// Commits the transaction and gives the write connection to the next writer.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        let committed = SqliteTransactionManager::commit(&mut writer).await;
        if committed.is_err() && writer.guard.is_some() {
            SqliteTransactionManager::start_rollback(&mut writer);
        }
        writer.keep_if_sound(committed)
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        let rolled_back = SqliteTransactionManager::rollback(&mut writer).await;
        writer.keep_if_sound(rolled_back)
    }
}

impl Drop for SqliteWrite {
    fn drop(&mut self) {
        if let Some(writer) = &mut self.writer
            && writer.guard.is_some()
        {
            // Queued on the connection's worker thread before the lock is released, so
            // the next writer finds the transaction rolled back.
            SqliteTransactionManager::start_rollback(writer);
        }
    }
}

impl Deref for SqliteWrite {
    type Target = SqliteConnection;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &SqliteConnection {
        self.writer.as_ref().expect("an open transaction")
    }
}

impl DerefMut for SqliteWrite {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.writer.as_mut().expect("an open transaction")
    }
}

/// Reads through the pool, like `&SqlitePool`.
impl<'p> Executor<'p> for &SqliteDatabase {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        self.pool.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        self.pool.fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

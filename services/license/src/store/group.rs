//! Group commit on SQLite: the establishments of concurrent callers, each one statement,
//! written in one transaction.
//!
//! SQLite has one writer at a time. With one autocommit statement per establishment,
//! concurrent callers queue for the write lock (sleeping in SQLite's busy handler
//! between tries), and every commit writes each page it touched to the WAL again: the
//! b-tree leaves that consecutive establishments share, the database header. Here one
//! worker takes whatever establishments are pending and runs them in one
//! `BEGIN IMMEDIATE … COMMIT`:
//!
//! - **Each statement stays atomic by itself.** A statement refused by a constraint (a
//!   code already registered, an idempotency key used, one current version) is undone
//!   alone by SQLite (all of credmesh's constraints and triggers abort the statement,
//!   not the transaction), and the others of the batch go on. Its caller gets its own
//!   error and takes the usual path (replay, conflict or "registered").
//! - **Answers only after the commit.** A caller told "written" is committed. A failed
//!   commit, or any failure other than a constraint (I/O, a full disk, the busy
//!   timeout), rolls the whole batch back and fails every statement of it: nothing of
//!   the batch was written, and retrying with the same idempotency key is safe.
//! - **Nothing added when idle.** When no write is running, an establishment runs by
//!   itself in autocommit in its caller's task, as it did before: no hand-over to
//!   another task, no transaction statements around it. Only establishments that
//!   arrive while a write is running queue for the worker, which takes them as batches
//!   ([`credmesh_runtime::coalesce`]). The direct writes and the worker's batches take
//!   turns on one async lock, so they wait for each other in a queue rather than in
//!   SQLite's busy handler, which sleeps a millisecond and more between tries.
//! - **One connection of its own.** The lock holds the connection every establishment
//!   is written on, opened on first use with the pool's options and kept. SQLite drops
//!   a connection's whole page cache whenever another connection has written, and the
//!   pool hands out its idle connections in turn, so a write through the pool nearly
//!   always found a cold cache and read the b-tree pages of its six tables back from
//!   the WAL (a profile of the registrations bench: a sixth of the worker thread's
//!   time). The connection of its own keeps them; only the service's other writes
//!   (amendments, closures, claims of serials and status entries) make it read them
//!   again. It also skips the pool's check-out, whose hand-back is a task of its own.
//!   A connection that failed other than with a database error (I/O, its worker
//!   thread gone) is dropped, and the next write opens a new one.
//! - **Bounded.** Past [`QUEUE`] waiting establishments a caller writes its own
//!   statement directly, as before.

use std::sync::{Arc, OnceLock};

use credmesh_runtime::coalesce::Coalescer;
use credmesh_store::sqlx::{
    self, ConnectOptions as _, Connection as _, Sqlite, SqliteConnection, SqlitePool, query::Query,
    sqlite::SqliteArguments,
};
use tracing::Instrument as _;

/// One establishment's whole write: one statement that commits by itself.
pub type Write = Query<'static, Sqlite, SqliteArguments>;

/// The most establishments written in one transaction.
const MAX_BATCH: usize = 64;
/// The most establishments waiting for the worker.
const QUEUE: usize = 4096;

/// SQLite's primary result code for a constraint failure (`SQLITE_CONSTRAINT`): it ends
/// the statement, not the transaction.
const SQLITE_CONSTRAINT: i32 = 19;

/// Writes establishments of concurrent callers together; see the module docs.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    pool: SqlitePool,
    /// The connection the writes take turns on, held by whichever write runs: a
    /// caller's own, or a batch of the worker's. `None` until the first write, and
    /// after a failure that may have broken it.
    writer: Arc<tokio::sync::Mutex<Option<SqliteConnection>>>,
    /// Started on first use, on the caller's runtime.
    worker: Arc<OnceLock<Coalescer<Write, Result<(), sqlx::Error>>>>,
}

impl GroupCommit {
    /// Group commit on `pool`'s database.
    pub fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            writer: Arc::default(),
            worker: Arc::default(),
        }
    }

    /// Runs `write`, committed by the time this answers: alone, or in one transaction
    /// with the writes of other callers pending at the same moment.
    pub async fn write(&self, write: Write) -> Result<(), sqlx::Error> {
        if self.pool.is_closed() {
            return Err(sqlx::Error::PoolClosed);
        }
        if let Ok(mut writer) = self.writer.try_lock() {
            // Nothing else is writing: write it now, alone.
            return alone(&self.pool, &mut writer, write).await;
        }
        let worker = self.worker.get_or_init(|| {
            let (pool, writer) = (self.pool.clone(), self.writer.clone());
            Coalescer::start(1, MAX_BATCH, QUEUE, move |writes: Vec<Write>| {
                let (pool, writer) = (pool.clone(), writer.clone());
                // The batch's statements are traced under a span of its own: the
                // callers' spans are in other tasks, one per establishment.
                let span = tracing::info_span!(
                    "group_commit",
                    otel.kind = "client",
                    db.system.name = "sqlite",
                    db.operation.batch.size = writes.len(),
                );
                async move {
                    let mut writer = writer.lock().await;
                    commit_together(&pool, &mut writer, writes).await
                }
                .instrument(span)
            })
        });
        match worker.submit_or_return(write).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(sqlx::Error::WorkerCrashed),
            // The queue is full: write it directly, on a connection of the pool.
            Err(write) => write.execute(&self.pool).await.map(drop),
        }
    }
}

/// Runs `writes` on the writer in one transaction (a lone one in autocommit); each
/// one's result.
async fn commit_together(
    pool: &SqlitePool,
    writer: &mut Option<SqliteConnection>,
    writes: Vec<Write>,
) -> Vec<Result<(), sqlx::Error>> {
    let writes = match <[Write; 1]>::try_from(writes) {
        Ok([write]) => return vec![alone(pool, writer, write).await],
        Err(writes) => writes,
    };
    let n = writes.len();
    let conn = match connection(pool, writer).await {
        Ok(conn) => conn,
        Err(e) => return failed_batch(n, &e),
    };
    let (answers, broken) = in_one_transaction(conn, writes).await;
    if broken {
        *writer = None;
    }
    answers
}

/// `writes` in one `BEGIN IMMEDIATE … COMMIT` on `conn`: each one's result, and whether
/// the error that stopped the batch may have broken the connection ([`is_broken`]).
async fn in_one_transaction(
    conn: &mut SqliteConnection,
    writes: Vec<Write>,
) -> (Vec<Result<(), sqlx::Error>>, bool) {
    let n = writes.len();
    let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return (failed_batch(n, &e), is_broken(&e)),
    };
    let mut results = Vec::with_capacity(n);
    for write in writes {
        match write.execute(&mut *tx).await {
            Ok(_) => results.push(Ok(())),
            Err(e) if ends_statement_only(&e) => results.push(Err(e)),
            Err(e) => {
                // The transaction may be gone with it: nothing of the batch stays.
                let _ = tx.rollback().await;
                let broken = is_broken(&e);
                let mut answers = failed_batch(n, &e);
                answers[results.len()] = Err(e);
                return (answers, broken);
            }
        }
    }
    match tx.commit().await {
        Ok(()) => (results, false),
        Err(e) => (failed_batch(n, &e), is_broken(&e)),
    }
}

/// Runs `write` by itself on the writer, in autocommit.
async fn alone(
    pool: &SqlitePool,
    writer: &mut Option<SqliteConnection>,
    write: Write,
) -> Result<(), sqlx::Error> {
    let result = match connection(pool, writer).await {
        Ok(conn) => write.execute(conn).await.map(drop),
        Err(e) => Err(e),
    };
    if result.as_ref().is_err_and(is_broken) {
        *writer = None;
    }
    result
}

/// The writer, opened with the pool's options if it is not open.
async fn connection<'c>(
    pool: &SqlitePool,
    writer: &'c mut Option<SqliteConnection>,
) -> Result<&'c mut SqliteConnection, sqlx::Error> {
    match writer {
        Some(conn) => Ok(conn),
        None => Ok(writer.insert(pool.connect_options().connect().await?)),
    }
}

/// Whether `err` may have broken the connection it came from: anything but an error
/// SQLite answered (a constraint, `SQLITE_BUSY`, a full disk), which leaves the
/// connection as it was. The writer is dropped after such an error, and the next write
/// opens a new one.
fn is_broken(err: &sqlx::Error) -> bool {
    !matches!(err, sqlx::Error::Database(_))
}

/// Whether `err` undid only the statement that met it: a constraint failure.
fn ends_statement_only(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_CONSTRAINT),
        _ => false,
    }
}

/// `n` failures for a batch that `err` stopped: nothing of it was written.
fn failed_batch(n: usize, err: &sqlx::Error) -> Vec<Result<(), sqlx::Error>> {
    (0..n)
        .map(|_| {
            Err(sqlx::Error::Io(std::io::Error::other(format!(
                "written in one transaction with other establishments, which was not \
                 committed: {err}"
            ))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use credmesh_store::{Db, DbOptions};

    use super::*;

    /// A fresh SQLite database with one table: `k` unique, `v` not negative.
    async fn database() -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/group.db", dir.path().display());
        let Db::Sqlite(pool) = Db::connect(&url, &DbOptions::default()).await.unwrap() else {
            unreachable!("a sqlite url")
        };
        sqlx::raw_sql("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0))")
            .execute(&pool)
            .await
            .unwrap();
        (dir, pool)
    }

    fn insert(k: &str, v: i64) -> Write {
        sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind(k.to_owned())
            .bind(v)
    }

    async fn keys(pool: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    /// Writes submitted together (they queue while the worker takes the first).
    async fn together(group: &GroupCommit, writes: Vec<Write>) -> Vec<Result<(), sqlx::Error>> {
        futures::future::join_all(writes.into_iter().map(|w| group.write(w))).await
    }

    #[tokio::test]
    async fn a_refused_write_is_undone_alone_and_the_others_are_committed() {
        let (_dir, pool) = database().await;
        let group = GroupCommit::new(pool.clone());
        group.write(insert("a", 1)).await.unwrap();
        let mut writes: Vec<Write> = (0..20).map(|i| insert(&format!("k{i:02}"), i)).collect();
        writes.insert(5, insert("a", 2)); // registered already
        writes.insert(9, insert("k03", 3)); // registered earlier in the same batch
        writes.insert(12, insert("neg", -1)); // refused by the check
        let results = together(&group, writes).await;
        for (i, result) in results.iter().enumerate() {
            match i {
                5 | 9 => assert!(
                    credmesh_store::is_unique_violation(result.as_ref().unwrap_err()),
                    "write {i}: {result:?}"
                ),
                12 => assert!(result.is_err(), "write {i} broke the check"),
                _ => assert!(result.is_ok(), "write {i}: {result:?}"),
            }
        }
        let mut expected: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
        expected.insert(0, "a".into());
        assert_eq!(keys(&pool).await, expected);
    }

    #[tokio::test]
    async fn writes_keep_one_connection_of_their_own_and_stop_with_the_pool() {
        let (_dir, pool) = database().await;
        let group = GroupCommit::new(pool.clone());
        group.write(insert("a", 1)).await.unwrap();
        // A temporary table lives as long as the connection that made it.
        async fn marked(group: &GroupCommit) -> bool {
            let mut writer = group.writer.try_lock().expect("no write is running");
            let conn = writer.as_mut().expect("the first write opened the writer");
            sqlx::query("SELECT 1 FROM temp.marker")
                .fetch_optional(conn)
                .await
                .is_ok()
        }
        {
            let mut writer = group.writer.try_lock().unwrap();
            sqlx::query("CREATE TEMP TABLE marker (x)")
                .execute(writer.as_mut().unwrap())
                .await
                .unwrap();
        }
        assert!(marked(&group).await);
        // A refusal by a constraint leaves the connection as it was.
        assert!(group.write(insert("a", 2)).await.is_err());
        group.write(insert("b", 2)).await.unwrap();
        assert!(marked(&group).await, "the writer was kept");
        // What the writer committed, the pool's connections read.
        assert_eq!(keys(&pool).await, vec!["a".to_string(), "b".to_string()]);
        pool.close().await;
        assert!(matches!(
            group.write(insert("c", 3)).await,
            Err(sqlx::Error::PoolClosed)
        ));
    }

    #[tokio::test]
    async fn a_write_failing_otherwise_takes_its_whole_batch_back() {
        let (_dir, pool) = database().await;
        let group = GroupCommit::new(pool.clone());
        // The first write runs alone, in its caller's task; the others queue behind it
        // and go as one batch.
        let mut writes: Vec<Write> = (0..10).map(|i| insert(&format!("k{i}"), i)).collect();
        writes.insert(
            6,
            sqlx::query("INSERT INTO missing (k) VALUES ($1)").bind("x"),
        );
        let results = together(&group, writes).await;
        assert!(results[0].is_ok(), "the lone first write: {:?}", results[0]);
        let error = results[6].as_ref().unwrap_err().to_string();
        assert!(error.contains("no such table"), "{error}");
        for (i, result) in results.iter().enumerate().skip(1) {
            assert!(result.is_err(), "write {i} was reported written");
        }
        let other = results[3].as_ref().unwrap_err().to_string();
        assert!(other.contains("not committed"), "{other}");
        assert_eq!(
            keys(&pool).await,
            vec!["k0".to_string()],
            "nothing of the batch stays"
        );
        // Writing works again afterwards.
        group.write(insert("after", 1)).await.unwrap();
        assert_eq!(
            keys(&pool).await,
            vec!["after".to_string(), "k0".to_string()]
        );
    }
}

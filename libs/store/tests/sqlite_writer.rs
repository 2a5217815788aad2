//! SQLite's one write connection (`credmesh_store::sqlite`): writers queue for it in
//! order, a transaction dropped half-way is rolled back before the next writer runs, a
//! writer kept waiting past the acquire timeout fails as a pool acquire would, and a
//! closed database refuses writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use credmesh_store::{Db, DbOptions, SqliteDatabase};
use credmesh_testkit::sqlite::SqliteDb;

async fn database(file: &SqliteDb, acquire_timeout: Duration) -> (Db, SqliteDatabase) {
    let options = DbOptions {
        acquire_timeout,
        ..DbOptions::default()
    };
    let db = Db::connect(&file.url(), &options).await.unwrap();
    let Db::Sqlite(sqlite) = &db else {
        unreachable!("a sqlite url")
    };
    let sqlite = sqlite.clone();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&mut *sqlite.writer().await.unwrap())
        .await
        .unwrap();
    (db, sqlite)
}

async fn count(db: &SqliteDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_transaction_dropped_half_way_leaves_nothing_and_the_next_writer_goes_on() {
    let file = SqliteDb::new().unwrap();
    let (_db, sqlite) = database(&file, Duration::from_secs(5)).await;

    let mut tx = sqlite.begin_write().await.unwrap();
    sqlx::query("INSERT INTO t (v) VALUES ('dropped')")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);

    let mut tx = sqlite.begin_write().await.unwrap();
    sqlx::query("INSERT INTO t (v) VALUES ('kept')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let values: Vec<String> = sqlx::query_scalar("SELECT v FROM t")
        .fetch_all(&sqlite)
        .await
        .unwrap();
    assert_eq!(values, ["kept"]);
}

#[tokio::test]
async fn a_write_cancelled_while_its_transaction_is_open_is_rolled_back() {
    let file = SqliteDb::new().unwrap();
    let (_db, sqlite) = database(&file, Duration::from_secs(5)).await;

    // A request cancelled while it holds the transaction: its future is dropped between
    // two statements.
    let writer = sqlite.clone();
    let cancelled = tokio::spawn(async move {
        let mut tx = writer.begin_write().await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES ('half')")
            .execute(&mut *tx)
            .await
            .unwrap();
        std::future::pending::<()>().await;
        tx.commit().await.unwrap();
    });
    while writer_is_held(&sqlite).await.is_none() {
        tokio::task::yield_now().await;
    }
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());

    assert_eq!(
        count(&sqlite).await,
        0,
        "nothing of the cancelled write is visible"
    );
    let mut w = sqlite.writer().await.unwrap();
    sqlx::query("INSERT INTO t (v) VALUES ('next')")
        .execute(&mut *w)
        .await
        .unwrap();
    drop(w);
    assert_eq!(count(&sqlite).await, 1);
}

/// `Some(())` once the writer is held by someone else (the spawned transaction began).
async fn writer_is_held(db: &SqliteDatabase) -> Option<()> {
    match tokio::time::timeout(Duration::from_millis(1), db.writer()).await {
        Ok(Ok(_free)) => None,
        Ok(Err(err)) => panic!("{err}"),
        Err(_held) => Some(()),
    }
}

#[tokio::test]
async fn concurrent_writers_take_turns_and_every_write_lands() {
    let file = SqliteDb::new().unwrap();
    let (_db, sqlite) = database(&file, Duration::from_secs(5)).await;

    let writers: Vec<_> = (0..32)
        .map(|i| {
            let db = sqlite.clone();
            tokio::spawn(async move {
                for j in 0..10 {
                    let mut tx = db.begin_write().await.unwrap();
                    sqlx::query("INSERT INTO t (v) VALUES ($1)")
                        .bind(format!("{i}-{j}"))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(count(&sqlite).await, 320);
}

#[tokio::test]
async fn a_writer_kept_waiting_past_the_acquire_timeout_fails_as_timed_out() {
    let file = SqliteDb::new().unwrap();
    let (_db, sqlite) = database(&file, Duration::from_millis(100)).await;

    let held = sqlite.begin_write().await.unwrap();
    let err = sqlite.begin_write().await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    held.commit().await.unwrap();
    sqlite.begin_write().await.unwrap().commit().await.unwrap();
}

#[tokio::test]
async fn a_closed_database_refuses_writes() {
    let file = SqliteDb::new().unwrap();
    let (db, sqlite) = database(&file, Duration::from_secs(5)).await;

    db.close().await;
    let err = sqlite.writer().await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolClosed), "{err:?}");
}

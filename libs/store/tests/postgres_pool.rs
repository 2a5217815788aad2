//! The PostgreSQL pool hands out only live connections: one the server ended while it sat
//! idle is pinged, found dead and replaced, so the next caller never sees the failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use credmesh_store::{Db, DbOptions, PING_WHEN_IDLE_FOR};
use sqlx::Connection as _;

#[tokio::test]
async fn a_connection_ended_while_idle_is_replaced_not_handed_out() {
    let url = credmesh_testkit::postgres::fresh_database().await.unwrap();
    let options = DbOptions {
        max_connections: 1,
        ..DbOptions::default()
    };
    let db = Db::connect(&url, &options).await.unwrap();
    let Db::Postgres(pool) = &db else {
        unreachable!("a postgres url")
    };
    let pid = |pool| async move {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(pool)
            .await
    };
    let before = pid(pool).await.unwrap();

    // The server ends the pooled connection behind the pool's back (as a restart, an
    // idle timeout or a proxy would), and it sits idle past the ping threshold.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(ended);
    tokio::time::sleep(PING_WHEN_IDLE_FOR + std::time::Duration::from_millis(300)).await;

    // The next caller gets a working connection, a new one.
    let after = pid(pool).await.expect("a live connection");
    assert_ne!(before, after);
    admin.close().await.ok();
}

//! Upgrading a SQLite database written by an older release: migration 0002 rebuilds the
//! common tables (audit_log without AUTOINCREMENT, idempotency WITHOUT ROWID) and keeps
//! every row, the audit log's append-only rule, and the triggers services wrote against
//! the old tables (license's establishment view writes both by name).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use credmesh_store::{Db, DbOptions, ServiceMigrations};
use credmesh_testkit::sqlite::SqliteDb;
use sqlx::{Row as _, migrate::Migrator};

/// A service trigger of the kind license has: one insert into a view writes an
/// idempotency record and an audit entry.
const SERVICE_TRIGGER: &str = "
CREATE VIEW writes AS SELECT '' AS k, '' AS t WHERE 0;
CREATE TRIGGER writes_write INSTEAD OF INSERT ON writes
BEGIN
    INSERT INTO idempotency (scope, key, request_hash, response, created_at)
        VALUES ('svc', NEW.k, X'00', X'01', 0);
    INSERT INTO audit_log (at, actor, actor_kind, action, target, detail)
        VALUES (0, 'dept', 'client', 'svc.write', NEW.t, '');
END;";

fn no_service_migrations() -> ServiceMigrations {
    ServiceMigrations {
        sqlite: Migrator::DEFAULT,
        postgres: Migrator::DEFAULT,
    }
}

#[tokio::test]
async fn the_rebuilt_common_tables_keep_rows_rules_and_service_triggers() {
    let file = SqliteDb::new().unwrap();
    let db = Db::connect(&file.url(), &DbOptions::default())
        .await
        .unwrap();
    let Db::Sqlite(pool) = &db else {
        unreachable!("a sqlite url")
    };

    // The database as the release before 0002 left it, with a service's trigger and rows.
    let mut old = sqlx::migrate!("./migrations/sqlite");
    old.migrations = Cow::Owned(
        old.migrations
            .iter()
            .filter(|m| m.version < 2)
            .cloned()
            .collect(),
    );
    old.run(pool).await.unwrap();
    sqlx::raw_sql(SERVICE_TRIGGER).execute(pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO writes VALUES ('k1', 't1'); INSERT INTO writes VALUES ('k2', 't2');",
    )
    .execute(pool)
    .await
    .unwrap();

    db.migrate(no_service_migrations()).await.unwrap();

    let shape: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_schema WHERE name IN ('audit_log', 'idempotency')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name, sql) in &shape {
        match name.as_str() {
            "audit_log" => assert!(!sql.contains("AUTOINCREMENT"), "{sql}"),
            _ => assert!(sql.contains("WITHOUT ROWID"), "{sql}"),
        }
    }
    assert_eq!(shape.len(), 2);

    // The service's trigger still writes both tables, after the rows it wrote before.
    sqlx::query("INSERT INTO writes VALUES ('k3', 't3')")
        .execute(pool)
        .await
        .unwrap();
    let audit: Vec<(i64, String)> = sqlx::query_as("SELECT id, target FROM audit_log ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(
        audit,
        vec![(1, "t1".into()), (2, "t2".into()), (3, "t3".into())]
    );
    let keys: Vec<String> = sqlx::query("SELECT key FROM idempotency ORDER BY key")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["k1", "k2", "k3"]);

    // A used key is still refused, and the audit log is still append-only.
    let again = sqlx::query("INSERT INTO writes VALUES ('k3', 't4')")
        .execute(pool)
        .await;
    assert!(again.is_err(), "a used idempotency key was accepted");
    for change in ["UPDATE audit_log SET detail = 'x'", "DELETE FROM audit_log"] {
        let refused = sqlx::query(change).execute(pool).await.unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{change}: {refused}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(count, 3, "the refused insert left an audit entry behind");

    // Migrating again changes nothing.
    db.migrate(no_service_migrations()).await.unwrap();
}

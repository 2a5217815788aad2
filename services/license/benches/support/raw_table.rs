//! The table of the raw INSERT baselines that license issuance is measured beside, in
//! `registrations.rs` here and in the load generator (`tests/benches/load.rs`).

use credmesh_store::{Db, sqlx};

/// The storage of `license_versions` on PostgreSQL (license migration 0104): rows up to
/// a page stay whole, neither compressed nor moved to the TOAST table. The baseline's
/// table has it too, so the reference is the same write minus the service's work.
const POSTGRES_STORAGE: &str = "WITH (toast_tuple_target = 8160)";

/// Creates the baseline's table from `ddl`, a `CREATE TABLE` in PostgreSQL's types: on
/// SQLite with `BLOB` for `BYTEA`, on PostgreSQL with the storage of `license_versions`.
pub async fn create(db: &Db, ddl: &str) {
    match db {
        Db::Sqlite(p) => {
            let ddl = ddl.replace("BYTEA", "BLOB");
            sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                .execute(p)
                .await
                .map(drop)
        }
        Db::Postgres(p) => {
            let ddl = format!("{ddl} {POSTGRES_STORAGE}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                .execute(p)
                .await
                .map(drop)
        }
    }
    .expect("the raw INSERT baseline's table is created");
}

//! Every service's two schemas, SQLite and PostgreSQL, have the same tables and columns,
//! the same primary keys, and agree on which columns may hold NULL and on what kind of
//! value each holds (integer, text, bytes, boolean).
//!
//! Each service writes its schema twice, once per dialect, and the store's code assumes
//! they are the same. A column NOT NULL on one side only lets a bug write a row there
//! that the other backend refuses (a typo once made seven SQLite columns of the
//! inspection service nullable: `INTEGERNOT NULL` is the type `INTEGERNOT`). Views,
//! indexes and triggers are not compared: those differ by design (a view on SQLite where
//! PostgreSQL uses a statement, a trigger in place of a partial index). On SQLite a
//! primary-key column counts as NOT NULL, as it is on PostgreSQL: SQLite would accept a
//! NULL there in a rowid table, a quirk of every such table, not of one.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use credmesh_store::{Db, DbOptions, ServiceMigrations, sqlx};
use credmesh_testkit::{postgres, sqlite::SqliteDb};

/// A service's `migrations` function.
type Migrations = fn() -> ServiceMigrations;

/// (table, column) → (may hold NULL, kind of value, place in the primary key: 1, 2, …
/// or 0 when not in it).
type Columns = BTreeMap<(String, String), (bool, Kind, i64)>;

/// What a column holds, as far as both dialects can say the same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
    Bytes,
    Boolean,
    /// A type this test does not map; only ever equal to itself by name.
    Other,
}

/// The kind of a SQLite declared type.
fn sqlite_kind(declared: &str) -> Kind {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "BIGINT" => Kind::Integer,
        "TEXT" => Kind::Text,
        "BLOB" => Kind::Bytes,
        "BOOLEAN" => Kind::Boolean,
        _ => Kind::Other,
    }
}

/// The kind of a PostgreSQL `information_schema` data type.
fn postgres_kind(data_type: &str) -> Kind {
    match data_type {
        "integer" | "bigint" | "smallint" => Kind::Integer,
        "text" | "character varying" => Kind::Text,
        "bytea" => Kind::Bytes,
        "boolean" => Kind::Boolean,
        _ => Kind::Other,
    }
}

async fn sqlite_columns(db: &Db) -> Columns {
    let Db::Sqlite(pool) = db else {
        unreachable!("a SQLite URL gives a SQLite pool")
    };
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT t.name, c.name, c.type, c.\"notnull\", c.pk \
         FROM sqlite_schema t, pragma_table_info(t.name) c \
         WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
           AND t.name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(table, column, declared, not_null, pk)| {
            let nullable = not_null == 0 && pk == 0;
            ((table, column), (nullable, sqlite_kind(&declared), pk))
        })
        .collect()
}

async fn postgres_columns(db: &Db) -> Columns {
    let Db::Postgres(pool) = db else {
        unreachable!("a PostgreSQL URL gives a PostgreSQL pool")
    };
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.is_nullable::text, \
                c.data_type::text, COALESCE(k.ordinal_position, 0)::bigint \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         LEFT JOIN information_schema.table_constraints p \
           ON p.table_schema = c.table_schema AND p.table_name = c.table_name \
          AND p.constraint_type = 'PRIMARY KEY' \
         LEFT JOIN information_schema.key_column_usage k \
           ON k.constraint_schema = p.constraint_schema \
          AND k.constraint_name = p.constraint_name AND k.column_name = c.column_name \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(table, column, nullable, data_type, pk)| {
            let kind = postgres_kind(&data_type);
            ((table, column), (nullable == "YES", kind, pk))
        })
        .collect()
}

async fn migrated(url: &str, migrations: ServiceMigrations) -> Db {
    let db = Db::connect(url, &DbOptions::default()).await.unwrap();
    db.migrate(migrations).await.unwrap();
    db
}

#[tokio::test]
async fn sqlite_and_postgres_schemas_agree_on_columns_keys_nullability_and_kinds() {
    let services: [(&str, Migrations); 6] = [
        ("identity", credmesh_identity::migrations),
        ("license", credmesh_license::migrations),
        ("entcode", credmesh_entcode::migrations),
        ("certificate", credmesh_certificate::migrations),
        ("inspection", credmesh_inspection::migrations),
        ("verify", credmesh_verify::migrations),
    ];
    let mut differences = Vec::new();
    let mut compared = 0;
    for (service, migrations) in services {
        let file = SqliteDb::new().unwrap();
        let lite = sqlite_columns(&migrated(&file.url(), migrations()).await).await;
        let pg_url = postgres::fresh_database().await.unwrap();
        let pg = postgres_columns(&migrated(&pg_url, migrations()).await).await;
        for (table, column) in lite.keys().filter(|key| !pg.contains_key(*key)) {
            differences.push(format!("{service}: {table}.{column}: on SQLite only"));
        }
        for (key, &(pg_nullable, pg_kind, pg_pk)) in &pg {
            let Some(&(lite_nullable, lite_kind, lite_pk)) = lite.get(key) else {
                differences.push(format!(
                    "{service}: {}.{}: on PostgreSQL only",
                    key.0, key.1
                ));
                continue;
            };
            compared += 1;
            let (table, column) = key;
            if lite_nullable != pg_nullable {
                let side = |nullable: bool| if nullable { "NULL allowed" } else { "NOT NULL" };
                differences.push(format!(
                    "{service}: {table}.{column}: SQLite {}, PostgreSQL {}",
                    side(lite_nullable),
                    side(pg_nullable)
                ));
            }
            if lite_pk != pg_pk {
                differences.push(format!(
                    "{service}: {table}.{column}: primary-key place {lite_pk} on SQLite, {pg_pk} on PostgreSQL (0: not in it)"
                ));
            }
            if lite_kind != pg_kind || lite_kind == Kind::Other {
                differences.push(format!(
                    "{service}: {table}.{column}: SQLite holds {lite_kind:?}, PostgreSQL {pg_kind:?}"
                ));
            }
        }
    }
    // The comparison saw the schemas, not two empty sets.
    assert!(compared > 100, "only {compared} columns compared");
    assert!(
        differences.is_empty(),
        "the dialects disagree:\n{}",
        differences.join("\n")
    );
}

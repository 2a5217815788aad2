//! The two storage backends every service test runs on, and fresh databases on either.

use crate::sqlite::SqliteDb;

/// Where a test's services keep their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file per database (and the in-process cache where one is used).
    Sqlite,
    /// A fresh database per service on the shared PostgreSQL server (and Redis).
    Postgres,
}

/// Both backends, for tests that run the same story on each.
pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The fresh databases of one test. The SQLite files live until this is dropped; the
/// PostgreSQL databases are left on the shared server, which `make test` throws away.
#[derive(Debug, Default)]
pub struct Databases {
    sqlite: Vec<SqliteDb>,
}

impl Databases {
    pub fn new() -> Databases {
        Databases::default()
    }

    /// The `DATABASE_URL` of a new empty database on `backend`.
    pub async fn fresh(&mut self, backend: Backend) -> String {
        match backend {
            Backend::Sqlite => {
                let db = SqliteDb::new().expect("a temporary directory for a SQLite file");
                let url = db.url();
                self.sqlite.push(db);
                url
            }
            Backend::Postgres => crate::postgres::fresh_database()
                .await
                .expect("a fresh database on the test PostgreSQL server (make test starts it)"),
        }
    }
}

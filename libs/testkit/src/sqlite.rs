//! A fresh SQLite database file per test, removed with its directory on drop.

/// A throw-away SQLite database; keep it alive for the test's duration.
#[derive(Debug)]
pub struct SqliteDb {
    dir: tempfile::TempDir,
}

impl SqliteDb {
    /// A new empty database in its own temporary directory.
    pub fn new() -> anyhow::Result<SqliteDb> {
        Ok(SqliteDb {
            dir: tempfile::tempdir()?,
        })
    }

    /// The `DATABASE_URL` of the database (the file is created on first connect).
    pub fn url(&self) -> String {
        format!("sqlite://{}/test.db", self.dir.path().display())
    }
}

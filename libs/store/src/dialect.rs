//! The few places where SQLite and PostgreSQL SQL differ, as literal fragments a
//! service's repository macro splices in with `concat!` (sqlx wants `'static` SQL).
//!
//! Example: `sqlx::query(concat!("SELECT … WHERE id = $1", for_update!($dialect)))`.

/// `FOR UPDATE` row lock on PostgreSQL; nothing on SQLite, whose write transactions
/// (`BEGIN IMMEDIATE`) already hold the database write lock.
#[macro_export]
macro_rules! for_update {
    (sqlite) => {
        ""
    };
    (postgres) => {
        " FOR UPDATE"
    };
}

//! The append-only audit log: who did what to which target, when, in which trace.
//!
//! An entry is written on the same connection and transaction as the change it records,
//! so a change without its audit entry cannot be committed. Triggers in the common
//! migrations refuse UPDATE and DELETE on the table, on both backends.

use std::future::Future;

/// One audit entry to append.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    /// When, in Unix seconds (UTC).
    pub at: i64,
    /// The client id of the caller.
    pub actor: &'a str,
    /// The caller's principal kind (`department`, `operator`, …).
    pub actor_kind: &'a str,
    /// What was done, `<service>.<verb>` (for example `identity.register_client`).
    pub action: &'a str,
    /// What it was done to (a client id, a key id, a USCC, a credential id).
    pub target: &'a str,
    /// The facts of the change as JSON. Never secrets or personal ID numbers.
    pub detail: serde_json::Value,
    /// The W3C trace id of the request, to find its trace; empty when not traced.
    pub trace_id: &'a str,
}

/// A stored audit entry.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    /// Increasing sequence number.
    pub id: i64,
    /// When, in Unix seconds (UTC).
    pub at: i64,
    /// The client id of the caller.
    pub actor: String,
    /// The caller's principal kind.
    pub actor_kind: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// The facts, as JSON text.
    pub detail: String,
    /// The trace id, or empty.
    pub trace_id: String,
}

/// Appending to and reading the audit log on a connection.
pub trait AuditLog {
    /// Appends an entry; returns its sequence number.
    fn append(
        &mut self,
        entry: &AuditEntry<'_>,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    /// The entries for `target` after sequence `after`, oldest first, at most `limit`.
    fn history(
        &mut self,
        target: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, sqlx::Error>> + Send;
}

macro_rules! impl_audit_log {
    ($conn:ty) => {
        impl AuditLog for $conn {
            async fn append(&mut self, entry: &AuditEntry<'_>) -> Result<i64, sqlx::Error> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO audit_log (at, actor, actor_kind, action, target, detail, trace_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(entry.at)
                .bind(entry.actor)
                .bind(entry.actor_kind)
                .bind(entry.action)
                .bind(entry.target)
                .bind(entry.detail.to_string())
                .bind(entry.trace_id)
                .fetch_one(&mut *self)
                .await?;
                Ok(id)
            }

            async fn history(
                &mut self,
                target: &str,
                after: i64,
                limit: u32,
            ) -> Result<Vec<AuditRecord>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT id, at, actor, actor_kind, action, target, detail, trace_id \
                     FROM audit_log WHERE target = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(target)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *self)
                .await
            }
        }
    };
}

impl_audit_log!(sqlx::SqliteConnection);
impl_audit_log!(sqlx::PgConnection);

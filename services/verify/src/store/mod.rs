//! The verify gateway's repository: the per-partner audit of what was verified, one
//! trait with a SQLite and a PostgreSQL implementation generated from one body.

use std::sync::Arc;

use async_trait::async_trait;
use credmesh_store::{
    Db,
    sqlx::{self, PgPool, SqlitePool},
};

/// One audited verification: who asked, about which credential, what was answered.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    /// The partner's client id.
    pub client_id: String,
    /// The credential id, empty when the input was not a verifiable credential.
    pub credential_id: String,
    /// The outcome name ("valid", "revoked", …).
    pub outcome: String,
    /// The stable reason.
    pub reason: String,
    /// The issuer, empty when unknown.
    pub issuer: String,
    /// When it was verified, Unix seconds.
    pub verified_at: i64,
    /// The credential kind's name ("business_license", …), empty when unknown.
    pub kind: String,
    /// How many identical verifications the row stands for (at least 1): see
    /// [`collapse`].
    #[sqlx(rename = "verifications")]
    pub count: i64,
}

impl AuditRow {
    /// Everything the row records but its count.
    #[allow(clippy::type_complexity)]
    fn key(&self) -> (i64, &str, &str, &str, &str, &str, &str) {
        (
            self.verified_at,
            &self.client_id,
            &self.credential_id,
            &self.outcome,
            &self.reason,
            &self.issuer,
            &self.kind,
        )
    }
}

/// `rows` with identical rows (all but their counts equal: the same partner, credential,
/// kind, outcome, reason and issuer in the same second) made one, counting all; in
/// order of first appearance. Such rows cannot be told apart, so nothing is lost, and a
/// partner verifying the same credential in a loop writes a row per second, not per
/// call.
pub fn collapse(rows: Vec<AuditRow>) -> Vec<AuditRow> {
    if rows.len() < 2 {
        return rows;
    }
    // Per row: the counts of later copies added to it, or `None` for a copy.
    let mut totals: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    let mut first = std::collections::HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match first.entry(row.key()) {
            std::collections::hash_map::Entry::Occupied(at) => {
                // The first copy's total is always `Some`.
                if let Some(total) = &mut totals[*at.get()] {
                    *total += row.count;
                }
                totals.push(None);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
                totals.push(Some(row.count));
            }
        }
    }
    drop(first);
    rows.into_iter()
        .zip(totals)
        .filter_map(|(row, total)| {
            Some(AuditRow {
                count: total?,
                ..row
            })
        })
        .collect()
}

/// Which audit rows to list: every filter left empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this partner's rows; empty for every partner.
    pub client_id: String,
    /// Only rows verified at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only rows verified before this time (Unix seconds).
    pub until: Option<i64>,
    /// Only rows with this outcome name.
    pub outcome: String,
    /// Only rows with this kind name.
    pub kind: String,
    /// Only rows older than this position (the previous page's last row).
    pub before: Option<AuditCursor>,
    /// At most this many rows.
    pub limit: u32,
}

/// A row's position in the newest-first order: its time, then its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditCursor {
    /// The row's `verified_at`.
    pub verified_at: i64,
    /// The row's id (ties at one second keep insertion order).
    pub id: i64,
}

/// One listed audit row with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedAuditRow {
    /// The row.
    pub row: AuditRow,
    /// Where it sits, for the next page token.
    pub cursor: AuditCursor,
}

#[derive(sqlx::FromRow)]
struct AuditRowWithId {
    id: i64,
    #[sqlx(flatten)]
    row: AuditRow,
}

/// Everything the verify gateway stores.
#[async_trait]
pub trait VerifyStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends audit rows in one transaction.
    async fn record(&self, rows: &[AuditRow]) -> anyhow::Result<()>;
    /// A partner's most recent audit rows, newest first.
    async fn audit_for(&self, client_id: &str, limit: u32) -> anyhow::Result<Vec<AuditRow>> {
        let query = AuditQuery {
            client_id: client_id.to_owned(),
            limit,
            ..AuditQuery::default()
        };
        Ok(self
            .list_audit(&query)
            .await?
            .into_iter()
            .map(|r| r.row)
            .collect())
    }
    /// The audit rows `query` selects, newest first (by time, then id).
    async fn list_audit(&self, query: &AuditQuery) -> anyhow::Result<Vec<ListedAuditRow>>;
}

/// The store for `db`.
pub fn for_db(db: &Db) -> Arc<dyn VerifyStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteVerifyStore { pool: pool.clone() }),
        Db::Postgres(pool) => Arc::new(PgVerifyStore { pool: pool.clone() }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteVerifyStore {
    pool: SqlitePool,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgVerifyStore {
    pool: PgPool,
}

/// Audit rows written by one INSERT statement on SQLite (PostgreSQL binds arrays).
const AUDIT_ROWS_PER_INSERT: usize = 256;

macro_rules! impl_verify_store {
    ($store:ident, $dialect:tt) => {
        #[async_trait]
        impl VerifyStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), rows = rows.len()))]
            async fn record(&self, rows: &[AuditRow]) -> anyhow::Result<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                self.insert_audit(rows).await
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn list_audit(&self, q: &AuditQuery) -> anyhow::Result<Vec<ListedAuditRow>> {
                use anyhow::Context as _;
                // One statement for every combination of filters: an empty filter is
                // bound as '' and short-circuits its condition. The keyset condition
                // keeps every page as cheap as the first.
                let before = q.before.unwrap_or(AuditCursor {
                    verified_at: i64::MAX,
                    id: i64::MAX,
                });
                let rows = sqlx::query_as::<_, AuditRowWithId>(concat!(
                    "SELECT id, client_id, credential_id, outcome, reason, issuer, verified_at, kind, verifications ",
                    "FROM verify_audit ",
                    "WHERE ($1 = '' OR client_id = $2) ",
                    "AND verified_at >= $3 AND verified_at < $4 ",
                    "AND ($5 = '' OR outcome = $6) ",
                    "AND ($7 = '' OR kind = $8) ",
                    "AND (verified_at < $9 OR (verified_at = $10 AND id < $11)) ",
                    "ORDER BY verified_at DESC, id DESC LIMIT $12"
                ))
                .bind(&q.client_id)
                .bind(&q.client_id)
                .bind(q.since.unwrap_or(i64::MIN))
                .bind(q.until.unwrap_or(i64::MAX))
                .bind(&q.outcome)
                .bind(&q.outcome)
                .bind(&q.kind)
                .bind(&q.kind)
                .bind(before.verified_at)
                .bind(before.verified_at)
                .bind(before.id)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await
                .context("reading the audit")?;
                Ok(rows
                    .into_iter()
                    .map(|r| ListedAuditRow {
                        cursor: AuditCursor {
                            verified_at: r.row.verified_at,
                            id: r.id,
                        },
                        row: r.row,
                    })
                    .collect())
            }
        }
    };
}

impl_verify_store!(SqliteVerifyStore, sqlite);
impl_verify_store!(PgVerifyStore, postgresql);

/// The columns an audit row is written to, in the order both stores bind them.
macro_rules! audit_insert {
    () => {
        "INSERT INTO verify_audit (client_id, credential_id, outcome, reason, issuer, verified_at, kind, verifications) "
    };
}

impl SqliteVerifyStore {
    /// Writes `rows` in one transaction, as multi-row INSERTs: one statement per chunk,
    /// not one round trip per row (8 binds a row stays far below SQLite's limit).
    async fn insert_audit(&self, rows: &[AuditRow]) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let mut tx = self
            .pool
            .begin()
            .await
            .context("starting the audit write")?;
        for chunk in rows.chunks(AUDIT_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::new(audit_insert!());
            insert.push_values(chunk, |mut b, r| {
                b.push_bind(&r.client_id)
                    .push_bind(&r.credential_id)
                    .push_bind(&r.outcome)
                    .push_bind(&r.reason)
                    .push_bind(&r.issuer)
                    .push_bind(r.verified_at)
                    .push_bind(&r.kind)
                    .push_bind(r.count.max(1));
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .context("writing audit rows")?;
        }
        tx.commit().await.context("committing the audit write")?;
        Ok(())
    }
}

impl PgVerifyStore {
    /// Writes `rows` with one statement, atomic by itself, that binds each column as
    /// one array. A multi-row VALUES list bound eight parameters a row (2,048 for 256
    /// rows), each one parsed and checked by the server, and needed a transaction
    /// around its chunks.
    async fn insert_audit(&self, rows: &[AuditRow]) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let text = |f: fn(&AuditRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        sqlx::query(concat!(
            audit_insert!(),
            "SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], ",
            "$5::text[], $6::bigint[], $7::text[], $8::bigint[])"
        ))
        .bind(text(|r| &r.client_id))
        .bind(text(|r| &r.credential_id))
        .bind(text(|r| &r.outcome))
        .bind(text(|r| &r.reason))
        .bind(text(|r| &r.issuer))
        .bind(rows.iter().map(|r| r.verified_at).collect::<Vec<i64>>())
        .bind(text(|r| &r.kind))
        .bind(rows.iter().map(|r| r.count.max(1)).collect::<Vec<i64>>())
        .execute(&self.pool)
        .await
        .context("writing audit rows")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(client: &str, credential: &str, outcome: &str, at: i64) -> AuditRow {
        AuditRow {
            client_id: client.into(),
            credential_id: credential.into(),
            outcome: outcome.into(),
            reason: outcome.to_uppercase(),
            issuer: "SH/license".into(),
            verified_at: at,
            kind: "business_license".into(),
            count: 1,
        }
    }

    #[test]
    fn identical_rows_become_one_counting_all_in_order_of_first_appearance() {
        let a = row("bank-a", "lic-1", "valid", 100);
        let rows = vec![
            a.clone(),
            row("bank-b", "lic-1", "valid", 100),
            a.clone(),
            row("bank-a", "lic-1", "revoked", 100),
            a.clone(),
            row("bank-a", "lic-1", "valid", 101),
            AuditRow {
                count: 4,
                ..a.clone()
            },
        ];
        let out = collapse(rows);
        let seen: Vec<(&str, &str, i64, i64)> = out
            .iter()
            .map(|r| {
                (
                    r.client_id.as_str(),
                    r.outcome.as_str(),
                    r.verified_at,
                    r.count,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("bank-a", "valid", 100, 7),
                ("bank-b", "valid", 100, 1),
                ("bank-a", "revoked", 100, 1),
                ("bank-a", "valid", 101, 1),
            ]
        );
    }

    #[test]
    fn every_field_but_the_count_tells_rows_apart() {
        let a = row("bank-a", "lic-1", "valid", 100);
        let variants = [
            AuditRow {
                credential_id: "lic-2".into(),
                ..a.clone()
            },
            AuditRow {
                reason: "OTHER".into(),
                ..a.clone()
            },
            AuditRow {
                issuer: "JS/license".into(),
                ..a.clone()
            },
            AuditRow {
                kind: "certificate".into(),
                ..a.clone()
            },
        ];
        for v in variants {
            assert_eq!(collapse(vec![a.clone(), v.clone()]), vec![a.clone(), v]);
        }
        assert_eq!(collapse(vec![a.clone()]), vec![a]);
        assert!(collapse(Vec::new()).is_empty());
    }
}

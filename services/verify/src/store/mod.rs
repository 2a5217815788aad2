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
}

/// Everything the verify gateway stores.
#[async_trait]
pub trait VerifyStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends audit rows in one transaction.
    async fn record(&self, rows: &[AuditRow]) -> anyhow::Result<()>;
    /// A partner's most recent audit rows, newest first.
    async fn audit_for(&self, client_id: &str, limit: u32) -> anyhow::Result<Vec<AuditRow>>;
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

/// Audit rows written by one INSERT statement.
const AUDIT_ROWS_PER_INSERT: usize = 256;

macro_rules! impl_verify_store {
    ($store:ident, $dialect:tt) => {
        #[async_trait]
        impl VerifyStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), rows = rows.len()))]
            async fn record(&self, rows: &[AuditRow]) -> anyhow::Result<()> {
                use anyhow::Context as _;
                let mut tx = self.pool.begin().await.context("starting the audit write")?;
                // Multi-row INSERTs: one statement per chunk, not one round trip per row
                // (6 binds a row stays far below either database's parameter limit).
                for chunk in rows.chunks(AUDIT_ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO verify_audit (client_id, credential_id, outcome, reason, issuer, verified_at) ",
                    );
                    insert.push_values(chunk, |mut b, r| {
                        b.push_bind(&r.client_id)
                            .push_bind(&r.credential_id)
                            .push_bind(&r.outcome)
                            .push_bind(&r.reason)
                            .push_bind(&r.issuer)
                            .push_bind(r.verified_at);
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

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn audit_for(&self, client_id: &str, limit: u32) -> anyhow::Result<Vec<AuditRow>> {
                use anyhow::Context as _;
                sqlx::query_as::<_, AuditRow>(concat!(
                    "SELECT client_id, credential_id, outcome, reason, issuer, verified_at ",
                    "FROM verify_audit WHERE client_id = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(client_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .context("reading the audit")
            }
        }
    };
}

impl_verify_store!(SqliteVerifyStore, sqlite);
impl_verify_store!(PgVerifyStore, postgresql);

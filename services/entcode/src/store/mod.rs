//! The enterprise-code service's repository: scenarios and their versions. One trait, a
//! SQLite and a PostgreSQL implementation generated from one body (see `credmesh_store`
//! for why).
//!
//! # Versions and concurrency
//!
//! A change of a scenario locks its row (`SELECT … FOR UPDATE` on PostgreSQL; SQLite
//! write transactions hold the database write lock from `BEGIN IMMEDIATE`), checks the
//! caller's expected version against the current one, writes version N+1, moves the
//! pointer and appends the audit entry, all in one transaction. Two changes expecting
//! the same version are therefore serialised and the second is refused. Two creations of
//! the same new name meet at the primary key: the loser's insert fails and is answered
//! as a version conflict.

use std::sync::Arc;

use async_trait::async_trait;
use credmesh_store::{
    Db,
    audit::{AuditEntry, AuditLog as _},
    idempotency::{Claim, IdempotencyKey, IdempotencyStore as _, Outcome},
    is_unique_violation,
    sqlx::{self, PgPool, SqlitePool},
};

use crate::{
    domain::scenario::{BuiltIn, Diff, Draft, Scenario},
    error::EntcodeError,
};

/// Who makes a change.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// Client id.
    pub client_id: &'a str,
    /// Principal kind (`operator`, `system`).
    pub kind: &'a str,
    /// W3C trace id of the request, or empty.
    pub trace_id: &'a str,
}

/// A mutation's common context; `T` is what the mutation answers.
pub struct Change<'a, T> {
    /// Who.
    pub actor: Actor<'a>,
    /// The idempotency key, if the client sent one.
    pub key: Option<&'a IdempotencyKey>,
    /// Encodes the answer for replays.
    pub encode: &'a (dyn Fn(&T) -> Vec<u8> + Send + Sync),
    /// Now, Unix seconds.
    pub now: i64,
}

impl<T> Clone for Change<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Change<'_, T> {}

impl<T> std::fmt::Debug for Change<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("actor", &self.actor)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// What a change asks for.
#[derive(Clone, Debug)]
pub enum Edit<'a> {
    /// Create the scenario, or make its next version with these contents (a retired
    /// scenario becomes current again).
    Put(&'a Draft),
    /// Retire it: the next version keeps the fields and is marked retired.
    Retire(&'a str),
}

impl Edit<'_> {
    fn name(&self) -> &str {
        match self {
            Edit::Put(d) => &d.name,
            Edit::Retire(name) => name,
        }
    }
}

/// The answer of a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// The scenario as it now stands.
    pub scenario: Scenario,
    /// Whether a new version was made (false: the put changed nothing).
    pub changed: bool,
}

/// One stored version with how it came to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// The scenario at this version.
    pub scenario: Scenario,
    /// Why, as the caller said.
    pub reason: String,
    /// Client id of who made it.
    pub changed_by: String,
    /// Their principal kind.
    pub changed_by_kind: String,
    /// When, Unix seconds.
    pub changed_at: i64,
    /// What changed from the version before.
    pub diff: Diff,
}

/// Everything the enterprise-code service stores.
#[async_trait]
pub trait ScenarioStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores each built-in scenario as version 1 unless a scenario of that name exists;
    /// answers how many were stored. Safe to run on every start, on every replica.
    async fn seed(&self, built_in: &[BuiltIn], now: i64) -> Result<u32, EntcodeError>;
    /// Applies `edit` if the current version is `expected` (when given).
    async fn change(
        &self,
        edit: Edit<'_>,
        reason: &str,
        expected: Option<u32>,
        change: Change<'_, Changed>,
    ) -> Result<Outcome<Changed>, EntcodeError>;
    /// A scenario at `version` (0: the current one) and its current version number.
    async fn scenario(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<(Scenario, u32)>, EntcodeError>;
    /// The current versions of the scenarios named after `after`, by name.
    async fn scenarios(&self, after: &str, limit: u32) -> Result<Vec<Scenario>, EntcodeError>;
    /// The versions of `name` after `after`, oldest first.
    async fn history(
        &self,
        name: &str,
        after: u32,
        limit: u32,
    ) -> Result<Vec<VersionRecord>, EntcodeError>;
}

/// The store for `db`.
pub fn for_db(db: &Db) -> Arc<dyn ScenarioStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteScenarioStore { pool: pool.clone() }),
        Db::Postgres(pool) => Arc::new(PgScenarioStore { pool: pool.clone() }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteScenarioStore {
    pool: SqlitePool,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgScenarioStore {
    pool: PgPool,
}

fn corrupt(name: &str) -> EntcodeError {
    EntcodeError::Internal(anyhow::anyhow!("stored scenario {name} is invalid"))
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    name: String,
    version: i64,
    description: String,
    fields_json: String,
    retired: bool,
    reason: String,
    changed_by: String,
    changed_by_kind: String,
    changed_at: i64,
    diff_json: String,
}

impl TryFrom<VersionRow> for VersionRecord {
    type Error = EntcodeError;
    fn try_from(r: VersionRow) -> Result<Self, EntcodeError> {
        let fields: Vec<String> =
            serde_json::from_str(&r.fields_json).map_err(|_| corrupt(&r.name))?;
        let diff: Diff = serde_json::from_str(&r.diff_json).map_err(|_| corrupt(&r.name))?;
        Ok(VersionRecord {
            scenario: Scenario {
                version: u32::try_from(r.version).map_err(|_| corrupt(&r.name))?,
                name: r.name,
                description: r.description,
                fields,
                retired: r.retired,
            },
            reason: r.reason,
            changed_by: r.changed_by,
            changed_by_kind: r.changed_by_kind,
            changed_at: r.changed_at,
            diff,
        })
    }
}

macro_rules! version_columns {
    () => {
        "v.name, v.version, v.description, v.fields_json, v.retired, v.reason, v.changed_by, \
         v.changed_by_kind, v.changed_at, v.diff_json"
    };
}

/// The audit target of a scenario.
fn target(name: &str) -> String {
    format!("scenario:{name}")
}

macro_rules! insert_version {
    ($tx:ident, $record:expr) => {{
        let r: &VersionRecord = $record;
        sqlx::query(
            "INSERT INTO scenario_versions (name, version, description, fields_json, retired, \
             reason, changed_by, changed_by_kind, changed_at, diff_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.scenario.name)
        .bind(i64::from(r.scenario.version))
        .bind(&r.scenario.description)
        .bind(serde_json::to_string(&r.scenario.fields).map_err(anyhow::Error::from)?)
        .bind(r.scenario.retired)
        .bind(&r.reason)
        .bind(&r.changed_by)
        .bind(&r.changed_by_kind)
        .bind(r.changed_at)
        .bind(serde_json::to_string(&r.diff).map_err(anyhow::Error::from)?)
        .execute(&mut *$tx)
        .await?;
    }};
}

macro_rules! impl_store {
    ($store:ident, $begin:path, $dialect:tt) => {
        #[async_trait]
        impl ScenarioStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn seed(&self, built_in: &[BuiltIn], now: i64) -> Result<u32, EntcodeError> {
                let mut tx = $begin(&self.pool).await?;
                let mut stored = 0;
                for b in built_in {
                    let inserted = sqlx::query(
                        "INSERT INTO scenarios (name, current_version, updated_at) VALUES ($1, 1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(b.name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        continue;
                    }
                    let scenario = b.scenario();
                    let record = VersionRecord {
                        diff: Diff::between(None, &scenario),
                        scenario,
                        reason: "built-in scenario".into(),
                        changed_by: "system".into(),
                        changed_by_kind: "system".into(),
                        changed_at: now,
                    };
                    insert_version!(tx, &record);
                    tx.append(&AuditEntry {
                        at: now,
                        actor: "system",
                        actor_kind: "system",
                        action: "entcode.seed_scenario",
                        target: &target(b.name),
                        detail: serde_json::json!({
                            "version": 1,
                            "fields": b.fields,
                        }),
                        trace_id: "",
                    })
                    .await?;
                    stored += 1;
                }
                tx.commit().await?;
                Ok(stored)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), scenario = %edit.name()))]
            async fn change(
                &self,
                edit: Edit<'_>,
                reason: &str,
                expected: Option<u32>,
                change: Change<'_, Changed>,
            ) -> Result<Outcome<Changed>, EntcodeError> {
                let name = edit.name().to_string();
                let mut tx = $begin(&self.pool).await?;
                if let Some(key) = change.key {
                    match tx.claim(key, change.now).await? {
                        Claim::Fresh => {}
                        Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                        Claim::Conflict => return Err(EntcodeError::IdempotencyConflict),
                    }
                }
                let pointer: Option<(i64,)> = sqlx::query_as(concat!(
                    "SELECT current_version FROM scenarios WHERE name = $1",
                    credmesh_store::for_update!($dialect)
                ))
                .bind(&name)
                .fetch_optional(&mut *tx)
                .await?;
                let current: Option<Scenario> = match pointer {
                    None => None,
                    Some((v,)) => {
                        let row: VersionRow = sqlx::query_as(concat!(
                            "SELECT ", version_columns!(),
                            " FROM scenario_versions v WHERE v.name = $1 AND v.version = $2"
                        ))
                        .bind(&name)
                        .bind(v)
                        .fetch_one(&mut *tx)
                        .await?;
                        Some(VersionRecord::try_from(row)?.scenario)
                    }
                };
                let current_version = current.as_ref().map_or(0, |s| s.version);
                if let Some(expected) = expected
                    && expected != current_version
                {
                    return Err(EntcodeError::VersionConflict {
                        name,
                        expected,
                        current: current_version,
                    });
                }
                let next_version = current_version
                    .checked_add(1)
                    .ok_or_else(|| anyhow::anyhow!("scenario {name} has run out of versions"))?;
                let (next, action) = match edit {
                    Edit::Put(draft) => (
                        Scenario {
                            name: draft.name.clone(),
                            description: draft.description.clone(),
                            fields: draft.fields.clone(),
                            version: next_version,
                            retired: false,
                        },
                        "entcode.put_scenario",
                    ),
                    Edit::Retire(_) => {
                        let Some(current) = &current else {
                            return Err(EntcodeError::ScenarioNotFound { name, version: 0 });
                        };
                        if current.retired {
                            return Err(EntcodeError::ScenarioRetired(name));
                        }
                        (
                            Scenario {
                                version: next_version,
                                retired: true,
                                ..current.clone()
                            },
                            "entcode.retire_scenario",
                        )
                    }
                };
                let diff = Diff::between(current.as_ref(), &next);
                if let Some(current) = current.as_ref().filter(|_| diff.is_empty()) {
                    // Nothing to change: answer what stands, and record the answer so a
                    // retry with the key gets the same one.
                    let answer = Changed {
                        scenario: current.clone(),
                        changed: false,
                    };
                    if let Some(key) = change.key {
                        tx.complete(key, &(change.encode)(&answer)).await?;
                    }
                    tx.commit().await?;
                    return Ok(Outcome::Done(answer));
                }
                if current.is_none() {
                    let inserted = sqlx::query(
                        "INSERT INTO scenarios (name, current_version, updated_at) VALUES ($1, $2, $3)",
                    )
                    .bind(&name)
                    .bind(i64::from(next_version))
                    .bind(change.now)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => {
                            return Err(EntcodeError::VersionConflict {
                                name,
                                expected: 0,
                                current: 1,
                            });
                        }
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    sqlx::query(
                        "UPDATE scenarios SET current_version = $2, updated_at = $3 WHERE name = $1",
                    )
                    .bind(&name)
                    .bind(i64::from(next_version))
                    .bind(change.now)
                    .execute(&mut *tx)
                    .await?;
                }
                let record = VersionRecord {
                    scenario: next.clone(),
                    reason: reason.to_string(),
                    changed_by: change.actor.client_id.to_string(),
                    changed_by_kind: change.actor.kind.to_string(),
                    changed_at: change.now,
                    diff: diff.clone(),
                };
                insert_version!(tx, &record);
                tx.append(&AuditEntry {
                    at: change.now,
                    actor: change.actor.client_id,
                    actor_kind: change.actor.kind,
                    action,
                    target: &target(&name),
                    detail: serde_json::json!({
                        "version": next.version,
                        "reason": reason,
                        "fields": next.fields,
                        "retired": next.retired,
                        "fields_added": diff.added,
                        "fields_removed": diff.removed,
                        "description_changed": diff.description,
                        "order_changed": diff.order,
                    }),
                    trace_id: change.actor.trace_id,
                })
                .await?;
                let answer = Changed {
                    scenario: next,
                    changed: true,
                };
                if let Some(key) = change.key {
                    tx.complete(key, &(change.encode)(&answer)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(answer))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn scenario(
                &self,
                name: &str,
                version: u32,
            ) -> Result<Option<(Scenario, u32)>, EntcodeError> {
                let row: Option<(i64, VersionRow)> = {
                    let pointer: Option<(i64,)> =
                        sqlx::query_as("SELECT current_version FROM scenarios WHERE name = $1")
                            .bind(name)
                            .fetch_optional(&self.pool)
                            .await?;
                    match pointer {
                        None => None,
                        Some((current,)) => {
                            let wanted = if version == 0 { current } else { i64::from(version) };
                            let row: Option<VersionRow> = sqlx::query_as(concat!(
                                "SELECT ", version_columns!(),
                                " FROM scenario_versions v WHERE v.name = $1 AND v.version = $2"
                            ))
                            .bind(name)
                            .bind(wanted)
                            .fetch_optional(&self.pool)
                            .await?;
                            row.map(|r| (current, r))
                        }
                    }
                };
                let Some((current, row)) = row else { return Ok(None) };
                let current = u32::try_from(current).map_err(|_| corrupt(name))?;
                Ok(Some((VersionRecord::try_from(row)?.scenario, current)))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn scenarios(&self, after: &str, limit: u32) -> Result<Vec<Scenario>, EntcodeError> {
                let rows: Vec<VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(),
                    " FROM scenarios s JOIN scenario_versions v ON v.name = s.name AND v.version = s.current_version",
                    " WHERE s.name > $1 ORDER BY s.name LIMIT $2"
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| VersionRecord::try_from(r).map(|v| v.scenario))
                    .collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn history(
                &self,
                name: &str,
                after: u32,
                limit: u32,
            ) -> Result<Vec<VersionRecord>, EntcodeError> {
                let rows: Vec<VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(),
                    " FROM scenario_versions v WHERE v.name = $1 AND v.version > $2 ORDER BY v.version LIMIT $3"
                ))
                .bind(name)
                .bind(i64::from(after))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(VersionRecord::try_from).collect()
            }
        }
    };
}

impl_store!(
    SqliteScenarioStore,
    credmesh_store::begin_sqlite_write,
    sqlite
);
impl_store!(
    PgScenarioStore,
    credmesh_store::begin_postgres_write,
    postgres
);

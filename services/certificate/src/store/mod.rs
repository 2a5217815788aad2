//! The certificate service's repository: one trait, a SQLite and a PostgreSQL
//! implementation generated from one body (see `credmesh_store` for why).
//!
//! # One current version
//!
//! Every change of a certificate first locks its row (`SELECT … FOR UPDATE` on
//! PostgreSQL; SQLite write transactions hold the database write lock from `BEGIN
//! IMMEDIATE`), so changes to one certificate are serialised. A renewal or correction
//! then, in one transaction: clears `is_current` on version N and sets its revocation
//! and superseded bits, inserts version N+1 as current and moves the certificate's
//! pointer. A partial unique index refuses a second current version.
//!
//! Locks are taken in one order (idempotency key, dispute, certificate, counters,
//! status allocator), so concurrent transactions cannot deadlock.

mod records;

use std::sync::Arc;

use async_trait::async_trait;
use credmesh_proto::credential::v1::StatusPurpose;
use credmesh_store::{
    Db,
    audit::{AuditEntry, AuditLog as _, AuditRecord},
    idempotency::{Claim, IdempotencyStore as _, Outcome},
    sqlx::{self, PgPool, SqlitePool},
};
use credmesh_uscc::Uscc;
pub use records::*;

use crate::{
    domain::{
        credential::{Placement, serial_text, status_slot},
        dispute::{ClaimedField, DisputeState, Filing},
        types::{CertType, FieldSpec, Values},
    },
    error::CertificateError,
};

/// Everything the certificate service stores.
#[async_trait]
pub trait CertificateStore: Send + Sync + std::fmt::Debug + 'static {
    /// Registers or replaces a type.
    async fn put_type(
        &self,
        t: &CertType,
        change: Change<'_, CertType>,
    ) -> Result<Outcome<CertType>, CertificateError>;
    /// One type.
    async fn cert_type(&self, code: &str) -> Result<Option<CertType>, CertificateError>;
    /// Types with codes after `after`.
    async fn cert_types(&self, after: &str, limit: u32) -> Result<Vec<CertType>, CertificateError>;
    /// Issues version 1 of a certificate.
    async fn issue(
        &self,
        new: &NewCertificate<'_>,
        signer: &dyn VersionSigner,
        change: Change<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError>;
    /// Suspends, reinstates or revokes, or records a follow-up.
    async fn transition(
        &self,
        serial: &str,
        transition: &Transition,
        change: Change<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError>;
    /// Issues the next version with `validity`, superseding the current one.
    async fn renew(
        &self,
        serial: &str,
        t: &CertType,
        validity: &Validity,
        signer: &dyn VersionSigner,
        change: Change<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError>;
    /// Files a dispute with its acceptance deadline.
    async fn file_dispute(
        &self,
        serial: &str,
        filing: &Filing,
        accept_by: i64,
        change: Change<'_, DisputeRecord>,
    ) -> Result<Outcome<DisputeRecord>, CertificateError>;
    /// Accepts a filed dispute, setting its resolution deadline.
    async fn accept_dispute(
        &self,
        id: &str,
        resolve_by: i64,
        change: Change<'_, DisputeRecord>,
    ) -> Result<Outcome<DisputeRecord>, CertificateError>;
    /// Resolves an accepted dispute; a correction issues the next version with the
    /// claimed values and supersedes the current one in the same transaction.
    async fn resolve_dispute(
        &self,
        id: &str,
        resolve: &Resolve,
        t: &CertType,
        signer: &dyn VersionSigner,
        change: Change<'_, (DisputeRecord, CertRecord)>,
    ) -> Result<Outcome<(DisputeRecord, CertRecord)>, CertificateError>;
    /// One certificate.
    async fn certificate(&self, serial: &str) -> Result<Option<CertRecord>, CertificateError>;
    /// Certificates after `after`, optionally of one holder.
    async fn certificates(
        &self,
        holder: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CertRecord>, CertificateError>;
    /// Every version of a certificate, oldest first.
    async fn versions(&self, serial: &str) -> Result<Vec<VersionRecord>, CertificateError>;
    /// One dispute.
    async fn dispute(&self, id: &str) -> Result<Option<DisputeRecord>, CertificateError>;
    /// A page of disputes and the overdue count of the scope.
    async fn disputes(
        &self,
        query: &DisputeQuery,
        now: i64,
    ) -> Result<(Vec<DisputeRecord>, u64), CertificateError>;
    /// The credential ids of disputed versions with their open disputes' field names,
    /// in credential id order.
    async fn disputed_credentials(&self) -> Result<Vec<(String, Vec<String>)>, CertificateError>;
    /// How many disputes are open, and how many of those are overdue at `now`.
    async fn dispute_counts(&self, now: i64) -> Result<(u64, u64), CertificateError>;
    /// The audit entries of a certificate.
    async fn history(
        &self,
        serial: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, CertificateError>;
    /// How many status entries were allocated.
    async fn allocated_entries(&self) -> Result<u64, CertificateError>;
    /// How many status changes were ever made (orders signed lists).
    async fn status_changes(&self) -> Result<u64, CertificateError>;
    /// The set bits of a list and purpose.
    async fn status_indexes(
        &self,
        list_no: u64,
        purpose: i32,
    ) -> Result<Vec<u64>, CertificateError>;
}

/// The store for `db`.
pub fn for_db(db: &Db) -> Arc<dyn CertificateStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteCertificateStore { pool: pool.clone() }),
        Db::Postgres(pool) => Arc::new(PgCertificateStore { pool: pool.clone() }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteCertificateStore {
    pool: SqlitePool,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgCertificateStore {
    pool: PgPool,
}

fn corrupt(what: &str, key: &str) -> CertificateError {
    CertificateError::Internal(anyhow::anyhow!("stored {what} of {key} is invalid"))
}

#[derive(sqlx::FromRow)]
struct TypeRow {
    type_code: String,
    name: String,
    department: String,
    department_name: String,
    fields_json: String,
    validity_days: i64,
    bundles: String,
    industry: String,
}

impl TryFrom<TypeRow> for CertType {
    type Error = CertificateError;
    fn try_from(r: TypeRow) -> Result<Self, CertificateError> {
        let fields: Vec<FieldSpec> =
            serde_json::from_str(&r.fields_json).map_err(|_| corrupt("schema", &r.type_code))?;
        Ok(CertType {
            department: Uscc::parse(&r.department)
                .map_err(|_| corrupt("department", &r.type_code))?,
            validity_days: u32::try_from(r.validity_days)
                .map_err(|_| corrupt("validity", &r.type_code))?,
            bundles: r
                .bundles
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            type_code: r.type_code,
            name: r.name,
            department_name: r.department_name,
            fields,
            industry: r.industry,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CertRow {
    serial: String,
    holder: String,
    holder_name: String,
    type_code: String,
    department: String,
    state: String,
    state_reason: String,
    commitment_json: String,
    follow_up: String,
    created_at: i64,
    updated_at: i64,
    current_version: i64,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    serial: String,
    version: i64,
    certificate_id: String,
    is_current: bool,
    fields_json: String,
    valid_from: String,
    valid_until: String,
    not_before: i64,
    not_after: i64,
    list_no: i64,
    list_index: i64,
    kid: String,
    envelope: Vec<u8>,
    vc_jwt: String,
    issued_at: i64,
    issued_by: String,
    superseded_at: i64,
}

impl TryFrom<VersionRow> for VersionRecord {
    type Error = CertificateError;
    fn try_from(r: VersionRow) -> Result<Self, CertificateError> {
        let key = format!("{} v{}", r.serial, r.version);
        Ok(VersionRecord {
            version: u32::try_from(r.version).map_err(|_| corrupt("version", &key))?,
            values: serde_json::from_str(&r.fields_json).map_err(|_| corrupt("fields", &key))?,
            certificate_id: r.certificate_id,
            is_current: r.is_current,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            not_before: r.not_before,
            not_after: r.not_after,
            list_no: r.list_no as u64,
            list_index: r.list_index as u64,
            kid: r.kid,
            envelope: r.envelope,
            vc_jwt: r.vc_jwt,
            issued_at: r.issued_at,
            issued_by: r.issued_by,
            superseded_at: r.superseded_at,
        })
    }
}

fn cert_record(
    r: CertRow,
    version: VersionRecord,
    disputed_fields: Vec<String>,
) -> Result<CertRecord, CertificateError> {
    Ok(CertRecord {
        state: State::parse(&r.state).ok_or_else(|| corrupt("state", &r.serial))?,
        follow_up: FollowUp::parse(&r.follow_up).ok_or_else(|| corrupt("follow-up", &r.serial))?,
        commitment: if r.commitment_json.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(&r.commitment_json)
                    .map_err(|_| corrupt("commitment", &r.serial))?,
            )
        },
        serial: r.serial,
        holder: r.holder,
        holder_name: r.holder_name,
        type_code: r.type_code,
        department: r.department,
        state_reason: r.state_reason,
        created_at: r.created_at,
        updated_at: r.updated_at,
        version,
        disputed_fields,
    })
}

#[derive(sqlx::FromRow)]
struct DisputeRow {
    id: String,
    serial: String,
    version: i64,
    holder: String,
    department: String,
    fields_json: String,
    evidence_json: String,
    explanation: String,
    state: String,
    filed_by: String,
    filed_at: i64,
    accept_by: i64,
    accepted_at: i64,
    resolve_by: i64,
    resolved_at: i64,
    resolution: String,
    corrected_version: i64,
}

impl TryFrom<DisputeRow> for DisputeRecord {
    type Error = CertificateError;
    fn try_from(r: DisputeRow) -> Result<Self, CertificateError> {
        Ok(DisputeRecord {
            fields: serde_json::from_str(&r.fields_json).map_err(|_| corrupt("fields", &r.id))?,
            evidence: serde_json::from_str(&r.evidence_json)
                .map_err(|_| corrupt("evidence", &r.id))?,
            state: DisputeState::parse(&r.state).ok_or_else(|| corrupt("state", &r.id))?,
            version: r.version as u32,
            corrected_version: r.corrected_version as u32,
            id: r.id,
            serial: r.serial,
            holder: r.holder,
            department: r.department,
            explanation: r.explanation,
            filed_by: r.filed_by,
            filed_at: r.filed_at,
            accept_by: r.accept_by,
            accepted_at: r.accepted_at,
            resolve_by: r.resolve_by,
            resolved_at: r.resolved_at,
            resolution: r.resolution,
        })
    }
}

macro_rules! type_columns {
    () => {
        "type_code, name, department, department_name, fields_json, validity_days, bundles, industry"
    };
}
macro_rules! cert_columns {
    () => {
        "serial, holder, holder_name, type_code, department, state, state_reason, commitment_json, follow_up, created_at, updated_at, current_version"
    };
}
macro_rules! version_columns {
    () => {
        "serial, version, certificate_id, is_current, fields_json, valid_from, valid_until, not_before, not_after, \
         list_no, list_index, kid, envelope, vc_jwt, issued_at, issued_by, superseded_at"
    };
}
macro_rules! dispute_columns {
    () => {
        "id, serial, version, holder, department, fields_json, evidence_json, explanation, state, filed_by, \
         filed_at, accept_by, accepted_at, resolve_by, resolved_at, resolution, corrected_version"
    };
}

/// Claims the idempotency key of a change, returning early with the replay.
macro_rules! claim {
    ($tx:ident, $change:expr) => {
        if let Some(key) = $change.key {
            match $tx.claim(key, $change.now).await? {
                Claim::Fresh => {}
                Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                Claim::Conflict => return Err(CertificateError::IdempotencyConflict),
            }
        }
    };
}

/// Appends an audit entry and completes the idempotency key, then commits.
macro_rules! finish {
    ($tx:ident, $change:expr, $action:expr, $target:expr, $detail:expr, $answer:expr) => {{
        $tx.append(&AuditEntry {
            at: $change.now,
            actor: $change.actor.client_id,
            actor_kind: $change.actor.kind,
            action: $action,
            target: $target,
            detail: $detail,
            trace_id: $change.actor.trace_id,
        })
        .await?;
        let answer = $answer;
        if let Some(key) = $change.key {
            $tx.complete(key, &($change.encode)(&answer)).await?;
        }
        $tx.commit().await?;
        Ok(Outcome::Done(answer))
    }};
}

/// Counts a status change, so a re-signed list always carries a higher sequence than
/// any list signed before the change (even within the same second).
macro_rules! bump_status {
    ($tx:ident) => {
        sqlx::query(concat!(
            "INSERT INTO counters (name, next) VALUES ('status_changes', 1) ",
            "ON CONFLICT (name) DO UPDATE SET next = counters.next + 1"
        ))
        .execute(&mut *$tx)
        .await?;
    };
}

/// Sets a status bit inside a transaction.
macro_rules! set_bit {
    ($tx:ident, $list_no:expr, $purpose:expr, $index:expr, $now:expr) => {
        sqlx::query(concat!(
            "INSERT INTO status_bits (list_no, purpose, list_index, set_at) VALUES ($1, $2, $3, $4) ",
            "ON CONFLICT (list_no, purpose, list_index) DO NOTHING"
        ))
        .bind($list_no as i64)
        .bind($purpose as i64)
        .bind($index as i64)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        bump_status!($tx);
    };
}

/// Inserts a current version inside a transaction: allocates its status entry, signs
/// it, stores it. Evaluates to the [`VersionRecord`].
macro_rules! insert_version {
    ($tx:ident, $serial:expr, $t:expr, $holder:expr, $holder_name:expr, $values:expr, $validity:expr, $version:expr, $signer:expr, $change:expr) => {{
        let serial: &str = $serial;
        let t: &CertType = $t;
        let values: &Values = $values;
        let validity: &Validity = $validity;
        let version: u32 = $version;
        let now = $change.now;
        let certificate_id = $signer.certificate_id(t, serial, version)?;
        let (entry,): (i64,) = sqlx::query_as(
            "UPDATE status_allocator SET next_index = next_index + 1 WHERE id = 1 RETURNING next_index - 1",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let (list_no, list_index) = status_slot(entry as u64);
        let signed = $signer.sign(
            t,
            $holder,
            $holder_name,
            values,
            &Placement {
                certificate_id: &certificate_id,
                version,
                list_no,
                index: list_index,
                issued_at: now,
                not_before: validity.not_before,
                not_after: validity.not_after,
                valid_from: &validity.valid_from,
                valid_until: &validity.valid_until,
            },
        );
        let fields_json = serde_json::to_string(values).map_err(anyhow::Error::from)?;
        sqlx::query(concat!(
            "INSERT INTO certificate_versions (", version_columns!(), ") VALUES ",
            "($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0)"
        ))
        .bind(serial)
        .bind(i64::from(version))
        .bind(&certificate_id)
        .bind(&fields_json)
        .bind(&validity.valid_from)
        .bind(&validity.valid_until)
        .bind(validity.not_before)
        .bind(validity.not_after)
        .bind(list_no as i64)
        .bind(list_index as i64)
        .bind(&signed.kid)
        .bind(&signed.envelope)
        .bind(&signed.vc_jwt)
        .bind(now)
        .bind($change.actor.client_id)
        .execute(&mut *$tx)
        .await?;
        VersionRecord {
            version,
            certificate_id,
            is_current: true,
            values: values.clone(),
            valid_from: validity.valid_from.clone(),
            valid_until: validity.valid_until.clone(),
            not_before: validity.not_before,
            not_after: validity.not_after,
            list_no,
            list_index,
            kid: signed.kid,
            envelope: signed.envelope,
            vc_jwt: signed.vc_jwt,
            issued_at: now,
            issued_by: $change.actor.client_id.to_string(),
            superseded_at: 0,
        }
    }};
}

/// Supersedes the current version and inserts the next one with `values` and
/// `validity`; moves the certificate's pointer. Evaluates to the new [`VersionRecord`].
macro_rules! supersede {
    ($tx:ident, $cert:expr, $current:expr, $t:expr, $values:expr, $validity:expr, $signer:expr, $change:expr) => {{
        let cert: &CertRecord = $cert;
        let current: &VersionRecord = $current;
        let now = $change.now;
        if current.version >= 999 {
            return Err(CertificateError::VersionsExhausted(cert.serial.clone()));
        }
        sqlx::query(
            "UPDATE certificate_versions SET is_current = FALSE, superseded_at = $1 WHERE serial = $2 AND version = $3",
        )
        .bind(now)
        .bind(&cert.serial)
        .bind(i64::from(current.version))
        .execute(&mut *$tx)
        .await?;
        for purpose in [StatusPurpose::Revocation, StatusPurpose::Superseded] {
            set_bit!($tx, current.list_no, purpose, current.list_index, now);
        }
        let next = current.version + 1;
        let v = insert_version!($tx, &cert.serial, $t, &cert.holder, &cert.holder_name, $values, $validity, next, $signer, $change);
        sqlx::query("UPDATE certificates SET current_version = $1, certificate_id = $2, updated_at = $3 WHERE serial = $4")
            .bind(i64::from(next))
            .bind(&v.certificate_id)
            .bind(now)
            .bind(&cert.serial)
            .execute(&mut *$tx)
            .await?;
        v
    }};
}

fn cert_detail(c: &CertRecord, actor: Actor<'_>) -> serde_json::Value {
    serde_json::json!({
        "serial": c.serial,
        "holder": c.holder,
        "type_code": c.type_code,
        "version": c.version.version,
        "certificate_id": c.version.certificate_id,
        "state": c.state.as_str(),
        "acting_organization": actor.organization,
        "status_list": c.version.list_no,
        "status_index": c.version.list_index,
        "kid": c.version.kid,
    })
}

fn dispute_detail(d: &DisputeRecord, actor: Actor<'_>) -> serde_json::Value {
    serde_json::json!({
        "dispute_id": d.id,
        "version": d.version,
        "state": d.state.as_str(),
        "fields": d.fields.iter().map(|f| serde_json::json!({
            "field": f.name, "recorded": f.recorded, "claimed": f.claimed,
        })).collect::<Vec<_>>(),
        "evidence_sha256": d.evidence,
        "accept_by": d.accept_by,
        "resolve_by": d.resolve_by,
        "resolution": d.resolution,
        "acting_organization": actor.organization,
    })
}

fn wrong_state(c: &CertRecord, detail: &str) -> CertificateError {
    CertificateError::WrongState {
        serial: c.serial.clone(),
        state: c.state.as_str(),
        detail: detail.to_string(),
    }
}

macro_rules! impl_store {
    ($store:ident, $begin:path, $dialect:tt) => {
        impl $store {
            /// Reads a certificate with its current version and open disputes' fields,
            /// locking its row when `lock`.
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn load(
                conn: &mut <<$store as DbOf>::Database as sqlx::Database>::Connection,
                serial: &str,
                lock: bool,
            ) -> Result<Option<CertRecord>, CertificateError> {
                let row: Option<CertRow> = if lock {
                    sqlx::query_as(concat!(
                        "SELECT ", cert_columns!(), " FROM certificates WHERE serial = $1",
                        credmesh_store::for_update!($dialect)
                    ))
                    .bind(serial)
                    .fetch_optional(&mut *conn)
                    .await?
                } else {
                    sqlx::query_as(concat!("SELECT ", cert_columns!(), " FROM certificates WHERE serial = $1"))
                        .bind(serial)
                        .fetch_optional(&mut *conn)
                        .await?
                };
                let Some(row) = row else { return Ok(None) };
                let v: VersionRow = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM certificate_versions WHERE serial = $1 AND version = $2"
                ))
                .bind(serial)
                .bind(row.current_version)
                .fetch_one(&mut *conn)
                .await?;
                let open: Vec<(String,)> = sqlx::query_as(
                    "SELECT fields_json FROM disputes WHERE serial = $1 AND state IN ('filed', 'accepted') ORDER BY id",
                )
                .bind(serial)
                .fetch_all(&mut *conn)
                .await?;
                let mut disputed = Vec::new();
                for (json,) in open {
                    let fields: Vec<ClaimedField> =
                        serde_json::from_str(&json).map_err(|_| corrupt("dispute fields", serial))?;
                    for f in fields {
                        if !disputed.contains(&f.name) {
                            disputed.push(f.name);
                        }
                    }
                }
                Ok(Some(cert_record(row, v.try_into()?, disputed)?))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn lock_dispute(
                conn: &mut <<$store as DbOf>::Database as sqlx::Database>::Connection,
                id: &str,
            ) -> Result<DisputeRecord, CertificateError> {
                let row: Option<DisputeRow> = sqlx::query_as(concat!(
                    "SELECT ", dispute_columns!(), " FROM disputes WHERE id = $1",
                    credmesh_store::for_update!($dialect)
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                row.ok_or_else(|| CertificateError::DisputeNotFound(id.to_string()))?.try_into()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn next_counter(
                conn: &mut <<$store as DbOf>::Database as sqlx::Database>::Connection,
                name: &str,
            ) -> Result<u64, CertificateError> {
                let (n,): (i64,) = sqlx::query_as(concat!(
                    "INSERT INTO counters (name, next) VALUES ($1, 2) ",
                    "ON CONFLICT (name) DO UPDATE SET next = counters.next + 1 RETURNING next - 1"
                ))
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
                Ok(n as u64)
            }
        }

        #[async_trait]
        impl CertificateStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), type_code = %t.type_code))]
            async fn put_type(
                &self,
                t: &CertType,
                change: Change<'_, CertType>,
            ) -> Result<Outcome<CertType>, CertificateError> {
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let fields = serde_json::to_string(&t.fields).map_err(anyhow::Error::from)?;
                sqlx::query(concat!(
                    "INSERT INTO cert_types (", type_columns!(), ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ",
                    "ON CONFLICT (type_code) DO UPDATE SET name = $2, department = $3, department_name = $4, ",
                    "fields_json = $5, validity_days = $6, bundles = $7, industry = $8, updated_at = $9"
                ))
                .bind(&t.type_code)
                .bind(&t.name)
                .bind(t.department.as_str())
                .bind(&t.department_name)
                .bind(&fields)
                .bind(i64::from(t.validity_days))
                .bind(t.bundles.join(","))
                .bind(&t.industry)
                .bind(change.now)
                .execute(&mut *tx)
                .await?;
                let detail = serde_json::json!({
                    "name": t.name,
                    "department": t.department.as_str(),
                    "fields": t.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                    "validity_days": t.validity_days,
                    "bundles": t.bundles,
                });
                finish!(tx, change, "certificate.register_type", &t.type_code, detail, t.clone())
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn cert_type(&self, code: &str) -> Result<Option<CertType>, CertificateError> {
                let row: Option<TypeRow> = sqlx::query_as(concat!(
                    "SELECT ", type_columns!(), " FROM cert_types WHERE type_code = $1"
                ))
                .bind(code)
                .fetch_optional(&self.pool)
                .await?;
                row.map(CertType::try_from).transpose()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn cert_types(&self, after: &str, limit: u32) -> Result<Vec<CertType>, CertificateError> {
                let rows: Vec<TypeRow> = sqlx::query_as(concat!(
                    "SELECT ", type_columns!(), " FROM cert_types WHERE type_code > $1 ORDER BY type_code LIMIT $2"
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(CertType::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), holder = %new.holder))]
            async fn issue(
                &self,
                new: &NewCertificate<'_>,
                signer: &dyn VersionSigner,
                change: Change<'_, CertRecord>,
            ) -> Result<Outcome<CertRecord>, CertificateError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let serial = serial_text(Self::next_counter(&mut tx, "certificate").await?);
                let t = new.cert_type;
                let (commitment_json, follow_up) = match new.commitment {
                    Some(c) => (
                        serde_json::to_string(c).map_err(anyhow::Error::from)?,
                        FollowUp::Pending,
                    ),
                    None => (String::new(), FollowUp::NotRequired),
                };
                let certificate_id = signer.certificate_id(t, &serial, 1)?;
                sqlx::query(concat!(
                    "INSERT INTO certificates (", cert_columns!(), ", certificate_id) ",
                    "VALUES ($1, $2, $3, $4, $5, 'active', '', $6, $7, $8, $8, 1, $9)"
                ))
                .bind(&serial)
                .bind(new.holder)
                .bind(new.holder_name)
                .bind(&t.type_code)
                .bind(t.department.as_str())
                .bind(&commitment_json)
                .bind(follow_up.as_str())
                .bind(now)
                .bind(&certificate_id)
                .execute(&mut *tx)
                .await?;
                let version = insert_version!(tx, &serial, t, new.holder, new.holder_name, new.values, new.validity, 1, signer, change);
                let cert = CertRecord {
                    serial: serial.clone(),
                    holder: new.holder.to_string(),
                    holder_name: new.holder_name.to_string(),
                    type_code: t.type_code.clone(),
                    department: t.department.to_string(),
                    state: State::Active,
                    state_reason: String::new(),
                    commitment: new.commitment.cloned(),
                    follow_up,
                    created_at: now,
                    updated_at: now,
                    version,
                    disputed_fields: Vec::new(),
                };
                let mut detail = cert_detail(&cert, change.actor);
                detail["fields"] = serde_json::to_value(new.values).map_err(anyhow::Error::from)?;
                detail["valid_until"] = new.validity.valid_until.clone().into();
                detail["on_commitment"] = new.commitment.is_some().into();
                if let Some(c) = new.commitment {
                    detail["commitment_sha256"] = c.statement_sha256.clone().into();
                    detail["credit_grade"] = c.credit_grade.clone().into();
                }
                finish!(tx, change, if new.commitment.is_some() { "certificate.issue_on_commitment" } else { "certificate.issue" }, &serial, detail, cert)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), serial = %serial))]
            async fn transition(
                &self,
                serial: &str,
                transition: &Transition,
                change: Change<'_, CertRecord>,
            ) -> Result<Outcome<CertRecord>, CertificateError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let mut cert = Self::load(&mut tx, serial, true)
                    .await?
                    .ok_or_else(|| CertificateError::CertificateNotFound(serial.to_string()))?;
                let v = cert.version.clone();
                let (action, reason, next) = match transition {
                    Transition::Suspend(reason) => {
                        if cert.state != State::Active {
                            return Err(wrong_state(&cert, "only an active certificate can be suspended"));
                        }
                        set_bit!(tx, v.list_no, StatusPurpose::Suspension, v.list_index, now);
                        ("certificate.suspend", reason.clone(), State::Suspended)
                    }
                    Transition::Reinstate(reason) => {
                        if cert.state != State::Suspended {
                            return Err(wrong_state(&cert, "only a suspended certificate can be reinstated"));
                        }
                        sqlx::query("DELETE FROM status_bits WHERE list_no = $1 AND purpose = $2 AND list_index = $3")
                            .bind(v.list_no as i64)
                            .bind(StatusPurpose::Suspension as i64)
                            .bind(v.list_index as i64)
                            .execute(&mut *tx)
                            .await?;
                        bump_status!(tx);
                        ("certificate.reinstate", reason.clone(), State::Active)
                    }
                    Transition::Revoke(reason) => {
                        if cert.state == State::Revoked {
                            return Err(wrong_state(&cert, "it is revoked already"));
                        }
                        set_bit!(tx, v.list_no, StatusPurpose::Revocation, v.list_index, now);
                        ("certificate.revoke", reason.clone(), State::Revoked)
                    }
                    Transition::FollowUp { compliant, finding } => {
                        if cert.follow_up != FollowUp::Pending {
                            return Err(wrong_state(&cert, "no follow-up check is due: it was not issued on commitment, or was checked already"));
                        }
                        if cert.state == State::Revoked {
                            return Err(wrong_state(&cert, "it is revoked already"));
                        }
                        let follow = if *compliant { FollowUp::Compliant } else { FollowUp::NonCompliant };
                        sqlx::query("UPDATE certificates SET follow_up = $1 WHERE serial = $2")
                            .bind(follow.as_str())
                            .bind(serial)
                            .execute(&mut *tx)
                            .await?;
                        cert.follow_up = follow;
                        if *compliant {
                            ("certificate.follow_up", finding.clone(), cert.state)
                        } else {
                            set_bit!(tx, v.list_no, StatusPurpose::Revocation, v.list_index, now);
                            ("certificate.follow_up", format!("commitment not kept: {finding}"), State::Revoked)
                        }
                    }
                };
                let keep_reason = next != State::Active;
                let state_reason = if keep_reason { reason.clone() } else { String::new() };
                sqlx::query("UPDATE certificates SET state = $1, state_reason = $2, updated_at = $3 WHERE serial = $4")
                    .bind(next.as_str())
                    .bind(&state_reason)
                    .bind(now)
                    .bind(serial)
                    .execute(&mut *tx)
                    .await?;
                let from = cert.state;
                cert.state = next;
                cert.state_reason = state_reason;
                cert.updated_at = now;
                let mut detail = cert_detail(&cert, change.actor);
                detail["from_state"] = from.as_str().into();
                detail["reason"] = reason.into();
                detail["follow_up"] = cert.follow_up.as_str().into();
                finish!(tx, change, action, serial, detail, cert)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), serial = %serial))]
            async fn renew(
                &self,
                serial: &str,
                t: &CertType,
                validity: &Validity,
                signer: &dyn VersionSigner,
                change: Change<'_, CertRecord>,
            ) -> Result<Outcome<CertRecord>, CertificateError> {
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let mut cert = Self::load(&mut tx, serial, true)
                    .await?
                    .ok_or_else(|| CertificateError::CertificateNotFound(serial.to_string()))?;
                if cert.state != State::Active {
                    return Err(wrong_state(&cert, "only an active certificate can be renewed"));
                }
                let current = cert.version.clone();
                let values = current.values.clone();
                let v = supersede!(tx, &cert, &current, t, &values, validity, signer, change);
                cert.version = v;
                cert.updated_at = change.now;
                let mut detail = cert_detail(&cert, change.actor);
                detail["superseded_version"] = current.version.into();
                detail["superseded_certificate_id"] = current.certificate_id.clone().into();
                detail["valid_until"] = validity.valid_until.clone().into();
                finish!(tx, change, "certificate.renew", serial, detail, cert)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), serial = %serial))]
            async fn file_dispute(
                &self,
                serial: &str,
                filing: &Filing,
                accept_by: i64,
                change: Change<'_, DisputeRecord>,
            ) -> Result<Outcome<DisputeRecord>, CertificateError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let cert = Self::load(&mut tx, serial, true)
                    .await?
                    .ok_or_else(|| CertificateError::CertificateNotFound(serial.to_string()))?;
                if cert.state == State::Revoked {
                    return Err(wrong_state(&cert, "a revoked certificate's data cannot be disputed"));
                }
                if let Some(f) = filing.fields.iter().find(|f| cert.disputed_fields.contains(&f.name)) {
                    let (id,): (String,) = sqlx::query_as(
                        "SELECT id FROM disputes WHERE serial = $1 AND state IN ('filed', 'accepted') AND fields_json LIKE $2 ORDER BY id LIMIT 1",
                    )
                    .bind(serial)
                    .bind(format!("%\"name\":\"{}\"%", f.name))
                    .fetch_one(&mut *tx)
                    .await?;
                    return Err(CertificateError::DisputeOpen {
                        serial: serial.to_string(),
                        field: f.name.clone(),
                        id,
                    });
                }
                let n = Self::next_counter(&mut tx, "dispute").await?;
                let d = DisputeRecord {
                    id: format!("D{n:010}"),
                    serial: serial.to_string(),
                    version: cert.version.version,
                    holder: cert.holder.clone(),
                    department: cert.department.clone(),
                    // Recorded values as of the locked current version.
                    fields: filing
                        .fields
                        .iter()
                        .map(|f| ClaimedField {
                            name: f.name.clone(),
                            recorded: cert.version.values.get(&f.name).cloned().unwrap_or_default(),
                            claimed: f.claimed.clone(),
                        })
                        .collect(),
                    evidence: filing.evidence.clone(),
                    explanation: filing.explanation.clone(),
                    state: DisputeState::Filed,
                    filed_by: change.actor.client_id.to_string(),
                    filed_at: now,
                    accept_by,
                    accepted_at: 0,
                    resolve_by: 0,
                    resolved_at: 0,
                    resolution: String::new(),
                    corrected_version: 0,
                };
                sqlx::query(concat!(
                    "INSERT INTO disputes (", dispute_columns!(), ") VALUES ",
                    "($1, $2, $3, $4, $5, $6, $7, $8, 'filed', $9, $10, $11, 0, 0, 0, '', 0)"
                ))
                .bind(&d.id)
                .bind(serial)
                .bind(i64::from(d.version))
                .bind(&d.holder)
                .bind(&d.department)
                .bind(serde_json::to_string(&d.fields).map_err(anyhow::Error::from)?)
                .bind(serde_json::to_string(&d.evidence).map_err(anyhow::Error::from)?)
                .bind(&d.explanation)
                .bind(&d.filed_by)
                .bind(now)
                .bind(accept_by)
                .execute(&mut *tx)
                .await?;
                let detail = dispute_detail(&d, change.actor);
                finish!(tx, change, "certificate.dispute_file", serial, detail, d)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), dispute = %id))]
            async fn accept_dispute(
                &self,
                id: &str,
                resolve_by: i64,
                change: Change<'_, DisputeRecord>,
            ) -> Result<Outcome<DisputeRecord>, CertificateError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let mut d = Self::lock_dispute(&mut tx, id).await?;
                if d.state != DisputeState::Filed {
                    return Err(CertificateError::DisputeWrongState {
                        id: id.to_string(),
                        state: d.state.as_str(),
                        detail: "only a filed dispute can be accepted".into(),
                    });
                }
                sqlx::query("UPDATE disputes SET state = 'accepted', accepted_at = $1, resolve_by = $2 WHERE id = $3")
                    .bind(now)
                    .bind(resolve_by)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                d.state = DisputeState::Accepted;
                d.accepted_at = now;
                d.resolve_by = resolve_by;
                let mut detail = dispute_detail(&d, change.actor);
                detail["late"] = (now > d.accept_by).into();
                let serial = d.serial.clone();
                finish!(tx, change, "certificate.dispute_accept", &serial, detail, d)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), dispute = %id))]
            async fn resolve_dispute(
                &self,
                id: &str,
                resolve: &Resolve,
                t: &CertType,
                signer: &dyn VersionSigner,
                change: Change<'_, (DisputeRecord, CertRecord)>,
            ) -> Result<Outcome<(DisputeRecord, CertRecord)>, CertificateError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim!(tx, change);
                let mut d = Self::lock_dispute(&mut tx, id).await?;
                if d.state != DisputeState::Accepted {
                    return Err(CertificateError::DisputeWrongState {
                        id: id.to_string(),
                        state: d.state.as_str(),
                        detail: "only an accepted dispute can be resolved".into(),
                    });
                }
                let mut cert = Self::load(&mut tx, &d.serial, true)
                    .await?
                    .ok_or_else(|| CertificateError::CertificateNotFound(d.serial.clone()))?;
                let (state, note) = match resolve {
                    Resolve::Rejected(reason) => (DisputeState::Rejected, reason.clone()),
                    Resolve::Corrected(note) => {
                        if cert.state == State::Revoked {
                            return Err(wrong_state(&cert, "a revoked certificate cannot be corrected"));
                        }
                        let current = cert.version.clone();
                        let mut values = current.values.clone();
                        for f in &d.fields {
                            values.insert(f.name.clone(), f.claimed.clone());
                        }
                        // A correction fixes data, not validity: the dates carry over.
                        let validity = Validity {
                            valid_from: current.valid_from.clone(),
                            valid_until: current.valid_until.clone(),
                            not_before: current.not_before,
                            not_after: current.not_after,
                        };
                        let v = supersede!(tx, &cert, &current, t, &values, &validity, signer, change);
                        if cert.state == State::Suspended {
                            // The new version inherits the suspension.
                            set_bit!(tx, v.list_no, StatusPurpose::Suspension, v.list_index, now);
                        }
                        d.corrected_version = v.version;
                        cert.version = v;
                        cert.updated_at = now;
                        (DisputeState::Corrected, note.clone())
                    }
                };
                sqlx::query("UPDATE disputes SET state = $1, resolved_at = $2, resolution = $3, corrected_version = $4 WHERE id = $5")
                    .bind(state.as_str())
                    .bind(now)
                    .bind(&note)
                    .bind(i64::from(d.corrected_version))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                d.state = state;
                d.resolved_at = now;
                d.resolution = note;
                let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
                // Other disputes may still hold some fields open.
                let still: Vec<String> = cert
                    .disputed_fields
                    .iter()
                    .filter(|f| !names.contains(&f.as_str()))
                    .cloned()
                    .collect();
                cert.disputed_fields = still;
                let mut detail = dispute_detail(&d, change.actor);
                detail["late"] = (now > d.resolve_by).into();
                detail["corrected_version"] = d.corrected_version.into();
                detail["certificate_id"] = cert.version.certificate_id.clone().into();
                let serial = d.serial.clone();
                finish!(tx, change, "certificate.dispute_resolve", &serial, detail, (d, cert))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn certificate(&self, serial: &str) -> Result<Option<CertRecord>, CertificateError> {
                let mut conn = self.pool.acquire().await?;
                Self::load(&mut conn, serial, false).await
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn certificates(
                &self,
                holder: Option<&str>,
                after: &str,
                limit: u32,
            ) -> Result<Vec<CertRecord>, CertificateError> {
                let mut conn = self.pool.acquire().await?;
                let serials: Vec<(String,)> = sqlx::query_as(
                    "SELECT serial FROM certificates WHERE serial > $1 AND ($2 = '' OR holder = $2) ORDER BY serial LIMIT $3",
                )
                .bind(after)
                .bind(holder.unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
                let mut out = Vec::with_capacity(serials.len());
                for (s,) in serials {
                    if let Some(c) = Self::load(&mut conn, &s, false).await? {
                        out.push(c);
                    }
                }
                Ok(out)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn versions(&self, serial: &str) -> Result<Vec<VersionRecord>, CertificateError> {
                let rows: Vec<VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM certificate_versions WHERE serial = $1 ORDER BY version"
                ))
                .bind(serial)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(VersionRecord::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn dispute(&self, id: &str) -> Result<Option<DisputeRecord>, CertificateError> {
                let row: Option<DisputeRow> = sqlx::query_as(concat!(
                    "SELECT ", dispute_columns!(), " FROM disputes WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(DisputeRecord::try_from).transpose()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn disputes(
                &self,
                query: &DisputeQuery,
                now: i64,
            ) -> Result<(Vec<DisputeRecord>, u64), CertificateError> {
                let (department, holder) = match &query.scope {
                    DisputeScope::All => ("", ""),
                    DisputeScope::Department(d) => (d.as_str(), ""),
                    DisputeScope::Holder(h) => ("", h.as_str()),
                };
                // Overdue: filed past its acceptance deadline, or accepted past its
                // resolution deadline.
                let rows: Vec<DisputeRow> = sqlx::query_as(concat!(
                    "SELECT ", dispute_columns!(), " FROM disputes WHERE id > $1 ",
                    "AND ($2 = '' OR department = $2) AND ($3 = '' OR holder = $3) ",
                    "AND ($4 = FALSE OR state IN ('filed', 'accepted')) ",
                    "AND ($5 = 0 OR (state = 'filed' AND accept_by < $5) OR (state = 'accepted' AND resolve_by < $5)) ",
                    "ORDER BY id LIMIT $6"
                ))
                .bind(&query.after)
                .bind(department)
                .bind(holder)
                .bind(query.open_only)
                .bind(query.overdue_at)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?;
                let (overdue,): (i64,) = sqlx::query_as(concat!(
                    "SELECT count(*) FROM disputes WHERE ($1 = '' OR department = $1) AND ($2 = '' OR holder = $2) ",
                    "AND ((state = 'filed' AND accept_by < $3) OR (state = 'accepted' AND resolve_by < $3))"
                ))
                .bind(department)
                .bind(holder)
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let list = rows.into_iter().map(DisputeRecord::try_from).collect::<Result<Vec<_>, _>>()?;
                Ok((list, overdue as u64))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn disputed_credentials(&self) -> Result<Vec<(String, Vec<String>)>, CertificateError> {
                let rows: Vec<(String, String)> = sqlx::query_as(concat!(
                    "SELECT v.certificate_id, d.fields_json FROM disputes d JOIN certificate_versions v ",
                    "ON v.serial = d.serial AND v.version = d.version ",
                    "WHERE d.state IN ('filed', 'accepted') ORDER BY v.certificate_id, d.id"
                ))
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(String, Vec<String>)> = Vec::new();
                for (id, json) in rows {
                    let fields: Vec<ClaimedField> =
                        serde_json::from_str(&json).map_err(|_| corrupt("dispute fields", &id))?;
                    if out.last().is_none_or(|(last, _)| *last != id) {
                        out.push((id.clone(), Vec::new()));
                    }
                    if let Some((_, names)) = out.last_mut() {
                        for f in fields {
                            if !names.contains(&f.name) {
                                names.push(f.name);
                            }
                        }
                    }
                }
                Ok(out)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn dispute_counts(&self, now: i64) -> Result<(u64, u64), CertificateError> {
                let (open, overdue): (i64, i64) = sqlx::query_as(concat!(
                    "SELECT count(*), ",
                    "coalesce(sum(CASE WHEN (state = 'filed' AND accept_by < $1) ",
                    "OR (state = 'accepted' AND resolve_by < $1) THEN 1 ELSE 0 END), 0) ",
                    "FROM disputes WHERE state IN ('filed', 'accepted')"
                ))
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                Ok((open as u64, overdue as u64))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn history(&self, serial: &str, after: i64, limit: u32) -> Result<Vec<AuditRecord>, CertificateError> {
                let mut conn = self.pool.acquire().await?;
                Ok(conn.history(serial, after, limit).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn allocated_entries(&self) -> Result<u64, CertificateError> {
                Ok(credmesh_store::status_bits::$dialect::allocated_entries(&self.pool).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_changes(&self) -> Result<u64, CertificateError> {
                let n: Option<(i64,)> = sqlx::query_as("SELECT next FROM counters WHERE name = 'status_changes'")
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(n.map_or(0, |(n,)| n as u64))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_indexes(&self, list_no: u64, purpose: i32) -> Result<Vec<u64>, CertificateError> {
                Ok(credmesh_store::status_bits::$dialect::indexes(&self.pool, list_no, purpose).await?)
            }
        }
    };
}

/// The sqlx database of a store, so the macro can name connections generically.
trait DbOf {
    type Database: sqlx::Database;
}
impl DbOf for SqliteCertificateStore {
    type Database = sqlx::Sqlite;
}
impl DbOf for PgCertificateStore {
    type Database = sqlx::Postgres;
}

impl_store!(
    SqliteCertificateStore,
    credmesh_store::begin_sqlite_write,
    sqlite
);
impl_store!(
    PgCertificateStore,
    credmesh_store::begin_postgres_write,
    postgres
);

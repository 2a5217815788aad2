//! The license service's repository: one trait, a SQLite and a PostgreSQL implementation
//! generated from one body (see `credmesh_store` for why).
//!
//! # One current version
//!
//! Every mutation of an enterprise first locks its register row (`SELECT … FOR UPDATE`
//! on PostgreSQL; SQLite write transactions hold the database write lock from `BEGIN
//! IMMEDIATE`), so changes to one enterprise are serialised and each sees the last
//! committed version. An amendment then, in one transaction: clears `is_current` on
//! version N and sets its revocation and superseded status bits, inserts version N+1
//! with `is_current` set, and moves the register's `current_version` pointer. A partial
//! unique index (`… (uscc) WHERE is_current`) refuses a second current version even if
//! code were wrong, and since the old flag is cleared and the new one set in the same
//! commit, no reader ever sees none.
//!
//! Locks are always taken in one order (idempotency key, enterprise, authority serial,
//! status allocator) so concurrent transactions cannot deadlock. The status allocator is
//! taken last, just before signing, to keep the one row every issuance touches locked
//! for as short a time as possible.

use std::sync::Arc;

use async_trait::async_trait;
use credmesh_proto::credential::v1::StatusPurpose;
use credmesh_store::{
    Db,
    audit::{AuditEntry, AuditLog as _, AuditRecord},
    idempotency::{Claim, IdempotencyKey, IdempotencyStore as _, Outcome},
    sqlx::{self, PgPool, SqlitePool},
};
use credmesh_uscc::Uscc;

use crate::{
    domain::{
        credential::{Placement, serial_text, status_slot},
        id_number::IdHash,
        license::{Amended, Content, Money, iso, parse_date},
    },
    error::LicenseError,
};

/// Who is making a change, for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// Client id.
    pub client_id: &'a str,
    /// Principal kind.
    pub kind: &'a str,
    /// The organisation (USCC) the client acts for, if any.
    pub organization: Option<&'a str>,
    /// W3C trace id of the request, or empty.
    pub trace_id: &'a str,
}

/// Where an enterprise stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Operating.
    Active,
    /// Deregistered (注销).
    Deregistered,
    /// License revoked (吊销).
    Revoked,
}

impl State {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Active => "active",
            State::Deregistered => "deregistered",
            State::Revoked => "revoked",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "active" => Some(State::Active),
            "deregistered" => Some(State::Deregistered),
            "revoked" => Some(State::Revoked),
            _ => None,
        }
    }
}

/// An entry of the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterpriseRecord {
    /// The enterprise's code.
    pub uscc: String,
    /// Name on the current version.
    pub name: String,
    /// State.
    pub state: State,
    /// The current version.
    pub current_version: u32,
    /// The current version's identifier.
    pub license_id: String,
    /// Registration authority's code.
    pub authority: String,
    /// The GB/T 36904 serial all its versions share.
    pub license_serial: String,
    /// Reason of a deregistration or revocation.
    pub state_reason: String,
    /// Registered at.
    pub created_at: i64,
    /// Last changed at.
    pub updated_at: i64,
}

/// A stored license version.
#[derive(Clone, Debug)]
pub struct VersionRecord {
    /// The enterprise.
    pub uscc: Uscc,
    /// Version, from 1.
    pub version: u32,
    /// GB/T 36904 identifier.
    pub license_id: String,
    /// Whether it is the enterprise's current version.
    pub is_current: bool,
    /// What it attests.
    pub content: Content,
    /// Status list number.
    pub list_no: u64,
    /// Index in the list.
    pub list_index: u64,
    /// The signing key's id.
    pub kid: String,
    /// The encoded signed envelope.
    pub envelope: Vec<u8>,
    /// The VC-JWT, signed with the same key at the same time.
    pub vc_jwt: String,
    /// Signed at.
    pub issued_at: i64,
    /// The client that caused it.
    pub issued_by: String,
    /// When a newer version replaced it, or 0.
    pub superseded_at: i64,
    /// When it was revoked, or 0.
    pub revoked_at: i64,
}

/// What a mutation produced.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The enterprise afterwards.
    pub enterprise: EnterpriseRecord,
    /// The version the answer is about (the new one; the revoked one for closures).
    pub version: VersionRecord,
    /// The version an amendment superseded.
    pub superseded: Option<u32>,
}

/// The signed forms of a version.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The signing key's id.
    pub kid: String,
    /// The encoded envelope.
    pub envelope: Vec<u8>,
    /// The VC-JWT.
    pub vc_jwt: String,
}

/// Makes identifiers and signatures inside the store's transactions, once the serial and
/// status entry are allocated.
pub trait VersionIssuer: Send + Sync {
    /// The GB/T 36904 identifier of a version.
    fn license_id(
        &self,
        authority: &Uscc,
        serial: &str,
        version: u32,
    ) -> Result<String, LicenseError>;
    /// Signs a version.
    fn sign(&self, uscc: &Uscc, content: &Content, at: &Placement<'_>) -> Signed;
}

/// Encodes the response stored for idempotent replays.
pub type EncodeResponse<'a> = &'a (dyn Fn(&Issued) -> Vec<u8> + Send + Sync);
/// Works out an amendment from the current version, inside the transaction.
pub type Plan<'a> = &'a (dyn Fn(&VersionRecord) -> Result<Amended, LicenseError> + Send + Sync);

/// A mutation's common context.
#[derive(Clone, Copy)]
pub struct Change<'a> {
    /// Who.
    pub actor: Actor<'a>,
    /// The idempotency key, if the client sent one.
    pub key: Option<&'a IdempotencyKey>,
    /// Encodes the answer for replays.
    pub encode: EncodeResponse<'a>,
    /// Now, Unix seconds.
    pub now: i64,
}

impl std::fmt::Debug for Change<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("actor", &self.actor)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Everything the license service stores.
#[async_trait]
pub trait LicenseStore: Send + Sync + std::fmt::Debug + 'static {
    /// Registers an enterprise with version 1 of its license.
    async fn establish(
        &self,
        uscc: &Uscc,
        content: &Content,
        issuer: &dyn VersionIssuer,
        change: Change<'_>,
    ) -> Result<Outcome<Issued>, LicenseError>;
    /// Issues the next version and supersedes the current one.
    async fn amend(
        &self,
        uscc: &str,
        expected_version: u32,
        plan: Plan<'_>,
        reason: &str,
        issuer: &dyn VersionIssuer,
        change: Change<'_>,
    ) -> Result<Outcome<Issued>, LicenseError>;
    /// Deregisters an enterprise or revokes its license: `closing` is the new state.
    async fn close(
        &self,
        uscc: &str,
        expected_version: u32,
        closing: State,
        reason: &str,
        change: Change<'_>,
    ) -> Result<Outcome<Issued>, LicenseError>;
    /// One enterprise.
    async fn enterprise(&self, uscc: &str) -> Result<Option<EnterpriseRecord>, LicenseError>;
    /// One version.
    async fn version(
        &self,
        uscc: &str,
        version: u32,
    ) -> Result<Option<VersionRecord>, LicenseError>;
    /// Versions after `after`, oldest first.
    async fn versions(
        &self,
        uscc: &str,
        after: u32,
        limit: u32,
    ) -> Result<Vec<VersionRecord>, LicenseError>;
    /// Enterprises with codes after `after`, in code order, optionally filtered.
    async fn enterprises(
        &self,
        after: &str,
        limit: u32,
        state: Option<State>,
        authority: Option<&str>,
    ) -> Result<Vec<EnterpriseRecord>, LicenseError>;
    /// The audit entries of an enterprise after sequence `after`.
    async fn history(
        &self,
        uscc: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, LicenseError>;
    /// How many status entries were allocated.
    async fn allocated_entries(&self) -> Result<u64, LicenseError>;
    /// How many bits of a list and purpose are set (its change counter).
    async fn status_count(&self, list_no: u64, purpose: i32) -> Result<u64, LicenseError>;
    /// The set bits of a list and purpose.
    async fn status_indexes(&self, list_no: u64, purpose: i32) -> Result<Vec<u64>, LicenseError>;
}

/// The store for `db`.
pub fn for_db(db: &Db) -> Arc<dyn LicenseStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteLicenseStore { pool: pool.clone() }),
        Db::Postgres(pool) => Arc::new(PgLicenseStore { pool: pool.clone() }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteLicenseStore {
    pool: SqlitePool,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgLicenseStore {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct EnterpriseRow {
    uscc: String,
    name: String,
    state: String,
    current_version: i64,
    license_id: String,
    authority: String,
    license_serial: String,
    state_reason: String,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(what: &str, key: &str) -> LicenseError {
    LicenseError::Internal(anyhow::anyhow!("stored {what} of {key} is invalid"))
}

impl TryFrom<EnterpriseRow> for EnterpriseRecord {
    type Error = LicenseError;
    fn try_from(r: EnterpriseRow) -> Result<Self, LicenseError> {
        Ok(EnterpriseRecord {
            state: State::parse(&r.state).ok_or_else(|| corrupt("state", &r.uscc))?,
            current_version: u32::try_from(r.current_version)
                .map_err(|_| corrupt("version", &r.uscc))?,
            uscc: r.uscc,
            name: r.name,
            license_id: r.license_id,
            authority: r.authority,
            license_serial: r.license_serial,
            state_reason: r.state_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    uscc: String,
    version: i64,
    license_id: String,
    is_current: bool,
    name: String,
    entity_type: String,
    legal_representative: String,
    rep_id_salt: Option<Vec<u8>>,
    rep_id_hash: Option<Vec<u8>>,
    capital_amount: String,
    capital_currency: String,
    establishment_date: String,
    term_start: String,
    term_end: String,
    domicile: String,
    business_scope: String,
    authority: String,
    issue_date: String,
    list_no: i64,
    list_index: i64,
    kid: String,
    envelope: Vec<u8>,
    vc_jwt: String,
    issued_at: i64,
    issued_by: String,
    superseded_at: i64,
    revoked_at: i64,
}

impl TryFrom<VersionRow> for VersionRecord {
    type Error = LicenseError;
    fn try_from(r: VersionRow) -> Result<Self, LicenseError> {
        let key = format!("{} v{}", r.uscc, r.version);
        let date = |s: &str, what: &str| parse_date(s).ok_or_else(|| corrupt(what, &key));
        let representative_id = match (r.rep_id_salt, r.rep_id_hash) {
            (Some(salt), Some(hash)) => Some(IdHash { salt, hash }),
            _ => None,
        };
        let content = Content {
            name: r.name,
            entity_type: r.entity_type,
            legal_representative: r.legal_representative,
            representative_id,
            capital: Money {
                amount: r.capital_amount,
                currency: r.capital_currency,
            },
            established: date(&r.establishment_date, "establishment date")?,
            term_start: date(&r.term_start, "business term")?,
            term_end: if r.term_end.is_empty() {
                None
            } else {
                Some(date(&r.term_end, "business term")?)
            },
            domicile: r.domicile,
            scope: r.business_scope,
            authority: Uscc::parse(&r.authority).map_err(|_| corrupt("authority", &key))?,
            issue_date: date(&r.issue_date, "issue date")?,
        };
        Ok(VersionRecord {
            uscc: Uscc::parse(&r.uscc).map_err(|_| corrupt("code", &key))?,
            version: u32::try_from(r.version).map_err(|_| corrupt("version", &key))?,
            license_id: r.license_id,
            is_current: r.is_current,
            content,
            list_no: r.list_no as u64,
            list_index: r.list_index as u64,
            kid: r.kid,
            envelope: r.envelope,
            vc_jwt: r.vc_jwt,
            issued_at: r.issued_at,
            issued_by: r.issued_by,
            superseded_at: r.superseded_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// Columns of `enterprises`, in [`EnterpriseRow`] order.
macro_rules! enterprise_columns {
    () => {
        "uscc, name, state, current_version, license_id, authority, license_serial, state_reason, created_at, updated_at"
    };
}

/// Columns of `license_versions`, in [`VersionRow`] order.
macro_rules! version_columns {
    () => {
        "uscc, version, license_id, is_current, name, entity_type, legal_representative, \
         rep_id_salt, rep_id_hash, capital_amount, capital_currency, establishment_date, \
         term_start, term_end, domicile, business_scope, authority, issue_date, list_no, \
         list_index, kid, envelope, vc_jwt, issued_at, issued_by, superseded_at, revoked_at"
    };
}

/// The detail of an audit entry about a version.
fn version_detail(v: &VersionRecord, actor: Actor<'_>) -> serde_json::Value {
    serde_json::json!({
        "version": v.version,
        "license_id": v.license_id,
        "registration_authority": v.content.authority.as_str(),
        "acting_organization": actor.organization,
        "status_list": v.list_no,
        "status_index": v.list_index,
        "kid": v.kid,
    })
}

fn not_active(e: &EnterpriseRecord) -> LicenseError {
    LicenseError::NotActive {
        uscc: e.uscc.clone(),
        state: e.state.as_str(),
    }
}

/// Inserts a version inside a transaction: allocates its status entry (the allocator
/// row stays locked until commit, so it is taken last), signs it and stores it as the
/// current version. Evaluates to the [`VersionRecord`].
macro_rules! insert_version {
    ($tx:ident, $dialect:tt, $uscc:expr, $content:expr, $license_id:expr, $version:expr, $issuer:expr, $change:expr) => {{
        let uscc: &Uscc = $uscc;
        let content: &Content = $content;
        let license_id: String = $license_id;
        let version: u32 = $version;
        let now = $change.now;
        let (entry,): (i64,) = sqlx::query_as(
            "UPDATE status_allocator SET next_index = next_index + 1 WHERE id = 1 RETURNING next_index - 1",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let (list_no, list_index) = status_slot(entry as u64);
        let signed = $issuer.sign(
            uscc,
            content,
            &Placement {
                license_id: &license_id,
                version,
                list_no,
                index: list_index,
                issued_at: now,
            },
        );
        let (salt, hash) = match &content.representative_id {
            Some(h) => (Some(h.salt.clone()), Some(h.hash.clone())),
            None => (None, None),
        };
        sqlx::query(concat!(
            "INSERT INTO license_versions (", version_columns!(), ") VALUES ",
            "($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, ",
            "$18, $19, $20, $21, $22, $23, $24, 0, 0)"
        ))
        .bind(uscc.as_str())
        .bind(i64::from(version))
        .bind(&license_id)
        .bind(&content.name)
        .bind(&content.entity_type)
        .bind(&content.legal_representative)
        .bind(salt)
        .bind(hash)
        .bind(&content.capital.amount)
        .bind(&content.capital.currency)
        .bind(iso(content.established))
        .bind(iso(content.term_start))
        .bind(content.term_end.map(iso).unwrap_or_default())
        .bind(&content.domicile)
        .bind(&content.scope)
        .bind(content.authority.as_str())
        .bind(iso(content.issue_date))
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
            uscc: uscc.clone(),
            version,
            license_id,
            is_current: true,
            content: content.clone(),
            list_no,
            list_index,
            kid: signed.kid,
            envelope: signed.envelope,
            vc_jwt: signed.vc_jwt,
            issued_at: now,
            issued_by: $change.actor.client_id.to_string(),
            superseded_at: 0,
            revoked_at: 0,
        }
    }};
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
    };
}

macro_rules! impl_license_store {
    ($store:ident, $begin:path, $dialect:tt) => {
        impl $store {
            /// Locks and reads an enterprise's register row.
            async fn lock_enterprise<'c, C>(conn: C, uscc: &str) -> Result<EnterpriseRecord, LicenseError>
            where
                C: sqlx::Executor<'c, Database = <$store as DbOf>::Database>,
            {
                let row: Option<EnterpriseRow> = sqlx::query_as(concat!(
                    "SELECT ", enterprise_columns!(), " FROM enterprises WHERE uscc = $1",
                    credmesh_store::for_update!($dialect)
                ))
                .bind(uscc)
                .fetch_optional(conn)
                .await?;
                row.ok_or_else(|| LicenseError::EnterpriseNotFound(uscc.to_string()))?
                    .try_into()
            }
        }

        #[async_trait]
        impl LicenseStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), uscc = %uscc))]
            async fn establish(
                &self,
                uscc: &Uscc,
                content: &Content,
                issuer: &dyn VersionIssuer,
                change: Change<'_>,
            ) -> Result<Outcome<Issued>, LicenseError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                if let Some(key) = change.key {
                    match tx.claim(key, now).await? {
                        Claim::Fresh => {}
                        Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                        Claim::Conflict => return Err(LicenseError::IdempotencyConflict),
                    }
                }
                let (serial,): (i64,) = sqlx::query_as(concat!(
                    "INSERT INTO authority_serials (authority, next_serial) VALUES ($1, 2) ",
                    "ON CONFLICT (authority) DO UPDATE SET next_serial = authority_serials.next_serial + 1 ",
                    "RETURNING next_serial - 1"
                ))
                .bind(content.authority.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let serial = serial_text(serial as u64);
                let license_id = issuer.license_id(&content.authority, &serial, 1)?;
                // A registered code inserts nothing; the rollback returns the serial.
                let inserted = sqlx::query(concat!(
                    "INSERT INTO enterprises (", enterprise_columns!(), ") ",
                    "VALUES ($1, $2, $3, 1, $4, $5, $6, '', $7, $7) ON CONFLICT (uscc) DO NOTHING"
                ))
                .bind(uscc.as_str())
                .bind(&content.name)
                .bind(State::Active.as_str())
                .bind(&license_id)
                .bind(content.authority.as_str())
                .bind(&serial)
                .bind(now)
                .execute(&mut *tx)
                .await;
                if inserted?.rows_affected() == 0 {
                    return Err(LicenseError::EnterpriseExists(uscc.to_string()));
                }
                let version = insert_version!(tx, $dialect, uscc, content, license_id, 1, issuer, change);
                let enterprise = EnterpriseRecord {
                    uscc: uscc.to_string(),
                    name: content.name.clone(),
                    state: State::Active,
                    current_version: 1,
                    license_id: version.license_id.clone(),
                    authority: content.authority.to_string(),
                    license_serial: serial,
                    state_reason: String::new(),
                    created_at: now,
                    updated_at: now,
                };
                let mut detail = version_detail(&version, change.actor);
                detail["name"] = content.name.clone().into();
                detail["legal_representative_id"] =
                    content.representative_id.as_ref().map(|_| "recorded").into();
                tx.append(&AuditEntry {
                    at: now,
                    actor: change.actor.client_id,
                    actor_kind: change.actor.kind,
                    action: "license.establish",
                    target: uscc.as_str(),
                    detail,
                    trace_id: change.actor.trace_id,
                })
                .await?;
                let issued = Issued { enterprise, version, superseded: None };
                if let Some(key) = change.key {
                    tx.complete(key, &(change.encode)(&issued)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(issued))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), uscc = %uscc))]
            async fn amend(
                &self,
                uscc: &str,
                expected_version: u32,
                plan: Plan<'_>,
                reason: &str,
                issuer: &dyn VersionIssuer,
                change: Change<'_>,
            ) -> Result<Outcome<Issued>, LicenseError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                if let Some(key) = change.key {
                    match tx.claim(key, now).await? {
                        Claim::Fresh => {}
                        Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                        Claim::Conflict => return Err(LicenseError::IdempotencyConflict),
                    }
                }
                let mut enterprise = Self::lock_enterprise(&mut *tx, uscc).await?;
                if enterprise.state != State::Active {
                    return Err(not_active(&enterprise));
                }
                let current_version = enterprise.current_version;
                if expected_version != 0 && expected_version != current_version {
                    return Err(LicenseError::VersionMismatch {
                        uscc: uscc.to_string(),
                        expected: expected_version,
                        current: current_version,
                    });
                }
                if current_version >= 999 {
                    return Err(LicenseError::VersionsExhausted(uscc.to_string()));
                }
                let row: VersionRow = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM license_versions WHERE uscc = $1 AND version = $2"
                ))
                .bind(uscc)
                .bind(i64::from(current_version))
                .fetch_one(&mut *tx)
                .await?;
                let mut previous = VersionRecord::try_from(row)?;
                let amended = plan(&previous)?;
                let next = current_version + 1;
                let license_id =
                    issuer.license_id(&amended.content.authority, &enterprise.license_serial, next)?;
                // Version N stops being current before N+1 is inserted as current: the
                // partial unique index allows one current row per enterprise.
                sqlx::query(
                    "UPDATE license_versions SET is_current = FALSE, superseded_at = $1 WHERE uscc = $2 AND version = $3",
                )
                .bind(now)
                .bind(uscc)
                .bind(i64::from(current_version))
                .execute(&mut *tx)
                .await?;
                let code = previous.uscc.clone();
                let version = insert_version!(tx, $dialect, &code, &amended.content, license_id, next, issuer, change);
                for purpose in [StatusPurpose::Revocation, StatusPurpose::Superseded] {
                    set_bit!(tx, previous.list_no, purpose, previous.list_index, now);
                }
                previous.is_current = false;
                previous.superseded_at = now;
                sqlx::query(
                    "UPDATE enterprises SET current_version = $1, license_id = $2, name = $3, updated_at = $4 WHERE uscc = $5",
                )
                .bind(i64::from(next))
                .bind(&version.license_id)
                .bind(&version.content.name)
                .bind(now)
                .bind(uscc)
                .execute(&mut *tx)
                .await?;
                enterprise.current_version = next;
                enterprise.license_id = version.license_id.clone();
                enterprise.name = version.content.name.clone();
                enterprise.updated_at = now;
                let mut detail = version_detail(&version, change.actor);
                detail["superseded_version"] = current_version.into();
                detail["superseded_license_id"] = previous.license_id.clone().into();
                detail["reason"] = reason.into();
                detail["changes"] = amended
                    .changes
                    .iter()
                    .map(|c| serde_json::json!({ "field": c.field, "from": c.from, "to": c.to }))
                    .collect::<Vec<_>>()
                    .into();
                tx.append(&AuditEntry {
                    at: now,
                    actor: change.actor.client_id,
                    actor_kind: change.actor.kind,
                    action: "license.amend",
                    target: uscc,
                    detail,
                    trace_id: change.actor.trace_id,
                })
                .await?;
                let issued = Issued { enterprise, version, superseded: Some(current_version) };
                if let Some(key) = change.key {
                    tx.complete(key, &(change.encode)(&issued)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(issued))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), uscc = %uscc))]
            async fn close(
                &self,
                uscc: &str,
                expected_version: u32,
                closing: State,
                reason: &str,
                change: Change<'_>,
            ) -> Result<Outcome<Issued>, LicenseError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                if let Some(key) = change.key {
                    match tx.claim(key, now).await? {
                        Claim::Fresh => {}
                        Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                        Claim::Conflict => return Err(LicenseError::IdempotencyConflict),
                    }
                }
                let mut enterprise = Self::lock_enterprise(&mut *tx, uscc).await?;
                if enterprise.state != State::Active {
                    return Err(not_active(&enterprise));
                }
                if expected_version != 0 && expected_version != enterprise.current_version {
                    return Err(LicenseError::VersionMismatch {
                        uscc: uscc.to_string(),
                        expected: expected_version,
                        current: enterprise.current_version,
                    });
                }
                sqlx::query("UPDATE license_versions SET revoked_at = $1 WHERE uscc = $2 AND version = $3")
                    .bind(now)
                    .bind(uscc)
                    .bind(i64::from(enterprise.current_version))
                    .execute(&mut *tx)
                    .await?;
                let row: VersionRow = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM license_versions WHERE uscc = $1 AND version = $2"
                ))
                .bind(uscc)
                .bind(i64::from(enterprise.current_version))
                .fetch_one(&mut *tx)
                .await?;
                let version = VersionRecord::try_from(row)?;
                set_bit!(tx, version.list_no, StatusPurpose::Revocation, version.list_index, now);
                sqlx::query("UPDATE enterprises SET state = $1, state_reason = $2, updated_at = $3 WHERE uscc = $4")
                    .bind(closing.as_str())
                    .bind(reason)
                    .bind(now)
                    .bind(uscc)
                    .execute(&mut *tx)
                    .await?;
                enterprise.state = closing;
                enterprise.state_reason = reason.to_string();
                enterprise.updated_at = now;
                let mut detail = version_detail(&version, change.actor);
                detail["reason"] = reason.into();
                tx.append(&AuditEntry {
                    at: now,
                    actor: change.actor.client_id,
                    actor_kind: change.actor.kind,
                    action: match closing {
                        State::Deregistered => "license.deregister",
                        _ => "license.revoke",
                    },
                    target: uscc,
                    detail,
                    trace_id: change.actor.trace_id,
                })
                .await?;
                let issued = Issued { enterprise, version, superseded: None };
                if let Some(key) = change.key {
                    tx.complete(key, &(change.encode)(&issued)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(issued))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn enterprise(&self, uscc: &str) -> Result<Option<EnterpriseRecord>, LicenseError> {
                let row: Option<EnterpriseRow> = sqlx::query_as(concat!(
                    "SELECT ", enterprise_columns!(), " FROM enterprises WHERE uscc = $1"
                ))
                .bind(uscc)
                .fetch_optional(&self.pool)
                .await?;
                row.map(EnterpriseRecord::try_from).transpose()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn version(&self, uscc: &str, version: u32) -> Result<Option<VersionRecord>, LicenseError> {
                let row: Option<VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM license_versions WHERE uscc = $1 AND version = $2"
                ))
                .bind(uscc)
                .bind(i64::from(version))
                .fetch_optional(&self.pool)
                .await?;
                row.map(VersionRecord::try_from).transpose()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn versions(&self, uscc: &str, after: u32, limit: u32) -> Result<Vec<VersionRecord>, LicenseError> {
                let rows: Vec<VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(),
                    " FROM license_versions WHERE uscc = $1 AND version > $2 ORDER BY version LIMIT $3"
                ))
                .bind(uscc)
                .bind(i64::from(after))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(VersionRecord::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn enterprises(
                &self,
                after: &str,
                limit: u32,
                state: Option<State>,
                authority: Option<&str>,
            ) -> Result<Vec<EnterpriseRecord>, LicenseError> {
                let rows: Vec<EnterpriseRow> = sqlx::query_as(concat!(
                    "SELECT ", enterprise_columns!(), " FROM enterprises WHERE uscc > $1 ",
                    "AND ($2 = '' OR state = $2) AND ($3 = '' OR authority = $3) ORDER BY uscc LIMIT $4"
                ))
                .bind(after)
                .bind(state.map(|s| s.as_str()).unwrap_or_default())
                .bind(authority.unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(EnterpriseRecord::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn history(&self, uscc: &str, after: i64, limit: u32) -> Result<Vec<AuditRecord>, LicenseError> {
                let mut conn = self.pool.acquire().await?;
                Ok(conn.history(uscc, after, limit).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn allocated_entries(&self) -> Result<u64, LicenseError> {
                let (n,): (i64,) = sqlx::query_as("SELECT next_index FROM status_allocator WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_count(&self, list_no: u64, purpose: i32) -> Result<u64, LicenseError> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM status_bits WHERE list_no = $1 AND purpose = $2",
                )
                .bind(list_no as i64)
                .bind(i64::from(purpose))
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_indexes(&self, list_no: u64, purpose: i32) -> Result<Vec<u64>, LicenseError> {
                let rows: Vec<(i64,)> = sqlx::query_as(
                    "SELECT list_index FROM status_bits WHERE list_no = $1 AND purpose = $2 ORDER BY list_index",
                )
                .bind(list_no as i64)
                .bind(i64::from(purpose))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(i,)| i as u64).collect())
            }
        }
    };
}

/// The sqlx database of a store, so the macro can name executors generically.
trait DbOf {
    type Database: sqlx::Database;
}
impl DbOf for SqliteLicenseStore {
    type Database = sqlx::Sqlite;
}
impl DbOf for PgLicenseStore {
    type Database = sqlx::Postgres;
}

impl_license_store!(
    SqliteLicenseStore,
    credmesh_store::begin_sqlite_write,
    sqlite
);
impl_license_store!(
    PgLicenseStore,
    credmesh_store::begin_postgres_write,
    postgres
);

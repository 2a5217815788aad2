//! The license service's repository: one trait, a SQLite and a PostgreSQL implementation
//! generated from one body (see `credmesh_store` for why).
//!
//! # One current version
//!
//! Every mutation of an existing enterprise first locks its register row (`SELECT … FOR
//! UPDATE` on PostgreSQL; SQLite write transactions hold the database write lock from
//! `BEGIN IMMEDIATE`), so changes to one enterprise are serialised and each sees the last
//! committed version. An amendment then, in one transaction: clears `is_current` on
//! version N and sets its revocation and superseded status bits, inserts version N+1
//! with `is_current` set, and moves the register's `current_version` pointer. A second
//! current version is refused even if code were wrong: by a partial unique index
//! (`… (uscc) WHERE is_current`) on PostgreSQL, and on SQLite, whose writers take turns,
//! by triggers that look for a current version before one is written (migration 0103).
//! Since the old flag is cleared and the new one set in the same commit, no reader ever
//! sees none.
//!
//! Locks are always taken in one order (idempotency key, enterprise) so concurrent
//! transactions cannot deadlock.
//!
//! # Serials and status entries
//!
//! The authority's serial of a new license and the status entry of every version come
//! from [`Allocator`]: claimed from their counter rows in blocks, by statements of
//! their own, and handed out from memory, so no issuing transaction waits on a counter
//! row. The value is recorded in the transaction that stores the version, under unique
//! constraints (`license_id`, `(list_no, list_index)`).
//!
//! # Establishing in one write
//!
//! An establishment reads nothing: it takes its serial and status entry, signs version 1,
//! and then writes the idempotency record, the register row, the version and the audit
//! entry with one statement, which commits by
//! itself: on PostgreSQL data-modifying CTEs, so one round trip; on SQLite an insert into
//! the `license_establishments` view whose trigger writes the rows (migration 0101), so
//! one wake-up of the connection's worker thread. On SQLite, establishments arriving
//! together are committed together, each statement still atomic by itself
//! ([`group`]). A registered code or a used idempotency key
//! fails the write on a primary key, which rolls all of it back; the store then reads
//! the idempotency record (a replay, or a conflict when the request differs) or reports
//! the code as registered. A concurrent duplicate waits on the first one's uncommitted key
//! or code and then takes the same path, so a retried establish answers the first
//! credential and never registers twice.
//!
//! The idempotency record of an establishment holds a reference to the enterprise, not
//! the encoded answer: the answer repeated the envelope and VC-JWT of version 1 (and its
//! QR form), several kilobytes written twice per registration. A replay rebuilds the
//! first answer from the register row and version 1 (whose signed forms are stored
//! bytes, so the credential is the same byte for byte), with the state they had when
//! written. Amendments and closures still store their encoded answers.

pub mod allocator;
pub mod group;

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
use allocator::Allocator;
use group::GroupCommit;

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
        Db::Sqlite(pool) => Arc::new(SqliteLicenseStore {
            pool: pool.clone(),
            alloc: Arc::default(),
            group: GroupCommit::new(pool.clone()),
        }),
        Db::Postgres(pool) => Arc::new(PgLicenseStore {
            pool: pool.clone(),
            alloc: Arc::default(),
        }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteLicenseStore {
    pool: SqlitePool,
    alloc: Arc<Allocator>,
    /// Establishments of concurrent callers, committed together.
    group: GroupCommit,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgLicenseStore {
    pool: PgPool,
    alloc: Arc<Allocator>,
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

/// Signs version `version` of `uscc` at status entry `entry`: the record to store.
#[allow(clippy::too_many_arguments)]
fn signed_version(
    uscc: &Uscc,
    content: &Content,
    license_id: String,
    version: u32,
    entry: u64,
    issuer: &dyn VersionIssuer,
    issued_by: &str,
    now: i64,
) -> VersionRecord {
    let (list_no, list_index) = status_slot(entry);
    let signed = issuer.sign(
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
        issued_by: issued_by.to_string(),
        superseded_at: 0,
        revoked_at: 0,
    }
}

/// The `INSERT INTO license_versions` of a new current version: `$1` code, `$2` name,
/// `$3` license id, `$4` authority, `$5` version, `$6` issued at, `$7` … `$24` the rest
/// (see [`bind_version!`]).
macro_rules! insert_version_sql {
    () => {
        concat!(
            "INSERT INTO license_versions (",
            version_columns!(),
            ") VALUES ",
            "($1, $5, $3, TRUE, $2, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $4, $18, ",
            "$19, $20, $21, $22, $23, $6, $24, 0, 0)"
        )
    };
}

/// Binds `$1` … `$24` of [`insert_version_sql!`] from a [`VersionRecord`].
macro_rules! bind_version {
    ($query:expr, $v:expr) => {{
        let v: &VersionRecord = $v;
        let (salt, hash) = match &v.content.representative_id {
            Some(h) => (Some(h.salt.as_slice()), Some(h.hash.as_slice())),
            None => (None::<&[u8]>, None::<&[u8]>),
        };
        $query
            .bind(v.uscc.as_str())
            .bind(v.content.name.as_str())
            .bind(v.license_id.as_str())
            .bind(v.content.authority.as_str())
            .bind(i64::from(v.version))
            .bind(v.issued_at)
            .bind(v.content.entity_type.as_str())
            .bind(v.content.legal_representative.as_str())
            .bind(salt)
            .bind(hash)
            .bind(v.content.capital.amount.as_str())
            .bind(v.content.capital.currency.as_str())
            .bind(iso(v.content.established))
            .bind(iso(v.content.term_start))
            .bind(v.content.term_end.map(iso).unwrap_or_default())
            .bind(v.content.domicile.as_str())
            .bind(v.content.scope.as_str())
            .bind(iso(v.content.issue_date))
            .bind(v.list_no as i64)
            .bind(v.list_index as i64)
            .bind(v.kid.as_str())
            .bind(v.envelope.as_slice())
            .bind(v.vc_jwt.as_str())
            .bind(v.issued_by.as_str())
    }};
}

/// The register row, version 1 and the audit entry of an establishment on PostgreSQL:
/// data-modifying CTEs and one final INSERT, one statement; `$25` serial, `$26` actor
/// kind, `$27` audit detail, `$28` trace id, the rest as in [`insert_version_sql!`].
macro_rules! establish_rows {
    () => {
        concat!(
            "e AS (",
            insert_enterprise_sql!(),
            "), v AS (",
            insert_version_sql!(),
            ") ",
            insert_audit_sql!()
        )
    };
}

macro_rules! insert_enterprise_sql {
    () => {
        concat!(
            "INSERT INTO enterprises (",
            enterprise_columns!(),
            ") ",
            "VALUES ($1, $2, 'active', 1, $3, $4, $25, '', $6, $6)"
        )
    };
}

macro_rules! insert_audit_sql {
    () => {
        concat!(
            "INSERT INTO audit_log (at, actor, actor_kind, action, target, detail, trace_id) ",
            "VALUES ($6, $24, $26, 'license.establish', $1, $27, $28)"
        )
    };
}

/// The idempotency record of an establishment, with its answer: `$29` scope, `$30` key,
/// `$31` request hash, `$32` the encoded answer.
macro_rules! insert_idempotency_sql {
    () => {
        "INSERT INTO idempotency (scope, key, request_hash, response, created_at) VALUES ($29, $30, $31, $32, $6)"
    };
}

/// The columns of SQLite's `license_establishments` view (migration 0101) bound to `$1`
/// … `$28`.
macro_rules! establishment_columns {
    () => {
        "uscc, name, license_id, authority, version, issued_at, entity_type, \
         legal_representative, rep_id_salt, rep_id_hash, capital_amount, capital_currency, \
         establishment_date, term_start, term_end, domicile, business_scope, issue_date, \
         list_no, list_index, kid, envelope, vc_jwt, issued_by, license_serial, actor_kind, \
         detail, trace_id"
    };
}

/// The whole write of an establishment as one statement, with (`keyed`) or without an idempotency record.
macro_rules! establish_sql {
    (postgres, keyed) => {
        concat!(
            "WITH i AS (",
            insert_idempotency_sql!(),
            "), ",
            establish_rows!()
        )
    };
    (postgres, unkeyed) => {
        concat!("WITH ", establish_rows!())
    };
    (sqlite, keyed) => {
        concat!(
            "INSERT INTO license_establishments (",
            establishment_columns!(),
            ", idempotency_scope, idempotency_key, request_hash, response) VALUES (",
            "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, ",
            "$19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)"
        )
    };
    (sqlite, unkeyed) => {
        concat!(
            "INSERT INTO license_establishments (",
            establishment_columns!(),
            ") VALUES (",
            "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, ",
            "$19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
        )
    };
}

/// Runs the whole write of an establishment ([`establish_sql!`]): one statement that
/// commits by itself. On PostgreSQL it runs in autocommit, one round trip; on SQLite it
/// goes through the store's [`GroupCommit`], which runs it alone in autocommit when
/// nothing else is pending (one wake-up of the connection's worker thread) and in one
/// transaction with concurrent establishments otherwise. Evaluates to
/// `Result<(), sqlx::Error>`.
macro_rules! write_at_once {
    (sqlite, $store:expr, $query:expr) => {
        $store.group.write($query).await
    };
    (postgres, $store:expr, $query:expr) => {
        $query.execute(&$store.pool).await.map(drop)
    };
}

/// Runs one statement answering one row as a transaction of its own, in autocommit.
/// Evaluates to `Result<Row, sqlx::Error>`.
///
/// On SQLite a statement that writes takes the write lock when it starts (waiting in the
/// busy handler like `BEGIN IMMEDIATE`), so it cannot meet the stale-snapshot `SQLITE_BUSY`
/// of a transaction that reads first. Its rows are all read (`fetch_all`): an autocommit
/// statement commits when it has run to the end, and one left at its first row would
/// hold the write lock until the connection reused the statement.
macro_rules! fetch_alone {
    (postgres, $pool:expr, $query:expr) => {
        $query.fetch_one($pool).await
    };
    (sqlite, $pool:expr, $query:expr) => {
        $query
            .fetch_all($pool)
            .await
            .and_then(|rows| rows.into_iter().next().ok_or(sqlx::Error::RowNotFound))
    };
}

/// Whether a unique violation says the enterprise is registered already. PostgreSQL
/// runs the CTEs of an establishment in no set order, so the existing code may first
/// collide with its register row or with its version 1 (primary key, or the one
/// current version); SQLite's trigger inserts the register row first and names the
/// column.
fn already_registered(err: &sqlx::Error) -> bool {
    const CONSTRAINTS: [&str; 3] = [
        "enterprises_pkey",
        "license_versions_pkey",
        "license_versions_one_current",
    ];
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                && (db.constraint().is_some_and(|c| CONSTRAINTS.contains(&c))
                    || db.message().ends_with("failed: enterprises.uscc"))
        }
        _ => false,
    }
}

/// The page of the register after `$1`, with `$2` … the state (when not active) and the
/// authority filtered on, and the limit last. One statement per filter, not one with
/// `($2 = '' OR state = $2)`: neither planner uses an index for a filter written so
/// (PostgreSQL's generic plan nor SQLite's). A state other than active is looked up
/// in `enterprises_closed`, whose predicate the query repeats so both planners can use
/// it; the index holds only closed enterprises, so an establishment does not write it
/// (migration 0102). Active enterprises are nearly all of them: the code order is the
/// way to walk them.
fn list_enterprises_sql(state: Option<State>, by_authority: bool) -> &'static str {
    macro_rules! select {
        ($($where:literal),+) => {
            concat!("SELECT ", enterprise_columns!(), " FROM enterprises WHERE ", $($where),+)
        };
    }
    match (state, by_authority) {
        (None, false) => select!("uscc > $1 ORDER BY uscc LIMIT $2"),
        (None, true) => select!("authority = $2 AND uscc > $1 ORDER BY uscc LIMIT $3"),
        (Some(State::Active), false) => {
            select!("uscc > $1 AND state = 'active' ORDER BY uscc LIMIT $2")
        }
        (Some(State::Active), true) => {
            select!("authority = $2 AND uscc > $1 AND state = 'active' ORDER BY uscc LIMIT $3")
        }
        (Some(_), false) => {
            select!("state = $2 AND state <> 'active' AND uscc > $1 ORDER BY uscc LIMIT $3")
        }
        (Some(_), true) => select!(
            "authority = $3 AND state = $2 AND state <> 'active' AND uscc > $1 ",
            "ORDER BY uscc LIMIT $4"
        ),
    }
}

/// What an establishment's idempotency record holds instead of its answer: this prefix
/// and the enterprise's code. An encoded answer (what records held before) starts with
/// a protobuf field tag, never with this.
const ESTABLISHMENT_REFERENCE: &[u8] = b"@establishment:";

/// The idempotency record of the establishment of `uscc`.
fn establishment_reference(uscc: &str) -> Vec<u8> {
    [ESTABLISHMENT_REFERENCE, uscc.as_bytes()].concat()
}

/// Whether a mutation certainly stored nothing, so the serial and status entry it took
/// can be given out again: it was refused, or answered a replay. A database failure may
/// have come after the commit, so its values are never reused.
fn nothing_written(outcome: &Result<Outcome<Issued>, LicenseError>) -> bool {
    match outcome {
        Ok(Outcome::Done(_)) => false,
        Ok(Outcome::Replayed(_)) => true,
        Err(LicenseError::Internal(_)) => false,
        Err(_) => true,
    }
}

/// The purpose under which the enterprises' standing bits are stored in `status_bits`
/// (outside `StatusPurpose`'s values): a set bit at the entry of an enterprise's first
/// version means the enterprise was deregistered or revoked. Published as the
/// revocation bitstring of the standing lists (`SH/license/e<n>`).
pub const STANDING_PURPOSE: i32 = 101;

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

            /// Claims `n` status entries; the first.
            async fn claim_entries(&self, n: u64) -> Result<u64, LicenseError> {
                let claim = sqlx::query_as::<_, (i64,)>(
                    "UPDATE status_allocator SET next_index = next_index + $1 WHERE id = 1 RETURNING next_index - $1",
                )
                .bind(n as i64);
                let (first,) = fetch_alone!($dialect, &self.pool, claim)?;
                Ok(first as u64)
            }

            /// Claims `n` serials of `authority`; the first.
            async fn claim_serials(&self, authority: &str, n: u64) -> Result<u64, LicenseError> {
                let claim = sqlx::query_as::<_, (i64,)>(concat!(
                    "INSERT INTO authority_serials (authority, next_serial) VALUES ($1, 1 + CAST($2 AS BIGINT)) ",
                    "ON CONFLICT (authority) DO UPDATE SET next_serial = authority_serials.next_serial + $2 ",
                    "RETURNING next_serial - $2"
                ))
                .bind(authority)
                .bind(n as i64);
                let (first,) = fetch_alone!($dialect, &self.pool, claim)?;
                Ok(first as u64)
            }

            /// Establishes with serial `serial` and status entry `entry`: signs first, then
            /// writes the register row, version 1, the audit entry and the stored answer
            /// at once (see the module docs).
            async fn write_establishment(
                &self,
                uscc: &Uscc,
                content: &Content,
                issuer: &dyn VersionIssuer,
                change: Change<'_>,
                serial: u64,
                entry: u64,
            ) -> Result<Outcome<Issued>, LicenseError> {
                let now = change.now;
                let serial = serial_text(serial);
                let license_id = issuer.license_id(&content.authority, &serial, 1)?;
                let version = signed_version(
                    uscc, content, license_id, 1, entry, issuer, change.actor.client_id, now,
                );
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
                let detail = detail.to_string();
                let issued = Issued { enterprise, version, superseded: None };
                // The record keeps a reference, not the answer: the answer is rebuilt
                // from the rows on a replay (see `replayed_establishment`).
                let answer = change.key.map(|_| establishment_reference(uscc.as_str()));
                let query = bind_version!(
                    sqlx::query(match change.key {
                        Some(_) => establish_sql!($dialect, keyed),
                        None => establish_sql!($dialect, unkeyed),
                    }),
                    &issued.version
                )
                .bind(issued.enterprise.license_serial.as_str())
                .bind(change.actor.kind)
                .bind(detail.as_str())
                .bind(change.actor.trace_id);
                let query = match (change.key, &answer) {
                    (Some(key), Some(answer)) => query
                        .bind(key.scope())
                        .bind(key.key())
                        .bind(key.request_hash())
                        .bind(answer.as_slice()),
                    _ => query,
                };
                match write_at_once!($dialect, self, query) {
                    Ok(()) => Ok(Outcome::Done(issued)),
                    Err(err) if credmesh_store::is_unique_violation(&err) => {
                        // Either the request was made before (its answer is stored) or
                        // the code is registered; nothing of this attempt was written.
                        if let Some(key) = change.key {
                            let mut conn = self.pool.acquire().await?;
                            match conn.recorded(key).await? {
                                Some(Claim::Replay(bytes)) => {
                                    drop(conn);
                                    return self.replayed_establishment(uscc.as_str(), bytes, change.encode).await;
                                }
                                Some(_) => return Err(LicenseError::IdempotencyConflict),
                                None => {}
                            }
                        }
                        if already_registered(&err) {
                            Err(LicenseError::EnterpriseExists(uscc.to_string()))
                        } else {
                            Err(err.into())
                        }
                    }
                    Err(err) => Err(err.into()),
                }
            }

            /// The answer of a replayed establishment of `uscc` whose idempotency record
            /// holds `recorded`: the first answer rebuilt from the register row and
            /// version 1 as they were when written (active, version 1 current, neither
            /// superseded nor revoked), whatever happened to the enterprise since. The
            /// signed forms are the stored bytes, so the credential is the first one byte
            /// for byte. A record written before references were stored holds the
            /// encoded answer itself, which is answered as it is.
            async fn replayed_establishment(
                &self,
                uscc: &str,
                recorded: Vec<u8>,
                encode: EncodeResponse<'_>,
            ) -> Result<Outcome<Issued>, LicenseError> {
                if !recorded.starts_with(ESTABLISHMENT_REFERENCE) {
                    return Ok(Outcome::Replayed(recorded));
                }
                if recorded[ESTABLISHMENT_REFERENCE.len()..] != *uscc.as_bytes() {
                    return Err(corrupt("idempotency record", uscc));
                }
                let enterprise: EnterpriseRow = sqlx::query_as(concat!(
                    "SELECT ", enterprise_columns!(), " FROM enterprises WHERE uscc = $1"
                ))
                .bind(uscc)
                .fetch_one(&self.pool)
                .await?;
                let version: VersionRow = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM license_versions WHERE uscc = $1 AND version = 1"
                ))
                .bind(uscc)
                .fetch_one(&self.pool)
                .await?;
                let mut version = VersionRecord::try_from(version)?;
                version.is_current = true;
                version.superseded_at = 0;
                version.revoked_at = 0;
                let enterprise = EnterpriseRecord {
                    name: version.content.name.clone(),
                    state: State::Active,
                    current_version: 1,
                    license_id: version.license_id.clone(),
                    authority: version.content.authority.to_string(),
                    state_reason: String::new(),
                    updated_at: enterprise.created_at,
                    ..EnterpriseRecord::try_from(enterprise)?
                };
                let issued = Issued { enterprise, version, superseded: None };
                Ok(Outcome::Replayed(encode(&issued)))
            }

            /// Amends with status entry `entry` for the new version.
            #[allow(clippy::too_many_arguments)]
            async fn write_amendment(
                &self,
                uscc: &str,
                expected_version: u32,
                plan: Plan<'_>,
                reason: &str,
                issuer: &dyn VersionIssuer,
                change: Change<'_>,
                entry: u64,
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
                let version = signed_version(
                    &previous.uscc,
                    &amended.content,
                    license_id,
                    next,
                    entry,
                    issuer,
                    change.actor.client_id,
                    now,
                );
                bind_version!(sqlx::query(insert_version_sql!()), &version)
                    .execute(&mut *tx)
                    .await?;
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
                let authority = content.authority.as_str();
                let serial = self
                    .alloc
                    .serials(authority)
                    .take(|n| self.claim_serials(authority, n))
                    .await?;
                let entry = self.alloc.entries.take(|n| self.claim_entries(n)).await?;
                let outcome = self
                    .write_establishment(uscc, content, issuer, change, serial.value(), entry.value())
                    .await;
                if nothing_written(&outcome) {
                    serial.give_back();
                    entry.give_back();
                }
                outcome
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
                // Taken before the transaction: on SQLite a claim needs the write lock
                // the transaction would hold.
                let entry = self.alloc.entries.take(|n| self.claim_entries(n)).await?;
                let outcome = self
                    .write_amendment(uscc, expected_version, plan, reason, issuer, change, entry.value())
                    .await;
                if nothing_written(&outcome) {
                    entry.give_back();
                }
                outcome
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
                // The enterprise's standing bit, at its first version's entry, which its
                // enterprise code and presentations name.
                let (list_no, list_index) = if version.version == 1 {
                    (version.list_no as i64, version.list_index as i64)
                } else {
                    sqlx::query_as::<_, (i64, i64)>(
                        "SELECT list_no, list_index FROM license_versions WHERE uscc = $1 AND version = 1",
                    )
                    .bind(uscc)
                    .fetch_one(&mut *tx)
                    .await?
                };
                set_bit!(tx, list_no, STANDING_PURPOSE, list_index, now);
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
                let closed = state.filter(|s| *s != State::Active);
                let mut query = sqlx::query_as(list_enterprises_sql(state, authority.is_some())).bind(after);
                if let Some(s) = closed {
                    query = query.bind(s.as_str());
                }
                if let Some(a) = authority {
                    query = query.bind(a);
                }
                let rows: Vec<EnterpriseRow> = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
                rows.into_iter().map(EnterpriseRecord::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn history(&self, uscc: &str, after: i64, limit: u32) -> Result<Vec<AuditRecord>, LicenseError> {
                let mut conn = self.pool.acquire().await?;
                Ok(conn.history(uscc, after, limit).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn allocated_entries(&self) -> Result<u64, LicenseError> {
                Ok(credmesh_store::status_bits::$dialect::allocated_entries(&self.pool).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_count(&self, list_no: u64, purpose: i32) -> Result<u64, LicenseError> {
                Ok(credmesh_store::status_bits::$dialect::count(&self.pool, list_no, purpose).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_indexes(&self, list_no: u64, purpose: i32) -> Result<Vec<u64>, LicenseError> {
                Ok(credmesh_store::status_bits::$dialect::indexes(&self.pool, list_no, purpose).await?)
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

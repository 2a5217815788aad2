//! The inspection service's repository: one trait, a SQLite and a PostgreSQL
//! implementation generated from one body with `$1` parameters (see `credmesh_store`).
//!
//! # One decision per enterprise at a time
//!
//! Planning and joining first lock the enterprise's row in `inspected_enterprises`
//! (inserted if missing, then `SELECT … FOR UPDATE` on PostgreSQL; SQLite write
//! transactions hold the database write lock from `BEGIN IMMEDIATE`). The facts the
//! rules need are read after the lock and the code is written before the commit, so two
//! departments planning for one enterprise at the same instant are decided one after
//! the other: the second sees the first's inspection and cannot pass a cap of 1.
//!
//! Locks are taken in one order (idempotency key, enterprise, status allocator), the
//! allocator last, just before signing, so concurrent transactions cannot deadlock.

use std::sync::Arc;

use async_trait::async_trait;
use credmesh_proto::credential::v1::StatusPurpose;
use credmesh_store::{
    Db,
    audit::{AuditEntry, AuditLog as _},
    idempotency::{Claim, IdempotencyKey, IdempotencyStore as _, Outcome},
    sqlx::{self, PgPool, SqlitePool},
};

use crate::{
    domain::{
        code::{CodeContent, status_slot},
        input::NamedInspector,
        rules::{self, Alert, Basis, DAY, Decision, Facts, Grade, Kind, Policy, Refusal, Trigger},
    },
    error::InspectionError,
};

/// Who is making a change, for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// Client id.
    pub client_id: &'a str,
    /// Principal kind.
    pub kind: &'a str,
    /// W3C trace id, or empty.
    pub trace_id: &'a str,
}

/// A mutation's common context.
#[derive(Clone, Copy)]
pub struct Change<'a> {
    /// Who.
    pub actor: Actor<'a>,
    /// The idempotency key, if any.
    pub key: Option<&'a IdempotencyKey>,
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

/// Where an inspection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Code issued.
    Issued,
    /// Code shown on site.
    Shown,
    /// Result recorded.
    Completed,
}

impl State {
    /// Stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Issued => "issued",
            State::Shown => "shown",
            State::Completed => "completed",
        }
    }

    fn parse(s: &str) -> Option<State> {
        match s {
            "issued" => Some(State::Issued),
            "shown" => Some(State::Shown),
            "completed" => Some(State::Completed),
            _ => None,
        }
    }
}

/// A participating department.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantRecord {
    /// Department USCC.
    pub department: String,
    /// Items.
    pub items: Vec<String>,
    /// Basis.
    pub basis: Basis,
    /// Joined at.
    pub joined_at: i64,
    /// Inspected the enterprise before within 12 months.
    pub repeat: bool,
}

/// An inspector on a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectorRecord {
    /// Client id.
    pub client_id: String,
    /// Certificate number.
    pub certificate: String,
    /// Department.
    pub department: String,
}

/// A stored inspection.
#[derive(Clone, Debug)]
pub struct InspectionRecord {
    /// Id.
    pub id: String,
    /// Sequence (page order).
    pub seq: i64,
    /// Enterprise.
    pub uscc: String,
    /// Enterprise name.
    pub enterprise_name: String,
    /// Any participant's basis is routine.
    pub routine: bool,
    /// Window.
    pub window: (i64, i64),
    /// State.
    pub state: State,
    /// Planned overriding conflicts.
    pub multi_head: bool,
    /// Override reason.
    pub override_reason: String,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// Code version.
    pub code_version: u32,
    /// Status list and index.
    pub status: (u64, u64),
    /// Signing key.
    pub kid: String,
    /// Encoded envelope.
    pub envelope: Vec<u8>,
    /// VC-JWT.
    pub vc_jwt: String,
    /// Shown at, or 0.
    pub shown_at: i64,
    /// Completed at, or 0.
    pub completed_at: i64,
    /// Findings.
    pub has_findings: bool,
    /// Summary.
    pub summary: String,
    /// Recorded by.
    pub recorded_by: String,
    /// Evaluated.
    pub evaluated: bool,
    /// Created at.
    pub created_at: i64,
    /// Created by.
    pub created_by: String,
    /// Departments, planner first.
    pub participants: Vec<ParticipantRecord>,
    /// Inspectors.
    pub inspectors: Vec<InspectorRecord>,
}

/// The signed forms of a code.
#[derive(Clone, Debug)]
pub struct Signed {
    /// Key id.
    pub kid: String,
    /// Encoded envelope.
    pub envelope: Vec<u8>,
    /// VC-JWT.
    pub vc_jwt: String,
}

/// Signs codes inside the store's transactions, once the status entry is allocated.
pub trait CodeSigner: Send + Sync {
    /// Signs a code.
    fn sign(&self, content: &CodeContent<'_>) -> Signed;
}

/// A plan, validated.
#[derive(Clone, Debug)]
pub struct NewPlan {
    /// Fresh inspection id.
    pub id: String,
    /// Enterprise.
    pub uscc: String,
    /// Enterprise name (from its verified license).
    pub enterprise_name: String,
    /// Planning department.
    pub department: String,
    /// Basis.
    pub basis: Basis,
    /// Items.
    pub items: Vec<String>,
    /// Inspectors.
    pub inspectors: Vec<NamedInspector>,
    /// Window.
    pub window: (i64, i64),
    /// Override reason (may be empty).
    pub override_reason: String,
}

/// A join, validated.
#[derive(Clone, Debug)]
pub struct NewJoin {
    /// The inspection.
    pub inspection_id: String,
    /// Joining department.
    pub department: String,
    /// Basis.
    pub basis: Basis,
    /// Items.
    pub items: Vec<String>,
    /// Inspectors.
    pub inspectors: Vec<NamedInspector>,
}

/// What a plan produced.
#[derive(Clone, Debug)]
pub enum Planned {
    /// Code issued.
    Issued(Box<InspectionRecord>),
    /// Conflicting inspections.
    Conflict(Vec<InspectionRecord>),
    /// Refused.
    Refused(Refusal),
}

/// A result to record.
#[derive(Clone, Debug)]
pub struct NewResult<'a> {
    /// Inspection.
    pub inspection_id: &'a str,
    /// Recording inspector's client id.
    pub inspector: &'a str,
    /// The certificate number in the inspector's token.
    pub certificate: Option<&'a str>,
    /// Findings.
    pub has_findings: bool,
    /// Summary.
    pub summary: &'a str,
}

/// An evaluation to record.
#[derive(Clone, Debug)]
pub struct NewEvaluation<'a> {
    /// Inspection.
    pub inspection_id: &'a str,
    /// The evaluating enterprise.
    pub uscc: &'a str,
    /// Score 1–5.
    pub score: u32,
    /// Tags.
    pub tags: &'a [String],
    /// Comment.
    pub comment: &'a str,
}

/// A validated policy entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyItem {
    /// A credit grade.
    Grade {
        /// Enterprise.
        uscc: String,
        /// Grade.
        grade: Grade,
    },
    /// Monitoring list membership.
    Monitoring {
        /// Enterprise.
        uscc: String,
        /// Removed from the list.
        removed: bool,
    },
    /// Do-not-disturb item, for one enterprise or (empty) all.
    DoNotDisturb {
        /// Item.
        item: String,
        /// Enterprise or empty.
        uscc: String,
        /// Removed from the list.
        removed: bool,
    },
    /// A non-site check.
    NonSite {
        /// Enterprise.
        uscc: String,
        /// Item.
        item: String,
        /// When.
        checked_at: i64,
        /// Clean.
        clean: bool,
    },
}

impl PolicyItem {
    /// Stored kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyItem::Grade { .. } => "credit_grade",
            PolicyItem::Monitoring { .. } => "monitoring_list",
            PolicyItem::DoNotDisturb { .. } => "do_not_disturb",
            PolicyItem::NonSite { .. } => "non_site_check",
        }
    }
}

/// A stored policy change.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PolicyChangeRecord {
    /// Sequence.
    pub id: i64,
    /// Kind name.
    pub kind: String,
    /// Enterprise.
    pub uscc: String,
    /// Item.
    pub item: String,
    /// Grade letter or empty.
    pub grade: String,
    /// Clean.
    pub clean: bool,
    /// Checked at.
    pub checked_at: i64,
    /// Removed.
    pub removed: bool,
    /// Note.
    pub note: String,
    /// When applied.
    pub changed_at: i64,
    /// By whom.
    pub changed_by: String,
}

/// Which inspections statistics are about.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// A department's.
    Department(&'a str),
    /// An enterprise's.
    Enterprise(&'a str),
}

/// One inspection as statistics see it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StatRow {
    /// Id.
    pub id: String,
    /// Enterprise.
    pub uscc: String,
    /// Routine.
    pub routine: bool,
    /// Multi-head.
    pub multi_head: bool,
    /// Alerts.
    pub alert_count: i64,
    /// State.
    pub state: String,
    /// Departments taking part.
    pub departments: i64,
    /// Repeat (for the department, or any participant's for an enterprise).
    pub is_repeat: bool,
    /// Evaluation score, 0 when none.
    pub score: i64,
    /// Evaluation tags (JSON), empty when none.
    pub tags: String,
}

/// Encodes a plan's answer for idempotent replays.
pub type EncodePlanned<'a> = &'a (dyn Fn(&Planned) -> Vec<u8> + Send + Sync);
/// Encodes a join's answer for idempotent replays.
pub type EncodeJoined<'a> =
    &'a (dyn Fn(&Result<InspectionRecord, Refusal>) -> Vec<u8> + Send + Sync);
/// Encodes an inspection answer for idempotent replays.
pub type EncodeRecord<'a> = &'a (dyn Fn(&InspectionRecord) -> Vec<u8> + Send + Sync);
/// Encodes a number answer for idempotent replays.
pub type EncodeNumber<'a> = &'a (dyn Fn(i64) -> Vec<u8> + Send + Sync);

/// Everything the inspection service stores.
#[async_trait]
pub trait InspectionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Decides a plan under the enterprise's lock and issues its code when it passes.
    async fn plan(
        &self,
        plan: &NewPlan,
        policy: &Policy,
        signer: &dyn CodeSigner,
        encode: EncodePlanned<'_>,
        change: Change<'_>,
    ) -> Result<Outcome<Planned>, InspectionError>;
    /// Joins a department to an inspection and re-issues its code.
    async fn join(
        &self,
        join: &NewJoin,
        policy: &Policy,
        signer: &dyn CodeSigner,
        encode: EncodeJoined<'_>,
        change: Change<'_>,
    ) -> Result<Outcome<Result<InspectionRecord, Refusal>>, InspectionError>;
    /// One inspection.
    async fn inspection(&self, id: &str) -> Result<Option<InspectionRecord>, InspectionError>;
    /// A page of inspections with `seq < before` (0: from the newest), newest first.
    async fn inspections(
        &self,
        scope: Scope<'_>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<InspectionRecord>, InspectionError>;
    /// Records that a code was shown; `Ok(true)` on the first time.
    async fn shown(&self, id: &str, change: Change<'_>) -> Result<bool, InspectionError>;
    /// Records a result (rule 6 checked under the row lock).
    async fn record(
        &self,
        result: &NewResult<'_>,
        encode: EncodeRecord<'_>,
        change: Change<'_>,
    ) -> Result<Outcome<InspectionRecord>, InspectionError>;
    /// Records an evaluation (rule 7 checked under the row lock).
    async fn evaluate(
        &self,
        evaluation: &NewEvaluation<'_>,
        policy: &Policy,
        encode: EncodeNumber<'_>,
        change: Change<'_>,
    ) -> Result<Outcome<i64>, InspectionError>;
    /// Inspections of a scope with window start in `[from, to)`.
    async fn stat_rows(
        &self,
        scope: Scope<'_>,
        from: i64,
        to: i64,
    ) -> Result<Vec<StatRow>, InspectionError>;
    /// Applies policy entries, all or nothing.
    async fn import_policy(
        &self,
        items: &[(PolicyItem, String)],
        encode: EncodeNumber<'_>,
        change: Change<'_>,
    ) -> Result<Outcome<u32>, InspectionError>;
    /// Policy changes after `after`, oldest first.
    async fn policy_history(
        &self,
        kind: Option<&str>,
        uscc: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<PolicyChangeRecord>, InspectionError>;
    /// An enterprise's grade and when it was set.
    async fn grade(&self, uscc: &str) -> Result<Option<(Grade, i64)>, InspectionError>;
    /// Allocated status entries.
    async fn allocated_entries(&self) -> Result<u64, InspectionError>;
    /// Set bits of a list and purpose, counted.
    async fn status_count(&self, list_no: u64, purpose: i32) -> Result<u64, InspectionError>;
    /// Set bits of a list and purpose.
    async fn status_indexes(&self, list_no: u64, purpose: i32)
    -> Result<Vec<u64>, InspectionError>;
}

/// The store for `db`.
pub fn for_db(db: &Db) -> Arc<dyn InspectionStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteInspectionStore { pool: pool.clone() }),
        Db::Postgres(pool) => Arc::new(PgInspectionStore { pool: pool.clone() }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteInspectionStore {
    pool: SqlitePool,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgInspectionStore {
    pool: PgPool,
}

fn corrupt(what: &str, key: &str) -> InspectionError {
    InspectionError::Internal(anyhow::anyhow!("stored {what} of {key} is invalid"))
}

#[derive(sqlx::FromRow)]
struct InspectionRow {
    id: String,
    seq: i64,
    uscc: String,
    enterprise_name: String,
    routine: bool,
    window_start: i64,
    window_end: i64,
    state: String,
    multi_head: bool,
    override_reason: String,
    alerts: String,
    code_version: i64,
    list_no: i64,
    list_index: i64,
    kid: String,
    envelope: Vec<u8>,
    vc_jwt: String,
    shown_at: i64,
    completed_at: i64,
    has_findings: bool,
    summary: String,
    recorded_by: String,
    evaluated: bool,
    created_at: i64,
    created_by: String,
}

macro_rules! inspection_columns {
    () => {
        "id, seq, uscc, enterprise_name, routine, window_start, window_end, state, multi_head, \
         override_reason, alerts, code_version, list_no, list_index, kid, envelope, vc_jwt, \
         shown_at, completed_at, has_findings, summary, recorded_by, evaluated, created_at, created_by"
    };
}

#[derive(sqlx::FromRow)]
struct ParticipantRow {
    department: String,
    kind: String,
    items: String,
    plan_number: String,
    trigger_name: String,
    trigger_reason: String,
    is_repeat: bool,
    joined_at: i64,
}

#[derive(sqlx::FromRow)]
struct InspectorRow {
    client_id: String,
    certificate: String,
    department: String,
}

fn record_from(
    r: InspectionRow,
    participants: Vec<ParticipantRow>,
    inspectors: Vec<InspectorRow>,
) -> Result<InspectionRecord, InspectionError> {
    let participants = participants
        .into_iter()
        .map(|p| {
            Ok(ParticipantRecord {
                basis: Basis {
                    kind: Kind::parse(&p.kind).ok_or_else(|| corrupt("type", &r.id))?,
                    plan_number: p.plan_number,
                    trigger: Trigger::parse(&p.trigger_name),
                    trigger_reason: p.trigger_reason,
                },
                department: p.department,
                items: p.items.split(',').map(str::to_string).collect(),
                joined_at: p.joined_at,
                repeat: p.is_repeat,
            })
        })
        .collect::<Result<_, InspectionError>>()?;
    Ok(InspectionRecord {
        state: State::parse(&r.state).ok_or_else(|| corrupt("state", &r.id))?,
        alerts: serde_json::from_str(&r.alerts).map_err(|_| corrupt("alerts", &r.id))?,
        id: r.id,
        seq: r.seq,
        uscc: r.uscc,
        enterprise_name: r.enterprise_name,
        routine: r.routine,
        window: (r.window_start, r.window_end),
        multi_head: r.multi_head,
        override_reason: r.override_reason,
        code_version: r.code_version as u32,
        status: (r.list_no as u64, r.list_index as u64),
        kid: r.kid,
        envelope: r.envelope,
        vc_jwt: r.vc_jwt,
        shown_at: r.shown_at,
        completed_at: r.completed_at,
        has_findings: r.has_findings,
        summary: r.summary,
        recorded_by: r.recorded_by,
        evaluated: r.evaluated,
        created_at: r.created_at,
        created_by: r.created_by,
        participants,
        inspectors: inspectors
            .into_iter()
            .map(|i| InspectorRecord {
                client_id: i.client_id,
                certificate: i.certificate,
                department: i.department,
            })
            .collect(),
    })
}

fn basis_text(b: &Basis) -> String {
    match b.trigger {
        Some(t) => format!("{}: {}", t.as_str(), b.trigger_reason),
        None => b.plan_number.clone(),
    }
}

/// What the code of `r` attests, at version and entry given.
fn content<'a>(
    r: &'a InspectionRecord,
    version: u32,
    status: (u64, u64),
    now: i64,
) -> CodeContent<'a> {
    CodeContent {
        id: &r.id,
        uscc: &r.uscc,
        enterprise_name: &r.enterprise_name,
        departments: r
            .participants
            .iter()
            .map(|p| {
                (
                    p.department.clone(),
                    p.basis.kind.as_str().to_string(),
                    p.items.join(","),
                    basis_text(&p.basis),
                )
            })
            .collect(),
        inspectors: r
            .inspectors
            .iter()
            .map(|i| (i.client_id.clone(), i.certificate.clone()))
            .collect(),
        window: r.window,
        version,
        status,
        issued_at: now,
    }
}

fn audit_detail(r: &InspectionRecord) -> serde_json::Value {
    serde_json::json!({
        "enterprise": r.uscc,
        "departments": r.participants.iter().map(|p| p.department.as_str()).collect::<Vec<_>>(),
        "inspectors": r.inspectors.iter().map(|i| i.client_id.as_str()).collect::<Vec<_>>(),
        "window": [r.window.0, r.window.1],
        "code_version": r.code_version,
        "status_list": r.status.0,
        "status_index": r.status.1,
        "kid": r.kid,
        "multi_head": r.multi_head,
        "override_reason": r.override_reason,
        "alerts": r.alerts,
    })
}

macro_rules! claim_key {
    ($tx:ident, $change:expr) => {
        if let Some(key) = $change.key {
            match $tx.claim(key, $change.now).await? {
                Claim::Fresh => {}
                Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                Claim::Conflict => return Err(InspectionError::IdempotencyConflict),
            }
        }
    };
}

macro_rules! audit {
    ($tx:ident, $change:expr, $action:expr, $target:expr, $detail:expr) => {
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
    };
}

/// Allocates a status entry (the allocator row stays locked until commit, so it is
/// taken last) and signs the code of `$record` at `$version`; updates `$record`.
macro_rules! sign_code {
    ($tx:ident, $record:expr, $version:expr, $signer:expr, $now:expr) => {{
        let (entry,): (i64,) = sqlx::query_as(
            "UPDATE status_allocator SET next_index = next_index + 1 WHERE id = 1 RETURNING next_index - 1",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let status = status_slot(entry as u64);
        let signed = $signer.sign(&content(&$record, $version, status, $now));
        $record.code_version = $version;
        $record.status = status;
        $record.kid = signed.kid;
        $record.envelope = signed.envelope;
        $record.vc_jwt = signed.vc_jwt;
        entry
    }};
}

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

macro_rules! impl_inspection_store {
    ($store:ident, $begin:path, $dialect:tt) => {
        impl $store {
            /// Inserts the enterprise's row if missing and locks it.
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn lock_enterprise(
                tx: &mut sqlx::Transaction<'static, <$store as DbOf>::Database>,
                uscc: &str,
                name: &str,
                now: i64,
            ) -> Result<(), InspectionError> {
                sqlx::query(
                    "INSERT INTO inspected_enterprises (uscc, name, updated_at) VALUES ($1, $2, $3) ON CONFLICT (uscc) DO NOTHING",
                )
                .bind(uscc)
                .bind(name)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                let _: Option<(String,)> = sqlx::query_as(concat!(
                    "SELECT uscc FROM inspected_enterprises WHERE uscc = $1",
                    credmesh_store::for_update!($dialect)
                ))
                .bind(uscc)
                .fetch_optional(&mut **tx)
                .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn load(
                conn: &mut <<$store as DbOf>::Database as sqlx::Database>::Connection,
                id: &str,
            ) -> Result<Option<InspectionRecord>, InspectionError> {
                let row: Option<InspectionRow> = sqlx::query_as(concat!(
                    "SELECT ", inspection_columns!(), " FROM inspections WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let participants: Vec<ParticipantRow> = sqlx::query_as(
                    "SELECT department, kind, items, plan_number, trigger_name, trigger_reason, is_repeat, joined_at \
                     FROM inspection_participants WHERE inspection_id = $1 ORDER BY position",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
                let inspectors: Vec<InspectorRow> = sqlx::query_as(
                    "SELECT client_id, certificate, department FROM inspection_inspectors WHERE inspection_id = $1 ORDER BY position",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
                record_from(row, participants, inspectors).map(Some)
            }

            /// Reads the facts of rules 2–5 for a plan or join, under the lock.
            #[allow(clippy::too_many_arguments)]
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn facts(
                tx: &mut sqlx::Transaction<'static, <$store as DbOf>::Database>,
                uscc: &str,
                department: &str,
                items: &[String],
                inspectors: &[NamedInspector],
                window: (i64, i64),
                policy: &Policy,
                now: i64,
            ) -> Result<Facts, InspectionError> {
                let start = window.0;
                let grade: Option<(String,)> =
                    sqlx::query_as("SELECT grade FROM credit_grades WHERE uscc = $1")
                        .bind(uscc)
                        .fetch_optional(&mut **tx)
                        .await?;
                let monitored: Option<(String,)> =
                    sqlx::query_as("SELECT uscc FROM monitoring_list WHERE uscc = $1")
                        .bind(uscc)
                        .fetch_optional(&mut **tx)
                        .await?;
                let mut do_not_disturb = Vec::new();
                let mut clean_non_site = Vec::new();
                for item in items {
                    let dnd: Option<(String,)> = sqlx::query_as(
                        "SELECT item FROM do_not_disturb WHERE item = $1 AND (uscc = $2 OR uscc = '')",
                    )
                    .bind(item)
                    .bind(uscc)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if dnd.is_some() {
                        do_not_disturb.push(item.clone());
                    }
                    if policy.non_site_days > 0 {
                        let (clean,): (Option<i64>,) = sqlx::query_as(
                            "SELECT MAX(checked_at) FROM non_site_checks WHERE uscc = $1 AND item = $2 AND clean AND checked_at > $3",
                        )
                        .bind(uscc)
                        .bind(item)
                        .bind(now - policy.non_site_days * DAY)
                        .fetch_one(&mut **tx)
                        .await?;
                        if let Some(at) = clean {
                            clean_non_site.push((item.clone(), at));
                        }
                    }
                }
                let span = policy.cap_window_days * DAY;
                let routine: Vec<(i64,)> = sqlx::query_as(
                    "SELECT window_start FROM inspections WHERE uscc = $1 AND routine AND window_start > $2 AND window_start < $3",
                )
                .bind(uscc)
                .bind(start - span)
                .bind(start + span)
                .fetch_all(&mut **tx)
                .await?;
                let onsite: Vec<(i64,)> = sqlx::query_as(
                    "SELECT window_start FROM inspections WHERE uscc = $1 AND window_start > $2 AND window_start < $3",
                )
                .bind(uscc)
                .bind(start - 30 * DAY)
                .bind(start + 30 * DAY)
                .fetch_all(&mut **tx)
                .await?;
                let mut no_findings = Vec::new();
                if policy.block_after > 0 {
                    for i in inspectors {
                        let (n,): (i64,) = sqlx::query_as(
                            "SELECT COUNT(*) FROM inspections i JOIN inspection_inspectors n ON n.inspection_id = i.id \
                             WHERE i.uscc = $1 AND n.client_id = $2 AND i.state = 'completed' AND NOT i.has_findings AND i.completed_at > $3",
                        )
                        .bind(uscc)
                        .bind(&i.client_id)
                        .bind(now - policy.block_window_days * DAY)
                        .fetch_one(&mut **tx)
                        .await?;
                        no_findings.push((i.client_id.clone(), n as u32));
                    }
                }
                let margin = policy.conflict_days * DAY;
                let conflicts: Vec<(String,)> = sqlx::query_as(
                    "SELECT i.id FROM inspections i WHERE i.uscc = $1 AND i.state <> 'completed' \
                     AND i.window_start <= $2 AND i.window_end >= $3 \
                     AND NOT EXISTS (SELECT 1 FROM inspection_participants p WHERE p.inspection_id = i.id AND p.department = $4) \
                     ORDER BY i.seq",
                )
                .bind(uscc)
                .bind(window.1 + margin)
                .bind(window.0 - margin)
                .bind(department)
                .fetch_all(&mut **tx)
                .await?;
                Ok(Facts {
                    grade: grade.and_then(|(g,)| Grade::parse(&g)),
                    monitored: monitored.is_some(),
                    do_not_disturb,
                    routine_starts: routine.into_iter().map(|(s,)| s).collect(),
                    onsite_starts: onsite.into_iter().map(|(s,)| s).collect(),
                    no_findings,
                    clean_non_site,
                    conflicts: conflicts.into_iter().map(|(id,)| id).collect(),
                })
            }

            /// Whether `department` inspected `uscc` within a year before `start`.
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn is_repeat(
                tx: &mut sqlx::Transaction<'static, <$store as DbOf>::Database>,
                uscc: &str,
                department: &str,
                start: i64,
            ) -> Result<bool, InspectionError> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM inspections i JOIN inspection_participants p ON p.inspection_id = i.id \
                     WHERE i.uscc = $1 AND p.department = $2 AND i.window_start > $3 AND i.window_start <= $4",
                )
                .bind(uscc)
                .bind(department)
                .bind(start - 365 * DAY)
                .bind(start)
                .fetch_one(&mut **tx)
                .await?;
                Ok(n > 0)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn insert_party(
                tx: &mut sqlx::Transaction<'static, <$store as DbOf>::Database>,
                id: &str,
                position: usize,
                p: &ParticipantRecord,
                inspectors: &[InspectorRecord],
                first_inspector: usize,
            ) -> Result<(), InspectionError> {
                sqlx::query(
                    "INSERT INTO inspection_participants (inspection_id, department, position, kind, items, plan_number, \
                     trigger_name, trigger_reason, is_repeat, joined_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(id)
                .bind(&p.department)
                .bind(position as i64)
                .bind(p.basis.kind.as_str())
                .bind(p.items.join(","))
                .bind(&p.basis.plan_number)
                .bind(p.basis.trigger.map(|t| t.as_str()).unwrap_or_default())
                .bind(&p.basis.trigger_reason)
                .bind(p.repeat)
                .bind(p.joined_at)
                .execute(&mut **tx)
                .await?;
                for (n, i) in inspectors.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO inspection_inspectors (inspection_id, client_id, certificate, department, position) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (inspection_id, client_id) DO NOTHING",
                    )
                    .bind(id)
                    .bind(&i.client_id)
                    .bind(&i.certificate)
                    .bind(&i.department)
                    .bind((first_inspector + n) as i64)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl InspectionStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), uscc = %plan.uscc))]
            async fn plan(
                &self,
                plan: &NewPlan,
                policy: &Policy,
                signer: &dyn CodeSigner,
                encode: EncodePlanned<'_>,
                change: Change<'_>,
            ) -> Result<Outcome<Planned>, InspectionError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim_key!(tx, change);
                Self::lock_enterprise(&mut tx, &plan.uscc, &plan.enterprise_name, now).await?;
                let facts = Self::facts(
                    &mut tx, &plan.uscc, &plan.department, &plan.items, &plan.inspectors,
                    plan.window, policy, now,
                ).await?;
                let inspector_ids: Vec<String> =
                    plan.inspectors.iter().map(|i| i.client_id.clone()).collect();
                let decision = rules::decide(
                    policy,
                    &rules::Plan {
                        basis: &plan.basis,
                        items: &plan.items,
                        inspectors: &inspector_ids,
                        start: plan.window.0,
                        override_reason: &plan.override_reason,
                    },
                    &facts,
                );
                let planned = match decision {
                    Decision::Refuse(r) => {
                        audit!(tx, change, "inspection.refuse", &plan.uscc, serde_json::json!({
                            "department": plan.department,
                            "rule": format!("{:?}", r.rule),
                            "reason": r.reason,
                            "facts": r.facts,
                        }));
                        Planned::Refused(r)
                    }
                    Decision::Conflict(ids) => {
                        let mut found = Vec::new();
                        for id in &ids {
                            if let Some(r) = Self::load(&mut *tx, id).await? {
                                found.push(r);
                            }
                        }
                        Planned::Conflict(found)
                    }
                    Decision::Issue { alerts, multi_head } => {
                        let repeat = Self::is_repeat(&mut tx, &plan.uscc, &plan.department, plan.window.0).await?;
                        let participant = ParticipantRecord {
                            department: plan.department.clone(),
                            items: plan.items.clone(),
                            basis: plan.basis.clone(),
                            joined_at: now,
                            repeat,
                        };
                        let inspectors: Vec<InspectorRecord> = plan
                            .inspectors
                            .iter()
                            .map(|i| InspectorRecord {
                                client_id: i.client_id.clone(),
                                certificate: i.certificate.clone(),
                                department: plan.department.clone(),
                            })
                            .collect();
                        let mut record = InspectionRecord {
                            id: plan.id.clone(),
                            seq: 0,
                            uscc: plan.uscc.clone(),
                            enterprise_name: plan.enterprise_name.clone(),
                            routine: plan.basis.kind == Kind::Routine,
                            window: plan.window,
                            state: State::Issued,
                            multi_head,
                            override_reason: if multi_head { plan.override_reason.trim().to_string() } else { String::new() },
                            alerts,
                            code_version: 1,
                            status: (0, 0),
                            kid: String::new(),
                            envelope: Vec::new(),
                            vc_jwt: String::new(),
                            shown_at: 0,
                            completed_at: 0,
                            has_findings: false,
                            summary: String::new(),
                            recorded_by: String::new(),
                            evaluated: false,
                            created_at: now,
                            created_by: change.actor.client_id.to_string(),
                            participants: vec![participant],
                            inspectors,
                        };
                        let entry = sign_code!(tx, record, 1, signer, now);
                        record.seq = entry;
                        sqlx::query(concat!(
                            "INSERT INTO inspections (", inspection_columns!(), ") VALUES ",
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, $14, $15, $16, 0, 0, FALSE, '', '', FALSE, $17, $18)"
                        ))
                        .bind(&record.id)
                        .bind(record.seq)
                        .bind(&record.uscc)
                        .bind(&record.enterprise_name)
                        .bind(record.routine)
                        .bind(record.window.0)
                        .bind(record.window.1)
                        .bind(record.state.as_str())
                        .bind(record.multi_head)
                        .bind(&record.override_reason)
                        .bind(serde_json::to_string(&record.alerts).unwrap_or_else(|_| "[]".into()))
                        .bind(record.status.0 as i64)
                        .bind(record.status.1 as i64)
                        .bind(&record.kid)
                        .bind(&record.envelope)
                        .bind(&record.vc_jwt)
                        .bind(now)
                        .bind(change.actor.client_id)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query("UPDATE inspections SET alert_count = $1 WHERE id = $2")
                            .bind(record.alerts.len() as i64)
                            .bind(&record.id)
                            .execute(&mut *tx)
                            .await?;
                        Self::insert_party(&mut tx, &record.id, 0, &record.participants[0], &record.inspectors, 0).await?;
                        audit!(tx, change, "inspection.plan", &record.id, audit_detail(&record));
                        Planned::Issued(Box::new(record))
                    }
                };
                if let Some(key) = change.key {
                    tx.complete(key, &encode(&planned)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(planned))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), inspection = %join.inspection_id))]
            async fn join(
                &self,
                join: &NewJoin,
                policy: &Policy,
                signer: &dyn CodeSigner,
                encode: EncodeJoined<'_>,
                change: Change<'_>,
            ) -> Result<Outcome<Result<InspectionRecord, Refusal>>, InspectionError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim_key!(tx, change);
                let not_found = || InspectionError::NotFound(join.inspection_id.clone());
                let first = Self::load(&mut *tx, &join.inspection_id).await?.ok_or_else(not_found)?;
                Self::lock_enterprise(&mut tx, &first.uscc, &first.enterprise_name, now).await?;
                let mut record = Self::load(&mut *tx, &join.inspection_id).await?.ok_or_else(not_found)?;
                if record.state == State::Completed {
                    return Err(InspectionError::invalid(
                        "INSPECTION_COMPLETED", "inspection_id", "the inspection is completed and can no longer be joined",
                    ));
                }
                if record.participants.iter().any(|p| p.department == join.department) {
                    return Err(InspectionError::invalid(
                        "ALREADY_PARTICIPATING", "department", "the department already takes part in this inspection",
                    ));
                }
                // A join adds no visit: rules 1, 2, 5 and the inspector block apply to the
                // joining department; the caps and conflicts do not (a joint inspection
                // counts once).
                let mut facts = Self::facts(
                    &mut tx, &record.uscc, &join.department, &join.items, &join.inspectors,
                    record.window, policy, now,
                ).await?;
                facts.routine_starts.clear();
                facts.conflicts.clear();
                let inspector_ids: Vec<String> =
                    join.inspectors.iter().map(|i| i.client_id.clone()).collect();
                let decision = rules::decide(
                    policy,
                    &rules::Plan {
                        basis: &join.basis,
                        items: &join.items,
                        inspectors: &inspector_ids,
                        start: record.window.0,
                        override_reason: "",
                    },
                    &facts,
                );
                let answer = match decision {
                    Decision::Refuse(r) => {
                        audit!(tx, change, "inspection.refuse", &record.uscc, serde_json::json!({
                            "department": join.department,
                            "inspection": record.id,
                            "rule": format!("{:?}", r.rule),
                            "reason": r.reason,
                            "facts": r.facts,
                        }));
                        Err(r)
                    }
                    _ => {
                        let repeat = Self::is_repeat(&mut tx, &record.uscc, &join.department, record.window.0).await?;
                        let participant = ParticipantRecord {
                            department: join.department.clone(),
                            items: join.items.clone(),
                            basis: join.basis.clone(),
                            joined_at: now,
                            repeat,
                        };
                        let new_inspectors: Vec<InspectorRecord> = join
                            .inspectors
                            .iter()
                            .filter(|i| !record.inspectors.iter().any(|o| o.client_id == i.client_id))
                            .map(|i| InspectorRecord {
                                client_id: i.client_id.clone(),
                                certificate: i.certificate.clone(),
                                department: join.department.clone(),
                            })
                            .collect();
                        Self::insert_party(
                            &mut tx, &record.id, record.participants.len(), &participant,
                            &new_inspectors, record.inspectors.len(),
                        ).await?;
                        record.participants.push(participant);
                        record.inspectors.extend(new_inspectors);
                        let old = record.status;
                        let version = record.code_version + 1;
                        sign_code!(tx, record, version, signer, now);
                        for purpose in [StatusPurpose::Revocation, StatusPurpose::Superseded] {
                            set_bit!(tx, old.0, purpose, old.1, now);
                        }
                        record.routine = record.routine || join.basis.kind == Kind::Routine;
                        sqlx::query(
                            "UPDATE inspections SET routine = $1, code_version = $2, list_no = $3, list_index = $4, \
                             kid = $5, envelope = $6, vc_jwt = $7 WHERE id = $8",
                        )
                        .bind(record.routine)
                        .bind(i64::from(record.code_version))
                        .bind(record.status.0 as i64)
                        .bind(record.status.1 as i64)
                        .bind(&record.kid)
                        .bind(&record.envelope)
                        .bind(&record.vc_jwt)
                        .bind(&record.id)
                        .execute(&mut *tx)
                        .await?;
                        let mut detail = audit_detail(&record);
                        detail["joined_department"] = join.department.clone().into();
                        detail["superseded_status_index"] = old.1.into();
                        audit!(tx, change, "inspection.join", &record.id, detail);
                        Ok(record)
                    }
                };
                if let Some(key) = change.key {
                    tx.complete(key, &encode(&answer)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(answer))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn inspection(&self, id: &str) -> Result<Option<InspectionRecord>, InspectionError> {
                { let mut c = self.pool.acquire().await?; Self::load(&mut c, id).await }
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn inspections(
                &self,
                scope: Scope<'_>,
                before: i64,
                limit: u32,
            ) -> Result<Vec<InspectionRecord>, InspectionError> {
                let before = if before <= 0 { i64::MAX } else { before };
                let ids: Vec<(String,)> = match scope {
                    Scope::Enterprise(uscc) => sqlx::query_as(
                        "SELECT id FROM inspections WHERE uscc = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                    )
                    .bind(uscc)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?,
                    Scope::Department(d) => sqlx::query_as(
                        "SELECT i.id FROM inspections i JOIN inspection_participants p ON p.inspection_id = i.id \
                         WHERE p.department = $1 AND i.seq < $2 ORDER BY i.seq DESC LIMIT $3",
                    )
                    .bind(d)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?,
                };
                let mut out = Vec::with_capacity(ids.len());
                for (id,) in ids {
                    if let Some(r) = { let mut c = self.pool.acquire().await?; Self::load(&mut c, &id).await? } {
                        out.push(r);
                    }
                }
                Ok(out)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn shown(&self, id: &str, change: Change<'_>) -> Result<bool, InspectionError> {
                let mut tx = $begin(&self.pool).await?;
                let updated = sqlx::query(
                    "UPDATE inspections SET state = 'shown', shown_at = $1 WHERE id = $2 AND state = 'issued'",
                )
                .bind(change.now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated > 0 {
                    audit!(tx, change, "inspection.shown", id, serde_json::json!({ "shown_at": change.now }));
                }
                tx.commit().await?;
                Ok(updated > 0)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn record(
                &self,
                result: &NewResult<'_>,
                encode: EncodeRecord<'_>,
                change: Change<'_>,
            ) -> Result<Outcome<InspectionRecord>, InspectionError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim_key!(tx, change);
                let _: Option<(String,)> = sqlx::query_as(concat!(
                    "SELECT id FROM inspections WHERE id = $1", credmesh_store::for_update!($dialect)
                ))
                .bind(result.inspection_id)
                .fetch_optional(&mut *tx)
                .await?;
                let mut record = Self::load(&mut *tx, result.inspection_id)
                    .await?
                    .ok_or_else(|| InspectionError::NotFound(result.inspection_id.to_string()))?;
                let named = record.inspectors.iter().any(|i| {
                    i.client_id == result.inspector && result.certificate == Some(i.certificate.as_str())
                });
                if let Err(why) = rules::check_result(
                    named,
                    record.shown_at,
                    record.state == State::Completed,
                    record.window,
                    now,
                ) {
                    use rules::ResultRefused as R;
                    let message = match why {
                        R::NotNamed => "only an inspector named on the code, with the certificate number it names, may record its result".to_string(),
                        R::NotShown => "the code was never shown to the enterprise: a result is accepted only for a code that was scanned on site".to_string(),
                        R::OutsideWindow => "the inspection window is over (or has not begun): a result is accepted only inside it".to_string(),
                        R::AlreadyCompleted => "the result of this inspection is already recorded".to_string(),
                    };
                    return Err(InspectionError::ResultRefused { why, message });
                }
                sqlx::query(
                    "UPDATE inspections SET state = 'completed', completed_at = $1, has_findings = $2, summary = $3, recorded_by = $4 WHERE id = $5",
                )
                .bind(now)
                .bind(result.has_findings)
                .bind(result.summary)
                .bind(result.inspector)
                .bind(result.inspection_id)
                .execute(&mut *tx)
                .await?;
                record.state = State::Completed;
                record.completed_at = now;
                record.has_findings = result.has_findings;
                record.summary = result.summary.to_string();
                record.recorded_by = result.inspector.to_string();
                audit!(tx, change, "inspection.record", &record.id, serde_json::json!({
                    "has_findings": result.has_findings,
                }));
                if let Some(key) = change.key {
                    tx.complete(key, &encode(&record)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(record))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn evaluate(
                &self,
                e: &NewEvaluation<'_>,
                policy: &Policy,
                encode: EncodeNumber<'_>,
                change: Change<'_>,
            ) -> Result<Outcome<i64>, InspectionError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim_key!(tx, change);
                let row: Option<(String, i64, bool)> = sqlx::query_as(concat!(
                    "SELECT uscc, completed_at, evaluated FROM inspections WHERE id = $1",
                    credmesh_store::for_update!($dialect)
                ))
                .bind(e.inspection_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((uscc, completed_at, evaluated)) = row else {
                    return Err(InspectionError::NotFound(e.inspection_id.to_string()));
                };
                if uscc != e.uscc {
                    return Err(InspectionError::NotAllowed(
                        "only the inspected enterprise may evaluate an inspection".into(),
                    ));
                }
                if let Err(why) = rules::check_evaluation(policy, completed_at, evaluated, now) {
                    use rules::EvaluationRefused as E;
                    let message = match why {
                        E::NotCompleted => "the inspection is not completed yet; it can be evaluated once its result is recorded".to_string(),
                        E::PeriodOver => format!("evaluations are accepted within {} days of completion", policy.evaluation_days),
                        E::AlreadyEvaluated => "the inspection was already evaluated; evaluations are immutable".to_string(),
                    };
                    return Err(InspectionError::EvaluationRefused { why, message });
                }
                sqlx::query(
                    "INSERT INTO evaluations (inspection_id, uscc, score, tags, comment, evaluated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(e.inspection_id)
                .bind(e.uscc)
                .bind(i64::from(e.score))
                .bind(serde_json::to_string(e.tags).unwrap_or_else(|_| "[]".into()))
                .bind(e.comment)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE inspections SET evaluated = TRUE WHERE id = $1")
                    .bind(e.inspection_id)
                    .execute(&mut *tx)
                    .await?;
                // The audit entry says an evaluation exists, never what it says.
                audit!(tx, change, "inspection.evaluate", e.inspection_id, serde_json::json!({}));
                if let Some(key) = change.key {
                    tx.complete(key, &encode(now)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(now))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn stat_rows(
                &self,
                scope: Scope<'_>,
                from: i64,
                to: i64,
            ) -> Result<Vec<StatRow>, InspectionError> {
                let rows: Vec<StatRow> = match scope {
                    Scope::Department(d) => sqlx::query_as(
                        "SELECT i.id, i.uscc, i.routine, i.multi_head, i.alert_count, i.state, \
                         (SELECT COUNT(*) FROM inspection_participants q WHERE q.inspection_id = i.id) AS departments, \
                         p.is_repeat, COALESCE(e.score, 0) AS score, COALESCE(e.tags, '') AS tags \
                         FROM inspections i JOIN inspection_participants p ON p.inspection_id = i.id \
                         LEFT JOIN evaluations e ON e.inspection_id = i.id \
                         WHERE p.department = $1 AND i.window_start >= $2 AND i.window_start < $3",
                    )
                    .bind(d)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?,
                    Scope::Enterprise(u) => sqlx::query_as(
                        "SELECT i.id, i.uscc, i.routine, i.multi_head, i.alert_count, i.state, \
                         (SELECT COUNT(*) FROM inspection_participants q WHERE q.inspection_id = i.id) AS departments, \
                         EXISTS (SELECT 1 FROM inspection_participants q WHERE q.inspection_id = i.id AND q.is_repeat) AS is_repeat, \
                         COALESCE(e.score, 0) AS score, COALESCE(e.tags, '') AS tags \
                         FROM inspections i LEFT JOIN evaluations e ON e.inspection_id = i.id \
                         WHERE i.uscc = $1 AND i.window_start >= $2 AND i.window_start < $3",
                    )
                    .bind(u)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?,
                };
                Ok(rows)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn import_policy(
                &self,
                items: &[(PolicyItem, String)],
                encode: EncodeNumber<'_>,
                change: Change<'_>,
            ) -> Result<Outcome<u32>, InspectionError> {
                let now = change.now;
                let mut tx = $begin(&self.pool).await?;
                claim_key!(tx, change);
                let mut counts = std::collections::BTreeMap::<&str, u32>::new();
                for (item, note) in items {
                    let (uscc, it, grade, clean, checked_at, removed) = match item {
                        PolicyItem::Grade { uscc, grade } => {
                            sqlx::query(
                                "INSERT INTO credit_grades (uscc, grade, updated_at) VALUES ($1, $2, $3) \
                                 ON CONFLICT (uscc) DO UPDATE SET grade = excluded.grade, updated_at = excluded.updated_at",
                            )
                            .bind(uscc)
                            .bind(grade.as_str())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            (uscc.as_str(), "", grade.as_str(), false, 0, false)
                        }
                        PolicyItem::Monitoring { uscc, removed } => {
                            if *removed {
                                sqlx::query("DELETE FROM monitoring_list WHERE uscc = $1")
                                    .bind(uscc)
                                    .execute(&mut *tx)
                                    .await?;
                            } else {
                                sqlx::query(
                                    "INSERT INTO monitoring_list (uscc, note, added_at) VALUES ($1, $2, $3) ON CONFLICT (uscc) DO UPDATE SET note = excluded.note",
                                )
                                .bind(uscc)
                                .bind(note)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            }
                            (uscc.as_str(), "", "", false, 0, *removed)
                        }
                        PolicyItem::DoNotDisturb { item, uscc, removed } => {
                            if *removed {
                                sqlx::query("DELETE FROM do_not_disturb WHERE item = $1 AND uscc = $2")
                                    .bind(item)
                                    .bind(uscc)
                                    .execute(&mut *tx)
                                    .await?;
                            } else {
                                sqlx::query(
                                    "INSERT INTO do_not_disturb (item, uscc, note, added_at) VALUES ($1, $2, $3, $4) \
                                     ON CONFLICT (item, uscc) DO UPDATE SET note = excluded.note",
                                )
                                .bind(item)
                                .bind(uscc)
                                .bind(note)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            }
                            (uscc.as_str(), item.as_str(), "", false, 0, *removed)
                        }
                        PolicyItem::NonSite { uscc, item, checked_at, clean } => {
                            sqlx::query(
                                "INSERT INTO non_site_checks (uscc, item, checked_at, clean, note) VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(uscc)
                            .bind(item)
                            .bind(*checked_at)
                            .bind(*clean)
                            .bind(note)
                            .execute(&mut *tx)
                            .await?;
                            (uscc.as_str(), item.as_str(), "", *clean, *checked_at, false)
                        }
                    };
                    sqlx::query(
                        "INSERT INTO policy_changes (kind, uscc, item, grade, clean, checked_at, removed, note, changed_at, changed_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(item.kind())
                    .bind(uscc)
                    .bind(it)
                    .bind(grade)
                    .bind(clean)
                    .bind(checked_at)
                    .bind(removed)
                    .bind(note)
                    .bind(now)
                    .bind(change.actor.client_id)
                    .execute(&mut *tx)
                    .await?;
                    *counts.entry(item.kind()).or_default() += 1;
                }
                let n = items.len() as u32;
                audit!(tx, change, "inspection.policy_import", "policy", serde_json::json!({
                    "entries": n,
                    "by_kind": counts,
                }));
                if let Some(key) = change.key {
                    tx.complete(key, &encode(i64::from(n))).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(n))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn policy_history(
                &self,
                kind: Option<&str>,
                uscc: Option<&str>,
                after: i64,
                limit: u32,
            ) -> Result<Vec<PolicyChangeRecord>, InspectionError> {
                Ok(sqlx::query_as(
                    "SELECT id, kind, uscc, item, grade, clean, checked_at, removed, note, changed_at, changed_by \
                     FROM policy_changes WHERE id > $1 AND ($2 = '' OR kind = $2) AND ($3 = '' OR uscc = $3) ORDER BY id LIMIT $4",
                )
                .bind(after)
                .bind(kind.unwrap_or_default())
                .bind(uscc.unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn grade(&self, uscc: &str) -> Result<Option<(Grade, i64)>, InspectionError> {
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT grade, updated_at FROM credit_grades WHERE uscc = $1")
                        .bind(uscc)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(g, at)| Grade::parse(&g).map(|g| (g, at)).ok_or_else(|| corrupt("grade", uscc)))
                    .transpose()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn allocated_entries(&self) -> Result<u64, InspectionError> {
                Ok(credmesh_store::status_bits::$dialect::allocated_entries(&self.pool).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_count(&self, list_no: u64, purpose: i32) -> Result<u64, InspectionError> {
                Ok(credmesh_store::status_bits::$dialect::count(&self.pool, list_no, purpose).await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn status_indexes(&self, list_no: u64, purpose: i32) -> Result<Vec<u64>, InspectionError> {
                Ok(credmesh_store::status_bits::$dialect::indexes(&self.pool, list_no, purpose).await?)
            }
        }
    };
}

/// The sqlx database of a store, so the macro can name executors generically.
trait DbOf {
    type Database: sqlx::Database;
}
impl DbOf for SqliteInspectionStore {
    type Database = sqlx::Sqlite;
}
impl DbOf for PgInspectionStore {
    type Database = sqlx::Postgres;
}

impl_inspection_store!(
    SqliteInspectionStore,
    credmesh_store::begin_sqlite_write,
    sqlite
);
impl_inspection_store!(
    PgInspectionStore,
    credmesh_store::begin_postgres_write,
    postgres
);

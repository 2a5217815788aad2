//! What the store keeps and answers: records, their rows, and the inputs of changes.

use credmesh_store::idempotency::IdempotencyKey;
use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        credential::Placement,
        dispute::{ClaimedField, DisputeState},
        types::{CertType, Values},
    },
    error::CertificateError,
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

/// Where a certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In force.
    Active,
    /// Suspended.
    Suspended,
    /// Revoked.
    Revoked,
}

impl State {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Active => "active",
            State::Suspended => "suspended",
            State::Revoked => "revoked",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "active" => Some(State::Active),
            "suspended" => Some(State::Suspended),
            "revoked" => Some(State::Revoked),
            _ => None,
        }
    }
}

/// The follow-up state of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// Not issued on commitment.
    NotRequired,
    /// Due.
    Pending,
    /// Commitment kept.
    Compliant,
    /// Commitment broken; revoked.
    NonCompliant,
}

impl FollowUp {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotRequired => "not_required",
            Self::Pending => "pending",
            Self::Compliant => "compliant",
            Self::NonCompliant => "non_compliant",
        }
    }

    /// The follow-up of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not_required" => Some(Self::NotRequired),
            "pending" => Some(Self::Pending),
            "compliant" => Some(Self::Compliant),
            "non_compliant" => Some(Self::NonCompliant),
            _ => None,
        }
    }
}

/// An enterprise's commitment on record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentRecord {
    /// The statement.
    pub statement: String,
    /// Its SHA-256, hex.
    pub statement_sha256: String,
    /// The enterprise client.
    pub committed_by: String,
    /// When.
    pub committed_at: i64,
    /// The grade found.
    pub credit_grade: String,
}

/// A stored certificate version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// Version, from 1.
    pub version: u32,
    /// GB/T 36904 identifier.
    pub certificate_id: String,
    /// Whether current.
    pub is_current: bool,
    /// Field values.
    pub values: Values,
    /// First day of validity.
    pub valid_from: String,
    /// Last day of validity.
    pub valid_until: String,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
    /// Status list number.
    pub list_no: u64,
    /// Index in the list.
    pub list_index: u64,
    /// Signing key.
    pub kid: String,
    /// Encoded envelope.
    pub envelope: Vec<u8>,
    /// VC-JWT.
    pub vc_jwt: String,
    /// Signed at.
    pub issued_at: i64,
    /// The client that caused it.
    pub issued_by: String,
    /// When superseded, or 0.
    pub superseded_at: i64,
}

/// A certificate with its current version and open disputes' fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    /// Serial.
    pub serial: String,
    /// Holder's code.
    pub holder: String,
    /// Holder's name.
    pub holder_name: String,
    /// Type code.
    pub type_code: String,
    /// Issuing department.
    pub department: String,
    /// State.
    pub state: State,
    /// Reason of a suspension or revocation.
    pub state_reason: String,
    /// Commitment, if issued on one.
    pub commitment: Option<CommitmentRecord>,
    /// Follow-up state.
    pub follow_up: FollowUp,
    /// First issued.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// The current version.
    pub version: VersionRecord,
    /// Fields under an open dispute.
    pub disputed_fields: Vec<String>,
}

/// A stored dispute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeRecord {
    /// Id.
    pub id: String,
    /// Certificate serial.
    pub serial: String,
    /// Version disputed.
    pub version: u32,
    /// Holder.
    pub holder: String,
    /// Issuing department.
    pub department: String,
    /// Disputed fields.
    pub fields: Vec<ClaimedField>,
    /// Evidence hashes.
    pub evidence: Vec<String>,
    /// Explanation.
    pub explanation: String,
    /// State.
    pub state: DisputeState,
    /// Filing client.
    pub filed_by: String,
    /// Filed at.
    pub filed_at: i64,
    /// Acceptance deadline.
    pub accept_by: i64,
    /// Accepted at, or 0.
    pub accepted_at: i64,
    /// Resolution deadline, or 0.
    pub resolve_by: i64,
    /// Resolved at, or 0.
    pub resolved_at: i64,
    /// Reason or note.
    pub resolution: String,
    /// Version a correction issued, or 0.
    pub corrected_version: u32,
}

/// The signed forms of a version.
#[derive(Clone, Debug)]
pub struct Signed {
    /// Signing key.
    pub kid: String,
    /// Encoded envelope.
    pub envelope: Vec<u8>,
    /// VC-JWT.
    pub vc_jwt: String,
}

/// Makes identifiers and signatures inside the store's transactions.
pub trait VersionSigner: Send + Sync {
    /// The GB/T 36904 identifier of a version.
    fn certificate_id(
        &self,
        t: &CertType,
        serial: &str,
        version: u32,
    ) -> Result<String, CertificateError>;
    /// Signs a version.
    fn sign(
        &self,
        t: &CertType,
        holder: &str,
        holder_name: &str,
        values: &Values,
        at: &Placement<'_>,
    ) -> Signed;
}

/// A validity period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First day (ISO).
    pub valid_from: String,
    /// Last day (ISO).
    pub valid_until: String,
    /// First second.
    pub not_before: i64,
    /// Last second.
    pub not_after: i64,
}

/// A certificate to issue.
#[derive(Clone, Debug)]
pub struct NewCertificate<'a> {
    /// Its type.
    pub cert_type: &'a CertType,
    /// The holder's code.
    pub holder: &'a str,
    /// The holder's name, from its verified license.
    pub holder_name: &'a str,
    /// Validated values.
    pub values: &'a Values,
    /// Validity.
    pub validity: &'a Validity,
    /// The commitment it is issued on, if any.
    pub commitment: Option<&'a CommitmentRecord>,
}

/// A change of state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Suspend, with a reason.
    Suspend(String),
    /// Reinstate, with a reason.
    Reinstate(String),
    /// Revoke, with a reason.
    Revoke(String),
    /// A follow-up finding: compliant or not (revokes), with what was found.
    FollowUp {
        /// Whether the commitment was kept.
        compliant: bool,
        /// What was found.
        finding: String,
    },
}

/// How an accepted dispute ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Corrected with a note; a new version is issued.
    Corrected(String),
    /// Rejected with a reason.
    Rejected(String),
}

/// Which disputes a caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisputeScope {
    /// Every dispute (operators, services).
    All,
    /// The disputes of one department's certificates.
    Department(String),
    /// One holder's disputes.
    Holder(String),
}

/// A dispute list query.
#[derive(Clone, Debug)]
pub struct DisputeQuery {
    /// Whose.
    pub scope: DisputeScope,
    /// Filed or accepted only.
    pub open_only: bool,
    /// Overdue at this time only (0: no filter).
    pub overdue_at: i64,
    /// Ids after this.
    pub after: String,
    /// At most this many.
    pub limit: u32,
}

//! The certificate service's errors and their one mapping to gRPC statuses.

use credmesh_proto::status::{self, FieldViolation};
use tonic::{Code, Status};

use crate::domain::Invalid;

/// Everything a certificate RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The request is invalid; every offending field is listed.
    #[error("{message}")]
    Invalid {
        /// Stable reason of the first violation.
        reason: &'static str,
        /// A sentence for a person.
        message: String,
        /// The offending fields.
        violations: Vec<FieldViolation>,
    },
    /// No such certificate type.
    #[error("no certificate type {0} is registered")]
    TypeNotFound(String),
    /// No such certificate.
    #[error("no certificate with serial {0} exists")]
    CertificateNotFound(String),
    /// No such dispute.
    #[error("no dispute {0} exists")]
    DisputeNotFound(String),
    /// The holder's license is not active, or its credential did not verify; `reason`
    /// is stable (`LICENSE_REVOKED`, `ENTERPRISE_DEREGISTERED`, `LICENSE_BAD_SIGNATURE`…).
    #[error("the business license of {uscc} does not allow a certificate: {detail}")]
    LicenseNotActive {
        /// The holder.
        uscc: String,
        /// Stable reason.
        reason: &'static str,
        /// A sentence.
        detail: String,
    },
    /// The license service or identity could not be asked.
    #[error("the license of {uscc} could not be checked: {detail}")]
    LicenseUnavailable {
        /// The holder.
        uscc: String,
        /// What went wrong.
        detail: String,
    },
    /// The enterprise's credit grade does not allow issuance on commitment.
    #[error(
        "the credit grade of {uscc} is {grade}: issuance on commitment (告知承诺) requires grade A, B or C"
    )]
    CreditGradeRefused {
        /// The enterprise.
        uscc: String,
        /// Its grade.
        grade: String,
    },
    /// The certificate's state does not allow the change.
    #[error("the certificate {serial} is {state}: {detail}")]
    WrongState {
        /// The certificate.
        serial: String,
        /// Its state.
        state: &'static str,
        /// What was refused.
        detail: String,
    },
    /// The dispute's state does not allow the step.
    #[error("the dispute {id} is {state}: {detail}")]
    DisputeWrongState {
        /// The dispute.
        id: String,
        /// Its state.
        state: &'static str,
        /// What was refused.
        detail: String,
    },
    /// A dispute is open already for one of the fields.
    #[error("a dispute about '{field}' of certificate {serial} is already open ({id})")]
    DisputeOpen {
        /// The certificate.
        serial: String,
        /// The field.
        field: String,
        /// The open dispute.
        id: String,
    },
    /// The caller is not the department that issues this type or certificate.
    #[error("{client} acts for {organization}, which is not the issuing department {department}")]
    NotIssuingDepartment {
        /// The calling client.
        client: String,
        /// Its organisation.
        organization: String,
        /// The issuing department.
        department: String,
    },
    /// An enterprise acting on another enterprise's certificate.
    #[error("only the holder {holder} may do this, not {organization}")]
    NotHolder {
        /// The holder.
        holder: String,
        /// The caller's organisation.
        organization: String,
    },
    /// The idempotency key was used before for a different request.
    #[error(
        "the idempotency key was already used for a different request; use a new key for a new request"
    )]
    IdempotencyConflict,
    /// GB/T 36904 versions have three digits.
    #[error("certificate {0} has reached version 999, the last a GB/T 36904 identifier can carry")]
    VersionsExhausted(String),
    /// The signing key is not yet registered with identity.
    #[error("the certificate service's signing key is not registered with identity yet: {0}")]
    KeyNotRegistered(String),
    /// No such status list.
    #[error("no status list '{0}' is published by this service")]
    StatusListNotFound(String),
    /// A database or other unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for CertificateError {
    fn from(i: Invalid) -> Self {
        CertificateError::Invalid {
            reason: i.reason,
            message: i.message,
            violations: i.violations,
        }
    }
}

impl From<sqlx::Error> for CertificateError {
    fn from(err: sqlx::Error) -> Self {
        CertificateError::Internal(anyhow::Error::new(err).context("certificate database"))
    }
}

impl From<CertificateError> for Status {
    fn from(err: CertificateError) -> Status {
        use CertificateError::*;
        let message = err.to_string();
        match err {
            Invalid {
                reason, violations, ..
            } => status::invalid_argument(reason, message, violations),
            TypeNotFound(code) => status::error_with_metadata(
                Code::NotFound,
                "CERTIFICATE_TYPE_NOT_FOUND",
                message,
                [("type_code", code)],
            ),
            CertificateNotFound(serial) => status::error_with_metadata(
                Code::NotFound,
                "CERTIFICATE_NOT_FOUND",
                message,
                [("serial", serial)],
            ),
            DisputeNotFound(id) => status::error_with_metadata(
                Code::NotFound,
                "DISPUTE_NOT_FOUND",
                message,
                [("dispute_id", id)],
            ),
            LicenseNotActive { uscc, reason, .. } => status::error_with_metadata(
                Code::FailedPrecondition,
                reason,
                message,
                [("uscc", uscc)],
            ),
            LicenseUnavailable { uscc, .. } => status::error_with_metadata(
                Code::Unavailable,
                "LICENSE_UNAVAILABLE",
                message,
                [("uscc", uscc)],
            ),
            CreditGradeRefused { uscc, grade } => status::error_with_metadata(
                Code::FailedPrecondition,
                "CREDIT_GRADE_REFUSED",
                message,
                [("uscc", uscc), ("credit_grade", grade)],
            ),
            WrongState { serial, state, .. } => status::error_with_metadata(
                Code::FailedPrecondition,
                "CERTIFICATE_STATE",
                message,
                [("serial", serial), ("state", state.to_string())],
            ),
            DisputeWrongState { id, state, .. } => status::error_with_metadata(
                Code::FailedPrecondition,
                "DISPUTE_STATE",
                message,
                [("dispute_id", id), ("state", state.to_string())],
            ),
            DisputeOpen { serial, field, id } => status::error_with_metadata(
                Code::AlreadyExists,
                "DISPUTE_ALREADY_OPEN",
                message,
                [("serial", serial), ("field", field), ("dispute_id", id)],
            ),
            NotIssuingDepartment { department, .. } => status::error_with_metadata(
                Code::PermissionDenied,
                "NOT_ISSUING_DEPARTMENT",
                message,
                [("department", department)],
            ),
            NotHolder { holder, .. } => status::error_with_metadata(
                Code::PermissionDenied,
                "NOT_HOLDER",
                message,
                [("holder", holder)],
            ),
            IdempotencyConflict => {
                status::error(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", message)
            }
            VersionsExhausted(serial) => status::error_with_metadata(
                Code::FailedPrecondition,
                "VERSIONS_EXHAUSTED",
                message,
                [("serial", serial)],
            ),
            KeyNotRegistered(_) => {
                status::error(Code::Unavailable, "ISSUER_KEY_NOT_REGISTERED", message)
            }
            StatusListNotFound(list) => status::error_with_metadata(
                Code::NotFound,
                "STATUS_LIST_NOT_FOUND",
                message,
                [("list_id", list)],
            ),
            Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                status::error(
                    Code::Internal,
                    "INTERNAL",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

//! The inspection service's errors and their one mapping to gRPC statuses. A refusal by
//! a rule is not an error: it is a decision in a successful answer.

use credmesh_proto::status::{self, FieldViolation};
use tonic::{Code, Status};

use crate::domain::{
    input::Invalid,
    rules::{EvaluationRefused, ResultRefused},
};

/// Everything an inspection RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum InspectionError {
    /// The request is invalid; every offending field is listed.
    #[error("{message}")]
    Invalid {
        /// Stable reason of the first violation.
        reason: &'static str,
        /// A sentence.
        message: String,
        /// The offending fields.
        violations: Vec<FieldViolation>,
    },
    /// No such inspection.
    #[error("no inspection {0} exists")]
    NotFound(String),
    /// The enterprise has no license in force.
    #[error("the enterprise {uscc} has no license in force: {why}")]
    LicenseNotActive {
        /// The enterprise.
        uscc: String,
        /// Why (not registered, revoked, deregistered, the credential does not verify).
        why: String,
    },
    /// The license service could not be asked.
    #[error("the license service is unavailable: {0}")]
    LicenseUnavailable(String),
    /// Identity's client registry could not be asked about the named inspectors.
    #[error("the inspectors named cannot be checked right now: {0}")]
    RegistryUnavailable(String),
    /// The caller may not act on this inspection or for this department or enterprise.
    #[error("{0}")]
    NotAllowed(String),
    /// A result refused by rule 6.
    #[error("{message}")]
    ResultRefused {
        /// Why.
        why: ResultRefused,
        /// A sentence.
        message: String,
    },
    /// An evaluation refused by rule 7.
    #[error("{message}")]
    EvaluationRefused {
        /// Why.
        why: EvaluationRefused,
        /// A sentence.
        message: String,
    },
    /// A scanned code that does not verify.
    #[error("the code does not verify: {detail}")]
    CodeInvalid {
        /// The verifier's stable reason.
        reason: &'static str,
        /// Its sentence.
        detail: String,
    },
    /// The idempotency key was used before for a different request.
    #[error(
        "the idempotency key was already used for a different request; use a new key for a new request"
    )]
    IdempotencyConflict,
    /// The signing key is not yet registered with identity.
    #[error("the inspection service's signing key is not registered with identity yet: {0}")]
    KeyNotRegistered(String),
    /// No such status list.
    #[error("no status list '{0}' is published by this service")]
    StatusListNotFound(String),
    /// A database or other unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for InspectionError {
    fn from(i: Invalid) -> Self {
        InspectionError::Invalid {
            reason: i.reason,
            message: i.message,
            violations: i.violations,
        }
    }
}

impl From<sqlx::Error> for InspectionError {
    fn from(err: sqlx::Error) -> Self {
        InspectionError::Internal(anyhow::Error::new(err).context("inspection database"))
    }
}

impl InspectionError {
    /// An invalid request with one violation.
    pub fn invalid(reason: &'static str, field: &str, description: &str) -> Self {
        InspectionError::Invalid {
            reason,
            message: format!("the request is invalid: {field}: {description}"),
            violations: vec![FieldViolation::new(field, description)],
        }
    }
}

impl From<InspectionError> for Status {
    fn from(err: InspectionError) -> Status {
        use InspectionError::*;
        let message = err.to_string();
        match err {
            Invalid {
                reason, violations, ..
            } => status::invalid_argument(reason, message, violations),
            NotFound(id) => status::error_with_metadata(
                Code::NotFound,
                "INSPECTION_NOT_FOUND",
                message,
                [("inspection_id", id)],
            ),
            LicenseNotActive { uscc, .. } => status::error_with_metadata(
                Code::FailedPrecondition,
                "LICENSE_NOT_ACTIVE",
                message,
                [("uscc", uscc)],
            ),
            LicenseUnavailable(_) => {
                status::error(Code::Unavailable, "LICENSE_UNAVAILABLE", message)
            }
            RegistryUnavailable(_) => {
                status::error(Code::Unavailable, "INSPECTOR_REGISTRY_UNAVAILABLE", message)
            }
            NotAllowed(_) => status::error(Code::PermissionDenied, "NOT_ALLOWED", message),
            ResultRefused { why, .. } => {
                use crate::domain::rules::ResultRefused as R;
                let (code, reason) = match why {
                    R::NotNamed => (Code::PermissionDenied, "INSPECTOR_NOT_NAMED"),
                    R::NotShown => (Code::FailedPrecondition, "CODE_NOT_SHOWN"),
                    R::OutsideWindow => (Code::FailedPrecondition, "OUTSIDE_WINDOW"),
                    R::AlreadyCompleted => (Code::FailedPrecondition, "ALREADY_COMPLETED"),
                };
                status::error(code, reason, message)
            }
            EvaluationRefused { why, .. } => {
                use crate::domain::rules::EvaluationRefused as E;
                let reason = match why {
                    E::NotCompleted => "NOT_COMPLETED",
                    E::PeriodOver => "EVALUATION_PERIOD_OVER",
                    E::AlreadyEvaluated => "ALREADY_EVALUATED",
                };
                status::error(Code::FailedPrecondition, reason, message)
            }
            CodeInvalid { reason, .. } => status::error(Code::FailedPrecondition, reason, message),
            IdempotencyConflict => {
                status::error(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", message)
            }
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

//! The license service's errors and their one mapping to gRPC statuses.

use credmesh_proto::status::{self, FieldViolation};
use tonic::{Code, Status};

use crate::domain::license::Invalid;

/// Everything a license RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// The request is invalid; every offending field is listed.
    #[error("{message}")]
    Invalid {
        /// Stable reason of the first violation (`USCC_CHECK_DIGIT`, `DATES_INCONSISTENT`…).
        reason: &'static str,
        /// A sentence for a person.
        message: String,
        /// The offending fields.
        violations: Vec<FieldViolation>,
    },
    /// An enterprise with this code is registered already.
    #[error("an enterprise with unified social credit code {0} is already registered")]
    EnterpriseExists(String),
    /// No such enterprise.
    #[error("no enterprise with unified social credit code {0} is registered")]
    EnterpriseNotFound(String),
    /// No such version.
    #[error("the license of {uscc} has no version {version}")]
    VersionNotFound {
        /// The enterprise.
        uscc: String,
        /// The version asked for.
        version: u32,
    },
    /// The enterprise is deregistered or its license revoked: nothing more may change.
    #[error(
        "the enterprise {uscc} is {state} and its license can no longer be amended, deregistered or revoked"
    )]
    NotActive {
        /// The enterprise.
        uscc: String,
        /// `deregistered` or `revoked`.
        state: &'static str,
    },
    /// The caller based its change on another version than the current one.
    #[error(
        "the change was based on version {expected} but the current version of {uscc} is {current}; read the current license and retry"
    )]
    VersionMismatch {
        /// The enterprise.
        uscc: String,
        /// The version the caller expected.
        expected: u32,
        /// The current version.
        current: u32,
    },
    /// GB/T 36904 versions have three digits.
    #[error(
        "the license of {0} has reached version 999, the last a GB/T 36904 identifier can carry"
    )]
    VersionsExhausted(String),
    /// The idempotency key was used before for a different request.
    #[error(
        "the idempotency key was already used for a different request; use a new key for a new request"
    )]
    IdempotencyConflict,
    /// A department acting for another authority.
    #[error(
        "{client} acts for {organization}, which is not the registration authority {authority}"
    )]
    NotRegistrationAuthority {
        /// The calling client.
        client: String,
        /// The organisation it acts for (or "no organisation").
        organization: String,
        /// The authority that registers the enterprise.
        authority: String,
    },
    /// An enterprise reading another enterprise's license.
    #[error("an enterprise may read only its own license")]
    NotOwnEnterprise,
    /// The signing key is not yet registered with identity, so nothing can be issued.
    #[error("the license service's signing key is not registered with identity yet: {0}")]
    KeyNotRegistered(String),
    /// No such status list.
    #[error("no status list '{0}' is published by this service")]
    StatusListNotFound(String),
    /// A database or other unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for LicenseError {
    fn from(i: Invalid) -> Self {
        LicenseError::Invalid {
            reason: i.reason,
            message: i.message,
            violations: i.violations,
        }
    }
}

impl From<sqlx::Error> for LicenseError {
    fn from(err: sqlx::Error) -> Self {
        LicenseError::Internal(anyhow::Error::new(err).context("license database"))
    }
}

impl From<LicenseError> for Status {
    fn from(err: LicenseError) -> Status {
        use LicenseError::*;
        let message = err.to_string();
        match err {
            Invalid {
                reason, violations, ..
            } => status::invalid_argument(reason, message, violations),
            EnterpriseExists(uscc) => status::error_with_metadata(
                Code::AlreadyExists,
                "ENTERPRISE_EXISTS",
                message,
                [("uscc", uscc)],
            ),
            EnterpriseNotFound(uscc) => status::error_with_metadata(
                Code::NotFound,
                "ENTERPRISE_NOT_FOUND",
                message,
                [("uscc", uscc)],
            ),
            VersionNotFound { uscc, version } => status::error_with_metadata(
                Code::NotFound,
                "VERSION_NOT_FOUND",
                message,
                [("uscc", uscc), ("version", version.to_string())],
            ),
            NotActive { uscc, state } => status::error_with_metadata(
                Code::FailedPrecondition,
                if state == "deregistered" {
                    "ENTERPRISE_DEREGISTERED"
                } else {
                    "LICENSE_REVOKED"
                },
                message,
                [("uscc", uscc), ("state", state.to_string())],
            ),
            VersionMismatch {
                uscc,
                expected,
                current,
            } => status::error_with_metadata(
                Code::Aborted,
                "VERSION_MISMATCH",
                message,
                [
                    ("uscc", uscc),
                    ("expected_version", expected.to_string()),
                    ("current_version", current.to_string()),
                ],
            ),
            VersionsExhausted(uscc) => status::error_with_metadata(
                Code::FailedPrecondition,
                "VERSIONS_EXHAUSTED",
                message,
                [("uscc", uscc)],
            ),
            IdempotencyConflict => {
                status::error(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", message)
            }
            NotRegistrationAuthority { authority, .. } => status::error_with_metadata(
                Code::PermissionDenied,
                "NOT_REGISTRATION_AUTHORITY",
                message,
                [("registration_authority", authority)],
            ),
            NotOwnEnterprise => {
                status::error(Code::PermissionDenied, "NOT_OWN_ENTERPRISE", message)
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
            Internal(err) => credmesh_store::fault::to_status(&err),
        }
    }
}

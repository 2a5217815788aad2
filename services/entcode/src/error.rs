//! The enterprise-code service's errors and their one mapping to gRPC statuses.

use credmesh_proto::status::{self, FieldViolation};
use tonic::{Code, Status};

/// Everything an enterprise-code RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EntcodeError {
    /// The request is invalid.
    #[error("{message}")]
    Invalid {
        /// Stable reason (`USCC_CHECK_DIGIT`, `SCENARIO_REQUIRED`, …).
        reason: &'static str,
        /// A sentence for a person.
        message: String,
        /// The offending field.
        field: &'static str,
    },
    /// No scenario by that name.
    #[error("there is no scenario '{0}'; ListScenarios names them")]
    UnknownScenario(String),
    /// An enterprise asked for another enterprise's code or presentation.
    #[error("an enterprise may only use its own enterprise code, not that of {0}")]
    NotYours(String),
    /// No enterprise with that code in the register.
    #[error("no enterprise with unified social credit code {0} is registered")]
    EnterpriseNotFound(String),
    /// Deregistered or revoked: the code is withdrawn.
    #[error("the enterprise {uscc} is {state}: its enterprise code is withdrawn")]
    NotActive {
        /// The enterprise.
        uscc: String,
        /// `deregistered` or `revoked`.
        state: &'static str,
    },
    /// The signing key is not registered with identity yet.
    #[error("the service cannot sign yet: {0}")]
    KeyNotReady(String),
    /// The license service did not answer.
    #[error("the license service is unavailable: {0}")]
    LicenseUnavailable(String),
    /// The used-nonce record could not be consulted: refusing beats guessing.
    #[error("the record of used presentations cannot be consulted; try again shortly")]
    NonceStoreUnavailable,
    /// Anything unexpected.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<EntcodeError> for Status {
    fn from(err: EntcodeError) -> Status {
        use EntcodeError::*;
        let message = err.to_string();
        match err {
            Invalid { reason, field, .. } => {
                status::invalid_argument(reason, &message, [FieldViolation::new(field, &message)])
            }
            UnknownScenario(_) => status::invalid_argument(
                "SCENARIO_UNKNOWN",
                &message,
                [FieldViolation::new("scenario", &message)],
            ),
            NotYours(_) => status::error(Code::PermissionDenied, "ENTERPRISE_MISMATCH", message),
            EnterpriseNotFound(_) => status::error(Code::NotFound, "ENTERPRISE_NOT_FOUND", message),
            NotActive { .. } => {
                status::error(Code::FailedPrecondition, "ENTERPRISE_NOT_ACTIVE", message)
            }
            KeyNotReady(_) => status::error(Code::Unavailable, "KEY_NOT_REGISTERED", message),
            LicenseUnavailable(_) => {
                status::error(Code::Unavailable, "LICENSE_SERVICE_UNAVAILABLE", message)
            }
            NonceStoreUnavailable => {
                status::error(Code::Unavailable, "NONCE_STORE_UNAVAILABLE", message)
            }
            Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                status::error(
                    Code::Internal,
                    "INTERNAL",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

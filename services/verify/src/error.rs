//! The verify gateway's errors and their one mapping to gRPC statuses (the HTTP API
//! maps the same enum to HTTP codes in `api::http`).
//!
//! A credential that does not verify is never an error: it is an answer. Errors are
//! bad requests, refused callers and the rate limit.

use credmesh_proto::status::{self, FieldViolation};
use tonic::{Code, Status};

/// Everything a verify call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The request is invalid; every offending field is listed.
    #[error("{message}")]
    Invalid {
        /// Stable reason.
        reason: &'static str,
        /// A sentence for a person.
        message: String,
        /// The offending fields.
        violations: Vec<FieldViolation>,
    },
    /// The partner's batch is beyond what is left of its rate limit (the serving stack
    /// refuses single calls before they arrive).
    #[error(transparent)]
    RateLimited(#[from] credmesh_runtime::RateLimited),
    /// The caller is not authenticated or lacks the `verify` scope.
    #[error("{0}")]
    Auth(#[from] credmesh_auth::AuthError),
    /// The caller is authenticated but may not see what it asked for (another partner's
    /// audit).
    #[error("{message}")]
    Forbidden {
        /// Stable reason.
        reason: &'static str,
        /// A sentence for a person.
        message: String,
    },
    /// An unexpected failure (the audit database); logged, answered without detail.
    #[error("an internal error occurred; it has been logged")]
    Internal(#[from] anyhow::Error),
}

impl VerifyError {
    /// An invalid request naming one field.
    pub fn invalid(reason: &'static str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        VerifyError::Invalid {
            reason,
            violations: vec![FieldViolation::new(field, message.clone())],
            message,
        }
    }

    /// The stable reason.
    pub fn reason(&self) -> String {
        match self {
            VerifyError::Invalid { reason, .. } => (*reason).to_owned(),
            VerifyError::RateLimited(_) => status::RATE_LIMITED.to_owned(),
            VerifyError::Auth(e) => status::reason(&e.to_status()).unwrap_or_else(|| "AUTH".into()),
            VerifyError::Forbidden { reason, .. } => (*reason).to_owned(),
            VerifyError::Internal(_) => "INTERNAL".to_owned(),
        }
    }

    /// The one mapping to a gRPC status.
    pub fn to_status(&self) -> Status {
        match self {
            VerifyError::Invalid {
                reason,
                message,
                violations,
            } => status::invalid_argument(reason, message.clone(), violations.clone()),
            VerifyError::RateLimited(e) => e.to_status(),
            VerifyError::Auth(e) => e.to_status(),
            VerifyError::Forbidden { reason, message } => {
                status::error(Code::PermissionDenied, reason, message.clone())
            }
            VerifyError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error");
                status::error(Code::Internal, "INTERNAL", self.to_string())
            }
        }
    }
}

impl From<VerifyError> for Status {
    fn from(e: VerifyError) -> Status {
        e.to_status()
    }
}

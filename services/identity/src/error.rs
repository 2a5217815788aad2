//! The identity service's errors and their one mapping to gRPC statuses.

use credmesh_proto::status::{self, FieldViolation};
use tonic::{Code, Status};

/// Everything an identity RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
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
    /// A client with this id exists already.
    #[error("a client with id '{0}' is already registered")]
    ClientExists(String),
    /// No such client.
    #[error("no client with id '{0}' is registered")]
    ClientNotFound(String),
    /// The idempotency key was used before for a different request.
    #[error(
        "the idempotency key was already used for a different request; use a new key for a new request"
    )]
    IdempotencyConflict,
    /// The client's credentials did not check out. The message stays generic so a
    /// caller cannot probe which part failed; the reason is logged.
    #[error("client authentication failed")]
    AuthenticationFailed {
        /// Stable reason, also returned in ErrorInfo.
        reason: &'static str,
    },
    /// The client is disabled.
    #[error("client '{0}' is disabled and cannot obtain tokens")]
    ClientDisabled(String),
    /// A requested scope is not among the client's.
    #[error("scope '{0}' is not granted to this client")]
    ScopeNotGranted(String),
    /// A key id is taken by a different key.
    #[error("key id '{0}' is already registered with a different public key")]
    KeyExists(String),
    /// No such issuer key.
    #[error("no issuer key with id '{0}' is registered")]
    KeyNotFound(String),
    /// The caller may only register keys for its own issuer.
    #[error("a service may register keys only for its own issuer '{expected}', not '{found}'")]
    NotOwnIssuer {
        /// The caller's issuer.
        expected: String,
        /// The issuer it named.
        found: String,
    },
    /// No anchor is pinned for the partner region.
    #[error("no anchor key is pinned for region {0}; pin the partner's anchor first")]
    AnchorNotPinned(String),
    /// A partner trust list failed its checks.
    #[error("{message}")]
    TrustListRejected {
        /// Stable reason.
        reason: &'static str,
        /// A sentence.
        message: String,
    },
    /// A partner trust list older than the one held.
    #[error("the trust list of {region} has sequence {offered}, older than the imported {held}")]
    TrustListRollback {
        /// Partner region.
        region: String,
        /// Offered sequence.
        offered: u64,
        /// Held sequence.
        held: u64,
    },
    /// A database or other unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IdentityError {
    /// An invalid-argument error from field violations.
    pub fn invalid(
        reason: &'static str,
        message: impl Into<String>,
        violations: Vec<FieldViolation>,
    ) -> Self {
        IdentityError::Invalid {
            reason,
            message: message.into(),
            violations,
        }
    }
}

impl From<sqlx::Error> for IdentityError {
    fn from(err: sqlx::Error) -> Self {
        IdentityError::Internal(anyhow::Error::new(err).context("identity database"))
    }
}

impl From<IdentityError> for Status {
    fn from(err: IdentityError) -> Status {
        use IdentityError::*;
        let message = err.to_string();
        match err {
            Invalid {
                reason, violations, ..
            } => status::invalid_argument(reason, message, violations),
            ClientExists(id) => status::error_with_metadata(
                Code::AlreadyExists,
                "CLIENT_EXISTS",
                message,
                [("client_id", id)],
            ),
            ClientNotFound(id) => status::error_with_metadata(
                Code::NotFound,
                "CLIENT_NOT_FOUND",
                message,
                [("client_id", id)],
            ),
            IdempotencyConflict => {
                status::error(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", message)
            }
            AuthenticationFailed { reason } => {
                status::error(Code::Unauthenticated, reason, message)
            }
            ClientDisabled(_) => status::error(Code::PermissionDenied, "CLIENT_DISABLED", message),
            ScopeNotGranted(scope) => status::error_with_metadata(
                Code::PermissionDenied,
                "SCOPE_NOT_GRANTED",
                message,
                [("scope", scope)],
            ),
            KeyExists(kid) => status::error_with_metadata(
                Code::AlreadyExists,
                "KEY_EXISTS",
                message,
                [("kid", kid)],
            ),
            KeyNotFound(kid) => status::error_with_metadata(
                Code::NotFound,
                "KEY_NOT_FOUND",
                message,
                [("kid", kid)],
            ),
            NotOwnIssuer { .. } => status::error(Code::PermissionDenied, "NOT_OWN_ISSUER", message),
            AnchorNotPinned(region) => status::error_with_metadata(
                Code::FailedPrecondition,
                "ANCHOR_NOT_PINNED",
                message,
                [("region", region)],
            ),
            TrustListRejected { reason, .. } => {
                status::error(Code::InvalidArgument, reason, message)
            }
            TrustListRollback { .. } => {
                status::error(Code::FailedPrecondition, "TRUST_LIST_ROLLBACK", message)
            }
            Internal(err) => credmesh_store::fault::to_status(&err),
        }
    }
}

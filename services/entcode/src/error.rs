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
    /// A scenario names a field this service cannot disclose.
    #[error(
        "'{0}' is not a field a scenario can disclose; the fields are the license's name, uscc, entity_type, legal_representative, registered_capital, establishment_date, business_term, domicile, business_scope, registration_authority, registration_authority_uscc, issue_date, and permits and credit_grade"
    )]
    UnknownField(String),
    /// No scenario (or no such version of it).
    #[error("there is no scenario '{name}'{}", match .version { 0 => String::new(), v => format!(" at version {v}") })]
    ScenarioNotFound {
        /// The name asked for.
        name: String,
        /// The version asked for; 0 for the current one.
        version: u32,
    },
    /// The scenario moved on since the caller read it.
    #[error(
        "scenario '{name}' is at version {current}, not {expected}: read it again and reapply the change"
    )]
    VersionConflict {
        /// The scenario.
        name: String,
        /// What the caller expected (0: absent).
        expected: u32,
        /// What is current (0: absent).
        current: u32,
    },
    /// A retired scenario cannot be presented (or retired again).
    #[error("scenario '{0}' is retired: no new presentations of it can be made")]
    ScenarioRetired(String),
    /// An idempotency key reused for another request.
    #[error(
        "the idempotency key was already used for a different request; use a new key for a new request"
    )]
    IdempotencyConflict,
    /// A page token this service did not issue.
    #[error("the page token is not one this service issued")]
    PageToken,
    /// Only operators define scenarios.
    #[error("only operators may change scenarios")]
    OperatorsOnly,
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
    /// A scenario discloses `permits` or `credit_grade` and their source is not
    /// configured or did not answer: refusing beats a made-up value.
    #[error("cannot disclose '{field}' now: {why}")]
    FieldUnavailable {
        /// `permits` or `credit_grade`.
        field: &'static str,
        /// Why, one sentence.
        why: String,
    },
    /// The used-nonce record could not be consulted: refusing beats guessing.
    #[error("the record of used presentations cannot be consulted; try again shortly")]
    NonceStoreUnavailable,
    /// Anything unexpected.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<credmesh_store::sqlx::Error> for EntcodeError {
    fn from(err: credmesh_store::sqlx::Error) -> Self {
        EntcodeError::Internal(anyhow::Error::new(err).context("entcode database"))
    }
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
            UnknownField(f) => status::invalid_argument(
                "SCENARIO_FIELD_UNKNOWN",
                &message,
                [FieldViolation::new(
                    "fields",
                    format!("'{f}' is not a field a scenario can disclose"),
                )],
            ),
            ScenarioNotFound { name, .. } => status::error_with_metadata(
                Code::NotFound,
                "SCENARIO_NOT_FOUND",
                message,
                [("scenario", name)],
            ),
            VersionConflict { name, current, .. } => status::error_with_metadata(
                Code::Aborted,
                "SCENARIO_VERSION_CONFLICT",
                message,
                [("scenario", name), ("current_version", current.to_string())],
            ),
            ScenarioRetired(name) => status::error_with_metadata(
                Code::FailedPrecondition,
                "SCENARIO_RETIRED",
                message,
                [("scenario", name)],
            ),
            IdempotencyConflict => {
                status::error(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", message)
            }
            PageToken => status::invalid_argument(
                "PAGE_TOKEN_INVALID",
                &message,
                [FieldViolation::new("page_token", &message)],
            ),
            OperatorsOnly => status::error(Code::PermissionDenied, "OPERATORS_ONLY", message),
            NotYours(_) => status::error(Code::PermissionDenied, "ENTERPRISE_MISMATCH", message),
            EnterpriseNotFound(_) => status::error(Code::NotFound, "ENTERPRISE_NOT_FOUND", message),
            NotActive { .. } => {
                status::error(Code::FailedPrecondition, "ENTERPRISE_NOT_ACTIVE", message)
            }
            KeyNotReady(_) => status::error(Code::Unavailable, "KEY_NOT_REGISTERED", message),
            LicenseUnavailable(_) => {
                status::error(Code::Unavailable, "LICENSE_SERVICE_UNAVAILABLE", message)
            }
            FieldUnavailable { field, .. } => status::error_with_metadata(
                Code::Unavailable,
                "FIELD_SOURCE_UNAVAILABLE",
                message,
                [("field", field.to_string())],
            ),
            NonceStoreUnavailable => {
                status::error(Code::Unavailable, "NONCE_STORE_UNAVAILABLE", message)
            }
            Internal(e) => credmesh_store::fault::to_status(&e),
        }
    }
}

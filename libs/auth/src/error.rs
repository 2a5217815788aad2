//! The one error type of this crate and its single mapping to `tonic::Status`.

use credmesh_proto::status::error_with_metadata;
use tonic::{Code, Status};

/// Why a token, a key or a call was refused.
///
/// Messages never contain a token or key material: at most a key id, a client id, an
/// audience or a scope name.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum AuthError {
    /// The call carried no `authorization: Bearer …` header.
    #[error(
        "no access token was sent; send 'authorization: Bearer <token>', with a token from the identity service (IssueToken, or POST /v1/token over HTTP)"
    )]
    MissingToken,
    /// The header or token could not be parsed; the detail never quotes the token.
    #[error("access token is malformed: {0}")]
    Malformed(String),
    /// The token's `exp` (plus leeway) is in the past.
    #[error("access token has expired; get a new one from the identity service")]
    Expired,
    /// The token's `nbf` (minus leeway) is in the future.
    #[error("access token is not valid yet")]
    NotYetValid,
    /// The token was issued for another audience.
    #[error("access token is for audience {found}, not {}", .expected.join(" or "))]
    WrongAudience {
        /// The audiences this validator accepts.
        expected: Vec<String>,
        /// The token's `aud`.
        found: String,
    },
    /// The token was not issued by the expected identity service.
    #[error("access token was not issued by this region's identity service")]
    WrongIssuer,
    /// No key with this `kid` is known, even after refetching the key set.
    #[error("access token is signed with unknown key {0}")]
    UnknownKey(String),
    /// The signature does not verify with the key named by `kid`.
    #[error("access token signature does not verify")]
    BadSignature,
    /// The token's id was revoked with [`TokenValidator::deny_token`](crate::TokenValidator::deny_token).
    #[error("access token has been revoked")]
    TokenRevoked,
    /// The client was disabled; its unexpired tokens are refused too.
    #[error("client {0} is disabled")]
    ClientDisabled(String),
    /// The caller is authenticated but lacks the scope the method needs.
    #[error("this call needs scope {0}")]
    MissingScope(String),
    /// The method has no entry in the access policy, so nobody may call it (fail closed).
    #[error("method {0} is not open to any caller")]
    MethodNotInPolicy(String),
    /// No published credmesh service has this method.
    #[error("{0} is not a method of any credmesh service; check the service and method names")]
    UnknownMethod(String),
    /// A client assertion is well-formed and signed but breaks a rule (subject, lifetime).
    #[error("client assertion is not acceptable: {0}")]
    InvalidAssertion(String),
    /// The signing keys could not be fetched.
    #[error("token signing keys are unavailable: {0}")]
    KeySource(String),
    /// A key (JWK or signing key) is not a usable Ed25519 key.
    #[error("key is not a usable ed25519 key: {0}")]
    InvalidKey(String),
    /// Signing a token or assertion failed.
    #[error("could not sign a token: {0}")]
    Signing(String),
    /// The identity service refused or failed to issue a token to this client.
    #[error("could not obtain an access token: {}", .0.message())]
    TokenIssue(Status),
}

impl AuthError {
    /// The stable `ErrorInfo.reason` callers switch on.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "AUTH_TOKEN_MISSING",
            AuthError::Malformed(_) => "AUTH_TOKEN_MALFORMED",
            AuthError::Expired => "AUTH_TOKEN_EXPIRED",
            AuthError::NotYetValid => "AUTH_TOKEN_NOT_YET_VALID",
            AuthError::WrongAudience { .. } => "AUTH_WRONG_AUDIENCE",
            AuthError::WrongIssuer => "AUTH_WRONG_ISSUER",
            AuthError::UnknownKey(_) => "AUTH_UNKNOWN_KEY",
            AuthError::BadSignature => "AUTH_BAD_SIGNATURE",
            AuthError::TokenRevoked => "AUTH_TOKEN_REVOKED",
            AuthError::ClientDisabled(_) => "AUTH_CLIENT_DISABLED",
            AuthError::MissingScope(_) => "AUTH_SCOPE_MISSING",
            AuthError::MethodNotInPolicy(_) => "AUTH_METHOD_NOT_IN_POLICY",
            AuthError::UnknownMethod(_) => "METHOD_UNKNOWN",
            AuthError::InvalidAssertion(_) => "AUTH_ASSERTION_INVALID",
            AuthError::KeySource(_) => "AUTH_KEY_SOURCE",
            AuthError::InvalidKey(_) => "AUTH_INVALID_KEY",
            AuthError::Signing(_) => "AUTH_SIGNING",
            AuthError::TokenIssue(_) => "AUTH_TOKEN_ISSUE_FAILED",
        }
    }

    /// The gRPC code: `UNAUTHENTICATED` when the credential is at fault,
    /// `PERMISSION_DENIED` when the caller is known but not allowed, `UNIMPLEMENTED` for a
    /// method no credmesh service has, `UNAVAILABLE` when
    /// keys cannot be fetched, `INTERNAL` for local key or signing faults.
    pub fn code(&self) -> Code {
        match self {
            AuthError::MissingToken
            | AuthError::Malformed(_)
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::WrongAudience { .. }
            | AuthError::WrongIssuer
            | AuthError::UnknownKey(_)
            | AuthError::BadSignature
            | AuthError::TokenRevoked
            | AuthError::InvalidAssertion(_) => Code::Unauthenticated,
            AuthError::ClientDisabled(_)
            | AuthError::MissingScope(_)
            | AuthError::MethodNotInPolicy(_) => Code::PermissionDenied,
            AuthError::UnknownMethod(_) => Code::Unimplemented,
            AuthError::KeySource(_) => Code::Unavailable,
            AuthError::InvalidKey(_) | AuthError::Signing(_) => Code::Internal,
            AuthError::TokenIssue(status) => match status.code() {
                Code::Ok => Code::Unavailable,
                code => code,
            },
        }
    }

    /// The status to answer with: code, this error's sentence, and an `ErrorInfo` with
    /// [`reason`](Self::reason) and the facts behind it (kid, client id, scope, audience).
    pub fn to_status(&self) -> Status {
        let mut metadata: Vec<(&'static str, String)> = Vec::new();
        match self {
            AuthError::WrongAudience { expected, found } => {
                metadata.push(("expected", expected.join(" ")));
                metadata.push(("found", found.clone()));
            }
            AuthError::UnknownKey(kid) => metadata.push(("kid", kid.clone())),
            AuthError::ClientDisabled(client_id) => metadata.push(("client_id", client_id.clone())),
            AuthError::MissingScope(scope) => metadata.push(("scope", scope.clone())),
            AuthError::MethodNotInPolicy(method) | AuthError::UnknownMethod(method) => {
                metadata.push(("method", method.clone()))
            }
            AuthError::TokenIssue(status) => {
                metadata.push(("upstream_code", format!("{:?}", status.code())));
            }
            _ => {}
        }
        error_with_metadata(self.code(), self.reason(), self.to_string(), metadata)
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        err.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credmesh_proto::status::reason;

    #[test]
    fn missing_scope_is_permission_denied_with_a_stable_reason() {
        let status = AuthError::MissingScope("license.write".into()).to_status();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(reason(&status).as_deref(), Some("AUTH_SCOPE_MISSING"));
        assert_eq!(status.message(), "this call needs scope license.write");
    }

    #[test]
    fn token_problems_are_unauthenticated_and_key_source_is_unavailable() {
        assert_eq!(AuthError::Expired.to_status().code(), Code::Unauthenticated);
        assert_eq!(
            AuthError::BadSignature.to_status().code(),
            Code::Unauthenticated
        );
        assert_eq!(
            AuthError::KeySource("down".into()).to_status().code(),
            Code::Unavailable
        );
    }
}

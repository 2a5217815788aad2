//! The OAuth 2.0 token endpoint, `POST /v1/token`: an access token for a client that
//! calls the HTTP API (the verify gateway's `/v1/verify`) and speaks no gRPC.
//!
//! The client credentials grant (RFC 6749 §4.4). The client authenticates as it does to
//! `IssueToken`: with a JWT client assertion signed by its registered Ed25519 key
//! (RFC 7523 §2.2, `private_key_jwt`), or, where the deployment allows client secrets,
//! with its secret in the body (`client_secret_post`) or in HTTP Basic
//! (`client_secret_basic`). Parameters are form-encoded; the answer is RFC 6749's JSON,
//! and a refusal is its error object (§5.2) with the same stable reason `IssueToken`
//! puts in its `ErrorInfo`.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::json;

use crate::{
    error::IdentityError,
    service::{Credential, Identity},
};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What an assertion must be, said with every failed authentication: the refusal stays
/// the same whichever part failed, so a caller cannot probe, but an integrator can check
/// their assertion against it.
const ASSERTION_RULES: &str = "a client assertion is an EdDSA JWT signed with the client's \
     registered key, with iss = sub = the client id, aud = \"credmesh-identity\" (or this \
     token endpoint's URL, where the deployment has a public URL), a jti never used before \
     and exp at most 5 minutes ahead";

/// The same for a client secret.
const SECRET_RULES: &str = "client authentication failed; check the client id and secret \
     (client secrets are accepted only where the deployment allows them; elsewhere a client \
     authenticates with a client assertion)";

/// `POST /v1/token`.
pub async fn token(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let basic = headers.contains_key(header::AUTHORIZATION);
    match issue(&identity, &headers, &body).await {
        Ok(answer) => no_store((StatusCode::OK, Json(answer)).into_response()),
        Err(refusal) => refusal.into_response(basic),
    }
}

async fn issue(
    identity: &Identity,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, Refusal> {
    let form = Form::parse(headers, body)?;
    match form.get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "UNSUPPORTED_GRANT_TYPE",
                format!(
                    "grant_type '{other}' is not supported; this endpoint issues tokens by client_credentials"
                ),
            ));
        }
        None => {
            return Err(Refusal::invalid_request(
                "GRANT_TYPE_MISSING",
                "grant_type is required: client_credentials",
            ));
        }
    }
    let (client_id, credential) = client_authentication(headers, &form)?;
    let credential = match &credential {
        Owned::Assertion(a) => Credential::Assertion(a),
        Owned::Secret(s) => Credential::Secret(s),
    };
    let scopes: Vec<String> = form
        .get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let audience = form.get("audience").unwrap_or("");
    let by_assertion = matches!(credential, Credential::Assertion(_));
    let issued = identity
        .issue_token(&client_id, credential, &scopes, audience)
        .await
        .map_err(|err| Refusal::of(err, by_assertion))?;
    Ok(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scopes.join(" "),
    }))
}

/// A client's credential as the request carried it.
enum Owned {
    Assertion(String),
    Secret(String),
}

/// The client id and its credential, from exactly one of: a client assertion, HTTP
/// Basic, or `client_id` with `client_secret` in the body.
fn client_authentication(headers: &HeaderMap, form: &Form) -> Result<(String, Owned), Refusal> {
    let basic = basic_credentials(headers)?;
    let assertion = form.get("client_assertion");
    let secret = form.get("client_secret");
    let methods = usize::from(assertion.is_some())
        + usize::from(basic.is_some())
        + usize::from(secret.is_some());
    if methods > 1 {
        return Err(Refusal::invalid_request(
            "CLIENT_AUTHENTICATION_AMBIGUOUS",
            "use one way of client authentication: a client assertion, HTTP Basic, or client_secret",
        ));
    }
    if let Some(assertion) = assertion {
        match form.get("client_assertion_type") {
            Some(ASSERTION_TYPE) => {}
            Some(other) => {
                return Err(Refusal::invalid_request(
                    "CLIENT_ASSERTION_TYPE_INVALID",
                    format!(
                        "client_assertion_type '{other}' is not supported; use {ASSERTION_TYPE}"
                    ),
                ));
            }
            None => {
                return Err(Refusal::invalid_request(
                    "CLIENT_ASSERTION_TYPE_MISSING",
                    format!(
                        "client_assertion_type is required with a client_assertion: {ASSERTION_TYPE}"
                    ),
                ));
            }
        }
        // The client is the assertion's subject; a client_id sent beside it must agree,
        // which the assertion's check does (iss = sub = client id).
        let client_id = match form.get("client_id") {
            Some(id) => id.to_owned(),
            None => assertion_subject(assertion).ok_or_else(|| Refusal::invalid_client(
                "CLIENT_AUTH_FAILED",
                format!("the client_assertion is not a JWT naming its client in sub; {ASSERTION_RULES}"),
            ))?,
        };
        return Ok((client_id, Owned::Assertion(assertion.to_owned())));
    }
    if let Some((client_id, secret)) = basic {
        return Ok((client_id, Owned::Secret(secret)));
    }
    if let Some(secret) = secret {
        let Some(client_id) = form.get("client_id") else {
            return Err(Refusal::invalid_request(
                "CLIENT_ID_MISSING",
                "client_id is required with client_secret",
            ));
        };
        return Ok((client_id.to_owned(), Owned::Secret(secret.to_owned())));
    }
    Err(Refusal::invalid_client(
        "CLIENT_CREDENTIAL_MISSING",
        format!(
            "the request carries no client authentication: send client_assertion_type = \
             {ASSERTION_TYPE} and client_assertion (or, where the deployment allows them, a \
             client secret)"
        ),
    ))
}

/// The client id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1: each
/// form-encoded, then joined by ':' and base64-encoded); `None` without the header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        Refusal::invalid_client(
            "CLIENT_AUTH_FAILED",
            "the Authorization header is not HTTP Basic credentials (base64 of client_id:client_secret)",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Refusal::invalid_request(
            "AUTHORIZATION_SCHEME_UNSUPPORTED",
            format!(
                "the token endpoint takes HTTP Basic client credentials or a client assertion, not an Authorization of scheme '{scheme}'"
            ),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// One form-encoded value, decoded ('+' is a space).
fn form_decode(value: &str) -> String {
    form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The `sub` of a compact JWT, read without checking anything: only to know which
/// client's key checks it.
fn assertion_subject(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// The request's parameters: each at most once, an empty one as if omitted (RFC 6749
/// §3.1, §3.2).
struct Form {
    values: HashMap<String, String>,
}

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, Refusal> {
        let form_encoded = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_encoded {
            return Err(Refusal::invalid_request(
                "CONTENT_TYPE_UNSUPPORTED",
                "send the parameters form-encoded, with Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let mut values = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if values
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(Refusal::invalid_request(
                    "PARAMETER_REPEATED",
                    format!("parameter '{name}' is sent more than once"),
                ));
            }
        }
        Ok(Form { values })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// A refused token request: RFC 6749 §5.2's error object, with the stable reason.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: &'static str,
    reason: &'static str,
    description: String,
}

impl Refusal {
    fn new(
        status: StatusCode,
        error: &'static str,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Refusal {
        Refusal {
            status,
            error,
            reason,
            description: description.into(),
        }
    }

    fn invalid_request(reason: &'static str, description: impl Into<String>) -> Refusal {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            reason,
            description,
        )
    }

    fn invalid_client(reason: &'static str, description: impl Into<String>) -> Refusal {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            reason,
            description,
        )
    }

    /// The answer; `basic` when the client sent an Authorization header, which a 401
    /// then names (RFC 6749 §5.2).
    fn into_response(self, basic: bool) -> Response {
        let mut response = (
            self.status,
            Json(json!({
                "error": self.error,
                "error_description": self.description,
                "reason": self.reason,
            })),
        )
            .into_response();
        if basic && self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"credmesh\""),
            );
        }
        no_store(response)
    }
}

impl Refusal {
    /// The refusal of a token request `IssueToken` refused; `by_assertion` when the
    /// client authenticated with an assertion (a failure then says what one must be).
    fn of(err: IdentityError, by_assertion: bool) -> Refusal {
        let description = err.to_string();
        match err {
            IdentityError::AuthenticationFailed { reason } => Refusal::invalid_client(
                reason,
                if by_assertion {
                    format!("client authentication failed; {ASSERTION_RULES}")
                } else {
                    SECRET_RULES.to_owned()
                },
            ),
            IdentityError::ClientDisabled(_) => Refusal::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "CLIENT_DISABLED",
                description,
            ),
            IdentityError::ScopeNotGranted(_) => Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "SCOPE_NOT_GRANTED",
                description,
            ),
            // The only field of a token request the service checks is the audience
            // (RFC 8707's invalid_target: the token's intended recipient).
            IdentityError::Invalid { reason, .. } => Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                reason,
                description,
            ),
            IdentityError::Internal(err) if credmesh_store::fault::is_unavailable(&err) => {
                tracing::warn!(error = format!("{err:#}"), "database unavailable");
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "DATABASE_UNAVAILABLE",
                    "the identity database is unavailable; try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "token request failed");
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "INTERNAL",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

/// Token answers are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<Form, Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        Form::parse(&headers, body.as_bytes())
    }

    #[test]
    fn a_form_takes_each_parameter_once_and_an_empty_one_as_omitted() {
        let f =
            form("grant_type=client_credentials&scope=verify+verify.audit.read&audience=").unwrap();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), Some("verify verify.audit.read"));
        assert_eq!(f.get("audience"), None);
        let e = form("scope=a&scope=b").err().unwrap();
        assert_eq!(
            (e.error, e.reason),
            ("invalid_request", "PARAMETER_REPEATED")
        );
        let e = Form::parse(&HeaderMap::new(), b"{}").err().unwrap();
        assert_eq!(e.reason, "CONTENT_TYPE_UNSUPPORTED");
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let mut headers = HeaderMap::new();
        // "bank%3Asz:s+cret%25" — a ':' in the id and a '%' in the secret, encoded.
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("bank%3Asz:s+cret%25")
        );
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("bank:sz", "s cret%"));
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        let e = basic_credentials(&headers).err().unwrap();
        assert_eq!(e.reason, "AUTHORIZATION_SCHEME_UNSUPPORTED");
    }

    #[test]
    fn the_subject_of_an_assertion_names_its_client() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let assertion =
            credmesh_auth::client_assertion("bank-suzhou", &key, 1_800_000_000).unwrap();
        assert_eq!(
            assertion_subject(&assertion).as_deref(),
            Some("bank-suzhou")
        );
        assert_eq!(assertion_subject("not a jwt"), None);
    }
}

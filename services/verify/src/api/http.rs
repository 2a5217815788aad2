//! The HTTP/JSON API: `POST /v1/verify`, `POST /v1/verify/batch` (Bearer tokens with
//! scope `verify`, the same rate limit and audit as gRPC), `GET /openapi.json` and the
//! public `GET /v1/verify/bundle` (a `TrustBundle` for offline verifiers).
//!
//! Bodies are parsed by hand so a bad body gets a JSON error naming what was wrong
//! rather than a framework's plain-text rejection.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use credmesh_auth::{AuthError, TokenValidator};
use credmesh_proto::verify::v1::{CredentialForm, DataAge, VerificationResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    domain::answer::kind_name,
    error::VerifyError,
    service::{Gateway, Input, MAX_BATCH, outcome_name},
};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone)]
struct AppState {
    gateway: Arc<Gateway>,
    validator: Arc<TokenValidator>,
}

/// The verify gateway's HTTP routes.
pub fn routes(gateway: Arc<Gateway>, validator: Arc<TokenValidator>) -> Router {
    Router::new()
        .route("/v1/verify", post(verify))
        .route("/v1/verify/batch", post(verify_batch))
        .route("/v1/verify/bundle", get(bundle))
        .route("/openapi.json", get(openapi))
        .with_state(AppState { gateway, validator })
}

/// Public: every list in it is signed and already public; see `TrustBundle`.
async fn bundle(State(state): State<AppState>) -> Response {
    use credmesh_proto::prost::Message as _;
    (
        [
            (
                header::CONTENT_TYPE,
                "application/x-protobuf; messageType=credmesh.verify.v1.TrustBundle",
            ),
            (header::CACHE_CONTROL, "public, max-age=30"),
        ],
        state.gateway.bundle().encode_to_vec(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// One credential in a JSON body: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialJson {
    /// QR text, a VC-JWT or an SD-JWT.
    credential: Option<String>,
    /// A base64 (standard or url-safe) encoded native envelope.
    envelope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson {
    credentials: Vec<CredentialJson>,
}

fn error_response(err: &VerifyError) -> Response {
    let (code, retry) = match err {
        VerifyError::Invalid { .. } => (StatusCode::BAD_REQUEST, None),
        VerifyError::RateLimited { retry_after, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after))
        }
        VerifyError::Auth(AuthError::MissingScope(_)) => (StatusCode::FORBIDDEN, None),
        VerifyError::Auth(_) => (StatusCode::UNAUTHORIZED, None),
    };
    let fields: Vec<Value> = match err {
        VerifyError::Invalid { violations, .. } => violations
            .iter()
            .map(|v| json!({"field": v.field, "description": v.description}))
            .collect(),
        _ => Vec::new(),
    };
    let body =
        json!({"error": {"reason": err.reason(), "message": err.to_string(), "fields": fields}});
    let mut response = (code, axum::Json(body)).into_response();
    if let Some(secs) = retry
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if code == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<String, VerifyError> {
    let token = credmesh_auth::bearer_token(headers)?.ok_or(AuthError::MissingToken)?;
    let principal = state.validator.validate(token).await?;
    if !principal.has_scope(crate::SCOPE) {
        return Err(AuthError::MissingScope(crate::SCOPE.to_owned()).into());
    }
    Ok(principal.client_id)
}

/// The credential of a `POST /v1/verify` body (`{"credential": "<text>"}` or
/// `{"envelope": "<base64>"}`), or the answer for a bad body. Public so that the fuzzer
/// reaches exactly what the route runs, before authentication and rate limiting.
pub fn parse_verify_body(body: &[u8]) -> Result<Input, VerifyError> {
    to_input(parse::<CredentialJson>(body)?, "body")
}

/// The credentials of a `POST /v1/verify/batch` body (`{"credentials": [...]}`, 1 to
/// [`MAX_BATCH`] of them, each as in [`parse_verify_body`]), or the answer for a bad body.
pub fn parse_batch_body(body: &[u8]) -> Result<Vec<Input>, VerifyError> {
    let batch = parse::<BatchJson>(body)?;
    if batch.credentials.is_empty() || batch.credentials.len() > MAX_BATCH {
        return Err(VerifyError::invalid(
            "BATCH_SIZE",
            "credentials",
            format!(
                "a batch carries 1 to {MAX_BATCH} credentials, not {}",
                batch.credentials.len()
            ),
        ));
    }
    batch
        .credentials
        .into_iter()
        .enumerate()
        .map(|(i, c)| to_input(c, &format!("credentials[{i}]")))
        .collect()
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, VerifyError> {
    serde_json::from_slice(body).map_err(|e| {
        VerifyError::invalid(
            "INVALID_JSON",
            "body",
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

fn to_input(c: CredentialJson, field: &str) -> Result<Input, VerifyError> {
    match (c.credential, c.envelope) {
        (Some(text), None) if !text.trim().is_empty() => Ok(Input::Text(text)),
        (None, Some(b64)) => {
            let t = b64.trim().trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
                .map(Input::Envelope)
                .map_err(|_| {
                    VerifyError::invalid(
                        "INVALID_BASE64",
                        &format!("{field}.envelope"),
                        "envelope must be base64",
                    )
                })
        }
        _ => Err(VerifyError::invalid(
            "CREDENTIAL_MISSING",
            field,
            "set exactly one of credential (QR text, VC-JWT or SD-JWT) and envelope (base64 native bytes)",
        )),
    }
}

async fn verify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let client = authenticate(&state, &headers).await?;
        let input = parse_verify_body(&body)?;
        state.gateway.check_rate(&client, 1)?;
        Ok::<_, VerifyError>(state.gateway.verify(Some(&client), &input).await)
    }
    .await;
    match outcome {
        Ok(r) => axum::Json(result_json(&r)).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn verify_batch(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let client = authenticate(&state, &headers).await?;
        let inputs = parse_batch_body(&body)?;
        state.gateway.check_rate(&client, inputs.len())?;
        Ok(state.gateway.verify_many(Some(&client), &inputs).await)
    }
    .await;
    match outcome {
        Ok(rs) => axum::Json(json!({"results": rs.iter().map(result_json).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => error_response(&e),
    }
}

fn age_json(a: &Option<DataAge>) -> Value {
    let a = (*a).unwrap_or_default();
    json!({"consulted": a.consulted, "age_seconds": a.age_seconds, "stale": a.stale})
}

/// The JSON form of an answer (the OpenAPI `VerificationResult` schema).
pub fn result_json(r: &VerificationResult) -> Value {
    let form = match CredentialForm::try_from(r.form) {
        Ok(CredentialForm::Native) => "native",
        Ok(CredentialForm::Qr) => "qr",
        Ok(CredentialForm::VcJwt) => "vc-jwt",
        Ok(CredentialForm::SdJwt) => "sd-jwt",
        _ => "unknown",
    };
    json!({
        "outcome": outcome_name(r.outcome),
        "superseded": r.superseded,
        "reason": r.reason,
        "detail": r.detail,
        "form": form,
        "credential_id": r.credential_id,
        "kind": kind_name(r.kind),
        "issuer": r.issuer,
        "region": r.region,
        "subject": r.subject,
        "not_before": r.not_before,
        "not_after": r.not_after,
        "version": r.version,
        "disclosed": r.disclosed.iter().map(|c| json!({"name": c.name, "value": c.value})).collect::<Vec<_>>(),
        "trust": age_json(&r.trust),
        "status": age_json(&r.status),
        "verified_at": r.verified_at,
        "already_used": r.already_used,
        "disputed": r.disputed,
        "disputed_fields": r.disputed_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_to_the_inputs_they_name() {
        let sd = "eyJh.eyJi.c2ln~WyJhIiwiYiIsImMiXQ~";
        let body = json!({ "credential": sd }).to_string();
        assert_eq!(
            parse_verify_body(body.as_bytes()).unwrap(),
            Input::Text(sd.into())
        );
        assert_eq!(
            parse_verify_body(br#"{"envelope":"AQID"}"#).unwrap(),
            Input::Envelope(vec![1, 2, 3])
        );
        assert_eq!(
            parse_verify_body(br#"{"envelope":"-_8="}"#).unwrap(),
            Input::Envelope(vec![0xfb, 0xff])
        );
        let batch = json!({"credentials": [{"credential": "CM1:X"}, {"envelope": "AQID"}]});
        assert_eq!(
            parse_batch_body(batch.to_string().as_bytes()).unwrap(),
            [Input::Text("CM1:X".into()), Input::Envelope(vec![1, 2, 3])]
        );
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let reason = |r: Result<Input, VerifyError>| r.unwrap_err().reason();
        assert_eq!(reason(parse_verify_body(b"{not json")), "INVALID_JSON");
        assert_eq!(reason(parse_verify_body(b"{}")), "CREDENTIAL_MISSING");
        assert_eq!(
            reason(parse_verify_body(
                br#"{"credential":"a","envelope":"AQID"}"#
            )),
            "CREDENTIAL_MISSING"
        );
        assert_eq!(
            reason(parse_verify_body(br#"{"credential":"  "}"#)),
            "CREDENTIAL_MISSING"
        );
        assert_eq!(
            reason(parse_verify_body(br#"{"envelope":"!!"}"#)),
            "INVALID_BASE64"
        );
        assert_eq!(
            reason(parse_verify_body(br#"{"credential":"a","x":1}"#)),
            "INVALID_JSON"
        );
        let batch = |b: &str| parse_batch_body(b.as_bytes()).unwrap_err().reason();
        assert_eq!(batch(r#"{"credentials":[]}"#), "BATCH_SIZE");
        assert_eq!(batch(r#"{"credentials":[{}]}"#), "CREDENTIAL_MISSING");
        let many = json!({ "credentials": vec![json!({"credential": "x"}); MAX_BATCH + 1] });
        assert_eq!(batch(&many.to_string()), "BATCH_SIZE");
    }
}

//! The HTTP/JSON API: `POST /v1/verify`, `POST /v1/verify/batch` (Bearer tokens with
//! scope `verify`, the same rate limit and audit as gRPC), `GET /v1/verify/audit` (the
//! audit listing, same rules as `ListVerificationAudit`), `GET /openapi.json` and the
//! public `GET /v1/verify/bundle` (a `TrustBundle` for offline verifiers).
//!
//! Bodies are parsed by hand so a bad body gets a JSON error naming what was wrong
//! rather than a framework's plain-text rejection.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{Extension, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use credmesh_auth::{AuthError, Principal, TokenValidator};
use credmesh_proto::verify::v1::{
    CredentialForm, DataAge, ListVerificationAuditRequest, VerificationAuditEntry,
    VerificationResult,
};
use credmesh_runtime::RateCharge;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    audit,
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
        .route("/v1/verify/audit", get(list_audit))
        .route("/openapi.json", get(openapi))
        .with_state(AppState { gateway, validator })
}

/// Public: every list in it is signed and already public; see `TrustBundle`. With an
/// `ETag`: an offline verifier refreshing its bundle gets `304` while nothing changed.
async fn bundle(State(state): State<AppState>, headers: HeaderMap) -> Response {
    use credmesh_proto::prost::Message as _;
    credmesh_runtime::http_cache::public(
        &headers,
        "application/x-protobuf; messageType=credmesh.verify.v1.TrustBundle",
        "public, max-age=30",
        credmesh_runtime::http_cache::Negotiated::No,
        state.gateway.bundle().await.encode_to_vec(),
    )
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
        VerifyError::RateLimited(e) => {
            (StatusCode::TOO_MANY_REQUESTS, Some(e.retry_after_seconds()))
        }
        VerifyError::Auth(AuthError::MissingScope(_)) | VerifyError::Forbidden { .. } => {
            (StatusCode::FORBIDDEN, None)
        }
        VerifyError::Auth(_) => (StatusCode::UNAUTHORIZED, None),
        VerifyError::Internal(err) => {
            tracing::error!(error = %format!("{err:#}"), "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
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
    Ok(authenticate_any(state, headers, &[crate::SCOPE])
        .await?
        .client_id
        .clone())
}

/// The caller, who must hold at least one of `scopes`.
async fn authenticate_any(
    state: &AppState,
    headers: &HeaderMap,
    scopes: &[&str],
) -> Result<std::sync::Arc<Principal>, VerifyError> {
    let token = credmesh_auth::bearer_token(headers)?.ok_or(AuthError::MissingToken)?;
    let principal = state.validator.validate(token).await?;
    if !scopes.iter().any(|s| principal.has_scope(s)) {
        return Err(AuthError::MissingScope(scopes.join(" or ")).into());
    }
    Ok(principal)
}

/// The query of `GET /v1/verify/audit`; outcome and kind by their JSON names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    client_id: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    outcome: Option<String>,
    kind: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
}

fn audit_request(p: AuditParams) -> Result<ListVerificationAuditRequest, VerifyError> {
    let outcome = match p.outcome.as_deref() {
        None | Some("") => 0,
        Some(name) => audit::outcome_from_name(name).map(|o| o as i32).ok_or_else(|| {
            VerifyError::invalid(
                "OUTCOME_UNKNOWN",
                "outcome",
                format!("'{name}' is not an outcome (valid, revoked, suspended, expired, not_yet_valid, unknown_issuer, bad_signature, malformed, status_unknown)"),
            )
        })?,
    };
    let kind = match p.kind.as_deref() {
        None | Some("") => 0,
        Some(name) => audit::kind_from_name(name).map(|k| k as i32).ok_or_else(|| {
            VerifyError::invalid(
                "KIND_UNKNOWN",
                "kind",
                format!("'{name}' is not a credential kind (business_license, enterprise_code, presentation, certificate, inspection_code)"),
            )
        })?,
    };
    Ok(ListVerificationAuditRequest {
        client_id: p.client_id.unwrap_or_default(),
        since: p.since.unwrap_or_default(),
        until: p.until.unwrap_or_default(),
        outcome,
        kind,
        page_size: p.page_size.unwrap_or_default(),
        page_token: p.page_token.unwrap_or_default(),
    })
}

/// The JSON form of an audit entry (the OpenAPI `VerificationAuditEntry` schema).
pub fn audit_entry_json(e: &VerificationAuditEntry) -> Value {
    json!({
        "client_id": e.client_id,
        "credential_id": e.credential_id,
        "kind": kind_name(e.kind),
        "outcome": outcome_name(e.outcome),
        "reason": e.reason,
        "issuer": e.issuer,
        "verified_at": e.verified_at,
        "count": e.count.max(1),
    })
}

async fn list_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Response {
    let outcome = async {
        let principal =
            authenticate_any(&state, &headers, &[crate::SCOPE, audit::AUDIT_SCOPE]).await?;
        let Query(params) = params.map_err(|e| {
            VerifyError::invalid(
                "INVALID_QUERY",
                "query",
                format!(
                    "the query string is not the expected one: {}",
                    e.body_text()
                ),
            )
        })?;
        let query = audit::query(&principal, &audit_request(params)?)?;
        let rows = state.gateway.list_audit(&query).await?;
        Ok::<_, VerifyError>(audit::page(&query, rows))
    }
    .await;
    match outcome {
        Ok(page) => axum::Json(json!({
            "entries": page.entries.iter().map(audit_entry_json).collect::<Vec<_>>(),
            "next_page_token": page.next_page_token,
        }))
        .into_response(),
        Err(e) => error_response(&e),
    }
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

/// The credential of one JSON member: exactly one of `credential` and `envelope` set,
/// and not blank. A member that is null counts as absent, as many JSON encoders write
/// them.
fn to_input(c: CredentialJson, field: &str) -> Result<Input, VerifyError> {
    match (c.credential, c.envelope) {
        (Some(text), None) if !super::blank(&text) => Ok(Input::Text(text)),
        (None, Some(b64)) if !super::blank(&b64) => {
            let t = b64
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .trim_end_matches('=');
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
                .map_err(|_| {
                    VerifyError::invalid(
                        "INVALID_BASE64",
                        &format!("{field}.envelope"),
                        "envelope must be base64 (the standard or the url-safe alphabet, \
                         padding optional)",
                    )
                })?;
            if bytes.is_empty() {
                return Err(VerifyError::invalid(
                    "CREDENTIAL_MISSING",
                    &format!("{field}.envelope"),
                    "envelope holds no bytes",
                ));
            }
            Ok(Input::Envelope(bytes))
        }
        _ => Err(VerifyError::invalid(
            "CREDENTIAL_MISSING",
            field,
            "set exactly one of credential (QR text, VC-JWT or SD-JWT) and envelope (base64 native bytes)",
        )),
    }
}

#[tracing::instrument(skip_all)]
async fn verify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let client = authenticate(&state, &headers).await?;
        let input = parse_verify_body(&body)?;
        Ok::<_, VerifyError>(state.gateway.verify(Some(&client), &input).await)
    }
    .await;
    match outcome {
        Ok(r) => axum::Json(result_json(&r)).into_response(),
        Err(e) => error_response(&e),
    }
}

#[tracing::instrument(skip_all, fields(count = tracing::field::Empty))]
async fn verify_batch(
    State(state): State<AppState>,
    charge: Option<Extension<RateCharge>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let client = authenticate(&state, &headers).await?;
        let inputs = parse_batch_body(&body)?;
        tracing::Span::current().record("count", inputs.len());
        RateCharge::items(charge.as_ref().map(|Extension(c)| c), inputs.len())?;
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
        // Blank or null members say nothing: never an empty native credential.
        for body in [
            r#"{"envelope":""}"#,
            r#"{"envelope":" \n"}"#,
            r#"{"credential":null,"envelope":""}"#,
            r#"{"credential":null,"envelope":null}"#,
            r#"{"credential":"","envelope":""}"#,
            r#"{"envelope":"=="}"#,
        ] {
            assert_eq!(
                reason(parse_verify_body(body.as_bytes())),
                "CREDENTIAL_MISSING",
                "{body}"
            );
        }
        assert_eq!(
            parse_verify_body(br#"{"credential":"CM1:X","envelope":null}"#).unwrap(),
            Input::Text("CM1:X".into())
        );
        assert_eq!(
            reason(parse_verify_body(
                br#"{"credential":" ","envelope":"AQID"}"#
            )),
            "CREDENTIAL_MISSING"
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

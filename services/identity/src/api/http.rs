//! The identity service over HTTP: the OAuth 2.0 token endpoint (`POST /v1/token`, see
//! [`super::token`]) and the public documents: the token JWKS, the credential-issuer
//! JWKS (for verifying VC-JWTs with any JOSE library) and the signed trust list, each
//! with an `ETag` (`304` to a client holding it).

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use credmesh_auth::{Jwk, Jwks};
use credmesh_proto::prost::Message as _;
use credmesh_runtime::http_cache::{self, Negotiated};

use crate::service::Identity;

/// The identity service's HTTP routes.
pub fn routes(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(token_jwks))
        .route("/v1/trust/jwks.json", get(issuer_jwks))
        .route("/v1/trust/list", get(trust_list))
        .route("/v1/token", post(super::token::token))
        .with_state(identity)
}

const PUBLIC_CACHE: &str = "public, max-age=60";

async fn token_jwks(State(identity): State<Arc<Identity>>, headers: HeaderMap) -> Response {
    json_document(&headers, identity.jwks())
}

async fn issuer_jwks(State(identity): State<Arc<Identity>>, headers: HeaderMap) -> Response {
    match identity.issuer_keys("").await {
        Ok(keys) => {
            let keys = keys
                .into_iter()
                .filter(|r| Identity::publishable(r.key.status))
                .filter_map(|r| {
                    let pk = <[u8; 32]>::try_from(r.key.public_key.as_slice()).ok()?;
                    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).ok()?;
                    Some(Jwk::from_ed25519(&r.key.kid, &vk))
                })
                .collect();
            json_document(&headers, &Jwks { keys })
        }
        Err(err) => internal(err),
    }
}

async fn trust_list(State(identity): State<Arc<Identity>>, headers: HeaderMap) -> Response {
    match identity.trust_list().await {
        Ok(envelope) => http_cache::public(
            &headers,
            "application/x-protobuf; messageType=credmesh.credential.v1.Envelope",
            PUBLIC_CACHE,
            Negotiated::No,
            envelope.encode_to_vec(),
        ),
        Err(err) => internal(err),
    }
}

/// A key set as public JSON, with its `ETag`.
fn json_document(headers: &HeaderMap, jwks: &Jwks) -> Response {
    match serde_json::to_vec(jwks) {
        Ok(body) => http_cache::public(
            headers,
            "application/json",
            PUBLIC_CACHE,
            Negotiated::No,
            body,
        ),
        Err(err) => {
            tracing::error!(error = %err, "key set not serialised");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn internal(err: crate::error::IdentityError) -> Response {
    tracing::error!(error = %err, "public document failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the document is temporarily unavailable\n",
    )
        .into_response()
}

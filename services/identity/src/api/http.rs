//! Public HTTP documents: the token JWKS, the credential-issuer JWKS (for verifying
//! VC-JWTs with any JOSE library) and the signed trust list.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use credmesh_auth::{Jwk, Jwks};
use credmesh_proto::prost::Message as _;

use crate::service::Identity;

/// The identity service's HTTP routes.
pub fn routes(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(token_jwks))
        .route("/v1/trust/jwks.json", get(issuer_jwks))
        .route("/v1/trust/list", get(trust_list))
        .with_state(identity)
}

const PUBLIC_CACHE: &str = "public, max-age=60";

async fn token_jwks(State(identity): State<Arc<Identity>>) -> Response {
    (
        [(header::CACHE_CONTROL, PUBLIC_CACHE)],
        axum::Json(identity.jwks().clone()),
    )
        .into_response()
}

async fn issuer_jwks(State(identity): State<Arc<Identity>>) -> Response {
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
            (
                [(header::CACHE_CONTROL, PUBLIC_CACHE)],
                axum::Json(Jwks { keys }),
            )
                .into_response()
        }
        Err(err) => internal(err),
    }
}

async fn trust_list(State(identity): State<Arc<Identity>>) -> Response {
    match identity.trust_list().await {
        Ok(envelope) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/x-protobuf; messageType=credmesh.credential.v1.Envelope",
                ),
                (header::CACHE_CONTROL, PUBLIC_CACHE),
            ],
            envelope.encode_to_vec(),
        )
            .into_response(),
        Err(err) => internal(err),
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

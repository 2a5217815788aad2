//! The public HTTP route every issuing service publishes its status lists on, at exactly
//! the URLs its VC-JWTs name in `credentialStatus`:
//! `/v1/status/<REGION>/<service>/<n>/<purpose>`.
//!
//! Each service registers its route with the literal `<REGION>/<service>` prefix, so all
//! of them share one HTTP port in `credmesh dev` (and one ingress in Kubernetes) without
//! their routes clashing. The default answer is the W3C `BitstringStatusListCredential`
//! as a VC-JWT (`application/vc+jwt`); a client asking for `application/x-protobuf` gets
//! the signed native `Envelope`. Both may be cached publicly for 30 seconds, carry an
//! `ETag` and `Vary: Accept`, and a client holding the current one gets `304`
//! ([`crate::http_cache`]).

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use credmesh_proto::{
    credential::v1::{Envelope, StatusPurpose},
    prost::Message as _,
};
use futures::future::BoxFuture;

use crate::http_cache::{self, Negotiated};

/// How long a published list may be cached by anyone.
const PUBLIC_CACHE: &str = "public, max-age=30";

/// A signed status list in both published forms.
#[derive(Clone, Debug)]
pub struct StatusDocument {
    /// The native signed form.
    pub envelope: Envelope,
    /// The W3C `BitstringStatusListCredential` VC-JWT.
    pub vc_jwt: String,
}

/// Why a list cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusListError {
    /// No such list (an id this service never allocated): 404.
    NotFound,
    /// The list exists but cannot be signed now (database down…): 503, logged.
    Unavailable(String),
}

/// A service that signs its status lists on request.
pub trait StatusListSource: Send + Sync + 'static {
    /// The list `list_id` (`<REGION>/<service>/<n>`) for `purpose`, signed.
    fn status_document(
        &self,
        list_id: String,
        purpose: StatusPurpose,
    ) -> BoxFuture<'_, Result<StatusDocument, StatusListError>>;
}

struct Route<S> {
    source: Arc<S>,
    prefix: String,
}

/// The route `/v1/status/<region>/<service>/{n}/{purpose}` answered by `source`.
pub fn routes<S: StatusListSource>(region: &str, service: &str, source: Arc<S>) -> Router {
    let prefix = format!("{region}/{service}");
    let path = format!("/v1/status/{prefix}/{{n}}/{{purpose}}");
    Router::new()
        .route(&path, get(status_list::<S>))
        .with_state(Arc::new(Route { source, prefix }))
}

/// The purpose named in a status URL's last segment.
pub fn purpose_of(segment: &str) -> Option<StatusPurpose> {
    match segment {
        "revocation" => Some(StatusPurpose::Revocation),
        "suspension" => Some(StatusPurpose::Suspension),
        "superseded" => Some(StatusPurpose::Superseded),
        _ => None,
    }
}

async fn status_list<S: StatusListSource>(
    State(route): State<Arc<Route<S>>>,
    Path((n, purpose)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such status list\n").into_response();
    let Some(purpose) = purpose_of(&purpose) else {
        return not_found();
    };
    let list_id = format!("{}/{n}", route.prefix);
    let document = match route.source.status_document(list_id.clone(), purpose).await {
        Ok(document) => document,
        Err(StatusListError::NotFound) => return not_found(),
        Err(StatusListError::Unavailable(error)) => {
            tracing::error!(error, list_id, "status list unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the status list is temporarily unavailable\n",
            )
                .into_response();
        }
    };
    let wants_protobuf = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-protobuf"));
    if wants_protobuf {
        http_cache::public(
            &headers,
            "application/x-protobuf; messageType=credmesh.credential.v1.Envelope",
            PUBLIC_CACHE,
            Negotiated::ByAccept,
            document.envelope.encode_to_vec(),
        )
    } else {
        http_cache::public(
            &headers,
            "application/vc+jwt",
            PUBLIC_CACHE,
            Negotiated::ByAccept,
            document.vc_jwt,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt as _;

    /// List 0 of revocation exists; list 1 is down; nothing else.
    struct Lists;

    impl StatusListSource for Lists {
        fn status_document(
            &self,
            list_id: String,
            purpose: StatusPurpose,
        ) -> BoxFuture<'_, Result<StatusDocument, StatusListError>> {
            Box::pin(async move {
                match (list_id.as_str(), purpose) {
                    ("SH/license/0", StatusPurpose::Revocation) => Ok(StatusDocument {
                        envelope: Envelope {
                            kid: "k1".into(),
                            ..Default::default()
                        },
                        vc_jwt: "a.b.c".into(),
                    }),
                    ("SH/license/1", _) => Err(StatusListError::Unavailable("db down".into())),
                    _ => Err(StatusListError::NotFound),
                }
            })
        }
    }

    async fn get(path: &str, accept: Option<&str>) -> (StatusCode, String, Vec<u8>) {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let response = routes("SH", "license", Arc::new(Lists))
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec();
        (status, content_type, body)
    }

    #[tokio::test]
    async fn lists_answer_in_both_forms_and_strangers_are_not_found() {
        let (status, content_type, body) = get("/v1/status/SH/license/0/revocation", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/vc+jwt");
        assert_eq!(body, b"a.b.c");

        let (status, content_type, body) = get(
            "/v1/status/SH/license/0/revocation",
            Some("application/x-protobuf"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("application/x-protobuf"));
        assert_eq!(Envelope::decode(body.as_slice()).unwrap().kid, "k1");

        for path in [
            "/v1/status/SH/license/0/suspension",
            "/v1/status/SH/license/0/nonsense",
            "/v1/status/SH/license/7/revocation",
            "/v1/status/JS/license/0/revocation",
        ] {
            assert_eq!(get(path, None).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(
            get("/v1/status/SH/license/1/revocation", None).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn each_form_has_its_own_tag_varies_by_accept_and_a_held_one_is_not_sent_again() {
        let call = |accept: Option<&'static str>, tag: Option<String>| async move {
            let mut request = Request::get("/v1/status/SH/license/0/revocation");
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(tag) = tag {
                request = request.header(header::IF_NONE_MATCH, tag);
            }
            routes("SH", "license", Arc::new(Lists))
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap()
        };
        let tag = |r: &Response| r.headers()[header::ETAG].to_str().unwrap().to_owned();
        let jwt = call(None, None).await;
        let native = call(Some("application/x-protobuf"), None).await;
        assert_ne!(tag(&jwt), tag(&native));
        for r in [&jwt, &native] {
            assert_eq!(r.headers()[header::VARY], "accept");
            assert_eq!(r.headers()[header::CACHE_CONTROL], PUBLIC_CACHE);
        }
        let again = call(None, Some(tag(&jwt))).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        // The other form's tag does not stand for this one.
        assert_eq!(
            call(None, Some(tag(&native))).await.status(),
            StatusCode::OK
        );
    }
}

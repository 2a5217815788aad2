//! Public HTTP documents: the certificate service's status lists at the URLs its credentials
//! name (`/v1/status/<REGION>/certificate/<n>/<purpose>`), through the route every issuing
//! service shares ([`credmesh_runtime::status_http`]).
//!
//! Beside them, `/v1/disputes/<REGION>/certificate` serves the signed dispute notice:
//! the certificates whose data is under an open dispute and the fields disputed.

use std::sync::Arc;

use axum::Router;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use credmesh_proto::credential::v1::StatusPurpose;
use credmesh_proto::prost::Message as _;
use credmesh_runtime::status_http::{self, StatusDocument, StatusListError, StatusListSource};
use futures::future::BoxFuture;

use crate::{error::CertificateError, service::Certificates};

/// The certificate service's HTTP routes.
pub fn routes(certificates: Arc<Certificates>) -> Router {
    let region = certificates.region().code();
    status_http::routes(region, "certificate", certificates.clone()).merge(
        Router::new()
            .route(
                &format!("/v1/disputes/{region}/certificate"),
                get(dispute_notice),
            )
            .with_state(certificates),
    )
}

impl StatusListSource for Certificates {
    fn status_document(
        &self,
        list_id: String,
        purpose: StatusPurpose,
    ) -> BoxFuture<'_, Result<StatusDocument, StatusListError>> {
        Box::pin(async move {
            match self.status_list(&list_id, purpose as i32).await {
                Ok(published) => Ok(StatusDocument {
                    envelope: published.envelope.clone(),
                    vc_jwt: published.vc_jwt.clone(),
                }),
                Err(CertificateError::StatusListNotFound(_) | CertificateError::Invalid { .. }) => {
                    Err(StatusListError::NotFound)
                }
                Err(err) => Err(StatusListError::Unavailable(err.to_string())),
            }
        })
    }
}

/// The signed dispute notice (`DisputeNotice` in an `Envelope`, protobuf). Short cache
/// lifetime: a dispute filed must show at verifiers within seconds.
async fn dispute_notice(
    State(certificates): State<Arc<Certificates>>,
    headers: HeaderMap,
) -> Response {
    match certificates.dispute_notice().await {
        Ok(envelope) => credmesh_runtime::http_cache::public(
            &headers,
            "application/x-protobuf; messageType=credmesh.credential.v1.Envelope",
            "public, max-age=1",
            credmesh_runtime::http_cache::Negotiated::No,
            envelope.encode_to_vec(),
        ),
        Err(err) => {
            tracing::error!(error = %err, "dispute notice unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the dispute notice is temporarily unavailable\n",
            )
                .into_response()
        }
    }
}

//! Public HTTP documents: the service's status lists, at exactly the URLs its VC-JWTs
//! name in `credentialStatus` (`/v1/status/<REGION>/inspection/<n>/<purpose>`).
//!
//! The route is registered with the literal `<REGION>/inspection` prefix so that other
//! issuing services can publish their own lists under `/v1/status/<REGION>/<service>/…`
//! on the shared HTTP port without their routes clashing.
//!
//! The default answer is the W3C `BitstringStatusListCredential` as a VC-JWT
//! (`application/vc+jwt`); a client asking for `application/x-protobuf` gets the signed
//! native `Envelope` instead.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use credmesh_proto::{credential::v1::StatusPurpose, prost::Message as _};

use crate::{error::InspectionError, service::Inspection};

/// The inspection service's HTTP routes.
pub fn routes(inspection: Arc<Inspection>) -> Router {
    let path = format!(
        "/v1/status/{}/inspection/{{n}}/{{purpose}}",
        inspection.region().code()
    );
    Router::new()
        .route(&path, get(status_list))
        .with_state(inspection)
}

const PUBLIC_CACHE: &str = "public, max-age=30";

async fn status_list(
    State(inspection): State<Arc<Inspection>>,
    Path((n, purpose)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let purpose = match purpose.as_str() {
        "revocation" => StatusPurpose::Revocation,
        "suspension" => StatusPurpose::Suspension,
        "superseded" => StatusPurpose::Superseded,
        _ => return (StatusCode::NOT_FOUND, "no such status list\n").into_response(),
    };
    let list_id = format!("{}/inspection/{n}", inspection.region().code());
    let published = match inspection.status_list(&list_id, purpose as i32).await {
        Ok(p) => p,
        Err(InspectionError::StatusListNotFound(_) | InspectionError::Invalid { .. }) => {
            return (StatusCode::NOT_FOUND, "no such status list\n").into_response();
        }
        Err(err) => {
            tracing::error!(error = %err, list_id, "status list unavailable");
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
        (
            [
                (
                    header::CONTENT_TYPE,
                    "application/x-protobuf; messageType=credmesh.credential.v1.Envelope",
                ),
                (header::CACHE_CONTROL, PUBLIC_CACHE),
            ],
            published.envelope.encode_to_vec(),
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, "application/vc+jwt"),
                (header::CACHE_CONTROL, PUBLIC_CACHE),
            ],
            published.vc_jwt.clone(),
        )
            .into_response()
    }
}

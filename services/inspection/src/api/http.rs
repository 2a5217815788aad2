//! Public HTTP documents: the inspection service's status lists at the URLs its credentials
//! name (`/v1/status/<REGION>/inspection/<n>/<purpose>`), through the route every issuing
//! service shares ([`credmesh_runtime::status_http`]).

use std::sync::Arc;

use axum::Router;
use credmesh_proto::credential::v1::StatusPurpose;
use credmesh_runtime::status_http::{self, StatusDocument, StatusListError, StatusListSource};
use futures::future::BoxFuture;

use crate::{error::InspectionError, service::Inspection};

/// The inspection service's HTTP routes.
pub fn routes(inspection: Arc<Inspection>) -> Router {
    let region = inspection.region().code();
    status_http::routes(region, "inspection", inspection.clone())
}

impl StatusListSource for Inspection {
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
                Err(InspectionError::StatusListNotFound(_) | InspectionError::Invalid { .. }) => {
                    Err(StatusListError::NotFound)
                }
                Err(err) => Err(StatusListError::Unavailable(err.to_string())),
            }
        })
    }
}

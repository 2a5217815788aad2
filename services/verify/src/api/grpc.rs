//! `credmesh.verify.v1.VerifyService`: a thin adapter over [`Gateway`]. The access
//! policy has already required the `verify` scope (for the audit listing, `verify` or
//! `verify.audit.read`) and the serving stack has charged the caller's rate limit one
//! credential; a batch is charged the rest here, and the caller is named in the audit.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_proto::verify::v1::{
    BatchVerifyRequest, BatchVerifyResponse, ListVerificationAuditRequest,
    ListVerificationAuditResponse, PresentedCredential, VerifyRequest, VerifyResponse,
    presented_credential::Form, verify_service_server::VerifyService,
};
use credmesh_runtime::RateCharge;
use tonic::{Request, Response, Status};

use crate::{
    audit,
    error::VerifyError,
    service::{Gateway, Input, MAX_BATCH},
};

/// The gRPC adapter.
#[derive(Debug, Clone)]
pub struct VerifyApi {
    gateway: Arc<Gateway>,
}

impl VerifyApi {
    /// An adapter over `gateway`.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

/// Converts a presented credential, naming `field` when it is empty.
pub fn input(credential: Option<PresentedCredential>, field: &str) -> Result<Input, VerifyError> {
    match credential.and_then(|c| c.form) {
        Some(Form::Envelope(bytes)) if !bytes.is_empty() => Ok(Input::Envelope(bytes)),
        Some(Form::Text(text)) if !super::blank(&text) => Ok(Input::Text(text)),
        _ => Err(VerifyError::invalid(
            "CREDENTIAL_MISSING",
            field,
            "a credential is required: set envelope (native bytes) or text (QR text, VC-JWT or SD-JWT)",
        )),
    }
}

#[tonic::async_trait]
impl VerifyService for VerifyApi {
    // No span of its own: the serving stack's `grpc.server` span already names the call
    // (`credmesh.verify.v1.VerifyService/Verify`), and a second span, with nothing to
    // add, cost a few percent of a cached Verify.
    async fn verify(
        &self,
        request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let client = Principal::from_request(&request)?.client_id.clone();
        let input = input(request.into_inner().credential, "credential")?;
        let result = self.gateway.verify(Some(&client), &input).await;
        Ok(Response::new(VerifyResponse {
            result: Some(result),
        }))
    }

    #[tracing::instrument(skip_all, fields(count = tracing::field::Empty))]
    async fn batch_verify(
        &self,
        request: Request<BatchVerifyRequest>,
    ) -> Result<Response<BatchVerifyResponse>, Status> {
        let client = Principal::from_request(&request)?.client_id.clone();
        let charge = RateCharge::of(request.extensions());
        let credentials = request.into_inner().credentials;
        tracing::Span::current().record("count", credentials.len());
        if credentials.is_empty() || credentials.len() > MAX_BATCH {
            return Err(VerifyError::invalid(
                "BATCH_SIZE",
                "credentials",
                format!(
                    "a batch carries 1 to {MAX_BATCH} credentials, not {}",
                    credentials.len()
                ),
            )
            .into());
        }
        let inputs = credentials
            .into_iter()
            .enumerate()
            .map(|(i, c)| input(Some(c), &format!("credentials[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        RateCharge::items(charge.as_ref(), inputs.len()).map_err(VerifyError::from)?;
        let results = self.gateway.verify_many(Some(&client), &inputs).await;
        Ok(Response::new(BatchVerifyResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_verification_audit(
        &self,
        request: Request<ListVerificationAuditRequest>,
    ) -> Result<Response<ListVerificationAuditResponse>, Status> {
        let query = audit::query(Principal::from_request(&request)?, request.get_ref())?;
        let rows = self
            .gateway
            .list_audit(&query)
            .await
            .map_err(VerifyError::Internal)?;
        Ok(Response::new(audit::page(&query, rows)))
    }
}

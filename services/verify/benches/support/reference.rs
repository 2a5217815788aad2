//! The bare tonic servers the verify gateway is measured against, shared by this crate's
//! bench and the e2e load generator (`tests/benches/load.rs` includes this file): an
//! empty RPC, and one strict Ed25519 verify of the envelope per request.

use credmesh_credential::VerifyingKey;
use credmesh_proto::{
    credential::v1::{Envelope, VerificationOutcome},
    prost::Message as _,
    verify::v1::{
        BatchVerifyRequest, BatchVerifyResponse, ListVerificationAuditRequest,
        ListVerificationAuditResponse, VerificationResult, VerifyRequest, VerifyResponse,
        presented_credential::Form,
        verify_service_server::{VerifyService, VerifyServiceServer},
    },
};
use tonic::{Request, Response, Status};

/// Decodes the envelope, verifies its signature, answers; or, when `empty`, answers at
/// once.
#[derive(Clone)]
pub struct RawVerify {
    pub key: VerifyingKey,
    pub empty: bool,
}

#[tonic::async_trait]
impl VerifyService for RawVerify {
    async fn verify(
        &self,
        request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        if self.empty {
            return Ok(Response::new(VerifyResponse::default()));
        }
        let Some(Form::Envelope(bytes)) = request.into_inner().credential.and_then(|c| c.form)
        else {
            return Err(Status::invalid_argument("no envelope"));
        };
        let env =
            Envelope::decode(bytes.as_slice()).map_err(|_| Status::invalid_argument("bad"))?;
        let ok = credmesh_credential::check_signature(
            credmesh_credential::Context::Credential,
            &env,
            &self.key,
        )
        .is_ok();
        let (outcome, reason) = if ok {
            (VerificationOutcome::Valid, "VALID")
        } else {
            (VerificationOutcome::BadSignature, "BAD_SIGNATURE")
        };
        Ok(Response::new(VerifyResponse {
            result: Some(VerificationResult {
                outcome: outcome as i32,
                reason: reason.into(),
                ..Default::default()
            }),
        }))
    }

    async fn batch_verify(
        &self,
        _: Request<BatchVerifyRequest>,
    ) -> Result<Response<BatchVerifyResponse>, Status> {
        Err(Status::unimplemented("reference"))
    }

    async fn list_verification_audit(
        &self,
        _: Request<ListVerificationAuditRequest>,
    ) -> Result<Response<ListVerificationAuditResponse>, Status> {
        Err(Status::unimplemented("reference"))
    }
}

/// Serves `svc` on `listener` until the runtime ends. No Nagle, as credmesh's own
/// listeners: otherwise the reference waits for delayed ACKs (p99 about 40 ms) and every
/// ratio flatters the gateway.
pub fn spawn(listener: tokio::net::TcpListener, svc: RawVerify) {
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(VerifyServiceServer::new(svc))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
}

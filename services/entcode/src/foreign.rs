//! Credentials of other issuers on the scan page: a QR code at `/v/<QR text>` that this
//! service did not sign (an inspection code, a certificate, a license) is verified by the
//! region's verify gateway (`credmesh.verify.v1.VerifyService/Verify`, scope `verify`),
//! which holds the trust and status lists of every issuer, and its answer is shown. The
//! scan page stays one URL for every credential a phone may scan.

use std::{sync::Arc, time::Duration};

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_proto::{
    credential::v1::{Claim, CredentialKind, VerificationOutcome},
    verify::v1::{
        PresentedCredential, VerifyRequest, presented_credential::Form,
        verify_service_client::VerifyServiceClient,
    },
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tonic::transport::Channel;
use tower::ServiceBuilder;

/// The gateway's answer about a credential of another issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignCheck {
    /// The gateway's outcome: valid when signature, issuer, window and status all
    /// check out.
    pub outcome: VerificationOutcome,
    /// The stable reason (`VALID`, `REVOKED`, `EXPIRED`, …).
    pub reason: String,
    /// One sentence.
    pub detail: String,
    /// The credential's kind.
    pub kind: CredentialKind,
    /// Its issuer.
    pub issuer: String,
    /// Its subject (an enterprise code, an inspection id).
    pub subject: String,
    /// Its claims, for a valid answer.
    pub claims: Vec<Claim>,
    /// For REVOKED: replaced by a newer version rather than revoked as such.
    pub superseded: bool,
    /// The claims under an open data dispute (a disputed credential stays valid).
    pub disputed_fields: Vec<String>,
    /// How old the status data was, in seconds, when the gateway's freshness target was
    /// missed (its source could not be reached lately); `None` when fresh or not used.
    pub stale_seconds: Option<i64>,
}

impl ForeignCheck {
    /// Whether the gateway answered valid.
    pub fn is_valid(&self) -> bool {
        self.outcome == VerificationOutcome::Valid
    }
}

/// The verifier could not be asked or gave no answer (down, slow, over its rate limit,
/// no token): the page says "cannot check now", never a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoAnswer(pub String);

/// Whatever verifies credentials this service did not sign.
pub trait ForeignVerifier: Send + Sync + std::fmt::Debug + 'static {
    /// Verifies scanned text.
    fn check(&self, text: &str) -> BoxFuture<'_, Result<ForeignCheck, NoAnswer>>;
}

/// The verify gateway over gRPC.
#[derive(Debug, Clone)]
pub struct GatewayVerifier {
    client: VerifyServiceClient<BearerService<ClientTrace<Channel>>>,
    tokens: Arc<TokenSource>,
}

impl GatewayVerifier {
    /// The gateway over `verify`, with `verify`-scoped tokens from `tokens`.
    pub fn new(verify: Channel, tokens: Arc<TokenSource>) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(verify);
        GatewayVerifier {
            client: VerifyServiceClient::new(service),
            tokens,
        }
    }
}

impl ForeignVerifier for GatewayVerifier {
    fn check(&self, text: &str) -> BoxFuture<'_, Result<ForeignCheck, NoAnswer>> {
        let text = text.to_string();
        let mut client = self.client.clone();
        Box::pin(async move {
            let mut request = tonic::Request::new(VerifyRequest {
                credential: Some(PresentedCredential {
                    form: Some(Form::Text(text)),
                }),
            });
            request.set_timeout(Duration::from_secs(5));
            let answer = match client.verify(request).await {
                Ok(a) => a.into_inner(),
                Err(s) => {
                    if s.code() == tonic::Code::Unauthenticated {
                        self.tokens.invalidate();
                    }
                    tracing::warn!(code = ?s.code(), message = s.message(), "the verify gateway did not answer a scan");
                    return Err(NoAnswer(format!("{:?}: {}", s.code(), s.message())));
                }
            };
            let r = answer
                .result
                .ok_or_else(|| NoAnswer("the gateway's answer carries no result".into()))?;
            let stale_seconds = r
                .status
                .as_ref()
                .filter(|age| age.stale)
                .map(|age| age.age_seconds);
            let outcome = VerificationOutcome::try_from(r.outcome)
                .unwrap_or(VerificationOutcome::Unspecified);
            let valid = outcome == VerificationOutcome::Valid;
            Ok(ForeignCheck {
                outcome,
                reason: r.reason,
                detail: r.detail,
                kind: CredentialKind::try_from(r.kind).unwrap_or(CredentialKind::Unspecified),
                issuer: r.issuer,
                subject: r.subject,
                claims: if valid { r.disclosed } else { Vec::new() },
                superseded: r.superseded,
                disputed_fields: if r.disputed {
                    r.disputed_fields
                } else {
                    Vec::new()
                },
                stale_seconds,
            })
        })
    }
}

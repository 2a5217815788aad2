//! How the service learns an enterprise's license: `GetLicense` on the license service
//! over gRPC, as a service client holding `license.read`. The services stay independent
//! (no shared tables); the license service is the authority on its own register, so its
//! authenticated answer is the live status of the license.

use std::{sync::Arc, time::Duration};

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_proto::{
    credential::v1::{Claim, Credential},
    license::v1::{
        EnterpriseState, GetLicenseRequest, license_service_client::LicenseServiceClient,
    },
    prost::Message as _,
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tonic::{Code, transport::Channel};
use tower::ServiceBuilder;

use crate::error::EntcodeError;

/// What the service needs to know of an enterprise's license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseView {
    /// The enterprise's code.
    pub uscc: String,
    /// Its registered name.
    pub name: String,
    /// `None` while active; `deregistered` or `revoked` otherwise.
    pub withdrawn: Option<&'static str>,
    /// When it entered the register (its first license), Unix seconds.
    pub registered_at: i64,
    /// The claims of the current license credential.
    pub claims: Vec<Claim>,
    /// The GB/T 36904 id of the current version.
    pub license_id: String,
    /// The enterprise's standing entry in the license service's standing list, set when
    /// it closes (see `credmesh.license.v1.Enterprise.standing`); `None` from a license
    /// service that does not publish one.
    pub standing: Option<credmesh_proto::credential::v1::StatusReference>,
}

/// Whatever answers license questions: the license service over gRPC in production.
pub trait LicenseSource: Send + Sync + std::fmt::Debug + 'static {
    /// The current license of `uscc`.
    fn current(&self, uscc: &str) -> BoxFuture<'_, Result<LicenseView, EntcodeError>>;
}

/// The license service over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcLicense {
    client: LicenseServiceClient<BearerService<ClientTrace<Channel>>>,
    tokens: Arc<TokenSource>,
}

/// How long one license call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl GrpcLicense {
    /// A client of the license service over `license`, with tokens from `tokens`.
    pub fn new(license: Channel, tokens: Arc<TokenSource>) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(license);
        GrpcLicense {
            client: LicenseServiceClient::new(service),
            tokens,
        }
    }
}

impl LicenseSource for GrpcLicense {
    fn current(&self, uscc: &str) -> BoxFuture<'_, Result<LicenseView, EntcodeError>> {
        let uscc = uscc.to_string();
        let mut client = self.client.clone();
        Box::pin(async move {
            let mut request = tonic::Request::new(GetLicenseRequest { uscc: uscc.clone() });
            request.set_timeout(CALL_TIMEOUT);
            let answer = match client.get_license(request).await {
                Ok(a) => a.into_inner(),
                Err(s) if s.code() == Code::NotFound => {
                    return Err(EntcodeError::EnterpriseNotFound(uscc));
                }
                Err(s) => {
                    if s.code() == Code::Unauthenticated {
                        self.tokens.invalidate();
                    }
                    return Err(EntcodeError::LicenseUnavailable(format!(
                        "{:?}: {}",
                        s.code(),
                        s.message()
                    )));
                }
            };
            let mut enterprise = answer.enterprise.unwrap_or_default();
            let standing = enterprise.standing.take();
            let version = answer.license.unwrap_or_default();
            let withdrawn = match EnterpriseState::try_from(enterprise.state) {
                Ok(EnterpriseState::Active) => None,
                Ok(EnterpriseState::Deregistered) => Some("deregistered"),
                _ => Some("revoked"),
            };
            let claims = version
                .credential
                .and_then(|c| c.envelope)
                .and_then(|e| Credential::decode(e.payload.as_slice()).ok())
                .map(|c| c.claims)
                .unwrap_or_default();
            Ok(LicenseView {
                uscc: enterprise.uscc,
                name: enterprise.name,
                withdrawn,
                registered_at: enterprise.created_at,
                claims,
                license_id: version.license_id,
                standing,
            })
        })
    }
}

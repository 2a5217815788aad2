//! Whether an enterprise has a license in force, asked like a verifier would: the
//! license credential is fetched from the license service (`GetLicense`, scope
//! `license.read`) and verified with the shared verifier against identity's trust list
//! (its anchor signature checked) and the license service's signed status lists. Only
//! `VALID` passes; the register's state is checked too, so a revocation answers at once
//! even before a status list is re-signed.
//!
//! The one way a service that builds on licenses (inspection, certificate) checks one:
//! services talk to the license service only through gRPC, never its tables.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_credential::{
    Policy, Presented, StatusCache, TrustSnapshot, VerifyingKey,
    envelope::{Context, open},
    verify,
};
use credmesh_proto::{
    credential::v1::{StatusPurpose, TrustList},
    identity::v1::{GetTrustListRequest, identity_service_client::IdentityServiceClient},
    license::v1::{
        EnterpriseState, GetLicenseRequest, GetStatusListRequest,
        license_service_client::LicenseServiceClient,
    },
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tonic::{Code, transport::Channel};
use tower::ServiceBuilder;

use crate::Clock;

/// Why there is no license in force, or no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LicenseCheckError {
    /// The enterprise has no license in force.
    NotActive {
        /// The enterprise.
        uscc: String,
        /// Why: not registered, revoked, deregistered, the credential does not verify.
        why: String,
    },
    /// The license service or identity could not be asked.
    Unavailable(String),
}

impl std::fmt::Display for LicenseCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LicenseCheckError::NotActive { uscc, why } => {
                write!(f, "the enterprise {uscc} has no license in force: {why}")
            }
            LicenseCheckError::Unavailable(why) => {
                write!(f, "the license service is unavailable: {why}")
            }
        }
    }
}

impl std::error::Error for LicenseCheckError {}

/// What planning needs of an enterprise's license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveLicense {
    /// The enterprise's registered name.
    pub name: String,
    /// The GB/T 36904 id of the verified version.
    pub license_id: String,
}

/// Whatever answers "is this enterprise's license in force?".
pub trait LicenseCheck: Send + Sync + std::fmt::Debug + 'static {
    /// The verified license of `uscc`, or why there is none.
    fn active(&self, uscc: &str) -> BoxFuture<'_, Result<ActiveLicense, LicenseCheckError>>;
}

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched trust list is used before it is fetched again.
const TRUST_TTL: i64 = 60;

/// The license service and identity over gRPC.
#[derive(Debug)]
pub struct GrpcLicenseCheck {
    license: LicenseServiceClient<BearerService<ClientTrace<Channel>>>,
    identity: IdentityServiceClient<Channel>,
    tokens: Arc<TokenSource>,
    clock: Arc<dyn Clock>,
    trust: Mutex<Option<(i64, Arc<TrustSnapshot>)>>,
}

impl GrpcLicenseCheck {
    /// A checker over `license` and `identity`, with tokens from `tokens`.
    pub fn new(
        license: Channel,
        identity: Channel,
        tokens: Arc<TokenSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(license);
        GrpcLicenseCheck {
            license: LicenseServiceClient::new(service),
            identity: IdentityServiceClient::new(identity),
            tokens,
            clock,
            trust: Mutex::new(None),
        }
    }

    async fn trust(
        &self,
        now: i64,
        refresh: bool,
    ) -> Result<Arc<TrustSnapshot>, LicenseCheckError> {
        if !refresh
            && let Some((at, t)) = self
                .trust
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            && now - at < TRUST_TTL
        {
            return Ok(t.clone());
        }
        let unavailable = |e: String| LicenseCheckError::Unavailable(format!("trust list: {e}"));
        let mut request = tonic::Request::new(GetTrustListRequest {});
        request.set_timeout(CALL_TIMEOUT);
        let answer = self
            .identity
            .clone()
            .get_trust_list(request)
            .await
            .map_err(|s| unavailable(s.message().to_string()))?
            .into_inner();
        let anchor: [u8; 32] = answer
            .anchor_public_key
            .as_slice()
            .try_into()
            .map_err(|_| unavailable("no anchor key".into()))?;
        let anchor = VerifyingKey::from_bytes(&anchor).map_err(|e| unavailable(e.to_string()))?;
        let envelope = answer
            .trust_list
            .ok_or_else(|| unavailable("empty answer".into()))?;
        let list: TrustList =
            open(Context::TrustList, &envelope, &anchor).map_err(|e| unavailable(e.to_string()))?;
        let snapshot = Arc::new(
            TrustSnapshot::from_trust_list(&list, now).map_err(|e| unavailable(e.to_string()))?,
        );
        *self.trust.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, snapshot.clone()));
        Ok(snapshot)
    }
}

impl LicenseCheck for GrpcLicenseCheck {
    fn active(&self, uscc: &str) -> BoxFuture<'_, Result<ActiveLicense, LicenseCheckError>> {
        let uscc = uscc.to_string();
        Box::pin(async move {
            let not_active = |why: String| LicenseCheckError::NotActive {
                uscc: uscc.clone(),
                why,
            };
            let mut client = self.license.clone();
            let mut request = tonic::Request::new(GetLicenseRequest { uscc: uscc.clone() });
            request.set_timeout(CALL_TIMEOUT);
            let answer = match client.get_license(request).await {
                Ok(a) => a.into_inner(),
                Err(s) if s.code() == Code::NotFound => {
                    return Err(not_active("it is not in the enterprise register".into()));
                }
                Err(s) => {
                    if s.code() == Code::Unauthenticated {
                        self.tokens.invalidate();
                    }
                    return Err(LicenseCheckError::Unavailable(format!(
                        "{:?}: {}",
                        s.code(),
                        s.message()
                    )));
                }
            };
            let enterprise = answer.enterprise.unwrap_or_default();
            match EnterpriseState::try_from(enterprise.state) {
                Ok(EnterpriseState::Active) => {}
                Ok(EnterpriseState::Deregistered) => {
                    return Err(not_active("it is deregistered".into()));
                }
                _ => return Err(not_active("its license is revoked".into())),
            }
            let version = answer.license.unwrap_or_default();
            let envelope = version
                .credential
                .and_then(|c| c.envelope)
                .ok_or_else(|| not_active("the license service returned no credential".into()))?;
            let now = self.clock.now();
            let mut trust = self.trust(now, false).await?;
            if trust.get(&envelope.kid).is_none() {
                trust = self.trust(now, true).await?;
            }
            // The credential's own status list, every purpose, each signature checked.
            let mut status = StatusCache::new();
            if let Some(reference) = version.status_reference.as_ref() {
                for purpose in [
                    StatusPurpose::Revocation,
                    StatusPurpose::Suspension,
                    StatusPurpose::Superseded,
                ] {
                    let mut request = tonic::Request::new(GetStatusListRequest {
                        list_id: reference.list_id.clone(),
                        purpose: purpose as i32,
                    });
                    request.set_timeout(CALL_TIMEOUT);
                    if let Ok(a) = client.get_status_list(request).await
                        && let Some(list) = a.into_inner().status_list
                    {
                        let _ = status.insert_signed(&list, &trust, 1 << 24);
                    }
                }
            }
            let v = verify(
                Presented::Envelope(&envelope),
                &trust,
                &status,
                &Policy::default(),
                now,
            );
            if !v.is_valid() {
                return Err(not_active(format!(
                    "its license credential does not verify ({}): {}",
                    v.outcome, v.detail
                )));
            }
            Ok(ActiveLicense {
                name: enterprise.name,
                license_id: version.license_id,
            })
        })
    }
}

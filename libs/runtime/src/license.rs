//! Whether an enterprise has a license in force, asked like a verifier would: the
//! license credential is fetched from the license service (`GetLicense`, scope
//! `license.read`) and verified with the shared verifier against identity's trust list
//! (its anchor signature checked) and the license service's signed status lists. Only
//! `VALID` passes; the register's state is checked too, so a revocation answers at once
//! even before a status list is re-signed. Every refusal carries a stable reason
//! (`LICENSE_REVOKED`, `LICENSE_SUPERSEDED`, `LICENSE_BAD_SIGNATURE`…) and a sentence.
//!
//! The one way a service that builds on licenses (inspection, certificate) checks one:
//! services talk to the license service only through gRPC, never its tables, and
//! believe no unsigned answer. [`judge`] is the pure part, so refusals are tested with
//! real credentials tampered with; [`GrpcLicenseCheck`] fetches what it needs.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_credential::{
    Outcome, Policy, Presented, StatusCache, TrustSnapshot, VerifyingKey,
    envelope::{Context, open},
    verify,
};
use credmesh_proto::{
    credential::v1::{Credential, CredentialKind, Envelope, StatusPurpose, TrustList},
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
        /// Stable: `ENTERPRISE_NOT_REGISTERED`, `ENTERPRISE_DEREGISTERED`,
        /// `LICENSE_REVOKED`, `LICENSE_SUSPENDED`, `LICENSE_SUPERSEDED`,
        /// `LICENSE_BAD_SIGNATURE`, `LICENSE_UNKNOWN_ISSUER`, `LICENSE_MALFORMED`,
        /// `LICENSE_NOT_IN_VALIDITY`, `LICENSE_STATUS_UNKNOWN` or `LICENSE_SUBJECT_MISMATCH`.
        reason: &'static str,
        /// Why, in a sentence.
        why: String,
    },
    /// The license service or identity could not be asked.
    Unavailable {
        /// The enterprise asked about.
        uscc: String,
        /// What went wrong.
        why: String,
    },
}

impl std::fmt::Display for LicenseCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LicenseCheckError::NotActive { uscc, why, .. } => {
                write!(f, "the enterprise {uscc} has no license in force: {why}")
            }
            LicenseCheckError::Unavailable { why, .. } => {
                write!(f, "the license service is unavailable: {why}")
            }
        }
    }
}

impl std::error::Error for LicenseCheckError {}

/// A license that verified as valid, with what other services take from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveLicense {
    /// The enterprise's code.
    pub uscc: String,
    /// Its registered name (the verified credential's `name` claim).
    pub name: String,
    /// The GB/T 36904 id of the verified license version.
    pub license_id: String,
}

/// What the register says besides the credential: the enterprise's state and the
/// reason recorded for a deregistration or revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterState {
    /// `active`, `deregistered` or `revoked`.
    pub state: &'static str,
    /// The recorded reason, if any.
    pub reason: String,
}

/// Decides from a license credential, verified against `trust` and `status`, whether
/// `uscc` has a license in force at `now`.
pub fn judge(
    uscc: &str,
    envelope: &Envelope,
    register: &RegisterState,
    trust: &TrustSnapshot,
    status: &StatusCache,
    now: i64,
) -> Result<ActiveLicense, LicenseCheckError> {
    let refuse = |reason: &'static str, why: String| LicenseCheckError::NotActive {
        uscc: uscc.to_string(),
        reason,
        why,
    };
    let because = if register.reason.is_empty() {
        String::new()
    } else {
        format!(" (reason recorded: {})", register.reason)
    };
    let v = verify(
        Presented::Envelope(envelope),
        trust,
        status,
        &Policy::default(),
        now,
    );
    match v.outcome {
        Outcome::Valid => {}
        Outcome::Revoked { superseded: true } => {
            return Err(refuse(
                "LICENSE_SUPERSEDED",
                format!(
                    "the license credential presented was replaced by a newer version; {}",
                    v.detail
                ),
            ));
        }
        Outcome::Revoked { .. } if register.state == "deregistered" => {
            return Err(refuse(
                "ENTERPRISE_DEREGISTERED",
                format!("the enterprise is deregistered (注销) and its license revoked{because}"),
            ));
        }
        Outcome::Revoked { .. } => {
            return Err(refuse(
                "LICENSE_REVOKED",
                format!("the business license is revoked (吊销){because}"),
            ));
        }
        Outcome::Suspended => return Err(refuse("LICENSE_SUSPENDED", v.detail)),
        Outcome::BadSignature => return Err(refuse("LICENSE_BAD_SIGNATURE", v.detail)),
        Outcome::UnknownIssuer => return Err(refuse("LICENSE_UNKNOWN_ISSUER", v.detail)),
        Outcome::Malformed => return Err(refuse("LICENSE_MALFORMED", v.detail)),
        Outcome::Expired | Outcome::NotYetValid => {
            return Err(refuse("LICENSE_NOT_IN_VALIDITY", v.detail));
        }
        Outcome::StatusUnknown => return Err(refuse("LICENSE_STATUS_UNKNOWN", v.detail)),
    }
    let credential: Credential = v
        .credential
        .ok_or_else(|| refuse("LICENSE_MALFORMED", "no credential decoded".into()))?;
    if credential.kind != CredentialKind::BusinessLicense as i32 || credential.subject != uscc {
        return Err(refuse(
            "LICENSE_SUBJECT_MISMATCH",
            format!(
                "the credential presented is not the business license of {uscc} (subject {})",
                credential.subject
            ),
        ));
    }
    if let Some(refusal) = register_refusal(uscc, register) {
        // The credential verified but the register says otherwise: believe the
        // stronger statement, as status lists may lag the register by seconds.
        return Err(refusal);
    }
    let name = credential
        .claims
        .iter()
        .find(|c| c.name == "name")
        .map(|c| c.value.clone())
        .unwrap_or_default();
    Ok(ActiveLicense {
        uscc: uscc.to_string(),
        name,
        license_id: credential.id,
    })
}

/// The refusal the register alone justifies, if the enterprise is not active.
fn register_refusal(uscc: &str, register: &RegisterState) -> Option<LicenseCheckError> {
    let because = if register.reason.is_empty() {
        String::new()
    } else {
        format!(" (reason recorded: {})", register.reason)
    };
    let (reason, why) = match register.state {
        "active" => return None,
        "deregistered" => (
            "ENTERPRISE_DEREGISTERED",
            format!("the enterprise is deregistered (注销){because}"),
        ),
        _ => (
            "LICENSE_REVOKED",
            format!("the business license is revoked (吊销){because}"),
        ),
    };
    Some(LicenseCheckError::NotActive {
        uscc: uscc.to_string(),
        reason,
        why,
    })
}

/// Whatever answers "is this enterprise's license in force?".
pub trait LicenseCheck: Send + Sync + std::fmt::Debug + 'static {
    /// The verified license of `uscc`, or why there is none.
    fn active(&self, uscc: &str) -> BoxFuture<'_, Result<ActiveLicense, LicenseCheckError>>;
}

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest status list accepted (bits).
const MAX_LIST_BITS: usize = 1 << 24;
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
        uscc: &str,
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
        let unavailable = |e: String| LicenseCheckError::Unavailable {
            uscc: uscc.to_string(),
            why: format!("trust list: {e}"),
        };
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
            let not_active = |reason: &'static str, why: &str| LicenseCheckError::NotActive {
                uscc: uscc.clone(),
                reason,
                why: why.to_string(),
            };
            let unavailable = |s: &tonic::Status| {
                if s.code() == Code::Unauthenticated {
                    self.tokens.invalidate();
                }
                LicenseCheckError::Unavailable {
                    uscc: uscc.clone(),
                    why: format!("{:?}: {}", s.code(), s.message()),
                }
            };
            let mut client = self.license.clone();
            let mut request = tonic::Request::new(GetLicenseRequest { uscc: uscc.clone() });
            request.set_timeout(CALL_TIMEOUT);
            let answer = match client.get_license(request).await {
                Ok(a) => a.into_inner(),
                Err(s) if s.code() == Code::NotFound => {
                    return Err(not_active(
                        "ENTERPRISE_NOT_REGISTERED",
                        "no enterprise with this code is in the enterprise register",
                    ));
                }
                Err(s) => return Err(unavailable(&s)),
            };
            let enterprise = answer.enterprise.unwrap_or_default();
            let register = RegisterState {
                state: match EnterpriseState::try_from(enterprise.state) {
                    Ok(EnterpriseState::Active) => "active",
                    Ok(EnterpriseState::Deregistered) => "deregistered",
                    _ => "revoked",
                },
                reason: enterprise.state_reason,
            };
            // The register alone refuses a deregistered or revoked enterprise at once.
            if let Some(refusal) = register_refusal(&uscc, &register) {
                return Err(refusal);
            }
            let version = answer.license.unwrap_or_default();
            let envelope = version.credential.and_then(|c| c.envelope).ok_or_else(|| {
                not_active(
                    "LICENSE_MALFORMED",
                    "the license service answered without a signed credential",
                )
            })?;
            let now = self.clock.now();
            let mut trust = self.trust(&uscc, now, false).await?;
            if trust.get(&envelope.kid).is_none() {
                trust = self.trust(&uscc, now, true).await?;
            }
            // The credential's own status lists, every purpose, each signature checked;
            // a list that fails its own signature is not held (the verdict is then
            // "status unknown").
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
                    let list = client
                        .get_status_list(request)
                        .await
                        .map_err(|s| unavailable(&s))?
                        .into_inner();
                    if let Some(list) = list.status_list
                        && let Err(e) = status.insert_signed(&list, &trust, MAX_LIST_BITS)
                    {
                        tracing::warn!(uscc = %uscc, error = %e, "a license status list did not verify");
                    }
                }
            }
            judge(&uscc, &envelope, &register, &trust, &status, now)
        })
    }
}

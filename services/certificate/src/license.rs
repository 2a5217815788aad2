//! Whether an enterprise's business license allows a certificate, checked as a relying
//! party checks it: the license credential is fetched from the license service
//! (`GetLicense`, as a service client holding `license.read`), then verified with
//! `credmesh_credential::verify` against identity's trust list (anchor-checked) and the
//! license service's signed status lists. The certificate service reads no license
//! table and believes no unsigned answer: a forged, mis-signed, superseded or revoked
//! license credential refuses issuance with the verifier's reason.
//!
//! [`judge`] is the pure part, so the refusals are tested with real credentials
//! tampered with; [`GrpcLicenseCheck`] fetches what it needs.

use std::{sync::Arc, time::Duration};

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_credential::{Outcome, Policy, Presented, StatusCache, TrustSnapshot, verify};
use credmesh_proto::prost::Message as _;
use credmesh_proto::{
    credential::v1::{Credential, CredentialKind, Envelope, StatusPurpose},
    identity::v1::identity_service_client::IdentityServiceClient,
    license::v1::{
        EnterpriseState, GetLicenseRequest, GetStatusListRequest,
        license_service_client::LicenseServiceClient,
    },
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tonic::{Code, transport::Channel};
use tower::ServiceBuilder;

use crate::error::CertificateError;

/// How long one call to the license service may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest status list accepted (bits).
const MAX_LIST_BITS: usize = 1 << 24;

/// A license that verified as valid, with what a certificate takes from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveLicense {
    /// The enterprise's code.
    pub uscc: String,
    /// Its registered name (the credential's `name` claim).
    pub name: String,
    /// The GB/T 36904 id of the verified license version.
    pub license_id: String,
}

/// Whatever answers "is this enterprise's license active?".
pub trait LicenseCheck: Send + Sync + std::fmt::Debug + 'static {
    /// Verifies the current license of `uscc` at `now`.
    fn active(
        &self,
        uscc: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<ActiveLicense, CertificateError>>;
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
/// it allows a certificate for `uscc`.
pub fn judge(
    uscc: &str,
    envelope: &Envelope,
    register: &RegisterState,
    trust: &TrustSnapshot,
    status: &StatusCache,
    now: i64,
) -> Result<ActiveLicense, CertificateError> {
    let refuse = |reason: &'static str, detail: String| CertificateError::LicenseNotActive {
        uscc: uscc.to_string(),
        reason,
        detail,
    };
    let v = verify(
        Presented::Envelope(envelope),
        trust,
        status,
        &Policy::default(),
        now,
    );
    let because = if register.reason.is_empty() {
        String::new()
    } else {
        format!(" (reason recorded: {})", register.reason)
    };
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
        Outcome::Suspended => {
            return Err(refuse("LICENSE_SUSPENDED", v.detail));
        }
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
    if register.state != "active" {
        // The credential verified but the register says otherwise: believe the
        // stronger statement, as status lists may lag the register by seconds.
        return Err(refuse(
            if register.state == "deregistered" {
                "ENTERPRISE_DEREGISTERED"
            } else {
                "LICENSE_REVOKED"
            },
            format!("the enterprise is {}{because}", register.state),
        ));
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

type Authed = BearerService<ClientTrace<Channel>>;

/// The license service and identity over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcLicenseCheck {
    license: LicenseServiceClient<Authed>,
    identity: IdentityServiceClient<Channel>,
    tokens: Arc<TokenSource>,
}

impl GrpcLicenseCheck {
    /// Reads licenses over `license` with tokens from `tokens`, and the trust list from
    /// identity over `identity`.
    pub fn new(license: Channel, identity: Channel, tokens: Arc<TokenSource>) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(license);
        GrpcLicenseCheck {
            license: LicenseServiceClient::new(service),
            identity: IdentityServiceClient::new(identity),
            tokens,
        }
    }

    fn unavailable(&self, uscc: &str, s: &tonic::Status) -> CertificateError {
        if s.code() == Code::Unauthenticated {
            self.tokens.invalidate();
        }
        CertificateError::LicenseUnavailable {
            uscc: uscc.to_string(),
            detail: format!("{:?}: {}", s.code(), s.message()),
        }
    }
}

impl LicenseCheck for GrpcLicenseCheck {
    fn active(
        &self,
        uscc: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<ActiveLicense, CertificateError>> {
        let uscc = uscc.to_string();
        Box::pin(async move {
            let mut client = self.license.clone();
            let mut request = tonic::Request::new(GetLicenseRequest { uscc: uscc.clone() });
            request.set_timeout(CALL_TIMEOUT);
            let answer = match client.get_license(request).await {
                Ok(a) => a.into_inner(),
                Err(s) if s.code() == Code::NotFound => {
                    return Err(CertificateError::LicenseNotActive {
                        uscc: uscc.clone(),
                        reason: "ENTERPRISE_NOT_REGISTERED",
                        detail: "no enterprise with this code is in the register".into(),
                    });
                }
                Err(s) => return Err(self.unavailable(&uscc, &s)),
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
            let envelope = answer
                .license
                .and_then(|l| l.credential)
                .and_then(|c| c.envelope)
                .ok_or_else(|| CertificateError::LicenseNotActive {
                    uscc: uscc.clone(),
                    reason: "LICENSE_MALFORMED",
                    detail: "the license service answered without a signed credential".into(),
                })?;
            let trust = credmesh_runtime::trust::fetch_trust_snapshot(&self.identity, now)
                .await
                .map_err(|e| CertificateError::LicenseUnavailable {
                    uscc: uscc.clone(),
                    detail: format!("{e:#}"),
                })?;
            // The status lists the credential names, fetched before it is believed. The
            // list id is read from the not-yet-verified payload only to know what to
            // fetch; `judge` verifies signature, issuer and status from scratch, and a
            // list that fails its own signature is not held (the verdict is then
            // "status unknown").
            let mut status = StatusCache::new();
            if let Some(reference) = Credential::decode(envelope.payload.as_slice())
                .ok()
                .and_then(|c| c.status)
            {
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
                        .map_err(|s| self.unavailable(&uscc, &s))?
                        .into_inner();
                    if let Some(env) = list.status_list
                        && let Err(e) = status.insert_signed(&env, &trust, MAX_LIST_BITS)
                    {
                        tracing::warn!(uscc = %uscc, error = %e, "a license status list did not verify");
                    }
                }
            }
            judge(&uscc, &envelope, &register, &trust, &status, now)
        })
    }
}

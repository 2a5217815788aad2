//! The tonic adapter: decode, call the service, encode. No rules live here.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_proto::{
    credential::v1::Claim,
    entcode::v1::{self as pb, enterprise_code_service_server::EnterpriseCodeService},
};
use tonic::{Request, Response, Status};

use crate::{
    api::http::{qr_png, qr_svg, scan_path},
    service::{Entcode, Outcome, Signed},
};

/// The gRPC face of the enterprise-code service.
#[derive(Clone, Debug)]
pub struct EntcodeApi {
    inner: Arc<Entcode>,
}

impl EntcodeApi {
    /// Wraps the service.
    pub fn new(inner: Arc<Entcode>) -> Self {
        Self { inner }
    }
}

fn signed(s: &Signed) -> pb::SignedCode {
    pb::SignedCode {
        envelope: Some(s.envelope.clone()),
        qr_text: s.qr.clone(),
        qr_svg: qr_svg(&s.qr).unwrap_or_default(),
        qr_png: qr_png(&s.qr, 6).unwrap_or_default(),
        id: s.credential.id.clone(),
    }
}

fn disclosed(claims: &[Claim]) -> Vec<pb::Disclosed> {
    claims
        .iter()
        .map(|c| pb::Disclosed {
            name: c.name.clone(),
            value: c.value.clone(),
        })
        .collect()
}

fn outcome(o: Outcome) -> pb::PresentationOutcome {
    use pb::PresentationOutcome as P;
    match o {
        Outcome::Valid => P::Valid,
        Outcome::Expired => P::Expired,
        Outcome::NotYetValid => P::NotYetValid,
        Outcome::AlreadyUsed => P::AlreadyUsed,
        Outcome::LicenseNotActive => P::LicenseNotActive,
        Outcome::BadSignature => P::BadSignature,
        Outcome::UnknownIssuer => P::UnknownIssuer,
        Outcome::Malformed => P::Malformed,
    }
}

#[tonic::async_trait]
impl EnterpriseCodeService for EntcodeApi {
    async fn get_enterprise_code(
        &self,
        request: Request<pb::GetEnterpriseCodeRequest>,
    ) -> Result<Response<pb::GetEnterpriseCodeResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let (code, name) = self.inner.code(principal, &request.get_ref().uscc).await?;
        Ok(Response::new(pb::GetEnterpriseCodeResponse {
            scan_path: scan_path(&code.qr),
            code: Some(signed(&code)),
            name,
        }))
    }

    async fn list_scenarios(
        &self,
        _request: Request<pb::ListScenariosRequest>,
    ) -> Result<Response<pb::ListScenariosResponse>, Status> {
        Ok(Response::new(pb::ListScenariosResponse {
            scenarios: self
                .inner
                .scenarios()
                .iter()
                .map(|s| pb::Scenario {
                    name: s.name.to_string(),
                    description: s.description.to_string(),
                    fields: s.fields.iter().map(|f| f.to_string()).collect(),
                    version: s.version,
                })
                .collect(),
        }))
    }

    async fn create_presentation(
        &self,
        request: Request<pb::CreatePresentationRequest>,
    ) -> Result<Response<pb::CreatePresentationResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let p = self
            .inner
            .present(principal, &req.uscc, &req.scenario)
            .await?;
        Ok(Response::new(pb::CreatePresentationResponse {
            scenario: req.scenario.trim().to_string(),
            disclosed: disclosed(&p.credential.claims),
            expires_at: p.credential.not_after,
            scan_path: scan_path(&p.qr),
            sd_jwt: p.sd_jwt.clone(),
            presentation: Some(signed(&p)),
        }))
    }

    async fn verify_presentation(
        &self,
        request: Request<pb::VerifyPresentationRequest>,
    ) -> Result<Response<pb::VerifyPresentationResponse>, Status> {
        let checked = self
            .inner
            .verify_presentation(&request.get_ref().qr_text)
            .await?;
        let (uscc, scenario) = checked
            .credential
            .as_ref()
            .map(|c| {
                (
                    c.subject.clone(),
                    crate::domain::code::scenario_of(&c.id)
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .unwrap_or_default();
        Ok(Response::new(pb::VerifyPresentationResponse {
            outcome: outcome(checked.outcome) as i32,
            reason: checked.outcome.reason().to_string(),
            detail: checked.detail.clone(),
            uscc,
            scenario,
            disclosed: disclosed(checked.disclosed()),
            checked_at: checked.checked_at,
        }))
    }
}

//! The tonic adapter: decode, call the service, encode. No rules live here.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_credential::qr::scan_url_at;
use credmesh_proto::{
    credential::v1::Claim,
    entcode::v1::{self as pb, enterprise_code_service_server::EnterpriseCodeService},
    prost::Message as _,
};
use credmesh_store::{idempotency::Outcome as Idempotent, page, requests};
use credmesh_telemetry::propagation::trace_id;
use tonic::{Request, Response, Status};

use crate::{
    api::http::{qr_png, qr_svg, scan_path},
    domain::scenario::{Draft, Scenario},
    error::EntcodeError,
    service::{Caller, Entcode, Outcome, Permits, Signed},
    store::{Changed, VersionRecord},
};

/// The gRPC face of the enterprise-code service.
#[derive(Clone, Debug)]
pub struct EntcodeApi {
    inner: Arc<Entcode>,
    /// The deployment's public HTTP base URL (`CREDMESH_PUBLIC_URL`), if it has one.
    public_url: Option<String>,
}

impl EntcodeApi {
    /// Wraps the service. With `public_url`, the QR images encode the scan page's URL
    /// under it, so that a phone camera opens the page; without, the bare QR text.
    pub fn new(inner: Arc<Entcode>, public_url: Option<String>) -> Self {
        Self { inner, public_url }
    }

    /// The scan page's full URL for `qr`, when the deployment has a public URL.
    fn scan_url(&self, qr: &str) -> String {
        scan_url_at(self.public_url.as_deref().unwrap_or_default(), qr)
    }
}

/// The forms of `s`, whose scan URL is `scan_url` ([`EntcodeApi::scan_url`]): the images
/// encode it or, without a public URL, the QR text.
fn signed(s: &Signed, scan_url: &str) -> pb::SignedCode {
    let printed = if scan_url.is_empty() { &s.qr } else { scan_url };
    pb::SignedCode {
        envelope: Some(s.envelope.clone()),
        qr_text: s.qr.clone(),
        qr_svg: qr_svg(printed).unwrap_or_default(),
        qr_png: qr_png(printed, 6).unwrap_or_default(),
        id: s.credential.id.clone(),
    }
}

fn page_token(token: &str) -> Result<String, EntcodeError> {
    page::decode_token(token).map_err(|_| EntcodeError::PageToken)
}

/// The answer of a mutation: made now, or the stored answer of the first call.
fn answer<M: credmesh_proto::prost::Message + Default>(
    outcome: Idempotent<Changed>,
    respond: impl Fn(&Changed) -> M,
) -> Result<Response<M>, Status> {
    Ok(Response::new(match outcome {
        Idempotent::Done(c) => respond(&c),
        Idempotent::Replayed(bytes) => requests::decode_replay(&bytes)?,
    }))
}

/// A scenario as answered.
pub fn scenario_to_proto(s: &Scenario) -> pb::Scenario {
    pb::Scenario {
        name: s.name.clone(),
        description: s.description.clone(),
        fields: s.fields.clone(),
        version: s.version,
        retired: s.retired,
    }
}

fn change_to_proto(v: &VersionRecord) -> pb::ScenarioChange {
    pb::ScenarioChange {
        scenario: Some(scenario_to_proto(&v.scenario)),
        changed_by: v.changed_by.clone(),
        changed_by_kind: v.changed_by_kind.clone(),
        changed_at: v.changed_at,
        reason: v.reason.clone(),
        fields_added: v.diff.added.clone(),
        fields_removed: v.diff.removed.clone(),
        description_changed: v.diff.description,
        order_changed: v.diff.order,
        retired_changed: v.diff.retired,
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
        let (permits, permits_unavailable) =
            match self.inner.permits(&code.credential.subject).await {
                Permits::Loaded(list) => (list.iter().map(permit_to_proto).collect(), false),
                Permits::NotAsked | Permits::Unavailable(_) => (Vec::new(), true),
            };
        let scan_url = self.scan_url(&code.qr);
        Ok(Response::new(pb::GetEnterpriseCodeResponse {
            scan_path: scan_path(&code.qr),
            code: Some(signed(&code, &scan_url)),
            scan_url,
            name,
            permits,
            permits_unavailable,
        }))
    }

    async fn list_scenarios(
        &self,
        request: Request<pb::ListScenariosRequest>,
    ) -> Result<Response<pb::ListScenariosResponse>, Status> {
        let req = request.get_ref();
        let after = page_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let scenarios = self.inner.scenarios(&after, size).await?;
        let next_page_token = match scenarios.last() {
            Some(last) if scenarios.len() == size as usize => page::encode_token(&last.name),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListScenariosResponse {
            scenarios: scenarios.iter().map(scenario_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_scenario(
        &self,
        request: Request<pb::GetScenarioRequest>,
    ) -> Result<Response<pb::GetScenarioResponse>, Status> {
        let req = request.get_ref();
        let (scenario, current_version) = self.inner.scenario(&req.name, req.version).await?;
        Ok(Response::new(pb::GetScenarioResponse {
            scenario: Some(scenario_to_proto(&scenario)),
            current_version,
        }))
    }

    async fn put_scenario(
        &self,
        request: Request<pb::PutScenarioRequest>,
    ) -> Result<Response<pb::PutScenarioResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "entcode.PutScenario",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let draft = Draft::parse(&req.name, &req.description, &req.fields)?;
        let respond = |c: &Changed| pb::PutScenarioResponse {
            scenario: Some(scenario_to_proto(&c.scenario)),
            changed: c.changed,
        };
        let encode = |c: &Changed| respond(c).encode_to_vec();
        let caller = Caller {
            principal: &principal,
            trace_id: &trace,
        };
        let outcome = self
            .inner
            .put_scenario(
                caller,
                &draft,
                &req.reason,
                req.expected_version,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn retire_scenario(
        &self,
        request: Request<pb::RetireScenarioRequest>,
    ) -> Result<Response<pb::RetireScenarioResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "entcode.RetireScenario",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let respond = |c: &Changed| pb::RetireScenarioResponse {
            scenario: Some(scenario_to_proto(&c.scenario)),
        };
        let encode = |c: &Changed| respond(c).encode_to_vec();
        let caller = Caller {
            principal: &principal,
            trace_id: &trace,
        };
        let outcome = self
            .inner
            .retire_scenario(
                caller,
                &req.name,
                &req.reason,
                req.expected_version,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn list_scenario_history(
        &self,
        request: Request<pb::ListScenarioHistoryRequest>,
    ) -> Result<Response<pb::ListScenarioHistoryResponse>, Status> {
        let req = request.get_ref();
        let after = page_token(&req.page_token)?;
        let after: u32 = match after.as_str() {
            "" => 0,
            v => v.parse().map_err(|_| EntcodeError::PageToken)?,
        };
        let size = page::page_size(req.page_size);
        let versions = self.inner.scenario_history(&req.name, after, size).await?;
        let next_page_token = match versions.last() {
            Some(last) if versions.len() == size as usize => {
                page::encode_token(&last.scenario.version.to_string())
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListScenarioHistoryResponse {
            changes: versions.iter().map(change_to_proto).collect(),
            next_page_token,
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
        let scan_url = self.scan_url(&p.qr);
        Ok(Response::new(pb::CreatePresentationResponse {
            scenario: req.scenario.trim().to_string(),
            scenario_version: p.credential.version,
            disclosed: disclosed(&p.credential.claims),
            expires_at: p.credential.not_after,
            scan_path: scan_path(&p.qr),
            sd_jwt: p.sd_jwt.clone(),
            presentation: Some(signed(&p, &scan_url)),
            scan_url,
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
        let (uscc, scenario, scenario_version) = checked
            .credential
            .as_ref()
            .map(|c| {
                (
                    c.subject.clone(),
                    crate::domain::code::scenario_of(&c.id)
                        .unwrap_or_default()
                        .to_string(),
                    c.version,
                )
            })
            .unwrap_or_default();
        let scenario_version = if scenario.is_empty() {
            0
        } else {
            scenario_version
        };
        Ok(Response::new(pb::VerifyPresentationResponse {
            outcome: outcome(checked.outcome) as i32,
            reason: checked.outcome.reason().to_string(),
            detail: checked.detail.clone(),
            uscc,
            scenario,
            scenario_version,
            disclosed: disclosed(checked.disclosed()),
            checked_at: checked.checked_at,
        }))
    }
}

fn permit_to_proto(p: &crate::permits::Permit) -> pb::Permit {
    use crate::permits::PermitState as S;
    let state = match p.state {
        S::Valid => pb::PermitState::Valid,
        S::Suspended => pb::PermitState::Suspended,
        S::Revoked => pb::PermitState::Revoked,
        S::Expired => pb::PermitState::Expired,
    };
    pb::Permit {
        type_code: p.type_code.clone(),
        type_name: p.type_name.clone(),
        serial: p.serial.clone(),
        state: state as i32,
        department: p.department.clone(),
        department_name: p.department_name.clone(),
        valid_until: p.valid_until.clone(),
        disputed_fields: p.disputed_fields.clone(),
    }
}

//! The tonic adapter: decode, call the service, encode. No rules live here.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_credential::qr::to_qr;
use credmesh_proto::{
    credential::v1::{Envelope, StatusReference},
    license::v1::{self as pb, license_service_server::LicenseService},
    prost::Message as _,
    status::{self, FieldViolation},
};
use credmesh_store::{
    audit::AuditRecord,
    idempotency::Outcome,
    page,
    requests::{self, decode_replay, encoded, number_token, page_token},
};
use credmesh_telemetry::propagation::trace_id;
use tonic::{Code, Request, Response, Status};

use crate::{
    domain::{
        credential::list_id,
        license::{AmendInput, EstablishInput, MoneyInput, TermInput, iso},
    },
    service::{Caller, License},
    store::{EnterpriseRecord, Issued, State, VersionRecord},
};

/// The gRPC face of the license service.
#[derive(Clone, Debug)]
pub struct LicenseApi {
    inner: Arc<License>,
}

impl LicenseApi {
    /// Wraps the service.
    pub fn new(inner: Arc<License>) -> Self {
        Self { inner }
    }
}

fn state_to_proto(s: State) -> pb::EnterpriseState {
    match s {
        State::Active => pb::EnterpriseState::Active,
        State::Deregistered => pb::EnterpriseState::Deregistered,
        State::Revoked => pb::EnterpriseState::Revoked,
    }
}

/// The register entry as answered.
pub fn enterprise_to_proto(e: &EnterpriseRecord) -> pb::Enterprise {
    pb::Enterprise {
        uscc: e.uscc.clone(),
        name: e.name.clone(),
        state: state_to_proto(e.state) as i32,
        current_version: e.current_version,
        registration_authority: e.authority.clone(),
        license_id: e.license_id.clone(),
        state_reason: e.state_reason.clone(),
        created_at: e.created_at,
        updated_at: e.updated_at,
        standing: None,
    }
}

/// A version as answered; with its signed forms when `with_credential`.
pub fn version_to_proto(
    license: &License,
    v: &VersionRecord,
    with_credential: bool,
) -> Result<pb::LicenseVersion, Status> {
    let status = if v.revoked_at != 0 {
        pb::VersionStatus::Revoked
    } else if v.superseded_at != 0 || !v.is_current {
        pb::VersionStatus::Superseded
    } else {
        pb::VersionStatus::Current
    };
    let c = &v.content;
    let credential = if with_credential {
        let envelope = Envelope::decode(v.envelope.as_slice()).map_err(|_| {
            status::error(
                Code::Internal,
                "INTERNAL",
                "a stored credential could not be read",
            )
        })?;
        let qr_text = to_qr(&envelope);
        Some(pb::SignedCredential {
            scan_url: credmesh_credential::scan_url_at(&license.public_url, &qr_text),
            qr_text,
            envelope: Some(envelope),
            vc_jwt: v.vc_jwt.clone(),
        })
    } else {
        None
    };
    Ok(pb::LicenseVersion {
        uscc: v.uscc.to_string(),
        version: v.version,
        license_id: v.license_id.clone(),
        status: status as i32,
        content: Some(pb::LicenseContent {
            name: c.name.clone(),
            entity_type: c.entity_type.clone(),
            legal_representative: c.legal_representative.clone(),
            registered_capital: Some(pb::Money {
                amount: c.capital.amount.clone(),
                currency_code: c.capital.currency.clone(),
            }),
            establishment_date: iso(c.established),
            business_term: Some(pb::BusinessTerm {
                start_date: iso(c.term_start),
                end_date: c.term_end.map(iso).unwrap_or_default(),
                long_term: c.term_end.is_none(),
            }),
            domicile: c.domicile.clone(),
            business_scope: c.scope.clone(),
            registration_authority: c.authority.to_string(),
            registration_authority_name: license.authority_name(c.authority.as_str()),
            issue_date: iso(c.issue_date),
        }),
        legal_representative_id_recorded: c.representative_id.is_some(),
        issued_at: v.issued_at,
        superseded_at: v.superseded_at,
        revoked_at: v.revoked_at,
        status_reference: Some(StatusReference {
            list_id: list_id(license.region(), v.list_no),
            index: v.list_index,
        }),
        kid: v.kid.clone(),
        issued_by: v.issued_by.clone(),
        credential,
    })
}

fn history_to_proto(r: AuditRecord) -> pb::HistoryEntry {
    pb::HistoryEntry {
        id: r.id,
        at: r.at,
        actor: r.actor,
        actor_kind: r.actor_kind,
        action: r.action,
        detail_json: r.detail,
        trace_id: r.trace_id,
    }
}

fn money(m: &Option<pb::Money>) -> Option<MoneyInput<'_>> {
    m.as_ref().map(|m| MoneyInput {
        amount: &m.amount,
        currency: &m.currency_code,
    })
}

fn term(t: &Option<pb::BusinessTerm>) -> Option<TermInput<'_>> {
    t.as_ref().map(|t| TermInput {
        start: &t.start_date,
        end: &t.end_date,
        long_term: t.long_term,
    })
}

/// The establish answer, also what a replay returns.
pub fn establish_response(
    license: &License,
    i: &Issued,
) -> Result<pb::EstablishEnterpriseResponse, Status> {
    Ok(pb::EstablishEnterpriseResponse {
        enterprise: Some(enterprise_to_proto(&i.enterprise)),
        license: Some(version_to_proto(license, &i.version, true)?),
    })
}

#[tonic::async_trait]
impl LicenseService for LicenseApi {
    #[tracing::instrument(skip_all, fields(rpc = "EstablishEnterprise", uscc = %request.get_ref().uscc))]
    async fn establish_enterprise(
        &self,
        request: Request<pb::EstablishEnterpriseRequest>,
    ) -> Result<Response<pb::EstablishEnterpriseResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        // The request hash leaves the ID number out: a hash of it (with the other,
        // known fields) could be brute-forced; a replay carries the same number anyway.
        let mut hashed = req.clone();
        hashed.legal_representative_id_number = String::new();
        let key = requests::idempotency_key(
            "license.EstablishEnterprise",
            &principal.client_id,
            &req.idempotency_key,
            &hashed.encode_to_vec(),
        )?;
        let input = EstablishInput {
            uscc: &req.uscc,
            name: &req.name,
            entity_type: &req.entity_type,
            legal_representative: &req.legal_representative,
            legal_representative_id_number: &req.legal_representative_id_number,
            capital: money(&req.registered_capital),
            establishment_date: &req.establishment_date,
            term: term(&req.business_term),
            domicile: &req.domicile,
            business_scope: &req.business_scope,
            registration_authority: &req.registration_authority,
            issue_date: &req.issue_date,
        };
        let inner = &self.inner;
        let encode = |i: &Issued| encoded(establish_response(inner, i));
        let outcome = self
            .inner
            .establish(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                &input,
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(i) => establish_response(&self.inner, &i)?,
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "AmendLicense", uscc = %request.get_ref().uscc))]
    async fn amend_license(
        &self,
        request: Request<pb::AmendLicenseRequest>,
    ) -> Result<Response<pb::AmendLicenseResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let mut hashed = req.clone();
        hashed.legal_representative_id_number = None;
        let key = requests::idempotency_key(
            "license.AmendLicense",
            &principal.client_id,
            &req.idempotency_key,
            &hashed.encode_to_vec(),
        )?;
        let input = AmendInput {
            name: req.name.as_deref(),
            entity_type: req.entity_type.as_deref(),
            legal_representative: req.legal_representative.as_deref(),
            legal_representative_id_number: req.legal_representative_id_number.as_deref(),
            capital: money(&req.registered_capital),
            term: term(&req.business_term),
            domicile: req.domicile.as_deref(),
            business_scope: req.business_scope.as_deref(),
            issue_date: &req.issue_date,
        };
        let inner = &self.inner;
        let respond = |i: &Issued| -> Result<pb::AmendLicenseResponse, Status> {
            Ok(pb::AmendLicenseResponse {
                enterprise: Some(enterprise_to_proto(&i.enterprise)),
                license: Some(version_to_proto(inner, &i.version, true)?),
                superseded_version: i.superseded.unwrap_or_default(),
            })
        };
        let encode = |i: &Issued| encoded(respond(i));
        let outcome = self
            .inner
            .amend(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                &req.uscc,
                req.expected_version,
                &input,
                &req.reason,
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(i) => respond(&i)?,
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "DeregisterEnterprise", uscc = %request.get_ref().uscc))]
    async fn deregister_enterprise(
        &self,
        request: Request<pb::DeregisterEnterpriseRequest>,
    ) -> Result<Response<pb::DeregisterEnterpriseResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "license.DeregisterEnterprise",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let inner = &self.inner;
        let respond = |i: &Issued| -> Result<pb::DeregisterEnterpriseResponse, Status> {
            Ok(pb::DeregisterEnterpriseResponse {
                enterprise: Some(enterprise_to_proto(&i.enterprise)),
                license: Some(version_to_proto(inner, &i.version, true)?),
            })
        };
        let encode = |i: &Issued| encoded(respond(i));
        let outcome = self
            .inner
            .close(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                &req.uscc,
                State::Deregistered,
                req.expected_version,
                &req.reason,
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(i) => respond(&i)?,
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RevokeLicense", uscc = %request.get_ref().uscc))]
    async fn revoke_license(
        &self,
        request: Request<pb::RevokeLicenseRequest>,
    ) -> Result<Response<pb::RevokeLicenseResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "license.RevokeLicense",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let inner = &self.inner;
        let respond = |i: &Issued| -> Result<pb::RevokeLicenseResponse, Status> {
            Ok(pb::RevokeLicenseResponse {
                enterprise: Some(enterprise_to_proto(&i.enterprise)),
                license: Some(version_to_proto(inner, &i.version, true)?),
            })
        };
        let encode = |i: &Issued| encoded(respond(i));
        let outcome = self
            .inner
            .close(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                &req.uscc,
                State::Revoked,
                req.expected_version,
                &req.reason,
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(i) => respond(&i)?,
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    async fn get_license(
        &self,
        request: Request<pb::GetLicenseRequest>,
    ) -> Result<Response<pb::GetLicenseResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let (e, v) = self
            .inner
            .license(principal, &request.get_ref().uscc)
            .await?;
        let enterprise = pb::Enterprise {
            standing: Some(self.inner.standing(&v).await?),
            ..enterprise_to_proto(&e)
        };
        Ok(Response::new(pb::GetLicenseResponse {
            enterprise: Some(enterprise),
            license: Some(version_to_proto(&self.inner, &v, true)?),
        }))
    }

    async fn get_license_version(
        &self,
        request: Request<pb::GetLicenseVersionRequest>,
    ) -> Result<Response<pb::GetLicenseVersionResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let (_, v) = self
            .inner
            .version(principal, &req.uscc, req.version)
            .await?;
        Ok(Response::new(pb::GetLicenseVersionResponse {
            license: Some(version_to_proto(&self.inner, &v, true)?),
        }))
    }

    async fn list_license_versions(
        &self,
        request: Request<pb::ListLicenseVersionsRequest>,
    ) -> Result<Response<pb::ListLicenseVersionsResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let after: u32 = number_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let (_, versions) = self
            .inner
            .versions(principal, &req.uscc, after, size)
            .await?;
        let next_page_token = match versions.last() {
            Some(last) if versions.len() == size as usize => {
                page::encode_token(&last.version.to_string())
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListLicenseVersionsResponse {
            versions: versions
                .iter()
                .map(|v| version_to_proto(&self.inner, v, false))
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    async fn get_enterprise_history(
        &self,
        request: Request<pb::GetEnterpriseHistoryRequest>,
    ) -> Result<Response<pb::GetEnterpriseHistoryResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let after: i64 = number_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let entries = self
            .inner
            .history(principal, &req.uscc, after, size)
            .await?;
        let next_page_token = match entries.last() {
            Some(last) if entries.len() == size as usize => {
                page::encode_token(&last.id.to_string())
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::GetEnterpriseHistoryResponse {
            entries: entries.into_iter().map(history_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn list_enterprises(
        &self,
        request: Request<pb::ListEnterprisesRequest>,
    ) -> Result<Response<pb::ListEnterprisesResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let after = page_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let state = match pb::EnterpriseState::try_from(req.state) {
            Ok(pb::EnterpriseState::Unspecified) => None,
            Ok(pb::EnterpriseState::Active) => Some(State::Active),
            Ok(pb::EnterpriseState::Deregistered) => Some(State::Deregistered),
            Ok(pb::EnterpriseState::Revoked) => Some(State::Revoked),
            Err(_) => {
                return Err(status::invalid_argument(
                    "STATE_INVALID",
                    "the state filter is not an enterprise state",
                    [FieldViolation::new("state", "not an enterprise state")],
                ));
            }
        };
        let authority = Some(req.registration_authority.trim()).filter(|a| !a.is_empty());
        // A mistyped code is named as such, not answered "no enterprises".
        if let Some(Err(e)) = authority.map(credmesh_uscc::Uscc::parse) {
            let why = format!("the registration authority's code is invalid: {e}");
            return Err(status::invalid_argument(
                e.reason(),
                why.clone(),
                [FieldViolation::new("registration_authority", why)],
            ));
        }
        let enterprises = self
            .inner
            .enterprises(principal, &after, size, state, authority)
            .await?;
        let next_page_token = match enterprises.last() {
            Some(last) if enterprises.len() == size as usize => page::encode_token(&last.uscc),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListEnterprisesResponse {
            enterprises: enterprises.iter().map(enterprise_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_status_list(
        &self,
        request: Request<pb::GetStatusListRequest>,
    ) -> Result<Response<pb::GetStatusListResponse>, Status> {
        let req = request.get_ref();
        let list = self.inner.status_list(&req.list_id, req.purpose).await?;
        Ok(Response::new(pb::GetStatusListResponse {
            status_list: Some(list.envelope.clone()),
        }))
    }
}

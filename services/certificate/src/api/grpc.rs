//! The tonic adapter: decode, call the service, encode. No rules live here.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_credential::qr::to_qr;
use credmesh_proto::{
    certificate::v1::{self as pb, certificate_service_server::CertificateService},
    credential::v1::{Envelope, StatusReference},
    prost::Message as _,
    status::{self, FieldViolation},
};
use credmesh_store::{
    idempotency::Outcome,
    page,
    requests::{self, decode_replay, encoded, page_token},
};
use credmesh_telemetry::propagation::trace_id;
use credmesh_uscc::Uscc;
use tonic::{Code, Request, Response, Status};

use crate::{
    domain::{
        credential::list_id,
        dispute::{DisputeState, is_overdue},
        types::{CertType, FieldSpec, FieldType},
    },
    service::{Caller, Certificates},
    store::{CertRecord, DisputeRecord, FollowUp, Resolve, State, Transition},
};

/// The gRPC face of the certificate service.
#[derive(Clone, Debug)]
pub struct CertificateApi {
    inner: Arc<Certificates>,
}

impl CertificateApi {
    /// Wraps the service.
    pub fn new(inner: Arc<Certificates>) -> Self {
        Self { inner }
    }
}

impl CertificateApi {
    /// One lifecycle change of a certificate (follow-up, suspend, reinstate, revoke): the
    /// idempotency key of `operation`, the transition, and the answer `wrap` builds
    /// around the changed certificate (or the stored answer of the first call).
    async fn transition<Req, M>(
        &self,
        request: &Request<Req>,
        operation: &str,
        (serial, idempotency_key): (&str, &str),
        transition: Transition,
        wrap: fn(pb::Certificate) -> M,
    ) -> Result<Response<M>, Status>
    where
        Req: credmesh_proto::prost::Message + Sync,
        M: credmesh_proto::prost::Message + Default + Send,
    {
        let principal = Principal::from_request(request)?.clone();
        let trace = trace_id(request.metadata());
        let key = requests::idempotency_key_of(
            operation,
            &principal.client_id,
            idempotency_key,
            request.get_ref(),
        )?;
        let inner = &self.inner;
        let respond = |c: &CertRecord| -> Result<M, Status> {
            Ok(wrap(certificate_to_proto(inner, c, false)?))
        };
        let encode = |c: &CertRecord| encoded(respond(c));
        let outcome = self
            .inner
            .transition(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                serial,
                transition,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }
}

fn answer<T, M: credmesh_proto::prost::Message + Default>(
    outcome: Outcome<T>,
    respond: impl Fn(&T) -> Result<M, Status>,
) -> Result<Response<M>, Status> {
    Ok(Response::new(match outcome {
        Outcome::Done(t) => respond(&t)?,
        Outcome::Replayed(bytes) => decode_replay(&bytes)?,
    }))
}

fn field_type_to_proto(t: FieldType) -> pb::FieldType {
    match t {
        FieldType::Text => pb::FieldType::Text,
        FieldType::Date => pb::FieldType::Date,
        FieldType::Integer => pb::FieldType::Integer,
        FieldType::Uscc => pb::FieldType::Uscc,
        FieldType::Enum => pb::FieldType::Enum,
    }
}

/// A type as answered.
pub fn type_to_proto(t: &CertType) -> pb::CertificateType {
    pb::CertificateType {
        type_code: t.type_code.clone(),
        name: t.name.clone(),
        department: t.department.to_string(),
        department_name: t.department_name.clone(),
        fields: t
            .fields
            .iter()
            .map(|f| pb::FieldSpec {
                name: f.name.clone(),
                label: f.label.clone(),
                r#type: field_type_to_proto(f.kind) as i32,
                required: f.required,
                allowed_values: f.allowed.clone(),
            })
            .collect(),
        default_validity_days: t.validity_days,
        bundles: t.bundles.clone(),
        industry: t.industry.clone(),
    }
}

fn type_from_proto(t: Option<&pb::CertificateType>) -> Result<CertType, Status> {
    let bad = |field: &str, why: &str| {
        status::invalid_argument(
            "TYPE_INVALID",
            why.to_string(),
            [FieldViolation::new(field, why)],
        )
    };
    let t = t.ok_or_else(|| bad("type", "the type is required"))?;
    let department = Uscc::parse(&t.department).map_err(|e| {
        bad(
            "type.department",
            &format!("the department's code is invalid: {e}"),
        )
    })?;
    let fields = t
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let kind = match pb::FieldType::try_from(f.r#type) {
                Ok(pb::FieldType::Text) => FieldType::Text,
                Ok(pb::FieldType::Date) => FieldType::Date,
                Ok(pb::FieldType::Integer) => FieldType::Integer,
                Ok(pb::FieldType::Uscc) => FieldType::Uscc,
                Ok(pb::FieldType::Enum) => FieldType::Enum,
                _ => {
                    return Err(bad(
                        &format!("type.fields[{i}].type"),
                        "every field needs a type",
                    ));
                }
            };
            Ok(FieldSpec {
                name: f.name.trim().to_string(),
                label: f.label.trim().to_string(),
                kind,
                required: f.required,
                allowed: f.allowed_values.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CertType {
        type_code: t.type_code.trim().to_ascii_uppercase(),
        name: t.name.trim().to_string(),
        department,
        department_name: t.department_name.trim().to_string(),
        fields,
        validity_days: t.default_validity_days,
        bundles: t
            .bundles
            .iter()
            .map(|b| b.trim().to_ascii_uppercase())
            .collect(),
        industry: t.industry.trim().to_string(),
    })
}

fn fields_of(fields: &[pb::Field]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (f.name.trim().to_string(), f.value.clone()))
        .collect()
}

/// A certificate as answered at `now`; with its signed forms when `with_credential`.
pub fn certificate_to_proto(
    inner: &Certificates,
    c: &CertRecord,
    with_credential: bool,
) -> Result<pb::Certificate, Status> {
    let v = &c.version;
    let state = match c.state {
        State::Active if inner.now() > v.not_after => pb::CertificateState::Expired,
        State::Active => pb::CertificateState::Active,
        State::Suspended => pb::CertificateState::Suspended,
        State::Revoked => pb::CertificateState::Revoked,
    };
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
            scan_url: inner.scan_url(&qr_text),
            qr_text,
            envelope: Some(envelope),
            vc_jwt: v.vc_jwt.clone(),
        })
    } else {
        None
    };
    Ok(pb::Certificate {
        serial: c.serial.clone(),
        certificate_id: v.certificate_id.clone(),
        holder: c.holder.clone(),
        holder_name: c.holder_name.clone(),
        type_code: c.type_code.clone(),
        department: c.department.clone(),
        state: state as i32,
        version: v.version,
        fields: v
            .values
            .iter()
            .map(|(name, value)| pb::Field {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        valid_from: v.valid_from.clone(),
        valid_until: v.valid_until.clone(),
        commitment: c.commitment.as_ref().map(|m| pb::Commitment {
            statement: m.statement.clone(),
            statement_sha256: m.statement_sha256.clone(),
            committed_by: m.committed_by.clone(),
            committed_at: m.committed_at,
            credit_grade: m.credit_grade.clone(),
        }),
        follow_up: match c.follow_up {
            FollowUp::NotRequired => pb::FollowUpState::NotRequired,
            FollowUp::Pending => pb::FollowUpState::Pending,
            FollowUp::Compliant => pb::FollowUpState::Compliant,
            FollowUp::NonCompliant => pb::FollowUpState::NonCompliant,
        } as i32,
        disputed_fields: c.disputed_fields.clone(),
        state_reason: c.state_reason.clone(),
        status_reference: Some(StatusReference {
            list_id: list_id(inner.region(), v.list_no),
            index: v.list_index,
        }),
        credential,
        created_at: c.created_at,
        updated_at: c.updated_at,
    })
}

/// A dispute as answered at `now`.
pub fn dispute_to_proto(d: &DisputeRecord, now: i64) -> pb::Dispute {
    pb::Dispute {
        dispute_id: d.id.clone(),
        serial: d.serial.clone(),
        version: d.version,
        holder: d.holder.clone(),
        department: d.department.clone(),
        fields: d
            .fields
            .iter()
            .map(|f| pb::DisputedField {
                name: f.name.clone(),
                recorded_value: f.recorded.clone(),
                claimed_value: f.claimed.clone(),
            })
            .collect(),
        evidence_sha256: d.evidence.clone(),
        explanation: d.explanation.clone(),
        state: match d.state {
            DisputeState::Filed => pb::DisputeState::Filed,
            DisputeState::Accepted => pb::DisputeState::Accepted,
            DisputeState::Corrected => pb::DisputeState::Corrected,
            DisputeState::Rejected => pb::DisputeState::Rejected,
        } as i32,
        filed_at: d.filed_at,
        accept_by: d.accept_by,
        accepted_at: d.accepted_at,
        resolve_by: d.resolve_by,
        resolved_at: d.resolved_at,
        resolution: d.resolution.clone(),
        corrected_version: d.corrected_version,
        overdue: is_overdue(d.state, d.accept_by, d.resolve_by, now),
    }
}

macro_rules! caller {
    ($request:ident, $principal:ident, $trace:ident) => {
        let $principal = Principal::from_request(&$request)?.clone();
        let $trace = trace_id($request.metadata());
    };
}

macro_rules! who {
    ($principal:ident, $trace:ident) => {
        Caller {
            principal: &$principal,
            trace_id: &$trace,
        }
    };
}

#[tonic::async_trait]
impl CertificateService for CertificateApi {
    async fn register_certificate_type(
        &self,
        request: Request<pb::RegisterCertificateTypeRequest>,
    ) -> Result<Response<pb::RegisterCertificateTypeResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.RegisterCertificateType",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let t = type_from_proto(req.r#type.as_ref())?;
        let respond = |t: &CertType| -> Result<pb::RegisterCertificateTypeResponse, Status> {
            Ok(pb::RegisterCertificateTypeResponse {
                r#type: Some(type_to_proto(t)),
            })
        };
        let encode = |t: &CertType| encoded(respond(t));
        let outcome = self
            .inner
            .register_type(who!(principal, trace), &t, key.as_ref(), &encode)
            .await?;
        answer(outcome, respond)
    }

    async fn list_certificate_types(
        &self,
        request: Request<pb::ListCertificateTypesRequest>,
    ) -> Result<Response<pb::ListCertificateTypesResponse>, Status> {
        let req = request.get_ref();
        let after = page_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let types = self.inner.types(&after, size).await?;
        let next_page_token = match types.last() {
            Some(last) if types.len() == size as usize => page::encode_token(&last.type_code),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCertificateTypesResponse {
            types: types.iter().map(type_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "IssueCertificate", holder = %request.get_ref().holder))]
    async fn issue_certificate(
        &self,
        request: Request<pb::IssueCertificateRequest>,
    ) -> Result<Response<pb::IssueCertificateResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.IssueCertificate",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let inner = &self.inner;
        let respond = |c: &CertRecord| -> Result<pb::IssueCertificateResponse, Status> {
            Ok(pb::IssueCertificateResponse {
                certificate: Some(certificate_to_proto(inner, c, true)?),
            })
        };
        let encode = |c: &CertRecord| encoded(respond(c));
        let outcome = self
            .inner
            .issue(
                who!(principal, trace),
                &req.holder,
                &req.type_code,
                &fields_of(&req.fields),
                &req.valid_from,
                req.validity_days,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    #[tracing::instrument(skip_all, fields(rpc = "IssueOnCommitment", holder = %request.get_ref().holder))]
    async fn issue_on_commitment(
        &self,
        request: Request<pb::IssueOnCommitmentRequest>,
    ) -> Result<Response<pb::IssueOnCommitmentResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.IssueOnCommitment",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let inner = &self.inner;
        let respond = |c: &CertRecord| -> Result<pb::IssueOnCommitmentResponse, Status> {
            Ok(pb::IssueOnCommitmentResponse {
                certificate: Some(certificate_to_proto(inner, c, true)?),
            })
        };
        let encode = |c: &CertRecord| encoded(respond(c));
        let outcome = self
            .inner
            .issue_on_commitment(
                who!(principal, trace),
                &req.holder,
                &req.type_code,
                &fields_of(&req.fields),
                &req.statement,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn record_follow_up(
        &self,
        request: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::RecordFollowUpResponse>, Status> {
        let req = request.get_ref();
        let t = Transition::FollowUp {
            compliant: req.compliant,
            finding: req.finding.clone(),
        };
        self.transition(
            &request,
            "certificate.RecordFollowUp",
            (&req.serial, &req.idempotency_key),
            t,
            |c| pb::RecordFollowUpResponse {
                certificate: Some(c),
            },
        )
        .await
    }

    async fn suspend_certificate(
        &self,
        request: Request<pb::SuspendCertificateRequest>,
    ) -> Result<Response<pb::SuspendCertificateResponse>, Status> {
        let req = request.get_ref();
        let t = Transition::Suspend(req.reason.clone());
        self.transition(
            &request,
            "certificate.SuspendCertificate",
            (&req.serial, &req.idempotency_key),
            t,
            |c| pb::SuspendCertificateResponse {
                certificate: Some(c),
            },
        )
        .await
    }

    async fn reinstate_certificate(
        &self,
        request: Request<pb::ReinstateCertificateRequest>,
    ) -> Result<Response<pb::ReinstateCertificateResponse>, Status> {
        let req = request.get_ref();
        let t = Transition::Reinstate(req.reason.clone());
        self.transition(
            &request,
            "certificate.ReinstateCertificate",
            (&req.serial, &req.idempotency_key),
            t,
            |c| pb::ReinstateCertificateResponse {
                certificate: Some(c),
            },
        )
        .await
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        let req = request.get_ref();
        let t = Transition::Revoke(req.reason.clone());
        self.transition(
            &request,
            "certificate.RevokeCertificate",
            (&req.serial, &req.idempotency_key),
            t,
            |c| pb::RevokeCertificateResponse {
                certificate: Some(c),
            },
        )
        .await
    }

    async fn renew_certificate(
        &self,
        request: Request<pb::RenewCertificateRequest>,
    ) -> Result<Response<pb::RenewCertificateResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.RenewCertificate",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let inner = &self.inner;
        let respond = |c: &CertRecord| -> Result<pb::RenewCertificateResponse, Status> {
            Ok(pb::RenewCertificateResponse {
                certificate: Some(certificate_to_proto(inner, c, true)?),
                superseded_version: c.version.version.saturating_sub(1),
            })
        };
        let encode = |c: &CertRecord| encoded(respond(c));
        let outcome = self
            .inner
            .renew(
                who!(principal, trace),
                &req.serial,
                req.validity_days,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::GetCertificateResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let c = self
            .inner
            .certificate(principal, &request.get_ref().serial)
            .await?;
        Ok(Response::new(pb::GetCertificateResponse {
            certificate: Some(certificate_to_proto(&self.inner, &c, true)?),
        }))
    }

    async fn list_certificates(
        &self,
        request: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let after = page_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let list = self
            .inner
            .certificates(principal, &req.holder, &after, size)
            .await?;
        let next_page_token = match list.last() {
            Some(last) if list.len() == size as usize => page::encode_token(&last.serial),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCertificatesResponse {
            certificates: list
                .iter()
                .map(|c| certificate_to_proto(&self.inner, c, false))
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    async fn file_dispute(
        &self,
        request: Request<pb::FileDisputeRequest>,
    ) -> Result<Response<pb::FileDisputeResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.FileDispute",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let now = self.inner.now();
        let respond = |d: &DisputeRecord| -> Result<pb::FileDisputeResponse, Status> {
            Ok(pb::FileDisputeResponse {
                dispute: Some(dispute_to_proto(d, now)),
            })
        };
        let encode = |d: &DisputeRecord| encoded(respond(d));
        let fields: Vec<(String, String)> = req
            .fields
            .iter()
            .map(|f| (f.name.trim().to_string(), f.claimed_value.clone()))
            .collect();
        let outcome = self
            .inner
            .file_dispute(
                who!(principal, trace),
                &req.serial,
                &fields,
                &req.evidence_sha256,
                &req.explanation,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn accept_dispute(
        &self,
        request: Request<pb::AcceptDisputeRequest>,
    ) -> Result<Response<pb::AcceptDisputeResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.AcceptDispute",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let now = self.inner.now();
        let respond = |d: &DisputeRecord| -> Result<pb::AcceptDisputeResponse, Status> {
            Ok(pb::AcceptDisputeResponse {
                dispute: Some(dispute_to_proto(d, now)),
            })
        };
        let encode = |d: &DisputeRecord| encoded(respond(d));
        let outcome = self
            .inner
            .accept_dispute(
                who!(principal, trace),
                &req.dispute_id,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn resolve_dispute(
        &self,
        request: Request<pb::ResolveDisputeRequest>,
    ) -> Result<Response<pb::ResolveDisputeResponse>, Status> {
        caller!(request, principal, trace);
        let req = request.get_ref();
        let key = requests::idempotency_key_of(
            "certificate.ResolveDispute",
            &principal.client_id,
            &req.idempotency_key,
            req,
        )?;
        let resolve = match pb::Resolution::try_from(req.resolution) {
            Ok(pb::Resolution::Corrected) => Resolve::Corrected(req.reason.clone()),
            Ok(pb::Resolution::Rejected) => Resolve::Rejected(req.reason.clone()),
            _ => {
                return Err(status::invalid_argument(
                    "RESOLUTION_REQUIRED",
                    "the resolution must be corrected or rejected",
                    [FieldViolation::new("resolution", "corrected or rejected")],
                ));
            }
        };
        let inner = &self.inner;
        let now = inner.now();
        let respond =
            |(d, c): &(DisputeRecord, CertRecord)| -> Result<pb::ResolveDisputeResponse, Status> {
                Ok(pb::ResolveDisputeResponse {
                    dispute: Some(dispute_to_proto(d, now)),
                    certificate: Some(certificate_to_proto(inner, c, true)?),
                })
            };
        let encode = |r: &(DisputeRecord, CertRecord)| encoded(respond(r));
        let outcome = self
            .inner
            .resolve_dispute(
                who!(principal, trace),
                &req.dispute_id,
                resolve,
                key.as_ref(),
                &encode,
            )
            .await?;
        answer(outcome, respond)
    }

    async fn list_disputes(
        &self,
        request: Request<pb::ListDisputesRequest>,
    ) -> Result<Response<pb::ListDisputesResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let after = page_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let (list, overdue) = self
            .inner
            .disputes(principal, req.open_only, req.overdue_only, &after, size)
            .await?;
        let now = self.inner.now();
        let next_page_token = match list.last() {
            Some(last) if list.len() == size as usize => page::encode_token(&last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListDisputesResponse {
            disputes: list.iter().map(|d| dispute_to_proto(d, now)).collect(),
            next_page_token,
            overdue_count: u32::try_from(overdue).unwrap_or(u32::MAX),
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
            vc_jwt: list.vc_jwt.clone(),
        }))
    }
}

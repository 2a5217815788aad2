//! The tonic adapter: decode (validating once, on receipt), call the service, encode.
//! No rules live here.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_credential::qr::to_qr;
use credmesh_proto::{
    credential::v1::{Envelope, StatusReference},
    inspection::v1::{self as pb, inspection_service_server::InspectionService},
    prost::Message as _,
    status,
};
use credmesh_store::{
    idempotency::Outcome,
    page,
    requests::{self, decode_replay, number_token},
};
use credmesh_telemetry::propagation::trace_id;
use tonic::{Code, Request, Response, Status};

use crate::{
    domain::{
        code::list_id,
        input::{self, Check},
        rules::{Grade, Kind, Refusal, Rule, Trigger},
    },
    error::InspectionError,
    service::{Caller, Inspection, Stats},
    store::{
        InspectionRecord, NewEvaluation, NewJoin, NewPlan, NewResult, Planned, PolicyItem, Scope,
        State,
    },
};

/// The gRPC face of the inspection service.
#[derive(Clone, Debug)]
pub struct InspectionApi {
    inner: Arc<Inspection>,
}

impl InspectionApi {
    /// Wraps the service.
    pub fn new(inner: Arc<Inspection>) -> Self {
        Self { inner }
    }
}

fn kind_of(v: i32) -> Option<Kind> {
    match pb::InspectionType::try_from(v).ok()? {
        pb::InspectionType::Routine => Some(Kind::Routine),
        pb::InspectionType::Special => Some(Kind::Special),
        pb::InspectionType::Triggered => Some(Kind::Triggered),
        pb::InspectionType::FollowUp => Some(Kind::FollowUp),
        pb::InspectionType::Unspecified => None,
    }
}

fn kind_to_proto(k: Kind) -> pb::InspectionType {
    match k {
        Kind::Routine => pb::InspectionType::Routine,
        Kind::Special => pb::InspectionType::Special,
        Kind::Triggered => pb::InspectionType::Triggered,
        Kind::FollowUp => pb::InspectionType::FollowUp,
    }
}

/// `Some(None)` for unspecified, `None` for an unknown number.
fn trigger_of(v: i32) -> Option<Option<Trigger>> {
    match pb::Trigger::try_from(v).ok()? {
        pb::Trigger::Unspecified => Some(None),
        pb::Trigger::Complaint => Some(Some(Trigger::Complaint)),
        pb::Trigger::Referral => Some(Some(Trigger::Referral)),
        pb::Trigger::MonitoringAlert => Some(Some(Trigger::MonitoringAlert)),
    }
}

fn trigger_to_proto(t: Option<Trigger>) -> pb::Trigger {
    match t {
        None => pb::Trigger::Unspecified,
        Some(Trigger::Complaint) => pb::Trigger::Complaint,
        Some(Trigger::Referral) => pb::Trigger::Referral,
        Some(Trigger::MonitoringAlert) => pb::Trigger::MonitoringAlert,
    }
}

fn grade_to_proto(g: Grade) -> pb::CreditGrade {
    match g {
        Grade::A => pb::CreditGrade::A,
        Grade::B => pb::CreditGrade::B,
        Grade::C => pb::CreditGrade::C,
        Grade::D => pb::CreditGrade::D,
    }
}

fn rule_to_proto(r: Rule) -> pb::Rule {
    match r {
        Rule::PlanBasis => pb::Rule::PlanBasis,
        Rule::TwoNoLists => pb::Rule::TwoNoLists,
        Rule::Frequency => pb::Rule::Frequency,
        Rule::InspectorBlock => pb::Rule::InspectorBlock,
        Rule::MultiHead => pb::Rule::MultiHead,
        Rule::NonSiteFirst => pb::Rule::NonSiteFirst,
    }
}

/// A refusal as answered.
pub fn refusal_to_proto(r: &Refusal) -> pb::Refusal {
    pb::Refusal {
        rule: rule_to_proto(r.rule) as i32,
        reason: r.reason.to_string(),
        message: r.sentence(),
        facts: r
            .facts
            .iter()
            .map(|(name, value)| pb::Fact {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// An inspection as answered; with its code when `with_code`.
pub fn inspection_to_proto(
    inspection: &Inspection,
    r: &InspectionRecord,
    with_code: bool,
) -> pb::Inspection {
    let code = if with_code {
        Envelope::decode(r.envelope.as_slice())
            .ok()
            .map(|envelope| {
                let qr_text = to_qr(&envelope);
                pb::InspectionCode {
                    scan_url: credmesh_credential::scan_url_at(&inspection.public_url, &qr_text),
                    qr_text,
                    envelope: Some(envelope),
                    vc_jwt: r.vc_jwt.clone(),
                    status_reference: Some(StatusReference {
                        list_id: list_id(inspection.region(), r.status.0),
                        index: r.status.1,
                    }),
                    version: r.code_version,
                }
            })
    } else {
        None
    };
    pb::Inspection {
        id: r.id.clone(),
        enterprise_uscc: r.uscc.clone(),
        enterprise_name: r.enterprise_name.clone(),
        participants: r
            .participants
            .iter()
            .map(|p| pb::Participant {
                department: p.department.clone(),
                items: p.items.clone(),
                r#type: kind_to_proto(p.basis.kind) as i32,
                plan_number: p.basis.plan_number.clone(),
                trigger: trigger_to_proto(p.basis.trigger) as i32,
                trigger_reason: p.basis.trigger_reason.clone(),
                joined_at: p.joined_at,
                repeat: p.repeat,
            })
            .collect(),
        inspectors: r
            .inspectors
            .iter()
            .map(|i| pb::Inspector {
                client_id: i.client_id.clone(),
                enforcement_certificate: i.certificate.clone(),
                department: i.department.clone(),
            })
            .collect(),
        window_start: r.window.0,
        window_end: r.window.1,
        state: match r.state {
            State::Issued => pb::InspectionState::Issued,
            State::Shown => pb::InspectionState::Shown,
            State::Completed => pb::InspectionState::Completed,
        } as i32,
        multi_head: r.multi_head,
        override_reason: r.override_reason.clone(),
        alerts: r
            .alerts
            .iter()
            .map(|a| pb::Alert {
                period: match a.period.as_str() {
                    "day" => pb::AlertPeriod::Day,
                    "week" => pb::AlertPeriod::Week,
                    _ => pb::AlertPeriod::Month,
                } as i32,
                count: a.count,
                limit: a.limit,
                message: format!(
                    "{} on-site inspections of the enterprise in a {}, more than {}",
                    a.count, a.period, a.limit
                ),
            })
            .collect(),
        shown_at: r.shown_at,
        result: (r.state == State::Completed).then(|| pb::InspectionResult {
            has_findings: r.has_findings,
            summary: r.summary.clone(),
            recorded_by: r.recorded_by.clone(),
            recorded_at: r.completed_at,
        }),
        evaluated: r.evaluated,
        code,
        created_at: r.created_at,
        created_by: r.created_by.clone(),
    }
}

fn planned_to_proto(inspection: &Inspection, p: &Planned) -> pb::PlanInspectionResponse {
    use pb::plan_inspection_response::Decision;
    let decision = match p {
        Planned::Issued(r) => Decision::Issued(inspection_to_proto(inspection, r, true)),
        Planned::Conflict(rs) => Decision::Conflict(pb::Conflict {
            message: format!(
                "another department has {} planned or active inspection(s) of this enterprise within {} days: join it, or plan again with an override reason",
                rs.len(),
                inspection.policy().conflict_days
            ),
            inspections: rs
                .iter()
                .map(|r| inspection_to_proto(inspection, r, false))
                .collect(),
        }),
        Planned::Refused(r) => Decision::Refused(refusal_to_proto(r)),
    };
    pb::PlanInspectionResponse {
        decision: Some(decision),
    }
}

fn refused_status(r: &Refusal) -> Status {
    status::error_with_metadata(
        Code::FailedPrecondition,
        r.reason,
        r.sentence(),
        [("rule", format!("{:?}", rule_to_proto(r.rule)))],
    )
}

fn scope_of<'a>(uscc: &'a str, department: &'a str) -> Result<Scope<'a>, InspectionError> {
    let mut check = Check::default();
    let scope = match (uscc.trim(), department.trim()) {
        (u, "") if !u.is_empty() => {
            input::uscc(&mut check, "enterprise_uscc", u);
            Scope::Enterprise(u)
        }
        ("", d) if !d.is_empty() => {
            input::uscc(&mut check, "department", d);
            Scope::Department(d)
        }
        _ => {
            check.fail(
                "SCOPE_REQUIRED",
                "enterprise_uscc",
                "exactly one of enterprise_uscc and department",
            );
            Scope::Enterprise("")
        }
    };
    check.finish()?;
    Ok(scope)
}

fn stats_to_proto(s: &Stats) -> pb::Statistics {
    let rate = |n: u32| {
        if s.inspections == 0 {
            0.0
        } else {
            f64::from(n) / f64::from(s.inspections)
        }
    };
    pb::Statistics {
        inspections: s.inspections,
        routine_inspections: s.routine,
        enterprises: s.enterprises,
        repeat_inspections: s.repeats,
        repeat_rate: rate(s.repeats),
        multi_head_inspections: s.multi_head,
        multi_head_rate: rate(s.multi_head),
        joint_inspections: s.joint,
        joint_share: rate(s.joint),
        completed: s.completed,
        evaluations: s.evaluations,
        scores_withheld: s.scores_withheld,
        mean_score: if s.evaluations == 0 || s.scores_withheld {
            0.0
        } else {
            s.score_sum as f64 / f64::from(s.evaluations)
        },
        score_counts: s.score_counts.to_vec(),
        tags: s
            .tags
            .iter()
            .map(|(t, c)| pb::TagCount {
                tag: t.clone(),
                count: *c,
            })
            .collect(),
        alerts: s.alerts,
    }
}

fn policy_item(i: usize, e: &pb::PolicyEntry, check: &mut Check) -> Option<PolicyItem> {
    let f = |name: &str| format!("entries[{i}].{name}");
    let uscc = |check: &mut Check| {
        input::uscc(check, &f("enterprise_uscc"), e.enterprise_uscc.trim()).map(|u| u.to_string())
    };
    let item = |check: &mut Check| {
        let t = e.item.trim();
        if t.is_empty() || t.chars().count() > 64 || t.contains(',') {
            check.fail(
                "ITEMS_INVALID",
                &f("item"),
                "an item code of 1-64 characters without commas",
            );
            None
        } else {
            Some(t.to_string())
        }
    };
    if e.note.chars().count() > 200 {
        check.fail("NOTE_TOO_LONG", &f("note"), "at most 200 characters");
    }
    match pb::PolicyKind::try_from(e.kind).unwrap_or(pb::PolicyKind::Unspecified) {
        pb::PolicyKind::CreditGrade => {
            let grade =
                match pb::CreditGrade::try_from(e.grade).unwrap_or(pb::CreditGrade::Unspecified) {
                    pb::CreditGrade::A => Some(Grade::A),
                    pb::CreditGrade::B => Some(Grade::B),
                    pb::CreditGrade::C => Some(Grade::C),
                    pb::CreditGrade::D => Some(Grade::D),
                    pb::CreditGrade::Unspecified => {
                        check.fail("GRADE_REQUIRED", &f("grade"), "grade A, B, C or D");
                        None
                    }
                };
            Some(PolicyItem::Grade {
                uscc: uscc(check)?,
                grade: grade?,
            })
        }
        pb::PolicyKind::MonitoringList => Some(PolicyItem::Monitoring {
            uscc: uscc(check)?,
            removed: e.removed,
        }),
        pb::PolicyKind::DoNotDisturb => {
            let u = if e.enterprise_uscc.trim().is_empty() {
                Some(String::new())
            } else {
                uscc(check)
            };
            Some(PolicyItem::DoNotDisturb {
                item: item(check)?,
                uscc: u?,
                removed: e.removed,
            })
        }
        pb::PolicyKind::NonSiteCheck => {
            if e.checked_at <= 0 {
                check.fail(
                    "CHECKED_AT_REQUIRED",
                    &f("checked_at"),
                    "when the non-site check was made",
                );
            }
            Some(PolicyItem::NonSite {
                uscc: uscc(check)?,
                item: item(check)?,
                checked_at: e.checked_at,
                clean: e.clean,
            })
        }
        pb::PolicyKind::Unspecified => {
            check.fail(
                "POLICY_KIND_REQUIRED",
                &f("kind"),
                "credit grade, monitoring list, do-not-disturb or non-site check",
            );
            None
        }
    }
}

fn policy_kind_name(k: i32) -> Option<&'static str> {
    match pb::PolicyKind::try_from(k).ok()? {
        pb::PolicyKind::CreditGrade => Some("credit_grade"),
        pb::PolicyKind::MonitoringList => Some("monitoring_list"),
        pb::PolicyKind::DoNotDisturb => Some("do_not_disturb"),
        pb::PolicyKind::NonSiteCheck => Some("non_site_check"),
        pb::PolicyKind::Unspecified => None,
    }
}

fn policy_kind_of(name: &str) -> pb::PolicyKind {
    match name {
        "credit_grade" => pb::PolicyKind::CreditGrade,
        "monitoring_list" => pb::PolicyKind::MonitoringList,
        "do_not_disturb" => pb::PolicyKind::DoNotDisturb,
        "non_site_check" => pb::PolicyKind::NonSiteCheck,
        _ => pb::PolicyKind::Unspecified,
    }
}

#[tonic::async_trait]
impl InspectionService for InspectionApi {
    #[tracing::instrument(skip_all, fields(rpc = "PlanInspection", uscc = %request.get_ref().enterprise_uscc))]
    async fn plan_inspection(
        &self,
        request: Request<pb::PlanInspectionRequest>,
    ) -> Result<Response<pb::PlanInspectionResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "inspection.PlanInspection",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let now = self.inner.now();
        let mut check = Check::default();
        let uscc = input::uscc(&mut check, "enterprise_uscc", req.enterprise_uscc.trim());
        let items = input::items(&mut check, &req.items);
        let inspectors = input::inspectors(
            &mut check,
            &req.inspectors
                .iter()
                .map(|i| (i.client_id.clone(), i.enforcement_certificate.clone()))
                .collect::<Vec<_>>(),
        );
        let basis = input::basis(
            &mut check,
            kind_of(req.r#type),
            &req.plan_number,
            trigger_of(req.trigger),
            &req.trigger_reason,
        );
        input::window(
            &mut check,
            self.inner.policy(),
            req.window_start,
            req.window_end,
            now,
        );
        if req.override_reason.chars().count() > 500 {
            check.fail(
                "OVERRIDE_REASON_TOO_LONG",
                "override_reason",
                "at most 500 characters",
            );
        }
        check.finish().map_err(InspectionError::from)?;
        let department = self.inner.acting_department(&principal, &req.department)?;
        let plan = NewPlan {
            id: format!(
                "INS-{}",
                uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase()
            ),
            uscc: uscc.map(|u| u.to_string()).unwrap_or_default(),
            enterprise_name: String::new(),
            department,
            basis,
            items,
            inspectors,
            window: (req.window_start, req.window_end),
            override_reason: req.override_reason.trim().to_string(),
        };
        let inner = &self.inner;
        let encode = |p: &Planned| planned_to_proto(inner, p).encode_to_vec();
        let outcome = self
            .inner
            .plan(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                plan,
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(p) => planned_to_proto(&self.inner, &p),
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "JoinInspection", inspection = %request.get_ref().inspection_id))]
    async fn join_inspection(
        &self,
        request: Request<pb::JoinInspectionRequest>,
    ) -> Result<Response<pb::JoinInspectionResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "inspection.JoinInspection",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let mut check = Check::default();
        if req.inspection_id.trim().is_empty() {
            check.fail(
                "INSPECTION_ID_INVALID",
                "inspection_id",
                "the inspection to join",
            );
        }
        let items = input::items(&mut check, &req.items);
        let inspectors = input::inspectors(
            &mut check,
            &req.inspectors
                .iter()
                .map(|i| (i.client_id.clone(), i.enforcement_certificate.clone()))
                .collect::<Vec<_>>(),
        );
        let basis = input::basis(
            &mut check,
            kind_of(req.r#type),
            &req.plan_number,
            trigger_of(req.trigger),
            &req.trigger_reason,
        );
        check.finish().map_err(InspectionError::from)?;
        let department = self.inner.acting_department(&principal, &req.department)?;
        let join = NewJoin {
            inspection_id: req.inspection_id.trim().to_string(),
            department,
            basis,
            items,
            inspectors,
        };
        let inner = &self.inner;
        let respond = |r: &Result<InspectionRecord, Refusal>| match r {
            Ok(r) => pb::JoinInspectionResponse {
                inspection: Some(inspection_to_proto(inner, r, true)),
            },
            Err(_) => pb::JoinInspectionResponse::default(),
        };
        let encode = |r: &Result<InspectionRecord, Refusal>| respond(r).encode_to_vec();
        let outcome = self
            .inner
            .join(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                join,
                key.as_ref(),
                &encode,
            )
            .await?;
        match outcome {
            Outcome::Done(Ok(r)) => Ok(Response::new(respond(&Ok(r)))),
            Outcome::Done(Err(refusal)) => Err(refused_status(&refusal)),
            Outcome::Replayed(bytes) => {
                let answer: pb::JoinInspectionResponse = decode_replay(&bytes)?;
                if answer.inspection.is_none() {
                    return Err(status::error(
                        Code::FailedPrecondition,
                        "JOIN_REFUSED",
                        "the join was refused by a rule when first asked",
                    ));
                }
                Ok(Response::new(answer))
            }
        }
    }

    async fn get_inspection(
        &self,
        request: Request<pb::GetInspectionRequest>,
    ) -> Result<Response<pb::GetInspectionResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let r = self
            .inner
            .inspection(principal, &request.get_ref().inspection_id)
            .await?;
        Ok(Response::new(pb::GetInspectionResponse {
            inspection: Some(inspection_to_proto(&self.inner, &r, true)),
        }))
    }

    async fn list_inspections(
        &self,
        request: Request<pb::ListInspectionsRequest>,
    ) -> Result<Response<pb::ListInspectionsResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let scope = scope_of(&req.enterprise_uscc, &req.department)?;
        let before = number_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let rs = self
            .inner
            .inspections(principal, scope, before, size)
            .await?;
        let next_page_token = match rs.last() {
            Some(last) if rs.len() == size as usize => page::encode_token(&last.seq.to_string()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListInspectionsResponse {
            inspections: rs
                .iter()
                .map(|r| inspection_to_proto(&self.inner, r, false))
                .collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ScanCode"))]
    async fn scan_code(
        &self,
        request: Request<pb::ScanCodeRequest>,
    ) -> Result<Response<pb::ScanCodeResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let (r, first) = self
            .inner
            .scan(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                &request.get_ref().code,
            )
            .await?;
        Ok(Response::new(pb::ScanCodeResponse {
            inspection: Some(inspection_to_proto(&self.inner, &r, false)),
            first_shown: first,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RecordResult", inspection = %request.get_ref().inspection_id))]
    async fn record_result(
        &self,
        request: Request<pb::RecordResultRequest>,
    ) -> Result<Response<pb::RecordResultResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "inspection.RecordResult",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let mut check = Check::default();
        if req.inspection_id.trim().is_empty() {
            check.fail("INSPECTION_ID_INVALID", "inspection_id", "the inspection");
        }
        if req.has_findings && req.summary.trim().is_empty() {
            check.fail("SUMMARY_REQUIRED", "summary", "what was found");
        }
        if req.summary.chars().count() > 2000 {
            check.fail("SUMMARY_TOO_LONG", "summary", "at most 2000 characters");
        }
        check.finish().map_err(InspectionError::from)?;
        let inner = &self.inner;
        let respond = |r: &InspectionRecord| pb::RecordResultResponse {
            inspection: Some(inspection_to_proto(inner, r, false)),
        };
        let encode = |r: &InspectionRecord| respond(r).encode_to_vec();
        let outcome = self
            .inner
            .record(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                NewResult {
                    inspection_id: req.inspection_id.trim(),
                    inspector: &principal.client_id,
                    certificate: principal.enforcement_certificate.as_deref(),
                    has_findings: req.has_findings,
                    summary: req.summary.trim(),
                },
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(r) => respond(&r),
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "EvaluateInspection", inspection = %request.get_ref().inspection_id))]
    async fn evaluate_inspection(
        &self,
        request: Request<pb::EvaluateInspectionRequest>,
    ) -> Result<Response<pb::EvaluateInspectionResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "inspection.EvaluateInspection",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let mut check = Check::default();
        if req.inspection_id.trim().is_empty() {
            check.fail("INSPECTION_ID_INVALID", "inspection_id", "the inspection");
        }
        let tags = input::evaluation(&mut check, req.score, &req.tags, &req.comment);
        check.finish().map_err(InspectionError::from)?;
        let org = principal.organization.clone().unwrap_or_default();
        let id = req.inspection_id.trim().to_string();
        let respond = |at: i64| pb::EvaluateInspectionResponse {
            inspection_id: id.clone(),
            evaluated_at: at,
        };
        let encode = |at: i64| respond(at).encode_to_vec();
        let outcome = self
            .inner
            .evaluate(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                NewEvaluation {
                    inspection_id: &id,
                    uscc: &org,
                    score: req.score,
                    tags: &tags,
                    comment: req.comment.trim(),
                },
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(at) => respond(at),
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    async fn get_statistics(
        &self,
        request: Request<pb::GetStatisticsRequest>,
    ) -> Result<Response<pb::GetStatisticsResponse>, Status> {
        let principal = Principal::from_request(&request)?;
        let req = request.get_ref();
        let scope = scope_of(&req.enterprise_uscc, &req.department)?;
        let to = if req.to > 0 {
            req.to
        } else {
            self.inner.now() + 1
        };
        let from = if req.from > 0 {
            req.from
        } else {
            to - 365 * crate::domain::rules::DAY
        };
        if from >= to {
            return Err(InspectionError::invalid(
                "PERIOD_INVALID",
                "from",
                "the period must start before it ends",
            )
            .into());
        }
        let s = self.inner.statistics(principal, scope, from, to).await?;
        Ok(Response::new(pb::GetStatisticsResponse {
            statistics: Some(stats_to_proto(&s)),
            from,
            to,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ImportPolicyData", entries = request.get_ref().entries.len()))]
    async fn import_policy_data(
        &self,
        request: Request<pb::ImportPolicyDataRequest>,
    ) -> Result<Response<pb::ImportPolicyDataResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let trace = trace_id(request.metadata());
        let req = request.get_ref();
        let key = requests::idempotency_key(
            "inspection.ImportPolicyData",
            &principal.client_id,
            &req.idempotency_key,
            &req.encode_to_vec(),
        )?;
        let mut check = Check::default();
        if req.entries.is_empty() || req.entries.len() > 10_000 {
            check.fail("ENTRIES_INVALID", "entries", "between 1 and 10000 entries");
        }
        let items: Vec<(PolicyItem, String)> = req
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                policy_item(i, e, &mut check).map(|p| (p, e.note.trim().to_string()))
            })
            .collect();
        check.finish().map_err(InspectionError::from)?;
        let encode = |n: i64| pb::ImportPolicyDataResponse { imported: n as u32 }.encode_to_vec();
        let outcome = self
            .inner
            .import_policy(
                Caller {
                    principal: &principal,
                    trace_id: &trace,
                },
                &items,
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(n) => pb::ImportPolicyDataResponse { imported: n },
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    async fn list_policy_history(
        &self,
        request: Request<pb::ListPolicyHistoryRequest>,
    ) -> Result<Response<pb::ListPolicyHistoryResponse>, Status> {
        let req = request.get_ref();
        let after = number_token(&req.page_token)?;
        let size = page::page_size(req.page_size);
        let uscc = Some(req.enterprise_uscc.trim()).filter(|u| !u.is_empty());
        // A mistyped code is named as such, not answered "no changes".
        if let Some(u) = uscc {
            let mut check = Check::default();
            input::uscc(&mut check, "enterprise_uscc", u);
            check.finish().map_err(InspectionError::from)?;
        }
        let changes = self
            .inner
            .policy_history(policy_kind_name(req.kind), uscc, after, size)
            .await?;
        let next_page_token = match changes.last() {
            Some(last) if changes.len() == size as usize => {
                page::encode_token(&last.id.to_string())
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListPolicyHistoryResponse {
            changes: changes
                .into_iter()
                .map(|c| pb::PolicyChange {
                    id: c.id,
                    entry: Some(pb::PolicyEntry {
                        kind: policy_kind_of(&c.kind) as i32,
                        enterprise_uscc: c.uscc,
                        item: c.item,
                        grade: Grade::parse(&c.grade)
                            .map(grade_to_proto)
                            .unwrap_or(pb::CreditGrade::Unspecified)
                            as i32,
                        clean: c.clean,
                        checked_at: c.checked_at,
                        removed: c.removed,
                        note: c.note,
                    }),
                    changed_at: c.changed_at,
                    changed_by: c.changed_by,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn get_credit_grade(
        &self,
        request: Request<pb::GetCreditGradeRequest>,
    ) -> Result<Response<pb::GetCreditGradeResponse>, Status> {
        let mut check = Check::default();
        let uscc = input::uscc(&mut check, "uscc", request.get_ref().uscc.trim());
        check.finish().map_err(InspectionError::from)?;
        let uscc = uscc.map(|u| u.to_string()).unwrap_or_default();
        let (grade, updated_at) = self.inner.grade(&uscc).await?;
        Ok(Response::new(pb::GetCreditGradeResponse {
            uscc,
            grade: grade_to_proto(grade) as i32,
            updated_at,
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

//! The inspection service's operations: authorise, validate, ask the license service,
//! then the store, then the answer. The gRPC and HTTP adapters in `api` only convert.

use std::sync::Arc;

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_credential::{
    Bitstring, Policy as VerifyPolicy, Presented, StatusCache, TrustSnapshot, VcOptions,
    envelope::sign_credential,
    keys::IssuerKey,
    vcjwt::{status_purpose_name, to_vc_jwt},
    verify,
};
use credmesh_proto::{credential::v1::StatusPurpose, prost::Message as _};
use credmesh_runtime::{
    Clock,
    status_lists::{ListRef, StatusLists},
};
use credmesh_store::idempotency::{IdempotencyKey, Outcome};
use credmesh_uscc::Region;

use crate::{
    domain::{
        code::{self, CodeContent, LIST_SIZE},
        rules::{Grade, Policy, Refusal},
    },
    error::InspectionError,
    keys::{KINDS, KeyRegistration},
    license::LicenseCheck,
    store::{
        Actor, Change, CodeSigner, InspectionRecord, InspectionStore, NewEvaluation, NewJoin,
        NewPlan, NewResult, Planned, PolicyChangeRecord, PolicyItem, Scope, Signed, StatRow,
    },
};

/// How long a published status list is good for (its VC-JWT `validUntil`).
pub const STATUS_LIST_VALIDITY_SECS: i64 = 600;

/// Who is calling.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The principal.
    pub principal: &'a Principal,
    /// The W3C trace id, or empty.
    pub trace_id: &'a str,
}

impl<'a> Caller<'a> {
    fn actor(&self) -> Actor<'a> {
        Actor {
            client_id: &self.principal.client_id,
            kind: self.principal.kind.as_str(),
            trace_id: self.trace_id,
        }
    }
}

/// Signs inspection codes with the service key.
pub struct Signer {
    region: Region,
    key: IssuerKey,
    options: VcOptions,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.key.kid())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `region` with `key`.
    pub fn new(region: Region, key: IssuerKey, public_url: &str) -> Self {
        Signer {
            region,
            key,
            options: VcOptions {
                status_base_url: public_url.to_string(),
            },
        }
    }
}

impl CodeSigner for Signer {
    fn sign(&self, content: &CodeContent<'_>) -> Signed {
        let credential = code::credential(self.region, content);
        Signed {
            kid: self.key.kid().to_string(),
            envelope: sign_credential(&credential, &self.key).encode_to_vec(),
            vc_jwt: to_vc_jwt(&credential, &self.key, &self.options),
        }
    }
}

pub use credmesh_runtime::status_lists::PublishedList;

/// A department's or an enterprise's statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Inspections (joint once).
    pub inspections: u32,
    /// Routine ones.
    pub routine: u32,
    /// Enterprises.
    pub enterprises: u32,
    /// Repeats.
    pub repeats: u32,
    /// Multi-head.
    pub multi_head: u32,
    /// Joint.
    pub joint: u32,
    /// Completed.
    pub completed: u32,
    /// Evaluations.
    pub evaluations: u32,
    /// Score sum.
    pub score_sum: u64,
    /// Per score 1–5.
    pub score_counts: [u32; 5],
    /// Tag counts.
    pub tags: Vec<(String, u32)>,
    /// Alerts.
    pub alerts: u32,
    /// Scores and tags withheld (too few evaluations for a department to see).
    pub scores_withheld: bool,
}

/// Aggregates statistic rows; evaluations only as counts and sums.
pub fn aggregate(rows: &[StatRow]) -> Stats {
    let mut s = Stats {
        inspections: rows.len() as u32,
        ..Stats::default()
    };
    let mut enterprises = std::collections::BTreeSet::new();
    let mut tags = std::collections::BTreeMap::<String, u32>::new();
    for r in rows {
        enterprises.insert(r.uscc.as_str());
        s.routine += u32::from(r.routine);
        s.repeats += u32::from(r.is_repeat);
        s.multi_head += u32::from(r.multi_head);
        s.joint += u32::from(r.departments > 1);
        s.completed += u32::from(r.state == "completed");
        s.alerts += r.alert_count as u32;
        if (1..=5).contains(&r.score) {
            s.evaluations += 1;
            s.score_sum += r.score as u64;
            s.score_counts[(r.score - 1) as usize] += 1;
            for t in serde_json::from_str::<Vec<String>>(&r.tags).unwrap_or_default() {
                *tags.entry(t).or_default() += 1;
            }
        }
    }
    s.enterprises = enterprises.len() as u32;
    s.tags = tags.into_iter().collect();
    s
}

/// The inspection service.
pub struct Inspection {
    pub(crate) region: Region,
    pub(crate) store: Arc<dyn InspectionStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: Signer,
    pub(crate) policy: Policy,
    pub(crate) licenses: Arc<dyn LicenseCheck>,
    pub(crate) registration: Arc<KeyRegistration>,
    pub(crate) public_url: String,
    /// The signed status lists, signed again only when changed (a list's version is
    /// its count of set bits: bits are only ever set).
    lists: StatusLists,
    /// Decisions and signed codes, counted once [`Inspection::export_metrics`] ran.
    metrics: std::sync::OnceLock<Counted>,
    /// Identity, whose trust list names this service's earlier keys: a code signed
    /// before a key rotation still scans while that key verifies.
    trust_source: Option<
        credmesh_proto::identity::v1::identity_service_client::IdentityServiceClient<
            tonic::transport::Channel,
        >,
    >,
    /// Where named inspectors are checked (identity's client registry).
    registry: Option<Arc<dyn crate::inspectors::InspectorRegistry>>,
}

/// Label set of `credmesh_inspection_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct DecisionLabels {
    /// The rule that decided (`frequency`, `multi_head`, …; `none` when a code was issued).
    rule: &'static str,
    /// `issued`, `conflict`, `joined` or `refused`.
    decision: &'static str,
}

#[derive(Debug)]
struct Counted {
    decisions: prometheus_client::metrics::family::Family<
        DecisionLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    credentials: credmesh_telemetry::metrics::CredentialMetrics,
}

/// The metric label of a rule.
fn rule_label(rule: &crate::domain::rules::Rule) -> &'static str {
    use crate::domain::rules::Rule;
    match rule {
        Rule::PlanBasis => "plan_basis",
        Rule::TwoNoLists => "two_no_lists",
        Rule::Frequency => "frequency",
        Rule::InspectorBlock => "inspector_block",
        Rule::MultiHead => "multi_head",
        Rule::NonSiteFirst => "non_site_first",
    }
}

impl std::fmt::Debug for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspection")
            .field("region", &self.region)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

fn not_allowed(what: &str) -> InspectionError {
    InspectionError::NotAllowed(what.to_string())
}

impl Inspection {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        region: Region,
        store: Arc<dyn InspectionStore>,
        clock: Arc<dyn Clock>,
        signer: Signer,
        policy: Policy,
        licenses: Arc<dyn LicenseCheck>,
        registration: Arc<KeyRegistration>,
        public_url: String,
        status_refresh_secs: i64,
    ) -> Self {
        Inspection {
            region,
            store,
            clock,
            signer,
            policy,
            licenses,
            registration,
            public_url,
            lists: StatusLists::new(
                code::issuer_id(region),
                LIST_SIZE,
                STATUS_LIST_VALIDITY_SECS,
                status_refresh_secs,
            ),
            metrics: std::sync::OnceLock::new(),
            trust_source: None,
            registry: None,
        }
    }

    /// Checks every inspector a plan or join names against `registry`.
    pub fn with_inspector_registry(
        mut self,
        registry: Arc<dyn crate::inspectors::InspectorRegistry>,
    ) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Every named inspector must be a registered, enabled inspector holding the
    /// certificate number given; all the ones that are not are named at once.
    async fn check_inspectors(
        &self,
        named: &[crate::domain::input::NamedInspector],
        department: &str,
    ) -> Result<(), InspectionError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        let mut violations = Vec::new();
        for (i, inspector) in named.iter().enumerate() {
            let id = &inspector.client_id;
            let problem = match registry.lookup(id).await {
                Err(why) => return Err(InspectionError::RegistryUnavailable(why)),
                Ok(None) => Some(format!("no client '{id}' is registered")),
                Ok(Some(r)) if !r.is_inspector => {
                    Some(format!("'{id}' is not registered as an inspector"))
                }
                Ok(Some(r)) if r.disabled => Some(format!("'{id}' is disabled")),
                // A department sends its own law-enforcement staff.
                Ok(Some(r)) if r.department != department => Some(format!(
                    "'{id}' inspects for department {}, not for {department}",
                    if r.department.is_empty() {
                        "(none)"
                    } else {
                        r.department.as_str()
                    }
                )),
                Ok(Some(r)) if r.certificate != inspector.certificate => Some(format!(
                    "'{id}' is registered with another law-enforcement certificate number than '{}'",
                    inspector.certificate
                )),
                Ok(Some(_)) => None,
            };
            if let Some(description) = problem {
                violations.push(credmesh_proto::status::FieldViolation::new(
                    format!("inspectors[{i}]"),
                    description,
                ));
            }
        }
        if violations.is_empty() {
            return Ok(());
        }
        Err(InspectionError::Invalid {
            reason: "INSPECTOR_NOT_REGISTERED",
            message: format!(
                "{} of the inspectors named is not a registered inspector with that certificate: {}",
                violations.len(),
                violations
                    .iter()
                    .map(|v| v.description.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            violations,
        })
    }

    /// Also accepts codes signed by this service's earlier keys, as identity's
    /// anchor-signed trust list over `identity` names them (retired keys verify what
    /// they signed before retirement; revoked keys nothing).
    pub fn with_earlier_keys(mut self, identity: tonic::transport::Channel) -> Self {
        self.trust_source = Some(
            credmesh_proto::identity::v1::identity_service_client::IdentityServiceClient::new(
                identity,
            ),
        );
        self
    }

    /// Exports `credmesh_inspection_decisions_total{rule, decision}` on `metrics` and
    /// counts every code signed in `credmesh_credentials_issued_total{kind="inspection_code"}`.
    pub fn export_metrics(&self, metrics: &credmesh_telemetry::metrics::Metrics) {
        let decisions = prometheus_client::metrics::family::Family::default();
        metrics.register(
            credmesh_telemetry::names::INSPECTION_DECISIONS_TOTAL,
            "inspection plan and join decisions, by the rule that decided",
            decisions.clone(),
        );
        let _ = self.metrics.set(Counted {
            decisions,
            credentials: metrics.credentials().clone(),
        });
    }

    fn count(&self, rule: &'static str, decision: &'static str) {
        if let Some(m) = self.metrics.get() {
            m.decisions
                .get_or_create(&DecisionLabels { rule, decision })
                .inc();
            if matches!(decision, "issued" | "joined") {
                m.credentials.issued("inspection_code");
            }
        }
    }

    /// The region.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The rules in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The signing key's registration.
    pub fn registration(&self) -> &Arc<KeyRegistration> {
        &self.registration
    }

    /// Now, Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    fn ready(&self) -> Result<(), InspectionError> {
        self.registration
            .check()
            .map_err(InspectionError::KeyNotRegistered)
    }

    fn change<'a>(&self, caller: Caller<'a>, key: Option<&'a IdempotencyKey>) -> Change<'a> {
        Change {
            actor: caller.actor(),
            key,
            now: self.clock.now(),
        }
    }

    /// The department a planner acts for: its own organisation; operators name one.
    pub fn acting_department(
        &self,
        principal: &Principal,
        requested: &str,
    ) -> Result<String, InspectionError> {
        let requested = requested.trim();
        match principal.kind {
            PrincipalKind::Operator if !requested.is_empty() => Ok(requested.to_string()),
            PrincipalKind::Operator => Err(InspectionError::invalid(
                "DEPARTMENT_REQUIRED",
                "department",
                "an operator must name the department it plans for",
            )),
            PrincipalKind::Department => {
                let own = principal.organization.clone().unwrap_or_default();
                if own.is_empty() || (!requested.is_empty() && requested != own) {
                    return Err(not_allowed("a department plans only for itself"));
                }
                Ok(own)
            }
            _ => Err(not_allowed(
                "only departments and operators plan inspections",
            )),
        }
    }

    /// Plans an inspection (rules 1–5), once the enterprise's license verifies.
    pub async fn plan(
        &self,
        caller: Caller<'_>,
        plan: NewPlan,
        key: Option<&IdempotencyKey>,
        encode: crate::store::EncodePlanned<'_>,
    ) -> Result<Outcome<Planned>, InspectionError> {
        self.ready()?;
        self.check_inspectors(&plan.inspectors, &plan.department)
            .await?;
        let license = self.licenses.active(&plan.uscc).await?;
        let plan = NewPlan {
            enterprise_name: license.name,
            ..plan
        };
        let outcome = self
            .store
            .plan(
                &plan,
                &self.policy,
                &self.signer,
                encode,
                self.change(caller, key),
            )
            .await?;
        if let Outcome::Done(p) = &outcome {
            let (rule, decision) = match p {
                Planned::Issued(_) => ("none", "issued"),
                Planned::Conflict(_) => ("multi_head", "conflict"),
                Planned::Refused(r) => (rule_label(&r.rule), "refused"),
            };
            tracing::info!(uscc = %plan.uscc, department = %plan.department, decision, "inspection planned");
            self.count(rule, decision);
        }
        Ok(outcome)
    }

    /// Joins an inspection.
    pub async fn join(
        &self,
        caller: Caller<'_>,
        join: NewJoin,
        key: Option<&IdempotencyKey>,
        encode: crate::store::EncodeJoined<'_>,
    ) -> Result<Outcome<Result<InspectionRecord, Refusal>>, InspectionError> {
        self.ready()?;
        let existing = self
            .store
            .inspection(&join.inspection_id)
            .await?
            .ok_or_else(|| InspectionError::NotFound(join.inspection_id.clone()))?;
        self.check_inspectors(&join.inspectors, &join.department)
            .await?;
        self.licenses.active(&existing.uscc).await?;
        let outcome = self
            .store
            .join(
                &join,
                &self.policy,
                &self.signer,
                encode,
                self.change(caller, key),
            )
            .await?;
        match &outcome {
            Outcome::Done(Ok(_)) => self.count("none", "joined"),
            Outcome::Done(Err(r)) => self.count(rule_label(&r.rule), "refused"),
            Outcome::Replayed(_) => {}
        }
        Ok(outcome)
    }

    /// Whether `principal` may read `r`: enterprises their own, inspectors those naming
    /// them, departments those they take part in; services and operators all.
    fn may_read(&self, principal: &Principal, r: &InspectionRecord) -> Result<(), InspectionError> {
        let org = principal.organization.as_deref().unwrap_or_default();
        let allowed = match principal.kind {
            PrincipalKind::Service | PrincipalKind::Operator => true,
            PrincipalKind::Enterprise => r.uscc == org,
            PrincipalKind::Department => r.participants.iter().any(|p| p.department == org),
            PrincipalKind::Inspector => {
                r.inspectors
                    .iter()
                    .any(|i| i.client_id == principal.client_id)
                    || r.participants.iter().any(|p| p.department == org)
            }
            PrincipalKind::Partner => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(not_allowed("the caller takes no part in this inspection"))
        }
    }

    /// One inspection.
    pub async fn inspection(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<InspectionRecord, InspectionError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 64 {
            return Err(InspectionError::invalid(
                "INSPECTION_ID_INVALID",
                "inspection_id",
                "an inspection id",
            ));
        }
        let r = self
            .store
            .inspection(id)
            .await?
            .ok_or_else(|| InspectionError::NotFound(id.to_string()))?;
        self.may_read(principal, &r)?;
        Ok(r)
    }

    /// Checks who may see a scope's inspections or statistics.
    fn may_see(&self, principal: &Principal, scope: Scope<'_>) -> Result<(), InspectionError> {
        let org = principal.organization.as_deref().unwrap_or_default();
        let ok = match (principal.kind, scope) {
            (PrincipalKind::Service | PrincipalKind::Operator, _) => true,
            (PrincipalKind::Enterprise, Scope::Enterprise(u)) => u == org,
            (PrincipalKind::Department | PrincipalKind::Inspector, Scope::Department(d)) => {
                d == org
            }
            // Departments and inspectors look up an enterprise's inspections before
            // planning (rule 4 is answered by the service anyway).
            (PrincipalKind::Department | PrincipalKind::Inspector, Scope::Enterprise(_)) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(not_allowed("the caller may not see these inspections"))
        }
    }

    /// A page of inspections.
    pub async fn inspections(
        &self,
        principal: &Principal,
        scope: Scope<'_>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<InspectionRecord>, InspectionError> {
        self.may_see(principal, scope)?;
        self.store.inspections(scope, before, limit).await
    }

    /// The enterprise scans a code: verified like any verifier would (signature by this
    /// service's key, window, status), then recorded as shown.
    pub async fn scan(
        &self,
        caller: Caller<'_>,
        code_text: &str,
    ) -> Result<(InspectionRecord, bool), InspectionError> {
        let text = code_text.trim();
        if text.is_empty() {
            return Err(InspectionError::invalid(
                "CODE_REQUIRED",
                "code",
                "the scanned code: QR text or VC-JWT",
            ));
        }
        let now = self.clock.now();
        let mut trust = TrustSnapshot::new();
        let own_kid = self.signer.key.kid();
        let signed_by_own = match Presented::detect(text) {
            Presented::Qr(qr) => credmesh_credential::from_qr(qr)
                .map(|e| e.kid == own_kid)
                .unwrap_or(true),
            Presented::VcJwt(jwt) => credmesh_credential::parse_vc_jwt(jwt)
                .map(|j| j.kid() == own_kid)
                .unwrap_or(true),
            _ => true,
        };
        if !signed_by_own && let Some(identity) = &self.trust_source {
            // An earlier key of this service: believe it only as identity's anchor-signed
            // trust list does, and only for this service's codes.
            match credmesh_runtime::trust::fetch_trust_list(identity).await {
                Ok(list) => {
                    let issuer = code::issuer_id(self.region);
                    for key in list.keys.iter().filter(|k| k.issuer == issuer) {
                        let _ = trust.insert(key, now);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "trust list unavailable; only the current key verifies codes");
                }
            }
        }
        let trusted = self.signer.key.to_trusted_key(
            &code::issuer_id(self.region),
            self.region.code(),
            KINDS,
            0,
        );
        trust
            .insert(&trusted, now)
            .map_err(|e| InspectionError::Internal(anyhow::anyhow!("own key: {e}")))?;
        // The service checks the window on its own clock, the one results are recorded
        // by: no tolerance for a verifier's clock disagreeing, so a code is recorded as
        // shown only inside its window (rule 6).
        let policy = VerifyPolicy {
            max_clock_skew: std::time::Duration::ZERO,
            ..VerifyPolicy::default()
        };
        // Decode first (signature checked) to learn which list to consult.
        let probe = verify(
            Presented::detect(text),
            &trust,
            &StatusCache::new(),
            &policy,
            now,
        );
        let credential = probe
            .credential
            .clone()
            .ok_or(InspectionError::CodeInvalid {
                reason: probe.reason,
                detail: probe.detail.clone(),
            })?;
        let id = code::inspection_id(&credential)
            .ok_or(InspectionError::CodeInvalid {
                reason: "NOT_AN_INSPECTION_CODE",
                detail: "the credential is not an inspection code".into(),
            })?
            .to_string();
        let mut status = StatusCache::new();
        if let Some(reference) = credential.status.as_ref()
            && let Some(n) = code::parse_list_id(self.region, &reference.list_id)
        {
            for purpose in [
                StatusPurpose::Revocation,
                StatusPurpose::Suspension,
                StatusPurpose::Superseded,
            ] {
                let mut bits = Bitstring::new(LIST_SIZE as usize);
                for i in self.store.status_indexes(n, purpose as i32).await? {
                    let _ = bits.set(i, true);
                }
                let _ = status.insert_list(reference.list_id.clone(), purpose, bits, now);
            }
        }
        let v = verify(Presented::detect(text), &trust, &status, &policy, now);
        if !v.is_valid() {
            return Err(InspectionError::CodeInvalid {
                reason: v.reason,
                detail: v.detail,
            });
        }
        let record = self
            .store
            .inspection(&id)
            .await?
            .ok_or_else(|| InspectionError::NotFound(id.clone()))?;
        if caller.principal.kind != PrincipalKind::Enterprise
            || caller.principal.organization.as_deref() != Some(record.uscc.as_str())
        {
            return Err(not_allowed(
                "only the inspected enterprise scans its inspection code",
            ));
        }
        let first = self.store.shown(&id, self.change(caller, None)).await?;
        let record = self
            .store
            .inspection(&id)
            .await?
            .ok_or_else(|| InspectionError::NotFound(id.clone()))?;
        Ok((record, first))
    }

    /// Records a result (rule 6).
    pub async fn record(
        &self,
        caller: Caller<'_>,
        result: NewResult<'_>,
        key: Option<&IdempotencyKey>,
        encode: crate::store::EncodeRecord<'_>,
    ) -> Result<Outcome<InspectionRecord>, InspectionError> {
        if caller.principal.kind != PrincipalKind::Inspector {
            return Err(not_allowed("only inspectors record results"));
        }
        self.store
            .record(&result, encode, self.change(caller, key))
            .await
    }

    /// Records an evaluation (rule 7).
    pub async fn evaluate(
        &self,
        caller: Caller<'_>,
        evaluation: NewEvaluation<'_>,
        key: Option<&IdempotencyKey>,
        encode: crate::store::EncodeNumber<'_>,
    ) -> Result<Outcome<i64>, InspectionError> {
        if caller.principal.kind != PrincipalKind::Enterprise
            || caller.principal.organization.as_deref() != Some(evaluation.uscc)
        {
            return Err(not_allowed(
                "only the inspected enterprise evaluates an inspection",
            ));
        }
        self.store
            .evaluate(&evaluation, &self.policy, encode, self.change(caller, key))
            .await
    }

    /// Statistics (rule 8).
    pub async fn statistics(
        &self,
        principal: &Principal,
        scope: Scope<'_>,
        from: i64,
        to: i64,
    ) -> Result<Stats, InspectionError> {
        self.may_see(principal, scope)?;
        let mut stats = aggregate(&self.store.stat_rows(scope, from, to).await?);
        // Rule 7: a department sees evaluations only as aggregates of its own
        // inspections, and an aggregate of one or two is an individual rating: withhold
        // scores below the minimum, and always for one enterprise's inspections (all
        // rated by that enterprise).
        let restricted = matches!(
            principal.kind,
            PrincipalKind::Department | PrincipalKind::Inspector
        );
        let identifying = matches!(scope, Scope::Enterprise(_))
            || stats.evaluations < self.policy.min_evaluations;
        if restricted && stats.evaluations > 0 && identifying {
            stats.score_sum = 0;
            stats.score_counts = [0; 5];
            stats.tags.clear();
            stats.scores_withheld = true;
        }
        Ok(stats)
    }

    /// Imports policy data.
    pub async fn import_policy(
        &self,
        caller: Caller<'_>,
        items: &[(PolicyItem, String)],
        key: Option<&IdempotencyKey>,
        encode: crate::store::EncodeNumber<'_>,
    ) -> Result<Outcome<u32>, InspectionError> {
        self.store
            .import_policy(items, encode, self.change(caller, key))
            .await
    }

    /// A page of policy history.
    pub async fn policy_history(
        &self,
        kind: Option<&str>,
        uscc: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<PolicyChangeRecord>, InspectionError> {
        self.store.policy_history(kind, uscc, after, limit).await
    }

    /// An enterprise's grade: imported, or the default with `updated_at` 0.
    pub async fn grade(&self, uscc: &str) -> Result<(Grade, i64), InspectionError> {
        Ok(self
            .store
            .grade(uscc)
            .await?
            .unwrap_or((self.policy.default_grade, 0)))
    }

    /// The public URL of a status list.
    pub fn status_url(&self, list_id: &str, purpose: &str) -> String {
        format!(
            "{}/v1/status/{list_id}/{purpose}",
            self.public_url.trim_end_matches('/')
        )
    }

    /// A status list, signed by the current key; re-signed only when a bit changed,
    /// the key changed or the refresh interval passed.
    pub async fn status_list(
        &self,
        list_id: &str,
        purpose: i32,
    ) -> Result<Arc<PublishedList>, InspectionError> {
        let not_found = || InspectionError::StatusListNotFound(list_id.chars().take(64).collect());
        let n = code::parse_list_id(self.region, list_id).ok_or_else(not_found)?;
        let purpose_name = status_purpose_name(purpose).ok_or_else(|| {
            InspectionError::invalid(
                "STATUS_PURPOSE_INVALID",
                "purpose",
                "revocation, suspension or superseded",
            )
        })?;
        let allocated = self.store.allocated_entries().await?;
        if n != 0 && n.saturating_mul(LIST_SIZE) >= allocated {
            return Err(not_found());
        }
        let count = self.store.status_count(n, purpose).await?;
        let now = self.clock.now();
        let key = &self.signer.key;
        if let Some(signed) = self.lists.signed(n, purpose, count, key.kid(), now) {
            return Ok(signed);
        }
        let indexes = self.store.status_indexes(n, purpose).await?;
        let list = ListRef {
            list_id,
            n,
            purpose,
            url: &self.status_url(list_id, purpose_name),
        };
        self.lists
            .sign(list, indexes.len() as u64, &indexes, key, now)
            .map_err(InspectionError::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, departments: i64, score: i64, tags: &str) -> StatRow {
        StatRow {
            id: id.into(),
            uscc: "91310106MA1000017P".into(),
            routine: true,
            multi_head: false,
            alert_count: 1,
            state: "completed".into(),
            departments,
            is_repeat: false,
            score,
            tags: tags.into(),
        }
    }

    #[test]
    fn statistics_count_a_joint_inspection_once_and_aggregate_scores() {
        let s = aggregate(&[
            row("a", 2, 4, r#"["professional"]"#),
            row("b", 1, 2, r#"["professional","improper_requests"]"#),
            row("c", 1, 0, ""),
        ]);
        assert_eq!((s.inspections, s.joint, s.enterprises), (3, 1, 1));
        assert_eq!((s.evaluations, s.score_sum), (2, 6));
        assert_eq!(s.score_counts, [0, 1, 0, 1, 0]);
        assert_eq!(s.alerts, 3);
        assert_eq!(
            s.tags,
            vec![("improper_requests".into(), 1), ("professional".into(), 2)]
        );
    }
}

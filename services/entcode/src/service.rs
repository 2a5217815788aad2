//! The operations of the enterprise-code service.

use std::{sync::Arc, time::Duration};

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_cache::Cache;
use credmesh_credential::{
    VerifyingKey,
    envelope::{Context, check_signature, sign_credential},
    hex,
    keys::IssuerKey,
    qr::{from_qr, to_qr},
    sd_jwt,
};
use credmesh_proto::{
    credential::v1::{Claim, Credential, CredentialKind, Envelope},
    prost::Message as _,
};
use credmesh_runtime::Clock;
use credmesh_uscc::{Region, Uscc};

use credmesh_store::idempotency::{IdempotencyKey, Outcome as Idempotent};

use crate::{
    domain::{
        code,
        scenario::{self, Draft, Scenario},
    },
    error::EntcodeError,
    keys::KeyRegistration,
    license::{LicenseSource, LicenseView},
    permits::{self as permit, GradeSource, Permit, PermitSource},
    store::{Actor, Change, Changed, Edit, ScenarioStore, VersionRecord},
    trust::KeyDirectory,
};

/// Who calls a mutation, and in which trace.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The authenticated principal.
    pub principal: &'a Principal,
    /// The W3C trace id of the request, or empty.
    pub trace_id: &'a str,
}

/// Encodes a mutation's answer for idempotent replays.
pub type Encode<'a, T> = &'a (dyn Fn(&T) -> Vec<u8> + Send + Sync);

/// A signed credential and its forms.
#[derive(Clone, Debug)]
pub struct Signed {
    /// What was signed.
    pub credential: Credential,
    /// The native form.
    pub envelope: Envelope,
    /// The QR text.
    pub qr: String,
    /// The SD-JWT form (RFC 9901); presentations only, empty for codes.
    pub sd_jwt: String,
}

/// Why a presentation or code did not verify (or that it did).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checks out.
    Valid,
    /// Past its validity window.
    Expired,
    /// Before its validity window.
    NotYetValid,
    /// Verified before.
    AlreadyUsed,
    /// The enterprise is deregistered or revoked.
    LicenseNotActive,
    /// Signature mismatch.
    BadSignature,
    /// Not signed by this service.
    UnknownIssuer,
    /// Not decodable.
    Malformed,
}

impl Outcome {
    /// The stable reason string.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Valid => "VALID",
            Outcome::Expired => "EXPIRED",
            Outcome::NotYetValid => "NOT_YET_VALID",
            Outcome::AlreadyUsed => "ALREADY_USED",
            Outcome::LicenseNotActive => "LICENSE_NOT_ACTIVE",
            Outcome::BadSignature => "BAD_SIGNATURE",
            Outcome::UnknownIssuer => "UNKNOWN_ISSUER",
            Outcome::Malformed => "MALFORMED",
        }
    }
}

/// The permits of an enterprise as far as this service could learn them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Permits {
    /// Not asked: no certificate service is configured, or the answer is not about a
    /// valid enterprise code.
    #[default]
    NotAsked,
    /// The certificate service's answer (possibly none).
    Loaded(Vec<Permit>),
    /// The certificate service did not answer; why, one sentence.
    Unavailable(String),
}

/// The answer of a check.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The answer.
    pub outcome: Outcome,
    /// One sentence.
    pub detail: String,
    /// The credential, once its signature verified.
    pub credential: Option<Credential>,
    /// The enterprise's license as the license service holds it now (codes and valid
    /// presentations).
    pub license: Option<LicenseView>,
    /// When checked, Unix seconds.
    pub checked_at: i64,
    /// The enterprise's permits: asked for a valid enterprise code only.
    pub permits: Permits,
}

impl Checked {
    /// The disclosed claims: only for a valid answer.
    pub fn disclosed(&self) -> &[Claim] {
        match (&self.outcome, &self.credential) {
            (Outcome::Valid, Some(c)) => &c.claims,
            _ => &[],
        }
    }
}

/// Clock tolerance at the edges of a presentation's window, seconds. Small on purpose:
/// the issuer's own clock decides, and a presentation lives only minutes.
const SKEW_SECS: i64 = 30;

/// The enterprise-code service.
#[derive(Debug)]
pub struct Entcode {
    region: Region,
    key: IssuerKey,
    registration: Arc<KeyRegistration>,
    license: Arc<dyn LicenseSource>,
    store: Arc<dyn ScenarioStore>,
    earlier_keys: Option<Arc<dyn KeyDirectory>>,
    foreign: Option<Arc<dyn crate::foreign::ForeignVerifier>>,
    permit_source: Option<Arc<dyn PermitSource>>,
    grade_source: Option<Arc<dyn GradeSource>>,
    cache: Cache,
    clock: Arc<dyn Clock>,
    ttl_secs: i64,
    /// Where signed codes and presentations are counted, once exported.
    metrics: std::sync::OnceLock<credmesh_telemetry::metrics::CredentialMetrics>,
}

impl Entcode {
    /// The service signing with `key` (registered through `registration`), asking
    /// `license` about licenses, keeping scenarios in `store` and recording used nonces
    /// in `cache`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        region: Region,
        key: IssuerKey,
        registration: Arc<KeyRegistration>,
        license: Arc<dyn LicenseSource>,
        store: Arc<dyn ScenarioStore>,
        cache: Cache,
        clock: Arc<dyn Clock>,
        ttl_secs: i64,
    ) -> Self {
        Entcode {
            region,
            key,
            registration,
            license,
            store,
            earlier_keys: None,
            foreign: None,
            permit_source: None,
            grade_source: None,
            cache,
            clock,
            ttl_secs,
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// Counts every code and presentation signed in `metrics`
    /// (`credmesh_credentials_issued_total{kind="enterprise_code"|"presentation"}`).
    pub fn export_metrics(&self, metrics: &credmesh_telemetry::metrics::Metrics) {
        let _ = self.metrics.set(metrics.credentials().clone());
    }

    /// Also accepts what earlier keys of this service signed, found in `directory`
    /// (identity's trust list in production): printed codes outlive key rotations.
    pub fn with_earlier_keys(mut self, directory: Arc<dyn KeyDirectory>) -> Self {
        self.earlier_keys = Some(directory);
        self
    }

    /// Shows credentials of other issuers on the scan page, as `verifier` (the verify
    /// gateway in production) answers about them.
    pub fn with_foreign(mut self, verifier: Arc<dyn crate::foreign::ForeignVerifier>) -> Self {
        self.foreign = Some(verifier);
        self
    }

    /// Shows the enterprise's permits on the scan page and in `GetEnterpriseCode`, and
    /// lets scenarios disclose `permits`, as `source` (the certificate service in
    /// production) answers.
    pub fn with_permits(mut self, source: Arc<dyn PermitSource>) -> Self {
        self.permit_source = Some(source);
        self
    }

    /// Lets scenarios disclose `credit_grade`, as `source` (the inspection service in
    /// production) answers.
    pub fn with_grades(mut self, source: Arc<dyn GradeSource>) -> Self {
        self.grade_source = Some(source);
        self
    }

    /// The permits of `uscc`; never an error: an unset or silent certificate service is
    /// said so in the answer.
    pub async fn permits(&self, uscc: &str) -> Permits {
        let Some(source) = &self.permit_source else {
            return Permits::NotAsked;
        };
        match source.permits(uscc).await {
            Ok(list) => Permits::Loaded(list),
            Err(why) => {
                tracing::warn!(%why, "the certificate service did not answer; showing no permits");
                Permits::Unavailable(why)
            }
        }
    }

    /// The values of the fields that do not come from the license (`permits`,
    /// `credit_grade`) that `fields` names, as claims; refused when their source is
    /// unset or does not answer.
    async fn extra_claims(
        &self,
        uscc: &str,
        fields: &[String],
    ) -> Result<Vec<Claim>, EntcodeError> {
        let mut out = Vec::new();
        if fields.iter().any(|f| f == scenario::FIELD_PERMITS) {
            let source = self.permit_source.as_ref().ok_or_else(|| EntcodeError::FieldUnavailable {
                field: scenario::FIELD_PERMITS,
                why: "this service has no certificate service configured (CREDMESH_CERTIFICATE_URL)".into(),
            })?;
            let list =
                source
                    .permits(uscc)
                    .await
                    .map_err(|why| EntcodeError::FieldUnavailable {
                        field: scenario::FIELD_PERMITS,
                        why,
                    })?;
            out.push(Claim {
                name: scenario::FIELD_PERMITS.into(),
                value: permit::disclosed_value(&list),
            });
        }
        if fields.iter().any(|f| f == scenario::FIELD_CREDIT_GRADE) {
            let source = self.grade_source.as_ref().ok_or_else(|| EntcodeError::FieldUnavailable {
                field: scenario::FIELD_CREDIT_GRADE,
                why: "this service has no inspection service configured (CREDMESH_INSPECTION_URL)".into(),
            })?;
            let grade = source
                .grade(uscc)
                .await
                .map_err(|why| EntcodeError::FieldUnavailable {
                    field: scenario::FIELD_CREDIT_GRADE,
                    why,
                })?;
            out.push(Claim {
                name: scenario::FIELD_CREDIT_GRADE.into(),
                value: grade,
            });
        }
        Ok(out)
    }

    /// The answer about a credential another issuer signed, when a verifier is set and
    /// `checked` says this service did not sign it (or why the verifier gave none).
    pub async fn scan_foreign(
        &self,
        qr: &str,
        checked: &Checked,
    ) -> Option<Result<crate::foreign::ForeignCheck, crate::foreign::NoAnswer>> {
        if checked.outcome != Outcome::UnknownIssuer {
            return None;
        }
        Some(self.foreign.as_ref()?.check(qr).await)
    }

    fn sign(&self, credential: Credential) -> Result<Signed, EntcodeError> {
        self.registration
            .check()
            .map_err(EntcodeError::KeyNotReady)?;
        let envelope = sign_credential(&credential, &self.key);
        if let Some(m) = self.metrics.get() {
            m.issued(credmesh_credential::kind_name(credential.kind));
        }
        let qr = to_qr(&envelope);
        Ok(Signed {
            credential,
            envelope,
            qr,
            sd_jwt: String::new(),
        })
    }

    /// The stable enterprise code of `uscc`, with the enterprise's name. An enterprise
    /// may read only its own.
    #[tracing::instrument(skip(self, principal), fields(client = %principal.client_id))]
    pub async fn code(
        &self,
        principal: &Principal,
        uscc: &str,
    ) -> Result<(Signed, String), EntcodeError> {
        let uscc = parse_uscc(uscc)?;
        own(principal, &uscc)?;
        let view = self.license.current(&uscc).await?;
        if let Some(state) = view.withdrawn {
            return Err(EntcodeError::NotActive { uscc, state });
        }
        let mut credential = code::code(self.region, &uscc, view.registered_at);
        credential.status = view.standing;
        let signed = self.sign(credential)?;
        Ok((signed, view.name))
    }

    /// Stores the built-in scenarios as version 1 where no scenario of their name exists.
    pub async fn seed_scenarios(&self) -> Result<u32, EntcodeError> {
        self.store.seed(scenario::BUILT_IN, self.clock.now()).await
    }

    /// A page of scenarios (current versions) named after `after`.
    pub async fn scenarios(&self, after: &str, limit: u32) -> Result<Vec<Scenario>, EntcodeError> {
        self.store.scenarios(after, limit).await
    }

    /// The scenario `name` at `version` (0: current), with its current version number.
    pub async fn scenario(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(Scenario, u32), EntcodeError> {
        let name = scenario::parse_name(name)?;
        self.store
            .scenario(&name, version)
            .await?
            .ok_or(EntcodeError::ScenarioNotFound { name, version })
    }

    /// Every version of `name` after `after`, oldest first.
    pub async fn scenario_history(
        &self,
        name: &str,
        after: u32,
        limit: u32,
    ) -> Result<Vec<VersionRecord>, EntcodeError> {
        let name = scenario::parse_name(name)?;
        let versions = self.store.history(&name, after, limit).await?;
        if versions.is_empty() && after == 0 {
            return Err(EntcodeError::ScenarioNotFound { name, version: 0 });
        }
        Ok(versions)
    }

    fn change<'a>(
        &self,
        caller: Caller<'a>,
        key: Option<&'a IdempotencyKey>,
        encode: Encode<'a, Changed>,
    ) -> Result<Change<'a, Changed>, EntcodeError> {
        if caller.principal.kind != PrincipalKind::Operator {
            return Err(EntcodeError::OperatorsOnly);
        }
        Ok(Change {
            actor: Actor {
                client_id: &caller.principal.client_id,
                kind: caller.principal.kind.as_str(),
                trace_id: caller.trace_id,
            },
            key,
            encode,
            now: self.clock.now(),
        })
    }

    /// Creates a scenario or makes its next version (operators).
    #[tracing::instrument(skip_all, fields(client = %caller.principal.client_id, scenario = %draft.name))]
    pub async fn put_scenario(
        &self,
        caller: Caller<'_>,
        draft: &Draft,
        reason: &str,
        expected: Option<u32>,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, Changed>,
    ) -> Result<Idempotent<Changed>, EntcodeError> {
        let reason = scenario::parse_reason(reason)?;
        let change = self.change(caller, key, encode)?;
        self.store
            .change(Edit::Put(draft), &reason, expected, change)
            .await
    }

    /// Retires a scenario (operators): no new presentations of it.
    #[tracing::instrument(skip_all, fields(client = %caller.principal.client_id))]
    pub async fn retire_scenario(
        &self,
        caller: Caller<'_>,
        name: &str,
        reason: &str,
        expected: Option<u32>,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, Changed>,
    ) -> Result<Idempotent<Changed>, EntcodeError> {
        let name = scenario::parse_name(name)?;
        let reason = scenario::parse_reason(reason)?;
        let change = self.change(caller, key, encode)?;
        self.store
            .change(Edit::Retire(&name), &reason, expected, change)
            .await
    }

    /// A presentation of `scenario` for the enterprise `uscc`, which must be the caller.
    #[tracing::instrument(skip(self, principal), fields(client = %principal.client_id))]
    pub async fn present(
        &self,
        principal: &Principal,
        uscc: &str,
        scenario: &str,
    ) -> Result<Signed, EntcodeError> {
        let uscc = parse_uscc(uscc)?;
        if scenario.trim().is_empty() {
            return Err(EntcodeError::Invalid {
                reason: "SCENARIO_REQUIRED",
                message: "a scenario is required".into(),
                field: "scenario",
            });
        }
        let found = match scenario::parse_name(scenario) {
            Ok(name) => self.store.scenario(&name, 0).await?.map(|(s, _)| s),
            Err(_) => None,
        }
        .ok_or_else(|| EntcodeError::UnknownScenario(scenario.chars().take(60).collect()))?;
        if principal.kind != PrincipalKind::Enterprise {
            return Err(EntcodeError::NotYours(uscc));
        }
        own(principal, &uscc)?;
        if found.retired {
            return Err(EntcodeError::ScenarioRetired(found.name));
        }
        let view = self.license.current(&uscc).await?;
        if let Some(state) = view.withdrawn {
            return Err(EntcodeError::NotActive { uscc, state });
        }
        let mut claims = view.claims;
        claims.extend(self.extra_claims(&uscc, &found.fields).await?);
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)
            .map_err(|e| EntcodeError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
        let mut credential = code::presentation(
            self.region,
            &uscc,
            (&found.name, found.version),
            found.disclose(&claims),
            nonce,
            self.clock.now(),
            self.ttl_secs,
        );
        credential.status = view.standing;
        let mut signed = self.sign(credential)?;
        signed.sd_jwt = crate::domain::sdjwt::issue(&signed.credential, &self.key, || {
            let mut salt = [0u8; 16];
            // A failing system RNG already failed for the nonce above; a zero salt
            // would only weaken the hiding of already disclosed values.
            let _ = getrandom::fill(&mut salt);
            salt
        })
        .map_err(|e| EntcodeError::Internal(anyhow::anyhow!("presentation as sd-jwt: {e}")))?;
        Ok(signed)
    }

    /// The public key of this service's `kid`: the current key, or an earlier one that
    /// identity still trusts.
    async fn key_of(&self, kid: &str) -> Result<VerifyingKey, (Outcome, String)> {
        let key = if kid == self.key.kid() {
            Some(self.key.verifying_key())
        } else if let Some(directory) = &self.earlier_keys {
            directory
                .key(&code::issuer_id(self.region), kid, self.clock.now())
                .await
        } else {
            None
        };
        key.ok_or_else(|| {
            (
                Outcome::UnknownIssuer,
                format!("signed by key '{kid}', not by this service"),
            )
        })
    }

    /// Opens `text` — QR text, or the SD-JWT form of a presentation — as a credential
    /// signed by this service (by its current key, or by an earlier one that identity
    /// still trusts).
    async fn open(&self, text: &str) -> Result<Credential, (Outcome, String)> {
        let credential = if sd_jwt::looks_like_sd_jwt(text) {
            self.open_sd_jwt(text).await?
        } else {
            let envelope = from_qr(text)
                .map_err(|e| (Outcome::Malformed, format!("not a credential QR code: {e}")))?;
            let key = self.key_of(&envelope.kid).await?;
            check_signature(Context::Credential, &envelope, &key).map_err(|e| {
                (
                    Outcome::BadSignature,
                    format!("the signature does not match: {e}"),
                )
            })?;
            Credential::decode(envelope.payload.as_slice()).map_err(|_| {
                (
                    Outcome::Malformed,
                    "the signed payload is not a credential".into(),
                )
            })?
        };
        if credential.issuer != code::issuer_id(self.region) {
            return Err((
                Outcome::UnknownIssuer,
                format!("issued by '{}', not by this service", credential.issuer),
            ));
        }
        Ok(credential)
    }

    /// The SD-JWT form: issuer signature, then every disclosure against the signed
    /// digests (a disclosure the issuer did not sign is a bad signature), then the
    /// presentation it carries.
    async fn open_sd_jwt(&self, text: &str) -> Result<Credential, (Outcome, String)> {
        let refused = |e: sd_jwt::SdJwtError| {
            let outcome = if e.is_tampering() {
                Outcome::BadSignature
            } else {
                Outcome::Malformed
            };
            (outcome, format!("the SD-JWT was refused: {e}"))
        };
        let parsed = sd_jwt::parse(text).map_err(refused)?;
        let key = self.key_of(parsed.kid()).await?;
        parsed
            .verify(&key)
            .and_then(|d| d.credential())
            .map_err(refused)
    }

    fn answer(
        &self,
        outcome: Outcome,
        detail: String,
        credential: Option<Credential>,
        license: Option<LicenseView>,
    ) -> Checked {
        Checked {
            outcome,
            detail,
            credential,
            license,
            checked_at: self.clock.now(),
            permits: Permits::NotAsked,
        }
    }

    /// Checks a presentation, in its QR or SD-JWT form: signature, window, live license
    /// status, then single use (one nonce for both forms).
    /// The nonce is recorded only for a presentation that is otherwise valid, so a
    /// refused scan does not burn it. `Err` only when the nonce record cannot answer.
    #[tracing::instrument(skip_all)]
    pub async fn verify_presentation(&self, qr: &str) -> Result<Checked, EntcodeError> {
        if qr.trim().is_empty() {
            return Err(EntcodeError::Invalid {
                reason: "QR_TEXT_REQUIRED",
                message: "the presentation's QR text is required".into(),
                field: "qr_text",
            });
        }
        let credential = match self.open(qr).await {
            Ok(c) => c,
            Err((o, d)) => return Ok(self.answer(o, d, None, None)),
        };
        if credential.kind != CredentialKind::Presentation as i32 {
            return Ok(self.answer(
                Outcome::Malformed,
                "this is not a presentation".into(),
                Some(credential),
                None,
            ));
        }
        self.check_presentation(credential).await
    }

    async fn check_presentation(&self, credential: Credential) -> Result<Checked, EntcodeError> {
        let now = self.clock.now();
        if now > credential.not_after.saturating_add(SKEW_SECS) {
            return Ok(self.answer(
                Outcome::Expired,
                "the presentation has expired; ask the enterprise for a new one".into(),
                Some(credential),
                None,
            ));
        }
        if now.saturating_add(SKEW_SECS) < credential.not_before {
            return Ok(self.answer(
                Outcome::NotYetValid,
                "the presentation is not valid yet".into(),
                Some(credential),
                None,
            ));
        }
        let view = match self.license.current(&credential.subject).await {
            Ok(v) => v,
            Err(EntcodeError::EnterpriseNotFound(_)) => {
                return Ok(self.answer(
                    Outcome::LicenseNotActive,
                    "the enterprise is not in the register".into(),
                    Some(credential),
                    None,
                ));
            }
            Err(e) => return Err(e),
        };
        if let Some(state) = view.withdrawn {
            return Ok(self.answer(
                Outcome::LicenseNotActive,
                format!("the enterprise's license is {state}"),
                Some(credential),
                Some(view),
            ));
        }
        let ttl = credential
            .not_after
            .saturating_add(SKEW_SECS)
            .saturating_sub(now)
            .max(1);
        // The verify gateway records uses under the same key (`nonce/<issuer>/<hex>`):
        // with one Redis and one key prefix, a presentation is single-use across the
        // gateway, VerifyPresentation and the scan page together.
        let key = format!("nonce/{}/{}", credential.issuer, hex(&credential.nonce));
        let first = self
            .cache
            .set_if_absent(
                &key,
                now.to_string().as_bytes(),
                Duration::from_secs(u64::try_from(ttl).unwrap_or(1)),
            )
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the used-nonce record is unreachable; refusing");
                EntcodeError::NonceStoreUnavailable
            })?;
        if !first {
            return Ok(self.answer(
                Outcome::AlreadyUsed,
                "this presentation was already used; each is good for one check".into(),
                Some(credential),
                Some(view),
            ));
        }
        Ok(self.answer(
            Outcome::Valid,
            "valid: signed by the enterprise-code service, in time, first use, license in force"
                .into(),
            Some(credential),
            Some(view),
        ))
    }

    /// What the scan page shows for `qr`: a presentation is verified (and used up); a
    /// stable code is resolved to the enterprise's current license.
    pub async fn scan(&self, qr: &str) -> Result<Checked, EntcodeError> {
        let credential = match self.open(qr).await {
            Ok(c) => c,
            Err((o, d)) => return Ok(self.answer(o, d, None, None)),
        };
        match CredentialKind::try_from(credential.kind) {
            Ok(CredentialKind::Presentation) => self.check_presentation(credential).await,
            Ok(CredentialKind::EnterpriseCode) => {
                let view = match self.license.current(&credential.subject).await {
                    Ok(v) => v,
                    Err(EntcodeError::EnterpriseNotFound(_)) => {
                        return Ok(self.answer(
                            Outcome::LicenseNotActive,
                            "the enterprise is not in the register".into(),
                            Some(credential),
                            None,
                        ));
                    }
                    Err(e) => return Err(e),
                };
                Ok(match view.withdrawn {
                    Some(state) => self.answer(
                        Outcome::LicenseNotActive,
                        format!("the enterprise's license is {state}: the code is withdrawn"),
                        Some(credential),
                        Some(view),
                    ),
                    None => {
                        let permits = self.permits(&view.uscc).await;
                        Checked {
                            permits,
                            ..self.answer(
                                Outcome::Valid,
                                "valid enterprise code; the license is in force".into(),
                                Some(credential),
                                Some(view),
                            )
                        }
                    }
                })
            }
            _ => Ok(self.answer(
                Outcome::Malformed,
                "not an enterprise code or presentation".into(),
                Some(credential),
                None,
            )),
        }
    }
}

fn parse_uscc(text: &str) -> Result<String, EntcodeError> {
    Uscc::parse(text)
        .map(|u| u.as_str().to_string())
        .map_err(|e| EntcodeError::Invalid {
            reason: e.reason(),
            message: e.to_string(),
            field: "uscc",
        })
}

/// An enterprise acts only for itself; other principals pass (their scopes decided).
fn own(principal: &Principal, uscc: &str) -> Result<(), EntcodeError> {
    if principal.kind == PrincipalKind::Enterprise
        && principal.organization.as_deref() != Some(uscc)
    {
        return Err(EntcodeError::NotYours(uscc.to_string()));
    }
    Ok(())
}

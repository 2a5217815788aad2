//! The license service's operations: authorise, validate, then the store, then the
//! answer. The gRPC and HTTP adapters in `api` call these and only convert.

use std::sync::Arc;

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_credential::{
    VcOptions,
    envelope::sign_credential,
    keys::IssuerKey,
    vcjwt::{status_purpose_name, to_vc_jwt},
};
use credmesh_proto::{credential::v1::StatusPurpose, prost::Message as _, status::FieldViolation};
use credmesh_runtime::{
    Clock,
    status_lists::{ListRef, StatusLists},
};
use credmesh_store::{
    audit::AuditRecord,
    idempotency::{IdempotencyKey, Outcome},
};
use credmesh_uscc::{Region, Uscc};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::{
    domain::{
        authority::Authorities,
        credential::{self as cred, LIST_SIZE, Placement},
        license::{self, AmendInput, Content, EstablishInput, Rules},
    },
    error::LicenseError,
    keys::KeyRegistration,
    store::{
        Actor, Change, EncodeResponse, EnterpriseRecord, Issued, LicenseStore, STANDING_PURPOSE,
        Signed, State, VersionIssuer, VersionRecord,
    },
};

/// How long a published status list is good for (its VC-JWT `validUntil`); verifiers
/// refuse to call a credential valid from status data older than their bound (10
/// minutes by default), so the service re-signs far more often than this.
pub const STATUS_LIST_VALIDITY_SECS: i64 = 600;

/// China Standard Time, in which license dates are written.
const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Who is calling: the validated token's principal and the request's trace id.
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
            organization: self.principal.organization.as_deref(),
            trace_id: self.trace_id,
        }
    }
}

/// Signs license versions with the service key.
pub struct Signer {
    region: Region,
    key: IssuerKey,
    type_code: String,
    authorities: Arc<Authorities>,
    options: VcOptions,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.key.kid())
            .field("type_code", &self.type_code)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `region` with `key`, making identifiers of license type `type_code`.
    pub fn new(
        region: Region,
        key: IssuerKey,
        type_code: String,
        authorities: Arc<Authorities>,
        public_url: &str,
    ) -> Self {
        Signer {
            region,
            key,
            type_code,
            authorities,
            options: VcOptions {
                status_base_url: public_url.to_string(),
            },
        }
    }

    /// The key.
    pub fn key(&self) -> &IssuerKey {
        &self.key
    }

    fn authority_name(&self, code: &str) -> String {
        self.authorities
            .get(code)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| code.to_string())
    }
}

impl VersionIssuer for Signer {
    fn license_id(
        &self,
        authority: &Uscc,
        serial: &str,
        version: u32,
    ) -> Result<String, LicenseError> {
        cred::license_id(&self.type_code, authority, serial, version)
            .map(|id| id.as_str().to_string())
            .map_err(|e| LicenseError::Internal(anyhow::anyhow!("building a license id: {e}")))
    }

    fn sign(&self, uscc: &Uscc, content: &Content, at: &Placement<'_>) -> Signed {
        let name = self.authority_name(content.authority.as_str());
        let credential = cred::credential(self.region, uscc, content, &name, at);
        let envelope = sign_credential(&credential, &self.key);
        Signed {
            kid: self.key.kid().to_string(),
            envelope: envelope.encode_to_vec(),
            vc_jwt: to_vc_jwt(&credential, &self.key, &self.options),
        }
    }
}

pub use credmesh_runtime::status_lists::PublishedList;

/// The license service.
pub struct License {
    pub(crate) region: Region,
    pub(crate) store: Arc<dyn LicenseStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: Signer,
    pub(crate) authorities: Arc<Authorities>,
    pub(crate) registration: Arc<KeyRegistration>,
    pub(crate) public_url: String,
    /// The signed status lists, signed again only when changed (a list's version is
    /// its count of set bits: bits are only ever set).
    lists: StatusLists,
    /// The enterprises' standing lists (`SH/license/e<n>`), signed the same way.
    standing: StatusLists,
    /// Where issued and revoked licenses are counted, once [`License::export_metrics`] ran.
    metrics: std::sync::OnceLock<credmesh_telemetry::metrics::CredentialMetrics>,
}

impl std::fmt::Debug for License {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("License")
            .field("region", &self.region)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// The credential kind label of licenses in metrics.
const KIND: &str = "business_license";

impl License {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        region: Region,
        store: Arc<dyn LicenseStore>,
        clock: Arc<dyn Clock>,
        signer: Signer,
        authorities: Arc<Authorities>,
        registration: Arc<KeyRegistration>,
        public_url: String,
        status_refresh_secs: i64,
    ) -> Self {
        License {
            region,
            store,
            clock,
            signer,
            authorities,
            registration,
            public_url,
            lists: StatusLists::new(
                cred::issuer_id(region),
                LIST_SIZE,
                STATUS_LIST_VALIDITY_SECS,
                status_refresh_secs,
            ),
            standing: StatusLists::new(
                cred::issuer_id(region),
                LIST_SIZE,
                STATUS_LIST_VALIDITY_SECS,
                status_refresh_secs,
            ),
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// Counts issued and revoked licenses in `metrics`
    /// (`credmesh_credentials_issued_total{kind="business_license"}` and `…_revoked_total`).
    pub fn export_metrics(&self, metrics: &credmesh_telemetry::metrics::Metrics) {
        let _ = self.metrics.set(metrics.credentials().clone());
    }

    fn count(&self, issued: bool) {
        if let Some(m) = self.metrics.get() {
            if issued {
                m.issued(KIND);
            } else {
                m.revoked(KIND);
            }
        }
    }

    /// The region this deployment serves.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The registration state of the signing key.
    pub fn registration(&self) -> &Arc<KeyRegistration> {
        &self.registration
    }

    /// The signing key's id.
    pub fn kid(&self) -> &str {
        self.signer.key.kid()
    }

    /// The name of an authority, or its code when unknown.
    pub fn authority_name(&self, code: &str) -> String {
        self.signer.authority_name(code)
    }

    /// The known registration authorities.
    pub fn authorities(&self) -> &Authorities {
        &self.authorities
    }

    /// Today in China Standard Time.
    pub fn today(&self) -> Date {
        OffsetDateTime::from_unix_timestamp(self.clock.now())
            .map(|t| t.to_offset(CST).date())
            .unwrap_or(Date::MIN)
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            region: self.region,
            authorities: &self.authorities,
            today: self.today(),
        }
    }

    fn ready(&self) -> Result<(), LicenseError> {
        self.registration
            .check()
            .map_err(LicenseError::KeyNotRegistered)
    }

    /// Whether `principal` may change licenses registered by `authority`: operators
    /// may; a department may for its own authority, a municipal bureau for every
    /// authority of its region.
    fn may_issue_for(&self, principal: &Principal, authority: &Uscc) -> Result<(), LicenseError> {
        let allowed = match principal.kind {
            PrincipalKind::Operator => true,
            PrincipalKind::Department => principal
                .organization
                .as_deref()
                .and_then(|o| self.authorities.get(o))
                .is_some_and(|own| {
                    own.uscc == *authority
                        || (own.municipal && own.uscc.region() == authority.region())
                }),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(LicenseError::NotRegistrationAuthority {
                client: principal.client_id.clone(),
                organization: principal
                    .organization
                    .clone()
                    .unwrap_or_else(|| "no organisation".into()),
                authority: authority.to_string(),
            })
        }
    }

    /// Enterprises read only their own register entry.
    fn may_read(&self, principal: &Principal, uscc: &str) -> Result<(), LicenseError> {
        if principal.kind == PrincipalKind::Enterprise
            && principal.organization.as_deref() != Some(uscc)
        {
            return Err(LicenseError::NotOwnEnterprise);
        }
        Ok(())
    }

    /// Establishes an enterprise with version 1 of its license.
    pub async fn establish(
        &self,
        caller: Caller<'_>,
        input: &EstablishInput<'_>,
        key: Option<&IdempotencyKey>,
        encode: EncodeResponse<'_>,
    ) -> Result<Outcome<Issued>, LicenseError> {
        self.ready()?;
        let (uscc, content) = license::validate_establishment(input, &self.rules())?;
        self.may_issue_for(caller.principal, &content.authority)?;
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.clock.now(),
        };
        let outcome = self
            .store
            .establish(&uscc, &content, &self.signer, change)
            .await?;
        if let Outcome::Done(i) = &outcome {
            tracing::info!(uscc = %uscc, license_id = %i.version.license_id, authority = %content.authority, "enterprise established");
            self.count(true);
        }
        Ok(outcome)
    }

    /// Reads a register entry for a change, checking the caller may change it.
    async fn for_change(&self, caller: Caller<'_>, uscc: &str) -> Result<String, LicenseError> {
        let code = parse_uscc(uscc)?;
        let e = self
            .store
            .enterprise(code.as_str())
            .await?
            .ok_or_else(|| LicenseError::EnterpriseNotFound(code.to_string()))?;
        let authority = Uscc::parse(&e.authority).map_err(|_| {
            LicenseError::Internal(anyhow::anyhow!("stored authority of {uscc} is invalid"))
        })?;
        self.may_issue_for(caller.principal, &authority)?;
        Ok(code.to_string())
    }

    /// Amends a license: the next version with the changed fields.
    #[allow(clippy::too_many_arguments)]
    pub async fn amend(
        &self,
        caller: Caller<'_>,
        uscc: &str,
        expected_version: u32,
        input: &AmendInput<'_>,
        reason: &str,
        key: Option<&IdempotencyKey>,
        encode: EncodeResponse<'_>,
    ) -> Result<Outcome<Issued>, LicenseError> {
        self.ready()?;
        let reason = license::reason(reason, false)?;
        let uscc = self.for_change(caller, uscc).await?;
        let rules = self.rules();
        let plan = |current: &VersionRecord| {
            license::amend(&current.content, input, &rules).map_err(LicenseError::from)
        };
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.clock.now(),
        };
        let outcome = self
            .store
            .amend(
                &uscc,
                expected_version,
                &plan,
                &reason,
                &self.signer,
                change,
            )
            .await?;
        if let Outcome::Done(i) = &outcome {
            tracing::info!(uscc = %uscc, version = i.version.version, license_id = %i.version.license_id, "license amended");
            self.count(true);
        }
        Ok(outcome)
    }

    /// Deregisters an enterprise (`State::Deregistered`) or revokes its license
    /// (`State::Revoked`).
    #[allow(clippy::too_many_arguments)]
    pub async fn close(
        &self,
        caller: Caller<'_>,
        uscc: &str,
        closing: State,
        expected_version: u32,
        reason: &str,
        key: Option<&IdempotencyKey>,
        encode: EncodeResponse<'_>,
    ) -> Result<Outcome<Issued>, LicenseError> {
        let reason = license::reason(reason, true)?;
        let uscc = self.for_change(caller, uscc).await?;
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.clock.now(),
        };
        let outcome = self
            .store
            .close(&uscc, expected_version, closing, &reason, change)
            .await?;
        if let Outcome::Done(i) = &outcome {
            tracing::warn!(uscc = %uscc, state = closing.as_str(), license_id = %i.version.license_id, "license revoked");
            self.count(false);
        }
        Ok(outcome)
    }

    /// An enterprise and its current version.
    pub async fn license(
        &self,
        principal: &Principal,
        uscc: &str,
    ) -> Result<(EnterpriseRecord, VersionRecord), LicenseError> {
        let code = parse_uscc(uscc)?;
        self.may_read(principal, code.as_str())?;
        let e = self.enterprise(code.as_str()).await?;
        let v = self
            .store
            .version(&e.uscc, e.current_version)
            .await?
            .ok_or_else(|| {
                LicenseError::Internal(anyhow::anyhow!("current version of {code} missing"))
            })?;
        Ok((e, v))
    }

    /// One register entry, or NOT_FOUND.
    pub async fn enterprise(&self, uscc: &str) -> Result<EnterpriseRecord, LicenseError> {
        self.store
            .enterprise(uscc)
            .await?
            .ok_or_else(|| LicenseError::EnterpriseNotFound(uscc.to_string()))
    }

    /// One version of an enterprise's license.
    pub async fn version(
        &self,
        principal: &Principal,
        uscc: &str,
        version: u32,
    ) -> Result<(EnterpriseRecord, VersionRecord), LicenseError> {
        let code = parse_uscc(uscc)?;
        if !(1..=999).contains(&version) {
            return Err(LicenseError::Invalid {
                reason: "VERSION_INVALID",
                message: format!("license versions run from 1 to 999; {version} is not one"),
                violations: vec![FieldViolation::new("version", "a version from 1 to 999")],
            });
        }
        self.may_read(principal, code.as_str())?;
        let e = self.enterprise(code.as_str()).await?;
        let v = self
            .store
            .version(code.as_str(), version)
            .await?
            .ok_or_else(|| LicenseError::VersionNotFound {
                uscc: code.to_string(),
                version,
            })?;
        Ok((e, v))
    }

    /// A page of an enterprise's versions after `after`.
    pub async fn versions(
        &self,
        principal: &Principal,
        uscc: &str,
        after: u32,
        limit: u32,
    ) -> Result<(EnterpriseRecord, Vec<VersionRecord>), LicenseError> {
        let code = parse_uscc(uscc)?;
        self.may_read(principal, code.as_str())?;
        let e = self.enterprise(code.as_str()).await?;
        let v = self.store.versions(code.as_str(), after, limit).await?;
        Ok((e, v))
    }

    /// A page of an enterprise's audit history after entry `after`.
    pub async fn history(
        &self,
        principal: &Principal,
        uscc: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, LicenseError> {
        let code = parse_uscc(uscc)?;
        self.may_read(principal, code.as_str())?;
        self.enterprise(code.as_str()).await?;
        self.store.history(code.as_str(), after, limit).await
    }

    /// A page of the register.
    pub async fn enterprises(
        &self,
        principal: &Principal,
        after: &str,
        limit: u32,
        state: Option<State>,
        authority: Option<&str>,
    ) -> Result<Vec<EnterpriseRecord>, LicenseError> {
        if principal.kind == PrincipalKind::Enterprise {
            return Err(LicenseError::NotOwnEnterprise);
        }
        self.store.enterprises(after, limit, state, authority).await
    }

    /// The standing entry of the enterprise whose version `v` is: the entry of its first
    /// version, in the standing list of the same number (see `cred::standing_list_id`).
    pub async fn standing(
        &self,
        v: &VersionRecord,
    ) -> Result<credmesh_proto::credential::v1::StatusReference, LicenseError> {
        let (list_no, index) = if v.version == 1 {
            (v.list_no, v.list_index)
        } else {
            let first = self
                .store
                .version(v.uscc.as_str(), 1)
                .await?
                .ok_or_else(|| {
                    LicenseError::Internal(anyhow::anyhow!("{} has no version 1", v.uscc))
                })?;
            (first.list_no, first.list_index)
        };
        Ok(credmesh_proto::credential::v1::StatusReference {
            list_id: cred::standing_list_id(self.region, list_no),
            index,
        })
    }

    /// The public URL of a status list, as credentials name it.
    pub fn status_url(&self, list_id: &str, purpose: &str) -> String {
        format!(
            "{}/v1/status/{list_id}/{purpose}",
            self.public_url.trim_end_matches('/')
        )
    }

    /// A status list, signed by the current key. Re-signed only when a bit changed, the
    /// key changed, or `CREDMESH_STATUS_LIST_REFRESH_SECONDS` passed (so its
    /// `updated_at` stays fresh for verifiers), never per request.
    pub async fn status_list(
        &self,
        list_id: &str,
        purpose: i32,
    ) -> Result<Arc<PublishedList>, LicenseError> {
        let not_found = || LicenseError::StatusListNotFound(list_id.chars().take(64).collect());
        let kind = cred::parse_list_kind(self.region, list_id).ok_or_else(not_found)?;
        let purpose_name = status_purpose_name(purpose).ok_or_else(|| LicenseError::Invalid {
            reason: "STATUS_PURPOSE_INVALID",
            message: "the purpose is revocation, suspension or superseded".into(),
            violations: vec![credmesh_proto::status::FieldViolation::new(
                "purpose",
                "revocation, suspension or superseded",
            )],
        })?;
        // A standing list holds closures as revocations; it suspends and supersedes nothing.
        let (n, lists, stored) = match kind {
            cred::ListKind::Versions(n) => (n, &self.lists, Some(purpose)),
            cred::ListKind::Standing(n) => (
                n,
                &self.standing,
                (purpose == StatusPurpose::Revocation as i32).then_some(STANDING_PURPOSE),
            ),
        };
        let allocated = self.store.allocated_entries().await?;
        if n != 0 && n.saturating_mul(LIST_SIZE) >= allocated {
            return Err(not_found());
        }
        let count = match stored {
            Some(p) => self.store.status_count(n, p).await?,
            None => 0,
        };
        let now = self.clock.now();
        let key = &self.signer.key;
        if let Some(signed) = lists.signed(n, purpose, count, key.kid(), now) {
            return Ok(signed);
        }
        let indexes = match stored {
            Some(p) => self.store.status_indexes(n, p).await?,
            None => Vec::new(),
        };
        let list = ListRef {
            list_id,
            n,
            purpose,
            url: &self.status_url(list_id, purpose_name),
        };
        lists
            .sign(list, indexes.len() as u64, &indexes, key, now)
            .map_err(LicenseError::Internal)
    }
}

/// Parses an enterprise code named in a request, passing the USCC reason through.
pub fn parse_uscc(uscc: &str) -> Result<Uscc, LicenseError> {
    Uscc::parse(uscc).map_err(|e| LicenseError::Invalid {
        reason: e.reason(),
        message: format!("the unified social credit code is invalid: {e}"),
        violations: vec![credmesh_proto::status::FieldViolation::new(
            "uscc",
            e.to_string(),
        )],
    })
}

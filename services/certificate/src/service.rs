//! The certificate service's operations: authorise, validate, check the license (and
//! the credit grade), then the store, then the answer. The gRPC and HTTP adapters in
//! `api` call these and only convert.

use std::sync::Arc;

use credmesh_auth::{Principal, PrincipalKind};
use credmesh_credential::{
    VcOptions,
    envelope::sign_credential,
    hex,
    keys::IssuerKey,
    vcjwt::{status_purpose_name, to_vc_jwt},
};
use credmesh_proto::{
    credential::v1::{DisputeNotice, DisputedCredential, Envelope},
    prost::Message as _,
};
use credmesh_runtime::{
    Clock,
    status_lists::{ListRef, StatusLists},
};
use credmesh_store::idempotency::{IdempotencyKey, Outcome};
use credmesh_uscc::{Region, Uscc};
use sha2::{Digest as _, Sha256};
use time::Date;

use crate::{
    credit::{CreditGrade, CreditGrades},
    domain::{
        self,
        calendar::{WorkingCalendar, cst_date, cst_end_after, cst_start},
        credential::{self as cred, LIST_SIZE, Placement},
        dispute::{self, ACCEPT_WORKING_DAYS, RESOLVE_WORKING_DAYS},
        types::{CertType, Values},
    },
    error::CertificateError,
    keys::KeyRegistration,
    license::{ActiveLicense, LicenseCheck},
    store::{
        Actor, CertRecord, CertificateStore, Change, CommitmentRecord, DisputeQuery, DisputeRecord,
        DisputeScope, NewCertificate, Resolve, Signed, Transition, Validity, VersionSigner,
    },
};

/// How long a published status list is good for (its VC-JWT `validUntil`).
pub const STATUS_LIST_VALIDITY_SECS: i64 = 600;

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

/// The encoder of an idempotent answer.
pub type Encode<'a, T> = &'a (dyn Fn(&T) -> Vec<u8> + Send + Sync);

/// Signs certificate versions with the service key.
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

impl VersionSigner for Signer {
    fn certificate_id(
        &self,
        t: &CertType,
        serial: &str,
        version: u32,
    ) -> Result<String, CertificateError> {
        cred::certificate_id(&t.type_code, &t.department, serial, version)
            .map(|id| id.as_str().to_string())
            .map_err(|e| {
                CertificateError::Internal(anyhow::anyhow!("building a certificate id: {e}"))
            })
    }

    fn sign(
        &self,
        t: &CertType,
        holder: &str,
        holder_name: &str,
        values: &Values,
        at: &Placement<'_>,
    ) -> Signed {
        let credential = cred::credential(self.region, t, holder, holder_name, values, at);
        let envelope = sign_credential(&credential, &self.key);
        Signed {
            kid: self.key.kid().to_string(),
            envelope: envelope.encode_to_vec(),
            vc_jwt: to_vc_jwt(&credential, &self.key, &self.options),
        }
    }
}

pub use credmesh_runtime::status_lists::PublishedList;

/// What the service is built from besides its store.
#[derive(Debug)]
pub struct Parts {
    /// The region.
    pub region: Region,
    /// The signer.
    pub signer: Signer,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The signing key's registration.
    pub registration: Arc<KeyRegistration>,
    /// License verification.
    pub license: Arc<dyn LicenseCheck>,
    /// Credit grades.
    pub credit: Arc<dyn CreditGrades>,
    /// The working-day calendar.
    pub calendar: WorkingCalendar,
    /// The public HTTP base URL.
    pub public_url: String,
    /// How long an unchanged status list is handed out before it is signed again.
    pub status_refresh_secs: i64,
}

/// The certificate service.
#[derive(Debug)]
pub struct Certificates {
    store: Arc<dyn CertificateStore>,
    parts: Parts,
    /// The signed status lists, signed again only when changed (every list's version
    /// is the service's count of status changes: suspension can clear a bit).
    lists: StatusLists,
    /// Where issued and revoked certificates are counted, once exported.
    counted: std::sync::OnceLock<credmesh_telemetry::metrics::CredentialMetrics>,
    /// The dispute notice last signed, handed out again while it still says the same.
    notice: std::sync::Mutex<Option<SignedNotice>>,
}

/// A signed dispute notice and what it was signed from.
#[derive(Debug)]
struct SignedNotice {
    credentials: Vec<(String, Vec<String>)>,
    kid: String,
    signed_at: i64,
    envelope: Envelope,
}

fn parse_uscc(uscc: &str, field: &str) -> Result<Uscc, CertificateError> {
    Uscc::parse(uscc).map_err(|e| {
        CertificateError::from(domain::invalid(
            e.reason(),
            field,
            format!("the unified social credit code is invalid: {e}"),
        ))
    })
}

impl Certificates {
    /// The scan page's URL for `qr` under the deployment's public URL; empty without one.
    pub fn scan_url(&self, qr: &str) -> String {
        credmesh_credential::scan_url_at(&self.parts.public_url, qr)
    }

    /// The service over `store`.
    pub fn new(store: Arc<dyn CertificateStore>, parts: Parts) -> Self {
        let lists = StatusLists::new(
            cred::issuer_id(parts.region),
            LIST_SIZE,
            STATUS_LIST_VALIDITY_SECS,
            parts.status_refresh_secs,
        );
        Certificates {
            store,
            parts,
            lists,
            counted: std::sync::OnceLock::new(),
            notice: std::sync::Mutex::new(None),
        }
    }

    /// Counts a certificate signed (`issued`) or revoked or suspended.
    fn count(&self, issued: bool) {
        if let Some(m) = self.counted.get() {
            if issued {
                m.issued("certificate");
            } else {
                m.revoked("certificate");
            }
        }
    }

    /// The region.
    pub fn region(&self) -> Region {
        self.parts.region
    }

    /// Now, from the service's clock.
    pub fn now(&self) -> i64 {
        self.parts.clock.now()
    }

    /// The signing key's id.
    pub fn kid(&self) -> &str {
        self.parts.signer.key.kid()
    }

    /// The store (tests and `credmesh dev` read it).
    pub fn store(&self) -> &Arc<dyn CertificateStore> {
        &self.store
    }

    fn ready(&self) -> Result<(), CertificateError> {
        self.parts
            .registration
            .check()
            .map_err(CertificateError::KeyNotRegistered)
    }

    /// Registers the built-in types that are not registered yet.
    pub async fn seed_types(&self) -> Result<(), CertificateError> {
        let actor = Actor {
            client_id: "certificate",
            kind: "service",
            organization: None,
            trace_id: "",
        };
        for t in domain::types::seeds() {
            if self.store.cert_type(&t.type_code).await?.is_none() {
                let change = Change {
                    actor,
                    key: None,
                    encode: &|_: &CertType| Vec::new(),
                    now: self.now(),
                };
                self.store.put_type(&t, change).await?;
            }
        }
        Ok(())
    }

    /// The one rule of who changes a certificate: a department acting for the issuing
    /// department.
    fn is_issuer(&self, principal: &Principal, department: &str) -> Result<(), CertificateError> {
        if principal.kind == PrincipalKind::Department
            && principal.organization.as_deref() == Some(department)
        {
            return Ok(());
        }
        Err(CertificateError::NotIssuingDepartment {
            client: principal.client_id.clone(),
            organization: principal
                .organization
                .clone()
                .unwrap_or_else(|| "no organisation".into()),
            department: department.to_string(),
        })
    }

    /// Enterprises act only for themselves.
    fn is_holder(&self, principal: &Principal, holder: &str) -> Result<(), CertificateError> {
        if principal.kind == PrincipalKind::Enterprise
            && principal.organization.as_deref() == Some(holder)
        {
            return Ok(());
        }
        Err(CertificateError::NotHolder {
            holder: holder.to_string(),
            organization: principal
                .organization
                .clone()
                .unwrap_or_else(|| principal.client_id.clone()),
        })
    }

    /// Enterprises read only their own.
    fn may_read(&self, principal: &Principal, holder: &str) -> Result<(), CertificateError> {
        if principal.kind == PrincipalKind::Enterprise {
            return self.is_holder(principal, holder);
        }
        Ok(())
    }

    /// Registers or replaces a type (operators).
    pub async fn register_type(
        &self,
        caller: Caller<'_>,
        t: &CertType,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, CertType>,
    ) -> Result<Outcome<CertType>, CertificateError> {
        t.validate()?;
        for (i, code) in t.bundles.iter().enumerate() {
            if self.store.cert_type(code).await?.is_none() {
                return Err(domain::invalid(
                    "BUNDLED_TYPE_UNKNOWN",
                    &format!("type.bundles[{i}]"),
                    format!("the bundled type '{code}' is not registered; register it first"),
                )
                .into());
            }
        }
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.now(),
        };
        self.store.put_type(t, change).await
    }

    /// A page of types.
    pub async fn types(&self, after: &str, limit: u32) -> Result<Vec<CertType>, CertificateError> {
        self.store.cert_types(after, limit).await
    }

    async fn cert_type(&self, code: &str) -> Result<CertType, CertificateError> {
        self.store
            .cert_type(code.trim())
            .await?
            .ok_or_else(|| CertificateError::TypeNotFound(code.to_string()))
    }

    fn validity(
        &self,
        t: &CertType,
        valid_from: &str,
        days: u32,
    ) -> Result<Validity, CertificateError> {
        let today = cst_date(self.now());
        let from = if valid_from.trim().is_empty() {
            today
        } else {
            Date::parse(
                valid_from.trim(),
                &time::format_description::well_known::Iso8601::DATE,
            )
            .map_err(|_| {
                domain::invalid(
                    "DATE_INVALID",
                    "valid_from",
                    "valid_from must be an ISO 8601 date such as 2026-03-01",
                )
            })?
        };
        let days = if days == 0 { t.validity_days } else { days };
        if days > 36_500 {
            return Err(domain::invalid(
                "VALIDITY_INVALID",
                "validity_days",
                "the validity must be at most 36500 days",
            )
            .into());
        }
        let (last, not_after) = cst_end_after(from, i64::from(days));
        Ok(Validity {
            valid_from: iso(from),
            valid_until: iso(last),
            not_before: cst_start(from).min(self.now()),
            not_after,
        })
    }

    /// Issues version 1 of a certificate (issuing department).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue(
        &self,
        caller: Caller<'_>,
        holder: &str,
        type_code: &str,
        fields: &[(String, String)],
        valid_from: &str,
        validity_days: u32,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError> {
        self.ready()?;
        let holder = parse_uscc(holder, "holder")?;
        let t = self.cert_type(type_code).await?;
        self.is_issuer(caller.principal, t.department.as_str())?;
        let values = t.validate_values(fields, "fields")?;
        let validity = self.validity(&t, valid_from, validity_days)?;
        let license = self.license(holder.as_str()).await?;
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.now(),
        };
        let new = NewCertificate {
            cert_type: &t,
            holder: holder.as_str(),
            holder_name: &license.name,
            values: &values,
            validity: &validity,
            commitment: None,
        };
        let outcome = self.store.issue(&new, &self.parts.signer, change).await?;
        if let Outcome::Done(c) = &outcome {
            tracing::info!(serial = %c.serial, holder = %c.holder, type_code = %c.type_code, license_id = %license.license_id, "certificate issued");
            self.count(true);
        }
        Ok(outcome)
    }

    async fn license(&self, holder: &str) -> Result<ActiveLicense, CertificateError> {
        let result = self
            .parts
            .license
            .active(holder)
            .await
            .map_err(CertificateError::from);
        if let Err(CertificateError::LicenseNotActive { reason, .. }) = &result {
            tracing::warn!(uscc = %holder, reason = *reason, "license check refused issuance");
        }
        result
    }

    /// Issues a certificate on the calling enterprise's commitment (告知承诺).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_on_commitment(
        &self,
        caller: Caller<'_>,
        holder: &str,
        type_code: &str,
        fields: &[(String, String)],
        statement: &str,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError> {
        self.ready()?;
        let holder = parse_uscc(holder, "holder")?;
        self.is_holder(caller.principal, holder.as_str())?;
        let t = self.cert_type(type_code).await?;
        let values = t.validate_values(fields, "fields")?;
        let statement = statement.trim();
        if statement.chars().count() < 10 || statement.chars().count() > 5000 {
            return Err(domain::invalid(
                "COMMITMENT_STATEMENT_INVALID",
                "statement",
                "the commitment statement must have 10 to 5000 characters",
            )
            .into());
        }
        let validity = self.validity(&t, "", 0)?;
        let license = self.license(holder.as_str()).await?;
        let grade = self
            .parts
            .credit
            .grade(holder.as_str())
            .await
            .map_err(|detail| CertificateError::LicenseUnavailable {
                uscc: holder.to_string(),
                detail: format!("the credit grade could not be read: {detail}"),
            })?;
        if grade == CreditGrade::D {
            tracing::warn!(uscc = %holder, grade = grade.as_str(), "commitment refused on credit grade");
            return Err(CertificateError::CreditGradeRefused {
                uscc: holder.to_string(),
                grade: grade.as_str().to_string(),
            });
        }
        let now = self.now();
        let commitment = CommitmentRecord {
            statement: statement.to_string(),
            statement_sha256: hex(&Sha256::digest(statement.as_bytes())),
            committed_by: caller.principal.client_id.clone(),
            committed_at: now,
            credit_grade: grade.as_str().to_string(),
        };
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now,
        };
        let new = NewCertificate {
            cert_type: &t,
            holder: holder.as_str(),
            holder_name: &license.name,
            values: &values,
            validity: &validity,
            commitment: Some(&commitment),
        };
        let outcome = self.store.issue(&new, &self.parts.signer, change).await?;
        if let Outcome::Done(_) = &outcome {
            self.count(true);
        }
        Ok(outcome)
    }

    async fn for_change(
        &self,
        caller: Caller<'_>,
        serial: &str,
    ) -> Result<CertRecord, CertificateError> {
        let cert = self.get(serial).await?;
        self.is_issuer(caller.principal, &cert.department)?;
        Ok(cert)
    }

    /// Suspends, reinstates, revokes or records a follow-up (issuing department).
    pub async fn transition(
        &self,
        caller: Caller<'_>,
        serial: &str,
        transition: Transition,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError> {
        let transition = match transition {
            Transition::Suspend(r) => Transition::Suspend(domain::reason(&r, "reason")?),
            Transition::Reinstate(r) => Transition::Reinstate(domain::reason(&r, "reason")?),
            Transition::Revoke(r) => Transition::Revoke(domain::reason(&r, "reason")?),
            Transition::FollowUp { compliant, finding } => Transition::FollowUp {
                compliant,
                finding: domain::reason(&finding, "finding")?,
            },
        };
        let cert = self.for_change(caller, serial).await?;
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.now(),
        };
        let outcome = self
            .store
            .transition(&cert.serial, &transition, change)
            .await?;
        if let Outcome::Done(c) = &outcome {
            tracing::info!(serial = %c.serial, state = c.state.as_str(), "certificate state changed");
            let withdrawn = match &transition {
                Transition::Suspend(_) | Transition::Revoke(_) => true,
                Transition::FollowUp { compliant, .. } => !compliant,
                Transition::Reinstate(_) => false,
            };
            if withdrawn {
                self.count(false);
            }
        }
        Ok(outcome)
    }

    /// Renews: the next version valid `validity_days` from today (issuing department;
    /// the license must still be active).
    pub async fn renew(
        &self,
        caller: Caller<'_>,
        serial: &str,
        validity_days: u32,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, CertRecord>,
    ) -> Result<Outcome<CertRecord>, CertificateError> {
        self.ready()?;
        let cert = self.for_change(caller, serial).await?;
        let t = self.cert_type(&cert.type_code).await?;
        let validity = self.validity(&t, "", validity_days)?;
        self.license(&cert.holder).await?;
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.now(),
        };
        let outcome = self
            .store
            .renew(&cert.serial, &t, &validity, &self.parts.signer, change)
            .await?;
        if let Outcome::Done(_) = &outcome {
            self.count(true);
        }
        Ok(outcome)
    }

    async fn get(&self, serial: &str) -> Result<CertRecord, CertificateError> {
        self.store
            .certificate(serial.trim())
            .await?
            .ok_or_else(|| CertificateError::CertificateNotFound(serial.to_string()))
    }

    /// One certificate, for a reader allowed to see it.
    pub async fn certificate(
        &self,
        principal: &Principal,
        serial: &str,
    ) -> Result<CertRecord, CertificateError> {
        let cert = self.get(serial).await?;
        self.may_read(principal, &cert.holder)?;
        Ok(cert)
    }

    /// A page of certificates; enterprises see only their own.
    pub async fn certificates(
        &self,
        principal: &Principal,
        holder: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CertRecord>, CertificateError> {
        let holder = if principal.kind == PrincipalKind::Enterprise {
            let own = principal.organization.clone().unwrap_or_default();
            if !holder.is_empty() && holder != own {
                return Err(CertificateError::NotHolder {
                    holder: holder.to_string(),
                    organization: own,
                });
            }
            own
        } else {
            holder.trim().to_string()
        };
        // A mistyped code is named as such, not answered "no certificates".
        if !holder.is_empty() {
            parse_uscc(&holder, "holder")?;
        }
        let filter = (!holder.is_empty()).then_some(holder.as_str());
        self.store.certificates(filter, after, limit).await
    }

    /// Files a data dispute (the holder).
    #[allow(clippy::too_many_arguments)]
    pub async fn file_dispute(
        &self,
        caller: Caller<'_>,
        serial: &str,
        fields: &[(String, String)],
        evidence: &[String],
        explanation: &str,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, DisputeRecord>,
    ) -> Result<Outcome<DisputeRecord>, CertificateError> {
        let cert = self.get(serial).await?;
        self.is_holder(caller.principal, &cert.holder)?;
        let t = self.cert_type(&cert.type_code).await?;
        let filing =
            dispute::validate_filing(&t, &cert.version.values, fields, evidence, explanation)?;
        let now = self.now();
        let accept_by = self.parts.calendar.deadline(now, ACCEPT_WORKING_DAYS);
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now,
        };
        let outcome = self
            .store
            .file_dispute(&cert.serial, &filing, accept_by, change)
            .await?;
        if let Outcome::Done(d) = &outcome {
            tracing::info!(dispute = %d.id, serial = %d.serial, "dispute filed");
        }
        Ok(outcome)
    }

    async fn dispute_for_issuer(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<DisputeRecord, CertificateError> {
        let d = self
            .store
            .dispute(id.trim())
            .await?
            .ok_or_else(|| CertificateError::DisputeNotFound(id.to_string()))?;
        self.is_issuer(caller.principal, &d.department)?;
        Ok(d)
    }

    /// Accepts a filed dispute (issuing department).
    pub async fn accept_dispute(
        &self,
        caller: Caller<'_>,
        id: &str,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, DisputeRecord>,
    ) -> Result<Outcome<DisputeRecord>, CertificateError> {
        let d = self.dispute_for_issuer(caller, id).await?;
        let now = self.now();
        let resolve_by = self.parts.calendar.deadline(now, RESOLVE_WORKING_DAYS);
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now,
        };
        self.store.accept_dispute(&d.id, resolve_by, change).await
    }

    /// Resolves an accepted dispute (issuing department).
    pub async fn resolve_dispute(
        &self,
        caller: Caller<'_>,
        id: &str,
        resolve: Resolve,
        key: Option<&IdempotencyKey>,
        encode: Encode<'_, (DisputeRecord, CertRecord)>,
    ) -> Result<Outcome<(DisputeRecord, CertRecord)>, CertificateError> {
        let resolve = match resolve {
            Resolve::Rejected(r) => Resolve::Rejected(domain::reason(&r, "reason")?),
            Resolve::Corrected(note) => Resolve::Corrected(note.trim().chars().take(500).collect()),
        };
        if matches!(resolve, Resolve::Corrected(_)) {
            self.ready()?;
        }
        let d = self.dispute_for_issuer(caller, id).await?;
        let cert = self.get(&d.serial).await?;
        let t = self.cert_type(&cert.type_code).await?;
        let change = Change {
            actor: caller.actor(),
            key,
            encode,
            now: self.now(),
        };
        let outcome = self
            .store
            .resolve_dispute(&d.id, &resolve, &t, &self.parts.signer, change)
            .await?;
        if let Outcome::Done((d, _)) = &outcome {
            tracing::info!(dispute = %d.id, state = d.state.as_str(), "dispute resolved");
            if d.state == crate::domain::dispute::DisputeState::Corrected {
                self.count(true);
            }
        }
        Ok(outcome)
    }

    /// A page of the disputes the caller may see, and how many of them are overdue.
    pub async fn disputes(
        &self,
        principal: &Principal,
        open_only: bool,
        overdue_only: bool,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<DisputeRecord>, u64), CertificateError> {
        let org = principal.organization.clone().unwrap_or_default();
        let scope = match principal.kind {
            PrincipalKind::Enterprise => DisputeScope::Holder(org),
            PrincipalKind::Department => DisputeScope::Department(org),
            _ => DisputeScope::All,
        };
        let now = self.now();
        let query = DisputeQuery {
            scope,
            open_only,
            overdue_at: if overdue_only { now } else { 0 },
            after: after.to_string(),
            limit,
        };
        self.store.disputes(&query, now).await
    }

    /// The public URL of a status list.
    pub fn status_url(&self, list_id: &str, purpose: &str) -> String {
        format!(
            "{}/v1/status/{list_id}/{purpose}",
            self.parts.public_url.trim_end_matches('/')
        )
    }

    /// A status list, signed by the current key; signed again only when a status
    /// changed, the key changed or the refresh interval passed.
    pub async fn status_list(
        &self,
        list_id: &str,
        purpose: i32,
    ) -> Result<Arc<PublishedList>, CertificateError> {
        let not_found = || CertificateError::StatusListNotFound(list_id.chars().take(64).collect());
        let n = cred::parse_list_id(self.parts.region, list_id).ok_or_else(not_found)?;
        let purpose_name = status_purpose_name(purpose).ok_or_else(|| {
            CertificateError::from(domain::invalid(
                "STATUS_PURPOSE_INVALID",
                "purpose",
                "the purpose is revocation, suspension or superseded",
            ))
        })?;
        let allocated = self.store.allocated_entries().await?;
        if n != 0 && n.saturating_mul(LIST_SIZE) >= allocated {
            return Err(not_found());
        }
        // Read before the bits: a change landing in between only makes this list
        // newer than its version says (it is signed again at the next request), never
        // older.
        let changes = self.store.status_changes().await?;
        let now = self.now();
        let key = &self.parts.signer.key;
        if let Some(signed) = self.lists.signed(n, purpose, changes, key.kid(), now) {
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
            .sign(list, changes, &indexes, key, now)
            .map_err(CertificateError::Internal)
    }
}

impl Certificates {
    /// The signed dispute notice: every credential of this issuer under an open
    /// dispute, with the disputed fields, signed with context
    /// "credmesh/dispute-notice/v1". Verifiers fetch it like a status list. It is signed
    /// again as soon as what it says changes, and otherwise once the status-list
    /// refresh interval has passed.
    pub async fn dispute_notice(&self) -> Result<Envelope, CertificateError> {
        let now = self.now();
        let credentials = self.store.disputed_credentials().await?;
        let key = &self.parts.signer.key;
        let mut held = self.notice.lock().unwrap_or_else(|p| p.into_inner());
        // The same notice while it says the same and is still current as a status list
        // would be: its bytes (and so its ETag) stay the same, and a dispute filed or
        // resolved is in the next one at once.
        if let Some(n) = held.as_ref()
            && n.credentials == credentials
            && self
                .lists
                .still_current(&n.kid, n.signed_at, key.kid(), now)
        {
            return Ok(n.envelope.clone());
        }
        let notice = DisputeNotice {
            issuer: cred::issuer_id(self.parts.region),
            updated_at: now,
            sequence: now as u64,
            credentials: credentials
                .iter()
                .map(|(credential_id, fields)| DisputedCredential {
                    credential_id: credential_id.clone(),
                    fields: fields.clone(),
                })
                .collect(),
        };
        let envelope = credmesh_credential::seal(
            credmesh_credential::Context::DisputeNotice,
            notice.encode_to_vec(),
            key,
        );
        *held = Some(SignedNotice {
            credentials,
            kid: key.kid().to_owned(),
            signed_at: now,
            envelope: envelope.clone(),
        });
        Ok(envelope)
    }
}

/// How often the dispute gauges are recomputed.
const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

impl Certificates {
    /// Exports `credmesh_certificate_disputes_open` and `…_overdue` (the names the Helm
    /// chart's alert and dashboard use) on `metrics`, recomputed from the database every
    /// 15 seconds by a task that ends when the service is dropped.
    pub fn export_metrics(
        self: &Arc<Self>,
        metrics: &credmesh_telemetry::metrics::Metrics,
    ) -> tokio::task::JoinHandle<()> {
        use credmesh_telemetry::names;
        use prometheus_client::metrics::gauge::Gauge;
        let _ = self.counted.set(metrics.credentials().clone());
        let open = Gauge::<i64>::default();
        let overdue = Gauge::<i64>::default();
        metrics.register(
            names::CERTIFICATE_DISPUTES_OPEN,
            "data disputes not yet resolved",
            open.clone(),
        );
        metrics.register(
            names::CERTIFICATE_DISPUTES_OVERDUE,
            "open data disputes past their deadline to accept or resolve",
            overdue.clone(),
        );
        let service = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(GAUGE_INTERVAL);
            loop {
                tick.tick().await;
                let Some(s) = service.upgrade() else { return };
                match s.store.dispute_counts(s.now()).await {
                    Ok((o, d)) => {
                        open.set(i64::try_from(o).unwrap_or(i64::MAX));
                        overdue.set(i64::try_from(d).unwrap_or(i64::MAX));
                    }
                    Err(e) => tracing::warn!(error = %e, "dispute gauges not updated"),
                }
            }
        })
    }
}

/// An ISO date.
pub fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

//! From a [`Verification`] to the partner's answer: the staleness bound applied to
//! trust data too, the "stale, N s old" flags, and disclosure minimised to what the
//! credential's kind allows.

use std::time::Duration;

use credmesh_credential::{Form, Outcome, Verification};
use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind, VerificationOutcome};
use credmesh_proto::verify::v1::{CredentialForm, DataAge, VerificationResult};

/// How old data may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Older than this never yields VALID.
    pub max_staleness: Duration,
    /// Older than this is reported as stale.
    pub fresh: Duration,
}

fn form(form: Option<Form>) -> CredentialForm {
    match form {
        Some(Form::Native) => CredentialForm::Native,
        Some(Form::Qr) => CredentialForm::Qr,
        Some(Form::VcJwt) => CredentialForm::VcJwt,
        Some(Form::SdJwt) => CredentialForm::SdJwt,
        None => CredentialForm::Unspecified,
    }
}

fn data_age(age: Option<Duration>, fresh: Duration) -> Option<DataAge> {
    Some(match age {
        None => DataAge::default(),
        Some(a) => DataAge {
            consulted: true,
            age_seconds: i64::try_from(a.as_secs()).unwrap_or(i64::MAX),
            stale: a > fresh,
        },
    })
}

/// True for claim names or values that carry a personal identity number, which never
/// leaves the region (DOMAIN.md, cross-border data negative list).
pub fn is_personal_id(claim: &Claim) -> bool {
    let name = claim.name.to_ascii_lowercase();
    if name.contains("id_number") || name.contains("id_card") || name.ends_with("_id_no") {
        return true;
    }
    looks_like_resident_id(&claim.value)
}

/// An 18-character PRC resident identity number with a valid ISO 7064 MOD 11-2 check.
fn looks_like_resident_id(value: &str) -> bool {
    let b = value.trim().as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17]
        .iter()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == check
}

/// What the partner may see of a credential: a presentation's claims are exactly its
/// scenario's (the enterprise-code service chose them); other kinds show their claims
/// minus personal identity numbers.
pub fn disclosed(credential: &Credential) -> Vec<Claim> {
    credential
        .claims
        .iter()
        .filter(|c| !is_personal_id(c))
        .cloned()
        .collect()
}

/// The partner answer for `v`, made at `now`.
pub fn to_result(v: &Verification, freshness: Freshness, now: i64) -> VerificationResult {
    let mut outcome = v.outcome;
    let mut reason = v.reason;
    let mut detail = v.detail.clone();
    // The credential library bounds status age; the gateway bounds trust age too, so a
    // key withdrawn by a partner that went dark is not trusted forever.
    if let Some(trust_age) = v.trust_age
        && trust_age > freshness.max_staleness
        && matches!(outcome, Outcome::Valid | Outcome::Suspended)
    {
        outcome = Outcome::StatusUnknown;
        reason = "TRUST_STALE";
        detail = format!(
            "The trust list of region {} is {} s old, above the {} s limit.",
            v.region.as_deref().unwrap_or("?"),
            trust_age.as_secs(),
            freshness.max_staleness.as_secs()
        );
    }
    let trust = data_age(v.trust_age, freshness.fresh);
    let status = data_age(v.status_age, freshness.fresh);
    if outcome == Outcome::Valid {
        let oldest = [&trust, &status]
            .into_iter()
            .flatten()
            .filter(|a| a.stale)
            .map(|a| a.age_seconds)
            .max();
        if let Some(age) = oldest {
            detail = format!("{detail} Stale: answered from cached data {age} s old.");
        }
    }
    let mut result = VerificationResult {
        outcome: outcome.to_proto() as i32,
        superseded: matches!(outcome, Outcome::Revoked { superseded: true }),
        reason: reason.to_owned(),
        detail,
        form: form(v.form) as i32,
        issuer: v.issuer.clone().unwrap_or_default(),
        region: v.region.clone().unwrap_or_default(),
        trust,
        status,
        verified_at: now,
        ..Default::default()
    };
    if let Some(c) = &v.credential {
        result.credential_id = c.id.clone();
        result.kind = c.kind;
        result.subject = c.subject.clone();
        result.not_before = c.not_before;
        result.not_after = c.not_after;
        result.version = c.version;
        result.disclosed = disclosed(c);
    }
    result
}

/// Whether an answer may be reused from the result cache for `ttl` more seconds: only
/// answers that cannot turn into VALID wrongly while cached. Answers that depend on
/// status data are cached only while that data stays within the bound for the whole TTL.
pub fn cacheable(result: &VerificationResult, freshness: Freshness, ttl: Duration) -> bool {
    let bound = i64::try_from(freshness.max_staleness.as_secs()).unwrap_or(i64::MAX);
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let within = |a: &Option<DataAge>| {
        a.as_ref()
            .is_none_or(|a| !a.consulted || a.age_seconds.saturating_add(ttl) <= bound)
    };
    match VerificationOutcome::try_from(result.outcome) {
        Ok(VerificationOutcome::Valid | VerificationOutcome::Suspended) => {
            within(&result.trust) && within(&result.status)
        }
        // Unknown status may become known any moment; not cached.
        Ok(VerificationOutcome::StatusUnknown) => false,
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Ages a cached answer by the seconds since it was made, re-checking the bound.
pub fn age_cached(
    mut result: VerificationResult,
    freshness: Freshness,
    now: i64,
) -> VerificationResult {
    let elapsed = now.saturating_sub(result.verified_at).max(0);
    let bound = i64::try_from(freshness.max_staleness.as_secs()).unwrap_or(i64::MAX);
    let fresh = i64::try_from(freshness.fresh.as_secs()).unwrap_or(i64::MAX);
    let mut over = false;
    for age in [&mut result.trust, &mut result.status]
        .into_iter()
        .flatten()
    {
        if age.consulted {
            age.age_seconds = age.age_seconds.saturating_add(elapsed);
            age.stale = age.age_seconds > fresh;
            over |= age.age_seconds > bound;
        }
    }
    if over && result.outcome == VerificationOutcome::Valid as i32 {
        result.outcome = VerificationOutcome::StatusUnknown as i32;
        result.reason = "STATUS_STALE".to_owned();
        result.detail = "The cached status data is older than the staleness limit.".to_owned();
    }
    result.verified_at = now;
    result
}

/// A credential kind's stable lowercase name for JSON answers.
pub fn kind_name(kind: i32) -> &'static str {
    match CredentialKind::try_from(kind) {
        Ok(CredentialKind::BusinessLicense) => "business_license",
        Ok(CredentialKind::EnterpriseCode) => "enterprise_code",
        Ok(CredentialKind::Presentation) => "presentation",
        Ok(CredentialKind::Certificate) => "certificate",
        Ok(CredentialKind::InspectionCode) => "inspection_code",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Freshness = Freshness {
        max_staleness: Duration::from_secs(600),
        fresh: Duration::from_secs(120),
    };

    fn claim(name: &str, value: &str) -> Claim {
        Claim {
            name: name.into(),
            value: value.into(),
        }
    }

    fn valid(trust: u64, status: u64) -> Verification {
        Verification {
            outcome: Outcome::Valid,
            form: Some(Form::Qr),
            credential: Some(Credential {
                id: "c1".into(),
                claims: vec![
                    claim("name", "上海示例"),
                    claim("legal_representative_id_number", "x"),
                    claim("note", "11010519491231002X"),
                ],
                ..Default::default()
            }),
            kid: Some("k".into()),
            issuer: Some("SH/license".into()),
            region: Some("SH".into()),
            reason: "VALID",
            detail: "ok.".into(),
            status_age: Some(Duration::from_secs(status)),
            trust_age: Some(Duration::from_secs(trust)),
        }
    }

    #[test]
    fn personal_id_numbers_are_never_disclosed() {
        let r = to_result(&valid(1, 1), F, 0);
        let names: Vec<&str> = r.disclosed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["name"]);
    }

    #[test]
    fn old_but_bounded_data_answers_valid_and_says_stale() {
        let r = to_result(&valid(10, 300), F, 0);
        assert_eq!(r.outcome, VerificationOutcome::Valid as i32);
        let status = r.status.unwrap();
        assert!(status.stale);
        assert_eq!(status.age_seconds, 300);
        assert!(r.detail.contains("300 s old"), "{}", r.detail);
        assert!(!r.trust.unwrap().stale);
    }

    #[test]
    fn trust_data_past_the_bound_never_answers_valid() {
        let r = to_result(&valid(601, 1), F, 0);
        assert_eq!(r.outcome, VerificationOutcome::StatusUnknown as i32);
        assert_eq!(r.reason, "TRUST_STALE");
    }

    #[test]
    fn a_cached_valid_answer_turns_unknown_once_its_data_passes_the_bound() {
        let r = to_result(&valid(10, 590), F, 1000);
        assert!(cacheable(&r, F, Duration::from_secs(5)));
        let later = age_cached(r, F, 1011);
        assert_eq!(later.outcome, VerificationOutcome::StatusUnknown as i32);
        assert_eq!(later.status.unwrap().age_seconds, 601);
    }

    #[test]
    fn resident_id_check_digit_is_checked() {
        assert!(looks_like_resident_id("11010519491231002X"));
        assert!(!looks_like_resident_id("110105194912310021"));
        assert!(!looks_like_resident_id("91310000MA1FL8TQ2X"));
    }
}

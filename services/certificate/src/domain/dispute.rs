//! Data disputes (电子证照数据异议): what a filing must contain, where a dispute stands
//! and when it is overdue.
//!
//! The holder files; the issuing department accepts within [`ACCEPT_WORKING_DAYS`] and
//! resolves within [`RESOLVE_WORKING_DAYS`] after accepting, counted on the configured
//! [`WorkingCalendar`](super::calendar::WorkingCalendar). A dispute is open while filed
//! or accepted; a dispute is overdue while its current step is past its deadline.

use std::collections::HashSet;

use super::{
    Checks, Invalid,
    types::{CertType, Values},
};

/// Working days the issuer has to accept a dispute.
pub const ACCEPT_WORKING_DAYS: u32 = 1;
/// Working days the issuer has to resolve an accepted dispute.
pub const RESOLVE_WORKING_DAYS: u32 = 5;
/// Most evidence attachments one filing may name.
pub const MAX_EVIDENCE: usize = 20;

/// Where a dispute stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisputeState {
    /// Filed, awaiting acceptance.
    Filed,
    /// Accepted, awaiting resolution.
    Accepted,
    /// Resolved with a corrected version.
    Corrected,
    /// Resolved by rejection.
    Rejected,
}

impl DisputeState {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Filed => "filed",
            Self::Accepted => "accepted",
            Self::Corrected => "corrected",
            Self::Rejected => "rejected",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "filed" => Some(Self::Filed),
            "accepted" => Some(Self::Accepted),
            "corrected" => Some(Self::Corrected),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }

    /// Filed or accepted.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Filed | Self::Accepted)
    }
}

/// One disputed field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimedField {
    /// Field name.
    pub name: String,
    /// The value on the certificate.
    pub recorded: String,
    /// The value the holder claims.
    pub claimed: String,
}

/// A validated filing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filing {
    /// The disputed fields, with recorded values filled in.
    pub fields: Vec<ClaimedField>,
    /// Evidence hashes, lowercase hex.
    pub evidence: Vec<String>,
    /// The holder's explanation.
    pub explanation: String,
}

/// Checks a filing against the certificate's type and current values: each field is
/// one of the type's, named once, with a claimed value of the field's type that differs
/// from the recorded one; evidence hashes are SHA-256 hex.
pub fn validate_filing(
    t: &CertType,
    current: &Values,
    fields: &[(String, String)],
    evidence: &[String],
    explanation: &str,
) -> Result<Filing, Invalid> {
    let mut c = Checks::default();
    if fields.is_empty() {
        c.fail(
            "DISPUTE_FIELDS_REQUIRED",
            "fields",
            "name at least one disputed field and the value claimed",
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, (name, claimed)) in fields.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            c.fail(
                "FIELD_DUPLICATE",
                &format!("fields[{i}].name"),
                format!("'{name}' is disputed twice"),
            );
            continue;
        }
        if !t.fields.iter().any(|f| &f.name == name) {
            c.fail(
                "FIELD_UNKNOWN",
                &format!("fields[{i}].name"),
                format!("'{name}' is not a field of {}", t.name),
            );
            continue;
        }
        let recorded = current.get(name).cloned().unwrap_or_default();
        let claimed = claimed.trim().to_string();
        if claimed == recorded {
            c.fail(
                "CLAIM_UNCHANGED",
                &format!("fields[{i}].claimed_value"),
                format!("the claimed value of '{name}' is the recorded one"),
            );
            continue;
        }
        // The claimed value must be one the certificate could carry.
        if let Err(e) = t.validate_values(&[(name.clone(), claimed.clone())], "probe")
            && let Some(v) = e
                .violations
                .iter()
                .find(|v| v.field.starts_with("probe[0]"))
        {
            c.fail(
                "FIELD_VALUE_INVALID",
                &format!("fields[{i}].claimed_value"),
                v.description.clone(),
            );
            continue;
        }
        out.push(ClaimedField {
            name: name.clone(),
            recorded,
            claimed,
        });
    }
    if evidence.len() > MAX_EVIDENCE {
        c.fail(
            "EVIDENCE_TOO_MANY",
            "evidence_sha256",
            format!("at most {MAX_EVIDENCE} attachments may be named"),
        );
    }
    let mut hashes = Vec::new();
    for (i, h) in evidence.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            c.fail(
                "EVIDENCE_HASH_INVALID",
                &format!("evidence_sha256[{i}]"),
                "an evidence hash is the SHA-256 of the attachment, 64 hex digits",
            );
            continue;
        }
        hashes.push(h);
    }
    if explanation.chars().count() > 2000 {
        c.fail(
            "EXPLANATION_TOO_LONG",
            "explanation",
            "the explanation is longer than 2000 characters",
        );
    }
    c.finish()?;
    Ok(Filing {
        fields: out,
        evidence: hashes,
        explanation: explanation.trim().to_string(),
    })
}

/// Whether a dispute in `state` with deadlines `accept_by` / `resolve_by` is overdue at
/// `now`.
pub fn is_overdue(state: DisputeState, accept_by: i64, resolve_by: i64, now: i64) -> bool {
    match state {
        DisputeState::Filed => now > accept_by,
        DisputeState::Accepted => now > resolve_by,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::seeds;

    #[test]
    fn a_claim_must_change_a_known_field_and_name_real_hashes() {
        let t = seeds().remove(0);
        let mut current = Values::new();
        current.insert("address".into(), "上海市静安区南京西路1000号".into());
        let err = validate_filing(
            &t,
            &current,
            &[
                ("address".into(), "上海市静安区南京西路1000号".into()),
                ("colour".into(), "red".into()),
            ],
            &["abc".into()],
            "",
        )
        .unwrap_err();
        let reasons: Vec<_> = err.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "fields[0].claimed_value",
                "fields[1].name",
                "evidence_sha256[0]"
            ]
        );
        let ok = validate_filing(
            &t,
            &current,
            &[("address".into(), "上海市静安区南京西路1001号".into())],
            &["A".repeat(64)],
            "门牌号错了",
        )
        .unwrap();
        assert_eq!(ok.fields[0].recorded, "上海市静安区南京西路1000号");
        assert_eq!(ok.evidence[0], "a".repeat(64));
    }

    #[test]
    fn only_the_current_step_can_be_overdue() {
        assert!(is_overdue(DisputeState::Filed, 10, 0, 11));
        assert!(!is_overdue(DisputeState::Accepted, 10, 20, 11));
        assert!(is_overdue(DisputeState::Accepted, 10, 20, 21));
        assert!(!is_overdue(DisputeState::Rejected, 10, 20, 99));
    }
}

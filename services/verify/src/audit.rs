//! Reading the per-partner audit (`ListVerificationAudit`, `GET /v1/verify/audit`):
//! who may see which entries, the request's filters checked once on receipt, and page
//! tokens. Pure rules, no I/O; the adapters call [`query`], the store, then [`page`].
//!
//! An entry is what the audit already holds — partner, credential id, kind, issuer,
//! outcome, reason, time — and nothing of the credential's data, so answers stay as
//! minimised as the audit itself.

use credmesh_auth::Principal;
use credmesh_proto::{
    credential::v1::{CredentialKind, VerificationOutcome},
    verify::v1::{
        ListVerificationAuditRequest, ListVerificationAuditResponse, VerificationAuditEntry,
    },
};
use credmesh_store::page;

use crate::{
    error::VerifyError,
    service::outcome_name,
    store::{AuditCursor, AuditQuery, AuditRow, ListedAuditRow},
};

/// The scope that lets operators read every partner's audit. Callers with only
/// [`crate::SCOPE`] read their own entries.
pub const AUDIT_SCOPE: &str = "verify.audit.read";

/// What the audit stores as a credential's kind: its stable name, empty when unknown.
pub fn kind_column(kind: i32) -> String {
    match CredentialKind::try_from(kind) {
        Ok(CredentialKind::Unspecified) | Err(_) => String::new(),
        Ok(_) => crate::domain::answer::kind_name(kind).to_owned(),
    }
}

/// The kinds by stored name, for reading rows and the HTTP filter.
const KINDS: [CredentialKind; 5] = [
    CredentialKind::BusinessLicense,
    CredentialKind::EnterpriseCode,
    CredentialKind::Presentation,
    CredentialKind::Certificate,
    CredentialKind::InspectionCode,
];

/// The outcomes by stored name, for reading rows and the HTTP filter.
const OUTCOMES: [VerificationOutcome; 9] = [
    VerificationOutcome::Valid,
    VerificationOutcome::Revoked,
    VerificationOutcome::Suspended,
    VerificationOutcome::Expired,
    VerificationOutcome::NotYetValid,
    VerificationOutcome::UnknownIssuer,
    VerificationOutcome::BadSignature,
    VerificationOutcome::Malformed,
    VerificationOutcome::StatusUnknown,
];

/// The kind named `name` as stored ("business_license"), if any.
pub fn kind_from_name(name: &str) -> Option<CredentialKind> {
    KINDS
        .into_iter()
        .find(|k| crate::domain::answer::kind_name(*k as i32) == name)
}

/// The outcome named `name` as stored ("valid", "status_unknown"), if any.
pub fn outcome_from_name(name: &str) -> Option<VerificationOutcome> {
    OUTCOMES
        .into_iter()
        .find(|o| outcome_name(*o as i32) == name)
}

/// Checks `request` from `caller` and turns it into a store query of at most
/// `page_size + 1` rows (one more than the page, to know whether another follows).
pub fn query(
    caller: &Principal,
    request: &ListVerificationAuditRequest,
) -> Result<AuditQuery, VerifyError> {
    let requested = request.client_id.trim();
    let client_id = if caller.has_scope(AUDIT_SCOPE) {
        requested.to_owned()
    } else if requested.is_empty() || requested == caller.client_id {
        caller.client_id.clone()
    } else {
        return Err(VerifyError::Forbidden {
            reason: "AUDIT_OF_ANOTHER_PARTNER",
            message: format!(
                "client '{}' may read only its own audit, not that of '{requested}' (reading every partner's audit needs scope {AUDIT_SCOPE})",
                caller.client_id
            ),
        });
    };
    let bound = |value: i64, field: &str| match value {
        0 => Ok(None),
        v if v < 0 => Err(VerifyError::invalid(
            "TIME_RANGE",
            field,
            format!("{field} is Unix seconds and cannot be negative, not {v}"),
        )),
        v => Ok(Some(v)),
    };
    let since = bound(request.since, "since")?;
    let until = bound(request.until, "until")?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(VerifyError::invalid(
            "TIME_RANGE",
            "until",
            format!("the time range is empty or inverted: since {s} is not before until {u}"),
        ));
    }
    let outcome = match VerificationOutcome::try_from(request.outcome) {
        Ok(VerificationOutcome::Unspecified) => String::new(),
        Ok(o) => outcome_name(o as i32).to_owned(),
        Err(_) => {
            return Err(VerifyError::invalid(
                "OUTCOME_UNKNOWN",
                "outcome",
                format!("{} is not a verification outcome", request.outcome),
            ));
        }
    };
    let kind = match CredentialKind::try_from(request.kind) {
        Ok(k) => kind_column(k as i32),
        Err(_) => {
            return Err(VerifyError::invalid(
                "KIND_UNKNOWN",
                "kind",
                format!("{} is not a credential kind", request.kind),
            ));
        }
    };
    Ok(AuditQuery {
        client_id,
        since,
        until,
        outcome,
        kind,
        before: cursor(&request.page_token)?,
        limit: page::page_size(request.page_size) + 1,
    })
}

/// Decodes a page token made by [`page`].
fn cursor(token: &str) -> Result<Option<AuditCursor>, VerifyError> {
    let bad = || {
        VerifyError::invalid(
            "PAGE_TOKEN",
            "page_token",
            "the page token is not one this service issued",
        )
    };
    let key = page::decode_token(token).map_err(|_| bad())?;
    if key.is_empty() {
        return Ok(None);
    }
    let (at, id) = key.split_once(':').ok_or_else(bad)?;
    Ok(Some(AuditCursor {
        verified_at: at.parse().map_err(|_| bad())?,
        id: id.parse().map_err(|_| bad())?,
    }))
}

/// The answer for rows fetched with `query` (which asked for one row more than the
/// page): the page's entries and, when more follow, the next page token.
pub fn page(query: &AuditQuery, mut rows: Vec<ListedAuditRow>) -> ListVerificationAuditResponse {
    let size = query.limit.saturating_sub(1) as usize;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_page_token = match rows.last() {
        Some(last) if more => {
            page::encode_token(&format!("{}:{}", last.cursor.verified_at, last.cursor.id))
        }
        _ => String::new(),
    };
    ListVerificationAuditResponse {
        entries: rows.into_iter().map(|r| entry(r.row)).collect(),
        next_page_token,
    }
}

/// One stored row as an entry.
pub fn entry(row: AuditRow) -> VerificationAuditEntry {
    VerificationAuditEntry {
        client_id: row.client_id,
        credential_id: row.credential_id,
        kind: kind_from_name(&row.kind).map_or(0, |k| k as i32),
        outcome: outcome_from_name(&row.outcome).map_or(0, |o| o as i32),
        reason: row.reason,
        issuer: row.issuer,
        verified_at: row.verified_at,
        count: u32::try_from(row.count.max(1)).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use credmesh_auth::PrincipalKind;

    use super::*;

    fn principal(id: &str, scopes: &[&str]) -> Principal {
        Principal {
            client_id: id.into(),
            kind: PrincipalKind::Partner,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            organization: None,
            region: "SH".into(),
            token_id: "t".into(),
            expires_at: 0,
            enforcement_certificate: None,
        }
    }

    fn request(client_id: &str) -> ListVerificationAuditRequest {
        ListVerificationAuditRequest {
            client_id: client_id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_partner_reads_its_own_audit_by_default_and_by_name() {
        let bank = principal("bank-a", &["verify"]);
        assert_eq!(query(&bank, &request("")).unwrap().client_id, "bank-a");
        assert_eq!(
            query(&bank, &request("bank-a")).unwrap().client_id,
            "bank-a"
        );
    }

    #[test]
    fn a_partner_naming_another_partner_is_refused() {
        let bank = principal("bank-a", &["verify"]);
        let err = query(&bank, &request("bank-b")).unwrap_err();
        assert_eq!(err.to_status().code(), tonic::Code::PermissionDenied);
        assert_eq!(err.reason(), "AUDIT_OF_ANOTHER_PARTNER");
    }

    #[test]
    fn an_operator_reads_every_partner_or_one() {
        let ops = principal("operator", &["verify.audit.read"]);
        assert_eq!(query(&ops, &request("")).unwrap().client_id, "");
        assert_eq!(query(&ops, &request("bank-b")).unwrap().client_id, "bank-b");
    }

    #[test]
    fn an_inverted_or_negative_time_range_is_refused_by_field() {
        let bank = principal("bank-a", &["verify"]);
        let inverted = ListVerificationAuditRequest {
            since: 200,
            until: 100,
            ..Default::default()
        };
        let err = query(&bank, &inverted).unwrap_err();
        assert_eq!(err.reason(), "TIME_RANGE");
        let negative = ListVerificationAuditRequest {
            since: -1,
            ..Default::default()
        };
        assert_eq!(query(&bank, &negative).unwrap_err().reason(), "TIME_RANGE");
    }

    #[test]
    fn foreign_page_tokens_are_refused() {
        let bank = principal("bank-a", &["verify"]);
        for token in [
            "zz",
            &page::encode_token("no-colon"),
            &page::encode_token("1:x"),
        ] {
            let req = ListVerificationAuditRequest {
                page_token: token.to_string(),
                ..Default::default()
            };
            assert_eq!(query(&bank, &req).unwrap_err().reason(), "PAGE_TOKEN");
        }
    }

    #[test]
    fn names_round_trip_for_every_kind_and_outcome() {
        for k in KINDS {
            assert_eq!(kind_from_name(&kind_column(k as i32)), Some(k));
        }
        for o in OUTCOMES {
            assert_eq!(outcome_from_name(outcome_name(o as i32)), Some(o));
        }
        assert_eq!(kind_column(0), "");
    }

    #[test]
    fn a_full_page_names_the_next_and_a_short_one_does_not() {
        let q = AuditQuery {
            limit: 3,
            ..AuditQuery::default()
        };
        let row = |id| ListedAuditRow {
            row: AuditRow {
                client_id: "bank-a".into(),
                credential_id: String::new(),
                outcome: "valid".into(),
                reason: "VALID".into(),
                issuer: String::new(),
                verified_at: 10,
                kind: String::new(),
                count: 1,
            },
            cursor: AuditCursor {
                verified_at: 10,
                id,
            },
        };
        let full = page(&q, vec![row(3), row(2), row(1)]);
        assert_eq!(full.entries.len(), 2);
        assert_eq!(
            cursor(&full.next_page_token).unwrap(),
            Some(AuditCursor {
                verified_at: 10,
                id: 2
            })
        );
        assert!(page(&q, vec![row(1)]).next_page_token.is_empty());
    }
}

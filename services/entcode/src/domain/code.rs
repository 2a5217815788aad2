//! The enterprise code and presentations as credentials.
//!
//! **The stable code** is deterministic: id `urn:credmesh:entcode:<USCC>`, issued at the
//! moment the enterprise entered the register (its first license), one claim (`uscc`).
//! Nothing about it depends on the license version, so amendments leave it unchanged;
//! and since Ed25519 signatures are deterministic, re-signing it with the same key gives
//! the very same bytes and QR text. It needs no storage and is never reused: the id is
//! the enterprise's code, which is itself never reassigned. Its status entry is the
//! enterprise's standing entry in the license service's standing list (`SH/license/e<n>`,
//! fixed at establishment, set when the enterprise is deregistered or revoked), added by
//! the service: so the verify gateway, partner regions and offline verifiers learn from
//! a status list that the code is withdrawn, and this service's own scan page and
//! `GetEnterpriseCode` answer it live from the license service as well.
//!
//! **A presentation** discloses one scenario's fields, lives minutes, carries a random
//! 16-byte nonce, recorded when first verified so that a second use is refused, and the
//! same standing entry as the code.

use credmesh_credential::hex;
use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind};
use credmesh_uscc::Region;

/// The prefix of every enterprise code id.
pub const CODE_PREFIX: &str = "urn:credmesh:entcode:";
/// The prefix of every presentation id; the scenario and the nonce follow.
pub const PRESENTATION_PREFIX: &str = "urn:credmesh:entcode:presentation:";

/// The issuer id of this service in `region`: `SH/entcode`.
pub fn issuer_id(region: Region) -> String {
    format!("{}/entcode", region.code())
}

/// The stable id of `uscc`'s enterprise code.
pub fn code_id(uscc: &str) -> String {
    format!("{CODE_PREFIX}{uscc}")
}

/// The enterprise code of `uscc`, registered at `registered_at` (Unix seconds).
pub fn code(region: Region, uscc: &str, registered_at: i64) -> Credential {
    Credential {
        id: code_id(uscc),
        kind: CredentialKind::EnterpriseCode as i32,
        issuer: issuer_id(region),
        region: region.code().to_string(),
        subject: uscc.to_string(),
        issued_at: registered_at,
        not_before: registered_at,
        not_after: 0,
        status: None,
        claims: vec![Claim {
            name: "uscc".into(),
            value: uscc.to_string(),
        }],
        version: 1,
        nonce: Vec::new(),
    }
}

/// A presentation of `scenario` (name and version) by `uscc` disclosing `claims`, valid
/// `ttl_secs` from `now`, with `nonce`. The id names the scenario; the credential's
/// `version` is the scenario's version, so a verifier knows which version's fields it
/// saw.
pub fn presentation(
    region: Region,
    uscc: &str,
    (scenario, scenario_version): (&str, u32),
    claims: Vec<Claim>,
    nonce: [u8; 16],
    now: i64,
    ttl_secs: i64,
) -> Credential {
    Credential {
        id: format!("{PRESENTATION_PREFIX}{scenario}:{}", hex(&nonce)),
        kind: CredentialKind::Presentation as i32,
        issuer: issuer_id(region),
        region: region.code().to_string(),
        subject: uscc.to_string(),
        issued_at: now,
        not_before: now,
        not_after: now.saturating_add(ttl_secs),
        status: None,
        claims,
        version: scenario_version,
        nonce: nonce.to_vec(),
    }
}

/// The scenario a presentation id names.
pub fn scenario_of(id: &str) -> Option<&str> {
    id.strip_prefix(PRESENTATION_PREFIX)?
        .rsplit_once(':')
        .map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_depends_only_on_the_enterprise() {
        let a = code(Region::Shanghai, "91310000MA1K4CXX2B", 100);
        let b = code(Region::Shanghai, "91310000MA1K4CXX2B", 100);
        assert_eq!(a, b);
        assert_eq!(a.id, "urn:credmesh:entcode:91310000MA1K4CXX2B");
        assert_eq!(a.issuer, "SH/entcode");
    }

    #[test]
    fn presentations_name_their_scenario_and_expire() {
        let p = presentation(
            Region::Shanghai,
            "X",
            ("bank-loan", 3),
            vec![],
            [7; 16],
            10,
            300,
        );
        assert_eq!(scenario_of(&p.id), Some("bank-loan"));
        assert_eq!(p.version, 3);
        assert_eq!(p.not_after, 310);
        assert_eq!(p.nonce.len(), 16);
        assert_eq!(scenario_of("urn:credmesh:entcode:91310000MA1K4CXX2B"), None);
    }
}

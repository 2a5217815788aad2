//! A license version as a credential: its GB/T 36904 identifier, its claims and its
//! place in the status lists.

use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind, StatusReference};
use credmesh_uscc::{LicenseId, Region, Uscc};

use super::license::{Content, iso};

/// Entries per status list: the W3C minimum, 131,072 (16 KiB), so a list hides which of
/// many credentials a verifier checks.
pub const LIST_SIZE: u64 = 131_072;

/// The issuer id of this service in `region`: `SH/license`.
pub fn issuer_id(region: Region) -> String {
    format!("{}/license", region.code())
}

/// The id of status list `n`: `SH/license/0`.
pub fn list_id(region: Region, n: u64) -> String {
    format!("{}/license/{n}", region.code())
}

/// The id of standing list `n` (`SH/license/e0`): a bit per enterprise, at the status
/// entry of its first license version, set when the enterprise is deregistered or
/// revoked. Its enterprise code and presentations point there, so a verifier learns
/// from a status list, offline, that the code is withdrawn; amendments never touch it.
pub fn standing_list_id(region: Region, n: u64) -> String {
    format!("{}/license/e{n}", region.code())
}

/// Which of this service's status lists an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// `SH/license/<n>`: the license versions' entries.
    Versions(u64),
    /// `SH/license/e<n>`: the enterprises' standing (see [`standing_list_id`]).
    Standing(u64),
}

/// The kind and number of a status list id of this service, if it is one.
pub fn parse_list_kind(region: Region, id: &str) -> Option<ListKind> {
    let rest = id.strip_prefix(&format!("{}/license/", region.code()))?;
    let (standing, n) = match rest.strip_prefix('e') {
        Some(n) => (true, n),
        None => (false, rest),
    };
    if n.is_empty() || n.len() > 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = n.parse().ok()?;
    Some(if standing {
        ListKind::Standing(n)
    } else {
        ListKind::Versions(n)
    })
}

/// The number of a license versions' status list id of this service, if it is one.
pub fn parse_list_id(region: Region, id: &str) -> Option<u64> {
    match parse_list_kind(region, id)? {
        ListKind::Versions(n) => Some(n),
        ListKind::Standing(_) => None,
    }
}

/// The list number and index of status entry `entry` (entries are allocated in order).
pub fn status_slot(entry: u64) -> (u64, u64) {
    (entry / LIST_SIZE, entry % LIST_SIZE)
}

/// The GB/T 36904 serial of a license: its authority's counter, 12 digits.
pub fn serial_text(serial: u64) -> String {
    format!("{serial:012}")
}

/// The identifier of `version` of the license with `serial` registered by `authority`.
pub fn license_id(
    type_code: &str,
    authority: &Uscc,
    serial: &str,
    version: u32,
) -> Result<LicenseId, credmesh_uscc::LicenseIdError> {
    let version = u16::try_from(version).unwrap_or(u16::MAX);
    LicenseId::new(type_code, authority, serial, version)
}

/// The claims of a license version, in the order printed on a paper license. The
/// representative's ID number is not among them, in any form.
pub fn claims(uscc: &Uscc, content: &Content, authority_name: &str) -> Vec<Claim> {
    let claim = |name: &str, value: String| Claim {
        name: name.to_string(),
        value,
    };
    vec![
        claim("name", content.name.clone()),
        claim("uscc", uscc.as_str().to_string()),
        claim("entity_type", content.entity_type.clone()),
        claim("legal_representative", content.legal_representative.clone()),
        claim("registered_capital", content.capital.display()),
        claim("establishment_date", iso(content.established)),
        claim("business_term", content.term_display()),
        claim("domicile", content.domicile.clone()),
        claim("business_scope", content.scope.clone()),
        claim("registration_authority", authority_name.to_string()),
        claim(
            "registration_authority_uscc",
            content.authority.as_str().to_string(),
        ),
        claim("issue_date", iso(content.issue_date)),
    ]
}

/// Where a version sits: its identifier, version number, status entry and signing time.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// GB/T 36904 identifier.
    pub license_id: &'a str,
    /// Version, from 1.
    pub version: u32,
    /// Status list number.
    pub list_no: u64,
    /// Index in the list.
    pub index: u64,
    /// Signing time, Unix seconds.
    pub issued_at: i64,
}

/// The credential of a license version: valid from its signing until its status
/// changes (no end date: a license lasts until amended, deregistered or revoked).
pub fn credential(
    region: Region,
    uscc: &Uscc,
    content: &Content,
    authority_name: &str,
    at: &Placement<'_>,
) -> Credential {
    Credential {
        id: at.license_id.to_string(),
        kind: CredentialKind::BusinessLicense as i32,
        issuer: issuer_id(region),
        region: region.code().to_string(),
        subject: uscc.as_str().to_string(),
        issued_at: at.issued_at,
        not_before: at.issued_at,
        not_after: 0,
        status: Some(StatusReference {
            list_id: list_id(region, at.list_no),
            index: at.index,
        }),
        claims: claims(uscc, content, authority_name),
        version: at.version,
        nonce: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_round_trip_and_foreign_ids_are_refused() {
        assert_eq!(list_id(Region::Shanghai, 3), "SH/license/3");
        assert_eq!(parse_list_id(Region::Shanghai, "SH/license/3"), Some(3));
        assert_eq!(parse_list_id(Region::Shanghai, "JS/license/3"), None);
        assert_eq!(parse_list_id(Region::Shanghai, "SH/license/"), None);
        assert_eq!(parse_list_id(Region::Shanghai, "SH/license/-1"), None);
        assert_eq!(parse_list_id(Region::Shanghai, "SH/health/0"), None);
        assert_eq!(standing_list_id(Region::Shanghai, 2), "SH/license/e2");
        assert_eq!(
            parse_list_kind(Region::Shanghai, "SH/license/e2"),
            Some(ListKind::Standing(2))
        );
        assert_eq!(parse_list_id(Region::Shanghai, "SH/license/e2"), None);
        assert_eq!(parse_list_kind(Region::Shanghai, "SH/license/e"), None);
        assert_eq!(parse_list_kind(Region::Shanghai, "SH/license/ee1"), None);
        assert_eq!(status_slot(131_073), (1, 1));
    }

    #[test]
    fn identifiers_carry_authority_serial_and_version() {
        let authority = Uscc::parse(super::super::authority::SHANGHAI_JINGAN).unwrap();
        let id = license_id("11100000000013127D001", &authority, &serial_text(7), 2).unwrap();
        assert_eq!(id.issuer(), authority.as_str());
        assert_eq!(id.serial(), "000000000007");
        assert!(id.as_str().contains(".002."));
        assert!(LicenseId::parse(id.as_str()).is_ok());
    }
}

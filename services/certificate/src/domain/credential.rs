//! A certificate version as a credential: its GB/T 36904 identifier, its claims and its
//! place in the status lists.

use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind, StatusReference};
use credmesh_uscc::{LicenseId, Region, Uscc};

use super::types::{CertType, Values};

/// Entries per status list: the W3C minimum, 131,072.
pub const LIST_SIZE: u64 = 131_072;

/// The issuer id of this service in `region`: `SH/certificate`.
pub fn issuer_id(region: Region) -> String {
    format!("{}/certificate", region.code())
}

/// The id of status list `n`: `SH/certificate/0`.
pub fn list_id(region: Region, n: u64) -> String {
    format!("{}/certificate/{n}", region.code())
}

/// The number of a status list id of this service, if it is one.
pub fn parse_list_id(region: Region, id: &str) -> Option<u64> {
    let n = id.strip_prefix(&format!("{}/certificate/", region.code()))?;
    if n.is_empty() || n.len() > 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The list number and index of status entry `entry`.
pub fn status_slot(entry: u64) -> (u64, u64) {
    (entry / LIST_SIZE, entry % LIST_SIZE)
}

/// A certificate serial: the service's counter, 12 digits (the GB/T 36904 serial).
pub fn serial_text(serial: u64) -> String {
    format!("{serial:012}")
}

/// The identifier of `version` of certificate `serial` of `type_code` issued by
/// `department`.
pub fn certificate_id(
    type_code: &str,
    department: &Uscc,
    serial: &str,
    version: u32,
) -> Result<LicenseId, credmesh_uscc::LicenseIdError> {
    LicenseId::new(
        type_code,
        department,
        serial,
        u16::try_from(version).unwrap_or(u16::MAX),
    )
}

/// Where a version sits and what it says.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// GB/T 36904 identifier.
    pub certificate_id: &'a str,
    /// Version, from 1.
    pub version: u32,
    /// Status list number.
    pub list_no: u64,
    /// Index in the list.
    pub index: u64,
    /// Signing time.
    pub issued_at: i64,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
    /// First day of validity (ISO).
    pub valid_from: &'a str,
    /// Last day of validity (ISO).
    pub valid_until: &'a str,
}

/// The claims of a certificate version: its type, holder, issuer, then its fields in
/// schema order, then the validity dates.
pub fn claims(
    t: &CertType,
    holder: &str,
    holder_name: &str,
    values: &Values,
    at: &Placement<'_>,
) -> Vec<Claim> {
    let claim = |name: &str, value: &str| Claim {
        name: name.to_string(),
        value: value.to_string(),
    };
    let mut out = vec![
        claim("certificate_type", &t.name),
        claim("certificate_type_code", &t.type_code),
        claim("holder_name", holder_name),
        claim("holder_uscc", holder),
    ];
    if !t.bundles.is_empty() {
        out.push(claim("industry", &t.industry));
        out.push(claim("bundled_types", &t.bundles.join(",")));
    }
    out.extend(t.ordered(values).into_iter().map(|(n, v)| claim(n, v)));
    out.push(claim("issuing_department", &t.department_name));
    out.push(claim("issuing_department_uscc", t.department.as_str()));
    out.push(claim("valid_from", at.valid_from));
    out.push(claim("valid_until", at.valid_until));
    out
}

/// The credential of a certificate version.
pub fn credential(
    region: Region,
    t: &CertType,
    holder: &str,
    holder_name: &str,
    values: &Values,
    at: &Placement<'_>,
) -> Credential {
    Credential {
        id: at.certificate_id.to_string(),
        kind: CredentialKind::Certificate as i32,
        issuer: issuer_id(region),
        region: region.code().to_string(),
        subject: holder.to_string(),
        issued_at: at.issued_at,
        not_before: at.not_before,
        not_after: at.not_after,
        status: Some(StatusReference {
            list_id: list_id(region, at.list_no),
            index: at.index,
        }),
        claims: claims(t, holder, holder_name, values, at),
        version: at.version,
        nonce: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_round_trip_and_foreign_ids_are_refused() {
        assert_eq!(list_id(Region::Shanghai, 2), "SH/certificate/2");
        assert_eq!(parse_list_id(Region::Shanghai, "SH/certificate/2"), Some(2));
        assert_eq!(parse_list_id(Region::Shanghai, "SH/license/2"), None);
        assert_eq!(parse_list_id(Region::Shanghai, "SH/certificate/x"), None);
    }

    #[test]
    fn identifiers_carry_type_department_serial_and_version() {
        let dept = Uscc::parse(super::super::types::SH_MUNICIPAL_MARKET).unwrap();
        let id = certificate_id(
            super::super::types::FOOD_BUSINESS,
            &dept,
            &serial_text(5),
            2,
        )
        .unwrap();
        assert!(id.as_str().contains(".002."));
        assert!(LicenseId::parse(id.as_str()).is_ok());
    }
}

//! An inspection as a credential: kind `INSPECTION_CODE`, subject the inspection (task)
//! id, valid for the inspection window, with an entry in the service's status lists.

use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind, StatusReference};
use credmesh_uscc::Region;

/// Entries per status list: the W3C minimum, 131,072, as the license service uses.
pub const LIST_SIZE: u64 = 131_072;

/// The issuer id of this service in `region`: `SH/inspection`.
pub fn issuer_id(region: Region) -> String {
    format!("{}/inspection", region.code())
}

/// The id of status list `n`: `SH/inspection/0`.
pub fn list_id(region: Region, n: u64) -> String {
    format!("{}/inspection/{n}", region.code())
}

/// The number of a status list id of this service, if it is one.
pub fn parse_list_id(region: Region, id: &str) -> Option<u64> {
    let n = id.strip_prefix(&format!("{}/inspection/", region.code()))?;
    if n.is_empty() || n.len() > 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The list number and index of status entry `entry`.
pub fn status_slot(entry: u64) -> (u64, u64) {
    (entry / LIST_SIZE, entry % LIST_SIZE)
}

/// What a code attests.
#[derive(Clone, Debug)]
pub struct CodeContent<'a> {
    /// The inspection id.
    pub id: &'a str,
    /// The enterprise.
    pub uscc: &'a str,
    /// Its name.
    pub enterprise_name: &'a str,
    /// Participating departments: (department, type, items joined by `,`, basis).
    pub departments: Vec<(String, String, String, String)>,
    /// Inspectors: (client id, certificate number).
    pub inspectors: Vec<(String, String)>,
    /// Window.
    pub window: (i64, i64),
    /// Code version.
    pub version: u32,
    /// Status list number and index.
    pub status: (u64, u64),
    /// Signing time.
    pub issued_at: i64,
}

/// The credential of an inspection code. Claims are flat name/value pairs; repeated
/// parties carry an index (`department.0`, `inspector.1`, …).
pub fn credential(region: Region, c: &CodeContent<'_>) -> Credential {
    let claim = |name: String, value: String| Claim { name, value };
    let mut claims = vec![
        claim("inspection_id".into(), c.id.to_string()),
        claim("enterprise_uscc".into(), c.uscc.to_string()),
        claim("enterprise_name".into(), c.enterprise_name.to_string()),
    ];
    for (i, (dept, kind, items, basis)) in c.departments.iter().enumerate() {
        claims.push(claim(format!("department.{i}"), dept.clone()));
        claims.push(claim(format!("department.{i}.type"), kind.clone()));
        claims.push(claim(format!("department.{i}.items"), items.clone()));
        claims.push(claim(format!("department.{i}.basis"), basis.clone()));
    }
    for (i, (client, cert)) in c.inspectors.iter().enumerate() {
        claims.push(claim(format!("inspector.{i}"), client.clone()));
        claims.push(claim(format!("inspector.{i}.certificate"), cert.clone()));
    }
    Credential {
        id: format!("urn:credmesh:inspection:{}:{}", c.id, c.version),
        kind: CredentialKind::InspectionCode as i32,
        issuer: issuer_id(region),
        region: region.code().to_string(),
        subject: c.id.to_string(),
        issued_at: c.issued_at,
        not_before: c.window.0,
        not_after: c.window.1,
        status: Some(StatusReference {
            list_id: list_id(region, c.status.0),
            index: c.status.1,
        }),
        claims,
        version: c.version,
        nonce: Vec::new(),
    }
}

/// The inspection id of a verified code credential.
pub fn inspection_id(c: &Credential) -> Option<&str> {
    (c.kind == CredentialKind::InspectionCode as i32).then_some(c.subject.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_round_trip_and_foreign_ids_are_refused() {
        assert_eq!(list_id(Region::Shanghai, 2), "SH/inspection/2");
        assert_eq!(parse_list_id(Region::Shanghai, "SH/inspection/2"), Some(2));
        assert_eq!(parse_list_id(Region::Shanghai, "SH/license/2"), None);
        assert_eq!(parse_list_id(Region::Shanghai, "SH/inspection/x"), None);
    }
}

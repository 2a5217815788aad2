//! The scope catalogue: every scope a token can carry, and which kinds of principal may
//! hold it. A registration asking for a scope outside its kind's set is refused, so a
//! partner system can never be registered with issuing rights by mistake.

use credmesh_auth::PrincipalKind;

/// Register and disable clients, revoke issuer keys, pin partner anchors.
pub const IDENTITY_ADMIN: &str = "identity.admin";
/// Register the caller's own issuer signing keys (services).
pub const IDENTITY_KEYS: &str = "identity.keys";
/// Read clients' public data, issuer keys and partner anchors.
pub const IDENTITY_READ: &str = "identity.read";
/// Look up one registered client (services checking who they are about to name, such as
/// the inspectors on an inspection code).
pub const IDENTITY_CLIENTS_READ: &str = "identity.clients.read";
/// Establish, amend, deregister and revoke business licenses.
pub const LICENSE_ISSUE: &str = "license.issue";
/// Read the enterprise register and licenses.
pub const LICENSE_READ: &str = "license.read";
/// Read one's own enterprise code and make scenario presentations (enterprises).
pub const ENTCODE_PRESENT: &str = "entcode.present";
/// Read any enterprise's code.
pub const ENTCODE_READ: &str = "entcode.read";
/// Create, change and retire enterprise-code scenarios (operators).
pub const ENTCODE_SCENARIOS_WRITE: &str = "entcode.scenarios.write";
/// Register certificate types (operators).
pub const CERTIFICATE_ADMIN: &str = "certificate.admin";
/// Issue certificates and change the ones one's department issued; answer disputes.
pub const CERTIFICATE_ISSUE: &str = "certificate.issue";
/// Read certificates, types and disputes (enterprises: their own).
pub const CERTIFICATE_READ: &str = "certificate.read";
/// Apply for a certificate on one's own commitment (告知承诺) (enterprises).
pub const CERTIFICATE_COMMIT: &str = "certificate.commit";
/// File data disputes about one's own certificates (enterprises).
pub const CERTIFICATE_DISPUTE: &str = "certificate.dispute";
/// Plan and join inspections.
pub const INSPECTION_PLAN: &str = "inspection.plan";
/// Read inspections and statistics (row-level limits apply).
pub const INSPECTION_READ: &str = "inspection.read";
/// Record inspection results (inspectors named on a code).
pub const INSPECTION_RECORD: &str = "inspection.record";
/// Scan inspection codes and evaluate inspections (enterprises).
pub const INSPECTION_RESPOND: &str = "inspection.respond";
/// Import inspection policy data (credit grades, "two no" lists, non-site checks).
pub const INSPECTION_POLICY: &str = "inspection.policy";
/// Read enterprises' credit grades.
pub const INSPECTION_CREDIT: &str = "inspection.credit";
/// Verify credentials through the verify gateway (and read one's own verification audit).
pub const VERIFY: &str = "verify";
/// Read every partner's verification audit at the verify gateway (operators).
pub const VERIFY_AUDIT_READ: &str = "verify.audit.read";

/// Every scope, with the kinds of principal that may hold it.
pub const CATALOGUE: &[(&str, &[PrincipalKind])] = {
    use PrincipalKind::*;
    &[
        (IDENTITY_ADMIN, &[Operator]),
        (IDENTITY_KEYS, &[Service, Operator]),
        (IDENTITY_READ, &[Service, Operator, Department]),
        (IDENTITY_CLIENTS_READ, &[Service, Operator]),
        (LICENSE_ISSUE, &[Department, Operator]),
        (
            LICENSE_READ,
            &[Service, Operator, Department, Inspector, Enterprise],
        ),
        (ENTCODE_PRESENT, &[Enterprise]),
        (ENTCODE_READ, &[Service, Operator, Department, Inspector]),
        (ENTCODE_SCENARIOS_WRITE, &[Operator]),
        (CERTIFICATE_ADMIN, &[Operator]),
        (CERTIFICATE_ISSUE, &[Department, Operator]),
        (
            CERTIFICATE_READ,
            &[Service, Operator, Department, Inspector, Enterprise],
        ),
        (CERTIFICATE_COMMIT, &[Enterprise]),
        (CERTIFICATE_DISPUTE, &[Enterprise]),
        (INSPECTION_PLAN, &[Department, Operator]),
        (
            INSPECTION_READ,
            &[Service, Operator, Department, Inspector, Enterprise],
        ),
        (INSPECTION_RECORD, &[Inspector]),
        (INSPECTION_RESPOND, &[Enterprise]),
        (INSPECTION_POLICY, &[Department, Operator]),
        (INSPECTION_CREDIT, &[Service, Operator, Department]),
        (
            VERIFY,
            &[
                Service, Partner, Operator, Department, Inspector, Enterprise,
            ],
        ),
        (VERIFY_AUDIT_READ, &[Operator]),
    ]
};

/// Whether `scope` exists at all.
pub fn is_known(scope: &str) -> bool {
    CATALOGUE.iter().any(|(s, _)| *s == scope)
}

/// Whether a principal of `kind` may hold `scope`.
pub fn allowed(kind: PrincipalKind, scope: &str) -> bool {
    CATALOGUE
        .iter()
        .any(|(s, kinds)| *s == scope && kinds.contains(&kind))
}

/// Every scope a principal of `kind` may hold (what `credmesh dev` gives its operator).
pub fn all_for(kind: PrincipalKind) -> Vec<String> {
    CATALOGUE
        .iter()
        .filter(|(_, kinds)| kinds.contains(&kind))
        .map(|(s, _)| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_may_only_verify() {
        assert_eq!(all_for(PrincipalKind::Partner), vec![VERIFY.to_string()]);
        assert!(!allowed(PrincipalKind::Partner, LICENSE_ISSUE));
    }

    #[test]
    fn only_operators_administer_identity() {
        for kind in [
            PrincipalKind::Service,
            PrincipalKind::Partner,
            PrincipalKind::Department,
            PrincipalKind::Inspector,
            PrincipalKind::Enterprise,
        ] {
            assert!(!allowed(kind, IDENTITY_ADMIN), "{kind:?}");
        }
        assert!(allowed(PrincipalKind::Operator, IDENTITY_ADMIN));
    }

    #[test]
    fn only_operators_read_every_partners_verification_audit() {
        assert!(allowed(PrincipalKind::Operator, VERIFY_AUDIT_READ));
        assert!(!allowed(PrincipalKind::Partner, VERIFY_AUDIT_READ));
        assert!(all_for(PrincipalKind::Operator).contains(&VERIFY_AUDIT_READ.to_string()));
    }
}

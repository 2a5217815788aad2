//! The credential, trust list and status lists the verification benches share: this
//! crate's criterion bench and the callgrind instruction counts of the e2e crate
//! (`tests/benches/instructions.rs` includes this file), so both measure the same bytes.

use credmesh_credential::{Bitstring, IssuerKey, Policy, StatusCache, TrustSnapshot};
use credmesh_proto::credential::v1::{
    Claim, Credential, CredentialKind, StatusPurpose, StatusReference,
};

pub const NOW: i64 = 1_750_000_000;

/// A business license with nine claims and status entry `i` of list 0.
pub fn credential(i: u64) -> Credential {
    let claim = |name: &str, value: &str| Claim {
        name: name.into(),
        value: value.into(),
    };
    Credential {
        id: format!("1.2.156.3005.2.11100000000013127D001.11310000002420813X.{i:08}.001.7"),
        kind: CredentialKind::BusinessLicense as i32,
        issuer: "SH/license".into(),
        region: "SH".into(),
        subject: "91310000MA1FL8TQ2X".into(),
        issued_at: NOW - 86_400,
        not_before: NOW - 86_400,
        not_after: 4_102_444_800,
        status: Some(StatusReference {
            list_id: "SH/license/0".into(),
            index: i,
        }),
        claims: vec![
            claim("name", "上海示例科技有限公司"),
            claim("uscc", "91310000MA1FL8TQ2X"),
            claim("entity_type", "有限责任公司（自然人投资或控股）"),
            claim("legal_representative", "张三"),
            claim("registered_capital", "人民币100.0000万元"),
            claim("established", "2020-05-18"),
            claim("domicile", "上海市浦东新区示例路1号"),
            claim("business_scope", "技术开发、技术咨询、技术服务。"),
            claim("registration_authority", "上海市市场监督管理局"),
        ],
        version: 1,
        nonce: Vec::new(),
    }
}

/// An issuer key, a trust list naming it, and revocation and suspension lists of
/// 1,000,000 entries (only the last set).
pub struct Fixture {
    pub key: IssuerKey,
    pub trust: TrustSnapshot,
    pub status: StatusCache,
    pub policy: Policy,
}

/// The shared fixture.
pub fn fixture() -> Fixture {
    let key = IssuerKey::from_bytes("SH-license-bench", &[7u8; 32]);
    let mut trust = TrustSnapshot::new();
    let trusted = key.to_trusted_key("SH/license", "SH", &[CredentialKind::BusinessLicense], 0);
    trust.insert(&trusted, NOW).unwrap();
    let mut status = StatusCache::new();
    for purpose in [StatusPurpose::Revocation, StatusPurpose::Suspension] {
        let mut bits = Bitstring::new(1_000_000);
        bits.set(999_999, true).unwrap();
        status
            .insert_list("SH/license/0", purpose, bits, NOW)
            .unwrap();
    }
    Fixture {
        key,
        trust,
        status,
        policy: Policy::default(),
    }
}

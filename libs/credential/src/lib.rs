//! Ed25519-signed credentials for credmesh: making them, carrying them in four forms,
//! and verifying any of them offline against cached trust and status data.
//!
//! Every issuing service signs through this crate and the verify gateway, the CLI and
//! partner integrations verify through it, so there is exactly one definition of what a
//! valid credential is. The wire contract is `credmesh.credential.v1`
//! (`proto/credmesh/credential/v1/credential.proto`); this crate adds the rules around it.
//!
//! # Layout
//! - [`keys`]: [`IssuerKey`] (generate, PKCS#8 PEM/DER, JWK) and [`kid_for`].
//! - [`envelope`]: the native form. [`seal`] signs `context || 0x00 || payload`;
//!   [`check_signature`] and [`open`] verify the payload bytes as received, never a
//!   re-encoding.
//! - [`qr`]: `CM1:` + base45(zlib(envelope)) for printed and on-screen QR codes, bare or
//!   inside the scan page's URL ([`scan_url`]) so that a phone camera opens the page.
//! - [`vcjwt`]: the interop form, a W3C VC 2.0 as an EdDSA JWT any JOSE library verifies,
//!   and status lists as W3C `BitstringStatusListCredential` VC-JWTs.
//! - [`sd_jwt`]: the selective-disclosure form (RFC 9901 SD-JWT): [`sd_jwt::issue`],
//!   [`sd_jwt::parse`] and [`sd_jwt::SdJwt::verify`], strict about digests and sizes.
//! - [`status_list`]: W3C Bitstring Status List ([`Bitstring`]) and signed status lists.
//! - [`verify`](mod@verify): [`verify()`](fn@verify::verify) and [`verify_batch`], the one entry point,
//!   with [`TrustSnapshot`], [`StatusSource`] / [`StatusCache`] and [`Policy`].
//! - [`error`]: error enums, each with a stable `reason()`.
//!
//! Times are Unix seconds (UTC) passed in by the caller (`now`), so verification is a
//! pure function and tests move the clock instead of sleeping.

#![warn(missing_docs)]

mod compress;
pub mod envelope;
pub mod error;
mod hex;
pub mod keys;
pub mod qr;
pub mod sd_jwt;
pub mod status_list;
pub mod vcjwt;
pub mod verify;

pub use envelope::{
    Context, MAX_ENVELOPE_LEN, check_signature, decode_envelope, encode_envelope, open, seal,
    sign_credential, sign_trust_list, signing_input,
};
pub use error::{FormatError, KeyError, OpenError, SignatureError, StatusListError, TrustError};
pub use hex::{hex, push_hex};
pub use keys::{IssuerKey, kid_for};
pub use qr::{QR_PREFIX, from_qr, scan_path, scan_url, scan_url_at, to_qr, unwrap_scan_url};
pub use sd_jwt::SdJwtError;
pub use status_list::{Bitstring, sign_status_list};
pub use vcjwt::{
    ParsedJwt, VcOptions, kind_name, parse_vc_jwt, status_list_vc_jwt, status_purpose_name,
    to_vc_jwt,
};
pub use verify::{
    Form, Outcome, Policy, Presented, Staged, StatusCache, StatusLookup, StatusSource, TrustEntry,
    TrustSnapshot, Verification, check_signatures, stage, verify, verify_batch,
};

/// The wrapper secrets are returned in; it zeroes its contents on drop. (Reached through
/// ed25519-dalek's PKCS#8 re-exports, so no extra dependency is needed.)
pub use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
/// Re-exported so callers can name the key and signature types without their own
/// `ed25519-dalek` dependency (and so its version stays the workspace's).
pub use ed25519_dalek::{Signature, VerifyingKey};

/// Shared fixtures for the inline tests.
#[cfg(test)]
pub(crate) mod testing {
    use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind, StatusReference};
    use sha2::{Digest, Sha256};

    use crate::IssuerKey;

    /// 2025-01-01T00:00:00Z.
    pub const T0: i64 = 1_735_689_600;

    /// A deterministic key per kid: the same kid always gives the same key.
    pub fn key(kid: &str) -> IssuerKey {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&Sha256::digest(kid.as_bytes()));
        IssuerKey::from_bytes(kid, &seed)
    }

    fn claim(name: &str, value: &str) -> Claim {
        Claim {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A business license, status-listed, open-ended.
    pub fn license() -> Credential {
        Credential {
            id: "1.2.156.3005.2.11100000000013127D001.11310000002420813X.00000001.001.7".into(),
            kind: CredentialKind::BusinessLicense as i32,
            issuer: "SH/license".into(),
            region: "SH".into(),
            subject: "91310000MA1FL8TQ2X".into(),
            issued_at: T0,
            not_before: T0,
            not_after: 0,
            status: Some(StatusReference {
                list_id: "SH/license/0".into(),
                index: 42,
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

    /// A five-minute enterprise-code presentation: nonce, expiry, no status.
    pub fn presentation() -> Credential {
        Credential {
            id: "urn:credmesh:presentation:0b8f2c1e".into(),
            kind: CredentialKind::Presentation as i32,
            issuer: "SH/entcode".into(),
            region: "SH".into(),
            subject: "91310000MA1FL8TQ2X".into(),
            issued_at: T0,
            not_before: T0,
            not_after: T0 + 300,
            status: None,
            claims: vec![
                claim("scenario", "bank-loan"),
                claim("name", "上海示例科技有限公司"),
            ],
            version: 0,
            nonce: vec![1, 2, 3, 250, 251, 252],
        }
    }
}

//! Issuer signing keys: generation, PKCS#8 import/export and key ids.

use std::fmt;

use credmesh_proto::credential::v1::{CredentialKind, KeyStatus, TrustedKey};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::zeroize::{Zeroize, Zeroizing};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{error::KeyError, hex::hex};

/// The fixed DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410 §7): SEQUENCE,
/// version 0, AlgorithmIdentifier id-Ed25519 (1.3.101.112), OCTET STRING wrapping the
/// 32-byte seed as an OCTET STRING. Every Ed25519 PKCS#8 v1 document is this prefix plus
/// the seed, so export needs no fallible DER encoder.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An issuing service's Ed25519 signing key together with the key id verifiers look it
/// up by.
///
/// The kid travels in every envelope and VC-JWT header; keeping it next to the secret
/// makes it impossible to sign with one key and announce another. `Debug` shows the kid
/// and public key only, so a key can sit in a logged config struct without leaking.
pub struct IssuerKey {
    kid: String,
    signing: SigningKey,
}

impl IssuerKey {
    /// Generates a fresh key from the operating system's random source (`credmesh dev`,
    /// tests, first start of a service without a key file).
    pub fn generate(kid: impl Into<String>) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = Self::from_bytes(kid, &seed);
        seed.zeroize();
        Ok(key)
    }

    /// Builds a key from its 32-byte secret seed (for example a Kubernetes Secret holding
    /// raw bytes).
    pub fn from_bytes(kid: impl Into<String>, secret: &[u8; 32]) -> Self {
        Self {
            kid: kid.into(),
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// Loads a key from a PKCS#8 PEM document ("-----BEGIN PRIVATE KEY-----"), the format
    /// OpenSSL (`openssl genpkey -algorithm ed25519`) and the key files use. PKCS#8 v2
    /// documents carrying the public key are accepted and checked for consistency.
    pub fn from_pkcs8_pem(kid: impl Into<String>, pem: &str) -> Result<Self, KeyError> {
        let signing =
            SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError::Pkcs8(e.to_string()))?;
        Ok(Self {
            kid: kid.into(),
            signing,
        })
    }

    /// Loads a key from a PKCS#8 DER document.
    pub fn from_pkcs8_der(kid: impl Into<String>, der: &[u8]) -> Result<Self, KeyError> {
        let signing =
            SigningKey::from_pkcs8_der(der).map_err(|e| KeyError::Pkcs8(e.to_string()))?;
        Ok(Self {
            kid: kid.into(),
            signing,
        })
    }

    /// Exports the **secret** key as PKCS#8 v1 DER, the form
    /// `jsonwebtoken::EncodingKey::from_ed_der` takes. Zeroed when dropped; never log it.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PKCS8_V1_PREFIX);
        der.extend_from_slice(self.signing.as_bytes());
        der
    }

    /// Exports the **secret** key as a PKCS#8 v1 PEM document, for writing a key file or a
    /// Kubernetes Secret. Zeroed when dropped; never log it.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        let der = self.to_pkcs8_der();
        let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*der));
        let mut pem = Zeroizing::new(String::with_capacity(body.len() + 64));
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        // 48 bytes encode to 64 characters: exactly one PEM line.
        pem.push_str(&body);
        pem.push_str("\n-----END PRIVATE KEY-----\n");
        pem
    }

    /// The key id announced with every signature.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw public key, as published in trust lists and JWKS.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The public key for verification.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The Ed25519 signing key, for signers that need the raw key (access tokens, client
    /// assertions) rather than an envelope.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// A trust-list entry for this key: active, valid from `not_before`, open-ended, for
    /// the given kinds. The identity service and `credmesh dev` register keys with it;
    /// tests build snapshots with it.
    pub fn to_trusted_key(
        &self,
        issuer: &str,
        region: &str,
        kinds: &[CredentialKind],
        not_before: i64,
    ) -> TrustedKey {
        TrustedKey {
            kid: self.kid.clone(),
            issuer: issuer.to_owned(),
            region: region.to_owned(),
            public_key: self.public_key_bytes().to_vec(),
            not_before,
            not_after: 0,
            status: KeyStatus::Active as i32,
            kinds: kinds.iter().map(|k| *k as i32).collect(),
            retired_at: 0,
        }
    }

    /// The public key as a JWK (RFC 8037 OKP), for the JWKS document that standard JOSE
    /// libraries verify VC-JWTs against.
    pub fn public_jwk(&self) -> serde_json::Value {
        use base64::Engine as _;
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.public_key_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Signs the exact bytes given; callers add domain separation.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .field("public_key", &hex(&self.public_key_bytes()))
            .finish_non_exhaustive()
    }
}

/// The deterministic key id of a public key: `<region>-<service>-<16 hex digits>`, the
/// hex being the first 8 bytes of SHA-256 over the raw 32-byte public key, for example
/// `SH-license-3f2a9c0d41b7e6a5`.
///
/// Deriving the kid from the key means two deployments that load the same key file agree
/// on its id, a rotated key always gets a new id, and the region prefix keeps kids
/// unique across the Yangtze River Delta trust lists. 64 bits of hash make an accidental
/// collision within one issuer negligible; a collision is not a security problem since
/// the key itself, not the kid, is what verifies.
pub fn kid_for(region: &str, issuer_service: &str, public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    let mut kid = String::with_capacity(region.len() + issuer_service.len() + 18);
    kid.push_str(region);
    kid.push('-');
    kid.push_str(issuer_service);
    kid.push('-');
    kid.push_str(&hex(&digest[..8]));
    kid
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};

    #[test]
    fn pem_export_round_trips_to_the_same_key() {
        let key = IssuerKey::generate("SH-license-1").unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = IssuerKey::from_pkcs8_pem("SH-license-1", &pem).unwrap();
        assert_eq!(back.public_key_bytes(), key.public_key_bytes());
    }

    #[test]
    fn pem_export_matches_the_pkcs8_crate_v1_encoding() {
        let key = IssuerKey::from_bytes("k", &[7u8; 32]);
        let v1 = KeypairBytes {
            secret_key: [7u8; 32],
            public_key: None,
        };
        let expected = v1.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(key.to_pkcs8_pem().as_str(), expected.as_str());
        assert_eq!(
            key.to_pkcs8_der().as_slice(),
            v1.to_pkcs8_der().unwrap().as_bytes()
        );
    }

    #[test]
    fn pkcs8_v2_documents_with_public_key_are_accepted() {
        let signing = SigningKey::from_bytes(&[9u8; 32]);
        let pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = IssuerKey::from_pkcs8_pem("k", &pem).unwrap();
        assert_eq!(key.public_key_bytes(), signing.verifying_key().to_bytes());
    }

    #[test]
    fn garbage_pem_is_refused_with_a_reason() {
        let err = IssuerKey::from_pkcs8_pem("k", "not a key").unwrap_err();
        assert_eq!(err.reason(), "KEY_PKCS8");
    }

    #[test]
    fn debug_shows_kid_and_public_key_but_never_the_secret() {
        let key = IssuerKey::from_bytes("SH-license-x", &[0x42; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("SH-license-x"));
        assert!(shown.contains(&hex(&key.public_key_bytes())));
        assert!(!shown.contains(&hex(&[0x42; 32])));
        assert!(!shown.contains("4242"));
    }

    #[test]
    fn kid_is_deterministic_and_names_region_and_service() {
        let key = IssuerKey::from_bytes("k", &[1u8; 32]);
        let a = kid_for("SH", "license", &key.public_key_bytes());
        let b = kid_for("SH", "license", &key.public_key_bytes());
        assert_eq!(a, b);
        assert!(a.starts_with("SH-license-"));
        assert_eq!(a.len(), "SH-license-".len() + 16);
        let other = IssuerKey::from_bytes("k", &[2u8; 32]);
        assert_ne!(a, kid_for("SH", "license", &other.public_key_bytes()));
    }

    #[test]
    fn signatures_verify_with_the_public_key() {
        let key = IssuerKey::generate("k").unwrap();
        let sig = key.sign(b"hello");
        assert!(key.verifying_key().verify(b"hello", &sig).is_ok());
    }

    #[test]
    fn jwk_carries_the_raw_public_key() {
        use base64::Engine as _;
        let key = IssuerKey::from_bytes("SH-license-j", &[3u8; 32]);
        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["kid"], "SH-license-j");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().unwrap())
            .unwrap();
        assert_eq!(x, key.public_key_bytes());
    }
}

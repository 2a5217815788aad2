//! Signing access tokens: used by the identity service only.

use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::{AccessClaims, AuthError, Jwk};

/// Signs access tokens with one Ed25519 key, naming it by `kid` in every header.
///
/// A signer is bound to its issuer (`credmesh-identity:<region>`) and refuses claims
/// naming another, so a misconfigured caller cannot mint tokens other regions would
/// attribute to someone else.
pub struct TokenSigner {
    kid: String,
    issuer: String,
    header: Header,
    encoding_key: EncodingKey,
    verifying_key: VerifyingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, only what names it.
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer for `key`, published under `kid`, issuing as `issuer`.
    pub fn new(kid: String, key: SigningKey, issuer: String) -> Result<Self, AuthError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|_| AuthError::InvalidKey("signing key cannot be encoded as pkcs#8".into()))?;
        let encoding_key = EncodingKey::from_ed_der(der.as_bytes());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        header.typ = Some("JWT".to_owned());
        Ok(TokenSigner {
            kid,
            issuer,
            header,
            encoding_key,
            verifying_key: key.verifying_key(),
        })
    }

    /// The key id tokens carry in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `iss` every token of this signer carries.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The compact JWS of `claims`; refuses claims whose `iss` is not this signer's.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        if claims.iss != self.issuer {
            return Err(AuthError::Signing(format!(
                "claims name issuer {}, this signer issues as {}",
                claims.iss, self.issuer
            )));
        }
        jsonwebtoken::encode(&self.header, claims, &self.encoding_key)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// The public key as a JWK, for the JWKS.
    pub fn jwk(&self) -> Jwk {
        Jwk::from_ed25519(self.kid.clone(), &self.verifying_key)
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ISSUER, claims, signer};

    #[test]
    fn a_token_verifies_with_a_standard_jose_library_from_the_published_jwk() {
        let signer = signer("sh-1", 1);
        let token = signer.sign(&claims("svc", "license.read")).unwrap();

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some("sh-1"));

        let json = serde_json::to_string(&signer.jwk()).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&json).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["license"]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims.sub, "svc");
    }

    #[test]
    fn a_signer_refuses_claims_naming_another_issuer() {
        let signer = signer("sh-1", 1);
        let mut claims = claims("svc", "s");
        claims.iss = "credmesh-identity:js".into();
        assert!(matches!(signer.sign(&claims), Err(AuthError::Signing(_))));
    }

    #[test]
    fn debug_output_names_the_kid_but_not_the_key() {
        let signer = signer("sh-1", 1);
        let debug = format!("{signer:?}");
        assert!(debug.contains("sh-1"));
        assert!(!debug.contains("encoding_key"));
    }
}

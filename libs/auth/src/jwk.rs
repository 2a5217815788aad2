//! Ed25519 public keys as JSON Web Keys (RFC 7517, OKP form of RFC 8037).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// One Ed25519 token signing key as published in the JWKS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    /// Key type: always `"OKP"`.
    pub kty: String,
    /// Curve: always `"Ed25519"`.
    pub crv: String,
    /// The raw 32-byte public key, base64url without padding.
    pub x: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// Public key use: `"sig"`. Optional when reading a key set.
    #[serde(rename = "use", default)]
    pub use_: String,
    /// Algorithm: `"EdDSA"`. Optional when reading a key set.
    #[serde(default)]
    pub alg: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn from_ed25519(kid: impl Into<String>, key: &VerifyingKey) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            kid: kid.into(),
            use_: "sig".to_owned(),
            alg: "EdDSA".to_owned(),
        }
    }

    /// The public key, after checking this is an Ed25519 signing key (`use` and `alg`,
    /// when present, must be `sig` and `EdDSA`) and that `x` is a valid curve point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, AuthError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(AuthError::InvalidKey(format!(
                "key {} is {}/{}, not OKP/Ed25519",
                self.kid, self.kty, self.crv
            )));
        }
        if !(self.use_.is_empty() || self.use_ == "sig")
            || !(self.alg.is_empty() || self.alg == "EdDSA")
        {
            return Err(AuthError::InvalidKey(format!(
                "key {} is not an EdDSA signing key",
                self.kid
            )));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(self.x.trim_end_matches('='))
            .map_err(|_| {
                AuthError::InvalidKey(format!("key {} has an x that is not base64url", self.kid))
            })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            AuthError::InvalidKey(format!("key {} does not have a 32-byte x", self.kid))
        })?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| {
            AuthError::InvalidKey(format!("key {} is not a valid curve point", self.kid))
        })
    }
}

/// A JSON Web Key Set: the document served by `GetJwks` and `/.well-known/jwks.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwks {
    /// The keys, current signing key first by convention.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// A key set holding `keys`.
    pub fn new(keys: impl IntoIterator<Item = Jwk>) -> Self {
        Jwks {
            keys: keys.into_iter().collect(),
        }
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Parses the JSON text of a key set.
    pub fn from_json(json: &str) -> Result<Self, AuthError> {
        serde_json::from_str(json)
            .map_err(|e| AuthError::KeySource(format!("key set is not valid jwks json: {e}")))
    }

    /// The JSON text of this key set.
    pub fn to_json(&self) -> String {
        // Serialising plain strings into JSON cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"keys\":[]}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn jwk_serialises_as_an_rfc_8037_okp_key() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let jwk = Jwk::from_ed25519("sh-2026-01", &key);
        let value = serde_json::to_value(&jwk).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
                "kid": "sh-2026-01",
                "use": "sig",
                "alg": "EdDSA",
            })
        );
        assert_eq!(jwk.verifying_key().unwrap(), key);
    }

    #[test]
    fn jwk_with_another_curve_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut jwk = Jwk::from_ed25519("k", &key);
        jwk.crv = "X25519".into();
        assert!(matches!(jwk.verifying_key(), Err(AuthError::InvalidKey(_))));
    }

    #[test]
    fn jwks_json_round_trips_and_tolerates_missing_use_and_alg() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let jwks = Jwks::new([Jwk::from_ed25519("k", &key)]);
        assert_eq!(Jwks::from_json(&jwks.to_json()).unwrap(), jwks);

        let bare = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}","kid":"k"}}]}}"#,
            URL_SAFE_NO_PAD.encode(key.as_bytes())
        );
        let parsed = Jwks::from_json(&bare).unwrap();
        assert_eq!(parsed.get("k").unwrap().verifying_key().unwrap(), key);
    }
}

//! SD-JWT (RFC 9901, Selective Disclosure for JWTs): issuing credmesh credentials in that
//! form and parsing and verifying it, so the verify gateway, the scan page and partner
//! code need no third-party SD-JWT library (and a fuzzer can reach every branch).
//!
//! The compact form is `<issuer-signed JWT>~<disclosure>~…~[<key binding JWT>]`. The
//! issuer-signed JWT (`alg: EdDSA`, `typ: dc+sd-jwt`, `kid`) carries in the clear the
//! credential's identity and window (`iss` — the raw issuer id `SH/entcode`, `sub`, `jti`,
//! `iat`, `nbf`, `exp`, `vct`), a private `cm` object (kind, version, region, nonce, as in
//! the VC-JWT) so that [`Disclosed::credential`] rebuilds the very credential the native
//! form carries, and one `_sd` digest (SHA-256, sorted) per claim. Each disclosure is
//! `[salt, name, value]`, base64url; its digest is taken over that base64url text as
//! received.
//!
//! Verification is stricter than RFC 9901 asks where the RFC leaves room, because a
//! verifier must never show something another verifier of the same text would not:
//!
//! - base64url must be canonical and unpadded; every segment is bounded in size;
//! - a disclosure whose digest is not in any `_sd` array (or `{"...": digest}` array
//!   element) refuses the whole SD-JWT rather than being dropped: it is either tampering
//!   or a bug, never something to show;
//! - a digest appearing twice, a disclosure given twice, a disclosed name that is
//!   `_sd`, `...`, one of the registered claims read in the clear, or a name already in
//!   its object are refused;
//! - a key binding JWT is refused: credmesh credentials bind no holder key (`cnf`), so
//!   there would be nothing to check it against.
//!
//! Decoys (digests no disclosure matches) are allowed and ignored, as the RFC says.
//! Disclosures nested in disclosed objects and array-element disclosures are processed
//! as RFC 9901 §7.1 describes, to a bounded depth, although credmesh issues only flat
//! string claims.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use credmesh_proto::credential::v1::{Claim, Credential, CredentialKind};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::envelope::MAX_ENVELOPE_LEN;
use crate::error::{FormatError, SignatureError};
use crate::keys::IssuerKey;
use crate::vcjwt::{ParsedJwt, parse_jws};

/// The JOSE `typ` of the issuer-signed JWT (RFC 9901, SD-JWT VC).
pub const TYP: &str = "dc+sd-jwt";
/// The `vct` (credential type) of enterprise-code presentations.
pub const PRESENTATION_VCT: &str = "urn:credmesh:entcode:presentation";
/// Upper bound on a whole SD-JWT, as for a VC-JWT: the 64 KiB payload bound grown by
/// base64url, twice over.
pub const MAX_SD_JWT_LEN: usize = 2 * MAX_ENVELOPE_LEN;
/// Upper bound on the number of disclosures (a scenario discloses about ten fields).
pub const MAX_DISCLOSURES: usize = 256;
/// How deep disclosures may nest inside disclosed values and the payload.
pub const MAX_DEPTH: usize = 16;

/// The only `_sd_alg` understood (and the RFC's default when the claim is absent).
const SD_ALG: &str = "sha-256";

/// Claims read in the clear from the issuer-signed JWT: never selectively disclosable,
/// so a disclosure cannot add one the signed part left out.
const CLEAR_CLAIMS: [&str; 11] = [
    "iss", "sub", "jti", "iat", "nbf", "exp", "vct", "cnf", "status", "cm", "_sd_alg",
];

/// Why an SD-JWT was refused. Every variant has a stable [`SdJwtError::reason`] and reads
/// as a sentence after "the SD-JWT was refused: ".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SdJwtError {
    /// The text is above [`MAX_SD_JWT_LEN`].
    #[error("it is {len} bytes, above the {max}-byte limit")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not `<jwt>~<disclosure>~…~[<kb-jwt>]`.
    #[error("it is not an SD-JWT ({0})")]
    Shape(&'static str),
    /// The issuer-signed JWT is not a well-formed EdDSA JWS of type `dc+sd-jwt`.
    #[error("the issuer-signed JWT is invalid: {0}")]
    Jwt(FormatError),
    /// More disclosures than [`MAX_DISCLOSURES`].
    #[error("it carries {count} disclosures, above the limit of {max}")]
    TooManyDisclosures {
        /// Disclosures seen.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A disclosure that is not canonical unpadded base64url.
    #[error("disclosure {index} is not valid base64url")]
    DisclosureBase64 {
        /// 1-based position among the disclosures.
        index: usize,
    },
    /// A disclosure that is not `[salt, name, value]` or `[salt, value]`.
    #[error("disclosure {index} is invalid: {problem}")]
    Disclosure {
        /// 1-based position among the disclosures.
        index: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A disclosure naming a claim that may not be disclosed.
    #[error("disclosure {index} names the reserved claim {name:?}")]
    ReservedName {
        /// 1-based position among the disclosures.
        index: usize,
        /// The name.
        name: String,
    },
    /// The same disclosure given twice.
    #[error("disclosure {index} repeats an earlier disclosure")]
    DuplicateDisclosure {
        /// 1-based position of the repeat.
        index: usize,
    },
    /// A key binding JWT is attached or malformed.
    #[error("{0}")]
    KeyBinding(&'static str),
    /// The issuer signature does not verify.
    #[error("the issuer signature does not verify: {0}")]
    Signature(SignatureError),
    /// The signed payload is not a JSON object of the expected shape.
    #[error("the signed payload is invalid: {0}")]
    Payload(String),
    /// `_sd_alg` names a hash other than sha-256.
    #[error("the digest algorithm {0:?} is not supported (only sha-256)")]
    SdAlg(String),
    /// A digest appears more than once in the signed payload and disclosures.
    #[error("the digest {0} appears more than once")]
    DuplicateDigest(String),
    /// A disclosure whose digest the issuer did not sign.
    #[error("disclosure {index} is not one the issuer signed (its digest is in no _sd array)")]
    Unreferenced {
        /// 1-based position among the disclosures.
        index: usize,
    },
    /// A disclosed name already present in its object.
    #[error("the claim {0:?} is disclosed where it already exists")]
    ClaimCollision(String),
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("disclosures nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The verified claims do not make a credmesh credential.
    #[error("the claims are not a credmesh credential: {0}")]
    Claims(String),
    /// A credential that cannot be expressed as an SD-JWT (when issuing).
    #[error("the credential cannot be issued as an SD-JWT: {0}")]
    Unissuable(String),
}

impl SdJwtError {
    /// The stable reason code for answers, metrics and logs. Problems of the
    /// issuer-signed JWT keep the VC-JWT's codes (`JWT_ALG`, …) and a failed signature
    /// `SIGNATURE_MISMATCH`, as for every other form.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "SD_JWT_TOO_LARGE",
            Self::Shape(_) => "SD_JWT_SHAPE",
            Self::Jwt(e) => e.reason(),
            Self::TooManyDisclosures { .. } => "SD_JWT_TOO_MANY_DISCLOSURES",
            Self::DisclosureBase64 { .. } => "SD_JWT_DISCLOSURE_BASE64",
            Self::Disclosure { .. } => "SD_JWT_DISCLOSURE",
            Self::ReservedName { .. } => "SD_JWT_RESERVED_NAME",
            Self::DuplicateDisclosure { .. } => "SD_JWT_DUPLICATE_DISCLOSURE",
            Self::KeyBinding(_) => "SD_JWT_KEY_BINDING",
            Self::Signature(e) => e.reason(),
            Self::Payload(_) => "SD_JWT_PAYLOAD",
            Self::SdAlg(_) => "SD_JWT_SD_ALG",
            Self::DuplicateDigest(_) => "SD_JWT_DUPLICATE_DIGEST",
            Self::Unreferenced { .. } => "SD_JWT_UNREFERENCED_DISCLOSURE",
            Self::ClaimCollision(_) => "SD_JWT_CLAIM_COLLISION",
            Self::TooDeep => "SD_JWT_TOO_DEEP",
            Self::Claims(_) => "SD_JWT_CLAIMS",
            Self::Unissuable(_) => "SD_JWT_UNISSUABLE",
        }
    }

    /// Whether the refusal means the data is not what the issuer signed (a bad
    /// signature, or a disclosure no signed digest covers), as opposed to malformed.
    pub fn is_tampering(&self) -> bool {
        matches!(self, Self::Signature(_) | Self::Unreferenced { .. })
    }
}

/// One disclosure as received: its base64url text and what it decodes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosure<'a> {
    encoded: &'a str,
    salt: String,
    name: Option<String>,
    value: Value,
}

impl Disclosure<'_> {
    /// The base64url text, exactly as received (its digest is taken over it).
    pub fn encoded(&self) -> &str {
        self.encoded
    }

    /// The salt.
    pub fn salt(&self) -> &str {
        &self.salt
    }

    /// The claim name; `None` for an array element disclosure.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The disclosed value, before nested disclosures are resolved.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The base64url SHA-256 digest of [`Self::encoded`].
    pub fn digest(&self) -> String {
        digest(self.encoded)
    }
}

fn digest(encoded: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(encoded.as_bytes()))
}

/// An SD-JWT split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct SdJwt<'a> {
    jwt: ParsedJwt<'a>,
    jwt_text: &'a str,
    disclosures: Vec<Disclosure<'a>>,
    key_binding: Option<&'a str>,
}

/// Whether `text` has the shape of an SD-JWT (a JWT then `~`), to tell it from the
/// other forms; [`parse`] decides whether it is one.
pub fn looks_like_sd_jwt(text: &str) -> bool {
    text.trim().split_once('~').is_some_and(|(jwt, _)| {
        jwt.split('.').count() == 3
            && jwt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    })
}

/// Splits and decodes an SD-JWT: the issuer-signed JWT's header (`alg: EdDSA`,
/// `typ: dc+sd-jwt`, `kid`, no `crit`), signature and payload bytes, every disclosure,
/// and the key binding JWT's shape if one is attached. Nothing is checked against a key
/// or the digests yet: see [`SdJwt::verify`].
pub fn parse(text: &str) -> Result<SdJwt<'_>, SdJwtError> {
    let text = text.trim();
    if text.len() > MAX_SD_JWT_LEN {
        return Err(SdJwtError::TooLarge {
            len: text.len(),
            max: MAX_SD_JWT_LEN,
        });
    }
    let Some((jwt_text, rest)) = text.split_once('~') else {
        return Err(SdJwtError::Shape("no ~ after the issuer-signed JWT"));
    };
    if jwt_text.trim_end() != jwt_text {
        return Err(SdJwtError::Shape("white space before the first ~"));
    }
    let jwt = parse_jws(jwt_text, &[TYP, "application/dc+sd-jwt"]).map_err(SdJwtError::Jwt)?;
    // `rest` is `d1~d2~…~dn~` followed by the key binding JWT or nothing.
    let (disclosed, last) = match rest.rsplit_once('~') {
        Some((disclosed, last)) => (Some(disclosed), last),
        None => (None, rest),
    };
    let key_binding = if last.is_empty() {
        None
    } else {
        let ok = last.split('.').count() == 3
            && last.split('.').all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(SdJwtError::Shape(
                "it does not end with ~ or a key binding JWT",
            ));
        }
        Some(last)
    };
    let mut disclosures = Vec::new();
    let mut seen = HashSet::new();
    for (i, encoded) in disclosed.into_iter().flat_map(|d| d.split('~')).enumerate() {
        let index = i + 1;
        if index > MAX_DISCLOSURES {
            let count = disclosed.map_or(0, |d| d.split('~').count());
            return Err(SdJwtError::TooManyDisclosures {
                count,
                max: MAX_DISCLOSURES,
            });
        }
        if encoded.is_empty() {
            return Err(SdJwtError::Shape("a disclosure is empty (~~)"));
        }
        if !seen.insert(encoded) {
            return Err(SdJwtError::DuplicateDisclosure { index });
        }
        disclosures.push(decode_disclosure(index, encoded)?);
    }
    Ok(SdJwt {
        jwt,
        jwt_text,
        disclosures,
        key_binding,
    })
}

fn decode_disclosure(index: usize, encoded: &str) -> Result<Disclosure<'_>, SdJwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| SdJwtError::DisclosureBase64 { index })?;
    let bad = |problem| SdJwtError::Disclosure { index, problem };
    let array: Vec<Value> = serde_json::from_slice(&bytes).map_err(|_| bad("not a JSON array"))?;
    let mut items = array.into_iter();
    let (salt, name, value) = match (items.next(), items.next(), items.next(), items.next()) {
        (Some(salt), Some(name), Some(value), None) => {
            let Value::String(name) = name else {
                return Err(bad("the claim name is not a string"));
            };
            (salt, Some(name), value)
        }
        (Some(salt), Some(value), None, None) => (salt, None, value),
        _ => return Err(bad("not [salt, name, value] or [salt, value]")),
    };
    let Value::String(salt) = salt else {
        return Err(bad("the salt is not a string"));
    };
    if salt.is_empty() {
        return Err(bad("the salt is empty"));
    }
    if let Some(n) = &name
        && (n == "_sd" || n == "..." || n == "_sd_alg")
    {
        return Err(SdJwtError::ReservedName {
            index,
            name: n.clone(),
        });
    }
    Ok(Disclosure {
        encoded,
        salt,
        name,
        value,
    })
}

/// The claims of a verified SD-JWT.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosed {
    /// The payload with every disclosure put in place of its digest and `_sd` /
    /// `_sd_alg` removed: what an RFC 9901 verifier hands its caller.
    pub payload: Map<String, Value>,
    /// The disclosed top-level claims, in the order their disclosures came.
    pub claims: Vec<(String, Value)>,
    /// The key id that signed it.
    pub kid: String,
}

impl<'a> SdJwt<'a> {
    /// The key id from the issuer-signed JWT's header.
    pub fn kid(&self) -> &str {
        self.jwt.kid()
    }

    /// The issuer-signed JWT.
    pub fn jwt(&self) -> &ParsedJwt<'a> {
        &self.jwt
    }

    /// The disclosures, in the order received.
    pub fn disclosures(&self) -> &[Disclosure<'a>] {
        &self.disclosures
    }

    /// The key binding JWT, if one is attached.
    pub fn key_binding(&self) -> Option<&'a str> {
        self.key_binding
    }

    /// The compact form again, from the parts: the (trimmed) text parsed.
    pub fn to_compact(&self) -> String {
        let mut out = String::from(self.jwt_text);
        out.push('~');
        for d in &self.disclosures {
            out.push_str(d.encoded);
            out.push('~');
        }
        if let Some(kb) = self.key_binding {
            out.push_str(kb);
        }
        out
    }

    /// Checks the issuer signature with `key` (strict Ed25519), then every disclosure
    /// against the signed digests, and returns the disclosed claims.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Disclosed, SdJwtError> {
        self.jwt
            .check_signature(key)
            .map_err(SdJwtError::Signature)?;
        self.disclose()
    }

    /// The digest checks and claim resolution of [`Self::verify`], for a caller that
    /// checked the signature itself (the batch verifier). Call only after that check.
    pub(crate) fn disclose(&self) -> Result<Disclosed, SdJwtError> {
        if self.key_binding.is_some() {
            return Err(SdJwtError::KeyBinding(
                "a key binding JWT is attached, but credmesh credentials bind no holder key",
            ));
        }
        let payload: Value = serde_json::from_slice(self.jwt.payload_json())
            .map_err(|e| SdJwtError::Payload(e.to_string()))?;
        let Value::Object(mut payload) = payload else {
            return Err(SdJwtError::Payload("not a JSON object".into()));
        };
        match payload.remove("_sd_alg") {
            None => {}
            Some(Value::String(alg)) if alg == SD_ALG => {}
            Some(Value::String(alg)) => return Err(SdJwtError::SdAlg(alg)),
            Some(_) => return Err(SdJwtError::Payload("_sd_alg is not a string".into())),
        }
        let by_digest: HashMap<String, usize> = self
            .disclosures
            .iter()
            .enumerate()
            .map(|(i, d)| (d.digest(), i))
            .collect();
        let mut walk = Walk {
            disclosures: &self.disclosures,
            by_digest,
            seen: HashSet::new(),
            used: vec![false; self.disclosures.len()],
            top: Vec::new(),
        };
        walk.object(&mut payload, 0, true)?;
        if let Some(i) = walk.used.iter().position(|u| !u) {
            return Err(SdJwtError::Unreferenced { index: i + 1 });
        }
        let mut top = walk.top;
        top.sort_by_key(|(i, _)| *i);
        let claims = top
            .into_iter()
            .map(|(_, name)| {
                let value = payload.get(&name).cloned().unwrap_or(Value::Null);
                (name, value)
            })
            .collect();
        Ok(Disclosed {
            payload,
            claims,
            kid: self.kid().to_owned(),
        })
    }
}

/// The recursive resolution of RFC 9901 §7.1 (steps 3 to 5).
struct Walk<'d, 'a> {
    disclosures: &'d [Disclosure<'a>],
    by_digest: HashMap<String, usize>,
    /// Every digest met so far, anywhere: each may appear once.
    seen: HashSet<String>,
    used: Vec<bool>,
    /// Disclosures put into the top-level object: (position, name).
    top: Vec<(usize, String)>,
}

impl Walk<'_, '_> {
    fn see(&mut self, digest: &str) -> Result<Option<usize>, SdJwtError> {
        if !self.seen.insert(digest.to_owned()) {
            return Err(SdJwtError::DuplicateDigest(digest.to_owned()));
        }
        Ok(self.by_digest.get(digest).copied())
    }

    fn object(
        &mut self,
        object: &mut Map<String, Value>,
        depth: usize,
        top: bool,
    ) -> Result<(), SdJwtError> {
        if depth > MAX_DEPTH {
            return Err(SdJwtError::TooDeep);
        }
        if !top && object.contains_key("_sd_alg") {
            return Err(SdJwtError::Payload("_sd_alg below the top level".into()));
        }
        // The object's own members first, so that disclosed values (resolved below,
        // with their own nesting) are not walked twice.
        for (name, value) in object.iter_mut() {
            if name != "_sd" {
                self.value(value, depth + 1)?;
            }
        }
        let digests = match object.remove("_sd") {
            None => return Ok(()),
            Some(Value::Array(digests)) => digests,
            Some(_) => return Err(SdJwtError::Payload("an _sd member is not an array".into())),
        };
        for d in digests {
            let Value::String(d) = d else {
                return Err(SdJwtError::Payload("an _sd digest is not a string".into()));
            };
            let Some(i) = self.see(&d)? else {
                continue; // a decoy
            };
            let disclosure = &self.disclosures[i];
            let index = i + 1;
            let Some(name) = disclosure.name.clone() else {
                return Err(SdJwtError::Disclosure {
                    index,
                    problem: "an array element disclosure is referenced from an _sd array",
                });
            };
            if top && CLEAR_CLAIMS.contains(&name.as_str()) {
                return Err(SdJwtError::ReservedName { index, name });
            }
            if object.contains_key(&name) {
                return Err(SdJwtError::ClaimCollision(name));
            }
            let mut value = disclosure.value.clone();
            self.used[i] = true;
            self.value(&mut value, depth + 1)?;
            if top {
                self.top.push((i, name.clone()));
            }
            object.insert(name, value);
        }
        Ok(())
    }

    fn value(&mut self, value: &mut Value, depth: usize) -> Result<(), SdJwtError> {
        if depth > MAX_DEPTH {
            return Err(SdJwtError::TooDeep);
        }
        match value {
            Value::Object(o) => self.object(o, depth, false),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for mut item in std::mem::take(items) {
                    let reference = match &item {
                        Value::Object(o) if o.len() == 1 && o.contains_key("...") => {
                            match &o["..."] {
                                Value::String(d) => Some(d.clone()),
                                _ => {
                                    return Err(SdJwtError::Payload(
                                        "an array element digest is not a string".into(),
                                    ));
                                }
                            }
                        }
                        _ => None,
                    };
                    match reference {
                        Some(d) => {
                            let Some(i) = self.see(&d)? else {
                                continue; // a decoy element
                            };
                            let disclosure = &self.disclosures[i];
                            if disclosure.name.is_some() {
                                return Err(SdJwtError::Disclosure {
                                    index: i + 1,
                                    problem: "an object property disclosure is referenced as an array element",
                                });
                            }
                            let mut element = disclosure.value.clone();
                            self.used[i] = true;
                            self.value(&mut element, depth + 1)?;
                            out.push(element);
                        }
                        None => {
                            self.value(&mut item, depth + 1)?;
                            out.push(item);
                        }
                    }
                }
                *items = out;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The `vct` of a credential kind.
pub fn vct(kind: i32) -> &'static str {
    match CredentialKind::try_from(kind) {
        Ok(CredentialKind::Presentation) => PRESENTATION_VCT,
        Ok(CredentialKind::BusinessLicense) => "urn:credmesh:business_license",
        Ok(CredentialKind::EnterpriseCode) => "urn:credmesh:enterprise_code",
        Ok(CredentialKind::Certificate) => "urn:credmesh:certificate",
        Ok(CredentialKind::InspectionCode) => "urn:credmesh:inspection_code",
        Ok(CredentialKind::Unspecified) | Err(_) => "urn:credmesh:unknown",
    }
}

#[derive(Deserialize)]
struct ClearIn {
    iss: String,
    sub: String,
    jti: String,
    iat: i64,
    nbf: i64,
    #[serde(default)]
    exp: Option<i64>,
    vct: String,
    cm: CmIn,
}

#[derive(Deserialize)]
struct CmIn {
    kind: i32,
    #[serde(default)]
    version: u32,
    region: String,
    #[serde(default)]
    nonce: Option<String>,
    /// The status reference, as in the VC-JWT's `cm.status`.
    #[serde(default)]
    status: Option<CmStatus>,
}

#[derive(Deserialize)]
struct CmStatus {
    list: String,
    index: u64,
}

impl Disclosed {
    /// Rebuilds the credential the native form carries: identity and window from the
    /// clear claims and `cm`, the disclosed claims (which must be strings) in the order
    /// they were disclosed. Only as trustworthy as the signature checked before.
    pub fn credential(&self) -> Result<Credential, SdJwtError> {
        let clear: ClearIn = serde_json::from_value(Value::Object(self.payload.clone()))
            .map_err(|e| SdJwtError::Claims(e.to_string()))?;
        if clear.vct != vct(clear.cm.kind) {
            return Err(SdJwtError::Claims(format!(
                "vct {:?} does not name kind {}",
                clear.vct, clear.cm.kind
            )));
        }
        let nonce = match clear.cm.nonce {
            Some(n) => URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| SdJwtError::Claims("cm.nonce is not base64url".into()))?,
            None => Vec::new(),
        };
        let claims = self
            .claims
            .iter()
            .map(|(name, value)| match value {
                Value::String(v) => Ok(Claim {
                    name: name.clone(),
                    value: v.clone(),
                }),
                _ => Err(SdJwtError::Claims(format!(
                    "the disclosed claim {name:?} is not a string"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Credential {
            id: clear.jti,
            kind: clear.cm.kind,
            issuer: clear.iss,
            region: clear.cm.region,
            subject: clear.sub,
            issued_at: clear.iat,
            not_before: clear.nbf,
            not_after: clear.exp.unwrap_or(0),
            status: clear
                .cm
                .status
                .map(|s| credmesh_proto::credential::v1::StatusReference {
                    list_id: s.list,
                    index: s.index,
                }),
            claims,
            version: clear.cm.version,
            nonce,
        })
    }
}

/// Renders `credential` as an SD-JWT signed with `key`: every claim selectively
/// disclosable (one disclosure each, salts from `salt`, all attached), `public` extra
/// string claims in the clear (entcode's `scenario`), no key binding.
///
/// A status reference travels in `cm.status` (`{"list", "index"}`, as in the VC-JWT),
/// so the SD-JWT form is checked against the same status list as the native form.
///
/// Refused: claims sharing a name, and claim names that are reserved or clash with a
/// clear claim — the verifier would refuse the result.
pub fn issue(
    credential: &Credential,
    key: &IssuerKey,
    public: &[(&str, &str)],
    mut salt: impl FnMut() -> [u8; 16],
) -> Result<String, SdJwtError> {
    let refuse = |why: String| Err(SdJwtError::Unissuable(why));
    let mut names: HashSet<&str> = HashSet::new();
    for (name, _) in public {
        if CLEAR_CLAIMS.contains(name) || *name == "_sd" || !names.insert(name) {
            return refuse(format!("the clear claim {name:?} is reserved or repeated"));
        }
    }
    let mut disclosures = Vec::with_capacity(credential.claims.len());
    let mut digests = Vec::with_capacity(credential.claims.len());
    for claim in &credential.claims {
        let name = claim.name.as_str();
        if CLEAR_CLAIMS.contains(&name) || matches!(name, "_sd" | "...") || !names.insert(name) {
            return refuse(format!("the claim {name:?} is reserved or repeated"));
        }
        let json = json!([URL_SAFE_NO_PAD.encode(salt()), name, claim.value]).to_string();
        let encoded = URL_SAFE_NO_PAD.encode(json.as_bytes());
        digests.push(digest(&encoded));
        disclosures.push(encoded);
    }
    if disclosures.len() > MAX_DISCLOSURES {
        return refuse(format!("it has more than {MAX_DISCLOSURES} claims"));
    }
    // Sorted, so the digests' order says nothing about the claims' order.
    digests.sort();
    let mut cm = json!({
        "kind": credential.kind,
        "version": credential.version,
        "region": credential.region,
    });
    if !credential.nonce.is_empty() {
        cm["nonce"] = json!(URL_SAFE_NO_PAD.encode(&credential.nonce));
    }
    if let Some(status) = &credential.status {
        cm["status"] = json!({"list": status.list_id, "index": status.index});
    }
    let mut payload = json!({
        "iss": credential.issuer,
        "sub": credential.subject,
        "jti": credential.id,
        "iat": credential.issued_at,
        "nbf": credential.not_before,
        "vct": vct(credential.kind),
        "cm": cm,
        "_sd_alg": SD_ALG,
        "_sd": digests,
    });
    if credential.not_after != 0 {
        payload["exp"] = json!(credential.not_after);
    }
    for (name, value) in public {
        payload[*name] = json!(value);
    }
    let header = json!({"alg": "EdDSA", "typ": TYP, "kid": key.kid()});
    let mut out = URL_SAFE_NO_PAD.encode(header.to_string().as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes()));
    let signature = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    out.push('~');
    for d in disclosures {
        out.push_str(&d);
        out.push('~');
    }
    if out.len() > MAX_SD_JWT_LEN {
        return refuse(format!("it would be above {MAX_SD_JWT_LEN} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

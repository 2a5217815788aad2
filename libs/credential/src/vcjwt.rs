//! The interop form: a W3C Verifiable Credential 2.0 secured as a JOSE JWT
//! (VC-JOSE-COSE, `typ: vc+jwt`, `alg: EdDSA`), verifiable by any JOSE library against
//! the published JWKS.
//!
//! The JSON is written by hand, field by field, so that claims keep the issuer's order
//! (serde_json without `preserve_order` would sort them) and the output is byte-for-byte
//! deterministic. A private claim `cm` carries what the VC vocabulary cannot say exactly
//! (kind number, version, status reference, nonce, raw issuer and region), so that
//! [`ParsedJwt::credential`] rebuilds the very [`Credential`] the native form carries.
//!
//! The JWS signature covers the ASCII signing input `header.payload` as JOSE defines it;
//! it cannot be confused with an envelope signature, whose message starts with
//! "credmesh/", never with the "eyJ" of a base64url JSON object.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use credmesh_proto::credential::v1::{
    Claim, Credential, CredentialKind, StatusList, StatusPurpose, StatusReference,
};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::envelope::MAX_ENVELOPE_LEN;
use crate::error::{FormatError, SignatureError};
use crate::keys::IssuerKey;

/// The VC 2.0 base context.
const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// Upper bound on a token: base64url grows the 64 KiB payload bound by a third.
const MAX_JWT_LEN: usize = 2 * MAX_ENVELOPE_LEN;
/// URN prefix of the VC issuer id and the JWT `iss`.
const ISSUER_URN: &str = "urn:credmesh:issuer:";
/// URN prefix of an enterprise subject (USCC).
const USCC_URN: &str = "urn:uscc:";
/// URN prefix of an inspection task subject.
const TASK_URN: &str = "urn:credmesh:task:";

/// How VC-JWTs are rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VcOptions {
    /// Base URL of the region's public HTTP surface (for example
    /// `https://verify.sh.example`), from which `credentialStatus` URLs are formed as
    /// `<base>/v1/status/<list_id>/<purpose>`. A trailing slash is ignored; the list id
    /// keeps its slashes (`…/v1/status/SH/license/0/revocation`).
    pub status_base_url: String,
}

/// A stable lowercase name of a credential kind, for metrics and JSON answers
/// (`business_license`, `enterprise_code`, `presentation`, `certificate`,
/// `inspection_code`; `unknown` for anything else).
pub fn kind_name(kind: i32) -> &'static str {
    match CredentialKind::try_from(kind) {
        Ok(CredentialKind::BusinessLicense) => "business_license",
        Ok(CredentialKind::EnterpriseCode) => "enterprise_code",
        Ok(CredentialKind::Presentation) => "presentation",
        Ok(CredentialKind::Certificate) => "certificate",
        Ok(CredentialKind::InspectionCode) => "inspection_code",
        Ok(CredentialKind::Unspecified) | Err(_) => "unknown",
    }
}

/// The VC type naming a credential kind, after "VerifiableCredential".
pub fn vc_type(kind: i32) -> &'static str {
    match CredentialKind::try_from(kind) {
        Ok(CredentialKind::BusinessLicense) => "BusinessLicenseCredential",
        Ok(CredentialKind::EnterpriseCode) => "EnterpriseCodeCredential",
        Ok(CredentialKind::Presentation) => "EnterpriseCodePresentationCredential",
        Ok(CredentialKind::Certificate) => "CertificateCredential",
        Ok(CredentialKind::InspectionCode) => "InspectionCodeCredential",
        Ok(CredentialKind::Unspecified) | Err(_) => "CredmeshCredential",
    }
}

/// The VC `id` of a credential: GB/T 36904 e-license ids (`1.2.156.…`) become
/// `urn:gbt36904:<id>`, URNs stay as they are, anything else becomes
/// `urn:credmesh:credential:<id>` (the VC `id` must be a URL).
pub fn vc_id(id: &str) -> String {
    if id.starts_with("1.2.156.") {
        format!("urn:gbt36904:{id}")
    } else if id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        id.to_owned()
    } else {
        format!("urn:credmesh:credential:{id}")
    }
}

fn subject_urn_prefix(kind: i32) -> &'static str {
    if kind == CredentialKind::InspectionCode as i32 {
        TASK_URN
    } else {
        USCC_URN
    }
}

/// Claims can sit directly in `credentialSubject` when their names are unique and none
/// is "id"; otherwise the exact list also travels in `cm.claims`.
fn claims_fit_subject(claims: &[Claim]) -> bool {
    claims.iter().all(|c| c.name != "id") && !has_duplicate_names(claims)
}

/// Whether two claims share a name: pairwise for the usual dozen claims, hashed for
/// long lists so a hostile token cannot make the check quadratic.
fn has_duplicate_names(claims: &[Claim]) -> bool {
    if claims.len() <= 16 {
        claims
            .iter()
            .enumerate()
            .any(|(i, c)| claims[..i].iter().any(|e| e.name == c.name))
    } else {
        let mut seen = HashSet::with_capacity(claims.len());
        !claims.iter().all(|c| seen.insert(c.name.as_str()))
    }
}

/// Writes JSON text in a fixed order. Only strings and integers are needed.
struct Json {
    out: String,
    /// Whether the next member of the innermost open object/array needs a comma.
    comma: bool,
}

impl Json {
    fn new() -> Self {
        Self {
            out: String::with_capacity(1024),
            comma: false,
        }
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
    }

    fn open(&mut self, c: char) {
        self.sep();
        self.out.push(c);
        self.comma = false;
    }

    fn close(&mut self, c: char) {
        self.out.push(c);
        self.comma = true;
    }

    fn key(&mut self, key: &str) {
        self.sep();
        push_json_string(&mut self.out, key);
        self.out.push(':');
        self.comma = false;
    }

    fn str(&mut self, value: &str) {
        self.sep();
        push_json_string(&mut self.out, value);
    }

    fn int(&mut self, value: impl fmt::Display) {
        self.sep();
        self.out.push_str(&value.to_string());
    }

    fn field_str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.str(value);
    }

    fn field_int(&mut self, key: &str, value: impl fmt::Display) {
        self.key(key);
        self.int(value);
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    // Runs that need no escape are copied whole. Every byte of a multi-byte UTF-8
    // character is >= 0x80, so the bytes that need one are all ASCII, and slicing at
    // them stays on character boundaries.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        // The short escape, or `None` for a control character written as `\u00XX`.
        let short = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..0x20 => None,
            _ => continue,
        };
        out.push_str(&s[run..i]);
        run = i + 1;
        match short {
            Some(escape) => out.push_str(escape),
            None => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// RFC 3339 UTC ("2025-03-01T00:00:00Z"), or `None` outside years 0000–9999 where
/// RFC 3339 has no representation (the numeric `nbf`/`exp` still carry the value).
pub(crate) fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

fn status_url(base: &str, list_id: &str, purpose: &str) -> String {
    format!(
        "{}/v1/status/{list_id}/{purpose}",
        base.trim_end_matches('/')
    )
}

/// Renders a credential as a signed VC-JWT.
///
/// The payload's members, in order: `@context`, `id`, `type`, `issuer` (`id`
/// `urn:credmesh:issuer:<issuer>`, `region`), `validFrom`, `validUntil` (when
/// `not_after` ≠ 0), `credentialSubject` (`id` `urn:uscc:<subject>` or
/// `urn:credmesh:task:<task>` for inspection codes, then each claim in the issuer's
/// order), `credentialStatus` (revocation and suspension `BitstringStatusListEntry`s when
/// the credential has a status reference), then the JWT claims `iss`, `sub`, `jti` (the
/// raw credential id), `iat`, `nbf`, `exp` (when `not_after` ≠ 0) and the private `cm`.
pub fn to_vc_jwt(credential: &Credential, key: &IssuerKey, options: &VcOptions) -> String {
    let mut header = Json::new();
    header.open('{');
    header.field_str("alg", "EdDSA");
    header.field_str("kid", key.kid());
    header.field_str("typ", "vc+jwt");
    header.close('}');

    let payload = payload_json(credential, options);

    let mut token = String::with_capacity((header.out.len() + payload.len()) * 4 / 3 + 100);
    URL_SAFE_NO_PAD.encode_string(header.out.as_bytes(), &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    token
}

fn payload_json(c: &Credential, options: &VcOptions) -> String {
    let issuer_urn = format!("{ISSUER_URN}{}", c.issuer);
    let subject_urn = format!("{}{}", subject_urn_prefix(c.kind), c.subject);
    let fits = claims_fit_subject(&c.claims);

    let mut j = Json::new();
    j.open('{');
    j.key("@context");
    j.open('[');
    j.str(VC_CONTEXT);
    j.close(']');
    j.field_str("id", &vc_id(&c.id));
    j.key("type");
    j.open('[');
    j.str("VerifiableCredential");
    j.str(vc_type(c.kind));
    j.close(']');
    j.key("issuer");
    j.open('{');
    j.field_str("id", &issuer_urn);
    j.field_str("region", &c.region);
    j.close('}');
    if let Some(from) = rfc3339(c.not_before) {
        j.field_str("validFrom", &from);
    }
    if c.not_after != 0
        && let Some(until) = rfc3339(c.not_after)
    {
        j.field_str("validUntil", &until);
    }
    j.key("credentialSubject");
    j.open('{');
    j.field_str("id", &subject_urn);
    if fits {
        for claim in &c.claims {
            j.field_str(&claim.name, &claim.value);
        }
    } else {
        // The subject shows each name once (its first value) and never shadows `id`;
        // `cm.claims` is then authoritative.
        let mut shown = HashSet::from(["id"]);
        for claim in &c.claims {
            if shown.insert(claim.name.as_str()) {
                j.field_str(&claim.name, &claim.value);
            }
        }
    }
    j.close('}');
    if let Some(status) = &c.status {
        j.key("credentialStatus");
        j.open('[');
        for purpose in ["revocation", "suspension"] {
            let list_url = status_url(&options.status_base_url, &status.list_id, purpose);
            j.open('{');
            j.field_str("id", &format!("{list_url}#{}", status.index));
            j.field_str("type", "BitstringStatusListEntry");
            j.field_str("statusPurpose", purpose);
            j.field_str("statusListIndex", &status.index.to_string());
            j.field_str("statusListCredential", &list_url);
            j.close('}');
        }
        j.close(']');
    }
    j.field_str("iss", &issuer_urn);
    j.field_str("sub", &subject_urn);
    j.field_str("jti", &c.id);
    j.field_int("iat", c.issued_at);
    j.field_int("nbf", c.not_before);
    if c.not_after != 0 {
        j.field_int("exp", c.not_after);
    }
    j.key("cm");
    j.open('{');
    j.field_int("kind", c.kind);
    j.field_int("version", c.version);
    j.field_str("issuer", &c.issuer);
    j.field_str("region", &c.region);
    if let Some(status) = &c.status {
        j.key("status");
        j.open('{');
        j.field_str("list", &status.list_id);
        j.field_int("index", status.index);
        j.close('}');
    }
    if !c.nonce.is_empty() {
        j.field_str("nonce", &URL_SAFE_NO_PAD.encode(&c.nonce));
    }
    if !fits {
        j.key("claims");
        j.open('[');
        for claim in &c.claims {
            j.open('[');
            j.str(&claim.name);
            j.str(&claim.value);
            j.close(']');
        }
        j.close(']');
    }
    j.close('}');
    j.close('}');
    j.out
}

/// The W3C `statusPurpose` name of a status purpose ("revocation", "suspension",
/// "superseded"), as used in status list URLs; `None` for `UNSPECIFIED` and unknown values.
pub fn status_purpose_name(purpose: i32) -> Option<&'static str> {
    match StatusPurpose::try_from(purpose).ok()? {
        StatusPurpose::Revocation => Some("revocation"),
        StatusPurpose::Suspension => Some("suspension"),
        StatusPurpose::Superseded => Some("superseded"),
        StatusPurpose::Unspecified => None,
    }
}

/// Renders a status list as a W3C `BitstringStatusListCredential` secured as a VC-JWT,
/// the document a credential's `credentialStatus.statusListCredential` URL serves.
///
/// `url` is that URL (it becomes the credential `id` and `sub`); `valid_until` (Unix
/// seconds, 0 for none) tells relying parties when to fetch a newer list. The payload's
/// members, in order: `@context`, `id`, `type`, `issuer`, `validFrom` (the list's
/// `updated_at`), `validUntil`, `credentialSubject` (`id` `<url>#list`, `type`
/// `BitstringStatusList`, `statusPurpose`, `encodedList`), then `iss`, `sub`, `iat`,
/// `nbf`, `exp` and a private `cm` with the list id, size and sequence.
pub fn status_list_vc_jwt(
    list: &StatusList,
    url: &str,
    valid_until: i64,
    key: &IssuerKey,
) -> String {
    let issuer_urn = format!("{ISSUER_URN}{}", list.issuer);
    let purpose = status_purpose_name(list.purpose).unwrap_or("revocation");
    let mut j = Json::new();
    j.open('{');
    j.key("@context");
    j.open('[');
    j.str(VC_CONTEXT);
    j.close(']');
    j.field_str("id", url);
    j.key("type");
    j.open('[');
    j.str("VerifiableCredential");
    j.str("BitstringStatusListCredential");
    j.close(']');
    j.key("issuer");
    j.open('{');
    j.field_str("id", &issuer_urn);
    j.close('}');
    if let Some(from) = rfc3339(list.updated_at) {
        j.field_str("validFrom", &from);
    }
    if valid_until != 0
        && let Some(until) = rfc3339(valid_until)
    {
        j.field_str("validUntil", &until);
    }
    j.key("credentialSubject");
    j.open('{');
    j.field_str("id", &format!("{url}#list"));
    j.field_str("type", "BitstringStatusList");
    j.field_str("statusPurpose", purpose);
    j.field_str("encodedList", &list.encoded_list);
    j.close('}');
    j.field_str("iss", &issuer_urn);
    j.field_str("sub", url);
    j.field_int("iat", list.updated_at);
    j.field_int("nbf", list.updated_at);
    if valid_until != 0 {
        j.field_int("exp", valid_until);
    }
    j.key("cm");
    j.open('{');
    j.field_str("list", &list.list_id);
    j.field_int("size", list.size);
    j.field_int("sequence", list.sequence);
    j.close('}');
    j.close('}');
    sign_jws(&j.out, key)
}

/// Signs a JSON payload as a compact JWS with header `{"alg":"EdDSA","kid":…,"typ":"vc+jwt"}`.
fn sign_jws(payload: &str, key: &IssuerKey) -> String {
    let mut header = Json::new();
    header.open('{');
    header.field_str("alg", "EdDSA");
    header.field_str("kid", key.kid());
    header.field_str("typ", "vc+jwt");
    header.close('}');
    let mut token = String::with_capacity((header.out.len() + payload.len()) * 4 / 3 + 100);
    URL_SAFE_NO_PAD.encode_string(header.out.as_bytes(), &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    token
}

/// A VC-JWT split and decoded once: header checked, signature decoded, payload bytes
/// ready to parse. Borrowing the token keeps the signing input without a copy.
#[derive(Debug, Clone)]
pub struct ParsedJwt<'a> {
    signing_input: &'a str,
    kid: String,
    signature: Signature,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn b64(segment: &str, what: &'static str) -> Result<Vec<u8>, FormatError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| FormatError::JwtBase64(what))
}

/// Splits and decodes a VC-JWT without checking its signature: the header must say
/// `alg: EdDSA`, `typ: vc+jwt` (or `application/vc+jwt`) and carry a `kid`; a `crit`
/// header is refused because no extension is understood.
pub fn parse_vc_jwt(token: &str) -> Result<ParsedJwt<'_>, FormatError> {
    parse_jws(token, &["vc+jwt", "application/vc+jwt"])
}

/// Splits and decodes a compact JWS whose header says `alg: EdDSA`, one of the `types`
/// (compared ignoring ASCII case), a non-empty `kid` and no `crit`; the signature is not
/// checked. Shared by the VC-JWT and the issuer-signed part of an SD-JWT.
pub(crate) fn parse_jws<'a>(
    token: &'a str,
    types: &[&'static str],
) -> Result<ParsedJwt<'a>, FormatError> {
    let token = token.trim();
    if token.len() > MAX_JWT_LEN {
        return Err(FormatError::JwtTooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload_segment), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FormatError::JwtShape);
    };
    let header_json = b64(header, "header")?;
    let header_in: HeaderIn = serde_json::from_slice(&header_json)
        .map_err(|_| FormatError::JwtHeader("not a JSON object with alg"))?;
    if header_in.alg != "EdDSA" {
        return Err(FormatError::JwtAlg(header_in.alg));
    }
    match header_in.typ.as_deref() {
        Some(t) if types.iter().any(|ok| t.eq_ignore_ascii_case(ok)) => {}
        _ => {
            return Err(FormatError::JwtTyp(
                types.first().copied().unwrap_or_default(),
            ));
        }
    }
    if header_in.crit.is_some() {
        return Err(FormatError::JwtHeader("crit extensions are not supported"));
    }
    let kid = match header_in.kid {
        Some(kid) if !kid.is_empty() => kid,
        _ => return Err(FormatError::JwtKid),
    };
    let signature_bytes = b64(signature, "signature")?;
    let signature = Signature::from_slice(&signature_bytes)
        .map_err(|_| FormatError::SignatureLength(signature_bytes.len()))?;
    let payload = b64(payload_segment, "payload")?;
    Ok(ParsedJwt {
        signing_input: &token[..header.len() + 1 + payload_segment.len()],
        kid,
        signature,
        payload,
    })
}

impl<'a> ParsedJwt<'a> {
    /// The key id from the protected header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The exact bytes the signature covers (`header.payload`).
    pub fn signing_input(&self) -> &'a [u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded Ed25519 signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The decoded payload (JSON), for callers that want the VC document itself.
    pub fn payload_json(&self) -> &[u8] {
        &self.payload
    }

    /// Checks the JWS signature with strict Ed25519 verification against a key decoded
    /// once in advance (the verifier's trust snapshot).
    pub fn check_signature(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        key.verify_strict(self.signing_input(), &self.signature)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// Rebuilds the credential from the claims. Call after [`Self::check_signature`]:
    /// the result is only as trustworthy as the signature.
    pub fn credential(&self) -> Result<Credential, FormatError> {
        let p: PayloadIn = serde_json::from_slice(&self.payload)
            .map_err(|e| FormatError::JwtClaims(e.to_string()))?;
        let prefix = subject_urn_prefix(p.cm.kind);
        let subject = p
            .sub
            .strip_prefix(prefix)
            .ok_or_else(|| FormatError::JwtClaims(format!("sub does not start with {prefix}")))?
            .to_owned();
        if p.credential_subject.id.as_deref() != Some(p.sub.as_str()) {
            return Err(FormatError::JwtClaims(
                "credentialSubject.id differs from sub".into(),
            ));
        }
        let nonce = match p.cm.nonce {
            Some(n) => URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| FormatError::JwtClaims("cm.nonce is not base64url".into()))?,
            None => Vec::new(),
        };
        let claims = match p.cm.claims {
            Some(list) => list
                .into_iter()
                .map(|(name, value)| Claim { name, value })
                .collect(),
            None => p.credential_subject.claims,
        };
        Ok(Credential {
            id: p.jti,
            kind: p.cm.kind,
            issuer: p.cm.issuer,
            region: p.cm.region,
            subject,
            issued_at: p.iat,
            not_before: p.nbf,
            not_after: p.exp.unwrap_or(0),
            status: p.cm.status.map(|s| StatusReference {
                list_id: s.list,
                index: s.index,
            }),
            claims,
            version: p.cm.version,
            nonce,
        })
    }
}

#[derive(Deserialize)]
struct PayloadIn {
    #[serde(rename = "credentialSubject")]
    credential_subject: SubjectIn,
    sub: String,
    jti: String,
    iat: i64,
    nbf: i64,
    #[serde(default)]
    exp: Option<i64>,
    cm: CmIn,
}

#[derive(Deserialize)]
struct CmIn {
    kind: i32,
    #[serde(default)]
    version: u32,
    issuer: String,
    region: String,
    #[serde(default)]
    status: Option<StatusIn>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    claims: Option<Vec<(String, String)>>,
}

#[derive(Deserialize)]
struct StatusIn {
    list: String,
    index: u64,
}

/// `credentialSubject` read in document order: `id` apart, every other member a claim.
/// Duplicate names are refused: JSON parsers disagree on which one wins, and a verifier
/// must not show different data than another verifier of the same token.
struct SubjectIn {
    id: Option<String>,
    claims: Vec<Claim>,
}

impl<'de> Deserialize<'de> for SubjectIn {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SubjectVisitor;
        impl<'de> Visitor<'de> for SubjectVisitor {
            type Value = SubjectIn;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a credentialSubject object of string claims")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SubjectIn, A::Error> {
                let mut subject = SubjectIn {
                    id: None,
                    claims: Vec::new(),
                };
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    if name == "id" {
                        if subject.id.is_some() {
                            return Err(de::Error::custom("duplicate credentialSubject.id"));
                        }
                        subject.id = Some(value);
                    } else {
                        subject.claims.push(Claim { name, value });
                    }
                }
                if has_duplicate_names(&subject.claims) {
                    return Err(de::Error::custom("duplicate claim names"));
                }
                Ok(subject)
            }
        }
        deserializer.deserialize_map(SubjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{key, license, presentation};

    fn options() -> VcOptions {
        VcOptions {
            status_base_url: "https://verify.sh.example/".into(),
        }
    }

    fn payload_value(token: &str) -> serde_json::Value {
        let parsed = parse_vc_jwt(token).unwrap();
        serde_json::from_slice(parsed.payload_json()).unwrap()
    }

    #[test]
    fn a_vc_jwt_round_trips_to_the_identical_credential() {
        let k = key("SH-license-a");
        for credential in [license(), presentation()] {
            let token = to_vc_jwt(&credential, &k, &options());
            let parsed = parse_vc_jwt(&token).unwrap();
            assert_eq!(parsed.kid(), "SH-license-a");
            parsed.check_signature(&k.verifying_key()).unwrap();
            assert_eq!(parsed.credential().unwrap(), credential);
        }
    }

    #[test]
    fn the_header_names_algorithm_key_and_type() {
        let token = to_vc_jwt(&license(), &key("SH-license-a"), &options());
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&header).unwrap(),
            r#"{"alg":"EdDSA","kid":"SH-license-a","typ":"vc+jwt"}"#
        );
    }

    #[test]
    fn the_payload_is_a_w3c_vc_with_claims_in_issuer_order() {
        let token = to_vc_jwt(&license(), &key("SH-license-a"), &options());
        let parsed = parse_vc_jwt(&token).unwrap();
        let text = std::str::from_utf8(parsed.payload_json()).unwrap();
        assert!(text.starts_with(
            r#"{"@context":["https://www.w3.org/ns/credentials/v2"],"id":"urn:gbt36904:1.2.156.3005.2."#
        ));
        let name = text.find(r#""name":"#).unwrap();
        let capital = text.find(r#""registered_capital":"#).unwrap();
        assert!(name < capital, "claims keep the issuer's order");

        let v = payload_value(&token);
        assert_eq!(v["type"][1], "BusinessLicenseCredential");
        assert_eq!(v["issuer"]["id"], "urn:credmesh:issuer:SH/license");
        assert_eq!(v["issuer"]["region"], "SH");
        assert_eq!(v["validFrom"], "2025-01-01T00:00:00Z");
        assert!(v.get("validUntil").is_none());
        assert!(v.get("exp").is_none());
        assert_eq!(v["credentialSubject"]["id"], "urn:uscc:91310000MA1FL8TQ2X");
        assert_eq!(v["credentialSubject"]["name"], "上海示例科技有限公司");
        assert_eq!(v["jti"], license().id);
        let status = v["credentialStatus"].as_array().unwrap();
        assert_eq!(status.len(), 2);
        assert_eq!(status[0]["type"], "BitstringStatusListEntry");
        assert_eq!(status[0]["statusPurpose"], "revocation");
        assert_eq!(status[1]["statusPurpose"], "suspension");
        assert_eq!(status[0]["statusListIndex"], "42");
        assert_eq!(
            status[0]["statusListCredential"],
            "https://verify.sh.example/v1/status/SH/license/0/revocation"
        );
    }

    #[test]
    fn presentations_carry_exp_nonce_and_no_status() {
        let token = to_vc_jwt(&presentation(), &key("SH-entcode-a"), &options());
        let v = payload_value(&token);
        assert_eq!(v["exp"], presentation().not_after);
        assert!(v.get("validUntil").is_some());
        assert!(v.get("credentialStatus").is_none());
        assert!(v["cm"]["nonce"].is_string());
        assert_eq!(v["type"][1], "EnterpriseCodePresentationCredential");
        assert!(v["id"].as_str().unwrap().starts_with("urn:"));
    }

    #[test]
    fn awkward_claim_names_and_text_survive_the_round_trip() {
        let mut c = license();
        c.claims = vec![
            Claim {
                name: "id".into(),
                value: "shadow".into(),
            },
            Claim {
                name: "scope".into(),
                value: "a\"b\\c\n\u{1}\t末".into(),
            },
            Claim {
                name: "scope".into(),
                value: "second".into(),
            },
        ];
        c.kind = CredentialKind::InspectionCode as i32;
        c.subject = "task-2025-000123".into();
        c.id = "plain-id".into();
        assert_eq!(vc_id("证照编号1"), "urn:credmesh:credential:证照编号1");
        assert_eq!(vc_id("URN:x:1"), "URN:x:1");
        let k = key("SH-inspection-a");
        let token = to_vc_jwt(&c, &k, &options());
        let v = payload_value(&token);
        assert_eq!(
            v["credentialSubject"]["id"],
            "urn:credmesh:task:task-2025-000123"
        );
        assert_eq!(v["id"], "urn:credmesh:credential:plain-id");
        assert_eq!(parse_vc_jwt(&token).unwrap().credential().unwrap(), c);
    }

    #[test]
    fn many_claims_with_repeated_names_round_trip() {
        let mut c = license();
        c.claims = (0..40)
            .map(|i| Claim {
                name: format!("field_{}", i % 30),
                value: i.to_string(),
            })
            .collect();
        let k = key("SH-license-a");
        let token = to_vc_jwt(&c, &k, &options());
        let v = payload_value(&token);
        assert_eq!(v["credentialSubject"]["field_3"], "3", "first value shown");
        assert_eq!(v["cm"]["claims"].as_array().unwrap().len(), 40);
        assert_eq!(parse_vc_jwt(&token).unwrap().credential().unwrap(), c);
    }

    #[test]
    fn a_flipped_payload_byte_fails_the_signature() {
        let k = key("SH-license-a");
        let token = to_vc_jwt(&license(), &k, &options());
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        let at = payload.len() / 2;
        payload[at] ^= 0x01;
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload),
            parts[2]
        );
        let parsed = parse_vc_jwt(&tampered).unwrap();
        assert_eq!(
            parsed.check_signature(&k.verifying_key()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tokens_with_the_wrong_header_are_refused() {
        let enc = |h: &str| URL_SAFE_NO_PAD.encode(h);
        let sig = URL_SAFE_NO_PAD.encode([0u8; 64]);
        let body = URL_SAFE_NO_PAD.encode("{}");
        let cases = [
            (r#"{"alg":"HS256","kid":"k","typ":"vc+jwt"}"#, "JWT_ALG"),
            (r#"{"alg":"none","kid":"k","typ":"vc+jwt"}"#, "JWT_ALG"),
            (r#"{"alg":"EdDSA","kid":"k","typ":"JWT"}"#, "JWT_TYP"),
            (r#"{"alg":"EdDSA","typ":"vc+jwt"}"#, "JWT_KID"),
            (
                r#"{"alg":"EdDSA","kid":"k","typ":"vc+jwt","crit":["b64"]}"#,
                "JWT_HEADER",
            ),
            (r#"[1,2]"#, "JWT_HEADER"),
        ];
        for (header, reason) in cases {
            let token = format!("{}.{body}.{sig}", enc(header));
            assert_eq!(
                parse_vc_jwt(&token).unwrap_err().reason(),
                reason,
                "{header}"
            );
        }
        let ok = format!(
            "{}.{body}.{sig}",
            enc(r#"{"alg":"EdDSA","kid":"k","typ":"application/vc+jwt"}"#)
        );
        assert!(parse_vc_jwt(&ok).is_ok());
        assert_eq!(parse_vc_jwt("a.b").unwrap_err().reason(), "JWT_SHAPE");
        assert_eq!(parse_vc_jwt("a.b.c.d").unwrap_err().reason(), "JWT_SHAPE");
        assert_eq!(parse_vc_jwt("a=.b.c").unwrap_err().reason(), "JWT_BASE64");
        let short_sig = format!(
            "{}.{body}.AAAA",
            enc(r#"{"alg":"EdDSA","kid":"k","typ":"vc+jwt"}"#)
        );
        assert_eq!(
            parse_vc_jwt(&short_sig).unwrap_err().reason(),
            "SIGNATURE_LENGTH"
        );
    }

    #[test]
    fn duplicate_subject_members_are_refused() {
        let json = br#"{"credentialSubject":{"id":"urn:uscc:X","a":"1","a":"2"},"sub":"urn:uscc:X","jti":"i","iat":0,"nbf":0,"cm":{"kind":1,"issuer":"SH/license","region":"SH"}}"#;
        let parsed = ParsedJwt {
            signing_input: "",
            kid: "k".into(),
            signature: Signature::from_bytes(&[0u8; 64]),
            payload: json.to_vec(),
        };
        assert_eq!(parsed.credential().unwrap_err().reason(), "JWT_CLAIMS");
    }

    #[test]
    fn a_token_made_here_verifies_with_jsonwebtoken() {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
        let k = key("SH-license-a");
        let mut c = license();
        c.not_after = 4_102_444_800; // 2100-01-01, so jsonwebtoken's exp check passes
        let token = to_vc_jwt(&c, &k, &options());

        let decoding = DecodingKey::from_ed_der(&k.public_key_bytes());
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_aud = false;
        let data = decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some("SH-license-a"));
        assert_eq!(data.header.typ.as_deref(), Some("vc+jwt"));
        assert_eq!(data.claims["jti"], c.id);
        assert_eq!(
            data.claims["credentialSubject"]["name"],
            "上海示例科技有限公司"
        );

        // A flipped payload byte fails there too.
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        payload[10] ^= 0x01;
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload),
            parts[2]
        );
        assert!(decode::<serde_json::Value>(&tampered, &decoding, &validation).is_err());
    }

    #[test]
    fn a_status_list_renders_as_a_bitstring_status_list_credential() {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
        let k = key("SH-license-a");
        let mut bits = crate::status_list::Bitstring::new(0);
        bits.set(42, true).unwrap();
        let list = StatusList {
            list_id: "SH/license/0".into(),
            issuer: "SH/license".into(),
            purpose: StatusPurpose::Revocation as i32,
            encoded_list: bits.encode(),
            size: crate::status_list::Bitstring::MIN_SIZE as u64,
            updated_at: 4_000_000_000,
            sequence: 7,
        };
        let url = "https://verify.sh.example/v1/status/SH/license/0/revocation";
        let token = status_list_vc_jwt(&list, url, 4_000_000_600, &k);
        assert!(parse_vc_jwt(&token).is_ok(), "typ vc+jwt, EdDSA, kid");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_aud = false;
        validation.validate_nbf = false;
        validation.validate_exp = false;
        let data = decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_ed_der(&k.public_key_bytes()),
            &validation,
        )
        .unwrap();
        let v = data.claims;
        assert_eq!(v["type"][1], "BitstringStatusListCredential");
        assert_eq!(v["id"], url);
        assert_eq!(v["credentialSubject"]["type"], "BitstringStatusList");
        assert_eq!(v["credentialSubject"]["statusPurpose"], "revocation");
        assert_eq!(v["issuer"]["id"], "urn:credmesh:issuer:SH/license");
        assert_eq!(v["exp"], 4_000_000_600i64);
        let encoded = v["credentialSubject"]["encodedList"].as_str().unwrap();
        let back = crate::status_list::Bitstring::decode(encoded, 1 << 20).unwrap();
        assert_eq!(back.get(42), Some(true));
        assert_eq!(
            status_purpose_name(StatusPurpose::Superseded as i32),
            Some("superseded")
        );
        assert_eq!(status_purpose_name(0), None);
    }

    #[test]
    fn json_strings_are_escaped_per_rfc_8259() {
        let mut out = String::new();
        let tricky = "q\"b\\n\n\u{0}\u{1f}é\r\t\u{08}\u{0c}上海静安\u{7f}\"";
        push_json_string(&mut out, tricky);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, tricky);
        assert_eq!(out, serde_json::to_string(tricky).unwrap());
    }
}

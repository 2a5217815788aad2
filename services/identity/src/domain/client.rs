//! A client registration, validated once on receipt.

use credmesh_auth::PrincipalKind;
use credmesh_proto::status::FieldViolation;
use credmesh_uscc::Uscc;
use sha2::{Digest, Sha256};

use super::scopes;

/// Shortest client secret accepted (dev only).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// How a client proves who it is when asking for a token.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// Ed25519-signed client assertions; the raw public key.
    PublicKey([u8; 32]),
    /// A client secret, stored as a salted SHA-256 hash (allowed in dev only).
    Secret(Vec<u8>),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::PublicKey(_) => f.write_str("PublicKey(..)"),
            ClientAuth::Secret(_) => f.write_str("Secret([redacted])"),
        }
    }
}

/// A registered client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client id.
    pub client_id: String,
    /// What kind of party it is.
    pub kind: PrincipalKind,
    /// Human-readable name.
    pub display_name: String,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// The USCC of the organisation it acts for, if any.
    pub organization: Option<Uscc>,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// The inspector's law-enforcement certificate number.
    pub enforcement_certificate: Option<String>,
    /// Disabled clients get no tokens.
    pub disabled: bool,
    /// Registration time, Unix seconds.
    pub created_at: i64,
}

/// The fields of a registration request, before validation.
#[derive(Clone, Debug, Default)]
pub struct Registration<'a> {
    /// Requested client id.
    pub client_id: &'a str,
    /// Proto enum number of the principal kind.
    pub kind: i32,
    /// Display name.
    pub display_name: &'a str,
    /// Requested scopes.
    pub scopes: &'a [String],
    /// Organisation USCC text.
    pub organization: &'a str,
    /// Raw public key bytes.
    pub public_key: &'a [u8],
    /// Client secret.
    pub client_secret: &'a str,
    /// Inspector's certificate number.
    pub enforcement_certificate: &'a str,
}

impl Registration<'_> {
    /// Validates every field and returns the client, or every violation found (not just
    /// the first, so a person fixes a form in one go).
    pub fn validate(&self, allow_secrets: bool, now: i64) -> Result<Client, Vec<FieldViolation>> {
        let mut v = Vec::new();
        if !valid_client_id(self.client_id) {
            v.push(FieldViolation::new(
                "client_id",
                "a client id is 3 to 64 characters: lowercase letters, digits, '-', '.', ':', starting with a letter or digit",
            ));
        }
        let kind = PrincipalKind::from_proto(self.kind);
        if kind.is_none() {
            v.push(FieldViolation::new(
                "kind",
                "the principal kind is required",
            ));
        }
        let name = self.display_name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            v.push(FieldViolation::new(
                "display_name",
                format!("a display name is 1 to {MAX_NAME_CHARS} characters"),
            ));
        } else if name.chars().any(char::is_control) {
            v.push(FieldViolation::new(
                "display_name",
                "a display name may not contain control characters",
            ));
        }
        let mut scopes_out: Vec<String> = Vec::new();
        for (i, scope) in self.scopes.iter().enumerate() {
            if !scopes::is_known(scope) {
                v.push(FieldViolation::new(
                    format!("scopes[{i}]"),
                    format!("'{}' is not a credmesh scope", truncate(scope, 64)),
                ));
            } else if let Some(kind) = kind
                && !scopes::allowed(kind, scope)
            {
                v.push(FieldViolation::new(
                    format!("scopes[{i}]"),
                    format!(
                        "a {} client may not hold the scope '{scope}'",
                        kind.as_str()
                    ),
                ));
            }
            if !scopes_out.contains(scope) {
                scopes_out.push(scope.clone());
            }
        }
        let needs_org = matches!(
            kind,
            Some(PrincipalKind::Department | PrincipalKind::Inspector | PrincipalKind::Enterprise)
        );
        let organization = if self.organization.is_empty() {
            if needs_org {
                v.push(FieldViolation::new(
                    "organization",
                    "departments, inspectors and enterprises must name their organisation's unified social credit code",
                ));
            }
            None
        } else {
            match Uscc::parse(self.organization) {
                Ok(u) => Some(u),
                Err(e) => {
                    v.push(FieldViolation::new("organization", e.to_string()));
                    None
                }
            }
        };
        let certificate = self.enforcement_certificate.trim();
        if kind == Some(PrincipalKind::Inspector) && certificate.is_empty() {
            v.push(FieldViolation::new(
                "enforcement_certificate",
                "an inspector must have a law-enforcement certificate number",
            ));
        }
        if certificate.chars().count() > 64 {
            v.push(FieldViolation::new(
                "enforcement_certificate",
                "a certificate number is at most 64 characters",
            ));
        }
        let auth = match (self.public_key.is_empty(), self.client_secret.is_empty()) {
            (false, true) => match <[u8; 32]>::try_from(self.public_key) {
                Ok(key)
                    if ed25519_dalek::VerifyingKey::from_bytes(&key)
                        .is_ok_and(|k| !k.is_weak()) =>
                {
                    Some(ClientAuth::PublicKey(key))
                }
                _ => {
                    v.push(FieldViolation::new(
                        "public_key",
                        "the public key must be a raw 32-byte Ed25519 public key (not a weak, small-order point)",
                    ));
                    None
                }
            },
            (true, false) if !allow_secrets => {
                v.push(FieldViolation::new(
                    "client_secret",
                    "this deployment does not accept client secrets; register an Ed25519 public key",
                ));
                None
            }
            (true, false) if self.client_secret.len() < MIN_SECRET_LEN => {
                v.push(FieldViolation::new(
                    "client_secret",
                    format!("a client secret is at least {MIN_SECRET_LEN} characters"),
                ));
                None
            }
            (true, false) => Some(ClientAuth::Secret(hash_secret(
                self.client_id,
                self.client_secret,
            ))),
            (true, true) => {
                v.push(FieldViolation::new(
                    "public_key",
                    "a client needs a public key (or, in dev, a client secret)",
                ));
                None
            }
            (false, false) => {
                v.push(FieldViolation::new(
                    "client_secret",
                    "give either a public key or a client secret, not both",
                ));
                None
            }
        };
        match (kind, auth) {
            (Some(kind), Some(auth)) if v.is_empty() => Ok(Client {
                client_id: self.client_id.to_string(),
                kind,
                display_name: name.to_string(),
                scopes: scopes_out,
                organization,
                auth,
                enforcement_certificate: (!certificate.is_empty()).then(|| certificate.to_string()),
                disabled: false,
                created_at: now,
            }),
            _ => Err(v),
        }
    }
}

/// Client ids: 3–64 of `[a-z0-9.:-]`, starting with a letter or digit.
pub fn valid_client_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
}

/// The stored form of a client secret: SHA-256 over the client id and the secret. The
/// client id salts it; secrets are at least 32 random characters, so a fast hash is
/// enough (and secrets exist only in dev).
pub fn hash_secret(client_id: &str, secret: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(client_id.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    h.finalize().to_vec()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<u8> {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes()
            .to_vec()
    }

    fn department<'a>(scopes: &'a [String], pk: &'a [u8], org: &'a str) -> Registration<'a> {
        Registration {
            client_id: "smr-registration",
            kind: PrincipalKind::Department.to_proto(),
            display_name: "上海市市场监督管理局",
            scopes,
            organization: org,
            public_key: pk,
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_department_registration_is_accepted() {
        let scopes = vec![LICENSE_ISSUE_S.to_string()];
        let pk = key();
        // A government department's code: registering department 1, category 1.
        let org = Uscc::from_parts('1', '1', "310000", "MB2F3125")
            .unwrap()
            .to_string();
        let reg = department(&scopes, &pk, &org);
        let client = reg.validate(false, 1).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(client.kind, PrincipalKind::Department);
        assert_eq!(client.display_name, "上海市市场监督管理局");
    }

    const LICENSE_ISSUE_S: &str = scopes::LICENSE_ISSUE;

    #[test]
    fn every_violation_is_reported_at_once() {
        let scopes = vec!["identity.admin".to_string(), "no.such".to_string()];
        let reg = Registration {
            client_id: "X",
            kind: PrincipalKind::Partner.to_proto(),
            display_name: "",
            scopes: &scopes,
            public_key: &[1, 2, 3],
            ..Default::default()
        };
        let v = reg.validate(false, 1).unwrap_err();
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "client_id",
                "display_name",
                "scopes[0]",
                "scopes[1]",
                "public_key"
            ]
        );
    }

    #[test]
    fn client_secrets_are_refused_outside_dev() {
        let reg = Registration {
            client_id: "bank-js",
            kind: PrincipalKind::Partner.to_proto(),
            display_name: "Suzhou bank",
            client_secret: "0123456789abcdef0123456789abcdef",
            ..Default::default()
        };
        let v = reg.validate(false, 1).unwrap_err();
        assert_eq!(v[0].field, "client_secret");
        assert!(reg.validate(true, 1).is_ok());
    }

    #[test]
    fn client_ids_are_lowercase_and_bounded() {
        assert!(valid_client_id("license.sh-1"));
        assert!(!valid_client_id("ab"));
        assert!(!valid_client_id("-abc"));
        assert!(!valid_client_id("Abc"));
        assert!(!valid_client_id(&"a".repeat(65)));
    }
}

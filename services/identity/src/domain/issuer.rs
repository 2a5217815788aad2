//! Issuer keys and the trust list: which keys may sign which credentials, and the
//! signed document partners pin.

use credmesh_proto::{
    credential::v1::{CredentialKind, KeyStatus, TrustList, TrustedKey},
    status::FieldViolation,
};
use credmesh_uscc::Region;

/// A validated issuer key registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIssuerKey {
    /// `<region>/<service>`.
    pub issuer: String,
    /// Unique key id, beginning with the region code.
    pub kid: String,
    /// Raw Ed25519 public key.
    pub public_key: [u8; 32],
    /// Kinds the key may sign.
    pub kinds: Vec<i32>,
    /// End of validity, 0 for open-ended.
    pub not_after: i64,
}

/// The fields of an issuer key registration, before validation.
#[derive(Clone, Copy, Debug)]
pub struct KeyRegistration<'a> {
    /// `<region>/<service>`.
    pub issuer: &'a str,
    /// Key id.
    pub kid: &'a str,
    /// Raw public key bytes.
    pub public_key: &'a [u8],
    /// Proto numbers of the kinds it may sign.
    pub kinds: &'a [i32],
    /// End of validity, 0 for open-ended.
    pub not_after: i64,
}

/// Validates a key registration for this deployment's `region`.
pub fn validate_issuer_key(
    region: Region,
    registration: &KeyRegistration<'_>,
    now: i64,
) -> Result<NewIssuerKey, Vec<FieldViolation>> {
    let KeyRegistration {
        issuer,
        kid,
        public_key,
        kinds,
        not_after,
    } = *registration;
    let mut v = Vec::new();
    match issuer.split_once('/') {
        Some((r, service))
            if r == region.code()
                && !service.is_empty()
                && service.len() <= 32
                && service.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') => {}
        _ => v.push(FieldViolation::new(
            "issuer",
            format!(
                "an issuer id is '<region>/<service>' with this deployment's region {}, for example '{}/license'",
                region.code(),
                region.code()
            ),
        )),
    }
    let prefix = format!("{}-", region.code());
    if !kid.starts_with(&prefix)
        || kid.len() > 96
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        v.push(FieldViolation::new(
            "kid",
            format!("a key id begins with '{prefix}' and has at most 96 letters, digits, '-', '_' or '.'"),
        ));
    }
    let key = <[u8; 32]>::try_from(public_key)
        .ok()
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok());
    match key {
        None => v.push(FieldViolation::new(
            "public_key",
            "the public key must be a raw 32-byte Ed25519 public key",
        )),
        // A small-order point "verifies" signatures its holder never made: never trust one.
        Some(k) if k.is_weak() => v.push(FieldViolation::new(
            "public_key",
            "the public key is a weak (small-order) Ed25519 point; generate a real key",
        )),
        Some(_) => {}
    }
    if kinds.is_empty() {
        v.push(FieldViolation::new(
            "kinds",
            "name at least one credential kind the key may sign",
        ));
    }
    for (i, k) in kinds.iter().enumerate() {
        if !matches!(CredentialKind::try_from(*k), Ok(kind) if kind != CredentialKind::Unspecified)
        {
            v.push(FieldViolation::new(
                format!("kinds[{i}]"),
                format!("{k} is not a credential kind"),
            ));
        }
    }
    if not_after != 0 && not_after <= now {
        v.push(FieldViolation::new(
            "not_after",
            "the key's validity must end in the future (or be 0 for open-ended)",
        ));
    }
    match key {
        Some(public_key) if v.is_empty() => Ok(NewIssuerKey {
            public_key: public_key.to_bytes(),
            issuer: issuer.to_string(),
            kid: kid.to_string(),
            kinds: kinds.to_vec(),
            not_after,
        }),
        _ => Err(v),
    }
}

impl NewIssuerKey {
    /// The key as it enters the registry at `now`, active.
    pub fn into_trusted(self, region: Region, now: i64) -> TrustedKey {
        TrustedKey {
            kid: self.kid,
            issuer: self.issuer,
            region: region.code().to_string(),
            public_key: self.public_key.to_vec(),
            not_before: now,
            not_after: self.not_after,
            status: KeyStatus::Active as i32,
            kinds: self.kinds,
            retired_at: 0,
        }
    }
}

/// How long a trust list is good for before verifiers should fetch a new one.
pub const TRUST_LIST_LIFETIME_SECS: i64 = 3600;

/// The trust list payload for `keys` at `sequence`.
pub fn trust_list(
    region: Region,
    keys: Vec<TrustedKey>,
    sequence: u64,
    now: i64,
    status_base_url: &str,
) -> TrustList {
    TrustList {
        region: region.code().to_string(),
        issued_at: now,
        next_update: now + TRUST_LIST_LIFETIME_SECS,
        sequence,
        keys,
        status_base_url: status_base_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LICENSE: &[i32] = &[CredentialKind::BusinessLicense as i32];

    fn reg<'a>(
        issuer: &'a str,
        kid: &'a str,
        pk: &'a [u8],
        kinds: &'a [i32],
        not_after: i64,
    ) -> KeyRegistration<'a> {
        KeyRegistration {
            issuer,
            kid,
            public_key: pk,
            kinds,
            not_after,
        }
    }

    fn pk() -> Vec<u8> {
        ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn a_key_for_another_region_is_refused() {
        let pk = pk();
        let v = validate_issuer_key(
            Region::Shanghai,
            &reg("JS/license", "JS-license-1", &pk, LICENSE, 0),
            10,
        )
        .unwrap_err();
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["issuer", "kid"]);
    }

    #[test]
    fn a_valid_key_becomes_an_active_trusted_key() {
        let pk = pk();
        let key = validate_issuer_key(
            Region::Shanghai,
            &reg("SH/license", "SH-license-1", &pk, LICENSE, 0),
            10,
        )
        .unwrap()
        .into_trusted(Region::Shanghai, 10);
        assert_eq!(key.status, KeyStatus::Active as i32);
        assert_eq!(key.not_before, 10);
        assert_eq!(key.region, "SH");
    }

    #[test]
    fn unspecified_kinds_and_past_expiry_are_refused() {
        let pk = pk();
        let v = validate_issuer_key(
            Region::Shanghai,
            &reg("SH/license", "SH-k", &pk, &[0, 99], 5),
            10,
        )
        .unwrap_err();
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["kinds[0]", "kinds[1]", "not_after"]);
    }
}

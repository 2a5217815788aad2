//! Trusted issuer keys, decoded once into a snapshot the verify hot path reads.

use std::collections::HashMap;

use credmesh_proto::credential::v1::{CredentialKind, KeyStatus, TrustList, TrustedKey};
use ed25519_dalek::VerifyingKey;

use crate::error::TrustError;

/// One trusted issuer key, with its public key already decoded (point decompression is
/// the expensive half of parsing a key; doing it per verification would double the cost
/// of a cached verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustEntry {
    /// The key id.
    pub kid: String,
    /// The issuer holding the key, `<region>/<service>`.
    pub issuer: String,
    /// The region whose anchor vouches for the key.
    pub region: String,
    /// The decoded public key.
    pub key: VerifyingKey,
    /// Credentials issued before this time (Unix seconds) do not verify.
    pub not_before: i64,
    /// Credentials issued after this time do not verify; 0 means open-ended.
    pub not_after: i64,
    /// Active, retired or revoked.
    pub status: KeyStatus,
    /// The credential kinds the key may sign.
    pub kinds: Vec<CredentialKind>,
    /// When the key was retired (0 if not): credentials issued later do not verify.
    pub retired_at: i64,
    /// When the trust data holding this entry was fetched, for `trust_age` in answers.
    pub fetched_at: i64,
}

impl TrustEntry {
    /// Whether the key may sign credentials of `kind` (the raw proto value).
    pub fn may_sign(&self, kind: i32) -> bool {
        self.kinds.iter().any(|k| *k as i32 == kind)
    }

    fn from_proto(key: &TrustedKey, fetched_at: i64) -> Result<Self, TrustError> {
        if key.kid.is_empty() {
            return Err(TrustError::MissingKid);
        }
        let kid = || key.kid.clone();
        let bytes: &[u8; 32] = key
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| TrustError::PublicKey { kid: kid() })?;
        let public =
            VerifyingKey::from_bytes(bytes).map_err(|_| TrustError::PublicKey { kid: kid() })?;
        if public.is_weak() {
            return Err(TrustError::WeakKey { kid: kid() });
        }
        let status = match KeyStatus::try_from(key.status) {
            Ok(KeyStatus::Unspecified) | Err(_) => return Err(TrustError::Status { kid: kid() }),
            Ok(s) => s,
        };
        if status == KeyStatus::Retired && key.retired_at == 0 {
            return Err(TrustError::RetiredAtMissing { kid: kid() });
        }
        let in_region = key
            .issuer
            .strip_prefix(key.region.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'));
        if !in_region {
            return Err(TrustError::IssuerRegion {
                kid: kid(),
                issuer: key.issuer.clone(),
                region: key.region.clone(),
            });
        }
        Ok(Self {
            kid: kid(),
            issuer: key.issuer.clone(),
            region: key.region.clone(),
            key: public,
            not_before: key.not_before,
            not_after: key.not_after,
            status,
            kinds: key
                .kinds
                .iter()
                .filter_map(|k| CredentialKind::try_from(*k).ok())
                .filter(|k| *k != CredentialKind::Unspecified)
                .collect(),
            retired_at: key.retired_at,
            fetched_at,
        })
    }
}

/// An immutable snapshot of trusted keys, decoded once (VerifyingKey parsed at build
/// time, not per verify).
///
/// Build it from verified trust lists (every region's, pinned anchors checked by the
/// caller), then share it (`Arc<TrustSnapshot>`) with verifiers; on a new trust list build
/// a new snapshot and swap it, so a verification never sees half an update.
#[derive(Debug, Clone, Default)]
pub struct TrustSnapshot {
    entries: HashMap<String, TrustEntry>,
}

impl TrustSnapshot {
    /// An empty snapshot: nothing verifies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits one key, replacing an entry with the same kid. Refuses keys that are not
    /// valid Ed25519 points, small-order keys, keys without a status, retired keys
    /// without `retired_at` and issuers outside the key's region.
    pub fn insert(&mut self, key: &TrustedKey, fetched_at: i64) -> Result<(), TrustError> {
        let entry = TrustEntry::from_proto(key, fetched_at)?;
        self.entries.insert(entry.kid.clone(), entry);
        Ok(())
    }

    /// A snapshot of one region's (already signature-checked) trust list.
    pub fn from_trust_list(list: &TrustList, fetched_at: i64) -> Result<Self, TrustError> {
        let mut snapshot = Self::new();
        snapshot.extend_from_trust_list(list, fetched_at)?;
        Ok(snapshot)
    }

    /// Adds a region's (already signature-checked) trust list, all or nothing. Every key
    /// must belong to the list's region: a partner anchor vouches for its own issuers
    /// only, so a compromised partner cannot mint Shanghai keys.
    pub fn extend_from_trust_list(
        &mut self,
        list: &TrustList,
        fetched_at: i64,
    ) -> Result<(), TrustError> {
        let mut admitted = Vec::with_capacity(list.keys.len());
        for key in &list.keys {
            if key.region != list.region {
                return Err(TrustError::RegionMismatch {
                    kid: key.kid.clone(),
                    list_region: list.region.clone(),
                    key_region: key.region.clone(),
                });
            }
            admitted.push(TrustEntry::from_proto(key, fetched_at)?);
        }
        for entry in admitted {
            self.entries.insert(entry.kid.clone(), entry);
        }
        Ok(())
    }

    /// The entry for a kid.
    pub fn get(&self, kid: &str) -> Option<&TrustEntry> {
        self.entries.get(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &TrustEntry> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::key;

    fn trusted() -> TrustedKey {
        key("SH-license-a").to_trusted_key(
            "SH/license",
            "SH",
            &[CredentialKind::BusinessLicense],
            0,
        )
    }

    #[test]
    fn a_valid_key_is_admitted_decoded() {
        let mut snapshot = TrustSnapshot::new();
        snapshot.insert(&trusted(), 100).unwrap();
        let entry = snapshot.get("SH-license-a").unwrap();
        assert_eq!(entry.key.to_bytes(), key("SH-license-a").public_key_bytes());
        assert!(entry.may_sign(CredentialKind::BusinessLicense as i32));
        assert!(!entry.may_sign(CredentialKind::Certificate as i32));
        assert_eq!(entry.fetched_at, 100);
        assert_eq!(snapshot.len(), 1);
    }

    #[test]
    fn broken_entries_are_refused_with_reasons() {
        let mut snapshot = TrustSnapshot::new();
        type Mutation = fn(&mut TrustedKey);
        let cases: [(Mutation, &str); 7] = [
            (|k| k.kid.clear(), "TRUST_KID_MISSING"),
            (|k| k.public_key.truncate(31), "TRUST_PUBLIC_KEY"),
            // The identity point (y = 1) has small order.
            (
                |k| k.public_key = [&[1u8][..], &[0u8; 31]].concat(),
                "TRUST_WEAK_KEY",
            ),
            (|k| k.status = 0, "TRUST_KEY_STATUS"),
            (
                |k| k.status = KeyStatus::Retired as i32,
                "TRUST_RETIRED_AT_MISSING",
            ),
            (|k| k.issuer = "JS/license".into(), "TRUST_ISSUER_REGION"),
            (|k| k.issuer = "SH".into(), "TRUST_ISSUER_REGION"),
        ];
        for (mutate, reason) in cases {
            let mut k = trusted();
            mutate(&mut k);
            assert_eq!(snapshot.insert(&k, 0).unwrap_err().reason(), reason);
        }
        assert!(snapshot.is_empty());
    }

    #[test]
    fn a_trust_list_may_only_vouch_for_its_own_region() {
        let mut list = TrustList {
            region: "JS".into(),
            keys: vec![trusted()],
            ..Default::default()
        };
        let err = TrustSnapshot::from_trust_list(&list, 0).unwrap_err();
        assert_eq!(err.reason(), "TRUST_REGION_MISMATCH");
        list.region = "SH".into();
        assert_eq!(TrustSnapshot::from_trust_list(&list, 0).unwrap().len(), 1);
    }
}

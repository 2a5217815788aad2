//! Where a verifier finds revocation and suspension status.

use std::collections::HashMap;

use credmesh_proto::credential::v1::{Envelope, KeyStatus, StatusList, StatusPurpose};

use crate::envelope::{Context, open};
use crate::error::StatusListError;
use crate::status_list::Bitstring;
use crate::verify::TrustSnapshot;

/// Answers "what is the status of entry `index` of list `list_id`?".
///
/// The verify gateway implements it over Redis-backed caches; tests and the CLI use
/// [`StatusCache`]. An implementation must answer from memory it already holds: it is
/// called on the hot path, once per credential.
pub trait StatusSource {
    /// The status of one entry.
    fn lookup(&self, list_id: &str, index: u64) -> StatusLookup;
}

/// A status source's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusLookup {
    /// The lists are held; `updated_at` (Unix seconds) is when the oldest of them was
    /// made, which decides whether the answer is fresh enough to call a credential valid.
    Known {
        /// The revocation bit.
        revoked: bool,
        /// The suspension bit.
        suspended: bool,
        /// The superseded bit (a newer version replaced the credential).
        superseded: bool,
        /// When the oldest list consulted was made.
        updated_at: i64,
    },
    /// No usable list: never fetched, only partly held, or the index is outside it.
    Unknown {
        /// When any list for this id was last made, if one is held.
        last_seen: Option<i64>,
    },
}

#[derive(Debug, Clone)]
struct Published {
    bits: Bitstring,
    updated_at: i64,
    sequence: u64,
}

#[derive(Debug, Clone, Default)]
struct ListSet {
    revocation: Option<Published>,
    suspension: Option<Published>,
    superseded: Option<Published>,
}

impl ListSet {
    fn slot(&mut self, purpose: StatusPurpose) -> Option<&mut Option<Published>> {
        match purpose {
            StatusPurpose::Revocation => Some(&mut self.revocation),
            StatusPurpose::Suspension => Some(&mut self.suspension),
            StatusPurpose::Superseded => Some(&mut self.superseded),
            StatusPurpose::Unspecified => None,
        }
    }

    fn last_seen(&self) -> Option<i64> {
        [&self.revocation, &self.suspension, &self.superseded]
            .into_iter()
            .flatten()
            .map(|p| p.updated_at)
            .max()
    }
}

/// A simple in-memory StatusSource from decoded status lists (list_id+purpose →
/// Bitstring + updated_at), for tests, the CLI and as the gateway's hot structure.
///
/// An entry's status is known only when both its revocation and its suspension list are
/// held, since every credential with a status reference points into both. The superseded
/// list is optional: issuers set the revocation bit of a superseded credential as well,
/// and the superseded bit only says why.
#[derive(Debug, Clone, Default)]
pub struct StatusCache {
    lists: HashMap<String, ListSet>,
}

impl StatusCache {
    /// An empty cache: every lookup is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a decoded list the caller already trusts, replacing the previous one of the
    /// same id and purpose.
    pub fn insert_list(
        &mut self,
        list_id: impl Into<String>,
        purpose: StatusPurpose,
        bits: Bitstring,
        updated_at: i64,
    ) -> Result<(), StatusListError> {
        self.store(list_id.into(), purpose, bits, updated_at, 0, true)
            .map(|_| ())
    }

    fn store(
        &mut self,
        list_id: String,
        purpose: StatusPurpose,
        bits: Bitstring,
        updated_at: i64,
        sequence: u64,
        always: bool,
    ) -> Result<bool, StatusListError> {
        let slot = self
            .lists
            .entry(list_id)
            .or_default()
            .slot(purpose)
            .ok_or(StatusListError::Purpose)?;
        if !always && slot.as_ref().is_some_and(|p| p.sequence >= sequence) {
            return Ok(false);
        }
        *slot = Some(Published {
            bits,
            updated_at,
            sequence,
        });
        Ok(true)
    }

    /// Verifies a signed status list against the trust snapshot and stores it if it is
    /// newer (by `sequence`) than the one held. Returns whether it was stored.
    ///
    /// The signing key must be trusted, not revoked, not retired before the list was made,
    /// belong to the list's issuer, and the list id must lie in the issuer's namespace
    /// (`<issuer>/…`), so one trusted issuer cannot overwrite another's list.
    pub fn insert_signed(
        &mut self,
        envelope: &Envelope,
        trust: &TrustSnapshot,
        max_size_bits: usize,
    ) -> Result<bool, StatusListError> {
        let entry = trust
            .get(&envelope.kid)
            .ok_or_else(|| StatusListError::UnknownKey(envelope.kid.clone()))?;
        let list: StatusList = open(Context::StatusList, envelope, &entry.key)?;
        let retired_before = entry.retired_at != 0 && list.updated_at > entry.retired_at;
        if entry.status == KeyStatus::Revoked || retired_before {
            return Err(StatusListError::KeyNotUsable(entry.kid.clone()));
        }
        let in_namespace = list
            .list_id
            .strip_prefix(entry.issuer.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'));
        if list.issuer != entry.issuer || !in_namespace {
            return Err(StatusListError::IssuerMismatch {
                list_id: list.list_id,
                issuer: entry.issuer.clone(),
            });
        }
        let purpose =
            StatusPurpose::try_from(list.purpose).map_err(|_| StatusListError::Purpose)?;
        let bits = Bitstring::from_status_list(&list, max_size_bits)?;
        self.store(
            list.list_id,
            purpose,
            bits,
            list.updated_at,
            list.sequence,
            false,
        )
    }

    /// Each list id held, with when it was last updated (its latest purpose list), the
    /// time its verification answers report their status age from.
    pub fn last_updates(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.lists
            .iter()
            .filter_map(|(id, set)| Some((id.as_str(), set.last_seen()?)))
    }

    /// Number of list ids held.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

impl StatusSource for StatusCache {
    fn lookup(&self, list_id: &str, index: u64) -> StatusLookup {
        let Some(set) = self.lists.get(list_id) else {
            return StatusLookup::Unknown { last_seen: None };
        };
        let unknown = StatusLookup::Unknown {
            last_seen: set.last_seen(),
        };
        let (Some(rev), Some(sus)) = (&set.revocation, &set.suspension) else {
            return unknown;
        };
        let (Some(revoked), Some(suspended)) = (rev.bits.get(index), sus.bits.get(index)) else {
            return unknown;
        };
        let mut updated_at = rev.updated_at.min(sus.updated_at);
        let superseded = match &set.superseded {
            None => false,
            Some(p) => {
                updated_at = updated_at.min(p.updated_at);
                match p.bits.get(index) {
                    Some(bit) => bit,
                    None => return unknown,
                }
            }
        };
        StatusLookup::Known {
            revoked,
            suspended,
            superseded,
            updated_at,
        }
    }
}

impl<T: StatusSource + ?Sized> StatusSource for &T {
    fn lookup(&self, list_id: &str, index: u64) -> StatusLookup {
        (**self).lookup(list_id, index)
    }
}

impl<T: StatusSource + ?Sized> StatusSource for std::sync::Arc<T> {
    fn lookup(&self, list_id: &str, index: u64) -> StatusLookup {
        (**self).lookup(list_id, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_list::sign_status_list;
    use crate::testing::key;
    use credmesh_proto::credential::v1::CredentialKind;

    fn list_with(index: u64) -> Bitstring {
        let mut bits = Bitstring::new(0);
        bits.set(index, true).unwrap();
        bits
    }

    #[test]
    fn status_is_known_only_with_revocation_and_suspension_lists() {
        let mut cache = StatusCache::new();
        assert_eq!(
            cache.lookup("SH/license/0", 1),
            StatusLookup::Unknown { last_seen: None }
        );
        cache
            .insert_list("SH/license/0", StatusPurpose::Revocation, list_with(1), 100)
            .unwrap();
        assert_eq!(
            cache.lookup("SH/license/0", 1),
            StatusLookup::Unknown {
                last_seen: Some(100)
            }
        );
        cache
            .insert_list("SH/license/0", StatusPurpose::Suspension, list_with(2), 90)
            .unwrap();
        assert_eq!(
            cache.lookup("SH/license/0", 1),
            StatusLookup::Known {
                revoked: true,
                suspended: false,
                superseded: false,
                updated_at: 90
            }
        );
        assert_eq!(
            cache.lookup("SH/license/0", 2),
            StatusLookup::Known {
                revoked: false,
                suspended: true,
                superseded: false,
                updated_at: 90
            }
        );
        assert!(matches!(
            cache.lookup("SH/license/0", u64::MAX),
            StatusLookup::Unknown { .. }
        ));
        assert!(
            cache
                .insert_list("x", StatusPurpose::Unspecified, list_with(0), 0)
                .is_err()
        );
    }

    #[test]
    fn signed_lists_are_checked_and_only_newer_ones_replace() {
        let k = key("SH-license-a");
        let mut trust = TrustSnapshot::new();
        trust
            .insert(
                &k.to_trusted_key("SH/license", "SH", &[CredentialKind::BusinessLicense], 0),
                0,
            )
            .unwrap();
        let mut list = StatusList {
            list_id: "SH/license/0".into(),
            issuer: "SH/license".into(),
            purpose: StatusPurpose::Revocation as i32,
            encoded_list: list_with(5).encode(),
            size: Bitstring::MIN_SIZE as u64,
            updated_at: 100,
            sequence: 2,
        };
        let mut cache = StatusCache::new();
        assert!(
            cache
                .insert_signed(&sign_status_list(&list, &k), &trust, 1 << 20)
                .unwrap()
        );
        list.sequence = 1;
        assert!(
            !cache
                .insert_signed(&sign_status_list(&list, &k), &trust, 1 << 20)
                .unwrap()
        );

        list.list_id = "SH/health/0".into();
        let err = cache
            .insert_signed(&sign_status_list(&list, &k), &trust, 1 << 20)
            .unwrap_err();
        assert_eq!(err.reason(), "ISSUER_MISMATCH");

        let stranger = key("SH-license-z");
        let err = cache
            .insert_signed(&sign_status_list(&list, &stranger), &trust, 1 << 20)
            .unwrap_err();
        assert_eq!(err.reason(), "KEY_UNKNOWN");

        let mut forged = sign_status_list(&list, &stranger);
        forged.kid = "SH-license-a".into();
        let err = cache.insert_signed(&forged, &trust, 1 << 20).unwrap_err();
        assert_eq!(err.reason(), "SIGNATURE_MISMATCH");
    }
}

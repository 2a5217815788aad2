//! An issuer's signed status lists, signed again only when they changed.
//!
//! Every issuing service publishes its status lists, over gRPC (`GetStatusList`) and
//! on the HTTP route of [`status_http`](crate::status_http), and verifiers poll them.
//! [`StatusLists`] keeps the last signed copy of each list and hands it out again
//! until one of three things happens: a bit of the list changed (the service's
//! `version` of it moved), the signing key changed (a rotation), or the refresh
//! interval passed, so that the list's `updated_at` stays fresh for verifiers that
//! bound its age. A list is never signed per request.
//!
//! The services differ only in what counts as a change and where the set bits come
//! from: each reads its version and bits from its own store and passes them in.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use anyhow::Context as _;
use credmesh_credential::{Bitstring, keys::IssuerKey, sign_status_list, status_list_vc_jwt};
use credmesh_proto::credential::v1::{Envelope, StatusList};

/// The default of `CREDMESH_STATUS_LIST_REFRESH_SECONDS`.
pub const DEFAULT_REFRESH_SECS: i64 = 60;

/// A signed status list, in both published forms.
#[derive(Clone, Debug)]
pub struct PublishedList {
    /// The version of the list it was made from (see [`StatusLists::signed`]).
    pub version: u64,
    /// The signing key's id.
    pub kid: String,
    /// When it was signed (Unix seconds).
    pub signed_at: i64,
    /// The native signed form.
    pub envelope: Envelope,
    /// The W3C `BitstringStatusListCredential` VC-JWT.
    pub vc_jwt: String,
}

/// One list to sign: which it is and where it is published.
#[derive(Clone, Copy, Debug)]
pub struct ListRef<'a> {
    /// The list id, `<REGION>/<service>/<n>`.
    pub list_id: &'a str,
    /// Its number `n`.
    pub n: u64,
    /// The `StatusPurpose` value.
    pub purpose: i32,
    /// The public URL of the list for this purpose, as credentials name it.
    pub url: &'a str,
}

/// The signed status lists of one issuer.
#[derive(Debug)]
pub struct StatusLists {
    /// The issuer id written into every list.
    issuer: String,
    /// Entries per list.
    size: u64,
    /// How long a signed list's VC-JWT is valid.
    validity_secs: i64,
    /// How long an unchanged list is handed out before it is signed again.
    refresh_secs: i64,
    signed: Mutex<HashMap<(u64, i32), Arc<PublishedList>>>,
}

impl StatusLists {
    /// The lists of `issuer`, `size` entries each, their VC-JWTs valid for
    /// `validity_secs`, an unchanged list signed again after `refresh_secs`.
    pub fn new(issuer: String, size: u64, validity_secs: i64, refresh_secs: i64) -> Self {
        StatusLists {
            issuer,
            size,
            validity_secs,
            refresh_secs,
            signed: Mutex::new(HashMap::new()),
        }
    }

    /// The copy of list `n` for `purpose` signed earlier, if it is still good at `now`:
    /// made from `version` of the list, by the key `kid`, less than the refresh
    /// interval ago. A version only has to change whenever a bit does (a count of set
    /// bits where bits are only ever set; a change counter otherwise).
    pub fn signed(
        &self,
        n: u64,
        purpose: i32,
        version: u64,
        kid: &str,
        now: i64,
    ) -> Option<Arc<PublishedList>> {
        let signed = self.signed.lock().unwrap_or_else(PoisonError::into_inner);
        signed
            .get(&(n, purpose))
            .filter(|list| {
                list.version == version && self.still_current(&list.kid, list.signed_at, kid, now)
            })
            .cloned()
    }

    /// Whether a document signed by `signed_kid` at `signed_at` may still be handed
    /// out at `now`, the key now being `kid`: the same key, and signed less than the
    /// refresh interval ago (a clock that went back means signing again). The rule for
    /// every signed document an issuer keeps, its status lists and others alike.
    pub fn still_current(&self, signed_kid: &str, signed_at: i64, kid: &str, now: i64) -> bool {
        signed_kid == kid && (0..self.refresh_secs).contains(&now.saturating_sub(signed_at))
    }

    /// Signs `list` with its bits at `indexes` set, as `version` of it, with `key` at
    /// `now`, and keeps the copy for [`signed`](Self::signed). Its `sequence` is the
    /// version in the high 32 bits and the signing time in the low ones, so a changed
    /// list always replaces a verifier's copy and an unchanged one signed later
    /// refreshes it. Fails only for an index outside the list, which the store should
    /// never hold.
    pub fn sign(
        &self,
        list: ListRef<'_>,
        version: u64,
        indexes: &[u64],
        key: &IssuerKey,
        now: i64,
    ) -> anyhow::Result<Arc<PublishedList>> {
        let mut bits = Bitstring::new(usize::try_from(self.size).unwrap_or(usize::MAX));
        for &i in indexes {
            bits.set(i, true)
                .with_context(|| format!("status index {i} of list {}", list.list_id))?;
        }
        let unsigned = StatusList {
            list_id: list.list_id.to_owned(),
            issuer: self.issuer.clone(),
            purpose: list.purpose,
            encoded_list: bits.encode(),
            size: self.size,
            updated_at: now,
            sequence: (version << 32) | (now as u64 & 0xFFFF_FFFF),
        };
        let published = Arc::new(PublishedList {
            version,
            kid: key.kid().to_owned(),
            signed_at: now,
            envelope: sign_status_list(&unsigned, key),
            vc_jwt: status_list_vc_jwt(&unsigned, list.url, now + self.validity_secs, key),
        });
        self.signed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((list.n, list.purpose), published.clone());
        Ok(published)
    }
}

/// `CREDMESH_STATUS_LIST_REFRESH_SECONDS`: unset is [`DEFAULT_REFRESH_SECS`]; a value
/// must be 1 to 300 seconds.
pub fn refresh_secs(value: Option<&str>) -> anyhow::Result<i64> {
    match value {
        None => Ok(DEFAULT_REFRESH_SECS),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=300).contains(&n) => Ok(n),
            _ => anyhow::bail!("CREDMESH_STATUS_LIST_REFRESH_SECONDS must be 1 to 300, not '{v}'"),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use credmesh_credential::envelope::{Context, open};

    use super::*;

    const SIZE: u64 = 131_072;

    fn lists() -> StatusLists {
        StatusLists::new("SH/license".into(), SIZE, 600, 60)
    }

    fn list(url: &str) -> ListRef<'_> {
        ListRef {
            list_id: "SH/license/0",
            n: 0,
            purpose: 1,
            url,
        }
    }

    #[test]
    fn a_signed_list_carries_its_bits_version_and_time() {
        let key = IssuerKey::from_bytes("SH-license-1", &[7u8; 32]);
        let signed = lists()
            .sign(
                list("https://x/v1/status/SH/license/0/revocation"),
                3,
                &[0, 5, 131_071],
                &key,
                1_000,
            )
            .unwrap();
        let unsigned: StatusList =
            open(Context::StatusList, &signed.envelope, &key.verifying_key()).unwrap();
        assert_eq!(unsigned.list_id, "SH/license/0");
        assert_eq!(unsigned.issuer, "SH/license");
        assert_eq!(unsigned.size, SIZE);
        assert_eq!(unsigned.updated_at, 1_000);
        assert_eq!(unsigned.sequence, (3 << 32) | 1_000);
        let bits = Bitstring::decode(&unsigned.encoded_list, SIZE as usize).unwrap();
        assert_eq!(bits.count_set(), 3);
        assert_eq!(bits.get(5), Some(true));
        assert_eq!(bits.get(6), Some(false));
        assert_eq!(
            (signed.version, signed.kid.as_str(), signed.signed_at),
            (3, "SH-license-1", 1_000)
        );
        assert_eq!(signed.vc_jwt.split('.').count(), 3);
    }

    #[test]
    fn a_copy_is_handed_out_again_only_while_version_key_and_interval_hold() {
        let lists = lists();
        let key = IssuerKey::from_bytes("SH-license-1", &[7u8; 32]);
        assert!(lists.signed(0, 1, 3, "SH-license-1", 1_000).is_none());
        let signed = lists.sign(list("u"), 3, &[1], &key, 1_000).unwrap();
        let again = lists.signed(0, 1, 3, "SH-license-1", 1_059).unwrap();
        assert!(Arc::ptr_eq(&signed, &again));
        // A bit changed, the key rotated, the interval passed, the clock went back.
        assert!(lists.signed(0, 1, 4, "SH-license-1", 1_001).is_none());
        assert!(lists.signed(0, 1, 3, "SH-license-2", 1_001).is_none());
        assert!(lists.signed(0, 1, 3, "SH-license-1", 1_060).is_none());
        assert!(lists.signed(0, 1, 3, "SH-license-1", 999).is_none());
        // Another purpose or list of the same issuer is kept apart.
        assert!(lists.signed(0, 2, 3, "SH-license-1", 1_001).is_none());
        assert!(lists.signed(1, 1, 3, "SH-license-1", 1_001).is_none());
    }

    #[test]
    fn an_index_outside_the_list_is_refused_and_nothing_is_kept() {
        let lists = lists();
        let key = IssuerKey::from_bytes("SH-license-1", &[7u8; 32]);
        let err = lists.sign(list("u"), 1, &[SIZE], &key, 1_000).unwrap_err();
        assert!(format!("{err:#}").contains("status index 131072 of list SH/license/0"));
        assert!(lists.signed(0, 1, 1, "SH-license-1", 1_000).is_none());
    }

    #[test]
    fn the_refresh_interval_is_one_to_three_hundred_seconds() {
        assert_eq!(refresh_secs(None).unwrap(), DEFAULT_REFRESH_SECS);
        assert_eq!(refresh_secs(Some("300")).unwrap(), 300);
        assert_eq!(refresh_secs(Some(" 1 ")).unwrap(), 1);
        for bad in ["0", "301", "-5", "soon", ""] {
            let err = refresh_secs(Some(bad)).unwrap_err().to_string();
            assert!(
                err.contains("CREDMESH_STATUS_LIST_REFRESH_SECONDS must be 1 to 300"),
                "{err}"
            );
        }
    }
}

//! Status: signed status lists fetched over HTTP from each region's public base URL,
//! verified against the trust snapshot and decoded once into the in-process
//! [`StatusCache`] that every verification reads (no network on the hot path).
//!
//! The raw signed lists are also written to the shared cache (Redis), so replicas and
//! restarts share them. When a fetch brings a list whose bits differ from the ones held,
//! the replica publishes an invalidation (`status/<list_id>`); every replica's
//! subscription refetches that list at once, which is how a revocation reaches every
//! replica within a second. The periodic refresh and the cache TTL are the fallback
//! when Redis (and its pub/sub) is down.

use std::{
    collections::HashMap,
    sync::{
        Mutex, RwLock, RwLockReadGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use credmesh_cache::Cache;
use credmesh_credential::{StatusCache, decode_envelope, status_purpose_name};
use credmesh_proto::{
    credential::v1::{Envelope, StatusList, StatusPurpose},
    prost::Message as _,
};
use http::StatusCode;

use crate::{
    federation::{Trust, mix},
    fetch::HeldTag,
};

/// The largest status list accepted, in bits (16 Mi entries).
pub const MAX_BITS: usize = 16 * 1024 * 1024;
const PURPOSES: [StatusPurpose; 3] = [
    StatusPurpose::Revocation,
    StatusPurpose::Suspension,
    StatusPurpose::Superseded,
];
/// The most lists of one issuer that discovery walks (each holds up to [`MAX_BITS`]
/// entries: far more than any issuer's credentials).
const MAX_LISTS_PER_ISSUER: usize = 4096;
/// The invalidation key prefix for status lists.
pub const INVALIDATION_PREFIX: &str = "status/";

#[derive(Debug, Default)]
struct Meta {
    /// Content digest per purpose (index = purpose - 1).
    digests: [Option<u64>; 3],
    /// The raw signed lists held, per purpose, for trust bundles.
    raw: [Option<Envelope>; 3],
    /// Per purpose, the issuer's `ETag` of the copy last fetched and stored, and the
    /// trust version it was checked under: the next fetch sends it, and a `304` means
    /// the issuer still has exactly those bytes, so there is nothing to verify again.
    etags: [Option<HeldTag>; 3],
    last_attempt: i64,
}

/// Where the raw list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Issuer,
    SharedCache,
}

/// The hot status structure plus how to refresh it.
#[derive(Debug)]
pub struct StatusStore {
    hot: RwLock<StatusCache>,
    meta: Mutex<HashMap<String, Meta>>,
    /// XOR of every held list's content digest: equal on replicas holding equal bits.
    version: AtomicU64,
    cache: Cache,
    fresh: Duration,
    ttl: Duration,
}

fn cache_key(list_id: &str, purpose: &str) -> String {
    format!("{INVALIDATION_PREFIX}{list_id}/{purpose}")
}

impl StatusStore {
    /// An empty store; raw lists are kept in `cache` for `ttl`; a cached copy older than
    /// `fresh` is not preferred to the issuer's.
    pub fn new(cache: Cache, fresh: Duration, ttl: Duration) -> Self {
        Self {
            hot: RwLock::new(StatusCache::new()),
            meta: Mutex::new(HashMap::new()),
            version: AtomicU64::new(0),
            cache,
            fresh,
            ttl,
        }
    }

    /// The hot structure, for verifications (a read lock held for one verify call).
    pub fn read(&self) -> RwLockReadGuard<'_, StatusCache> {
        self.hot.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A value that changes whenever the bits of any held list change.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The list ids held or asked for.
    pub fn list_ids(&self) -> Vec<String> {
        self.meta
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether any purpose of `list_id` is held.
    fn holds(&self, list_id: &str) -> bool {
        self.meta
            .lock()
            .map(|m| {
                m.get(list_id)
                    .is_some_and(|m| m.raw.iter().any(Option::is_some))
            })
            .unwrap_or(false)
    }

    /// Fetches the lists of `issuer` (`<region>/<service>`) not held yet, `<issuer>/0`,
    /// `/1`, … up to the first its region does not publish (or cannot be fetched now),
    /// skipping those held. A list that turned out not to exist leaves nothing behind,
    /// so the periodic refresh, which refetches every list it knows of, does not ask for
    /// it again. Returns how many lists were fetched.
    pub async fn discover(
        &self,
        issuer: &str,
        trust: &Trust,
        now: i64,
        timeout: Duration,
    ) -> usize {
        let mut fetched = 0;
        for n in 0..MAX_LISTS_PER_ISSUER {
            let list_id = format!("{issuer}/{n}");
            if self.holds(&list_id) {
                continue;
            }
            // A list that does not exist fails its revocation purpose with 404: the
            // error only says where discovery ends.
            let _ = self.fetch(&list_id, trust, now, true, timeout).await;
            if !self.holds(&list_id) {
                if let Ok(mut meta) = self.meta.lock()
                    && meta
                        .get(&list_id)
                        .is_some_and(|m| m.raw.iter().all(Option::is_none))
                {
                    meta.remove(&list_id);
                }
                break;
            }
            fetched += 1;
        }
        fetched
    }

    /// Fetches a list nobody held yet (a verification needed it), at most once a second
    /// per list and with a short timeout, since a request waits for it; a fresh copy in
    /// the shared cache is preferred to the issuer.
    pub async fn fetch_missing(&self, list_id: &str, trust: &Trust, now: i64) {
        {
            let Ok(mut meta) = self.meta.lock() else {
                return;
            };
            let m = meta.entry(list_id.to_owned()).or_default();
            if m.last_attempt >= now {
                return;
            }
        }
        let timeout = Duration::from_secs(2);
        if let Err(err) = self.fetch(list_id, trust, now, true, timeout).await {
            tracing::warn!(list_id, error = %format!("{err:#}"), "status list not fetched");
        }
    }

    /// Fetches one list (its three purposes concurrently) and stores what verifies and
    /// is newer. With `prefer_cache`, a shared-cache copy made within the freshness
    /// target is used without asking the issuer. Publishes an invalidation when the
    /// bits changed. Concurrent fetches of one list are harmless (the newest sequence
    /// wins), so there is no lock a slow partner could hold against other regions.
    pub async fn fetch(
        &self,
        list_id: &str,
        trust: &Trust,
        now: i64,
        prefer_cache: bool,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        if let Ok(mut meta) = self.meta.lock() {
            meta.entry(list_id.to_owned()).or_default().last_attempt = now;
        }
        let outcomes = futures::future::join_all(PURPOSES.map(|purpose| {
            self.fetch_purpose(list_id, purpose, trust, now, prefer_cache, timeout)
        }))
        .await;
        let mut changed = false;
        let mut errors = Vec::new();
        for (c, e) in outcomes {
            changed |= c;
            errors.extend(e);
        }
        if changed {
            tracing::info!(list_id, "status list changed; telling every replica");
            self.cache
                .invalidate(&format!("{INVALIDATION_PREFIX}{list_id}"))
                .await;
        }
        if errors.is_empty() {
            Ok(changed)
        } else {
            bail!("{}", errors.join("; "))
        }
    }

    async fn fetch_purpose(
        &self,
        list_id: &str,
        purpose: StatusPurpose,
        trust: &Trust,
        now: i64,
        prefer_cache: bool,
        timeout: Duration,
    ) -> (bool, Vec<String>) {
        let region = list_id.split('/').next().unwrap_or_default();
        let name = status_purpose_name(purpose as i32).unwrap_or("revocation");
        let key = cache_key(list_id, name);
        let mut errors = Vec::new();
        let mut changed = false;
        let mut candidates: Vec<(Origin, Vec<u8>)> = Vec::new();
        let cached = self.cache.get(&key).await;
        if prefer_cache
            && let Some(bytes) = &cached
            && made_within(bytes, now, self.fresh)
        {
            candidates.push((Origin::SharedCache, bytes.clone()));
        }
        let mut fetched_tag = None;
        if candidates.is_empty() {
            let held = self.held_tag(list_id, purpose, trust.version);
            match trust.status_base.get(region) {
                None => errors.push(format!("region {region} publishes no status base URL")),
                Some(base) => {
                    let url = format!("{base}/v1/status/{list_id}/{name}");
                    match trust
                        .http
                        .get_unless_held(&url, "application/x-protobuf", held.as_deref(), timeout)
                        .await
                    {
                        Ok(f) if f.status == StatusCode::OK => {
                            fetched_tag = f.etag;
                            candidates.push((Origin::Issuer, f.body.to_vec()));
                        }
                        // The issuer still has the copy held: nothing new, nothing to check.
                        Ok(f) if f.status == StatusCode::NOT_MODIFIED && held.is_some() => {
                            tracing::debug!(
                                list_id,
                                purpose = name,
                                "status list unchanged at its issuer (304)"
                            );
                            return (false, errors);
                        }
                        Ok(f)
                            if f.status == StatusCode::NOT_FOUND
                                && purpose == StatusPurpose::Superseded => {}
                        Ok(f) => errors.push(format!("{url} answered {}", f.status)),
                        Err(err) => errors.push(format!("{err:#}")),
                    }
                }
            }
            if !candidates.iter().any(|(o, _)| *o == Origin::Issuer)
                && let Some(bytes) = cached
            {
                candidates.push((Origin::SharedCache, bytes));
            }
        }
        for (origin, bytes) in candidates {
            let stored = self.store(list_id, purpose, &bytes, trust);
            if origin == Origin::Issuer {
                let tag = fetched_tag.take().filter(|_| stored.is_ok());
                self.keep_tag(
                    list_id,
                    purpose,
                    tag.map(|t| HeldTag::new(trust.version, t)),
                );
            }
            match stored {
                Ok(Some(bits_changed)) => {
                    changed |= bits_changed;
                    if origin == Origin::Issuer {
                        self.cache.set(&key, &bytes, self.ttl).await;
                    }
                }
                Ok(None) => {}
                Err(err) => errors.push(format!("{name}: {err:#}")),
            }
        }
        (changed, errors)
    }

    /// The issuer's `ETag` of the `purpose` list held for `list_id`, when one is held
    /// and was checked under trust version `trust_version` (a trust change checks
    /// everything again).
    fn held_tag(
        &self,
        list_id: &str,
        purpose: StatusPurpose,
        trust_version: u64,
    ) -> Option<String> {
        let i = purpose as usize - 1;
        let meta = self.meta.lock().ok()?;
        let m = meta.get(list_id)?;
        m.raw[i].as_ref()?;
        m.etags[i].as_ref()?.under(trust_version).map(str::to_owned)
    }

    fn keep_tag(&self, list_id: &str, purpose: StatusPurpose, tag: Option<HeldTag>) {
        if let Ok(mut meta) = self.meta.lock() {
            meta.entry(list_id.to_owned()).or_default().etags[purpose as usize - 1] = tag;
        }
    }

    /// Verifies and stores one raw list; `Some(bits changed)` when it was newer.
    fn store(
        &self,
        list_id: &str,
        purpose: StatusPurpose,
        bytes: &[u8],
        trust: &Trust,
    ) -> anyhow::Result<Option<bool>> {
        let envelope: Envelope = decode_envelope(bytes).context("not a status list envelope")?;
        let stored = self
            .hot
            .write()
            .map_err(|_| anyhow::anyhow!("status state poisoned"))?
            .insert_signed(&envelope, &trust.snapshot, MAX_BITS)
            .context("the status list does not verify")?;
        if !stored {
            return Ok(None);
        }
        // The signature verified inside insert_signed; decode again for the content digest.
        let list =
            StatusList::decode(envelope.payload.as_slice()).context("status list payload")?;
        if list.list_id != list_id || list.purpose != purpose as i32 {
            bail!(
                "the issuer answered list {} purpose {} for {list_id}",
                list.list_id,
                list.purpose
            );
        }
        let digest = mix(
            list.encoded_list.as_bytes(),
            purpose as u64 ^ mix(list_id.as_bytes(), 0),
        );
        let mut meta = self
            .meta
            .lock()
            .map_err(|_| anyhow::anyhow!("status state poisoned"))?;
        let entry = meta.entry(list_id.to_owned()).or_default();
        entry.raw[purpose as usize - 1] = Some(envelope);
        let slot = &mut entry.digests[purpose as usize - 1];
        let changed = match *slot {
            Some(old) if old == digest => false,
            Some(old) => {
                self.version.fetch_xor(old ^ digest, Ordering::Relaxed);
                true
            }
            None => {
                self.version.fetch_xor(digest, Ordering::Relaxed);
                false
            }
        };
        *slot = Some(digest);
        Ok(Some(changed))
    }

    /// Every raw signed list held, for trust bundles.
    pub fn raw_lists(&self) -> Vec<Envelope> {
        self.meta
            .lock()
            .map(|m| {
                m.values()
                    .flat_map(|m| m.raw.iter().flatten().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Refetches every held list from its issuer (the periodic refresh).
    pub async fn refresh_all(&self, trust: &Trust, now: i64, region: Option<&str>) {
        let wanted = |id: &str| region.is_none_or(|r| id.split('/').next() == Some(r));
        for list_id in self.list_ids().into_iter().filter(|id| wanted(id)) {
            if let Err(err) = self
                .fetch(&list_id, trust, now, false, Duration::from_secs(5))
                .await
            {
                tracing::warn!(list_id = %list_id, error = %err, "status list not refreshed; serving the last good one");
            }
        }
    }
}

/// Whether a raw cached list was made within `fresh` of `now` (unverified peek: only
/// used to choose a source; what is stored is verified).
fn made_within(bytes: &[u8], now: i64, fresh: Duration) -> bool {
    decode_envelope(bytes)
        .ok()
        .and_then(|e| StatusList::decode(e.payload.as_slice()).ok())
        .is_some_and(|l| now.saturating_sub(l.updated_at) <= fresh.as_secs() as i64)
}

/// The list id named by an invalidation key, if it is a status list's.
pub fn invalidated_list(key: &str) -> Option<&str> {
    key.strip_prefix(INVALIDATION_PREFIX)
        .filter(|rest| !rest.is_empty())
}

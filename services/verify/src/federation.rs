//! Trust: the region's own trust list and partner regions' lists, each verified against
//! a pinned anchor key, merged into one [`TrustSnapshot`] that verifications share.
//!
//! This region's own list is fetched from its identity over gRPC (`GetTrustList`). Each
//! configured partner's list is fetched either over HTTP from the partner's public
//! address (`GET <url>/v1/trust/list`: its identity, or the Ingress that routes its
//! public documents there, the address partners are given) or as the copy this
//! region's identity imported (`GetPartnerTrustList`), always checked against the
//! anchor pinned here. A
//! fetched list is kept only if its anchor signature checks and its sequence does not go
//! backwards; the last good list of each region is kept when a fetch fails, and the raw
//! signed lists are written to the shared cache so a replica started while a partner is
//! dark still has its (possibly stale) list.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use anyhow::{Context as _, bail};
use credmesh_cache::Cache;
use credmesh_credential::{
    Context as SignContext, TrustSnapshot, VerifyingKey, decode_envelope, encode_envelope,
    envelope::open,
};
use credmesh_proto::{
    credential::v1::{Envelope, TrustList},
    identity::v1::{
        GetPartnerTrustListRequest, GetTrustListRequest,
        identity_service_client::IdentityServiceClient,
    },
    verify::v1::RegionTrust,
};
use credmesh_runtime::{ClientOptions, Clock, TracedChannel, client::traced};
use tonic::transport::{Channel, Endpoint};

/// The merged, verified trust data one verification uses.
#[derive(Debug, Default)]
pub struct Trust {
    /// Every trusted key of every region.
    pub snapshot: TrustSnapshot,
    /// Each region's status list base URL (no trailing slash).
    pub status_base: HashMap<String, String>,
    /// Changes whenever any region's list sequence changes (same on every replica
    /// holding the same lists).
    pub version: u64,
    /// How the status base URLs are fetched (`http://`, or `https://` against the
    /// configured partner roots).
    pub http: crate::fetch::Client,
}

/// Where a partner region's trust list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartnerSource {
    /// `GET <url>/v1/trust/list` (`http://` or `https://`): the partner's public address
    /// or its identity's.
    Url(String),
    /// The copy this region's own identity imported (`GetPartnerTrustList`).
    Imported,
}

/// Where a region's trust list is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// This region's identity: `GetTrustList`.
    Own,
    Partner(PartnerSource),
}

#[derive(Debug)]
struct Source {
    region: String,
    origin: Origin,
    /// `None` only for the own region before its anchor is pinned at first fetch.
    anchor: Option<VerifyingKey>,
}

/// The path of the signed trust list on an identity's (or a region's public) HTTP port.
pub const TRUST_LIST_PATH: &str = "/v1/trust/list";

#[derive(Debug, Clone)]
struct Held {
    list: TrustList,
    envelope: Envelope,
    anchor: VerifyingKey,
    fetched_at: i64,
}

/// Keeps every region's last good trust list and the merged snapshot.
#[derive(Debug)]
pub struct Federation {
    /// This region's identity (and the lists it imported).
    identity: IdentityServiceClient<TracedChannel>,
    sources: Mutex<Vec<Source>>,
    held: Mutex<BTreeMap<String, Held>>,
    current: RwLock<Arc<Trust>>,
    /// Why each region's last refresh failed (removed when one succeeds).
    failures: Mutex<BTreeMap<String, String>>,
    http: crate::fetch::Client,
    cache: Cache,
    clock: Arc<dyn Clock>,
}

/// The federation's deadlines: connecting (for `https://` also the TLS handshake) and
/// one call, the same for plain and TLS endpoints.
const OPTIONS: ClientOptions = ClientOptions {
    connect_timeout: Duration::from_secs(3),
    request_timeout: Duration::from_secs(5),
};

/// A lazily connecting gRPC channel with timeouts (the federation's clients trace it);
/// `https://` URLs are verified against the system's roots.
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    if is_https(url) {
        return tls_channel(url, &crate::fetch::PartnerTls::load(None)?);
    }
    credmesh_runtime::client::channel(url, &OPTIONS)
}

/// Like [`channel`], verifying `https://` URLs against `tls` (the system's roots plus
/// `CREDMESH_PARTNER_CA_FILE`); `http://` URLs stay plaintext.
pub fn tls_channel(url: &str, tls: &crate::fetch::PartnerTls) -> anyhow::Result<Channel> {
    if !is_https(url) {
        return credmesh_runtime::client::channel(url, &OPTIONS);
    }
    let config = tls.tonic().timeout(OPTIONS.connect_timeout);
    Ok(Endpoint::from_shared(url.to_string())
        .with_context(|| format!("'{url}' is not a URL"))?
        .connect_timeout(OPTIONS.connect_timeout)
        .timeout(OPTIONS.request_timeout)
        .tls_config(config)
        .with_context(|| format!("TLS settings for {url}"))?
        .connect_lazy())
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

fn cache_key(region: &str) -> String {
    format!("trust/{region}")
}

/// Verifies a region's signed trust list against its anchor.
pub fn open_trust_list(
    envelope: &Envelope,
    region: &str,
    anchor: &VerifyingKey,
) -> anyhow::Result<TrustList> {
    let list: TrustList = open(SignContext::TrustList, envelope, anchor).with_context(|| {
        format!("the trust list of {region} does not verify against its pinned anchor")
    })?;
    if list.region != region {
        bail!(
            "the trust list signed by {region}'s anchor names region '{}'",
            list.region
        );
    }
    Ok(list)
}

impl Federation {
    /// A federation over this region's identity (`own_anchor` pinned or `None` to pin
    /// on first fetch) and `partners` (region, where its list comes from, pinned
    /// anchor); partner lists and status lists are fetched with `http`.
    pub fn new(
        region: &str,
        own: Channel,
        own_anchor: Option<VerifyingKey>,
        partners: Vec<(String, PartnerSource, VerifyingKey)>,
        http: crate::fetch::Client,
        cache: Cache,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut sources = vec![Source {
            region: region.to_owned(),
            origin: Origin::Own,
            anchor: own_anchor,
        }];
        sources.extend(partners.into_iter().map(|(region, source, anchor)| Source {
            region,
            origin: Origin::Partner(source),
            anchor: Some(anchor),
        }));
        Self {
            identity: IdentityServiceClient::new(traced(own)),
            sources: Mutex::new(sources),
            held: Mutex::new(BTreeMap::new()),
            current: RwLock::new(Arc::new(Trust {
                http: http.clone(),
                ..Trust::default()
            })),
            failures: Mutex::new(BTreeMap::new()),
            http,
            cache,
            clock,
        }
    }

    /// The current merged trust data.
    pub fn current(&self) -> Arc<Trust> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Fetches every region's list once; keeps the last good one where a fetch fails.
    /// Returns the regions that could not be refreshed.
    pub async fn refresh(&self) -> Vec<String> {
        self.refresh_only(None).await
    }

    /// Like [`Federation::refresh`], for the named regions only (those configured).
    pub async fn refresh_regions(&self, regions: &[String]) -> Vec<String> {
        self.refresh_only(Some(regions)).await
    }

    /// This deployment's region.
    pub fn own_region(&self) -> String {
        self.sources
            .lock()
            .ok()
            .and_then(|s| s.first().map(|s| s.region.clone()))
            .unwrap_or_default()
    }

    /// Whether `region` is this region or a configured partner.
    pub fn knows(&self, region: &str) -> bool {
        self.sources
            .lock()
            .is_ok_and(|s| s.iter().any(|s| s.region == region))
    }

    async fn refresh_only(&self, only: Option<&[String]>) -> Vec<String> {
        type Row = (String, Origin, Option<VerifyingKey>);
        let sources: Vec<Row> = self
            .sources
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|s| only.is_none_or(|o| o.contains(&s.region)))
                    .map(|s| (s.region.clone(), s.origin.clone(), s.anchor))
                    .collect()
            })
            .unwrap_or_default();
        let mut failed = Vec::new();
        for (region, origin, anchor) in sources {
            let outcome = self.refresh_region(&region, origin, anchor).await;
            if let Ok(mut failures) = self.failures.lock() {
                match &outcome {
                    Ok(()) => failures.remove(&region),
                    Err(err) => failures.insert(region.clone(), format!("{err:#}")),
                };
            }
            if let Err(err) = outcome {
                tracing::warn!(region = %region, error = %format!("{err:#}"), "trust list not refreshed");
                if !self.is_held(&region) {
                    self.load_from_cache(&region, anchor).await;
                }
                failed.push(region);
            }
        }
        self.rebuild();
        failed
    }

    /// Why `region`'s trust list could not be fetched at the last attempt (the whole
    /// error chain, e.g. a certificate the partner roots do not trust), or `None` when
    /// that attempt succeeded.
    pub fn last_failure(&self, region: &str) -> Option<String> {
        self.failures.lock().ok()?.get(region).cloned()
    }

    fn is_held(&self, region: &str) -> bool {
        self.held.lock().is_ok_and(|h| h.contains_key(region))
    }

    async fn refresh_region(
        &self,
        region: &str,
        origin: Origin,
        anchor: Option<VerifyingKey>,
    ) -> anyhow::Result<()> {
        let mut client = self.identity.clone();
        if origin == Origin::Partner(PartnerSource::Imported) {
            let response = client
                .get_partner_trust_list(GetPartnerTrustListRequest {
                    region: region.to_owned(),
                })
                .await
                .with_context(|| format!("fetching the imported trust list of {region}"))?
                .into_inner();
            let envelope = response
                .trust_list
                .context("the answer carries no trust list")?;
            let anchor = anchor.context("an imported partner list needs a pinned anchor")?;
            // Checked here too: the gateway pins its own anchors rather than taking
            // identity's word. Ages count from the import.
            let list = open_trust_list(&envelope, region, &anchor)?;
            let fetched_at = response.imported_at.min(self.clock.now());
            return self.hold(
                region,
                Held {
                    list,
                    envelope,
                    anchor,
                    fetched_at,
                },
            );
        }
        if let (Origin::Partner(PartnerSource::Url(url)), Some(anchor)) = (&origin, anchor) {
            let envelope = self
                .fetch_partner_list(url)
                .await
                .with_context(|| format!("fetching the trust list of {region}"))?;
            return self.keep_fetched(region, envelope, anchor).await;
        }
        let response = client
            .get_trust_list(GetTrustListRequest {})
            .await
            .with_context(|| format!("fetching the trust list of {region}"))?
            .into_inner();
        let envelope = response
            .trust_list
            .context("the answer carries no trust list")?;
        let anchor = match anchor {
            Some(a) => a,
            None => {
                let bytes: [u8; 32] = response
                    .anchor_public_key
                    .as_slice()
                    .try_into()
                    .context("identity named no 32-byte anchor key")?;
                let key = VerifyingKey::from_bytes(&bytes).context("identity's anchor key")?;
                tracing::warn!(region = %region, kid = %response.anchor_kid,
                    "pinning the region's anchor key as first seen; set CREDMESH_ANCHOR_PUBLIC_KEY to pin it explicitly");
                if let Ok(mut sources) = self.sources.lock()
                    && let Some(s) = sources.iter_mut().find(|s| s.region == region)
                {
                    s.anchor = Some(key);
                }
                key
            }
        };
        self.keep_fetched(region, envelope, anchor).await
    }

    /// Checks a list fetched just now against `anchor`, holds it and writes it to the
    /// shared cache for replicas started while the region is dark.
    async fn keep_fetched(
        &self,
        region: &str,
        envelope: Envelope,
        anchor: VerifyingKey,
    ) -> anyhow::Result<()> {
        let list = open_trust_list(&envelope, region, &anchor)?;
        let now = self.clock.now();
        let value = [&now.to_be_bytes()[..], &encode_envelope(&envelope)].concat();
        self.hold(
            region,
            Held {
                list,
                envelope,
                anchor,
                fetched_at: now,
            },
        )?;
        self.cache
            .set(
                &cache_key(region),
                &value,
                Duration::from_secs(7 * 24 * 3600),
            )
            .await;
        Ok(())
    }

    /// The signed trust list served at `<url>/v1/trust/list`.
    async fn fetch_partner_list(&self, url: &str) -> anyhow::Result<Envelope> {
        let url = format!("{}{TRUST_LIST_PATH}", url.trim_end_matches('/'));
        let (status, body) = self
            .http
            .get(&url, "application/x-protobuf", OPTIONS.request_timeout)
            .await?;
        if status != http::StatusCode::OK {
            bail!("{url} answered {status}; is it the partner's public address or its identity's?");
        }
        decode_envelope(&body).with_context(|| format!("{url} did not answer a signed trust list"))
    }

    fn hold(&self, region: &str, new: Held) -> anyhow::Result<()> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| anyhow::anyhow!("trust state poisoned"))?;
        if let Some(h) = held.get(region)
            && h.list.sequence > new.list.sequence
        {
            bail!(
                "refusing trust list sequence {} of {region}: {} is held already",
                new.list.sequence,
                h.list.sequence
            );
        }
        held.insert(region.to_owned(), new);
        Ok(())
    }

    async fn load_from_cache(&self, region: &str, anchor: Option<VerifyingKey>) {
        let Some(anchor) = anchor else { return };
        let Some(value) = self.cache.get(&cache_key(region)).await else {
            return;
        };
        if value.len() < 8 {
            return;
        }
        let fetched_at = i64::from_be_bytes(value[..8].try_into().unwrap_or_default());
        let loaded = decode_envelope(&value[8..])
            .map_err(anyhow::Error::from)
            .and_then(|env| open_trust_list(&env, region, &anchor).map(|list| (list, env)));
        match loaded {
            Ok((list, envelope)) => {
                let held = Held {
                    list,
                    envelope,
                    anchor,
                    fetched_at,
                };
                if self.hold(region, held).is_ok() {
                    tracing::info!(region = %region, fetched_at, "trust list loaded from the shared cache");
                }
            }
            Err(err) => {
                tracing::warn!(region = %region, error = %format!("{err:#}"), "cached trust list refused")
            }
        }
    }

    /// Every region's signed list with its anchor, for trust bundles.
    pub fn regions(&self) -> Vec<RegionTrust> {
        self.held
            .lock()
            .map(|held| {
                held.iter()
                    .map(|(region, h)| RegionTrust {
                        region: region.clone(),
                        anchor_public_key: h.anchor.to_bytes().to_vec(),
                        trust_list: Some(h.envelope.clone()),
                        fetched_at: h.fetched_at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn rebuild(&self) {
        let Ok(held) = self.held.lock() else { return };
        let mut trust = Trust {
            http: self.http.clone(),
            ..Trust::default()
        };
        for (region, h) in held.iter() {
            if let Err(err) = trust.snapshot.extend_from_trust_list(&h.list, h.fetched_at) {
                tracing::warn!(region = %region, error = %err, "trust list not admitted");
                continue;
            }
            let base = h.list.status_base_url.trim_end_matches('/');
            if !base.is_empty() {
                trust.status_base.insert(region.clone(), base.to_owned());
            }
            trust.version ^= mix(region.as_bytes(), h.list.sequence);
        }
        drop(held);
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(trust);
        }
    }
}

/// A 64-bit mix of a name and a number, for order-independent version hashes.
pub fn mix(name: &[u8], n: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(name);
    h.update(n.to_be_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
}

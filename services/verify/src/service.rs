//! The gateway's operations: verify one or many credentials from the in-process trust
//! and status data, with the result cache, the missing-list fetch and audit, and the
//! background refresh. (The per-partner rate limit is the serving stack's.)

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use credmesh_cache::{Cache, CacheOptions};
use credmesh_credential::{
    Outcome, Policy, Presented, Verification, push_hex, stage, verify_batch,
};
use credmesh_proto::{
    credential::v1::{CredentialKind, VerificationOutcome},
    prost::Message as _,
    verify::v1::{TrustBundle, VerificationResult},
};
use credmesh_runtime::Clock;
use credmesh_telemetry::metrics::{
    CacheLabels, Metrics, OutcomeLabels, RegionLabel, VerifyMetrics,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::{
    batcher::{BatcherSettings, SignatureBatcher},
    disputes::DisputeStore,
    domain::answer::{self, Freshness},
    federation::Federation,
    shared::{SharedReads, SharedWrites},
    status::{StatusStore, invalidated_list},
    store::{AuditRow, VerifyStore},
};

/// The most credentials one BatchVerify may carry.
pub const MAX_BATCH: usize = 256;

/// How many answers a replica keeps in its own memory in front of a shared (Redis)
/// result cache: about 10 MB of answers at most.
pub const NEAR_RESULTS: usize = 16_384;

/// A credential as received, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An encoded envelope.
    Envelope(Vec<u8>),
    /// QR text or a VC-JWT, recognised by its shape.
    Text(String),
}

impl Input {
    pub(crate) fn presented(&self) -> Presented<'_> {
        match self {
            Input::Envelope(b) => Presented::Native(b),
            Input::Text(t) => Presented::detect(t),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Envelope(b) => b,
            Input::Text(t) => t.trim().as_bytes(),
        }
    }
}

/// Tunables of the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Staleness bound and freshness target.
    pub freshness: Freshness,
    /// How long answers are cached (0: not at all).
    pub result_ttl: Duration,
    /// Trust refresh period.
    pub trust_refresh: Duration,
    /// Status refresh period.
    pub status_refresh: Duration,
    /// Refresh period of this region's own status lists (short: revocations in the
    /// region reach every replica within about this long, even without Redis).
    pub own_status_refresh: Duration,
}

/// What a replica keeps beside a shared (Redis) cache.
#[derive(Debug)]
struct Near {
    /// Its own copies of the answers it stored or read there: a credential scanned
    /// again answers without a round trip. Answer keys name the trust and status data
    /// they were made from (`result_key`), so a revocation reaching this replica changes
    /// the key and no copy outlives it.
    copies: Cache,
    /// Reads of the shared cache for single verifications, coalesced across concurrent
    /// calls.
    reads: SharedReads,
    /// Writes of new answers to the shared cache, off the request path and coalesced
    /// across concurrent calls.
    writes: SharedWrites,
}

/// The verify gateway.
#[derive(Debug)]
pub struct Gateway {
    federation: Arc<Federation>,
    status: Arc<StatusStore>,
    disputes: DisputeStore,
    cache: Cache,
    /// With a shared (Redis) cache: this replica's copies of answers and its coalesced
    /// reads of the shared ones.
    near: Option<Near>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    settings: Settings,
    started: Instant,
    /// Milliseconds since `started` of the last on-demand trust refresh (0: never).
    last_on_demand: AtomicU64,
    audit: mpsc::Sender<AuditRow>,
    store: Arc<dyn VerifyStore>,
    /// The gateway's metrics, once [`Gateway::export_metrics`] ran.
    metrics: std::sync::OnceLock<VerifyMetrics>,
    /// Checks the signatures of concurrent single verifications in batches.
    signatures: SignatureBatcher,
    /// When status lists and dispute notices were last gathered for a trust bundle;
    /// locked while gathering.
    gathered_at: tokio::sync::Mutex<Option<i64>>,
}

/// How often a trust bundle looks for status lists not held yet and fresh dispute
/// notices.
const GATHER_INTERVAL: Duration = Duration::from_secs(30);

/// The regions a metric label may name; anything else is `unknown`.
fn region_label(region: &str) -> &'static str {
    match region {
        "SH" => "SH",
        "JS" => "JS",
        "ZJ" => "ZJ",
        "AH" => "AH",
        _ => "unknown",
    }
}

impl Gateway {
    /// Exports the gateway's metrics on `metrics`: answers by kind, region and outcome,
    /// result cache hits and misses, and (recomputed every
    /// 5 s by a task that ends with the gateway) the age of each region's trust list and
    /// of the oldest status list held for it.
    pub fn export_metrics(self: &Arc<Self>, metrics: &Metrics) {
        let v = metrics.verify().clone();
        if self.metrics.set(v.clone()).is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(g) = weak.upgrade() else { return };
                let now = g.clock.now();
                for r in g.federation.regions() {
                    v.trust_age
                        .get_or_create(&RegionLabel {
                            region: region_label(&r.region),
                        })
                        .set(now.saturating_sub(r.fetched_at));
                }
                let mut oldest: std::collections::HashMap<&'static str, i64> = Default::default();
                for (list_id, updated_at) in g.status.read().last_updates() {
                    let region = region_label(list_id.split('/').next().unwrap_or_default());
                    let age = now.saturating_sub(updated_at);
                    let slot = oldest.entry(region).or_insert(age);
                    *slot = (*slot).max(age);
                }
                for (region, age) in oldest {
                    v.status_age.get_or_create(&RegionLabel { region }).set(age);
                }
            }
        });
    }
    /// A gateway; call [`Gateway::start`] to load data and begin refreshing.
    pub fn new(
        federation: Arc<Federation>,
        cache: Cache,
        clock: Arc<dyn Clock>,
        settings: Settings,
        store: Arc<dyn VerifyStore>,
    ) -> Arc<Self> {
        let status = Arc::new(StatusStore::new(
            cache.clone(),
            settings.freshness.fresh,
            settings.freshness.max_staleness * 2,
        ));
        let (audit, rx) = mpsc::channel(65_536);
        tokio::spawn(audit_writer(rx, store.clone()));
        Arc::new(Self {
            federation,
            status,
            disputes: DisputeStore::new(),
            near: (cache.backend() != "memory").then(|| Near {
                copies: Cache::in_memory(CacheOptions {
                    max_entries: NEAR_RESULTS,
                    ..CacheOptions::default()
                }),
                reads: SharedReads::start(cache.clone()),
                writes: SharedWrites::start(cache.clone(), settings.result_ttl),
            }),
            cache,
            clock,
            policy: Policy {
                max_status_age: settings.freshness.max_staleness,
                max_clock_skew: Duration::from_secs(300),
            },
            settings,
            started: Instant::now(),
            last_on_demand: AtomicU64::new(0),
            audit,
            store,
            metrics: std::sync::OnceLock::new(),
            signatures: SignatureBatcher::start(BatcherSettings::default()),
            gathered_at: tokio::sync::Mutex::new(None),
        })
    }

    /// Refreshes trust (at once, then periodically) and status in the background and
    /// follows other replicas' invalidations. The tasks stop when the gateway is dropped.
    /// Nothing is awaited here, so the gateway can be built before the identity service
    /// it reads from serves (as in `credmesh dev`); a credential naming a key not yet
    /// known triggers a trust refresh on demand (at most every few seconds).
    pub fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut invalidations = self.cache.subscribe_invalidations();
        tokio::spawn(async move {
            loop {
                let key = match invalidations.recv().await {
                    Ok(key) => key,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                let Some(gateway) = weak.upgrade() else {
                    return;
                };
                if let Some(list_id) = invalidated_list(&key) {
                    let trust = gateway.federation.current();
                    let now = gateway.clock.now();
                    if let Err(err) = gateway
                        .status
                        .fetch(list_id, &trust, now, true, Duration::from_secs(5))
                        .await
                    {
                        tracing::warn!(list_id, error = %err, "invalidated status list not refetched");
                    }
                }
            }
        });
        let weak = Arc::downgrade(self);
        let own_every = self.settings.own_status_refresh;
        let own_region = self.federation.own_region();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(own_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(g) = weak.upgrade() else { return };
                let trust = g.federation.current();
                g.status
                    .refresh_all(&trust, g.clock.now(), Some(&own_region))
                    .await;
            }
        });
        let weak = Arc::downgrade(self);
        let (trust_every, status_every) =
            (self.settings.trust_refresh, self.settings.status_refresh);
        tokio::spawn(async move {
            let mut trust_tick = tokio::time::interval(trust_every);
            let mut status_tick = tokio::time::interval(status_every);
            status_tick.tick().await;
            loop {
                tokio::select! {
                    _ = trust_tick.tick() => {
                        let Some(g) = weak.upgrade() else { return };
                        g.refresh_trust().await;
                    }
                    _ = status_tick.tick() => {
                        let Some(g) = weak.upgrade() else { return };
                        g.refresh_status().await;
                    }
                }
            }
        });
    }

    /// Fetches every region's trust list now; returns the regions that failed.
    pub async fn refresh_trust(&self) -> Vec<String> {
        self.federation.refresh().await
    }

    /// Fetches every held status list from its issuer now.
    pub async fn refresh_status(&self) {
        let trust = self.federation.current();
        self.status
            .refresh_all(&trust, self.clock.now(), None)
            .await;
    }

    /// The staleness settings.
    pub fn freshness(&self) -> Freshness {
        self.settings.freshness
    }

    /// Verifies one credential for `caller` (audited when named).
    pub async fn verify(&self, caller: Option<&str>, input: &Input) -> VerificationResult {
        self.verify_many(caller, std::slice::from_ref(input))
            .await
            .pop()
            .unwrap_or_default()
    }

    /// Verifies QR text as the public scan page does: no caller, no audit.
    pub async fn verify_text(&self, text: &str) -> VerificationResult {
        self.verify(None, &Input::Text(text.to_owned())).await
    }

    /// Verifies many credentials (one Ed25519 batch over those not answered from the
    /// result cache); answers in input order. No span of its own: it runs inside the
    /// span of the handler that called it, which names the call (a span here cost a
    /// tenth of a cached Verify).
    pub async fn verify_many(
        &self,
        caller: Option<&str>,
        inputs: &[Input],
    ) -> Vec<VerificationResult> {
        let now = self.clock.now();
        let freshness = self.settings.freshness;
        let caching = !self.settings.result_ttl.is_zero();
        let mut trust = self.federation.current();
        let version = trust.version ^ self.status.version();
        let keys: Vec<String> = if caching {
            inputs
                .iter()
                .map(|i| result_key(version, i.bytes()))
                .collect()
        } else {
            Vec::new()
        };
        let mut results: Vec<Option<VerificationResult>> = vec![None; inputs.len()];
        if caching {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for (slot, hit) in results.iter_mut().zip(self.stored_answers(&refs).await) {
                // The TTL is also checked on this gateway's clock, so an answer never
                // outlives its TTL even when the clocks of cache and gateway disagree.
                let ttl = self.settings.result_ttl.as_secs() as i64;
                if let Some(bytes) = hit
                    && let Ok(r) = VerificationResult::decode(bytes.as_slice())
                    && (0..=ttl).contains(&now.saturating_sub(r.verified_at))
                {
                    *slot = Some(answer::age_cached(r, freshness, now));
                }
            }
        }
        let todo: Vec<usize> = (0..inputs.len())
            .filter(|i| results[*i].is_none())
            .collect();
        if caching && let Some(m) = self.metrics.get() {
            let misses = todo.len() as u64;
            let hits = inputs.len() as u64 - misses;
            for (result, n) in [("hit", hits), ("miss", misses)] {
                if n > 0 {
                    m.cache
                        .get_or_create(&CacheLabels {
                            cache: "result",
                            result,
                        })
                        .inc_by(n);
                }
            }
        }
        if !todo.is_empty() {
            let mut verified = self.run(inputs, &todo, now, &trust).await;
            // A key nobody knew: maybe a new or rotated key; refresh that region's trust
            // list on demand (only a configured region's, at most every few seconds, so
            // made-up key ids cannot make the gateway fetch anything).
            let mut regions: Vec<String> = verified
                .iter()
                .filter(|v| v.reason == "KEY_UNKNOWN")
                .filter_map(|v| v.kid.as_deref()?.split('-').next().map(str::to_owned))
                .filter(|r| self.federation.knows(r))
                .collect();
            regions.sort();
            regions.dedup();
            if !regions.is_empty() && self.may_refresh_on_demand() {
                self.federation.refresh_regions(&regions).await;
                trust = self.federation.current();
                verified = self.run(inputs, &todo, now, &trust).await;
            }
            // Lists nobody held yet: fetch them once, then answer again.
            let missing: Vec<String> = verified
                .iter()
                .filter(|v| v.outcome == Outcome::StatusUnknown && v.reason == "STATUS_UNAVAILABLE")
                .filter_map(|v| {
                    v.credential
                        .as_ref()?
                        .status
                        .as_ref()
                        .map(|s| s.list_id.clone())
                })
                .collect();
            if !missing.is_empty() {
                let mut lists = missing;
                lists.sort();
                lists.dedup();
                for list_id in &lists {
                    self.status.fetch_missing(list_id, &trust, now).await;
                }
                let again: Vec<usize> = todo
                    .iter()
                    .zip(&verified)
                    .filter(|(_, v)| v.reason == "STATUS_UNAVAILABLE")
                    .map(|(i, _)| *i)
                    .collect();
                let redone = self.run(inputs, &again, now, &trust).await;
                let mut redone = again.into_iter().zip(redone);
                let mut next = redone.next();
                for (i, v) in todo.iter().zip(verified.iter_mut()) {
                    if let Some((j, r)) = &next
                        && j == i
                    {
                        *v = r.clone();
                        next = redone.next();
                    }
                }
            }
            let mut to_cache = Vec::new();
            for (i, v) in todo.iter().zip(&verified) {
                let mut result = answer::to_result(v, freshness, now);
                let single_use = v.credential.as_ref().is_some_and(|c| {
                    c.kind == CredentialKind::Presentation as i32 && !c.nonce.is_empty()
                });
                let certificate = v
                    .credential
                    .as_ref()
                    .filter(|c| c.kind == CredentialKind::Certificate as i32);
                if let Some(c) = certificate {
                    // Never cached: a dispute filed must show in the next answer.
                    if let Some(fields) =
                        self.disputes.disputed(&c.issuer, &c.id, &trust, now).await
                    {
                        result.disputed = true;
                        result.disputed_fields = fields;
                    }
                } else if single_use {
                    // Never cached: the second sight of a presentation differs.
                    if v.outcome == Outcome::Valid {
                        self.consume(v, &mut result, now).await;
                    }
                } else if caching && answer::cacheable(&result, freshness, self.settings.result_ttl)
                {
                    to_cache.push((keys[*i].clone(), result.encode_to_vec()));
                }
                results[*i] = Some(result);
            }
            self.remember(to_cache).await;
        }
        let results: Vec<VerificationResult> =
            results.into_iter().map(Option::unwrap_or_default).collect();
        if let Some(m) = self.metrics.get() {
            for r in &results {
                m.outcomes
                    .get_or_create(&OutcomeLabels {
                        kind: credmesh_credential::kind_name(r.kind),
                        region: region_label(&r.region),
                        outcome: outcome_name(r.outcome),
                    })
                    .inc();
            }
        }
        if let Some(client) = caller {
            for r in &results {
                let row = AuditRow {
                    client_id: client.to_owned(),
                    credential_id: r.credential_id.clone(),
                    outcome: outcome_name(r.outcome).to_owned(),
                    reason: r.reason.clone(),
                    issuer: r.issuer.clone(),
                    verified_at: now,
                    kind: crate::audit::kind_column(r.kind),
                    count: 1,
                };
                if self.audit.try_send(row).is_err() {
                    tracing::warn!(
                        client_id = client,
                        "audit queue full; a verification was not audited"
                    );
                }
            }
        }
        results
    }

    /// Records the first use of a single-use presentation in the shared cache (for its
    /// lifetime plus the tolerated skew); a second use answers ALREADY_USED. When the
    /// cache cannot answer, the use cannot be checked and the answer is not VALID.
    async fn consume(&self, v: &Verification, result: &mut VerificationResult, now: i64) {
        let Some(c) = &v.credential else { return };
        let mut key = String::with_capacity(8 + c.issuer.len() + 2 * c.nonce.len());
        let _ = write!(key, "nonce/{}/", c.issuer);
        push_hex(&mut key, &c.nonce);
        let left = c.not_after.saturating_sub(now).saturating_add(300).max(1);
        let ttl = Duration::from_secs(u64::try_from(left).unwrap_or(1));
        match self.cache.set_if_absent(&key, b"1", ttl).await {
            Ok(true) => {}
            Ok(false) => {
                result.outcome = VerificationOutcome::Revoked as i32;
                result.reason = "ALREADY_USED".to_owned();
                result.detail =
                    "This single-use presentation was already verified; ask for a new one."
                        .to_owned();
                result.already_used = true;
            }
            Err(err) => {
                tracing::warn!(error = %err, "single-use presentation not recorded");
                result.outcome = VerificationOutcome::StatusUnknown as i32;
                result.reason = "NONCE_UNCHECKED".to_owned();
                result.detail = "Whether this single-use presentation was used before cannot \
                                 be checked right now; try again shortly."
                    .to_owned();
            }
        }
    }

    /// The stored answers under `keys`, in order: from this replica's near copies
    /// first, then from the shared cache in one round trip for the rest, which are kept
    /// near from then on.
    async fn stored_answers(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let Some(near) = &self.near else {
            return self.cache.get_many(keys).await;
        };
        let mut found = near.copies.get_many(keys).await;
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        if missing.is_empty() {
            return found;
        }
        let refs: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let shared = match refs.as_slice() {
            // A single Verify: read together with the other calls in flight.
            [key] => vec![near.reads.get(key).await],
            _ => self.cache.get_many(&refs).await,
        };
        for (i, hit) in missing.into_iter().zip(shared) {
            if let Some(bytes) = &hit {
                near.copies
                    .set(keys[i], bytes, self.settings.result_ttl)
                    .await;
            }
            found[i] = hit;
        }
        found
    }

    /// Stores answers in the result cache. In-process it is a map insert, done inline;
    /// with Redis the near copy is kept inline and the shared writes leave the request
    /// path (handed to [`SharedWrites`], which pipelines those of concurrent calls), so
    /// an uncached verification costs one read, not a read and a write round trip.
    async fn remember(&self, entries: Vec<(String, Vec<u8>)>) {
        if entries.is_empty() {
            return;
        }
        let ttl = self.settings.result_ttl;
        // A near copy exists exactly when the shared cache is Redis.
        let Some(near) = &self.near else {
            for (key, value) in &entries {
                self.cache.set(key, value, ttl).await;
            }
            return;
        };
        for (key, value) in entries {
            near.copies.set(&key, &value, ttl).await;
            near.writes.put(key, value);
        }
    }

    fn may_refresh_on_demand(&self) -> bool {
        const EVERY_MS: u64 = 5_000;
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_on_demand.load(Ordering::Relaxed);
        (last == 0 || now_ms.saturating_sub(last) >= EVERY_MS)
            && self
                .last_on_demand
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Verifies `inputs[which]`. Many at once (BatchVerify) make one Ed25519 batch; a
    /// single one hands its signature to the batcher, which checks it together with
    /// those of concurrent calls (at once when there are none).
    async fn run(
        &self,
        inputs: &[Input],
        which: &[usize],
        now: i64,
        trust: &crate::federation::Trust,
    ) -> Vec<Verification> {
        if let [one] = which {
            let staged = match stage(inputs[*one].presented(), &trust.snapshot, now) {
                Ok(staged) => staged,
                Err(answer) => return vec![*answer],
            };
            let ok = self
                .signatures
                .check(
                    staged.message().into_owned(),
                    staged.signature(),
                    *staged.key(),
                )
                .await;
            let status = self.status.read();
            return vec![staged.conclude(ok, &*status, &self.policy)];
        }
        let presented: Vec<Presented<'_>> = which.iter().map(|i| inputs[*i].presented()).collect();
        let status = self.status.read();
        verify_batch(&presented, &trust.snapshot, &*status, &self.policy, now)
    }

    /// The trust and status data this gateway holds, as a bundle for offline verifiers:
    /// with every trusted issuer's status lists and dispute notices, also those no
    /// verification has needed yet (see [`Gateway::gather_for_bundle`]).
    pub async fn bundle(&self) -> TrustBundle {
        self.gather_for_bundle().await;
        TrustBundle {
            regions: self.federation.regions(),
            status_lists: self.status.raw_lists(),
            made_at: self.clock.now(),
            dispute_notices: self.disputes.raw_notices(),
        }
    }

    /// Fetches every trusted issuer's status lists that are not held, and every
    /// certificate issuer's current dispute notice. Verification fetches a list or a
    /// notice when it first needs one, so without this a fresh gateway's bundle would
    /// carry none, and every offline answer from it would be "status unknown". At most
    /// once per [`GATHER_INTERVAL`] (the bundle is public), one at a time; issuers of
    /// presentations only publish no lists.
    async fn gather_for_bundle(&self) {
        let mut last = self.gathered_at.lock().await;
        let now = self.clock.now();
        if last.is_some_and(|t| now.saturating_sub(t) < GATHER_INTERVAL.as_secs() as i64) {
            return;
        }
        let trust = self.federation.current();
        let issuers: std::collections::BTreeSet<&str> = trust
            .snapshot
            .iter()
            .filter(|e| e.kinds.iter().any(|k| *k != CredentialKind::Presentation))
            .map(|e| e.issuer.as_str())
            .collect();
        let timeout = Duration::from_secs(2);
        let fetched: usize = futures::future::join_all(
            issuers
                .iter()
                .map(|issuer| self.status.discover(issuer, &trust, now, timeout)),
        )
        .await
        .into_iter()
        .sum();
        if fetched > 0 {
            tracing::info!(fetched, "status lists fetched for the trust bundle");
        }
        futures::future::join_all(
            trust
                .snapshot
                .iter()
                .filter(|e| e.kinds.contains(&CredentialKind::Certificate))
                .map(|e| e.issuer.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|issuer| self.disputes.refresh(issuer, &trust, now)),
        )
        .await;
        *last = Some(now);
    }

    /// A partner's most recent audited verifications, newest first.
    pub async fn audit_for(&self, client_id: &str, limit: u32) -> anyhow::Result<Vec<AuditRow>> {
        self.store.audit_for(client_id, limit).await
    }

    /// The audit rows `query` selects, newest first (see [`crate::audit`]).
    pub async fn list_audit(
        &self,
        query: &crate::store::AuditQuery,
    ) -> anyhow::Result<Vec<crate::store::ListedAuditRow>> {
        self.store.list_audit(query).await
    }
}

fn result_key(version: u64, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut key = String::with_capacity(3 + 16 + 1 + 64);
    let _ = write!(key, "vr/{version:016x}/");
    push_hex(&mut key, &digest);
    key
}

/// Audit rows (before identical ones are counted together) written in one transaction
/// at most: about 100 ms of a busy gateway's verifications.
const AUDIT_BATCH: usize = 4096;

/// How long the audit writer lets rows gather before writing what it has: an audit
/// entry is in the database at most this long (plus the write) after its answer.
const AUDIT_LINGER: Duration = Duration::from_millis(50);

/// The lowercase outcome name of a proto outcome value.
pub fn outcome_name(outcome: i32) -> &'static str {
    use credmesh_proto::credential::v1::VerificationOutcome as O;
    match O::try_from(outcome) {
        Ok(O::Valid) => "valid",
        Ok(O::Revoked) => "revoked",
        Ok(O::Suspended) => "suspended",
        Ok(O::Expired) => "expired",
        Ok(O::NotYetValid) => "not_yet_valid",
        Ok(O::UnknownIssuer) => "unknown_issuer",
        Ok(O::BadSignature) => "bad_signature",
        Ok(O::Malformed) => "malformed",
        Ok(O::StatusUnknown) => "status_unknown",
        _ => "unspecified",
    }
}

async fn audit_writer(mut rx: mpsc::Receiver<AuditRow>, store: Arc<dyn VerifyStore>) {
    // Grown as rows come (`recv_many` reserves what it needs): a quiet gateway's batch
    // of one row does not allocate room for a busy one's 4,096.
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, AUDIT_BATCH).await > 0 {
        // Let a burst gather into one transaction: committing every handful of rows cost
        // more than the rows themselves (WAL frames and checkpoints on SQLite). The
        // writer sleeps out the linger and then takes what came meanwhile: receiving
        // while rows gather woke it once per verification, which cost about 5 % of the
        // rate of cached Verify calls (verify bench). A full batch (a backlog) is
        // written at once.
        if batch.len() < AUDIT_BATCH {
            tokio::time::sleep(AUDIT_LINGER).await;
            let queued = rx.len().min(AUDIT_BATCH - batch.len());
            if queued > 0 {
                rx.recv_many(&mut batch, queued).await;
            }
        }
        let rows = crate::store::collapse(std::mem::take(&mut batch));
        if let Err(err) = store.record(&rows).await {
            let verifications: i64 = rows.iter().map(|r| r.count).sum();
            tracing::error!(error = %format!("{err:#}"), rows = rows.len(), verifications, "audit rows not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_keys_are_the_lowercase_hex_of_the_digest_as_other_replicas_write_them() {
        let digest = Sha256::digest(b"credential");
        let mut expected = String::from("vr/00000000000000ff/");
        for b in digest {
            expected.push_str(&format!("{b:02x}"));
        }
        assert_eq!(result_key(255, b"credential"), expected);
    }
}

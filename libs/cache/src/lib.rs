//! credmesh-cache: one cache interface over an in-process map and Redis.
//!
//! The verify gateway caches trust lists, status lists and verification results. On one
//! machine (`credmesh dev`) that cache is a map in the process; in production it is Redis,
//! standalone or a Redis Cluster, shared by every gateway replica. [`Cache`] hides which, so
//! services are written once and tested on all three.
//!
//! Two rules shape the API:
//! - **A Redis outage degrades to misses, never to errors or wrong answers.** [`Cache::get`]
//!   returns `None` when Redis is down, slow or failing; writes are dropped with a warning.
//!   Every Redis operation is bounded by [`CacheOptions::op_timeout`], so a hung Redis never
//!   hangs a caller. The cache starts even when Redis is down and recovers by itself when it
//!   returns.
//! - **Where a guess would be wrong, there is no guess.** [`Cache::set_if_absent`] (single-use
//!   nonces) returns [`CacheError`] when Redis cannot answer, never a made-up `Ok`.
//!
//! Replicas keep each other fresh with [`Cache::invalidate`]: it deletes the key and publishes
//! it on the pub/sub channel `<key_prefix>invalidate`; every replica's background subscription
//! forwards it to [`Cache::subscribe_invalidations`] receivers within milliseconds.
//!
//! # Layout
//! - `lib.rs`: [`Cache`], its options, errors and statistics; dispatch to a backend.
//! - `memory`: the in-process backend, a bounded map with per-entry expiry.
//! - `remote`: the Redis backends (standalone via `ConnectionManager`, cluster via a
//!   self-rebuilding cluster connection) and the per-operation timeout.
//! - `subscriber`: the background pub/sub task that receives other replicas' invalidations.

mod memory;
mod remote;
mod subscriber;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::broadcast;

use crate::memory::MemoryStore;
use crate::remote::{Remote, Retry};
use crate::subscriber::{Node, Subscription};

/// How many invalidations a slow receiver may fall behind before it sees
/// [`broadcast::error::RecvError::Lagged`].
const INVALIDATION_BUFFER: usize = 1024;
/// At most one warning per this interval per cache, so an outage does not flood the logs; the
/// next warning reports how many were suppressed.
const WARN_INTERVAL: Duration = Duration::from_secs(5);
/// Redis rejects expiry times that overflow its clock; TTLs are capped at about 100 years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A cache shared by clones: cheap to clone, one backend, one invalidation subscription.
///
/// The background subscription task (Redis backends) stops when the last clone is dropped.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    invalidations: broadcast::Sender<String>,
    counters: Counters,
    warnings: WarnLimiter,
    /// `None` for the in-process backend. Dropping it aborts the task.
    subscription: Option<Subscription>,
}

enum Backend {
    Memory(MemoryStore),
    Redis { remote: Remote, name: &'static str },
}

/// Settings shared by every backend.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Namespace prepended to every Redis key and to the invalidation channel name, e.g.
    /// `credmesh:SH:`, so regions, environments and tests can share one Redis. Not used by the
    /// in-process backend, which is private to the process anyway. Default: empty.
    pub key_prefix: String,
    /// Bound on the number of entries of the in-process backend (Redis is bounded by its own
    /// `maxmemory` policy). Default: 100 000.
    pub max_entries: usize,
    /// Deadline for each Redis operation; past it the operation counts as failed (a miss for
    /// reads). Default: 250 ms.
    pub op_timeout: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            key_prefix: String::new(),
            max_entries: 100_000,
            op_timeout: Duration::from_millis(250),
        }
    }
}

/// Why an operation that must not guess ([`Cache::set_if_absent`], [`Cache::ping`]) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// Redis could not be reached, dropped the connection, or answered with an error.
    Unavailable(String),
    /// Redis did not answer within the operation timeout; the operation may or may not have
    /// been applied.
    Timeout(Duration),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Unavailable(reason) => write!(f, "cache unavailable: {reason}"),
            CacheError::Timeout(after) => write!(f, "cache operation timed out after {after:?}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// Counters since the cache was created, for metrics: read them periodically and export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys found (each key of a [`Cache::get_many`] counts once).
    pub hits: u64,
    /// Keys not found, including reads that failed and were answered as misses.
    pub misses: u64,
    /// Backend operations that failed or timed out.
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl Cache {
    /// Opens the cache named by `url`:
    /// - `memory://` or empty: in-process;
    /// - `redis://host:port[/db]` (also `rediss://`, `redis+unix://`): one Redis server;
    /// - `redis-cluster://[user:password@]host:port[,host:port...]`: a Redis Cluster, the
    ///   listed nodes being seeds.
    ///
    /// Fails only for a malformed URL. An unreachable Redis is not an error: the cache starts
    /// degraded (every read a miss), logs a warning and reconnects in the background. The call
    /// waits at most about `op_timeout` for the first connection and subscription.
    pub async fn connect(url: &str, options: CacheOptions) -> anyhow::Result<Cache> {
        let url = url.trim();
        if url.is_empty() || url == "memory://" {
            return Ok(Cache::in_memory(options));
        }
        let (remote, nodes, name) = if let Some(rest) = url.strip_prefix("redis-cluster://") {
            let seeds = cluster_seeds(rest)?;
            let nodes = seeds
                .iter()
                .map(|(url, address)| node(url, address))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let urls = seeds.into_iter().map(|(url, _)| url).collect();
            (
                Remote::cluster(urls, options.op_timeout)?,
                nodes,
                "redis-cluster",
            )
        } else if ["redis://", "rediss://", "redis+unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            let client = redis::Client::open(url).context("invalid redis url")?;
            let address = redacted(url);
            let remote = Remote::standalone(client.clone(), options.op_timeout)?;
            (remote, vec![Node { client, address }], "redis")
        } else {
            // Only the scheme: the rest may hold a password.
            let scheme = url.split("://").next().unwrap_or_default();
            bail!(
                "unsupported cache url scheme {scheme:?}: use memory://, redis:// or redis-cluster://"
            );
        };

        let (invalidations, _) = broadcast::channel(INVALIDATION_BUFFER);
        let channel = format!("{}invalidate", options.key_prefix);
        let subscription = Subscription::spawn(nodes, channel, invalidations.clone());
        let cache = Cache {
            inner: Arc::new(Inner {
                backend: Backend::Redis { remote, name },
                prefix: options.key_prefix,
                invalidations,
                counters: Counters::default(),
                warnings: WarnLimiter::new(),
                subscription: Some(subscription),
            }),
        };

        // Connect and subscribe now so the first requests do not pay for it, and say so when
        // Redis is not there; neither is a reason to refuse to start.
        let subscribed = async {
            match &cache.inner.subscription {
                Some(subscription) => subscription.wait_live(options.op_timeout).await,
                None => true,
            }
        };
        let (ping, subscribed) = tokio::join!(cache.ping(), subscribed);
        match ping {
            Ok(()) if subscribed => {
                tracing::info!(backend = name, "connected to redis cache");
            }
            Ok(()) => {
                tracing::warn!(
                    backend = name,
                    "invalidation subscription not live yet, retrying in the background"
                );
            }
            Err(error) => {
                tracing::warn!(backend = name, %error, "redis unreachable at start, serving misses until it is back");
            }
        }
        Ok(cache)
    }

    /// An in-process cache: for `credmesh dev`, single-machine installs and tests. Invalidations
    /// reach subscribers in this process only.
    pub fn in_memory(options: CacheOptions) -> Cache {
        let (invalidations, _) = broadcast::channel(INVALIDATION_BUFFER);
        Cache {
            inner: Arc::new(Inner {
                backend: Backend::Memory(MemoryStore::new(options.max_entries)),
                prefix: options.key_prefix,
                invalidations,
                counters: Counters::default(),
                warnings: WarnLimiter::new(),
                subscription: None,
            }),
        }
    }

    /// `"memory"`, `"redis"` or `"redis-cluster"`: for logs, metrics labels and readiness
    /// output.
    pub fn backend(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { name, .. } => name,
        }
    }

    /// The value under `key`, or `None` when absent, expired, or Redis cannot answer in time.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let value = match &self.inner.backend {
            Backend::Memory(store) => store.get(key, Instant::now()),
            Backend::Redis { remote, .. } => {
                let mut cmd = redis::cmd("GET");
                cmd.arg(self.key(key));
                match remote.query::<Option<Vec<u8>>>(&cmd, Retry::Once).await {
                    Ok(value) => value,
                    Err(error) => {
                        self.failed("get", "miss", &error);
                        None
                    }
                }
            }
        };
        self.count_reads(usize::from(value.is_some()), 1);
        value
    }

    /// The values under `keys`, in the same order, in one round trip (MGET; on a cluster the
    /// client splits it per node and reassembles the answers in key order). Any failure makes
    /// every key a miss.
    pub async fn get_many(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let values = match &self.inner.backend {
            Backend::Memory(store) => {
                let now = Instant::now();
                keys.iter().map(|key| store.get(key, now)).collect()
            }
            Backend::Redis { remote, .. } => {
                let mut cmd = redis::cmd("MGET");
                for key in keys {
                    cmd.arg(self.key(key));
                }
                match remote
                    .query::<Vec<Option<Vec<u8>>>>(&cmd, Retry::Once)
                    .await
                {
                    Ok(values) if values.len() == keys.len() => values,
                    Ok(values) => {
                        let error = CacheError::Unavailable(format!(
                            "mget returned {} values for {} keys",
                            values.len(),
                            keys.len()
                        ));
                        self.failed("get_many", "miss", &error);
                        vec![None; keys.len()]
                    }
                    Err(error) => {
                        self.failed("get_many", "miss", &error);
                        vec![None; keys.len()]
                    }
                }
            }
        };
        let hits = values.iter().filter(|v| v.is_some()).count();
        self.count_reads(hits, values.len());
        values
    }

    /// Stores `value` under `key` for `ttl` (at least 1 ms, at most about 100 years). When Redis
    /// cannot take it, the value is simply not cached (logged, counted).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        match &self.inner.backend {
            Backend::Memory(store) => store.set(key, value, ttl, Instant::now()),
            Backend::Redis { remote, .. } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.key(key))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_millis(ttl));
                if let Err(error) = remote.query::<()>(&cmd, Retry::Once).await {
                    self.failed("set", "not stored", &error);
                }
            }
        }
    }

    /// Stores each `(key, value)` of `entries` for `ttl`, as [`Cache::set`] would one by
    /// one. A standalone Redis gets them as one pipeline: one write, one round trip, one
    /// read of its socket for all of them. A Redis Cluster takes a pipeline only when
    /// every key hashes to one slot, so there they go as separate commands, sent at once.
    /// When Redis cannot take them, the values are simply not cached (logged, counted).
    pub async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Duration) {
        match &self.inner.backend {
            Backend::Memory(store) => {
                let now = Instant::now();
                for (key, value) in entries {
                    store.set(key, value, ttl, now);
                }
            }
            Backend::Redis { remote, .. } if remote.is_cluster() || entries.len() < 2 => {
                futures::future::join_all(
                    entries.iter().map(|(key, value)| self.set(key, value, ttl)),
                )
                .await;
            }
            Backend::Redis { remote, .. } => {
                let mut pipeline = redis::pipe();
                let millis = ttl_millis(ttl);
                for (key, value) in entries {
                    pipeline
                        .cmd("SET")
                        .arg(self.key(key))
                        .arg(*value)
                        .arg("PX")
                        .arg(millis)
                        .ignore();
                }
                if let Err(error) = remote.pipeline::<()>(&pipeline, Retry::Once).await {
                    self.failed("set_many", "not stored", &error);
                }
            }
        }
    }

    /// Removes `key` here. Other replicas' in-process state is not told: use
    /// [`Cache::invalidate`] for that.
    pub async fn delete(&self, key: &str) {
        match &self.inner.backend {
            Backend::Memory(store) => store.delete(key),
            Backend::Redis { remote, .. } => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(self.key(key));
                if let Err(error) = remote.query::<()>(&cmd, Retry::Once).await {
                    self.failed("delete", "not deleted", &error);
                }
            }
        }
    }

    /// Stores `value` only if `key` holds nothing live, atomically (Redis `SET NX PX`): `true`
    /// when this call stored it, `false` when the key was taken. For single-use nonces, where
    /// a wrong answer would accept a replay, so an unreachable or slow Redis is an `Err`, never
    /// a guess. After a timeout the value may or may not have been stored.
    pub async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        match &self.inner.backend {
            Backend::Memory(store) => Ok(store.set_if_absent(key, value, ttl, Instant::now())),
            Backend::Redis { remote, .. } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.key(key))
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_millis(ttl));
                match remote.query::<Option<String>>(&cmd, Retry::Never).await {
                    Ok(reply) => Ok(reply.is_some()),
                    Err(error) => {
                        self.failed("set_if_absent", "error returned", &error);
                        Err(error)
                    }
                }
            }
        }
    }

    /// Deletes `key` and tells every replica sharing the backend, so each drops whatever it
    /// derived from the old value: the key is published on `<key_prefix>invalidate` and
    /// delivered to [`Cache::subscribe_invalidations`] receivers everywhere, this process
    /// included (immediately, even when Redis is down).
    ///
    /// Delivery is at least once and may repeat (this process hears its own publication back);
    /// handling an invalidation must be idempotent.
    pub async fn invalidate(&self, key: &str) {
        match &self.inner.backend {
            Backend::Memory(store) => store.delete(key),
            Backend::Redis { remote, .. } => {
                // Delete before publishing: a replica reacting to the message must not read the
                // old value back.
                self.delete(key).await;
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(self.channel()).arg(key);
                if let Err(error) = remote.query::<()>(&cmd, Retry::Once).await {
                    self.failed("invalidate", "not published", &error);
                }
            }
        }
        // No receivers is fine: nothing in this process caches anything derived yet.
        let _ = self.inner.invalidations.send(key.to_owned());
    }

    /// A receiver of invalidated keys (without the key prefix), from this process and, for
    /// Redis, from every replica. A receiver that falls more than 1024 keys behind gets
    /// `RecvError::Lagged` and should then drop everything it derived from the cache.
    /// Invalidations published while this replica's subscription was down are not delivered;
    /// TTLs bound the staleness that can cause.
    pub fn subscribe_invalidations(&self) -> broadcast::Receiver<String> {
        self.inner.invalidations.subscribe()
    }

    /// Whether the backend answers now, for readiness probes. Always `Ok` in-process. On a
    /// cluster, every primary must answer.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match &self.inner.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis { remote, .. } => {
                let result = remote
                    .query::<redis::Value>(&redis::cmd("PING"), Retry::Once)
                    .await;
                result.map(|_| ()).inspect_err(|_| {
                    self.inner.counters.errors.fetch_add(1, Ordering::Relaxed);
                })
            }
        }
    }

    /// Whether the invalidation subscription is live. Always `true` in-process; for Redis,
    /// `false` while it is being re-established (invalidations from other replicas may be
    /// missed during that time).
    pub fn invalidations_live(&self) -> bool {
        self.inner
            .subscription
            .as_ref()
            .is_none_or(Subscription::is_live)
    }

    /// Hit, miss and error counts since the cache was created.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    fn channel(&self) -> String {
        format!("{}invalidate", self.inner.prefix)
    }

    fn count_reads(&self, hits: usize, total: usize) {
        let c = &self.inner.counters;
        c.hits.fetch_add(hits as u64, Ordering::Relaxed);
        c.misses.fetch_add((total - hits) as u64, Ordering::Relaxed);
    }

    fn failed(&self, op: &'static str, effect: &'static str, error: &CacheError) {
        self.inner.counters.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.inner.warnings.allow() {
            tracing::warn!(
                backend = self.backend(),
                op,
                effect,
                %error,
                suppressed,
                "cache operation failed"
            );
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.backend())
            .field("key_prefix", &self.inner.prefix)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Milliseconds for Redis `PX`: rounded up so a TTL never shrinks, at least 1 (Redis rejects
/// 0), capped at [`MAX_TTL`].
fn ttl_millis(ttl: Duration) -> u64 {
    let ttl = ttl.min(MAX_TTL);
    let millis = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(millis).unwrap_or(u64::MAX).max(1)
}

/// Splits `[user:password@]host:port,host:port` into one `redis://` URL per seed node, each
/// with a credential-free address for logs.
fn cluster_seeds(rest: &str) -> anyhow::Result<Vec<(String, String)>> {
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), rest),
    };
    let seeds: Vec<(String, String)> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| (format!("redis://{userinfo}{host}"), host.to_owned()))
        .collect();
    if seeds.is_empty() {
        bail!(
            "redis-cluster url lists no nodes: expected redis-cluster://host:port[,host:port...]"
        );
    }
    Ok(seeds)
}

fn node(url: &str, address: &str) -> anyhow::Result<Node> {
    let client = redis::Client::open(url)
        .with_context(|| format!("invalid redis cluster node {address:?}"))?;
    Ok(Node {
        client,
        address: address.to_owned(),
    })
}

/// `scheme://host...` without any `user:password@`, for logs.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, rest))) => format!("{scheme}://{rest}"),
        _ => url.to_owned(),
    }
}

/// Lets one warning through per [`WARN_INTERVAL`] and counts the ones it holds back.
#[derive(Debug)]
struct WarnLimiter {
    start: Instant,
    /// Milliseconds since `start` of the last warning, plus one; 0 means never.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    fn new() -> WarnLimiter {
        WarnLimiter {
            start: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed since the last warning)` when a warning may be logged now.
    fn allow(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let interval = u64::try_from(WARN_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_milliseconds_and_never_reach_zero() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::MAX), ttl_millis(MAX_TTL));
    }

    #[test]
    fn cluster_urls_split_into_seed_nodes_carrying_the_credentials() {
        let seeds = cluster_seeds("u:p@10.0.0.1:7000, 10.0.0.2:7001,").unwrap();
        assert_eq!(
            seeds,
            vec![
                ("redis://u:p@10.0.0.1:7000".into(), "10.0.0.1:7000".into()),
                ("redis://u:p@10.0.0.2:7001".into(), "10.0.0.2:7001".into()),
            ]
        );
        assert!(cluster_seeds(" , ").is_err());
    }

    #[test]
    fn passwords_are_not_part_of_logged_addresses() {
        assert_eq!(
            redacted("redis://:secret@host:6379/1"),
            "redis://host:6379/1"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn the_warn_limiter_lets_the_first_warning_through_and_counts_the_rest() {
        let limiter = WarnLimiter::new();
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn an_unknown_url_scheme_is_a_configuration_error() {
        let error = Cache::connect("memcached://secret@host", CacheOptions::default())
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"memcached\""), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[tokio::test]
    async fn an_empty_or_memory_url_gives_the_in_process_backend() {
        for url in ["", "memory://"] {
            let cache = Cache::connect(url, CacheOptions::default()).await.unwrap();
            assert_eq!(cache.backend(), "memory");
        }
    }
}

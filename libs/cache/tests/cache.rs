//! Behaviour of `Cache` on every backend, and what happens when Redis goes away.
//!
//! The behavioural tests run three times: in-process, on the shared standalone Redis and on the
//! shared Redis Cluster (`make test` starts both; see `credmesh_testkit::redis`). Each test uses
//! its own key prefix, so tests share the servers without seeing each other's keys. The fault
//! tests start private servers they can kill.

// Helpers here are test code too (clippy only recognises `#[test]` functions): a panic is how
// they report a failure.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use credmesh_cache::{Cache, CacheOptions};
use credmesh_testkit::redis::{
    RedisCluster, RedisServer, shared_cluster_url, shared_url, unique_prefix,
};
use tokio::sync::broadcast::{self, error::RecvError};

const MINUTE: Duration = Duration::from_secs(60);
/// How long a recovered Redis may take to be used again (reconnect backoff is capped at ~1 s).
const RECOVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Target {
    Memory,
    Standalone,
    Cluster,
}

/// Logs to stderr when `TEST_LOG` is set (e.g. `TEST_LOG=debug`); tests are quiet otherwise.
fn init_test_log() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

fn options() -> CacheOptions {
    init_test_log();
    CacheOptions {
        key_prefix: unique_prefix(),
        ..CacheOptions::default()
    }
}

async fn open(target: Target, options: CacheOptions) -> Cache {
    let cache = match target {
        Target::Memory => Cache::in_memory(options),
        Target::Standalone => Cache::connect(&shared_url(), options).await.unwrap(),
        Target::Cluster => Cache::connect(&shared_cluster_url(), options)
            .await
            .unwrap(),
    };
    let expected = match target {
        Target::Memory => "memory",
        Target::Standalone => "redis",
        Target::Cluster => "redis-cluster",
    };
    assert_eq!(cache.backend(), expected);
    cache
}

/// Another replica on the same backend: a second `Cache::connect` to the same URL and prefix.
/// In-process there is no other replica; a clone is the closest thing.
async fn replica_of(target: Target, cache: &Cache, options: CacheOptions) -> Cache {
    match target {
        Target::Memory => cache.clone(),
        _ => open(target, options).await,
    }
}

async fn get_after_set_returns_the_value(target: Target) {
    let cache = open(target, options()).await;
    let value = [0u8, 159, 146, 150, 255];
    cache.set("doc", &value, MINUTE).await;
    assert_eq!(cache.get("doc").await, Some(value.to_vec()));
    cache.set("doc", b"second", MINUTE).await;
    assert_eq!(cache.get("doc").await, Some(b"second".to_vec()));
}

async fn a_missing_key_is_a_miss_and_counted_as_one(target: Target) {
    let cache = open(target, options()).await;
    assert_eq!(cache.get("absent").await, None);
    cache.set("present", b"v", MINUTE).await;
    assert!(cache.get("present").await.is_some());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (1, 1, 0));
}

async fn an_entry_expires_after_its_ttl(target: Target) {
    let cache = open(target, options()).await;
    cache.set("short", b"v", Duration::from_secs(1)).await;
    cache.set("long", b"v", MINUTE).await;
    assert!(cache.get("short").await.is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cache.get("short").await, None);
    assert!(cache.get("long").await.is_some());
}

async fn get_many_returns_values_in_key_order(target: Target) {
    let cache = open(target, options()).await;
    // Twenty keys hash to slots on every node of a three-node cluster, so the cluster client
    // has to split the MGET and put the answers back in order.
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        cache
            .set(key, format!("value-{i}").as_bytes(), MINUTE)
            .await;
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = cache.get_many(&refs).await;
    let expected: Vec<Option<Vec<u8>>> = (0..20)
        .map(|i| (i % 3 != 0).then(|| format!("value-{i}").into_bytes()))
        .collect();
    assert_eq!(values, expected);
    assert_eq!(cache.get_many(&[]).await, Vec::<Option<Vec<u8>>>::new());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (13, 7));
}

async fn set_many_stores_every_entry_with_its_ttl(target: Target) {
    let cache = open(target, options()).await;
    // Keys on every node of a three-node cluster, sent as one batch.
    let keys: Vec<String> = (0..20).map(|i| format!("many-{i}")).collect();
    let values: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i, 0, 255, i]).collect();
    let entries: Vec<(&str, &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    cache.set_many(&entries, Duration::from_secs(1)).await;
    cache.set_many(&[("alone", b"one")], MINUTE).await;
    cache.set_many(&[], MINUTE).await;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let stored = cache.get_many(&refs).await;
    assert_eq!(stored, values.iter().cloned().map(Some).collect::<Vec<_>>());
    assert_eq!(cache.get("alone").await, Some(b"one".to_vec()));
    assert_eq!(cache.stats().errors, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cache.get_many(&refs).await, vec![None; 20]);
    assert_eq!(cache.get("alone").await, Some(b"one".to_vec()));
}

async fn set_if_absent_is_true_once_then_false(target: Target) {
    let cache = open(target, options()).await;
    assert_eq!(cache.set_if_absent("nonce", b"1", MINUTE).await, Ok(true));
    assert_eq!(cache.set_if_absent("nonce", b"2", MINUTE).await, Ok(false));
    assert_eq!(cache.get("nonce").await, Some(b"1".to_vec()));
}

async fn set_if_absent_succeeds_again_once_the_key_expired(target: Target) {
    let cache = open(target, options()).await;
    let ttl = Duration::from_millis(300);
    assert_eq!(cache.set_if_absent("nonce", b"1", ttl).await, Ok(true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cache.set_if_absent("nonce", b"2", ttl).await, Ok(true));
}

async fn delete_removes_the_key(target: Target) {
    let cache = open(target, options()).await;
    cache.set("doc", b"v", MINUTE).await;
    cache.set_many(&[("a", b"v"), ("b", b"v")], MINUTE).await;
    cache.delete("doc").await;
    assert_eq!(cache.get("doc").await, None);
    cache.delete("never-set").await;
}

async fn caches_with_different_prefixes_do_not_share_keys(target: Target) {
    let a = open(target, options()).await;
    let b = open(target, options()).await;
    a.set("doc", b"a", MINUTE).await;
    assert_eq!(b.get("doc").await, None);
    assert_eq!(b.set_if_absent("doc", b"b", MINUTE).await, Ok(true));
    assert_eq!(a.get("doc").await, Some(b"a".to_vec()));
}

async fn invalidate_deletes_the_key_and_reaches_another_replica_within_a_second(target: Target) {
    let options = options();
    let cache = open(target, options.clone()).await;
    let replica = replica_of(target, &cache, options).await;
    let mut invalidations = replica.subscribe_invalidations();
    cache.set("trust-list", b"v1", MINUTE).await;

    let start = Instant::now();
    cache.invalidate("trust-list").await;
    let key = tokio::time::timeout(Duration::from_secs(1), invalidations.recv())
        .await
        .expect("no invalidation within 1 s")
        .unwrap();
    assert_eq!(key, "trust-list");
    eprintln!(
        "{target:?}: invalidation delivered in {:?}",
        start.elapsed()
    );
    assert_eq!(replica.get("trust-list").await, None);
}

async fn invalidate_is_delivered_to_the_invalidating_replica_too(target: Target) {
    let cache = open(target, options()).await;
    let mut invalidations = cache.subscribe_invalidations();
    cache.invalidate("status-list").await;
    let key = tokio::time::timeout(Duration::from_secs(1), invalidations.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key, "status-list");
}

async fn ping_succeeds_while_the_backend_is_up(target: Target) {
    let cache = open(target, options()).await;
    cache.ping().await.unwrap();
    assert!(cache.invalidations_live());
}

async fn dropping_the_last_clone_stops_the_background_task(target: Target) {
    let cache = open(target, options()).await;
    let clone = cache.clone();
    let mut invalidations = cache.subscribe_invalidations();
    drop(cache);
    clone.set("k", b"v", MINUTE).await;
    drop(clone);
    // The subscription task holds a sender of this channel: the channel closes only once the
    // task is gone.
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Err(RecvError::Closed) = invalidations.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the background task outlived the cache");
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $test() { super::$test(super::Target::Memory).await } )*
        }
        mod standalone {
            $( #[tokio::test] async fn $test() { super::$test(super::Target::Standalone).await } )*
        }
        mod cluster {
            $( #[tokio::test] async fn $test() { super::$test(super::Target::Cluster).await } )*
        }
    };
}

on_every_backend!(
    get_after_set_returns_the_value,
    a_missing_key_is_a_miss_and_counted_as_one,
    an_entry_expires_after_its_ttl,
    get_many_returns_values_in_key_order,
    set_many_stores_every_entry_with_its_ttl,
    set_if_absent_is_true_once_then_false,
    set_if_absent_succeeds_again_once_the_key_expired,
    delete_removes_the_key,
    caches_with_different_prefixes_do_not_share_keys,
    invalidate_deletes_the_key_and_reaches_another_replica_within_a_second,
    invalidate_is_delivered_to_the_invalidating_replica_too,
    ping_succeeds_while_the_backend_is_up,
    dropping_the_last_clone_stops_the_background_task,
);

// ---------------------------------------------------------------------------------------------
// Faults: private servers, killed and restarted under a live cache.

const OP_TIMEOUT: Duration = Duration::from_millis(200);
/// What "quickly" means for an operation against a dead Redis: its timeout plus scheduling
/// slack.
const QUICKLY: Duration = Duration::from_millis(700);

fn fault_options() -> CacheOptions {
    init_test_log();
    CacheOptions {
        key_prefix: unique_prefix(),
        op_timeout: OP_TIMEOUT,
        ..CacheOptions::default()
    }
}

/// Retries `check` until it returns true or `limit` passes; returns how long it took.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invalidation_arrives(
    from: &Cache,
    to: &mut broadcast::Receiver<String>,
    key: &str,
) -> bool {
    from.invalidate(key).await;
    let wait = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            match to.recv().await {
                Ok(received) if received == key => return true,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return false,
            }
        }
    });
    wait.await.unwrap_or(false)
}

/// Everything a caller can do against a dead backend: answered within the timeout, reads as
/// misses, writes dropped, and the nonce check an error rather than a guess.
async fn assert_degraded(cache: &Cache) {
    let start = Instant::now();
    assert_eq!(cache.get("doc").await, None);
    let elapsed = start.elapsed();
    assert!(
        elapsed < QUICKLY,
        "get took {elapsed:?} against a dead redis"
    );
    eprintln!("{}: degraded get answered in {elapsed:?}", cache.backend());

    let start = Instant::now();
    cache.set("doc", b"v", MINUTE).await;
    cache.set_many(&[("a", b"v"), ("b", b"v")], MINUTE).await;
    cache.delete("doc").await;
    cache.invalidate("doc").await;
    assert_eq!(cache.get_many(&["a", "b"]).await, vec![None, None]);
    assert!(cache.set_if_absent("nonce", b"1", MINUTE).await.is_err());
    assert!(cache.ping().await.is_err());
    let elapsed = start.elapsed();
    assert!(elapsed < QUICKLY * 7, "seven operations took {elapsed:?}");
    assert!(cache.stats().errors > 0);
}

/// Degraded for longer than the longest reconnect pause (about 1 s), so operations meet both
/// "reconnect not due yet" and real connection attempts against the dead server.
async fn stays_degraded(cache: &Cache) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        assert_degraded(cache).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A degraded cache is usable again: reads, writes, nonces and invalidations between the two
/// replicas, without being recreated.
async fn assert_recovers(what: &str, cache: &Cache, replica: &Cache) {
    let took = eventually(what, RECOVERY, || async {
        cache.set("doc", b"back", MINUTE).await;
        cache.get("doc").await.as_deref() == Some(b"back".as_slice())
    })
    .await;
    eprintln!("{what}: reads and writes back after {took:?}");
    assert_eq!(replica.get("doc").await, Some(b"back".to_vec()));
    assert_eq!(
        cache.get_many(&["doc", "other", "doc"]).await,
        vec![Some(b"back".to_vec()), None, Some(b"back".to_vec())]
    );
    assert_eq!(
        cache.set_if_absent("fresh-nonce", b"1", MINUTE).await,
        Ok(true)
    );
    assert_eq!(
        replica.set_if_absent("fresh-nonce", b"1", MINUTE).await,
        Ok(false)
    );
    cache.ping().await.unwrap();

    let mut invalidations = replica.subscribe_invalidations();
    let start = Instant::now();
    while !invalidation_arrives(cache, &mut invalidations, "doc").await {
        assert!(
            start.elapsed() < RECOVERY,
            "{what}: invalidations not flowing within {RECOVERY:?}"
        );
    }
    eprintln!(
        "{what}: invalidations flowing again after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_standalone_outage_degrades_to_misses_and_the_same_cache_recovers_after_restart() {
    let mut server = RedisServer::start().await.unwrap();
    let options = fault_options();
    let cache = Cache::connect(&server.url(), options.clone())
        .await
        .unwrap();
    let replica = Cache::connect(&server.url(), options).await.unwrap();
    cache.set("doc", b"v", MINUTE).await;
    assert_eq!(replica.get("doc").await, Some(b"v".to_vec()));

    server.stop().await;
    stays_degraded(&cache).await;

    server.restart().await.unwrap();
    assert_recovers("standalone restart", &cache, &replica).await;
}

#[tokio::test]
async fn a_cache_created_while_standalone_redis_is_down_starts_degraded_and_recovers() {
    let mut server = RedisServer::start().await.unwrap();
    server.stop().await;
    let options = fault_options();

    let start = Instant::now();
    let cache = Cache::connect(&server.url(), options.clone())
        .await
        .unwrap();
    let replica = Cache::connect(&server.url(), options).await.unwrap();
    assert!(
        start.elapsed() < QUICKLY * 2,
        "connect took {:?}",
        start.elapsed()
    );
    assert_eq!(cache.backend(), "redis");
    assert!(!cache.invalidations_live());
    assert_degraded(&cache).await;

    server.restart().await.unwrap();
    assert_recovers("standalone late start", &cache, &replica).await;
}

#[tokio::test]
async fn a_cluster_outage_degrades_to_misses_and_the_same_cache_recovers_after_restart() {
    let mut cluster = RedisCluster::start().await.unwrap();
    let options = fault_options();
    let cache = Cache::connect(&cluster.url(), options.clone())
        .await
        .unwrap();
    let replica = Cache::connect(&cluster.url(), options).await.unwrap();
    cache.set("doc", b"v", MINUTE).await;
    assert_eq!(replica.get("doc").await, Some(b"v".to_vec()));

    cluster.stop().await;
    stays_degraded(&cache).await;

    cluster.restart().await.unwrap();
    assert_recovers("cluster restart", &cache, &replica).await;
}

#[tokio::test]
async fn a_cache_created_while_the_cluster_is_down_starts_degraded_and_recovers() {
    let mut cluster = RedisCluster::start().await.unwrap();
    cluster.stop().await;
    let options = fault_options();

    let start = Instant::now();
    let cache = Cache::connect(&cluster.url(), options.clone())
        .await
        .unwrap();
    let replica = Cache::connect(&cluster.url(), options).await.unwrap();
    assert!(
        start.elapsed() < QUICKLY * 2,
        "connect took {:?}",
        start.elapsed()
    );
    assert_eq!(cache.backend(), "redis-cluster");
    assert_degraded(&cache).await;

    cluster.restart().await.unwrap();
    assert_recovers("cluster late start", &cache, &replica).await;
}

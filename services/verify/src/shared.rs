//! The shared (Redis) result cache as concurrent single verifications use it: reads
//! and writes of many callers go out together.
//!
//! - **Reads** ([`SharedReads`]): each Verify call whose answer is not in this replica's
//!   near copies hands its key to a small pool of workers, which read whatever keys are
//!   pending with one MGET (one round trip and one command for Redis instead of one
//!   each). Answers are what [`Cache::get_many`] gives: a Redis outage is a miss for
//!   every key of the read, never an error.
//! - **Writes** ([`SharedWrites`]): each new answer is handed over without waiting, and
//!   the workers store whatever answers are pending with [`Cache::set_many`]: one
//!   pipeline on a standalone Redis (a cluster takes its commands one by one, sent at
//!   once). The caller never waits for a write; a write that fails is a later miss.
//!
//! The pooling is [`credmesh_runtime::coalesce`]'s: no added wait when idle, a bounded queue, safe
//! cancellation. A key that could not be queued, or whose worker is gone, is read or
//! written by its caller on its own.

use std::time::Duration;

use credmesh_cache::Cache;

use credmesh_runtime::coalesce::Coalescer;

/// Workers reading at once (each one MGET in flight).
const WORKERS: usize = 4;
/// Workers writing at once (each one pipeline in flight).
const WRITERS: usize = 2;
/// The most keys one MGET reads, or one pipeline writes.
const MAX_KEYS: usize = 256;
/// The most keys waiting for a worker.
const QUEUE: usize = 4096;

/// Reads single keys of the shared cache for concurrent callers, many per command; see
/// the module docs.
#[derive(Debug, Clone)]
pub struct SharedReads {
    cache: Cache,
    reads: Coalescer<String, Option<Vec<u8>>>,
}

impl SharedReads {
    /// Starts the workers on the current Tokio runtime.
    pub fn start(cache: Cache) -> Self {
        let reader = cache.clone();
        let reads = Coalescer::start(WORKERS, MAX_KEYS, QUEUE, move |keys: Vec<String>| {
            let cache = reader.clone();
            async move {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                cache.get_many(&keys).await
            }
        });
        Self { cache, reads }
    }

    /// The value under `key` in the shared cache, read together with other callers'
    /// keys.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.reads.submit(key.to_owned()).await {
            Some(value) => value,
            // Not queued (queue full, workers gone) or not answered: read it directly.
            None => self.cache.get(key).await,
        }
    }
}

/// Stores answers in the shared cache for concurrent callers, many per pipeline, each
/// for the same time to live; see the module docs.
#[derive(Debug, Clone)]
pub struct SharedWrites {
    cache: Cache,
    ttl: Duration,
    writes: Coalescer<(String, Vec<u8>), ()>,
}

impl SharedWrites {
    /// Starts the workers on the current Tokio runtime; every value is kept for `ttl`.
    pub fn start(cache: Cache, ttl: Duration) -> Self {
        let writer = cache.clone();
        let writes = Coalescer::start(
            WRITERS,
            MAX_KEYS,
            QUEUE,
            move |entries: Vec<(String, Vec<u8>)>| {
                let cache = writer.clone();
                async move {
                    let refs: Vec<(&str, &[u8])> = entries
                        .iter()
                        .map(|(key, value)| (key.as_str(), value.as_slice()))
                        .collect();
                    cache.set_many(&refs, ttl).await;
                    vec![(); entries.len()]
                }
            },
        );
        Self { cache, ttl, writes }
    }

    /// Stores `value` under `key`, together with other callers' answers, without
    /// waiting for it.
    pub fn put(&self, key: String, value: Vec<u8>) {
        if let Err((key, value)) = self.writes.post((key, value)) {
            // Not queued (queue full, workers gone): it goes out on its own.
            let (cache, ttl) = (self.cache.clone(), self.ttl);
            tokio::spawn(async move { cache.set(&key, &value, ttl).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use credmesh_cache::CacheOptions;

    use super::*;

    #[tokio::test]
    async fn concurrent_reads_answer_each_key_with_its_own_value() {
        let cache = Cache::in_memory(CacheOptions::default());
        for i in 0..100 {
            cache
                .set(
                    &format!("k{i}"),
                    format!("v{i}").as_bytes(),
                    Duration::from_secs(60),
                )
                .await;
        }
        let reads = SharedReads::start(cache);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let reads = reads.clone();
                tokio::spawn(async move { (i, reads.get(&format!("k{i}")).await) })
            })
            .collect();
        for task in tasks {
            let (i, value) = task.await.unwrap();
            if i < 100 {
                assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()));
            } else {
                assert_eq!(value, None, "k{i} was never stored");
            }
        }
    }

    #[tokio::test]
    async fn every_posted_answer_is_stored_without_its_caller_waiting() {
        let cache = Cache::in_memory(CacheOptions::default());
        let writes = SharedWrites::start(cache.clone(), Duration::from_secs(60));
        for i in 0..500 {
            writes.put(format!("k{i}"), format!("v{i}").into_bytes());
        }
        let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stored = cache.get_many(&keys).await;
            if stored.iter().all(Option::is_some) {
                for (i, value) in stored.into_iter().enumerate() {
                    assert_eq!(value, Some(format!("v{i}").into_bytes()));
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of 500 answers stored after 5 s",
                stored.iter().filter(|v| v.is_some()).count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_stop_the_others() {
        let cache = Cache::in_memory(CacheOptions::default());
        cache.set("kept", b"yes", Duration::from_secs(60)).await;
        let reads = SharedReads::start(cache);
        let abandoned = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.get("gone").await })
        };
        abandoned.abort();
        assert_eq!(reads.get("kept").await.as_deref(), Some(&b"yes"[..]));
    }
}

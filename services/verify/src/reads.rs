//! Coalesces the shared result-cache reads of concurrent single verifications: each
//! Verify call whose answer is not in this replica's near copies hands its key to a
//! small pool of workers, which read whatever keys are pending with one MGET (one round
//! trip and one command for Redis instead of one each).
//!
//! The pooling is [`crate::coalesce`]'s: no added wait when idle, a bounded queue, safe
//! cancellation. A caller whose key could not be queued, or whose worker is gone, reads
//! its key itself. Answers are what [`Cache::get_many`] gives: a Redis outage is a miss
//! for every key of the read, never an error.

use credmesh_cache::Cache;

use crate::coalesce::Coalescer;

/// Workers reading at once (each one MGET in flight).
const WORKERS: usize = 4;
/// The most keys one MGET reads.
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

//! Coalesces the shared result-cache reads of concurrent single verifications: each
//! Verify call whose answer is not in this replica's near copies hands its key to a
//! small pool of workers, which read whatever keys are pending with one MGET (one round
//! trip and one command for Redis instead of one each).
//!
//! It follows [`crate::batcher`]:
//! - **No added wait when idle**: a worker takes what has queued the moment it is free;
//!   a lone key is read at once. Under load, what queues while the workers wait on Redis
//!   becomes the next read, up to `max_keys`.
//! - **Bounded**: the queue holds at most `queue` keys; past that a caller reads its own
//!   key rather than wait or grow the queue.
//! - **Cancellation-safe**: a caller that goes away only drops the receiving end of its
//!   answer, and its key is skipped. If a worker is gone, the caller reads its key
//!   itself. Workers end when the reader is dropped.
//!
//! Answers are what [`Cache::get_many`] gives: a Redis outage is a miss for every key of
//! the read, never an error.

use std::sync::Arc;

use credmesh_cache::Cache;
use tokio::sync::{Mutex, mpsc, oneshot};

/// One key to read.
#[derive(Debug)]
struct Read {
    key: String,
    answer: oneshot::Sender<Option<Vec<u8>>>,
}

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
    queue: mpsc::Sender<Read>,
}

impl SharedReads {
    /// Starts the workers on the current Tokio runtime.
    pub fn start(cache: Cache) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            tokio::spawn(work(rx.clone(), cache.clone()));
        }
        Self { cache, queue }
    }

    /// The value under `key` in the shared cache, read together with other callers'
    /// keys.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (answer, answered) = oneshot::channel();
        let read = Read {
            key: key.to_owned(),
            answer,
        };
        if self.queue.try_send(read).is_err() {
            // Queue full (or the workers are gone): never wait, never queue unboundedly.
            return self.cache.get(key).await;
        }
        match answered.await {
            Ok(value) => value,
            // The worker holding the read ended without answering.
            Err(_) => self.cache.get(key).await,
        }
    }
}

async fn work(rx: Arc<Mutex<mpsc::Receiver<Read>>>, cache: Cache) {
    let mut reads = Vec::with_capacity(MAX_KEYS);
    loop {
        let received = rx.lock().await.recv_many(&mut reads, MAX_KEYS).await;
        if received == 0 {
            return; // The reader was dropped and the queue is drained.
        }
        // Callers that went away need no answer.
        reads.retain(|r| !r.answer.is_closed());
        if reads.is_empty() {
            continue;
        }
        let keys: Vec<&str> = reads.iter().map(|r| r.key.as_str()).collect();
        let values = cache.get_many(&keys).await;
        drop(keys);
        for (read, value) in reads.drain(..).zip(values) {
            let _ = read.answer.send(value);
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

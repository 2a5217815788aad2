//! Batches the signature checks of concurrent single verifications: each Verify call
//! hands its (message, signature, key) to a small pool of workers, which check whatever
//! is pending as one Ed25519 batch (about half the cost per signature from 16 on).
//!
//! The pooling is [`credmesh_runtime::coalesce`]'s: no added wait when idle (a lone request is
//! checked at once, strictly, as a single verify), a bounded queue, safe cancellation.
//! A caller whose check could not be queued, or whose worker is gone, checks its
//! signature inline. Failures are attributed: a batch that fails is rechecked one
//! signature at a time ([`check_signatures`]), so a forged signature never makes an
//! honest one fail and never passes because honest ones surround it.

use std::{future::ready, sync::Arc};

use credmesh_credential::{Signature, VerifyingKey, check_signatures};

use credmesh_runtime::coalesce::Coalescer;

/// One signature to check.
#[derive(Debug)]
struct Check {
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

impl Check {
    fn strict(&self) -> bool {
        self.key
            .verify_strict(&self.message, &self.signature)
            .is_ok()
    }
}

/// Sizes of a [`SignatureBatcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherSettings {
    /// Workers checking batches in parallel (default: the available cores, at most 8).
    pub workers: usize,
    /// The most signatures one batch checks (default 64).
    pub max_batch: usize,
    /// The most checks waiting for a worker (default 1024); past that callers check
    /// inline.
    pub queue: usize,
}

impl Default for BatcherSettings {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism()
                .map_or(1, usize::from)
                .clamp(1, 8),
            max_batch: 64,
            queue: 1024,
        }
    }
}

/// Checks signatures for concurrent callers in batches; see the module docs.
#[derive(Debug, Clone)]
pub struct SignatureBatcher {
    checks: Coalescer<Arc<Check>, bool>,
}

impl SignatureBatcher {
    /// Starts the workers on the current Tokio runtime.
    pub fn start(settings: BatcherSettings) -> Self {
        let checks = Coalescer::start(
            settings.workers,
            settings.max_batch,
            settings.queue,
            |checks: Vec<Arc<Check>>| {
                let items: Vec<(&[u8], Signature, VerifyingKey)> = checks
                    .iter()
                    .map(|c| (c.message.as_slice(), c.signature, c.key))
                    .collect();
                ready(check_signatures(&items))
            },
        );
        Self { checks }
    }

    /// True when `signature` over `message` verifies under `key`: strict Ed25519 when
    /// checked alone, the batch equation (then strict on failure) when checked with
    /// others.
    pub async fn check(&self, message: Vec<u8>, signature: Signature, key: VerifyingKey) -> bool {
        let check = Arc::new(Check {
            message,
            signature,
            key,
        });
        match self.checks.submit(check.clone()).await {
            Some(ok) => ok,
            // Not queued (queue full, workers gone) or not answered: never wait for it.
            None => check.strict(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use credmesh_credential::{Context, IssuerKey, seal, signing_input};
    use futures::future::join_all;

    use super::*;

    fn signed(key: &IssuerKey, i: u32) -> (Vec<u8>, Signature) {
        let payload = format!("credential {i}").into_bytes();
        let envelope = seal(Context::Credential, payload.clone(), key);
        (
            signing_input(Context::Credential, &payload),
            Signature::from_slice(&envelope.signature).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_lone_check_is_answered_at_once_and_strictly() {
        let batcher = SignatureBatcher::start(BatcherSettings::default());
        let key = IssuerKey::generate("k").unwrap();
        let (message, signature) = signed(&key, 1);
        assert!(
            tokio::time::timeout(
                Duration::from_secs(5),
                batcher.check(message.clone(), signature, key.verifying_key())
            )
            .await
            .unwrap()
        );
        let mut forged = message;
        forged.push(0);
        assert!(!batcher.check(forged, signature, key.verifying_key()).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_mixed_checks_each_get_their_own_answer() {
        let batcher = SignatureBatcher::start(BatcherSettings {
            workers: 2,
            max_batch: 16,
            queue: 1024,
        });
        let key = IssuerKey::generate("k").unwrap();
        let other = IssuerKey::generate("o").unwrap();
        let mut calls = Vec::new();
        for i in 0..500u32 {
            let (mut message, signature) = signed(&key, i);
            // Every seventh is forged: a changed message, or signed by another key.
            let (honest, key) = match i % 7 {
                0 => {
                    message.push(b'!');
                    (false, key.verifying_key())
                }
                3 => (false, other.verifying_key()),
                _ => (true, key.verifying_key()),
            };
            let batcher = batcher.clone();
            calls.push(tokio::spawn(async move {
                (honest, batcher.check(message, signature, key).await)
            }));
        }
        for call in join_all(calls).await {
            let (honest, answer) = call.unwrap();
            assert_eq!(honest, answer);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_callers_never_wedge_the_batcher() {
        let batcher = SignatureBatcher::start(BatcherSettings {
            workers: 1,
            max_batch: 8,
            queue: 64,
        });
        let key = IssuerKey::generate("k").unwrap();
        // Callers dropped at every point: before, while and after being queued.
        for round in 0..50u32 {
            let mut calls = Vec::new();
            for i in 0..32u32 {
                let (message, signature) = signed(&key, round * 100 + i);
                let batcher = batcher.clone();
                let vk = key.verifying_key();
                calls.push(tokio::spawn(async move {
                    batcher.check(message, signature, vk).await
                }));
            }
            for (i, call) in calls.iter().enumerate() {
                if i % 2 == 0 {
                    call.abort();
                }
            }
            for call in calls {
                match call.await {
                    Ok(ok) => assert!(ok),
                    Err(e) => assert!(e.is_cancelled()),
                }
            }
        }
        // Still answering, promptly.
        let (message, signature) = signed(&key, 9_999);
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            batcher.check(message, signature, key.verifying_key()),
        )
        .await
        .unwrap();
        assert!(answer);
    }

    #[tokio::test]
    async fn a_full_queue_checks_inline_instead_of_growing() {
        // One worker, a queue of one, and a current-thread runtime: while the test
        // holds the thread, the worker cannot drain, so the queue fills.
        let batcher = SignatureBatcher::start(BatcherSettings {
            workers: 1,
            max_batch: 4,
            queue: 1,
        });
        let key = IssuerKey::generate("k").unwrap();
        let checks: Vec<_> = (0..20u32)
            .map(|i| {
                let (message, signature) = signed(&key, i);
                let mut message = message;
                if i == 5 {
                    message.push(0);
                }
                batcher.check(message, signature, key.verifying_key())
            })
            .collect();
        let answers = join_all(checks).await;
        let expected: Vec<bool> = (0..20).map(|i| i != 5).collect();
        assert_eq!(answers, expected);
    }
}

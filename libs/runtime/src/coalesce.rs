//! Does the work of concurrent callers together: each caller hands its item to a small
//! pool of workers, which take whatever is pending and do it as one batch. The verify
//! gateway's signature batcher and shared-cache reads and writes, and the license
//! store's group commit on SQLite, are the uses. A caller either waits for its item's
//! answer ([`Coalescer::submit`]) or only hands the item over ([`Coalescer::post`]).
//!
//! - **No added wait when idle**: a worker takes what has queued the moment it is free;
//!   a lone item is done at once. Under load, what queues while the workers are busy
//!   becomes the next batch, up to `max_batch`.
//! - **Bounded**: the queue holds at most `queue` items; past that the item is refused
//!   at once ([`Coalescer::submit`] answers `None`, [`Coalescer::submit_or_return`] and
//!   [`Coalescer::post`] give it back) and the caller does its own item, rather than
//!   wait or grow the queue.
//! - **Cancellation-safe**: a caller that goes away only drops the receiving end of its
//!   answer; workers leave its item out and never hold anything a caller owns. If a
//!   worker is gone (its task ended), `submit` answers `None` too. Workers end when the
//!   last clone of the coalescer is dropped.

use std::{future::Future, sync::Arc};

use tokio::sync::{Mutex, mpsc, oneshot};

/// One caller's item and where its answer goes (nowhere for a posted item).
struct Job<I, O> {
    item: I,
    answer: Option<oneshot::Sender<O>>,
}

/// Batches the items of concurrent callers; see the module docs.
pub struct Coalescer<I, O> {
    queue: mpsc::Sender<Job<I, O>>,
}

impl<I, O> Clone for Coalescer<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<I, O> std::fmt::Debug for Coalescer<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    /// Starts `workers` workers on the current Tokio runtime; `run` does one batch and
    /// answers each item, in order.
    pub fn start<F, Fut>(workers: usize, max_batch: usize, queue: usize, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(rx.clone(), max_batch.max(1), run.clone()));
        }
        Self { queue: tx }
    }

    /// The answer for `item`, done together with other callers' items; `None` when the
    /// queue is full or no worker answered, and the caller should do `item` itself.
    pub async fn submit(&self, item: I) -> Option<O> {
        self.submit_or_return(item).await.ok().flatten()
    }

    /// Like [`Coalescer::submit`], but an item that could not be queued comes back
    /// (`Err`), for a caller that cannot make it again; `Ok(None)` when it was queued and
    /// no worker answered.
    pub async fn submit_or_return(&self, item: I) -> Result<Option<O>, I> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .try_send(Job {
                item,
                answer: Some(answer),
            })
            .map_err(|e| e.into_inner().item)?;
        Ok(answered.await.ok())
    }

    /// Hands `item` to the workers without waiting for it to be done; it comes back
    /// when the queue is full or the workers are gone, and the caller should do it itself.
    pub fn post(&self, item: I) -> Result<(), I> {
        self.queue
            .try_send(Job { item, answer: None })
            .map_err(|e| e.into_inner().item)
    }
}

async fn work<I, O, F, Fut>(rx: Arc<Mutex<mpsc::Receiver<Job<I, O>>>>, max_batch: usize, run: F)
where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Vec<O>>,
{
    let mut jobs = Vec::with_capacity(max_batch);
    loop {
        let received = rx.lock().await.recv_many(&mut jobs, max_batch).await;
        if received == 0 {
            return; // The coalescer was dropped and the queue is drained.
        }
        // Callers that went away need no answer; posted items are always done.
        jobs.retain(|j| j.answer.as_ref().is_none_or(|a| !a.is_closed()));
        if jobs.is_empty() {
            continue;
        }
        let (items, answers): (Vec<I>, Vec<Option<oneshot::Sender<O>>>) =
            jobs.drain(..).map(|j| (j.item, j.answer)).unzip();
        for (answer, output) in answers.into_iter().zip(run(items).await) {
            if let Some(answer) = answer {
                let _ = answer.send(output);
            }
        }
    }
}

//! The background task that receives invalidations from other replicas over Redis pub/sub.
//!
//! It holds one subscription to `<prefix>invalidate` and forwards every key it receives to the
//! cache's broadcast channel. When the subscription drops (Redis restarted, network cut, a
//! heartbeat PING unanswered) it logs and subscribes again with capped exponential backoff,
//! moving to the next node for a cluster. In a cluster, classic PUBLISH is propagated to every
//! node, so one subscription on any node sees every invalidation.
//!
//! Invalidations published while no subscription is live are lost: entries' TTLs bound how
//! long such a replica may serve a stale value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// First pause before subscribing again; doubled after each failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between attempts, so a returning Redis is noticed within about a second.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Bound on connecting and subscribing.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an idle subscription is checked with PING: a connection that died silently (no
/// FIN/RST, e.g. a network partition) is otherwise never noticed on a quiet channel.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis node to subscribe on, with a printable address that carries no credentials.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) client: redis::Client,
    pub(crate) address: String,
}

/// Handle on the subscription task; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Subscription {
    task: JoinHandle<()>,
    live: watch::Receiver<bool>,
}

impl Subscription {
    /// Starts the task. `nodes` must not be empty.
    pub(crate) fn spawn(
        nodes: Vec<Node>,
        channel: String,
        keys: broadcast::Sender<String>,
    ) -> Subscription {
        let (live_tx, live) = watch::channel(false);
        let task = tokio::spawn(run(nodes, channel, keys, live_tx));
        Subscription { task, live }
    }

    /// Waits until a subscription is live or `limit` passes; returns whether it is live.
    pub(crate) async fn wait_live(&self, limit: Duration) -> bool {
        let mut live = self.live.clone();
        matches!(
            tokio::time::timeout(limit, live.wait_for(|live| *live)).await,
            Ok(Ok(_))
        )
    }

    pub(crate) fn is_live(&self) -> bool {
        *self.live.borrow()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    nodes: Vec<Node>,
    channel: String,
    keys: broadcast::Sender<String>,
    live: watch::Sender<bool>,
) {
    if nodes.is_empty() {
        return;
    }
    let mut backoff = MIN_BACKOFF;
    let mut next = 0;
    let mut failures: u32 = 0;
    let mut ever_live = false;
    loop {
        let node = &nodes[next % nodes.len()];
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe(&node.client, &channel)).await {
            Ok(Ok((sink, stream))) => {
                if ever_live || failures > 0 {
                    tracing::info!(%channel, node = %node.address, "invalidation subscription restored");
                } else {
                    tracing::debug!(%channel, node = %node.address, "subscribed to invalidations");
                }
                ever_live = true;
                failures = 0;
                backoff = MIN_BACKOFF;
                live.send_replace(true);
                let reason = pump(sink, stream, &keys).await;
                live.send_replace(false);
                tracing::warn!(%channel, node = %node.address, reason, "invalidation subscription lost, resubscribing");
            }
            result => {
                failures += 1;
                next += 1;
                let error = match result {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("timed out after {SUBSCRIBE_TIMEOUT:?}"),
                };
                // First failure, then 2nd, 4th, 8th...: an outage is visible without a line
                // per attempt.
                if failures.is_power_of_two() {
                    tracing::warn!(%channel, node = %node.address, attempt = failures, %error, "cannot subscribe to invalidations, retrying");
                }
            }
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.subscribe(channel).await?;
    Ok((sink, stream))
}

/// Forwards messages until the subscription ends; returns why it ended.
async fn pump(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    keys: &broadcast::Sender<String>,
) -> &'static str {
    let start = tokio::time::Instant::now() + HEARTBEAT_INTERVAL;
    let mut heartbeat = tokio::time::interval_at(start, HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => match std::str::from_utf8(message.get_payload_bytes()) {
                    // No receivers is not an error: nobody in this process listens yet.
                    Ok(key) => { let _ = keys.send(key.to_owned()); }
                    Err(_) => tracing::debug!("ignoring a non-utf-8 invalidation"),
                },
                None => return "connection closed",
            },
            _ = heartbeat.tick() => {
                let ping = tokio::time::timeout(HEARTBEAT_TIMEOUT, sink.ping::<redis::Value>());
                if !matches!(ping.await, Ok(Ok(_))) {
                    return "heartbeat ping failed";
                }
            }
        }
    }
}

/// `base` plus up to 50%, so replicas that lost Redis together do not return in lockstep.
fn jittered(base: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

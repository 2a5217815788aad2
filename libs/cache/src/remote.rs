//! The Redis backends: one standalone server or a Redis Cluster, behind one `query` call.
//!
//! Both connect lazily and reconnect on their own, so a cache can be created while Redis is
//! down and starts working when it comes back:
//! - standalone: [`ConnectionManager`] (multiplexed connection, reconnects on a dropped
//!   connection with exponential backoff);
//! - cluster: [`ClusterPool`], a slot holding one [`ClusterConnection`]. The cluster client
//!   repairs single nodes itself; the pool also throws the whole connection away after a
//!   connection-level error (or several timeouts in a row) and builds a new one from the
//!   initial nodes, so even a full cluster outage is survived without restarting the process.
//!
//! Every query is bounded by the cache's `op_timeout` here, in one place, and a small
//! [`Breaker`] makes queries fail at once while Redis is known to be unreachable.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, ServerErrorKind};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::CacheError;

/// Bound on establishing one TCP connection (per node for the cluster).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on building a whole cluster connection (connect to the seeds, read the slot map).
const CLUSTER_CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between attempts at building a cluster connection: it starts at the minimum, doubles
/// after each failed attempt up to the maximum, and resets on success. While no connection
/// exists and the pause has not passed, queries fail at once: a down cluster costs callers
/// nothing and is not hammered with connection attempts, and a returning one is used again
/// within about a second.
const CLUSTER_RECONNECT_MIN: Duration = Duration::from_millis(100);
const CLUSTER_RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Timeouts in a row (with no success between) after which a cluster connection is rebuilt.
/// One slow answer is not a reason to drop a healthy connection; a run of them suggests a
/// wedged one.
const CLUSTER_TIMEOUTS_BEFORE_REBUILD: u32 = 3;

/// A Redis deployment and the per-query deadline.
pub(crate) struct Remote {
    conn: Conn,
    op_timeout: Duration,
    breaker: Breaker,
}

enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterPool),
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Standalone(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("Remote")
            .field("kind", &kind)
            .field("op_timeout", &self.op_timeout)
            .finish()
    }
}

impl Remote {
    /// A standalone server; no connection is made until the first query.
    pub(crate) fn standalone(
        client: redis::Client,
        op_timeout: Duration,
    ) -> anyhow::Result<Remote> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(op_timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(5);
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Remote {
            conn: Conn::Standalone(manager),
            op_timeout,
            breaker: Breaker::new(),
        })
    }

    /// A cluster reached through the given seed nodes (`redis://host:port`); the first
    /// connection attempt starts at once, in the background.
    pub(crate) fn cluster(nodes: Vec<String>, op_timeout: Duration) -> anyhow::Result<Remote> {
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(op_timeout)
            // Retries inside the client would only spend the caller's op_timeout.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()?;
        let pool = ClusterPool::new(client);
        pool.start_connecting();
        Ok(Remote {
            conn: Conn::Cluster(pool),
            op_timeout,
            breaker: Breaker::new(),
        })
    }

    /// Runs one command, bounded by `op_timeout`. Any failure, including a timeout, is an error:
    /// callers decide whether that means a miss or must be reported.
    ///
    /// With [`Retry::Once`] a command whose connection turned out to be broken is sent once more
    /// on a fresh connection, within the same deadline: after Redis restarts, the first command
    /// on an idle connection is what discovers the old socket is dead, and it should not be a
    /// miss for that.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        retry: Retry,
    ) -> Result<T, CacheError> {
        self.send(Request::One(cmd), retry).await
    }

    /// Sends the commands of `pipeline` in one write and reads their answers in one
    /// round trip, with [`Remote::query`]'s deadline, retry and breaker. Standalone only:
    /// a cluster takes a pipeline only when all its keys hash to one slot, so callers
    /// check [`Remote::is_cluster`] and send commands one by one there.
    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
        retry: Retry,
    ) -> Result<T, CacheError> {
        self.send(Request::Many(pipeline), retry).await
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    async fn send<T: FromRedisValue>(
        &self,
        request: Request<'_>,
        retry: Retry,
    ) -> Result<T, CacheError> {
        // A client span per command or pipeline, with the OpenTelemetry database
        // conventions' names.
        let (operation, batch) = request.operation();
        let span = tracing::info_span!(
            "redis",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = operation,
            db.operation.batch.size = batch,
            otel.status_code = tracing::field::Empty,
        );
        let result = self
            .query_inner(request, retry)
            .instrument(span.clone())
            .await;
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    async fn query_inner<T: FromRedisValue>(
        &self,
        request: Request<'_>,
        retry: Retry,
    ) -> Result<T, CacheError> {
        self.breaker.check()?;
        let attempts = async {
            let mut result = self.attempt(request).await;
            if retry == Retry::Once && matches!(result, Err(Failure { broken: true, .. })) {
                result = self.attempt(request).await;
            }
            result
        };
        let result = match tokio::time::timeout(self.op_timeout, attempts).await {
            Ok(result) => result,
            Err(_) => {
                if let Conn::Cluster(pool) = &self.conn {
                    pool.timed_out();
                }
                Err(Failure {
                    error: CacheError::Timeout(self.op_timeout),
                    broken: false,
                    unreachable: true,
                })
            }
        };
        match result {
            Ok(value) => {
                self.breaker.reachable();
                Ok(value)
            }
            Err(failure) => {
                if failure.unreachable {
                    self.breaker.unreachable();
                } else {
                    // An error answer (WRONGTYPE, OOM...) still proves Redis is there.
                    self.breaker.reachable();
                }
                Err(failure.error)
            }
        }
    }

    async fn attempt<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T, Failure> {
        match &self.conn {
            Conn::Standalone(manager) => {
                // Cloning shares the one multiplexed connection. On a dropped connection the
                // manager has already started reconnecting when the error reaches us.
                let mut conn = manager.clone();
                request.run(&mut conn).await.map_err(|e| {
                    let broken = e.is_unrecoverable_error() || e.is_connection_dropped();
                    Failure {
                        error: unavailable(&e),
                        broken,
                        unreachable: broken || e.is_io_error(),
                    }
                })
            }
            Conn::Cluster(pool) => {
                let (generation, mut conn) = pool.connection().await.map_err(|error| Failure {
                    error,
                    broken: false,
                    unreachable: true,
                })?;
                match request.run(&mut conn).await {
                    Ok(value) => {
                        pool.succeeded();
                        Ok(value)
                    }
                    Err(e) if e.is_timeout() => {
                        pool.timed_out();
                        Err(Failure {
                            error: unavailable(&e),
                            broken: false,
                            unreachable: true,
                        })
                    }
                    Err(e) if breaks_connection(&e) => {
                        pool.discard(generation, &e.to_string());
                        Err(Failure {
                            error: unavailable(&e),
                            broken: true,
                            unreachable: true,
                        })
                    }
                    Err(e) => Err(Failure {
                        error: unavailable(&e),
                        broken: false,
                        unreachable: false,
                    }),
                }
            }
        }
    }
}

/// What one query sends.
#[derive(Clone, Copy)]
enum Request<'a> {
    /// One command.
    One(&'a Cmd),
    /// Several commands in one pipeline (not a transaction).
    Many(&'a Pipeline),
}

impl Request<'_> {
    /// The span's operation name and, for a pipeline, how many commands it holds.
    fn operation(&self) -> (&str, Option<usize>) {
        match self {
            Request::One(cmd) => match cmd.args_iter().next() {
                Some(redis::Arg::Simple(name)) => {
                    (std::str::from_utf8(name).unwrap_or("COMMAND"), None)
                }
                _ => ("COMMAND", None),
            },
            Request::Many(pipeline) => ("PIPELINE", Some(pipeline.len())),
        }
    }

    async fn run<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        self,
        conn: &mut C,
    ) -> redis::RedisResult<T> {
        match self {
            Request::One(cmd) => cmd.query_async(conn).await,
            Request::Many(pipeline) => pipeline.query_async(conn).await,
        }
    }
}

/// Whether a command may be sent again after its connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Idempotent commands (GET, SET, DEL, PUBLISH of an invalidation, PING).
    Once,
    /// Commands whose first attempt may have been applied and whose answer would then be wrong
    /// the second time (SET NX: a nonce we stored would be reported as taken).
    Never,
}

struct Failure {
    error: CacheError,
    /// The connection is known to be dead (and is being replaced): worth one more try.
    broken: bool,
    /// Redis could not be reached or did not answer (as opposed to answering with an error).
    unreachable: bool,
}

/// Fails queries at once while Redis is known to be unreachable, so an outage costs callers
/// microseconds instead of `op_timeout` each.
///
/// After [`BREAKER_THRESHOLD`] unreachable results in a row it opens for a pause (starting at
/// [`BREAKER_MIN_PAUSE`], doubling while failures continue, up to [`BREAKER_MAX_PAUSE`]). Once
/// the pause has passed, queries go through again and act as probes: one that reaches Redis
/// closes the breaker. A few failures in a row are required so that one slow answer does not
/// turn a healthy Redis into forced misses.
#[derive(Debug)]
struct Breaker {
    state: Mutex<BreakerState>,
}

#[derive(Debug)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    pause: Duration,
}

const BREAKER_THRESHOLD: u32 = 3;
const BREAKER_MIN_PAUSE: Duration = Duration::from_millis(100);
const BREAKER_MAX_PAUSE: Duration = Duration::from_secs(1);

impl Breaker {
    fn new() -> Breaker {
        Breaker {
            state: Mutex::new(BreakerState {
                consecutive_failures: 0,
                open_until: None,
                pause: BREAKER_MIN_PAUSE,
            }),
        }
    }

    fn check(&self) -> Result<(), CacheError> {
        let state = self.lock();
        match state.open_until {
            Some(until) if Instant::now() < until => Err(CacheError::Unavailable(
                "redis unreachable, waiting before the next attempt".into(),
            )),
            _ => Ok(()),
        }
    }

    fn reachable(&self) {
        let mut state = self.lock();
        if state.consecutive_failures >= BREAKER_THRESHOLD {
            tracing::info!("redis reachable again");
        }
        state.consecutive_failures = 0;
        state.open_until = None;
        state.pause = BREAKER_MIN_PAUSE;
    }

    fn unreachable(&self) {
        let mut state = self.lock();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if state.consecutive_failures >= BREAKER_THRESHOLD {
            state.open_until = Some(Instant::now() + state.pause);
            state.pause = (state.pause * 2).min(BREAKER_MAX_PAUSE);
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unavailable(e: &RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

/// Errors after which a cluster connection is not worth keeping. Server errors such as
/// `WRONGTYPE` say nothing about the connection and do not count.
fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound | ErrorKind::Server(ServerErrorKind::ClusterDown)
        )
}

/// One cluster connection, rebuilt in the background when it fails.
///
/// Connections carry a generation number so that a failure seen on an old connection never
/// discards the newer one that replaced it.
struct ClusterPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    client: redis::cluster::ClusterClient,
    /// The current connection, if any; `watch` lets queries wait for one being built.
    current: watch::Sender<Option<(u64, ClusterConnection)>>,
    state: Mutex<PoolState>,
}

struct PoolState {
    next_generation: u64,
    connecting: bool,
    last_attempt: Option<Instant>,
    /// Pause required after `last_attempt` before the next one.
    reconnect_pause: Duration,
    consecutive_timeouts: u32,
}

impl ClusterPool {
    fn new(client: redis::cluster::ClusterClient) -> ClusterPool {
        ClusterPool {
            shared: Arc::new(PoolShared {
                client,
                current: watch::Sender::new(None),
                state: Mutex::new(PoolState {
                    next_generation: 0,
                    connecting: false,
                    last_attempt: None,
                    reconnect_pause: CLUSTER_RECONNECT_MIN,
                    consecutive_timeouts: 0,
                }),
            }),
        }
    }

    /// The current connection, waiting for one being built if needed. Fails at once when
    /// there is none and the last attempt was too recent to try again.
    async fn connection(&self) -> Result<(u64, ClusterConnection), CacheError> {
        let mut rx = self.shared.current.subscribe();
        if let Some(current) = rx.borrow_and_update().clone() {
            return Ok(current);
        }
        if !self.start_connecting() && !self.shared.lock().connecting {
            // Another query may have installed a connection since we looked.
            if let Some(current) = rx.borrow_and_update().clone() {
                return Ok(current);
            }
            return Err(CacheError::Unavailable(
                "no connection to the redis cluster (reconnecting)".into(),
            ));
        }
        loop {
            // The sender lives in `self`, so `changed` cannot fail while we wait; treat it as
            // unavailability anyway rather than unwrap.
            if rx.changed().await.is_err() {
                return Err(CacheError::Unavailable("cluster pool closed".into()));
            }
            if let Some(current) = rx.borrow_and_update().clone() {
                return Ok(current);
            }
            if !self.shared.lock().connecting {
                return Err(CacheError::Unavailable(
                    "could not connect to the redis cluster".into(),
                ));
            }
        }
    }

    /// Starts building a connection unless one exists, one is being built, or the last attempt
    /// was too recent (see [`CLUSTER_RECONNECT_MIN`]). Returns whether an attempt started.
    fn start_connecting(&self) -> bool {
        {
            let mut state = self.shared.lock();
            if state.connecting || self.shared.current.borrow().is_some() {
                return false;
            }
            if state
                .last_attempt
                .is_some_and(|at| at.elapsed() < state.reconnect_pause)
            {
                return false;
            }
            state.connecting = true;
            state.last_attempt = Some(Instant::now());
        }
        let client = self.shared.client.clone();
        let weak = Arc::downgrade(&self.shared);
        // Holds only a Weak: the task ends within CLUSTER_CONNECT_DEADLINE and never keeps a
        // dropped cache alive.
        tokio::spawn(connect_in_background(client, weak));
        true
    }

    fn succeeded(&self) {
        self.shared.lock().consecutive_timeouts = 0;
    }

    fn timed_out(&self) {
        let rebuild = {
            let mut state = self.shared.lock();
            state.consecutive_timeouts += 1;
            state.consecutive_timeouts >= CLUSTER_TIMEOUTS_BEFORE_REBUILD
        };
        if rebuild {
            let generation = self.shared.current.borrow().as_ref().map(|(g, _)| *g);
            if let Some(generation) = generation {
                self.discard(generation, "repeated timeouts");
            }
        }
    }

    /// Drops connection `generation` if it is still the current one, and starts a new one.
    fn discard(&self, generation: u64, reason: &str) {
        let discarded = self.shared.current.send_if_modified(|current| {
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                *current = None;
                true
            } else {
                false
            }
        });
        if discarded {
            self.shared.lock().consecutive_timeouts = 0;
            tracing::warn!(
                generation,
                reason,
                "dropping redis cluster connection, rebuilding"
            );
            self.start_connecting();
        }
    }
}

async fn connect_in_background(client: redis::cluster::ClusterClient, pool: Weak<PoolShared>) {
    let result =
        tokio::time::timeout(CLUSTER_CONNECT_DEADLINE, client.get_async_connection()).await;
    let Some(shared) = pool.upgrade() else {
        return;
    };
    let mut state = shared.lock();
    state.connecting = false;
    match result {
        Ok(Ok(conn)) => {
            state.next_generation += 1;
            let generation = state.next_generation;
            state.consecutive_timeouts = 0;
            state.reconnect_pause = CLUSTER_RECONNECT_MIN;
            drop(state);
            tracing::info!(generation, "connected to redis cluster");
            shared.current.send_replace(Some((generation, conn)));
        }
        failed => {
            state.reconnect_pause = (state.reconnect_pause * 2).min(CLUSTER_RECONNECT_MAX);
            let retry_in = state.reconnect_pause;
            drop(state);
            let error = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("timed out after {CLUSTER_CONNECT_DEADLINE:?}"),
            };
            tracing::debug!(%error, ?retry_in, "redis cluster connection attempt failed");
            // Wake queries waiting for this attempt so they fail now instead of at op_timeout.
            shared.current.send_modify(|_| {});
        }
    }
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_a_run_of_unreachable_results_only() {
        let breaker = Breaker::new();
        breaker.unreachable();
        breaker.unreachable();
        assert!(breaker.check().is_ok(), "two failures are not an outage");
        breaker.reachable();
        breaker.unreachable();
        breaker.unreachable();
        assert!(
            breaker.check().is_ok(),
            "a success in between resets the count"
        );
        breaker.unreachable();
        assert!(breaker.check().is_err());
    }

    #[test]
    fn an_open_breaker_lets_probes_through_after_its_pause_and_closes_on_success() {
        let breaker = Breaker::new();
        for _ in 0..BREAKER_THRESHOLD {
            breaker.unreachable();
        }
        assert!(breaker.check().is_err());
        // The pause has passed (moved instead of waited for).
        breaker.lock().open_until = Some(Instant::now());
        assert!(breaker.check().is_ok());
        breaker.unreachable();
        assert!(
            breaker.check().is_err(),
            "a failed probe reopens it at once"
        );
        assert_eq!(breaker.lock().pause, BREAKER_MIN_PAUSE * 4);
        breaker.reachable();
        assert!(breaker.check().is_ok());
        assert_eq!(breaker.lock().pause, BREAKER_MIN_PAUSE);
    }

    #[test]
    fn the_breaker_pause_is_capped() {
        let breaker = Breaker::new();
        for _ in 0..50 {
            breaker.unreachable();
        }
        assert_eq!(breaker.lock().pause, BREAKER_MAX_PAUSE);
    }
}

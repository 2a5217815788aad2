//! Per-client rate limits: one token bucket per caller, per service.
//!
//! Every call a service serves takes a token from its caller's bucket: the authenticated
//! client id when the call carried a valid token, otherwise the peer address (IPv6 by
//! its /64, which one host can spread its addresses over). A bucket holds `burst`
//! tokens and refills at `per_second`; an empty bucket answers `RESOURCE_EXHAUSTED`
//! (reason `RATE_LIMITED`, a `google.rpc.RetryInfo` with the wait and a `retry-after`
//! header) on gRPC and `429 Too Many Requests` with `Retry-After` on HTTP, and counts the
//! refusal in `credmesh_rate_limited_total{service, client}`.
//!
//! A credmesh service calling another (a token of kind `service`) is not limited per
//! client: it calls for many callers at once, each limited where they reach it. The scan
//! page, for one, asks the verify gateway about every phone's scan as the one client
//! `entcode`, and each phone is limited by its address at the scan page; one bucket for
//! all of them would turn a busy hour of genuine scans into refusals. The concurrency
//! limit still sheds load from services as from anyone.
//!
//! A call carrying many items (a batch) costs one token per item: the stack takes the
//! first, the handler takes the rest through the [`RateCharge`] it finds in the request
//! extensions, once it has checked the request and knows the count. A cost above the
//! burst takes the whole bucket instead, so a full bucket always admits one call.
//!
//! Memory is bounded: a bucket idle long enough to have refilled is the same as no
//! bucket and is dropped at the next sweep, and past [`MAX_CALLERS`] buckets the least
//! recently used half is dropped (a caller spraying addresses then finds fresh buckets,
//! which costs it nothing it could not get from new addresses anyway).
//!
//! Deliberate simplifications: buckets live in each replica's memory, so N replicas
//! admit up to N times the rate (the load balancer spreads a client over them); health
//! checks, reflection and the operational routes (`/metrics`, `/healthz`, `/readyz`) are
//! not limited, so probes and scrapes never fail under a flood; a call refused by
//! authentication is refused before it reaches a bucket.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::{Ready, ready},
    hash::BuildHasher,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, response::IntoResponse};
use credmesh_auth::{Principal, TokenValidator};
use credmesh_proto::status;
use credmesh_telemetry::metrics::{Metrics, RateLimitedLabels};
use futures::future::{BoxFuture, Either};
use http::{HeaderValue, Request, Response, StatusCode, header};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::time::Instant;
use tower::{Layer, Service};

/// Buckets kept at most per service (about 5 MB at the limit).
pub const MAX_CALLERS: usize = 65_536;

/// Shards of the bucket map: concurrent callers rarely wait on one another's lock.
const SHARDS: usize = 16;

/// A rate: `per_second` sustained, `burst` at once. `per_second` 0 turns limiting off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second (`CREDMESH_RATE_LIMIT_PER_SECOND`, default 1000).
    pub per_second: f64,
    /// Tokens a bucket holds (`CREDMESH_RATE_LIMIT_BURST`, default 2000).
    pub burst: u32,
}

impl Default for RateLimit {
    /// Generous: far above what a person or a well-behaved integration sends, so only a
    /// runaway or hostile client meets it. Deployments tighten it per service (the Helm
    /// chart keeps the verify gateway's partners at 100/s, burst 500).
    fn default() -> Self {
        RateLimit {
            per_second: 1000.0,
            burst: 2000,
        }
    }
}

impl RateLimit {
    /// Limiting is off.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0.0,
        burst: 0,
    };

    /// Whether calls are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.per_second > 0.0 && self.burst > 0
    }

    /// Reads `CREDMESH_RATE_LIMIT_PER_SECOND` (a number, 0 off) and
    /// `CREDMESH_RATE_LIMIT_BURST` (a whole number, default the larger of the default
    /// burst and one second's worth), defaults for what is unset.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut limit = RateLimit::default();
        if let Some(v) = get("CREDMESH_RATE_LIMIT_PER_SECOND") {
            limit.per_second = match v.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => n,
                _ => anyhow::bail!(
                    "CREDMESH_RATE_LIMIT_PER_SECOND must be a number of calls per second \
                     (0 turns the limit off), not '{v}'"
                ),
            };
        }
        if let Some(v) = get("CREDMESH_RATE_LIMIT_BURST") {
            limit.burst = match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => anyhow::bail!(
                    "CREDMESH_RATE_LIMIT_BURST must be a whole number above 0, not '{v}'"
                ),
            };
        }
        if limit.per_second == 0.0 {
            return Ok(RateLimit::OFF);
        }
        Ok(limit)
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls per second, bursts of {}",
            self.per_second, self.burst
        )
    }
}

/// Who a bucket belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An authenticated client.
    Client(String),
    /// An anonymous caller at this address (IPv6 cut to its /64; unspecified when the
    /// transport gave none).
    Peer(IpAddr),
}

impl Caller {
    /// The caller a request is charged to: its principal's client id, else its peer
    /// address; `None` for a credmesh service (see the module docs).
    pub fn of(extensions: &http::Extensions) -> Option<Caller> {
        Caller::charged(extensions.get::<Arc<Principal>>(), extensions)
    }

    /// Like [`Caller::of`], for the principal `client` (when the request has one).
    fn charged(client: Option<&Arc<Principal>>, extensions: &http::Extensions) -> Option<Caller> {
        Some(match client {
            Some(p) if p.kind == credmesh_auth::PrincipalKind::Service => return None,
            Some(p) => Caller::Client(p.client_id.clone()),
            None => Caller::peer(
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip()),
            ),
        })
    }

    /// An anonymous caller at `ip`.
    pub fn peer(ip: Option<IpAddr>) -> Caller {
        Caller::Peer(match ip {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
            Some(v4) => v4,
        })
    }

    /// The metric label: the client id, or `anonymous`.
    fn label(&self) -> String {
        match self {
            Caller::Client(id) => id.clone(),
            Caller::Peer(_) => "anonymous".to_owned(),
        }
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Client(id) => write!(f, "client '{id}'"),
            Caller::Peer(ip) => write!(f, "anonymous callers from {ip}"),
        }
    }
}

/// A call refused by the rate limit; maps to a gRPC status or an HTTP 429.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "{caller} is over the {service} service's rate limit of {limit}; retry in {} s",
    status::retry_after_seconds(*.retry_after)
)]
pub struct RateLimited {
    /// The service that refused.
    pub service: &'static str,
    /// Who was refused.
    pub caller: Caller,
    /// The limit they are over.
    pub limit: RateLimit,
    /// How long until the same call would pass.
    pub retry_after: Duration,
}

impl RateLimited {
    /// `RESOURCE_EXHAUSTED`, reason `RATE_LIMITED`, with `RetryInfo` and `retry-after`.
    pub fn to_status(&self) -> tonic::Status {
        status::rate_limited(
            self.to_string(),
            self.retry_after,
            [
                ("service", self.service.to_owned()),
                ("per_second", self.limit.per_second.to_string()),
                ("burst", self.limit.burst.to_string()),
            ],
        )
    }

    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_seconds(&self) -> u64 {
        status::retry_after_seconds(self.retry_after)
    }

    /// `429 Too Many Requests` with `Retry-After` and the JSON error body the HTTP APIs
    /// use (`{"error": {"reason", "message", "fields"}}`).
    pub fn to_http(&self) -> Response<Body> {
        let body = serde_json::json!({"error": {
            "reason": status::RATE_LIMITED,
            "message": self.to_string(),
            "fields": [],
        }});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_seconds()),
        );
        response
    }
}

impl From<RateLimited> for tonic::Status {
    fn from(e: RateLimited) -> Self {
        e.to_status()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<Caller, Bucket>,
}

/// One service's buckets. Shared (`Arc`) by its gRPC and HTTP layers.
#[derive(Debug)]
pub struct RateLimiter {
    service: &'static str,
    limit: RateLimit,
    /// How long an emptied bucket takes to fill: idle this long, it can be dropped.
    refill: Duration,
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    refused: Option<Family<RateLimitedLabels, Counter>>,
}

impl RateLimiter {
    /// A limiter for `service` at `limit`, counting refusals in `metrics` when given.
    pub fn new(service: &'static str, limit: RateLimit, metrics: Option<&Metrics>) -> Self {
        let refill = if limit.is_enabled() {
            Duration::from_secs_f64(f64::from(limit.burst) / limit.per_second)
        } else {
            Duration::ZERO
        };
        RateLimiter {
            service,
            limit,
            refill,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            refused: metrics.map(|m| m.rate_limited().clone()),
        }
    }

    /// The limit this limiter applies.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes `cost` tokens (1 at least, the burst at most) from `caller`'s bucket now.
    pub fn check(&self, caller: &Caller, cost: u32) -> Result<(), RateLimited> {
        self.check_at(caller, cost, Instant::now())
    }

    /// [`RateLimiter::check`] at `now`, so the rule is tested without sleeping.
    pub fn check_at(&self, caller: &Caller, cost: u32, now: Instant) -> Result<(), RateLimited> {
        if !self.limit.is_enabled() {
            return Ok(());
        }
        let (rate, burst) = (self.limit.per_second, f64::from(self.limit.burst));
        let cost = f64::from(cost.clamp(1, self.limit.burst));
        let mut shard = self.shard(caller);
        let bucket = match shard.buckets.get_mut(caller) {
            Some(bucket) => bucket,
            None => {
                shard.make_room(now, self.refill);
                shard.buckets.entry(caller.clone()).or_insert(Bucket {
                    tokens: burst,
                    last: now,
                })
            }
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((cost - bucket.tokens) / rate);
        drop(shard);
        if let Some(refused) = &self.refused {
            refused
                .get_or_create(&RateLimitedLabels {
                    service: self.service,
                    client: caller.label(),
                })
                .inc();
        }
        tracing::info!(
            service = self.service,
            caller = %caller,
            retry_after_ms = wait.as_millis() as u64,
            "refused a call over the rate limit"
        );
        Err(RateLimited {
            service: self.service,
            caller: caller.clone(),
            limit: self.limit,
            // Whole milliseconds, rounded up: waiting exactly this long always suffices.
            retry_after: Duration::from_millis(wait.as_micros().div_ceil(1000) as u64),
        })
    }

    /// Buckets held now (for tests and the memory bound).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .buckets
                    .len()
            })
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, caller: &Caller) -> std::sync::MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(caller) as usize) % self.shards.len();
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shard {
    /// Before a new bucket: at the per-shard bound, drop the buckets that have refilled
    /// (they are as good as absent), then if still full the least recently used half.
    fn make_room(&mut self, now: Instant, refill: Duration) {
        let bound = MAX_CALLERS / SHARDS;
        if self.buckets.len() < bound {
            return;
        }
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < refill);
        if self.buckets.len() >= bound {
            let mut lasts: Vec<Instant> = self.buckets.values().map(|b| b.last).collect();
            let middle = lasts.len() / 2;
            let (_, cut, _) = lasts.select_nth_unstable(middle);
            let cut = *cut;
            self.buckets.retain(|_, b| b.last > cut);
        }
    }
}

/// What a handler uses to charge the rest of a many-item call to the same caller:
/// found in the request extensions of every limited call.
#[derive(Clone, Debug)]
pub struct RateCharge {
    limiter: Arc<RateLimiter>,
    caller: Caller,
}

impl RateCharge {
    /// The charge of a request, if the call passed a rate limiter.
    pub fn of(extensions: &http::Extensions) -> Option<RateCharge> {
        extensions.get::<RateCharge>().cloned()
    }

    /// Takes `items - 1` more tokens for a call carrying `items` items (the stack took
    /// one already). Without a charge (limits off, no server) nothing is taken.
    pub fn items(charge: Option<&RateCharge>, items: usize) -> Result<(), RateLimited> {
        match charge {
            Some(c) if items > 1 => c
                .limiter
                .check(&c.caller, u32::try_from(items - 1).unwrap_or(u32::MAX)),
            _ => Ok(()),
        }
    }

    /// Who is charged.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// Limits the gRPC calls of each service by its own limiter (chosen by the service name
/// in the path); methods of no listed service (health, reflection) pass. Sits inside the
/// authentication layer, so the principal is known.
#[derive(Clone, Debug)]
pub struct GrpcRateLimitLayer {
    by_service: Arc<HashMap<String, Arc<RateLimiter>>>,
}

impl GrpcRateLimitLayer {
    /// Limits calls to each gRPC service name by the limiter given for it.
    pub fn new(by_service: HashMap<String, Arc<RateLimiter>>) -> Self {
        Self {
            by_service: Arc::new(by_service),
        }
    }
}

impl<S> Layer<S> for GrpcRateLimitLayer {
    type Service = GrpcRateLimit<S>;
    fn layer(&self, inner: S) -> GrpcRateLimit<S> {
        GrpcRateLimit {
            inner,
            by_service: self.by_service.clone(),
        }
    }
}

/// The service made by [`GrpcRateLimitLayer`].
#[derive(Clone, Debug)]
pub struct GrpcRateLimit<S> {
    inner: S,
    by_service: Arc<HashMap<String, Arc<RateLimiter>>>,
}

impl<S, B> Service<Request<B>> for GrpcRateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    /// The service's own future, or the refusal.
    type Future = Either<S::Future, Ready<Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if let Some(limiter) = self.by_service.get(service)
            && let Some(caller) = Caller::of(req.extensions())
        {
            if let Err(refused) = limiter.check(&caller, 1) {
                return Either::Right(ready(Ok(refused.to_status().into_http())));
            }
            req.extensions_mut().insert(RateCharge {
                limiter: limiter.clone(),
                caller,
            });
        }
        // Called here, on the service poll_ready was called on: no clone per call.
        Either::Left(self.inner.call(req))
    }
}

/// Limits a service's HTTP routes by its limiter. A request with a valid bearer token is
/// charged to its client (the route still authenticates and authorises it itself);
/// any other to its peer address.
#[derive(Clone, Debug)]
pub struct HttpRateLimitLayer {
    limiter: Arc<RateLimiter>,
    validator: Arc<TokenValidator>,
}

impl HttpRateLimitLayer {
    /// Charges requests to `limiter`, identifying clients with `validator`.
    pub fn new(limiter: Arc<RateLimiter>, validator: Arc<TokenValidator>) -> Self {
        Self { limiter, validator }
    }
}

impl<S> Layer<S> for HttpRateLimitLayer {
    type Service = HttpRateLimit<S>;
    fn layer(&self, inner: S) -> HttpRateLimit<S> {
        HttpRateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`HttpRateLimitLayer`].
#[derive(Clone, Debug)]
pub struct HttpRateLimit<S> {
    inner: S,
    layer: HttpRateLimitLayer,
}

impl<S> Service<Request<Body>> for HttpRateLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    /// The route's own future, or the refusal; boxed only when the caller's token names
    /// a key not fetched yet.
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Validation is remembered per token, so the route's own check costs a lookup.
        let client = match credmesh_auth::bearer_token(req.headers()) {
            Ok(Some(token)) => self.layer.validator.validate_now(token).map(Result::ok),
            _ => Some(None),
        };
        if let Some(client) = client {
            return match self.layer.charge(&mut req, client) {
                // Called here, on the service poll_ready was called on.
                Ok(()) => Either::Left(self.inner.call(req)),
                Err(refused) => Either::Right(Box::pin(ready(Ok(refused.to_http())))),
            };
        }
        // The keys must be fetched first: wait for them on the service that was driven
        // to readiness, leaving a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Either::Right(Box::pin(async move {
            let client = match credmesh_auth::bearer_token(req.headers()) {
                Ok(Some(token)) => layer.validator.validate(token).await.ok(),
                _ => None,
            };
            match layer.charge(&mut req, client) {
                Ok(()) => inner.call(req).await,
                Err(refused) => Ok(refused.to_http()),
            }
        }))
    }
}

impl HttpRateLimitLayer {
    /// Charges one call to its client (`client`, when its token is valid) or else to its
    /// peer, and leaves the charge in the request for the route; why the limit refuses
    /// it otherwise.
    fn charge(
        &self,
        req: &mut Request<Body>,
        client: Option<Arc<Principal>>,
    ) -> Result<(), RateLimited> {
        let Some(caller) = Caller::charged(client.as_ref(), req.extensions()) else {
            return Ok(());
        };
        self.limiter.check(&caller, 1)?;
        req.extensions_mut().insert(RateCharge {
            limiter: self.limiter.clone(),
            caller,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Caller {
        Caller::Client(id.to_owned())
    }

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new("test", RateLimit { per_second, burst }, None)
    }

    #[test]
    fn a_client_is_refused_after_its_burst_and_told_when_to_retry() {
        let limiter = limiter(1.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&client("bank"), 1, t0).is_ok());
        }
        let refused = limiter.check_at(&client("bank"), 1, t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(
            refused.to_string(),
            "client 'bank' is over the test service's rate limit of 1 calls per second, \
             bursts of 3; retry in 1 s"
        );
        assert!(
            limiter
                .check_at(&client("bank"), 1, t0 + refused.retry_after)
                .is_ok()
        );
    }

    #[test]
    fn clients_have_separate_buckets() {
        let limiter = limiter(1.0, 1);
        let t0 = Instant::now();
        assert!(limiter.check_at(&client("a"), 1, t0).is_ok());
        assert!(limiter.check_at(&client("a"), 1, t0).is_err());
        assert!(limiter.check_at(&client("b"), 1, t0).is_ok());
        let ip = Caller::peer(Some("10.0.0.1".parse().unwrap()));
        assert!(limiter.check_at(&ip, 1, t0).is_ok());
    }

    #[test]
    fn a_batch_costs_one_token_per_item_and_at_most_the_burst() {
        let limiter = limiter(2.0, 10);
        let t0 = Instant::now();
        assert!(limiter.check_at(&client("a"), 10, t0).is_ok());
        let refused = limiter.check_at(&client("a"), 4, t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(2));
        // More than the burst takes a full bucket, rather than never passing.
        let t1 = t0 + Duration::from_secs(5);
        assert!(limiter.check_at(&client("a"), 50, t1).is_ok());
        assert!(limiter.check_at(&client("a"), 1, t1).is_err());
    }

    #[test]
    fn a_zero_rate_turns_limiting_off() {
        let env: HashMap<String, String> =
            [("CREDMESH_RATE_LIMIT_PER_SECOND".to_owned(), "0".to_owned())].into();
        let limit = RateLimit::from_env(&env).unwrap();
        assert!(!limit.is_enabled());
        let limiter = RateLimiter::new("test", limit, None);
        for _ in 0..10_000 {
            assert!(limiter.check(&client("a"), 1).is_ok());
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn settings_are_read_from_the_environment_and_bad_values_named() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            RateLimit::from_env(&env(&[])).unwrap(),
            RateLimit::default()
        );
        assert_eq!(
            RateLimit::from_env(&env(&[
                ("CREDMESH_RATE_LIMIT_PER_SECOND", "0.5"),
                ("CREDMESH_RATE_LIMIT_BURST", "3"),
            ]))
            .unwrap(),
            RateLimit {
                per_second: 0.5,
                burst: 3
            }
        );
        let err = RateLimit::from_env(&env(&[("CREDMESH_RATE_LIMIT_BURST", "0")])).unwrap_err();
        assert!(err.to_string().contains("CREDMESH_RATE_LIMIT_BURST"));
        assert!(RateLimit::from_env(&env(&[("CREDMESH_RATE_LIMIT_PER_SECOND", "-1")])).is_err());
        assert!(RateLimit::from_env(&env(&[("CREDMESH_RATE_LIMIT_PER_SECOND", "x")])).is_err());
    }

    #[test]
    fn idle_buckets_are_dropped_and_the_number_held_is_bounded() {
        let limiter = limiter(1.0, 1);
        let t0 = Instant::now();
        let at = |start: Instant, i: usize| start + Duration::from_micros(i as u64);
        for i in 0..MAX_CALLERS * 2 {
            limiter
                .check_at(&client(&i.to_string()), 1, at(t0, i))
                .unwrap();
        }
        assert!(limiter.len() <= MAX_CALLERS, "{}", limiter.len());

        // Seconds later those buckets have refilled: new callers sweep them away, and a
        // client that just emptied its bucket keeps it through the sweep.
        let t1 = t0 + Duration::from_secs(5);
        limiter.check_at(&client("greedy"), 1, t1).unwrap();
        for i in 0..MAX_CALLERS / 2 {
            limiter
                .check_at(&client(&format!("new-{i}")), 1, at(t1, i))
                .unwrap();
        }
        assert!(
            limiter
                .check_at(&client("greedy"), 1, at(t1, MAX_CALLERS))
                .is_err()
        );
        assert!(limiter.len() <= MAX_CALLERS, "{}", limiter.len());
    }

    #[test]
    fn anonymous_ipv6_callers_share_a_bucket_per_64_prefix() {
        let a = Caller::peer(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = Caller::peer(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let c = Caller::peer(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = Caller::peer(Some("::ffff:10.1.2.3".parse().unwrap()));
        assert_eq!(mapped, Caller::peer(Some("10.1.2.3".parse().unwrap())));
        assert_eq!(a.label(), "anonymous");
    }

    #[tokio::test]
    async fn a_grpc_call_over_the_limit_is_resource_exhausted_with_retry_info() {
        let limiter = Arc::new(limiter(1.0, 1));
        let ok = tower::service_fn(|req: Request<()>| async move {
            let charged = req.extensions().get::<RateCharge>().is_some();
            assert_eq!(charged, req.uri().path().contains("License"));
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let mut svc = GrpcRateLimitLayer::new(
            [("credmesh.license.v1.LicenseService".to_owned(), limiter)].into(),
        )
        .layer(ok);
        let call = |path: &str| {
            let mut req = Request::post(path).body(()).unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4000))));
            req
        };
        const GET: &str = "/credmesh.license.v1.LicenseService/GetLicense";
        let first = svc.call(call(GET)).await.unwrap();
        assert!(first.headers().get("grpc-status").is_none());
        let second = svc.call(call(GET)).await.unwrap();
        let status = tonic::Status::from_header_map(second.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status::retry_delay(&status), Some(Duration::from_secs(1)));
        assert!(
            status
                .message()
                .contains("anonymous callers from 192.0.2.1")
        );
        // Health checks are never limited.
        for _ in 0..3 {
            let health = svc
                .call(call("/grpc.health.v1.Health/Check"))
                .await
                .unwrap();
            assert!(health.headers().get("grpc-status").is_none());
        }
    }

    #[tokio::test]
    async fn a_service_calling_for_many_is_not_limited_per_client_and_a_partner_is() {
        let limiter = Arc::new(limiter(1.0, 1));
        let ok = tower::service_fn(|_req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let mut svc = GrpcRateLimitLayer::new(
            [("credmesh.verify.v1.VerifyService".to_owned(), limiter)].into(),
        )
        .layer(ok);
        let call = |kind| {
            let mut req = Request::post("/credmesh.verify.v1.VerifyService/Verify")
                .body(())
                .unwrap();
            req.extensions_mut().insert(Arc::new(Principal {
                client_id: format!("{kind:?}"),
                kind,
                scopes: vec!["verify".into()],
                organization: None,
                region: "SH".into(),
                token_id: "t".into(),
                expires_at: i64::MAX,
                enforcement_certificate: None,
            }));
            req
        };
        use credmesh_auth::PrincipalKind::{Partner, Service};
        // The scan page's client, asking for every phone: never refused by the bucket.
        for _ in 0..5 {
            let answer = svc.call(call(Service)).await.unwrap();
            assert!(answer.headers().get("grpc-status").is_none());
        }
        // A partner: its burst of one, then refused.
        assert!(
            svc.call(call(Partner))
                .await
                .unwrap()
                .headers()
                .get("grpc-status")
                .is_none()
        );
        let refused = svc.call(call(Partner)).await.unwrap();
        let status = tonic::Status::from_header_map(refused.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }
}

//! [`Server`]: serve one or many services from one bound listener.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, State},
    response::IntoResponse,
    routing::get,
};
use credmesh_auth::{AccessPolicy, AuthLayer, TokenValidator};
use credmesh_telemetry::{
    metrics::GrpcMetricsLayer,
    metrics::Metrics,
    propagation::{HttpRoute, ServerTraceLayer},
};
use futures::future::BoxFuture;
use http::{Request, StatusCode, header};
use tokio::{net::TcpListener, sync::watch};
use tonic::service::RoutesBuilder;
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::ServiceExt as _;

use crate::{
    conn_io::Coalescing,
    limits::LimitsLayer,
    normalize::NormalizeLayer,
    rate::{GrpcRateLimitLayer, HttpRateLimitLayer, RateLimit, RateLimiter},
    tls::{ServerTls, TlsFiles},
};

/// A dependency whose failure makes the service not ready (its database, its cache).
pub trait Readiness: Send + Sync {
    /// A short name for the readiness report (`database`, `cache`).
    fn name(&self) -> &str;
    /// Succeeds when the dependency answers.
    fn check(&self) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// The readiness of a service's database: it answers a ping.
#[derive(Debug)]
pub struct DbReady(pub credmesh_store::Db);

impl Readiness for DbReady {
    fn name(&self) -> &str {
        "database"
    }
    fn check(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.0.ping())
    }
}

/// What a service crate hands the runtime to be served.
pub struct ServiceParts {
    /// The service's short name (`identity`, `license`, …).
    pub name: &'static str,
    /// The full gRPC service names it serves, for health checking
    /// (`credmesh.identity.v1.IdentityService`).
    pub grpc_names: Vec<&'static str>,
    /// Adds its tonic services to the router.
    pub mount: Box<dyn FnOnce(&mut RoutesBuilder) + Send>,
    /// Its HTTP routes (public documents, JSON APIs, pages).
    pub http: Router,
    /// Which of its RPCs need what.
    pub policy: AccessPolicy,
    /// Its dependencies, checked for readiness.
    pub readiness: Vec<Arc<dyn Readiness>>,
}

impl std::fmt::Debug for ServiceParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceParts")
            .field("name", &self.name)
            .field("grpc_names", &self.grpc_names)
            .finish_non_exhaustive()
    }
}

/// Server limits; every value has a documented default.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest gRPC message a service decodes (`CREDMESH_MAX_MESSAGE_BYTES`, default 4 MiB).
    pub max_message_bytes: usize,
    /// Longest a call may run, and the cap on client deadlines
    /// (`CREDMESH_REQUEST_TIMEOUT_MS`, default 30 s).
    pub request_timeout: Duration,
    /// Calls in flight before new ones are shed (`CREDMESH_MAX_CONCURRENT_REQUESTS`,
    /// default 1024).
    pub concurrency_limit: usize,
    /// How often dependencies are checked for readiness (default 5 s).
    pub readiness_interval: Duration,
    /// Largest HTTP request body (default 1 MiB).
    pub http_body_limit: usize,
    /// Longest a client may take to send a request's headers before its connection is
    /// closed (`CREDMESH_HEADER_READ_TIMEOUT_MS`, default 10 s): slow clients cannot
    /// hold connections open by trickling bytes.
    pub header_read_timeout: Duration,
    /// How often an idle HTTP/2 connection is pinged, and how long the answer may take,
    /// before it is closed (default 30 s and 10 s): dead peers release their streams.
    pub keep_alive: (Duration, Duration),
    /// Concurrent HTTP/2 streams per connection (default 256).
    pub max_concurrent_streams: u32,
    /// Each service's per-client rate (`CREDMESH_RATE_LIMIT_PER_SECOND`, default 1000,
    /// 0 off; `CREDMESH_RATE_LIMIT_BURST`, default 2000): see [`crate::rate`].
    pub rate_limit: RateLimit,
    /// TLS (and mutual TLS) on every listener, or plaintext when `None` (the default):
    /// see [`crate::tls`].
    pub tls: Option<ServerTls>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            readiness_interval: Duration::from_secs(5),
            http_body_limit: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            keep_alive: (Duration::from_secs(30), Duration::from_secs(10)),
            max_concurrent_streams: 256,
            rate_limit: RateLimit::default(),
            tls: None,
        }
    }
}

impl ServerConfig {
    /// Reads the `CREDMESH_*` limits from `env`, defaults for what is unset.
    pub fn from_env(env: &std::collections::HashMap<String, String>) -> anyhow::Result<Self> {
        let mut c = ServerConfig::default();
        let num = |key: &str| -> anyhow::Result<Option<u64>> {
            match env.get(key).map(String::as_str).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("{key} must be a whole number, not '{v}'")),
            }
        };
        if let Some(n) = num("CREDMESH_MAX_MESSAGE_BYTES")? {
            c.max_message_bytes = n as usize;
        }
        if let Some(n) = num("CREDMESH_REQUEST_TIMEOUT_MS")? {
            c.request_timeout = Duration::from_millis(n);
        }
        if let Some(n) = num("CREDMESH_MAX_CONCURRENT_REQUESTS")? {
            c.concurrency_limit = n as usize;
        }
        if let Some(n) = num("CREDMESH_HEADER_READ_TIMEOUT_MS")? {
            anyhow::ensure!(n > 0, "CREDMESH_HEADER_READ_TIMEOUT_MS must be above 0");
            c.header_read_timeout = Duration::from_millis(n);
        }
        c.rate_limit = RateLimit::from_env(env)?;
        c.tls = TlsFiles::from_env(env)?.server()?;
        Ok(c)
    }
}

/// Serves services; see the crate docs for the stack every call passes.
pub struct Server {
    config: ServerConfig,
    metrics: Metrics,
    validator: Arc<TokenValidator>,
    parts: Vec<ServiceParts>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    ready: watch::Receiver<Report>,
}

#[derive(Clone, Debug, Default)]
struct Report {
    ready: bool,
    checks: Vec<(String, Result<(), String>)>,
}

impl Server {
    /// A server that validates tokens with `validator` and records into `metrics`.
    pub fn new(config: ServerConfig, metrics: Metrics, validator: Arc<TokenValidator>) -> Self {
        Self {
            config,
            metrics,
            validator,
            parts: Vec::new(),
        }
    }

    /// Adds a service.
    pub fn with_service(mut self, parts: ServiceParts) -> Self {
        self.parts.push(parts);
        self
    }

    /// Serves on every listener until `shutdown` resolves, then stops accepting, reports
    /// NOT_SERVING and lets calls in flight finish. Each listener serves everything (gRPC
    /// and HTTP are told apart by content type), so `credmesh dev` can offer its two
    /// well-known ports from one set of services.
    pub async fn serve(
        self,
        listeners: Vec<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            config,
            metrics,
            validator,
            parts,
        } = self;

        let (health, health_service) = tonic_health::server::health_reporter();
        let grpc_names: Vec<&'static str> = parts
            .iter()
            .flat_map(|p| p.grpc_names.iter().copied())
            .collect();
        // The empty service name answers liveness: SERVING while the process serves.
        // Each named service answers readiness: SERVING only while its dependencies do.
        // A database outage then takes pods out of rotation without restarting them.
        health.set_service_status("", ServingStatus::Serving).await;
        set_readiness(&health, &grpc_names, ServingStatus::NotServing).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(credmesh_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(credmesh_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        routes.add_service(reflection_v1);
        routes.add_service(reflection_v1alpha);
        let mut policy = AccessPolicy::new();
        let mut checks = Vec::new();
        let mut http = Router::new();
        let names: Vec<&str> = parts.iter().map(|p| p.name).collect();
        // One limiter per service, shared by its gRPC and HTTP sides: in `credmesh dev`
        // a client's calls to license do not spend its tokens for identity.
        let mut limiters = std::collections::HashMap::new();
        for part in parts {
            (part.mount)(&mut routes);
            policy = policy.merge(part.policy);
            checks.extend(part.readiness);
            let mut part_http = part.http;
            if config.rate_limit.is_enabled() {
                let limiter = Arc::new(RateLimiter::new(
                    part.name,
                    config.rate_limit,
                    Some(&metrics),
                ));
                for name in &part.grpc_names {
                    limiters.insert((*name).to_owned(), limiter.clone());
                }
                if part_http.has_routes() {
                    part_http =
                        part_http.route_layer(HttpRateLimitLayer::new(limiter, validator.clone()));
                }
            }
            http = http.merge(part_http);
        }
        if config.rate_limit.is_enabled() {
            tracing::info!(limit = %config.rate_limit, "per-client rate limit");
        }

        let grpc = routes
            .routes()
            .into_axum_router()
            .layer(NormalizeLayer)
            .layer(GrpcRateLimitLayer::new(limiters))
            .layer(AuthLayer::new(validator, Arc::new(policy)))
            .layer(LimitsLayer::new(
                config.concurrency_limit,
                config.request_timeout,
            ))
            .layer(GrpcMetricsLayer::new(metrics.clone()))
            .layer(ServerTraceLayer);

        let (ready_tx, ready_rx) = watch::channel(Report::default());
        let ops: Router = Router::new()
            .route("/metrics", get(metrics_handler))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready_handler))
            .with_state(HttpState {
                metrics: metrics.clone(),
                ready: ready_rx,
            });
        // The services' HTTP routes are traced like gRPC calls (the operators' probes and
        // scrapes are not: they would be most of the traces); every HTTP answer, probes
        // and unmatched paths too, is counted by the route template it matched.
        let http = http
            .layer(ServerTraceLayer)
            .merge(ops)
            .layer(DefaultBodyLimit::max(config.http_body_limit))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            .layer(axum::middleware::from_fn_with_state(
                metrics.clone(),
                record_http,
            ))
            .layer(axum::middleware::map_request(route_of));

        let app = Dispatch { grpc, http };

        let readiness = tokio::spawn(readiness_loop(
            health.clone(),
            grpc_names.clone(),
            checks,
            config.readiness_interval,
            ready_tx,
        ));

        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(addrs = ?addrs, services = ?names, "serving");
        let (stop_tx, stop_rx) = watch::channel(false);
        let health_on_stop = health.clone();
        let names_on_stop = grpc_names.clone();
        tokio::spawn(async move {
            shutdown.await;
            readiness.abort();
            health_on_stop
                .set_service_status("", ServingStatus::NotServing)
                .await;
            set_readiness(&health_on_stop, &names_on_stop, ServingStatus::NotServing).await;
            let _ = stop_tx.send(true);
        });
        let connections = Arc::new(Connections::from(&config));
        let mut servers = Vec::new();
        for listener in listeners {
            servers.push(tokio::spawn(serve_listener(
                listener,
                app.clone(),
                connections.clone(),
                stop_rx.clone(),
            )));
        }
        for server in servers {
            server.await?;
        }
        tracing::info!(addrs = ?addrs, "stopped");
        Ok(())
    }
}

async fn set_readiness(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

async fn readiness_loop(
    health: HealthReporter,
    names: Vec<&'static str>,
    checks: Vec<Arc<dyn Readiness>>,
    interval: Duration,
    report: watch::Sender<Report>,
) {
    let mut last = None;
    // While not ready, look again soon (20 ms, doubling up to `interval`): a service
    // whose key registration completes a moment after start serves at once, not one
    // whole interval later.
    let mut retry = Duration::from_millis(20);
    loop {
        let mut results = Vec::with_capacity(checks.len());
        for check in &checks {
            let result = match tokio::time::timeout(Duration::from_secs(2), check.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(format!("{err:#}")),
                Err(_) => Err("no answer within 2 s".to_string()),
            };
            results.push((check.name().to_string(), result));
        }
        let ready = results.iter().all(|(_, r)| r.is_ok());
        if last != Some(ready) {
            for (name, result) in &results {
                if let Err(err) = result {
                    if last.is_none() {
                        // Starting up: dependencies coming up is expected, not a fault.
                        tracing::info!(dependency = %name, error = %err, "waiting for dependency");
                    } else {
                        tracing::warn!(dependency = %name, error = %err, "dependency not ready");
                    }
                }
            }
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_readiness(&health, &names, status).await;
            tracing::info!(ready, "readiness changed");
            last = Some(ready);
        }
        let _ = report.send(Report {
            ready,
            checks: results,
        });
        if ready {
            retry = Duration::from_millis(20);
            tokio::time::sleep(interval).await;
        } else {
            tokio::time::sleep(retry.min(interval)).await;
            retry = retry.saturating_mul(2);
        }
    }
}

async fn metrics_handler(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn ready_handler(State(state): State<HttpState>) -> impl IntoResponse {
    let report = state.ready.borrow().clone();
    let checks: serde_json::Map<String, serde_json::Value> = report
        .checks
        .iter()
        .map(|(name, r)| {
            let v = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            };
            (name.clone(), serde_json::Value::String(v))
        })
        .collect();
    let body = serde_json::json!({
        "status": if report.ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

/// How every accepted connection is served (HTTP/1.1 and HTTP/2 on one port).
struct Connections {
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    /// Terminates TLS before HTTP when the server is configured for it.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The handshake gets as long as a client has to send its headers.
    handshake_timeout: Duration,
}

impl From<&ServerConfig> for Connections {
    fn from(config: &ServerConfig) -> Self {
        use hyper_util::rt::{TokioExecutor, TokioTimer};
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // The timer is what makes the header timeout take effect at all (axum::serve
        // sets none, so a client trickling header bytes held its connection forever).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(config.keep_alive.0)
            .keep_alive_timeout(config.keep_alive.1)
            .max_concurrent_streams(config.max_concurrent_streams);
        Self {
            builder,
            tls: config.tls.as_ref().map(ServerTls::acceptor),
            handshake_timeout: config.header_read_timeout,
        }
    }
}

/// Sends gRPC requests (by content type) to the gRPC router and everything else to the
/// HTTP one. Deciding first keeps gRPC calls, the hot path, out of the HTTP router's
/// path matching and its boxed fallback.
#[derive(Clone)]
struct Dispatch {
    grpc: Router,
    http: Router,
}

impl tower::Service<Request<Body>> for Dispatch {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        // Routers are always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let is_grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        if is_grpc {
            self.grpc.call(req)
        } else {
            self.http.call(req)
        }
    }
}

/// Names the route template an HTTP request matched ([`HttpRoute`]), for its span and
/// its metrics.
async fn route_of(mut request: Request<Body>) -> Request<Body> {
    if let Some(path) = request.extensions().get::<axum::extract::MatchedPath>() {
        let route = HttpRoute(path.as_str().into());
        request.extensions_mut().insert(route);
    }
    request
}

/// Counts an HTTP answer by its route, method and status, with how long it took.
async fn record_http(
    State(metrics): State<Metrics>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request.extensions().get::<HttpRoute>().map(|r| r.0.clone());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.http().record(
        route.as_ref(),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Accepts connections on `listener` until `stop` turns true, then lets open
/// connections finish their calls (at most 30 s) before returning.
async fn serve_listener(
    listener: TcpListener,
    app: Dispatch,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stopping = std::pin::pin!(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        // No Nagle: small gRPC frames would otherwise wait for the peer's delayed ACK
        // (about 40 ms per call on Linux).
        let _ = tcp.set_nodelay(true);
        // The peer address, for the rate limit of anonymous callers.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |req: Request<hyper::body::Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let connections = connections.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The handshake runs in the connection's task, so a slow or silent client
            // never holds up the accept loop.
            let served = match &connections.tls {
                None => {
                    let conn = connections
                        .builder
                        .serve_connection_with_upgrades(TokioIo::new(Coalescing(tcp)), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        connections.handshake_timeout,
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = connections
                        .builder
                        .serve_connection_with_upgrades(TokioIo::new(Coalescing(tls)), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 30 s after shutdown began; closing them");
    }
}

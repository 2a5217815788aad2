//! Prometheus metrics: one registry per process, served as OpenMetrics text on `/metrics`.
//!
//! [`Metrics`] is cheap to clone and shared by everything in the process; services register
//! their own domain metrics on it with [`Metrics::register`]. [`GrpcMetricsLayer`] records the
//! RED metrics of every gRPC call a server handles:
//!
//! - `credmesh_grpc_server_requests_total{service,method,code}` (counter; `code` is the gRPC
//!   status name, e.g. `OK`, `NOT_FOUND`),
//! - `credmesh_grpc_server_request_duration_seconds{service,method}` (histogram, from the
//!   request's arrival to the end of its response body, so streams count in full),
//! - `credmesh_grpc_server_requests_in_flight{service,method}` (gauge).
//!
//! Only gRPC requests (`content-type: application/grpc…`) are recorded; plain HTTP requests
//! passing through the same layer (axum routes on the shared port) are left alone. Those
//! are recorded by the server's HTTP router into [`HttpMetrics`], labelled by the route
//! template they matched:
//!
//! - `credmesh_http_server_requests_total{route,method,code}` (counter; `code` is the HTTP
//!   status, e.g. `200`, `429`),
//! - `credmesh_http_server_request_duration_seconds{route,method}` (histogram, from the
//!   request's arrival to its response head).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};
use tower::{Layer, Service};
use tracing::Span;

use crate::body::{Completion, ObservedBody, Observer, Outcome, ResponseFuture};
use crate::grpc;

/// The `Content-Type` of [`Metrics::encode`]'s output, for the `/metrics` response.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the request duration histogram: 0.5 ms to 10 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// At most this many distinct methods get their own labels. Paths come from clients, so a
/// client inventing method names must not be able to grow the registry without bound; calls
/// past the limit (and paths that are not `/service/method`) are labelled `unknown`.
const MAX_METHODS: usize = 512;

/// Label: a credential kind (`business_license`, `certificate`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: &'static str,
}

/// Issued and revoked credentials by kind ([`Metrics::credentials`]). Clones share state.
#[derive(Clone, Debug, Default)]
pub struct CredentialMetrics {
    issued: Family<KindLabel, Counter>,
    revoked: Family<KindLabel, Counter>,
}

impl CredentialMetrics {
    /// Counts one credential of `kind` signed.
    pub fn issued(&self, kind: &'static str) {
        self.issued.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts one credential of `kind` revoked or suspended.
    pub fn revoked(&self, kind: &'static str) {
        self.revoked.get_or_create(&KindLabel { kind }).inc();
    }
}

/// Labels of a verification answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Credential kind, or `unknown` when it could not be read.
    pub kind: &'static str,
    /// Issuing region, or `unknown`.
    pub region: &'static str,
    /// The outcome (`valid`, `revoked`, …).
    pub outcome: &'static str,
}

/// Labels of a cache lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// Which cache (`result`).
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// Label: a client id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabel {
    /// The client.
    pub client: String,
}

/// Labels of a call refused by the per-client rate limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitedLabels {
    /// The service that refused (`license`, `verify`, …).
    pub service: &'static str,
    /// The authenticated client id, or `anonymous` (never an address: the label set
    /// stays as small as the client register).
    pub client: String,
}

/// Label: a region code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabel {
    /// SH, JS, ZJ or AH.
    pub region: &'static str,
}

/// The verify gateway's domain metrics ([`Metrics::verify`]). Clones share state.
#[derive(Clone, Debug, Default)]
pub struct VerifyMetrics {
    /// Answers by kind, region and outcome.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Result cache lookups.
    pub cache: Family<CacheLabels, Counter>,
    /// Trust list age per region.
    pub trust_age: Family<RegionLabel, Gauge>,
    /// Oldest status list age per region.
    pub status_age: Family<RegionLabel, Gauge>,
}

/// The process's metrics registry. Clones share it.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Mutex<Registry>,
    grpc: GrpcMetrics,
    http: HttpMetrics,
    credentials: CredentialMetrics,
    verify: OnceLock<VerifyMetrics>,
    rate_limited: OnceLock<Family<RateLimitedLabels, Counter>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the gRPC server metrics already registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let grpc = GrpcMetrics::new();
        grpc.register_in(&mut registry);
        let http = HttpMetrics::default();
        http.register_in(&mut registry);
        let credentials = CredentialMetrics::default();
        registry.register(
            counter_base_name(crate::names::CREDENTIALS_ISSUED_TOTAL, &credentials.issued),
            "credentials signed, by kind",
            credentials.issued.clone(),
        );
        registry.register(
            counter_base_name(
                crate::names::CREDENTIALS_REVOKED_TOTAL,
                &credentials.revoked,
            ),
            "credentials revoked or suspended, by kind",
            credentials.revoked.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                grpc,
                http,
                credentials,
                verify: OnceLock::new(),
                rate_limited: OnceLock::new(),
            }),
        }
    }

    /// The issued and revoked credential counters every issuing service records into
    /// (registered once per process, so services sharing `credmesh dev` share them).
    pub fn credentials(&self) -> &CredentialMetrics {
        &self.inner.credentials
    }

    /// The verify gateway's metrics, registered on first use.
    pub fn verify(&self) -> &VerifyMetrics {
        self.inner.verify.get_or_init(|| {
            let v = VerifyMetrics::default();
            self.register(
                crate::names::VERIFY_OUTCOMES_TOTAL,
                "verification answers by credential kind, issuing region and outcome",
                v.outcomes.clone(),
            );
            self.register(
                crate::names::VERIFY_CACHE_REQUESTS_TOTAL,
                "verification result cache lookups, hit or miss",
                v.cache.clone(),
            );
            self.register(
                crate::names::VERIFY_TRUST_LIST_AGE_SECONDS,
                "seconds since the region's trust list was last fetched and checked",
                v.trust_age.clone(),
            );
            self.register(
                crate::names::VERIFY_STATUS_LIST_AGE_SECONDS,
                "age in seconds of the oldest status list held for the region's issuers",
                v.status_age.clone(),
            );
            v
        })
    }

    /// Calls refused by the per-client rate limit every service applies, by service and
    /// client ([`crate::names::RATE_LIMITED_TOTAL`]); registered on first use.
    pub fn rate_limited(&self) -> &Family<RateLimitedLabels, Counter> {
        self.inner.rate_limited.get_or_init(|| {
            let family = Family::default();
            self.register(
                crate::names::RATE_LIMITED_TOTAL,
                "calls refused (RESOURCE_EXHAUSTED, HTTP 429) by the per-client rate limit",
                family.clone(),
            );
            family
        })
    }

    /// Everything registered, in the OpenMetrics text format (serve it with [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let registry = self.registry();
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Registers a domain metric (a counter, gauge, histogram or a `Family` of them). Keep a
    /// clone of `metric` to update it: prometheus-client metrics share their state on clone.
    ///
    /// Counter names are given without `_total` (the encoder appends it; a trailing `_total` is
    /// dropped here rather than doubled). Registering a name twice exposes it twice: don't.
    pub fn register<M: Metric>(&self, name: &str, help: &str, metric: M) {
        let name = counter_base_name(name, &metric);
        self.registry().register(name, help, metric);
    }

    /// Like [`Metrics::register`], with a unit suffix and `# UNIT` line (e.g.
    /// `("credmesh_cache_lookup_duration", Unit::Seconds)` exposes
    /// `credmesh_cache_lookup_duration_seconds`).
    pub fn register_with_unit<M: Metric>(&self, name: &str, help: &str, unit: Unit, metric: M) {
        let name = counter_base_name(name, &metric);
        self.registry().register_with_unit(name, help, unit, metric);
    }

    /// The gRPC server metrics that [`GrpcMetricsLayer`] records into.
    pub fn grpc(&self) -> &GrpcMetrics {
        &self.inner.grpc
    }

    /// The HTTP server metrics the server's HTTP router records into.
    pub fn http(&self) -> &HttpMetrics {
        &self.inner.http
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while registering leaves the registry usable: keep serving it.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn counter_base_name<'a>(name: &'a str, metric: &impl EncodeMetric) -> &'a str {
    match metric.metric_type() {
        MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    service: String,
    method: String,
    code: &'static str,
}

type DurationFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<str>,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCodeLabels {
    route: Arc<str>,
    method: &'static str,
    code: u16,
}

/// RED metrics of the plain HTTP requests a server answers (partners' JSON API, the scan
/// page, the token endpoint, public documents), by the route template matched. Requests
/// that match no route are labelled `unmatched`; methods other than the usual ones
/// `other`, so clients cannot grow the registry.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RouteCodeLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        }
    }
}

impl HttpMetrics {
    fn register_in(&self, registry: &mut Registry) {
        registry.register(
            "credmesh_http_server_requests",
            "HTTP requests answered, by route template, method and status code",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "credmesh_http_server_request_duration",
            "Time from an HTTP request's arrival to its response head",
            Unit::Seconds,
            self.duration.clone(),
        );
    }

    /// Records one answered request: the `route` template it matched (`None`: no route
    /// did), its method, status code and how long it took.
    pub fn record(
        &self,
        route: Option<&Arc<str>>,
        method: &http::Method,
        code: u16,
        elapsed: std::time::Duration,
    ) {
        static UNMATCHED: OnceLock<Arc<str>> = OnceLock::new();
        let route = route
            .cloned()
            .unwrap_or_else(|| UNMATCHED.get_or_init(|| "unmatched".into()).clone());
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.requests
            .get_or_create(&RouteCodeLabels {
                route: route.clone(),
                method,
                code,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route, method })
            .observe(elapsed.as_secs_f64());
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// RED metrics of the gRPC calls a server handles. Recorded by [`GrpcMetricsLayer`].
///
/// The per-request work is a read-locked map lookup by path and a few atomic updates: label
/// sets and metric handles are built once per method and cached.
#[derive(Debug)]
pub struct GrpcMetrics {
    requests: Family<CodeLabels, Counter>,
    duration: DurationFamily,
    in_flight: Family<MethodLabels, Gauge>,
    methods: RwLock<HashMap<Box<str>, Arc<MethodMetrics>>>,
    unknown: OnceLock<Arc<MethodMetrics>>,
}

impl GrpcMetrics {
    fn new() -> Self {
        GrpcMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            in_flight: Family::default(),
            methods: RwLock::new(HashMap::new()),
            unknown: OnceLock::new(),
        }
    }

    fn register_in(&self, registry: &mut Registry) {
        registry.register(
            "credmesh_grpc_server_requests",
            "gRPC requests handled, by final status code",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "credmesh_grpc_server_request_duration",
            "Time from a gRPC request's arrival to the end of its response",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register(
            "credmesh_grpc_server_requests_in_flight",
            "gRPC requests being handled",
            self.in_flight.clone(),
        );
    }

    /// The cached handles for the method at `path` (`/package.Service/Method`).
    fn method(&self, path: &str) -> Arc<MethodMetrics> {
        let read = self.methods.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(method) = read.get(path) {
            return Arc::clone(method);
        }
        drop(read);

        let Some((service, method)) = grpc::split_path(path) else {
            return self.unknown();
        };
        let mut methods = self.methods.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = methods.get(path) {
            return Arc::clone(existing);
        }
        if methods.len() >= MAX_METHODS {
            return self.unknown();
        }
        let metrics = Arc::new(MethodMetrics::new(self, service, method));
        methods.insert(path.into(), Arc::clone(&metrics));
        metrics
    }

    fn unknown(&self) -> Arc<MethodMetrics> {
        Arc::clone(
            self.unknown
                .get_or_init(|| Arc::new(MethodMetrics::new(self, "unknown", "unknown"))),
        )
    }
}

/// One method's metric handles, so recording a call allocates nothing.
#[derive(Debug)]
struct MethodMetrics {
    labels: MethodLabels,
    requests: Family<CodeLabels, Counter>,
    // Counters are created on first use of each code, so only codes that happened are exposed.
    by_code: [OnceLock<Counter>; grpc::CODE_NAMES.len()],
    duration: Histogram,
    in_flight: Gauge,
}

impl MethodMetrics {
    fn new(grpc: &GrpcMetrics, service: &str, method: &str) -> Self {
        let labels = MethodLabels {
            service: service.to_owned(),
            method: method.to_owned(),
        };
        MethodMetrics {
            requests: grpc.requests.clone(),
            by_code: std::array::from_fn(|_| OnceLock::new()),
            duration: grpc.duration.get_or_create_owned(&labels),
            in_flight: grpc.in_flight.get_or_create_owned(&labels),
            labels,
        }
    }

    fn requests(&self, code: i32) -> &Counter {
        let index = grpc::code_index(code);
        self.by_code[index].get_or_init(|| {
            self.requests.get_or_create_owned(&CodeLabels {
                service: self.labels.service.clone(),
                method: self.labels.method.clone(),
                code: grpc::CODE_NAMES[index],
            })
        })
    }
}

/// One call being measured: in flight from `start` until `finish`.
pub(crate) struct Observation {
    method: Arc<MethodMetrics>,
    start: Instant,
}

impl Observation {
    fn start(method: Arc<MethodMetrics>) -> Self {
        method.in_flight.inc();
        Observation {
            method,
            start: Instant::now(),
        }
    }

    pub(crate) fn finish(self, outcome: Outcome) {
        let method = &self.method;
        method.duration.observe(self.start.elapsed().as_secs_f64());
        method.requests(outcome.grpc_code()).inc();
        method.in_flight.dec();
    }
}

/// tower layer recording [`GrpcMetrics`] for every gRPC request passing through.
///
/// Generic over the request and response bodies, so it wraps a tonic server (`Server::layer`),
/// a tonic `Routes`, or an axum `Router` alike.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl GrpcMetricsLayer {
    /// Records into `metrics` (a clone of the process's registry).
    pub fn new(metrics: Metrics) -> Self {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service produced by [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, ResBody> Service<Request<B>> for GrpcMetricsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: hyper::body::Body,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let completion = if grpc::is_grpc(request.headers()) {
            let method = self.metrics.grpc().method(request.uri().path());
            Completion::new(Observer::Metrics(Observation::start(method)))
        } else {
            Completion::none()
        };
        ResponseFuture::new(self.inner.call(request), Span::none(), None, completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::ObservedBody;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use hyper::body::{Body, Frame};
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use tower::ServiceExt;

    /// A response body that yields some data frames and then, optionally, trailers.
    #[derive(Default)]
    struct TestBody {
        frames: VecDeque<Frame<&'static [u8]>>,
    }

    impl TestBody {
        fn with_trailers(grpc_status: &'static str) -> Self {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static(grpc_status));
            TestBody {
                frames: VecDeque::from([
                    Frame::data(&b"\0\0\0\0\0"[..]),
                    Frame::trailers(trailers),
                ]),
            }
        }
    }

    impl Body for TestBody {
        type Data = &'static [u8];
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.frames.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.frames.is_empty()
        }
    }

    async fn drain<B: Body + Unpin>(mut body: B) {
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            assert!(frame.is_ok());
        }
    }

    fn grpc_request(path: &str) -> Request<()> {
        Request::builder()
            .uri(path)
            .header("content-type", "application/grpc")
            .body(())
            .expect("valid request")
    }

    /// Sends one request through the layer to a handler returning `response`, and returns the
    /// (not yet consumed) response.
    async fn call(
        metrics: &Metrics,
        request: Request<()>,
        response: Response<TestBody>,
    ) -> Response<ObservedBody<TestBody>> {
        let mut response = Some(response);
        let service = tower::service_fn(move |_request: Request<()>| {
            let response = response.take().expect("called once");
            async move { Ok::<_, Infallible>(response) }
        });
        GrpcMetricsLayer::new(metrics.clone())
            .layer(service)
            .oneshot(request)
            .await
            .expect("infallible")
    }

    fn count_line(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .map(str::to_owned)
    }

    #[tokio::test]
    async fn a_unary_call_is_counted_with_the_status_from_its_trailers_and_timed() {
        let metrics = Metrics::new();
        let response = call(
            &metrics,
            grpc_request("/credmesh.test.v1.Echo/Say"),
            Response::new(TestBody::with_trailers("0")),
        )
        .await;

        // Nothing is counted until the trailers have gone by; the call is still in flight.
        let text = metrics.encode();
        assert!(
            !text.contains("credmesh_grpc_server_requests_total{"),
            "{text}"
        );
        assert!(
            text.contains(
                "credmesh_grpc_server_requests_in_flight{service=\"credmesh.test.v1.Echo\",method=\"Say\"} 1"
            ),
            "{text}"
        );

        drain(response.into_body()).await;
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE credmesh_grpc_server_requests counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "credmesh_grpc_server_requests_total{service=\"credmesh.test.v1.Echo\",method=\"Say\",code=\"OK\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE credmesh_grpc_server_request_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT credmesh_grpc_server_request_duration_seconds seconds\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "credmesh_grpc_server_request_duration_seconds_count{service=\"credmesh.test.v1.Echo\",method=\"Say\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "credmesh_grpc_server_request_duration_seconds_bucket{le=\"10.0\",service=\"credmesh.test.v1.Echo\",method=\"Say\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE credmesh_grpc_server_requests_in_flight gauge\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "credmesh_grpc_server_requests_in_flight{service=\"credmesh.test.v1.Echo\",method=\"Say\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn a_trailers_only_error_is_counted_with_the_status_from_its_headers() {
        let metrics = Metrics::new();
        let response = Response::builder()
            .header("grpc-status", "5")
            .body(TestBody::default())
            .expect("valid response");
        let response = call(&metrics, grpc_request("/a.B/C"), response).await;

        // Counted as soon as the head is out, before the body is read.
        let line = count_line(&metrics.encode(), "credmesh_grpc_server_requests_total{");
        assert_eq!(
            line.as_deref(),
            Some(
                "credmesh_grpc_server_requests_total{service=\"a.B\",method=\"C\",code=\"NOT_FOUND\"} 1"
            )
        );
        drain(response.into_body()).await;
        let text = metrics.encode();
        assert_eq!(
            text.matches("credmesh_grpc_server_requests_total{").count(),
            1
        );
    }

    #[tokio::test]
    async fn a_response_dropped_before_its_trailers_counts_as_cancelled() {
        let metrics = Metrics::new();
        let response = call(
            &metrics,
            grpc_request("/a.B/Stream"),
            Response::new(TestBody::with_trailers("0")),
        )
        .await;
        drop(response);
        let line = count_line(&metrics.encode(), "credmesh_grpc_server_requests_total{");
        assert_eq!(
            line.as_deref(),
            Some(
                "credmesh_grpc_server_requests_total{service=\"a.B\",method=\"Stream\",code=\"CANCELLED\"} 1"
            )
        );
    }

    #[tokio::test]
    async fn a_non_200_response_without_grpc_status_is_mapped_from_its_http_status() {
        let metrics = Metrics::new();
        let response = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(TestBody::default())
            .expect("valid response");
        let _response = call(&metrics, grpc_request("/a.B/C"), response).await;
        assert!(
            metrics
                .encode()
                .contains("credmesh_grpc_server_requests_total{service=\"a.B\",method=\"C\",code=\"UNAVAILABLE\"} 1")
        );
    }

    #[tokio::test]
    async fn a_grpc_response_with_no_status_and_nothing_to_read_counts_as_unknown() {
        let metrics = Metrics::new();
        let _response = call(
            &metrics,
            grpc_request("/a.B/C"),
            Response::new(TestBody::default()),
        )
        .await;
        assert!(metrics.encode().contains(
            "credmesh_grpc_server_requests_total{service=\"a.B\",method=\"C\",code=\"UNKNOWN\"} 1"
        ));
    }

    #[tokio::test]
    async fn plain_http_requests_are_not_counted() {
        let metrics = Metrics::new();
        let request = Request::builder()
            .uri("/metrics")
            .body(())
            .expect("valid request");
        let response = call(&metrics, request, Response::new(TestBody::default())).await;
        drain(response.into_body()).await;
        let text = metrics.encode();
        assert!(
            !text.contains("credmesh_grpc_server_requests_total{"),
            "{text}"
        );
        assert!(
            !text.contains("credmesh_grpc_server_requests_in_flight{"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn paths_that_name_no_method_are_labelled_unknown() {
        let metrics = Metrics::new();
        let response = call(
            &metrics,
            grpc_request("/not-a-grpc-path"),
            Response::new(TestBody::with_trailers("12")),
        )
        .await;
        drain(response.into_body()).await;
        assert!(metrics.encode().contains(
            "credmesh_grpc_server_requests_total{service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"} 1"
        ));
    }

    #[test]
    fn invented_method_names_stop_getting_labels_past_the_limit() {
        let metrics = Metrics::new();
        for i in 0..MAX_METHODS + 10 {
            let method = metrics.grpc().method(&format!("/a.B/M{i}"));
            Observation::start(method).finish(Outcome::Grpc(12));
        }
        let text = metrics.encode();
        assert_eq!(
            text.matches("credmesh_grpc_server_requests_total{").count(),
            MAX_METHODS + 1
        );
        assert!(text.contains(
            "credmesh_grpc_server_requests_total{service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"} 10"
        ));
    }

    #[test]
    fn services_register_their_own_metrics_and_counters_get_one_total_suffix() {
        let metrics = Metrics::new();
        let issued = Counter::<u64>::default();
        metrics.register(
            "credmesh_licenses_issued_total",
            "Licenses issued",
            issued.clone(),
        );
        issued.inc_by(3);
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE credmesh_licenses_issued counter\n"),
            "{text}"
        );
        assert!(
            text.contains("credmesh_licenses_issued_total 3\n"),
            "{text}"
        );
    }
}

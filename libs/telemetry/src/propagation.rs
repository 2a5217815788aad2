//! W3C trace context (`traceparent` / `tracestate`) over gRPC metadata and HTTP headers, so one
//! request is one trace across every service it touches.
//!
//! Servers wrap their routes in [`ServerTraceLayer`]: each request gets a `grpc.server` span
//! (or `http.server` for plain HTTP routes on the same port) whose parent is the caller's span
//! from the `traceparent` header. Clients wrap their channels in [`ClientTraceLayer`]: each call
//! gets a `grpc.client` span, child of the current span, whose context goes out in the request
//! headers. Code that makes calls some other way uses [`inject_into`] and [`extract_from`].
//!
//! The W3C propagator is used directly rather than through OpenTelemetry's global propagator,
//! so propagation works the same in tests and tools that never call [`crate::init`]. When a span
//! cannot carry the remote parent (no OpenTelemetry layer installed, or the span is filtered
//! out), the server layer attaches the remote context itself while the handler runs, so the
//! trace still passes through to the next hop.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::body::{Completion, ObservedBody, Observer, Outcome, ResponseFuture};
use crate::grpc;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Writes the current tracing span's trace context into `headers` (`traceparent`, and
/// `tracestate` when there is one). Does nothing outside any trace.
pub fn inject_into(headers: &mut HeaderMap) {
    inject_context(&current_context(), headers);
}

/// Reads the caller's trace context from `headers`. Without a valid `traceparent` the result
/// has no span (`cx.span().span_context().is_valid()` is false).
pub fn extract_from(headers: &HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new()
        .extract_with_context(&opentelemetry::Context::new(), &HeaderExtractor(headers))
}

/// The W3C trace id (32 hex digits) a request belongs to, for audit records: the current
/// trace's (the server span continues the caller's trace or starts one), else the one in
/// the request's `traceparent`, else empty.
pub fn trace_id(metadata: &tonic::metadata::MetadataMap) -> String {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let current = span.span_context();
    if current.is_valid() {
        return current.trace_id().to_string();
    }
    metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_default()
        .to_string()
}

fn inject_context(cx: &opentelemetry::Context, headers: &mut HeaderMap) {
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
    }
}

/// The OpenTelemetry context of the current tracing span, or the attached OpenTelemetry context
/// when the span has none (no OpenTelemetry layer, or a fallback remote context is attached).
fn current_context() -> opentelemetry::Context {
    context_of(&Span::current())
}

fn context_of(span: &Span) -> opentelemetry::Context {
    if !span.is_disabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            return cx;
        }
    }
    opentelemetry::Context::current()
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => TRACEPARENT,
            "tracestate" => TRACESTATE,
            other => match HeaderName::from_bytes(other.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        if value.is_empty() {
            // An empty tracestate is not worth a header (and a stale one must not survive).
            self.0.remove(name);
        } else if let Ok(value) = HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// A request span waiting for its call's final status.
pub(crate) struct SpanObservation {
    span: Span,
    side: Side,
    grpc: bool,
}

impl SpanObservation {
    pub(crate) fn is_grpc(&self) -> bool {
        self.grpc
    }

    pub(crate) fn finish(self, outcome: Outcome) {
        let error = if self.grpc {
            let code = outcome.grpc_code();
            self.span.record("rpc.grpc.status_code", i64::from(code));
            match self.side {
                Side::Server => grpc::is_server_error(code) || outcome == Outcome::Failed,
                Side::Client => code != 0,
            }
        } else {
            match outcome {
                Outcome::Http(status) => {
                    let status_code = i64::from(status.as_u16());
                    self.span.record("http.response.status_code", status_code);
                    match self.side {
                        Side::Server => status.is_server_error(),
                        Side::Client => status.is_client_error() || status.is_server_error(),
                    }
                }
                Outcome::Failed => true,
                Outcome::Grpc(_) | Outcome::Cancelled => false,
            }
        };
        if error {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

fn completion_for(span: &Span, side: Side, grpc: bool) -> Completion {
    if span.is_disabled() {
        return Completion::none();
    }
    Completion::new(Observer::Span(SpanObservation {
        span: span.clone(),
        side,
        grpc,
    }))
}

/// The request span of a server: `grpc.server` for gRPC requests, `http.server` otherwise.
fn server_span<B>(request: &Request<B>) -> (Span, bool) {
    let path = request.uri().path();
    if grpc::is_grpc(request.headers()) {
        let (service, method) = grpc::split_path(path).unwrap_or(("unknown", "unknown"));
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        );
        (span, true)
    } else {
        let method = request.method().as_str();
        let route = request.extensions().get::<HttpRoute>();
        let name = match route {
            Some(route) => format!("{method} {}", route.0),
            None => method.to_owned(),
        };
        let span = tracing::info_span!(
            "http.server",
            otel.name = name,
            otel.kind = "server",
            http.request.method = method,
            http.route = route.map(|r| &*r.0),
            url.path = path,
            http.response.status_code = Empty,
            otel.status_code = Empty,
        );
        (span, false)
    }
}

/// The route template an HTTP request matched (`/v1/verify`, `/v/{*qr}`), put in the
/// request's extensions by the server's router: the `http.server` span is named
/// `METHOD route` and carries `http.route`, and the HTTP metrics are labelled by it,
/// never by the path itself (which a client chooses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute(pub Arc<str>);

/// The span of an outgoing call: `grpc.client` for gRPC requests, `http.client` otherwise.
fn client_span<B>(request: &Request<B>) -> (Span, bool) {
    let path = request.uri().path();
    if grpc::is_grpc(request.headers()) {
        let (service, method) = grpc::split_path(path).unwrap_or(("unknown", "unknown"));
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        );
        (span, true)
    } else {
        let method = request.method().as_str();
        let span = tracing::info_span!(
            "http.client",
            otel.name = method,
            otel.kind = "client",
            http.request.method = method,
            url.path = path,
            http.response.status_code = Empty,
            otel.status_code = Empty,
        );
        (span, false)
    }
}

/// tower layer for servers: one span per request, child of the caller's `traceparent`, entered
/// while the handler runs; it records `rpc.grpc.status_code` (from the headers or trailers) and
/// marks server-side failures with `otel.status_code = "ERROR"`.
///
/// Put it outermost, so everything inside (auth, metrics, the handler) runs in the span.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerTraceLayer;

impl ServerTraceLayer {
    /// The layer (it has no configuration).
    pub const fn new() -> Self {
        ServerTraceLayer
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace { inner }
    }
}

/// The service produced by [`ServerTraceLayer`].
#[derive(Clone, Debug)]
pub struct ServerTrace<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for ServerTrace<S>
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
        let (span, grpc) = server_span(&request);
        let remote = extract_from(request.headers());
        // The parent must be set before the span is first entered.
        let fallback = if remote.span().span_context().is_valid() {
            span.set_parent(remote.clone()).err().map(|_| remote)
        } else {
            None
        };
        let completion = completion_for(&span, Side::Server, grpc);
        let future = {
            let _remote = fallback.as_ref().map(|remote| remote.clone().attach());
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, fallback, completion)
    }
}

/// tower layer for clients (wrap a tonic `Channel`): each call gets a `grpc.client` span, child
/// of the current span, whose trace context is injected into the request headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTraceLayer;

impl ClientTraceLayer {
    /// The layer (it has no configuration).
    pub const fn new() -> Self {
        ClientTraceLayer
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTrace { inner }
    }
}

/// The service produced by [`ClientTraceLayer`].
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
}

/// A tonic channel whose calls get `grpc.client` spans and carry the caller's trace
/// context: what every credmesh gRPC client of another service is built on
/// (`credmesh_runtime::connect` makes one; [`traced`] wraps an existing channel).
pub type TracedChannel = ClientTrace<tonic::transport::Channel>;

/// Wraps `channel` in [`ClientTraceLayer`].
pub fn traced(channel: tonic::transport::Channel) -> TracedChannel {
    ClientTrace { inner: channel }
}

impl<S, B, ResBody> Service<Request<B>> for ClientTrace<S>
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (span, grpc) = client_span(&request);
        inject_context(&context_of(&span), request.headers_mut());
        let completion = completion_for(&span, Side::Client, grpc);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, None, completion)
    }
}

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::Value;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::{Layer, ServiceExt};
use tracing::{Instrument, Subscriber};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer as _, Registry};

use super::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT_VALUE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Collects finished spans in memory (opentelemetry_sdk's own in-memory exporter needs its
/// `testing` feature).
#[derive(Clone, Debug, Default)]
struct Collector(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collector {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.lock().expect("collector lock").extend(batch);
        std::future::ready(Ok(()))
    }
}

impl Collector {
    fn spans(&self) -> Vec<SpanData> {
        self.0.lock().expect("collector lock").clone()
    }

    fn named(&self, name: &str) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|span| span.name == name)
            .collect()
    }
}

/// A subscriber exporting every span to the returned collector, filtered like production.
fn traced() -> (impl Subscriber + Send + Sync, Collector, SdkTracerProvider) {
    let collector = Collector::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collector.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_filter(crate::init::span_filter());
    (Registry::default().with(layer), collector, provider)
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn incoming(path: &str) -> Request<()> {
    Request::builder()
        .uri(path)
        .header("content-type", "application/grpc")
        .header("traceparent", TRACEPARENT_VALUE)
        .body(())
        .expect("valid request")
}

/// A trailers-only gRPC response with this status.
fn grpc_response(code: &'static str) -> Response<String> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code)
        .body(String::new())
        .expect("valid response")
}

/// What a handler saw while it ran: its own span context, and the headers it would send on.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Option<(SpanContext, HeaderMap)>>>);

impl Seen {
    fn record(&self) {
        let cx = context_of(&Span::current());
        let mut outgoing = HeaderMap::new();
        inject_into(&mut outgoing);
        *self.0.lock().expect("seen lock") = Some((cx.span().span_context().clone(), outgoing));
    }

    fn take(&self) -> (SpanContext, HeaderMap) {
        self.0
            .lock()
            .expect("seen lock")
            .take()
            .expect("the handler ran")
    }
}

async fn serve_once(request: Request<()>, code: &'static str) -> Seen {
    let seen = Seen::default();
    let handler_seen = seen.clone();
    let handler = tower::service_fn(move |_request: Request<()>| {
        let seen = handler_seen.clone();
        async move {
            seen.record();
            Ok::<_, Infallible>(grpc_response(code))
        }
    });
    let response = ServerTraceLayer
        .layer(handler)
        .oneshot(request)
        .await
        .expect("infallible");
    drop(response);
    seen
}

#[test]
fn an_extracted_traceparent_is_injected_again_unchanged() {
    let mut incoming = HeaderMap::new();
    incoming.insert("traceparent", HeaderValue::from_static(TRACEPARENT_VALUE));
    let cx = extract_from(&incoming);
    let span_context = cx.span().span_context().clone();
    assert!(span_context.is_remote());
    assert_eq!(span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(span_context.span_id().to_string(), PARENT_ID);

    let _attached = cx.attach();
    let mut outgoing = HeaderMap::new();
    inject_into(&mut outgoing);
    assert_eq!(outgoing["traceparent"], TRACEPARENT_VALUE);
    assert!(!outgoing.contains_key("tracestate"));
}

#[test]
fn headers_without_a_valid_traceparent_extract_to_no_trace() {
    let mut headers = HeaderMap::new();
    assert!(!extract_from(&headers).span().span_context().is_valid());
    headers.insert("traceparent", HeaderValue::from_static("00-zz-00-01"));
    assert!(!extract_from(&headers).span().span_context().is_valid());
}

#[test]
fn nothing_is_injected_outside_a_trace() {
    let _none = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    let mut headers = HeaderMap::new();
    inject_into(&mut headers);
    assert!(headers.is_empty());
}

#[tokio::test]
async fn the_server_span_is_a_child_of_the_incoming_traceparent() {
    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);

    let seen = serve_once(incoming("/credmesh.test.v1.Echo/Say"), "0").await;

    let spans = collector.named("credmesh.test.v1.Echo/Say");
    assert_eq!(spans.len(), 1, "{:#?}", collector.spans());
    let span = &spans[0];
    assert_eq!(span.span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(span.parent_span_id.to_string(), PARENT_ID);
    assert!(span.parent_span_is_remote);
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset);
    for (key, value) in [
        ("rpc.system", Value::from("grpc")),
        ("rpc.service", Value::from("credmesh.test.v1.Echo")),
        ("rpc.method", Value::from("Say")),
        ("rpc.grpc.status_code", Value::I64(0)),
    ] {
        assert_eq!(attribute(span, key), Some(value), "{key}");
    }

    // The handler ran inside the span, and what it sends on names the span as parent.
    let (handler_context, outgoing) = seen.take();
    assert_eq!(handler_context.span_id(), span.span_context.span_id());
    let next_hop = extract_from(&outgoing);
    let next_hop = next_hop.span().span_context().clone();
    assert_eq!(next_hop.trace_id(), span.span_context.trace_id());
    assert_eq!(next_hop.span_id(), span.span_context.span_id());
}

#[tokio::test]
async fn a_server_failure_marks_the_span_as_an_error_but_a_client_mistake_does_not() {
    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);

    serve_once(incoming("/a.B/Internal"), "13").await;
    serve_once(incoming("/a.B/NotFound"), "5").await;

    let internal = &collector.named("a.B/Internal")[0];
    assert!(matches!(internal.status, Status::Error { .. }));
    assert_eq!(
        attribute(internal, "rpc.grpc.status_code"),
        Some(Value::I64(13))
    );
    let not_found = &collector.named("a.B/NotFound")[0];
    assert_eq!(not_found.status, Status::Unset);
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_new_trace() {
    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);

    let request = Request::builder()
        .uri("/a.B/C")
        .header("content-type", "application/grpc")
        .body(())
        .expect("valid request");
    serve_once(request, "0").await;

    let span = &collector.named("a.B/C")[0];
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert_ne!(span.span_context.trace_id(), TraceId::INVALID);
}

#[tokio::test]
async fn without_an_opentelemetry_layer_the_trace_still_passes_through_the_server() {
    let _none = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());

    let seen = serve_once(incoming("/a.B/C"), "0").await;

    let (_, outgoing) = seen.take();
    assert_eq!(outgoing["traceparent"], TRACEPARENT_VALUE);
}

#[tokio::test]
async fn the_client_span_is_a_child_of_the_current_span_and_goes_out_as_the_parent() {
    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);

    let sent = Arc::new(Mutex::new(HeaderMap::new()));
    let transport_sent = Arc::clone(&sent);
    let transport = tower::service_fn(move |request: Request<()>| {
        *transport_sent.lock().expect("sent lock") = request.headers().clone();
        async { Ok::<_, Infallible>(grpc_response("5")) }
    });
    let request = Request::builder()
        .uri("/credmesh.license.v1.LicenseService/GetLicense")
        .header("content-type", "application/grpc")
        .body(())
        .expect("valid request");
    let response = ClientTraceLayer
        .layer(transport)
        .oneshot(request)
        .instrument(tracing::info_span!("caller"))
        .await
        .expect("infallible");
    drop(response);

    let caller = &collector.named("caller")[0];
    let client = &collector.named("credmesh.license.v1.LicenseService/GetLicense")[0];
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, caller.span_context.span_id());
    assert_eq!(
        client.span_context.trace_id(),
        caller.span_context.trace_id()
    );
    // NOT_FOUND is an error from the caller's point of view.
    assert!(matches!(client.status, Status::Error { .. }));
    assert_eq!(
        attribute(client, "rpc.grpc.status_code"),
        Some(Value::I64(5))
    );

    let sent = extract_from(&sent.lock().expect("sent lock"));
    assert_eq!(
        sent.span().span_context().span_id(),
        client.span_context.span_id()
    );
}

#[tokio::test]
async fn plain_http_requests_get_an_http_server_span() {
    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);

    let handler = tower::service_fn(|_request: Request<()>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(503)
                .body(String::new())
                .expect("valid response"),
        )
    });
    let request = Request::builder()
        .uri("/v1/verify")
        .header("traceparent", TRACEPARENT_VALUE)
        .body(())
        .expect("valid request");
    drop(ServerTraceLayer.layer(handler).oneshot(request).await);

    let span = &collector.named("GET")[0];
    assert_eq!(span.parent_span_id.to_string(), PARENT_ID);
    assert_eq!(
        attribute(span, "http.response.status_code"),
        Some(Value::I64(503))
    );
    assert_eq!(attribute(span, "url.path"), Some(Value::from("/v1/verify")));
    assert!(matches!(span.status, Status::Error { .. }));
}

#[tokio::test]
async fn an_http_span_is_named_by_its_route_not_its_path() {
    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);

    let handler = tower::service_fn(|_request: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let mut request = Request::builder()
        .method("POST")
        .uri("/v/CM1:ABC")
        .body(())
        .expect("valid request");
    request
        .extensions_mut()
        .insert(HttpRoute("/v/{*qr}".into()));
    drop(ServerTraceLayer.layer(handler).oneshot(request).await);

    let span = &collector.named("POST /v/{*qr}")[0];
    assert_eq!(attribute(span, "http.route"), Some(Value::from("/v/{*qr}")));
    assert_eq!(attribute(span, "url.path"), Some(Value::from("/v/CM1:ABC")));
    assert_eq!(
        attribute(span, "http.response.status_code"),
        Some(Value::I64(200))
    );
}

/// The whole path through real tonic: a traced client calls a server wrapped in both layers.
#[tokio::test]
async fn a_call_through_tonic_is_one_trace_and_is_counted_with_its_trailer_status() {
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);
    let metrics = crate::metrics::Metrics::new();

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("credmesh.test.v1.Echo", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(ServerTraceLayer)
            .layer(crate::metrics::GrpcMetricsLayer::new(metrics.clone()))
            .add_service(health)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(
        tower::ServiceBuilder::new()
            .layer(ClientTraceLayer)
            .service(channel),
    );
    async {
        let serving = client
            .check(HealthCheckRequest {
                service: "credmesh.test.v1.Echo".into(),
            })
            .await
            .expect("known service");
        assert_eq!(serving.get_ref().status, 1);
        let unknown = client
            .check(HealthCheckRequest {
                service: "nope".into(),
            })
            .await
            .expect_err("unknown service");
        assert_eq!(unknown.code(), tonic::Code::NotFound);
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    drop(client);
    stop.send(()).expect("server running");
    server.await.expect("server task").expect("server");

    // Metrics: the OK came from the trailers, the NOT_FOUND from trailers-only headers.
    let text = metrics.encode();
    for code in ["OK", "NOT_FOUND"] {
        let line = format!(
            "credmesh_grpc_server_requests_total{{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"{code}\"}} 1\n"
        );
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }

    // Traces: caller -> grpc.client -> grpc.server, twice, all in one trace.
    let caller = &collector.named("caller")[0];
    let trace_id = caller.span_context.trace_id();
    let calls = collector.named("grpc.health.v1.Health/Check");
    let clients: Vec<_> = calls
        .iter()
        .filter(|span| span.span_kind == SpanKind::Client)
        .collect();
    let servers: Vec<_> = calls
        .iter()
        .filter(|span| span.span_kind == SpanKind::Server)
        .collect();
    assert_eq!((clients.len(), servers.len()), (2, 2), "{calls:#?}");
    for client in &clients {
        assert_eq!(client.span_context.trace_id(), trace_id);
        assert_eq!(client.parent_span_id, caller.span_context.span_id());
    }
    for server in &servers {
        assert_eq!(server.span_context.trace_id(), trace_id);
        assert!(server.parent_span_is_remote);
        assert!(
            clients
                .iter()
                .any(|client| client.span_context.span_id() == server.parent_span_id),
            "server span's parent is one of the client spans"
        );
    }
    let mut codes: Vec<_> = servers
        .iter()
        .map(|server| attribute(server, "rpc.grpc.status_code"))
        .collect();
    codes.sort_by_key(|code| format!("{code:?}"));
    assert_eq!(codes, [Some(Value::I64(0)), Some(Value::I64(5))]);
}

#[test]
fn a_remote_context_built_by_hand_round_trips_through_headers() {
    let span_context = SpanContext::new(
        TraceId::from_hex(TRACE_ID).expect("hex"),
        SpanId::from_hex(PARENT_ID).expect("hex"),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("credmesh", "eu")]).expect("valid tracestate"),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(span_context.clone());
    let mut headers = HeaderMap::new();
    inject_context(&cx, &mut headers);
    assert_eq!(headers["traceparent"], TRACEPARENT_VALUE);
    assert_eq!(headers["tracestate"], "credmesh=eu");
    let extracted = extract_from(&headers);
    assert_eq!(extracted.span().span_context(), &span_context);
}

/// gRPC and HTTP share one port through an axum `Router` (tonic `Routes::into_axum_router`):
/// both layers must fit `Router::layer` and keep working there.
#[tokio::test]
async fn the_layers_wrap_an_axum_router_serving_grpc() {
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let (subscriber, collector, _provider) = traced();
    let _default = tracing::subscriber::set_default(subscriber);
    let metrics = crate::metrics::Metrics::new();

    let (_reporter, health) = tonic_health::server::health_reporter();
    let router = tonic::service::Routes::new(health)
        .into_axum_router()
        .layer(crate::metrics::GrpcMetricsLayer::new(metrics.clone()))
        .layer(ServerTraceLayer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("the server as a whole is serving");
    drop(client);
    stop.send(()).expect("server running");
    server.await.expect("server task").expect("server");

    assert!(metrics.encode().contains(
        "credmesh_grpc_server_requests_total{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"OK\"} 1\n"
    ));
    let server_span = &collector.named("grpc.health.v1.Health/Check")[0];
    assert_eq!(server_span.span_kind, SpanKind::Server);
    assert_eq!(
        attribute(server_span, "rpc.grpc.status_code"),
        Some(Value::I64(0))
    );
}

//! The process-wide `tracing` subscriber: logs, the OpenTelemetry layer and the OTLP exporter.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Once;

use anyhow::{Context as _, bail};
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

use crate::ids::IdsOnly;
use crate::json::JsonWithTrace;
use crate::statements::{SQLX_TARGET, StatementSpans};

/// Instrumentation scope of the spans this process exports.
const SCOPE: &str = env!("CARGO_PKG_NAME");

/// Installs the global tracing subscriber for a process and returns the guard that flushes
/// exported spans when dropped: keep it alive in `main` until shutdown.
///
/// Configuration comes from `env` (`main` passes `std::env::vars().collect()`, tests a map):
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `RUST_LOG` | `info` | which log lines are written (an `EnvFilter` directive) |
/// | `CREDMESH_LOG_FORMAT` | `json` | `json` (one object a line, with `trace_id`/`span_id`) or `pretty` |
/// | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` | unset | OTLP/gRPC collector; spans are exported only when one is set (the first wins) |
/// | `OTEL_SERVICE_NAME` | `service` | `service.name` of the exported spans |
/// | `OTEL_SDK_DISABLED` | `false` | `true` turns export off whatever else is set |
/// | `OTEL_TRACES_EXPORTER` | `otlp` | `none` turns export off; nothing else is supported |
/// | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc` | only `grpc` is supported |
///
/// The remaining standard `OTEL_*` variables (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`,
/// `…_COMPRESSION`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`) are read by
/// the OpenTelemetry SDK itself, from the process environment.
///
/// Logs go to stderr, so stdout stays free for the CLI subcommands' output. Spans and trace
/// context are tracked even without an exporter, so `trace_id`s appear in logs and trace
/// context passes through this service to the next.
///
/// With an OTLP endpoint set, call this inside the Tokio runtime (the exporter's gRPC channel
/// is created on it) and drop the guard from a multi-threaded runtime or outside any runtime:
/// shutdown blocks until the last batch is sent (or times out). `https` endpoints need a TLS
/// feature of `opentelemetry-otlp` that is not enabled: use a local collector over `http`.
///
/// Fails if the configuration is invalid or a global subscriber is already installed.
pub fn init(service: &str, env: &HashMap<String, String>) -> anyhow::Result<TelemetryGuard> {
    let config = Config::from_env(service, env)?;
    let (subscriber, guard) = build(&config)?;
    subscriber
        .try_init()
        .context("installing the global tracing subscriber")?;
    global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(provider) = guard.provider() {
        global::set_tracer_provider(provider.clone());
    }
    tracing::debug!(
        service = %config.service_name,
        otlp_endpoint = config.otlp_endpoint.as_deref().unwrap_or("none"),
        log_format = ?config.log_format,
        "telemetry initialised"
    );
    Ok(guard)
}

/// For tests: installs a subscriber that tracks spans and trace context (so propagation works
/// as in production) and writes logs, through the test harness's capture, only when the
/// `TEST_LOG` environment variable is set (filtered by `RUST_LOG`, default `info`). Safe to
/// call from every test: the first call wins, and an already installed subscriber is kept.
pub fn init_for_tests() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let logs = std::env::var_os("TEST_LOG").is_some().then(|| {
            let filter = std::env::var("RUST_LOG")
                .ok()
                .and_then(|directives| EnvFilter::try_new(directives).ok())
                .unwrap_or_else(|| EnvFilter::new("info"));
            fmt::layer().with_test_writer().with_filter(filter)
        });
        let spans = spans_layer(IdsOnly::default()).with_filter(span_filter());
        let _already_installed = Registry::default().with(logs).with(spans).try_init();
        global::set_text_map_propagator(TraceContextPropagator::new());
    });
}

/// Keeps the tracer provider alive; dropping it flushes pending spans and shuts export down.
#[derive(Debug)]
#[must_use = "dropping the guard shuts span export down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// The tracer provider exporting spans, or `None` when no OTLP endpoint is configured.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            // The subscriber may be the thing failing: say it plainly on stderr.
            eprintln!("credmesh-telemetry: flushing spans at shutdown failed: {error}");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Json,
    Pretty,
}

/// What [`init`] reads from the environment map.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    service_name: String,
    log_filter: String,
    log_format: LogFormat,
    /// `None`: no exporter.
    otlp_endpoint: Option<String>,
}

impl Config {
    fn from_env(service: &str, env: &HashMap<String, String>) -> anyhow::Result<Config> {
        let get = |key: &str| {
            env.get(key)
                .map(|value| value.trim())
                .filter(|value| !value.is_empty())
        };

        let log_format = match get("CREDMESH_LOG_FORMAT") {
            None => LogFormat::Json,
            Some(format) if format.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(format) if format.eq_ignore_ascii_case("pretty") => LogFormat::Pretty,
            Some(other) => {
                bail!("CREDMESH_LOG_FORMAT={other:?} is not supported: use \"json\" or \"pretty\"")
            }
        };

        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || match get("OTEL_TRACES_EXPORTER") {
                None => false,
                Some(exporter) if exporter.eq_ignore_ascii_case("otlp") => false,
                Some(exporter) if exporter.eq_ignore_ascii_case("none") => true,
                Some(other) => {
                    bail!(
                        "OTEL_TRACES_EXPORTER={other:?} is not supported: use \"otlp\" or \"none\""
                    )
                }
            };
        let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|_| !disabled);
        if endpoint.is_some() {
            for key in [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ] {
                if let Some(protocol) = get(key).filter(|p| !p.eq_ignore_ascii_case("grpc")) {
                    bail!("{key}={protocol:?} is not supported: spans are exported over \"grpc\"");
                }
            }
        }

        Ok(Config {
            service_name: get("OTEL_SERVICE_NAME").unwrap_or(service).to_owned(),
            log_filter: get("RUST_LOG").unwrap_or("info").to_owned(),
            log_format,
            otlp_endpoint: endpoint.map(str::to_owned),
        })
    }
}

/// Which spans reach OpenTelemetry: `INFO` and above, except the transport and exporter
/// crates' own, which would otherwise trace the export of spans (a feedback loop) and flood
/// every trace with connection-level detail.
pub(crate) fn span_filter() -> Targets {
    Targets::new().with_default(LevelFilter::INFO).with_targets(
        ["h2", "hyper", "tonic", "tower", "opentelemetry"].map(|target| (target, LevelFilter::OFF)),
    )
}

/// The OpenTelemetry layer with `tracer`, as processes and tests install it. A span
/// carries its name, kind, fields, status and events, without the layer's optional
/// extras, which cost on every request: busy and idle times read the clock each time an
/// instrumented future is polled, and source location and thread add five attributes to
/// every span. Three spans (as a Verify call once had: server, handler, gateway; it now
/// has the server's only) cost 6.2 µs with the extras and 4.4 µs without, against 1.2 µs
/// for the registry alone (a release loop on this 2-core machine); with [`IdsOnly`] as
/// the tracer, 4.0 µs.
pub(crate) fn spans_layer<S, T>(tracer: T) -> OpenTelemetryLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
}

/// The subscriber and guard for `config`, not yet installed.
fn build(
    config: &Config,
) -> anyhow::Result<(impl Subscriber + Send + Sync + 'static, TelemetryGuard)> {
    let log_filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("RUST_LOG={:?} is not a valid filter", config.log_filter))?;
    let logs = match config.log_format {
        LogFormat::Json => fmt::layer()
            .fmt_fields(JsonWithTrace::fields())
            .event_format(JsonWithTrace::new())
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => fmt::layer()
            .pretty()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(&config.service_name, endpoint)?),
        None => None,
    };
    // Without an exporter, spans still get real ids, from a tracer that records nothing
    // (`ids`): the no-op tracer would give a request that arrives without `traceparent`
    // no trace at all, so its log lines would carry no `trace_id` and the next hop no
    // `traceparent`.
    let spans = match &provider {
        Some(provider) => spans_layer(provider.tracer(SCOPE)).boxed(),
        None => spans_layer(IdsOnly::default()).boxed(),
    };
    // Each SQL statement as a span of its own, only when spans leave the process.
    let statements = provider.as_ref().map(|provider| {
        StatementSpans::new(provider.tracer(SCOPE))
            .with_filter(span_filter().with_target(SQLX_TARGET, LevelFilter::TRACE))
    });

    let subscriber = Registry::default()
        .with(logs.with_filter(log_filter))
        .with(spans.with_filter(span_filter()))
        .with(statements);
    Ok((subscriber, TelemetryGuard { provider }))
}

fn otlp_provider(service_name: &str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("building the OTLP span exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_environment_means_json_info_logs_and_no_exporter() {
        let config = Config::from_env("license", &env(&[])).expect("valid");
        assert_eq!(
            config,
            Config {
                service_name: "license".into(),
                log_filter: "info".into(),
                log_format: LogFormat::Json,
                otlp_endpoint: None,
            }
        );
    }

    #[test]
    fn the_traces_endpoint_wins_over_the_general_one_and_the_service_name_can_be_overridden() {
        let config = Config::from_env(
            "license",
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
                ("OTEL_SERVICE_NAME", "license-eu"),
                ("CREDMESH_LOG_FORMAT", "Pretty"),
                ("RUST_LOG", "debug,h2=warn"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.otlp_endpoint.as_deref(), Some("http://traces:4317"));
        assert_eq!(config.service_name, "license-eu");
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.log_filter, "debug,h2=warn");
    }

    #[test]
    fn the_sdk_switches_turn_export_off() {
        for switch in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let config = Config::from_env(
                "verify",
                &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), switch]),
            )
            .expect("valid");
            assert_eq!(config.otlp_endpoint, None, "{switch:?}");
        }
    }

    #[test]
    fn unsupported_settings_are_rejected_with_the_variable_named() {
        for (pairs, variable) in [
            (vec![("CREDMESH_LOG_FORMAT", "xml")], "CREDMESH_LOG_FORMAT"),
            (
                vec![("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
        ] {
            let error = Config::from_env("verify", &env(&pairs)).expect_err("rejected");
            assert!(error.to_string().contains(variable), "{error}");
        }
    }

    #[test]
    fn an_invalid_rust_log_is_an_error_not_a_silent_default() {
        let config = Config::from_env("verify", &env(&[("RUST_LOG", "info,[")])).expect("parsed");
        let error = build(&config).err().expect("rejected");
        assert!(error.to_string().contains("RUST_LOG"), "{error}");
    }

    #[test]
    fn without_an_endpoint_a_root_span_still_gets_a_trace_id_for_the_logs() {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;

        let config = Config::from_env("verify", &env(&[])).expect("valid");
        let (subscriber, guard) = build(&config).expect("built");
        assert!(guard.provider().is_none(), "no exporter");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("grpc.server");
            let cx = span.context();
            let root = cx.span().span_context().clone();
            assert!(root.is_valid(), "a root span has real ids: {root:?}");
            let _entered = span.enter();
            let child = tracing::info_span!("store.get").context();
            assert_eq!(child.span().span_context().trace_id(), root.trace_id());
            assert_ne!(child.span().span_context().span_id(), root.span_id());
        });
    }

    #[test]
    fn without_an_endpoint_no_exporter_is_built() {
        let config = Config::from_env("verify", &env(&[])).expect("valid");
        let (_subscriber, guard) = build(&config).expect("built");
        assert!(guard.provider().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn with_an_endpoint_an_exporter_is_built_and_the_guard_shuts_it_down() {
        // Nothing listens there; the channel connects lazily, and with no spans there is
        // nothing to send, so shutting down returns at once.
        let config = Config::from_env(
            "verify",
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")]),
        )
        .expect("valid");
        let (_subscriber, guard) = build(&config).expect("built");
        assert!(guard.provider().is_some());
        drop(guard);
    }
}

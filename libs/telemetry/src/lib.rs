//! Logs, traces and metrics for every credmesh process, set up the same way everywhere.
//!
//! A service's `main` calls [`init`] once with the process environment and keeps the returned
//! [`TelemetryGuard`] alive until shutdown; its servers wrap their routes in
//! [`propagation::ServerTraceLayer`] and [`metrics::GrpcMetricsLayer`], and its gRPC clients are
//! built on a [`propagation::TracedChannel`] (a channel under [`propagation::ClientTraceLayer`];
//! `credmesh_runtime::connect` makes one), so one request is one trace across every service it
//! touches and every RPC shows up in `/metrics`. docs/OBSERVABILITY.md lists what operators see.
//!
//! ```ignore
//! let _telemetry = credmesh_telemetry::init("license", &std::env::vars().collect())?;
//! let metrics = Metrics::new();
//! Server::builder()
//!     .layer(ServerTraceLayer)                         // outermost: the span covers the rest
//!     .layer(GrpcMetricsLayer::new(metrics.clone()))
//!     .add_service(license_server)
//!     .serve_with_incoming_shutdown(incoming, shutdown).await?;
//! // clients: LicenseServiceClient::new(credmesh_runtime::connect(url, &ClientOptions::default())?)
//! ```
//!
//! # Layout
//!
//! - `init`: the global `tracing` subscriber (JSON or pretty logs, the OpenTelemetry layer, the
//!   optional OTLP exporter) and [`TelemetryGuard`].
//! - `statements`: each SQL statement of a store method as a client span with `db.query.text`.
//! - `json`: the JSON log line format, which adds the current `trace_id` and `span_id`.
//! - [`propagation`]: W3C trace context in and out of gRPC metadata / HTTP headers, and the
//!   server and client tower layers that open the `grpc.server` / `grpc.client` spans.
//! - [`metrics`]: the Prometheus registry behind `/metrics` and the gRPC RED metrics layer.
//! - [`names`]: the domain metrics' names, the contract with the chart's alerts and dashboard.
//! - [`body`]: the response body and future wrappers both layers share to see a call's final
//!   gRPC status, which for most responses only arrives in the trailers.

pub mod body;
mod grpc;
mod ids;
mod init;
mod json;
pub mod metrics;
pub mod names;
pub mod propagation;
mod statements;

pub use init::{TelemetryGuard, init, init_for_tests};

use std::fmt;

/// Wraps a secret so it can sit in a log field or a `Debug` derive without being printed.
///
/// Both `Debug` and `Display` print `[redacted]`:
/// `info!(client_secret = %Redacted(&secret), "client registered")`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Redacted;

    #[test]
    fn redacted_values_print_neither_in_debug_nor_in_display() {
        let secret = Redacted("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([redacted])");
    }
}

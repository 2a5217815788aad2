//! JSON log lines that carry the current trace: tracing-subscriber's JSON format, with
//! `"trace_id"` and `"span_id"` added at the front of the object whenever the event happens
//! inside a traced span, so logs and traces join on `trace_id` in any log backend.
//!
//! The ids come from the OpenTelemetry context that `tracing-opentelemetry` attaches when a span
//! is entered (or that [`crate::propagation::ServerTraceLayer`] attaches as a fallback), which
//! is the current span's context at the moment of the event.

use std::cell::RefCell;
use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format plus trace ids.
pub(crate) struct JsonWithTrace {
    inner: Format<Json>,
}

impl JsonWithTrace {
    pub(crate) fn new() -> Self {
        let inner = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false);
        JsonWithTrace { inner }
    }

    /// The field formatter to pair with this event format.
    pub(crate) fn fields() -> JsonFields {
        JsonFields::new()
    }
}

thread_local! {
    /// Reused line buffer: formatting a line allocates nothing once warmed up.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return self.inner.format_event(ctx, writer, event);
        }

        let splice = |line: &mut String, writer: &mut Writer<'_>| -> fmt::Result {
            line.clear();
            self.inner.format_event(ctx, Writer::new(line), event)?;
            match line.strip_prefix('{') {
                Some(rest) => write!(
                    writer,
                    "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                    span_context.trace_id(),
                    span_context.span_id()
                ),
                None => writer.write_str(line),
            }
        };
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => splice(&mut line, &mut writer),
            // Re-entered (an event logged while formatting one): use a fresh buffer.
            Err(_) => splice(&mut String::new(), &mut writer),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use serde_json::Value;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Registry, fmt};

    use super::JsonWithTrace;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(buffer: &Buffer) -> Vec<Value> {
        let bytes = buffer.0.lock().expect("buffer lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn log_lines_in_a_traced_span_carry_its_trace_and_span_ids_and_others_do_not() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = Registry::default()
            .with(
                fmt::layer()
                    .fmt_fields(JsonWithTrace::fields())
                    .event_format(JsonWithTrace::new())
                    .with_writer(move || writer.clone()),
            )
            .with(tracing_opentelemetry::layer());

        let remote = TraceContextPropagator::new().extract(&std::collections::HashMap::from([(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        )]));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before any span");
            let span = tracing::info_span!("grpc.server", rpc.method = "Say");
            span.set_parent(remote).expect("parent set before entering");
            let _entered = span.enter();
            tracing::info!(uscc = "91350100M000100Y43", "handled");
        });

        let lines = lines(&buffer);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[0]["message"], "before any span");

        let line = &lines[1];
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        // The layer's no-op tracer: the span carries its parent's context through unchanged.
        assert_eq!(line["span_id"], "00f067aa0ba902b7");
        assert_eq!(line["message"], "handled");
        assert_eq!(line["uscc"], "91350100M000100Y43");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"]["name"], "grpc.server");
        assert_eq!(line["span"]["rpc.method"], "Say");
    }
}

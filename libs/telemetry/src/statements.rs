//! Every SQL statement a store method runs, as its own client span with `db.query.text`.
//!
//! The stores mark each method with a client span carrying `db.system.name` (see
//! `credmesh_store::system_name`); a method may run several statements. sqlx reports each
//! finished statement as a `sqlx::query` event (its text, rows and elapsed time). This layer
//! turns those events into OpenTelemetry spans, children of the store method's span, named
//! after the statement's operation and carrying the semantic conventions' attributes:
//! `db.system.name`, `db.operation.name`, `db.query.text` and `db.response.returned_rows`.
//!
//! Statements are parameterised (`$1`, `?`): the text carries no values, so no personal data
//! reaches the exported span. Statements outside a store method's span (migrations at start)
//! are not exported: they would be root spans without a request.
//!
//! The layer is installed only when spans are exported; without an exporter sqlx does not
//! even format its events.

use std::fmt;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::field::{Field, Visit};
use tracing::span::Attributes;
use tracing::{Event, Id, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The target sqlx logs finished statements under.
pub(crate) const SQLX_TARGET: &str = "sqlx::query";

/// The longest statement text exported; longer ones are cut at a character boundary.
const MAX_QUERY_TEXT: usize = 4096;

/// The layer; see the module documentation.
pub(crate) struct StatementSpans {
    tracer: SdkTracer,
}

impl StatementSpans {
    pub(crate) fn new(tracer: SdkTracer) -> Self {
        StatementSpans { tracer }
    }
}

/// Stored in a span's extensions when the span names its database system.
struct DbSystem(String);

impl<S> Layer<S> for StatementSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.fields().field("db.system.name").is_none() {
            return;
        }
        let mut visitor = DbSystemVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(system), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(DbSystem(system));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != SQLX_TARGET {
            return;
        }
        let Some(system) = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<DbSystem>().map(|s| s.0.clone()))
        }) else {
            return;
        };
        let mut statement = StatementVisitor::default();
        event.record(&mut statement);
        let Some(text) = statement.text() else {
            return;
        };
        let operation = operation_name(&text);
        let end = SystemTime::now();
        let start = statement
            .elapsed
            .and_then(|elapsed| end.checked_sub(elapsed))
            .unwrap_or(end);

        // The store method's span is the current one: sqlx reports on the caller's task.
        let parent = tracing::Span::current().context();
        let mut attributes = vec![
            KeyValue::new("db.system.name", system),
            KeyValue::new("db.query.text", truncate(text, MAX_QUERY_TEXT)),
        ];
        if let Some(operation) = &operation {
            attributes.push(KeyValue::new("db.operation.name", operation.clone()));
        }
        if let Some(rows) = statement.rows_returned {
            attributes.push(KeyValue::new("db.response.returned_rows", rows as i64));
        }
        let mut span = self
            .tracer
            .span_builder(operation.unwrap_or_else(|| "statement".to_owned()))
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(end);
    }
}

/// The statement's first keyword, upper-cased (`SELECT`, `INSERT`, `WITH`…).
fn operation_name(text: &str) -> Option<String> {
    let word = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .find(|w| !w.is_empty())?;
    word.chars()
        .all(|c| c.is_ascii_alphabetic())
        .then(|| word.to_ascii_uppercase())
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

struct DbSystemVisitor(Option<String>);

impl Visit for DbSystemVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "db.system.name" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "db.system.name" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// The fields of sqlx's statement event: `summary` (the first words, the whole text when it
/// is short), `db.statement` (the whole text when the summary is not), `rows_returned` and
/// `elapsed_secs`.
#[derive(Default)]
struct StatementVisitor {
    summary: Option<String>,
    statement: Option<String>,
    rows_returned: Option<u64>,
    elapsed: Option<Duration>,
}

impl StatementVisitor {
    fn text(&self) -> Option<String> {
        let full = self
            .statement
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let text = full.or_else(|| {
            self.summary
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
        })?;
        Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

impl Visit for StatementVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = Some(value.to_owned()),
            "db.statement" => self.statement = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows_returned = Some(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "rows_returned" {
            self.rows_returned = u64::try_from(value).ok();
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" && value.is_finite() && value >= 0.0 {
            self.elapsed = Some(Duration::from_secs_f64(value));
        }
    }

    /// `elapsed` (a `Duration` printed for people) and anything else: not needed.
    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_the_first_keyword() {
        assert_eq!(operation_name("select 1").as_deref(), Some("SELECT"));
        assert_eq!(
            operation_name("  INSERT INTO t (a) VALUES ($1)").as_deref(),
            Some("INSERT")
        );
        assert_eq!(
            operation_name("WITH x AS (SELECT 1) SELECT * FROM x").as_deref(),
            Some("WITH")
        );
        assert_eq!(operation_name("(SELECT 1)").as_deref(), Some("SELECT"));
        assert_eq!(operation_name("$1"), None);
        assert_eq!(operation_name(""), None);
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let text = "选".repeat(2000); // 3 bytes each
        let cut = truncate(text, 4096);
        assert!(cut.len() <= 4096);
        assert!(cut.chars().all(|c| c == '选'));
    }
}

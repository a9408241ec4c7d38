//! JSON log lines for collectors: one object per event with its time, level,
//! target, message and fields, the fields of the spans it happened in, and the
//! `trace_id` of the job or request it belongs to at the top level (so a log
//! search by trace id finds every line of one job in every service).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::trace::TRACE_ID_FIELD;

/// A span's fields as JSON, kept in its extensions by [`SpanFields`].
struct Fields(Map<String, Value>);

/// Keeps every span's fields (as recorded so far) for [`JsonLines`].
#[derive(Debug, Default)]
pub(crate) struct SpanFields;

impl<S> tracing_subscriber::Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = JsonVisitor::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Fields(fields.0));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(Fields(map)) = extensions.get_mut::<Fields>() {
                let mut visitor = JsonVisitor(std::mem::take(map));
                values.record(&mut visitor);
                *map = visitor.0;
            }
        }
    }
}

/// The JSON event format (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        line.insert("timestamp".into(), Value::String(time));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().to_string()),
        );
        let mut spans = Map::new();
        let mut names = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            // Root first, so an inner span's field wins over an outer one's.
            for span in scope.from_root() {
                names.push(Value::String(span.name().to_string()));
                if let Some(Fields(fields)) = span.extensions().get::<Fields>() {
                    // `otel.*` fields steer OpenTelemetry (span name, kind,
                    // status); they say nothing a log reader needs.
                    spans.extend(
                        fields
                            .iter()
                            .filter(|(k, _)| !k.starts_with("otel."))
                            .map(|(k, v)| (k.clone(), v.clone())),
                    );
                }
            }
        }
        if let Some(trace_id) = spans.remove(TRACE_ID_FIELD) {
            line.insert(TRACE_ID_FIELD.into(), trace_id);
        }
        if !names.is_empty() {
            line.insert("spans".into(), Value::Array(names));
            line.insert("span".into(), Value::Object(spans));
        }
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        line.insert("fields".into(), Value::Object(fields.0));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects fields as JSON values.
#[derive(Default)]
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_the_trace_id_of_the_outer_span_and_every_field() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(SpanFields).with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "request",
                otel.kind = "server",
                request_id = "r1",
                trace_id = tracing::field::Empty
            );
            outer.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            let _outer = outer.enter();
            let inner = tracing::info_span!("call", provider = "gemini");
            let _inner = inner.enter();
            tracing::info!(status = 200_u64, "done");
        });
        let text =
            String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        let line: Value = serde_json::from_str(text.trim()).unwrap_or_default();
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{text}");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "done");
        assert_eq!(line["fields"]["status"], 200);
        assert_eq!(line["span"]["request_id"], "r1");
        assert_eq!(line["span"]["provider"], "gemini");
        assert!(line["span"].get("otel.kind").is_none(), "{text}");
        assert_eq!(line["spans"], serde_json::json!(["request", "call"]));
    }
}

//! OpenTelemetry: one trace per job across every service.
//!
//! Spans are `tracing` spans bridged by `tracing-opentelemetry`. The exporter
//! is OTLP over HTTP/protobuf and is configured only by the standard
//! variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` …).
//! Without an endpoint nothing is exported and nothing is sampled: no exporter
//! thread, no network, no span recorded; spans still get W3C ids (a handful of
//! spans per job) so logs carry a `trace_id` and the context still travels
//! from the gateway through every stage.
//!
//! The context crosses processes as a W3C `traceparent`: the client's header
//! into the gateway, the AMQP header (or the in-process message) between
//! stages, a field of every job event to the status service, and a header on
//! every call to an AI vendor.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and job-event field) carrying the context.
pub const TRACEPARENT: &str = "traceparent";
/// The span field that puts a span's trace id into every log line under it.
pub const TRACE_ID_FIELD: &str = "trace_id";

const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
const PROTOCOL_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];
const HTTP_PROTOBUF: &str = "http/protobuf";

/// Errors setting up the exporter.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot build the OTLP span exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Whether the environment asks for traces to be exported.
pub fn export_configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled
        && ENDPOINT_VARS
            .iter()
            .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
}

/// The tracer provider of this process: exporting over OTLP when configured
/// (see the module docs), else sampling nothing.
pub(crate) fn provider(default_service_name: &str) -> Result<SdkTracerProvider, TraceError> {
    if !export_configured() {
        return Ok(SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOff)
            .build());
    }
    if let Some(protocol) = PROTOCOL_VARS.iter().find_map(|var| std::env::var(var).ok())
        && protocol != HTTP_PROTOBUF
    {
        // Reported once the subscriber is up (see `crate::init`).
        eprintln!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported; exporting with {HTTP_PROTOBUF}");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let service_name_set = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty());
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !service_name_set {
        resource = resource.with_service_name(default_service_name.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The `tracing` layer bridging spans to `provider`.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("atelier"))
}

/// Makes `span` continue the trace of `traceparent` (a client's header, a
/// message's or an event's); an absent or invalid one leaves `span` a new
/// trace's root. Records the span's trace id for the logs either way. Call it
/// before the span is first entered.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    record_trace_id(span);
}

/// Puts `span`'s trace id in its `trace_id` field (declare it `Empty`), so
/// every log line under it names the trace.
pub fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record(TRACE_ID_FIELD, span_context.trace_id().to_string());
    }
}

/// The `traceparent` of the current span, to hand the trace on (a message, an
/// event, an outgoing HTTP request); `None` outside any traced span.
pub fn current_traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

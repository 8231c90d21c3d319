//! Tracing end to end (OpenTelemetry): the worker's `tracing` spans — a job (`action.run`,
//! with its queue wait), its instance (`instantiate`), its run (`run`) and each outside call
//! (`host.http`, `host.llm`, `host.sheets`) — exported with OTLP over HTTP (protobuf) to
//! `[telemetry] otlp_endpoint` when it is set (off by default), as children of the W3C
//! `traceparent` a job's NATS message carries; outbound requests carry `traceparent` when
//! `[telemetry] propagate` says so.
//!
//! Spans carry names, ids, kinds, statuses, hosts and durations: never a payload, an
//! argument, a URL's path or query, or a secret.

use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetrySection;

/// The exporter's provider, kept to flush what is buffered when the worker stops.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// Whether outbound requests carry `traceparent`.
static PROPAGATE: OnceLock<bool> = OnceLock::new();

/// The layer that exports the spans, when `[telemetry] otlp_endpoint` is set.
pub fn layer<S>(
    config: &TelemetrySection,
) -> anyhow::Result<Option<impl tracing_subscriber::Layer<S>>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let _ = PROPAGATE.set(config.propagate);
    if config.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.otlp_endpoint.clone())
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("action-worker");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Whether spans are exported (a job's parent is then read from its headers).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Exports what is buffered; the worker is stopping.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::debug!(%error, "the trace exporter did not shut down cleanly");
    }
}

/// A job's span, `action.run`: the child of the `traceparent` in its message's `headers`
/// (when spans are exported), with its queue wait and status recorded as they are known.
pub fn job_span(
    job_id: &str,
    action: &str,
    path: &'static str,
    headers: Option<&async_nats::HeaderMap>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "action.run",
        job_id = %job_id,
        action = %action,
        path,
        queue_wait_ms = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    adopt(&span, headers);
    span
}

/// Makes `span` (a job's) the child of the `traceparent` in `headers`, if any.
fn adopt(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let Some(headers) = headers.filter(|_| enabled()) else {
        return;
    };
    let parent = TraceContextPropagator::new().extract(&NatsHeaders(headers));
    let _ = span.set_parent(parent);
}

/// The `traceparent` (and `tracestate`) of the current span, for an outbound request, when
/// `[telemetry] propagate` is on and spans are exported.
pub fn outbound_headers() -> Vec<(String, String)> {
    if !enabled() || !PROPAGATE.get().copied().unwrap_or(false) {
        return Vec::new();
    }
    let mut headers = OutboundHeaders(Vec::new());
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    headers.0
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct OutboundHeaders(Vec<(String, String)>);

impl Injector for OutboundHeaders {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

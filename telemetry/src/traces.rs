//! OpenTelemetry traces, exported over OTLP/gRPC and configured the standard way
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` / `_ARG`, `OTEL_BSP_*`). Off unless an
//! endpoint is set.
//!
//! Each request gets one server span. An incoming W3C `traceparent` is continued (else a
//! trace starts), and the app receives a `traceparent` naming Warden's span as its parent.
//! Spans leave through the SDK's batch processor: a bounded queue (512 by default here,
//! sent in batches of 128; `OTEL_BSP_MAX_QUEUE_SIZE` and `_EXPORT_BATCH_SIZE` override) and
//! a thread of its own, so a slow or dead collector costs the request path nothing; spans
//! that do not fit are dropped (`warden_spans_ended_total` minus
//! `warden_spans_exported_total`, less what is still queued), and spans of failed exports
//! are counted (`warden_telemetry_dropped_total{kind="spans"}`).

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfig, BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use prometheus_client::metrics::counter::Counter;

/// The span exporter, counting the spans of exports that fail.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    exported: Counter,
    dropped: Counter,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        self.exported.inc_by(n);
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.dropped.inc_by(n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Tracing, when an OTLP endpoint is configured.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traces")
    }
}

impl Traces {
    /// From the `OTEL_*` environment; None when no endpoint is set. Call inside the
    /// Tokio runtime (the gRPC channel lives there).
    pub fn from_env(default_service_name: &str, exported: Counter, dropped: Counter) -> anyhow::Result<Option<Traces>> {
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if !set("OTEL_SERVICE_NAME") {
            resource = resource.with_service_name(default_service_name.to_owned());
        }
        let processor = BatchSpanProcessor::builder(Counting { inner: exporter, exported, dropped })
            .with_batch_config(batch_config(|k| std::env::var(k).ok()))
            .build();
        let provider =
            SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource.build()).build();
        let tracer = provider.tracer("warden-sidecar");
        Ok(Some(Traces { provider, tracer, propagator: TraceContextPropagator::new() }))
    }

    /// Starts a request's server span, continuing the caller's trace if it sent one.
    pub fn start(&self, headers: &HeaderMap, name: &'static str) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let span = self.tracer.span_builder(name).with_kind(SpanKind::Server).start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Starts a span inside `parent`'s trace that began at `start` (a tunnel, recorded
    /// when it closes).
    pub fn child(&self, parent: &Context, name: &'static str, start: std::time::SystemTime) -> Context {
        let span = self.tracer.span_builder(name).with_start_time(start).start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }

    /// Sets `traceparent` (and `tracestate`) for the upstream: Warden's span is the parent.
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        self.propagator.inject_context(cx, &mut HeaderInjector(headers));
    }

    /// The tracer, for spans other than requests' (the control plane's rollouts).
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Sends what is queued and stops (at shutdown).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// The span queue's size when `OTEL_BSP_MAX_QUEUE_SIZE` does not say: the SDK's 2,048
/// slots are allocated up front (~750 KiB, most of a sidecar's idle heap), and a 1 %
/// sample of tens of thousands of requests a second fills a quarter of 512 between
/// exports, since a batch leaves as soon as `EXPORT_BATCH` spans wait.
const QUEUE: usize = 512;
const EXPORT_BATCH: usize = 128;

/// The batch processor's settings: the `OTEL_BSP_*` environment where set, else Warden's
/// queue and batch sizes (`env`: how to read a variable).
fn batch_config(env: impl Fn(&str) -> Option<String>) -> BatchConfig {
    let mut config = BatchConfigBuilder::default();
    if env("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        config = config.with_max_queue_size(QUEUE);
    }
    if env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").is_none() {
        config = config.with_max_export_batch_size(EXPORT_BATCH);
    }
    config.build()
}

/// The trace id of a context's span, as hex; None when there is no valid span.
pub fn trace_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Whether the context's span is sampled and recording.
pub fn recording(cx: &Context) -> bool {
    cx.span().is_recording()
}

/// Ends a request's span with what was decided.
pub fn finish(cx: &Context, attributes: Vec<KeyValue>) {
    let span = cx.span();
    span.set_attributes(attributes);
    span.end();
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_small_unless_the_environment_says_otherwise() {
        // The SDK keeps its fields to itself; its Debug output says them.
        let ours = format!("{:?}", batch_config(|_| None));
        assert!(ours.contains("max_queue_size: 512") && ours.contains("max_export_batch_size: 128"), "{ours}");
        let theirs = format!("{:?}", batch_config(|k| Some(k.to_owned())));
        assert!(theirs.contains("max_queue_size: 2048"), "{theirs}");
    }
}

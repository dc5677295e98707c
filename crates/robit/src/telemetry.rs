//! OpenTelemetry traces: the OTLP exporter the standard `OTEL_*` variables configure, the
//! `tracing` layer that turns robit's spans into OpenTelemetry spans, and the W3C trace
//! context propagator the library crates reach through `robit_types::trace`.
//!
//! Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (and neither `OTEL_SDK_DISABLED=true` nor an `OTEL_TRACES_EXPORTER` other than `otlp`
//! says otherwise). The SDK itself reads the rest as its specification says: headers,
//! timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_BSP_*`. robit adds only defaults: `service.name` `robit` and `service.instance.id`
//! the replica's id (the holder name of its leases) when the environment names neither.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::Layer;

/// What the environment asks of trace export, when it asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelSettings {
    /// Where spans go, as configured (for the start-up log line; the exporter reads the
    /// variable itself, adding `/v1/traces` to the generic endpoint as the spec says).
    pub endpoint: String,
    /// `service.name` to set: `robit` unless `OTEL_SERVICE_NAME` or
    /// `OTEL_RESOURCE_ATTRIBUTES` names the service.
    pub service_name: Option<String>,
    /// Whether `service.instance.id` is robit's to set (the environment names none).
    pub instance_id: bool,
}

/// Reads the trace export settings from `env` (the process environment in production);
/// `None`: export is off.
pub fn settings(env: impl Fn(&str) -> Option<String>) -> Option<OtelSettings> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    // `otlp` is the spec's default and the only exporter built in; `none` (or anything else
    // this build cannot do) turns export off.
    if var("OTEL_TRACES_EXPORTER").is_some_and(|v| !v.eq_ignore_ascii_case("otlp")) {
        return None;
    }
    let endpoint =
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
    let attributes = var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let names = |key: &str| {
        attributes
            .split(',')
            .any(|pair| pair.split('=').next().is_some_and(|k| k.trim() == key))
    };
    let service_name =
        (var("OTEL_SERVICE_NAME").is_none() && !names("service.name")).then(|| "robit".to_string());
    Some(OtelSettings {
        endpoint,
        service_name,
        instance_id: !names("service.instance.id"),
    })
}

/// The tracer provider exporting over OTLP/HTTP with protobuf, batched.
pub fn otlp_provider(
    settings: &OtelSettings,
    replica: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(settings, replica))
        .build())
}

/// The SDK's resource (its detectors read `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`) with robit's defaults where the environment left a gap.
pub fn resource(settings: &OtelSettings, replica: &str) -> Resource {
    let mut builder = Resource::builder();
    if let Some(name) = &settings.service_name {
        builder = builder.with_service_name(name.clone());
    }
    if settings.instance_id {
        builder = builder.with_attribute(KeyValue::new("service.instance.id", replica.to_string()));
    }
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The layer that turns robit's spans into OpenTelemetry spans of `provider`. Only robit's
/// own crates at `info` and above: the span tree of an event, not every span of the HTTP,
/// database and platform client libraries underneath (their time shows as the gaps
/// between ours), and independent of the log filter, which may be `warn` in a terminal.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = Targets::new().with_target("robit", tracing::Level::INFO);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("robit"))
        .with_filter(filter)
}

/// Lets the library crates read and continue W3C trace context (`robit_types::trace`).
/// Idempotent: the first installation stays.
pub fn install_propagator() {
    robit_types::trace::install(Box::new(W3c(TraceContextPropagator::new())));
}

/// W3C Trace Context over the OpenTelemetry context the tracing layer keeps per span.
struct W3c(TraceContextPropagator);

impl robit_types::trace::Propagator for W3c {
    fn inject(&self, span: &tracing::Span) -> Vec<(String, String)> {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return Vec::new();
        }
        let mut headers = HashMap::new();
        self.0.inject_context(&cx, &mut headers);
        headers.into_iter().collect()
    }

    fn adopt(&self, span: &tracing::Span, headers: &[(String, String)]) {
        let headers: HashMap<String, String> = headers.iter().cloned().collect();
        let parent = self.0.extract(&headers);
        if !parent.span().span_context().is_valid() {
            return;
        }
        if let Err(e) = span.set_parent(parent) {
            tracing::debug!(error = %e, "a span could not continue its stored trace");
        }
    }
}

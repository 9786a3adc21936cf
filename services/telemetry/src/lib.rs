//! One place that sets up telemetry for every process: log lines (text or JSON) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, traces exported
//! over OTLP/gRPC with the standard `OTEL_*` variables (service name, resource attributes,
//! sampler, batch delays). W3C `traceparent` crosses every gRPC call through the tower layers in
//! [`propagation`]. `init` returns a guard that flushes pending spans when dropped.

pub mod propagation;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Keeps telemetry alive; dropping it exports what is buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn otlp_wanted() -> bool {
    let endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    endpoint.is_some()
        && env("OTEL_SDK_DISABLED").is_none_or(|v| v != "true")
        && env("OTEL_TRACES_EXPORTER").is_none_or(|v| v != "none")
}

/// The tracer provider, when OTLP export is configured. Must run inside a tokio runtime: the
/// exporter's gRPC channel lives on it.
fn provider(service: &str) -> Option<SdkTracerProvider> {
    if !otlp_wanted() {
        return None;
    }
    if let Some(protocol) = env("OTEL_EXPORTER_OTLP_PROTOCOL").filter(|p| p != "grpc") {
        eprintln!("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported; exporting over grpc");
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("telemetry: cannot build the OTLP exporter, traces are off: {e}");
            return None;
        }
    };
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the role's own name.
    let mut resource = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(format!("zenovay-{service}"));
    }
    Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
}

/// `filter` is an `EnvFilter` directive such as `info,sqlx=warn`. Logs go to stderr so that
/// stdout carries only what the process announces (its listening addresses). A second call in
/// one process (tests start several services in one) keeps the first set-up.
pub fn init(service: &str, filter: &str, format: LogFormat) -> Guard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = provider(service);
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("zenovay")));
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    Guard { provider: installed.is_ok().then_some(provider).flatten() }
}

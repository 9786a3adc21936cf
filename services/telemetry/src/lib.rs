//! One place that sets up telemetry for every process: log lines (text or JSON) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, traces exported
//! over OTLP (`grpc` or `http/protobuf`, per `OTEL_EXPORTER_OTLP_PROTOCOL`) with the standard `OTEL_*` variables (service name, resource attributes,
//! sampler, batch delays). Metrics are kept for `GET /metrics` (Prometheus text) and exported
//! over OTLP too when an endpoint is set; instruments come from `opentelemetry::global::meter`.
//! W3C `traceparent` crosses every gRPC call through the tower layers in [`propagation`]. `init`
//! returns a guard that flushes pending spans and metrics when dropped.

mod fields;
mod lines;
pub mod propagation;
pub mod redact;
mod tally;

pub use tally::Tally;

/// Bucket bounds of a histogram of durations in seconds, as OpenTelemetry's semantic conventions
/// advise for `http.server.request.duration`: the SDK's default bounds are for milliseconds, and
/// would put every request under 5 s in one bucket.
pub const SECONDS_BOUNDARIES: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

use std::sync::OnceLock;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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
    meters: Option<SdkMeterProvider>,
    /// Writes what is left of the log lines when dropped.
    _lines: Option<lines::Guard>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
        if let Some(meters) = self.meters.take()
            && let Err(e) = meters.shutdown()
        {
            eprintln!("telemetry: flushing metrics failed: {e}");
        }
    }
}

/// The registry behind `GET /metrics`, once `init` has run.
static PROMETHEUS: OnceLock<prometheus::Registry> = OnceLock::new();

/// This process's metrics in the Prometheus text format (empty before `init`).
pub fn prometheus_text() -> String {
    let Some(registry) = PROMETHEUS.get() else { return String::new() };
    let mut text = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut text) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    text
}

/// Metrics go to the Prometheus registry always, and over OTLP when an endpoint is configured.
fn meters(service: &str) -> Option<SdkMeterProvider> {
    let registry = prometheus::Registry::new();
    let prometheus = match opentelemetry_prometheus::exporter().with_registry(registry.clone()).build() {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("telemetry: cannot build the Prometheus exporter, metrics are off: {e}");
            return None;
        }
    };
    let _ = PROMETHEUS.set(registry);
    let mut builder = SdkMeterProvider::builder().with_reader(prometheus).with_resource(resource(service));
    if otlp_wanted() {
        let exporter = opentelemetry_otlp::MetricExporter::builder();
        let exporter = match protocol("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") {
            Protocol::Grpc => exporter.with_tonic().build(),
            Protocol::HttpProtobuf => {
                exporter.with_http().with_protocol(opentelemetry_otlp::Protocol::HttpBinary).build()
            }
        };
        match exporter {
            Ok(exporter) => builder = builder.with_periodic_exporter(exporter),
            Err(e) => eprintln!("telemetry: cannot build the OTLP metric exporter: {e}"),
        }
    }
    Some(builder.build())
}

fn resource(service: &str) -> Resource {
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the role's own name.
    let mut resource = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(format!("zenovay-{service}"));
    }
    resource.build()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// The signal's `OTEL_EXPORTER_OTLP_*_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else the
/// specification's default, `http/protobuf`.
fn protocol(signal_variable: &str) -> Protocol {
    match env(signal_variable).or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL")).as_deref() {
        Some("grpc") => Protocol::Grpc,
        None | Some("http/protobuf") => Protocol::HttpProtobuf,
        Some(other) => {
            eprintln!("telemetry: OTLP protocol {other:?} is not supported; using http/protobuf");
            Protocol::HttpProtobuf
        }
    }
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
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
        Protocol::Grpc => builder.with_tonic().build(),
        Protocol::HttpProtobuf => builder.with_http().with_protocol(opentelemetry_otlp::Protocol::HttpBinary).build(),
    };
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("telemetry: cannot build the OTLP exporter, traces are off: {e}");
            return None;
        }
    };
    Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource(service)).build())
}

/// Whether `directives` is a log filter `init` can take (`info,sqlx=warn`), and if not, why: a
/// filter that does not parse would otherwise be replaced without a word.
pub fn check_filter(directives: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    EnvFilter::try_new(directives).map(drop)
}

/// `directives` are an `EnvFilter`'s, such as `info,sqlx=warn`. Logs go to stderr so that
/// stdout carries only what the process announces (its listening addresses). A second call in
/// one process (tests start several services in one) keeps the first set-up.
pub fn init(service: &str, directives: &str, format: LogFormat) -> Guard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = provider(service);
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("zenovay")));
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: escape codes cost time per line and clutter files.
    let ansi = std::io::stderr().is_terminal();
    // Lines are written by a thread of their own, a few milliseconds' worth at once (`lines`).
    let (stderr, lines) = lines::start(std::io::stderr());
    let installed = if makes_call_spans(otel.is_some(), directives) {
        // Spans are made for traces, and the log lines skip those of calls.
        tracing_subscriber::registry()
            .with(filter)
            .with(otel)
            .with(lines_layer(format, ansi, stderr).with_filter(filter_fn(logged)))
            .try_init()
    } else {
        untraced(filter, format, ansi, stderr).try_init()
    };
    if installed.is_err() {
        return Guard { provider: None, meters: None, _lines: None };
    }
    let meters = meters(service);
    if let Some(meters) = &meters {
        global::set_meter_provider(meters.clone());
    }
    Guard { provider, meters, _lines: Some(lines) }
}

/// Whether the spans of calls are made: for traces, or for a log directive that names one
/// (`[db.query]=debug`).
fn makes_call_spans(traced: bool, directives: &str) -> bool {
    traced || CALL_SPANS.iter().any(|name| directives.contains(name))
}

/// The log lines' layer, in `format`.
fn lines_layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.fmt_fields(fields::TextFields).with_ansi(ansi).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_current_span(true).boxed(),
    }
}

/// Without traces (and without a log directive that names a call's span), nothing reads the
/// spans of calls, so they are not made at all: the filter is the whole subscriber's, not the
/// log lines' alone. A filter of one layer costs a lookup of the span for every time a span is
/// entered, left or closed: with the spans of calls made and filtered, 9 % of the all-in-one's
/// instructions per authorized request (README, "Benchmarks").
fn untraced<W>(filter: EnvFilter, format: LogFormat, ansi: bool, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter).with(filter_fn(logged));
    registry.with(lines_layer(format, ansi, writer))
}

/// What the log lines carry: every event, and of the spans only those that frame a request as
/// this process sees it (`http.server`, `grpc.server`, a tracker batch), which each line names.
/// The spans inside a request (gRPC and database calls) are for traces; formatting their fields
/// for lines that never show them was 5 % of policy's CPU samples (README, "Benchmarks").
fn logged(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_event() || !CALL_SPANS.contains(&metadata.name())
}

/// Spans of calls made while serving a request, of calls carried inside another, and of the
/// gateway's batched call to policy, whose failure each request's own line reports. Without
/// traces, a span named here is not made at all (`untraced`).
const CALL_SPANS: &[&str] =
    &["grpc.client", "db.query", "redis.evalsha", POLICY_BATCH_SPAN, propagation::CARRIED_SERVER_SPAN];

/// The span of the gateway's batched call to policy's `AuthorizeMany`.
pub const POLICY_BATCH_SPAN: &str = "policy.batch";

/// What a subscriber writes in a test.
#[cfg(test)]
mod capture {
    use std::sync::{Arc, Mutex};

    /// What `subscriber`, made to write into memory, wrote while `run` ran.
    pub fn written<S>(subscriber: impl FnOnce(Writer) -> S, run: impl FnOnce()) -> String
    where
        S: tracing::Subscriber + Send + Sync + 'static,
    {
        let writer = Writer::default();
        tracing::subscriber::with_default(subscriber(writer.clone()), run);
        let bytes = writer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[derive(Clone, Default)]
    pub struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl tracing_subscriber::fmt::MakeWriter<'_> for Writer {
        type Writer = Writer;
        fn make_writer(&self) -> Writer {
            self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::{Carried, GrpcTraceLayer};

    fn is_logged(make: impl FnOnce() -> tracing::Span) -> bool {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            logged(make().metadata().expect("the registry enables every span"))
        })
    }

    #[test]
    fn log_lines_name_a_call_s_server_span_but_not_its_client_span_or_a_carried_decision() {
        let path = "/zenovay.policy.v1.PolicyService/Authorize";
        assert!(is_logged(|| GrpcTraceLayer::SERVER.span(path)));
        assert!(!is_logged(|| GrpcTraceLayer::CLIENT.span(path)));
        assert!(!is_logged(|| Carried::server_span(path)));
    }

    #[test]
    fn without_traces_a_line_inside_a_call_names_the_request_s_span_and_not_the_call_s() {
        let text = capture::written(
            |writer| untraced(EnvFilter::new("info"), LogFormat::Text, false, writer),
            || {
                let server = GrpcTraceLayer::SERVER.span("/zenovay.policy.v1.PolicyService/AuthorizeMany");
                let _server = server.enter();
                let call = tracing::info_span!("redis.evalsha", db.system = "redis");
                assert!(call.is_disabled(), "a call's span is not made without traces");
                call.in_scope(|| tracing::warn!("rate-limit decision failed"));
            },
        );
        assert!(text.contains("grpc.server{"), "{text}");
        assert!(text.contains("rpc.method=\"AuthorizeMany\""), "{text}");
        assert!(text.contains("rate-limit decision failed"), "{text}");
        assert!(!text.contains("redis"), "{text}");
    }

    #[test]
    fn the_spans_of_calls_are_made_for_traces_or_for_a_directive_that_names_one() {
        assert!(!makes_call_spans(false, "info,sqlx=warn"));
        assert!(makes_call_spans(true, "info,sqlx=warn"));
        assert!(makes_call_spans(false, "info,[db.query]=debug"));
    }

    #[test]
    fn log_lines_leave_out_the_batched_call_to_policy_but_name_a_tracker_batch() {
        assert!(!is_logged(|| tracing::info_span!(POLICY_BATCH_SPAN, decisions = 1)));
        assert!(is_logged(|| tracing::info_span!("ingest.batch", events = 1)));
    }
}

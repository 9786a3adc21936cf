//! One place that sets up logging for every process. `init` returns a guard that flushes on drop.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Keeps telemetry alive; dropping it flushes what is buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Guard(());

/// `filter` is an `EnvFilter` directive such as `info,sqlx=warn`. Logs go to stderr so that
/// stdout carries only what the process announces (its listening addresses).
pub fn init(filter: &str, format: LogFormat) -> Guard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_span_events(FmtSpan::NONE);
    // A second init (tests start several services in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Guard(())
}

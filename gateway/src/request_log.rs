//! The log line of each request, and the marker that quiets it: apart from the crate root so that
//! a route that marks its response does not depend on the root that wires the routes.

/// Marks a response whose log line is written at debug level: accepted tracker events, which
/// arrive by the thousand per second and are counted by the request metric anyway.
#[derive(Clone, Copy)]
pub(crate) struct QuietLog;

/// One log line per request.
pub(crate) fn log_response<B>(res: &axum::http::Response<B>, latency: std::time::Duration, span: &tracing::Span) {
    let status = res.status().as_u16();
    span.record("http.response.status_code", status);
    // Whole microseconds, so that a line shows `0.099`, not `0.09943800000000001`.
    let latency_ms = latency.as_micros() as f64 / 1000.0;
    if res.extensions().get::<QuietLog>().is_some() {
        tracing::debug!(status, latency_ms, "request");
    } else {
        tracing::info!(status, latency_ms, "request");
    }
}

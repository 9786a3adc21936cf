//! The gateway's instruments (OpenTelemetry semantic-convention names where there is one).

use std::sync::OnceLock;

use common::cache::LookupResult;
use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram};
use telemetry::Tally;

pub struct Metrics {
    /// `http.server.request.duration`, seconds, by route, method and status.
    pub requests: Histogram<f64>,
    /// Authorization decisions by outcome (`allowed` or the error code) and source.
    pub decisions: Counter<u64>,
    /// Verified-key cache lookups by result (`hit`, `refresh`, `miss`, `untrusted`).
    pub key_cache: Tally,
    /// Website-list cache lookups by result (`hit`, `refresh`, `miss`, `untrusted`).
    pub website_cache: Tally,
}

/// Made on first use, after telemetry is set up.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = global::meter("zenovay-gateway");
        Metrics {
            requests: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_boundaries(telemetry::SECONDS_BOUNDARIES.to_vec())
                .with_description("Duration of HTTP requests")
                .build(),
            decisions: meter
                .u64_counter("zenovay.authorization.decisions")
                .with_description("Authorization decisions")
                .build(),
            key_cache: Tally::build(
                meter
                    .u64_observable_counter("zenovay.key_cache.lookups")
                    .with_description("Verified-key cache lookups"),
                "result",
                LookupResult::NAMES,
            ),
            website_cache: Tally::build(
                meter
                    .u64_observable_counter("zenovay.website_cache.lookups")
                    .with_description("Website-list cache lookups"),
                "result",
                LookupResult::NAMES,
            ),
        }
    })
}

pub fn decision(outcome: &'static str, source: &'static str) {
    metrics().decisions.add(1, &[KeyValue::new("outcome", outcome), KeyValue::new("source", source)]);
}

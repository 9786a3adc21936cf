//! The names of the statistics vocabulary the external API accepts (docs/behaviour.md#external-rest-api):
//! the handlers validate against these lists and the OpenAPI document enumerates them.

/// Range of `/analytics`.
pub const RANGES: &[&str] = &["24h", "7d", "30d", "90d", "1y"];

/// Plausible's periods, with ours (`24h`, `1y`).
pub const PERIODS: &[&str] = &[
    "day", "24h", "7d", "28d", "30d", "90d", "91d", "month", "6mo", "12mo", "year", "1y", "all", "realtime", "custom",
];

/// Buckets of a v1 time series.
pub const INTERVALS: &[&str] = &["hour", "date", "day", "week", "month"];

pub const METRICS: &[&str] = &[
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "time_on_page",
    "scroll_depth",
    "conversion_rate",
    "percentage",
    "total_revenue",
    "average_revenue",
];

/// Properties to break down or filter by; custom properties are `event:props:<name>` besides.
pub const PROPERTIES: &[&str] = &[
    "event:page",
    "event:name",
    "event:goal",
    "event:hostname",
    "visit:entry_page",
    "visit:exit_page",
    "visit:source",
    "visit:referrer",
    "visit:channel",
    "visit:utm_source",
    "visit:utm_medium",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:country",
    "visit:device",
    "visit:browser",
    "visit:browser_version",
    "visit:os",
    "visit:os_version",
];

/// Time dimensions of a query, besides the properties.
pub const TIME_DIMENSIONS: &[&str] = &["time:hour", "time:day", "time:week", "time:month"];

/// Dimensions of a query: the properties, then time.
pub fn dimensions() -> impl Iterator<Item = &'static str> {
    PROPERTIES.iter().chain(TIME_DIMENSIONS).copied()
}

/// Comparisons of an aggregate.
pub const COMPARISONS: &[&str] = &["previous_period"];

/// Prefix of a custom property.
pub const PROPS: &str = "event:props:";

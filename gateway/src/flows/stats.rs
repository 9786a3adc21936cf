//! Statistics use cases over analytics' `Query`: the overview and realtime that every face shows
//! (REST, the drop-in, MCP, the console), and the helpers that turn rows into figures.

use proto::analytics::v1 as anpb;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::schema::Range;
use crate::state::AppState;
use crate::time::rfc3339;
use crate::vocabulary::{PROPS, named};
use anpb::{Interval, Metric, NamedPeriod, Property};

pub(crate) async fn run(state: &AppState, request: anpb::QueryRequest) -> ApiResult<anpb::QueryResponse> {
    Ok(state.analytics.clone().query(request).await?.into_inner())
}

/// Whether a query's totals are compared with the period before (Plausible v1's `compare`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Nothing,
    PreviousPeriod,
}

/// A query's answer, with the totals of the period before when compared.
pub(crate) struct Compared {
    pub(crate) answer: anpb::QueryResponse,
    pub(crate) before: Option<Vec<f64>>,
}

/// A Stats API query (Plausible's v1 and v2, in the envelope and the drop-in), parsed by its
/// face: the answer, then, when compared, the totals of the period of the same length before.
pub(crate) async fn stats_query(
    state: &AppState,
    request: anpb::QueryRequest,
    compare: Comparison,
) -> ApiResult<Compared> {
    let previous = (compare == Comparison::PreviousPeriod)
        .then(|| anpb::QueryRequest { previous_period: true, ..request.clone() });
    let answer = run(state, request).await?;
    let before = match previous {
        Some(previous) => Some(totals(&run(state, previous).await?)),
        None => None,
    };
    Ok(Compared { answer, before })
}

pub(crate) fn query(website_id: &str, period: &anpb::Period, metrics: &[Metric]) -> anpb::QueryRequest {
    anpb::QueryRequest {
        website_id: website_id.to_owned(),
        metrics: metrics.iter().map(|m| m.name().to_owned()).collect(),
        period: Some(period.clone()),
        ..Default::default()
    }
}

pub(crate) fn breakdown_of(
    website_id: &str,
    period: &anpb::Period,
    dimension: &str,
    metrics: &[Metric],
    limit: u32,
) -> anpb::QueryRequest {
    anpb::QueryRequest { dimensions: vec![dimension.into()], limit, ..query(website_id, period, metrics) }
}

/// A metric of a result row: revenue as Plausible's `{short, long, value}` in the row's
/// currency, the rest as [`metric_value`].
pub(crate) fn row_metric(metric: &str, value: f64, currency: &str) -> Value {
    match Metric::from_name(metric) {
        Some(Metric::TotalRevenue | Metric::AverageRevenue) => crate::views::revenue(value, currency),
        _ => metric_value(metric, value),
    }
}

/// Counts are integers; `views_per_visit` and the shares (`conversion_rate`,
/// `group_conversion_rate`, `percentage`) have
/// decimals. A metric with no value (time on page or scroll depth without engagement) is null,
/// as in Plausible.
pub(crate) fn metric_value(metric: &str, value: f64) -> Value {
    use Metric as M;
    match Metric::from_name(metric) {
        _ if value.is_nan() => Value::Null,
        Some(M::TotalRevenue | M::AverageRevenue) => json!(value),
        Some(M::ViewsPerVisit | M::ConversionRate | M::GroupConversionRate | M::Percentage) => json!(value),
        _ => json!(value as i64),
    }
}

/// `visit:source` → `source`, `event:props:plan` → `plan`: how Plausible names a property in
/// result rows.
pub(crate) fn short_name(dimension: &str) -> &str {
    match dimension.strip_prefix(PROPS) {
        Some(name) => name,
        None => dimension.split_once(':').map_or(dimension, |(_, name)| name),
    }
}

/// Plausible's comparison: percentage change, or the difference in points for a rate.
pub(crate) fn change(metric: &str, before: f64, now: f64) -> i64 {
    if Metric::from_name(metric) == Some(Metric::BounceRate) {
        return (now - before) as i64;
    }
    if before == 0.0 {
        return if now > 0.0 { 100 } else { 0 };
    }
    ((now - before) / before * 100.0).round() as i64
}

/// Rows of a query of at most one dimension as `[{"<name>": value, "<metric>": n, …}]`; with an
/// empty `name`, metrics only (totals).
pub(crate) fn top(answer: &anpb::QueryResponse, name: &str, metrics: &[impl AsRef<str>]) -> Vec<Map<String, Value>> {
    let names: &[&str] = if name.is_empty() { &[] } else { &[name] };
    rows_named(answer, names, metrics)
}

/// Rows as `[{"<name>": value, …, "<metric>": n, …}]`, the dimensions' values under `names`.
pub(crate) fn rows_named(
    answer: &anpb::QueryResponse,
    names: &[&str],
    metrics: &[impl AsRef<str>],
) -> Vec<Map<String, Value>> {
    answer
        .rows
        .iter()
        .map(|row| {
            let mut entry = Map::new();
            for (i, name) in names.iter().enumerate() {
                entry.insert((*name).to_owned(), json!(row.dimensions.get(i).cloned().unwrap_or_default()));
            }
            for (metric, value) in metrics.iter().zip(&row.metrics) {
                entry.insert(metric.as_ref().to_owned(), row_metric(metric.as_ref(), *value, &row.currency));
            }
            entry
        })
        .collect()
}

/// The time dimension of a time series over the named `period` when no interval is asked for,
/// as Plausible's v1 chooses it: hours for a day, months for `6mo`, `12mo` and `year`, what the
/// period turns out to hold for `all` (analytics chooses), days otherwise (`custom` included).
pub(crate) fn default_time(period: &str) -> &'static str {
    match NamedPeriod::from_name(period) {
        Some(NamedPeriod::All) => proto::vocabulary::AUTO_TIME,
        Some(NamedPeriod::Day | NamedPeriod::NamedPeriod24h) => Interval::Hour.dimension(),
        Some(NamedPeriod::NamedPeriod6mo | NamedPeriod::NamedPeriod12mo | NamedPeriod::Year) => {
            Interval::Month.dimension()
        }
        _ => Interval::Day.dimension(),
    }
}

/// The row of each bucket of the period (analytics fills them all, in order): the answer's, or
/// for a bucket without events (no visitors) the row Plausible gives it, whose counts and rates
/// are 0 and whose averages (visit duration, scroll depth, time on page, revenue) are null.
/// `metrics` are those asked for; the answer's rows hold the visitors after them when not asked.
pub(crate) fn timeseries_rows(answer: &anpb::QueryResponse, metrics: &[String]) -> Vec<Map<String, Value>> {
    let visitors = metrics.iter().position(|m| m == anpb::Metric::Visitors.name()).unwrap_or(metrics.len());
    let empty = |mut row: Map<String, Value>| {
        for metric in metrics {
            let value = match anpb::Metric::from_name(metric) {
                Some(
                    anpb::Metric::VisitDuration
                    | anpb::Metric::ScrollDepth
                    | anpb::Metric::TimeOnPage
                    | anpb::Metric::TotalRevenue
                    | anpb::Metric::AverageRevenue,
                ) => Value::Null,
                _ => metric_value(metric, 0.0),
            };
            row.insert(metric.clone(), value);
        }
        row
    };
    let rows = top(answer, "date", metrics).into_iter().zip(&answer.rows);
    rows.map(|(row, raw)| if raw.metrics.get(visitors) == Some(&0.0) { empty(row) } else { row }).collect()
}

/// The first row's figures: totals of a query without dimensions.
pub(crate) fn totals(answer: &anpb::QueryResponse) -> Vec<f64> {
    answer.rows.first().map(|r| r.metrics.clone()).unwrap_or_default()
}

/// A count of a row; counts are whole.
pub(crate) fn count(row: &anpb::Row, i: usize) -> u64 {
    row.metrics.get(i).copied().unwrap_or_default() as u64
}

/// The value of a row's only dimension.
pub(crate) fn label(row: &anpb::Row) -> String {
    row.dimensions.first().cloned().unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    website_id: String,
    #[schema(value_type = Range)]
    range: String,
    #[schema(format = DateTime)]
    from: String,
    /// Exclusive.
    #[schema(format = DateTime)]
    to: String,
    visitors: u64,
    visits: u64,
    pageviews: u64,
    /// Percent of visits that hold exactly one event other than `engagement` (a pageview followed
    /// by a custom event is not a bounce).
    bounce_rate: u64,
    /// Mean seconds from a visit's first to its last event.
    visit_duration: u64,
    /// Hourly for `24h`, else daily; zero-filled.
    series: Vec<SeriesPoint>,
    /// The top 10.
    top_countries: Vec<CountryVisitors>,
}

#[derive(Serialize, ToSchema)]
pub struct SeriesPoint {
    /// `YYYY-MM-DD`, or `YYYY-MM-DD HH:00:00` for hours, in the site's time zone.
    date: String,
    visitors: u64,
    pageviews: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CountryVisitors {
    /// ISO 3166-1 alpha-2 code; empty when the visitor's country is not known.
    country: String,
    visitors: u64,
}

/// Totals over `range` (a range of `/analytics`), a zero-filled series (hourly over 24h, else
/// daily) and the top `limit` countries.
pub async fn overview(state: &AppState, website_id: &str, range: NamedPeriod, limit: u32) -> ApiResult<Overview> {
    use Metric as M;
    // Pageviews add up across time buckets, so their total is the series': the totals then
    // need no count of events, which analytics answers from visits alone (README, "Events and
    // statistics").
    const TOTALS: [Metric; 4] = [M::Visitors, M::Visits, M::BounceRate, M::VisitDuration];
    let interval = if range == NamedPeriod::NamedPeriod24h { Interval::Hour } else { Interval::Day };
    let period = &named(range);
    let series = anpb::QueryRequest {
        dimensions: vec![interval.dimension().into()],
        fill_time: true,
        ..query(website_id, period, &[Metric::Visitors, Metric::Pageviews])
    };
    let (answer, series, countries) = tokio::try_join!(
        run(state, query(website_id, period, &TOTALS)),
        run(state, series),
        run(state, breakdown_of(website_id, period, Property::VisitCountry.name(), &[Metric::Visitors], limit)),
    )?;
    let values = totals(&answer);
    let value = |i: usize| values.get(i).copied().unwrap_or_default() as u64;
    let pageviews = series.rows.iter().map(|r| count(r, 1)).sum();
    Ok(Overview {
        website_id: website_id.to_owned(),
        range: range.name().to_owned(),
        from: rfc3339(answer.from_unix_ms),
        to: rfc3339(answer.to_unix_ms),
        visitors: value(0),
        visits: value(1),
        pageviews,
        bounce_rate: value(2),
        visit_duration: value(3),
        series: series
            .rows
            .iter()
            .map(|r| SeriesPoint { date: label(r), visitors: count(r, 0), pageviews: count(r, 1) })
            .collect(),
        top_countries: countries
            .rows
            .iter()
            .map(|r| CountryVisitors { country: label(r), visitors: count(r, 0) })
            .collect(),
    })
}

/// Visitors and pageviews of the last 5 minutes.
pub struct RealtimeTotals {
    pub visitors: u64,
    pub pageviews: u64,
    from_unix_ms: i64,
    to_unix_ms: i64,
}

pub async fn realtime_totals(state: &AppState, website_id: &str) -> ApiResult<RealtimeTotals> {
    let answer =
        run(state, query(website_id, &named(NamedPeriod::Realtime), &[Metric::Visitors, Metric::Pageviews])).await?;
    let values = totals(&answer);
    let value = |i: usize| values.get(i).copied().unwrap_or_default() as u64;
    Ok(RealtimeTotals {
        visitors: value(0),
        pageviews: value(1),
        from_unix_ms: answer.from_unix_ms,
        to_unix_ms: answer.to_unix_ms,
    })
}

#[derive(Serialize, ToSchema)]
pub struct Realtime {
    /// Of the last 5 minutes.
    visitors: u64,
    pageviews: u64,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    /// The top 10.
    top_pages: Vec<PageVisitors>,
}

#[derive(Serialize, ToSchema)]
pub struct PageVisitors {
    page: String,
    visitors: u64,
}

/// The last 5 minutes: totals and the top 10 pages.
pub async fn realtime(state: &AppState, website_id: &str) -> ApiResult<Realtime> {
    let (totals, pages) = tokio::try_join!(
        realtime_totals(state, website_id),
        run(
            state,
            breakdown_of(
                website_id,
                &named(NamedPeriod::Realtime),
                Property::EventPage.name(),
                &[Metric::Visitors],
                10
            )
        ),
    )?;
    Ok(Realtime {
        visitors: totals.visitors,
        pageviews: totals.pageviews,
        from: rfc3339(totals.from_unix_ms),
        to: rfc3339(totals.to_unix_ms),
        top_pages: pages.rows.iter().map(|r| PageVisitors { page: label(r), visitors: count(r, 0) }).collect(),
    })
}

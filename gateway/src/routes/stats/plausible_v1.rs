//! Plausible's Stats API v1 (`/stats/aggregate`, `/stats/timeseries`, `/stats/breakdown`) inside
//! our envelope; [`v1`] also answers the drop-in's bodies.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use common::access::Scope;
use proto::analytics::v1 as anpb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::input::{Face, goal_not_configured, plausible_website, renamed, repeated, unconfigured_goal};
use crate::auth::Credentials;
use crate::envelope::{Paged, Pagination, Success, paged, parse_query};
use crate::error::invalid;
use crate::error::{ApiError, ApiResult};
use crate::filters::v1_filters;
use crate::flows::access::authorized_website;
use crate::flows::stats::{
    self, Compared, Comparison, change, row_metric, rows_named, short_name, stats_query, totals,
};
use crate::rules;
use crate::schema::{AnyProperty, Compare, Interval, StatsParams};
use crate::state::AppState;
use crate::vocabulary::{self, CUSTOM_PERIOD, INTERVALS, V1_DAY};
use common::ErrorCode;
use proto::vocabulary::{PROPS, TIME};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(aggregate)).routes(routes!(timeseries)).routes(routes!(breakdown))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V1Params {
    #[serde(default)]
    site_id: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default, deserialize_with = "trimmed_days")]
    date: Option<String>,
    #[serde(default)]
    metrics: Option<String>,
    #[serde(default)]
    property: Option<String>,
    #[serde(default)]
    filters: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    compare: Option<String>,
}

/// `date` with each of its days trimmed, as Plausible reads `2026-03-01, 2026-03-02`.
fn trimmed_days<'de, D: serde::Deserializer<'de>>(date: D) -> Result<Option<String>, D::Error> {
    let date = <Option<String> as serde::Deserialize>::deserialize(date)?;
    Ok(date.map(|date| date.split(',').map(str::trim).collect::<Vec<_>>().join(",")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum V1 {
    Aggregate,
    Timeseries,
    Breakdown,
}

/// The goal filters whose goals v1 checks the site has (Plausible's checks every one).
const V1_GOAL_CHECKS: &[&str] = &["is", "is_not"];

/// What every v1 endpoint reads the same way: site, metrics, date, filters and period.
/// The query v1's parameters ask for, of a site the caller names once it is known.
fn v1_common(p: &V1Params) -> ApiResult<anpb::QueryRequest> {
    let metrics: Vec<String> =
        p.metrics.as_deref().unwrap_or(anpb::Metric::Visitors.name()).split(',').map(|m| m.trim().to_owned()).collect();
    // As Plausible: each metric once.
    if let Some(twice) = repeated(&metrics) {
        return Err(invalid("metrics", format!("{twice:?} is given twice")));
    }
    if let Some(unknown) = metrics.iter().find(|m| !vocabulary::V1_METRICS.contains(&m.as_str())) {
        return Err(invalid(
            "metrics",
            format!("unknown metric {unknown:?}; use {}", vocabulary::V1_METRICS.join(", ")),
        ));
    }
    if let Some(date) = &p.date
        && !rules::is_v1_date(date)
    {
        return Err(invalid("date", "must be YYYY-MM-DD, or YYYY-MM-DD,YYYY-MM-DD for period=custom"));
    }
    let filters = v1_filters(p.filters.as_deref().unwrap_or_default())?;
    let meaning = anpb::PeriodMeaning::PlausibleV1;
    let (period, end_day) = vocabulary::period(period_name(p), p.date.as_deref().unwrap_or_default(), meaning)?;
    Ok(anpb::QueryRequest {
        metrics,
        filters,
        period: Some(period),
        end_day,
        period_meaning: meaning.into(),
        ..Default::default()
    })
}

/// The period asked for; Plausible's default is 30 days.
fn period_name(p: &V1Params) -> &str {
    p.period.as_deref().unwrap_or(anpb::NamedPeriod::NamedPeriod30d.name())
}

fn not_here(name: &str, given: bool) -> ApiResult<()> {
    if given { Err(invalid(name, "is not a parameter of this endpoint")) } else { Ok(()) }
}

fn v1_request(kind: V1, p: &V1Params, face: Face) -> ApiResult<anpb::QueryRequest> {
    if face == Face::Plausible
        && let Some(text) = plausible_refusal(kind, p)
    {
        return Err(ApiError::new(ErrorCode::Validation, text));
    }
    let mut request = v1_common(p)?;
    metric_rules(kind, p, &request.filters, &request.metrics).map_err(|text| face.refused("metrics", text))?;
    match kind {
        V1::Aggregate => {
            not_here("property", p.property.is_some())?;
            not_here("interval", p.interval.is_some())?;
            not_here("limit", p.limit.is_some())?;
            not_here("page", p.page.is_some())?;
        }
        V1::Timeseries => {
            not_here("property", p.property.is_some())?;
            not_here("compare", p.compare.is_some())?;
            request.dimensions = vec![time_dimension(period_name(p), p.interval.as_deref())?.into()];
            request.fill_time = true;
        }
        V1::Breakdown => {
            not_here("compare", p.compare.is_some())?;
            not_here("interval", p.interval.is_some())?;
            let property = p.property.clone().ok_or_else(|| invalid("property", "is required"))?;
            if property.starts_with(TIME) {
                return Err(invalid("property", "use /stats/timeseries for time"));
            }
            let limit = p.limit.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(invalid("limit", "must be 1 to 1000"));
            }
            let page = p.page.unwrap_or(1);
            if !(1..=rules::INT32_MAX).contains(&page) {
                return Err(invalid("page", format!("must be 1 to {}", rules::INT32_MAX)));
            }
            request.dimensions = with_family(property.clone());
            // As Plausible: by the first metric other than `time_on_page` (the visitors, added to
            // the answer, when there is none), then by the property (a version alone, without
            // its browser or OS).
            let time_on_page = anpb::Metric::TimeOnPage.name();
            if request.metrics.iter().all(|m| m == time_on_page) {
                request.metrics.push(anpb::Metric::Visitors.name().to_owned());
            }
            let first = request.metrics.iter().find(|m| *m != time_on_page).cloned().unwrap_or_default();
            let by = |key: &str, descending| anpb::Order { key: key.to_owned(), descending };
            request.order_by = vec![by(&first, true), by(&property, false)];
            request.limit = limit;
            request.offset = (page - 1).saturating_mul(limit);
        }
    }
    // Plausible's v1 compares with `previous_period` alone and ignores any other value; ours says so.
    if let Some(compare) = &p.compare
        && compare != "previous_period"
        && face == Face::Ours
    {
        return Err(invalid("compare", "only previous_period is supported"));
    }
    Ok(request)
}

/// What Plausible's v1 refuses before anything else, in its order and words (docs/behaviour.md,
/// "Plausible fidelity"): period, property, metrics, limit.
fn plausible_refusal(kind: V1, p: &V1Params) -> Option<String> {
    const DOCS: &str = "https://plausible.io/docs/stats-api";
    if let Some(period) = &p.period {
        let known = vocabulary::period(period, p.date.as_deref().unwrap_or_default(), anpb::PeriodMeaning::PlausibleV1);
        if known.is_err_and(|e| e.field.as_deref() == Some("period")) {
            return Some(format!(
                "Error parsing `period` parameter: invalid period `{period}`. \
                 Please find accepted values in our docs: {DOCS}#time-periods"
            ));
        }
    }
    let custom = p.period.as_deref() == Some(CUSTOM_PERIOD);
    let two_days = |date: &str| date.split_once(',').is_some_and(|(a, b)| rules::is_day(a) && rules::is_day(b));
    match p.date.as_deref() {
        None if custom => {
            return Some(format!(
                "The `date` parameter is required when using a custom period. See {DOCS}#time-periods"
            ));
        }
        Some(date) if custom && !two_days(date) => {
            return Some(format!(
                "Invalid format for `date` parameter. When using a custom period, please include two ISO-8601 \
                 formatted dates joined by a comma. See {DOCS}#time-periods"
            ));
        }
        Some(date) if !custom && !rules::is_day(date) => {
            // Plausible's words come from Elixir's `Date.from_iso8601`, which tells a day that
            // does not exist from a text that is not a day.
            let reason = if rules::is_day_shaped(date) { "invalid_date" } else { "invalid_format" };
            return Some(format!(
                "Error parsing `date` parameter: {reason}. Please specify a valid date in ISO-8601 format."
            ));
        }
        _ => {}
    }
    if kind == V1::Timeseries
        && let Some(interval) = &p.interval
        && time_dimension(period_name(p), Some(interval)).is_err()
    {
        let known: Vec<String> = [V1_DAY, "hour", "week", "month"].iter().map(|i| format!("`{i}`")).collect();
        return Some(format!(
            "Error parsing `interval` parameter: invalid interval `{interval}`. Valid intervals are {}",
            known.join(", ")
        ));
    }
    if kind == V1::Breakdown {
        let Some(property) = &p.property else {
            return Some(
                "The `property` parameter is required. Please provide at least one property to show a breakdown by."
                    .into(),
            );
        };
        let custom = property.strip_prefix(PROPS).is_some_and(|name| !name.is_empty());
        if !custom && anpb::Property::from_name(property).is_none() {
            return Some(format!(
                "Invalid property '{property}'. Please provide a valid property for the breakdown endpoint: \
                 {DOCS}#properties"
            ));
        }
    }
    // A filter's property is what comes before its operator.
    let filters = p.filters.as_deref().unwrap_or_default().split(';').filter(|f| !f.trim().is_empty());
    for property in filters.filter_map(|f| f.find(['=', '!', '~']).map(|end| f[..end].trim())) {
        let custom = property.strip_prefix(PROPS).is_some_and(|name| !name.is_empty());
        if !custom && anpb::Property::from_name(property).is_none() {
            return Some(format!(
                "Invalid filter property '{property}'. Please provide a valid filter property: {DOCS}#properties"
            ));
        }
    }
    let metrics: Vec<&str> = p.metrics.as_deref().unwrap_or(anpb::Metric::Visitors.name()).split(',').collect();
    if repeated(&metrics).is_some() {
        return Some("Metrics cannot be queried multiple times.".into());
    }
    if let Some(unknown) = metrics.iter().find(|m| !vocabulary::V1_METRICS.contains(m)) {
        return Some(format!(
            "The metric `{unknown}` is not recognized. Find valid metrics from the documentation: {DOCS}#metrics"
        ));
    }
    if kind == V1::Breakdown && p.limit.is_some_and(|limit| !(1..=1000).contains(&limit)) {
        return Some(LIMIT_REFUSED.into());
    }
    if kind == V1::Breakdown && p.page.is_some_and(|page| page < 1) {
        return Some(PAGE_REFUSED.into());
    }
    None
}

const LIMIT_REFUSED: &str = "Please provide limit as a number between 1 and 1000.";
const PAGE_REFUSED: &str = "Please provide page as a positive number.";

/// A breakdown's `limit` or `page` that is no whole number at all (`-1`, `abc`, `3.0`), which
/// Plausible refuses in the words it has for one out of range.
fn unreadable_in_plausibles_words(kind: V1, e: ApiError) -> ApiError {
    match e.error.field.as_deref() {
        Some("limit") if kind == V1::Breakdown => ApiError::new(ErrorCode::Validation, LIMIT_REFUSED),
        Some("page") if kind == V1::Breakdown => ApiError::new(ErrorCode::Validation, PAGE_REFUSED),
        _ => e,
    }
}

/// Plausible's v1 rules on which metrics go with which filters and breakdowns, in its words
/// (docs/behaviour.md, "Plausible fidelity"): a visit's metrics have no meaning for one event's
/// name, goal or property; `views_per_visit` none by page; `time_on_page` only of pages;
/// `conversion_rate` only by or of goals.
fn metric_rules(kind: V1, p: &V1Params, filters: &[anpb::Filter], metrics: &[String]) -> Result<(), String> {
    let property = p.property.as_deref().filter(|_| kind == V1::Breakdown);
    let filtered = |dimension: &str| filters.iter().any(|f| f.dimension == dimension);
    let goal = anpb::Property::EventGoal.name();
    let event_only = |d: &str| d == anpb::Property::EventName.name() || d == goal || d.starts_with(PROPS);
    let page = anpb::Property::EventPage.name();
    let of_visits = |metric: &str| {
        if let Some(property) = property.filter(|d| event_only(d)) {
            return Err(format!("Session metric `{metric}` cannot be queried for breakdown by `{property}`."));
        }
        match filters.iter().find(|f| event_only(&f.dimension)) {
            Some(f) => {
                Err(format!("Session metric `{metric}` cannot be queried when using a filter on `{}`.", f.dimension))
            }
            None => Ok(()),
        }
    };
    for metric in metrics {
        match anpb::Metric::from_name(metric) {
            Some(anpb::Metric::TimeOnPage) => {
                for dimension in [goal, anpb::Property::EventName.name()] {
                    if filtered(dimension) {
                        return Err(format!("Metric `{metric}` cannot be queried when filtering by `{dimension}`"));
                    }
                }
                match property {
                    Some(property) if property == page => {}
                    Some(_) => {
                        return Err(format!(
                            "Metric `{metric}` is not supported in breakdown queries (except `{page}` breakdown)"
                        ));
                    }
                    None if filtered(page) => {}
                    None => {
                        return Err(format!(
                            "Metric `{metric}` can only be queried in a page breakdown or with a page filter."
                        ));
                    }
                }
            }
            Some(anpb::Metric::ViewsPerVisit) => {
                if filtered(page) {
                    return Err(format!("Metric `{metric}` cannot be queried with a filter on `{page}`."));
                }
                if property.is_some() {
                    return Err(format!("Metric `{metric}` is not supported in breakdown queries."));
                }
                of_visits(metric)?;
            }
            Some(anpb::Metric::Visits | anpb::Metric::BounceRate | anpb::Metric::VisitDuration) => of_visits(metric)?,
            Some(anpb::Metric::ConversionRate | anpb::Metric::GroupConversionRate)
                if property != Some(goal) && !filtered(goal) =>
            {
                return Err(format!("Metric `{metric}` can only be queried in a goal breakdown or with a goal filter"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A breakdown's dimensions: a browser's or OS's version comes with its browser or OS, whose row
/// shows both, as in Plausible (docs/behaviour.md, "Plausible fidelity").
fn with_family(property: String) -> Vec<String> {
    use anpb::Property as P;
    let family = match P::from_name(&property) {
        Some(P::VisitBrowserVersion) => P::VisitBrowser,
        Some(P::VisitOsVersion) => P::VisitOs,
        _ => return vec![property],
    };
    vec![family.name().to_owned(), property]
}

/// The time dimension of a time series: the interval asked for, or the period's default (for
/// `all`, which analytics chooses from the days the period turns out to hold).
fn time_dimension(period: &str, interval: Option<&str>) -> ApiResult<&'static str> {
    use anpb::Interval;
    let interval = match interval {
        Some(V1_DAY) => Interval::Day,
        Some(name) => Interval::from_name(name).ok_or_else(|| {
            let known: Vec<_> = INTERVALS.iter().copied().filter(|i| *i != Interval::Day.name()).collect();
            invalid("interval", format!("{name:?} is not one of {}", known.join(", ")))
        })?,
        None => return Ok(stats::default_time(period)),
    };
    Ok(interval.dimension())
}

/// The parameters of `query` that Plausible's endpoint `kind` reads. Plausible ignores the
/// others (`with_imported`, an aggregate's `interval`, a breakdown's `compare`, …), and so
/// does the drop-in, where ours refuses them.
fn read_by(kind: V1, query: &str) -> String {
    let read: &[&str] = match kind {
        V1::Aggregate => &["site_id", "period", "date", "metrics", "filters", "compare"],
        V1::Timeseries => &["site_id", "period", "date", "metrics", "filters", "interval"],
        V1::Breakdown => &["site_id", "period", "date", "metrics", "filters", "property", "limit", "page"],
    };
    as_plausible_reads(query, read)
}

/// The parameters of `query` named in `read`, each given twice read as its last value, as
/// Phoenix reads a query string (ours refuses a parameter given twice).
pub(crate) fn as_plausible_reads(query: &str, read: &[&str]) -> String {
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    let last = |i: usize| pairs[i + 1..].iter().all(|(later, _)| *later != pairs[i].0);
    let kept = pairs.iter().enumerate().filter(|(i, (name, _))| read.contains(&name.as_ref()) && last(*i));
    form_urlencoded::Serializer::new(String::new()).extend_pairs(kept.map(|(_, pair)| pair)).finish()
}

/// A v1 query string as each endpoint reads it (for the fuzz targets): how many take it.
pub(crate) fn v1_requests(query: &str) -> ApiResult<usize> {
    let params: V1Params = parse_query(Some(query))?;
    let kinds = [V1::Aggregate, V1::Timeseries, V1::Breakdown];
    let taken = kinds.into_iter().filter(|kind| v1_request(*kind, &params, Face::Ours).is_ok()).count();
    Ok(taken)
}

/// Plausible's aggregate body.
#[derive(Serialize, ToSchema)]
pub struct AggregateResult {
    /// One entry per requested metric, named by it.
    #[serde(serialize_with = "in_order")]
    #[schema(value_type = std::collections::BTreeMap<String, AggregateValue>)]
    results: Vec<(String, AggregateValue)>,
}

/// Entries as a JSON object, in the order of the requested metrics.
fn in_order<S: serde::Serializer>(entries: &[(String, AggregateValue)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(entries.iter().map(|(name, value)| (name, value)))
}

#[derive(Serialize, ToSchema)]
pub struct AggregateValue {
    /// Null for `time_on_page` and `scroll_depth` without engagement.
    #[schema(schema_with = crate::schema::metric_figure)]
    value: Value,
    /// With `compare=previous_period` (but `period=all`): the figure of the period before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::metric_figure)]
    comparison_value: Option<Value>,
    /// With `compare=previous_period` (but `period=all`): percent change; for `bounce_rate`
    /// points, null when the period before had no bounce rate; for `conversion_rate` points with
    /// one decimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    change: Option<Value>,
}

/// Plausible's timeseries body.
#[derive(Serialize, ToSchema)]
pub struct TimeseriesResult {
    /// One row per bucket, zero-filled: `date` and a number per requested metric.
    #[schema(value_type = Vec<std::collections::BTreeMap<String, Value>>)]
    results: Vec<Map<String, Value>>,
}

/// Plausible's breakdown body.
#[derive(Serialize, ToSchema)]
pub struct BreakdownResult {
    /// One row per value: the property's value under its short name (`visit:source` →
    /// `source`) and a number per requested metric.
    #[schema(value_type = Vec<std::collections::BTreeMap<String, Value>>)]
    results: Vec<Map<String, Value>>,
}

/// Plausible's v1 answers.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum V1Result {
    Aggregate(AggregateResult),
    Timeseries(TimeseriesResult),
    Breakdown(BreakdownResult),
}

/// Plausible's v1 result body for `kind`, and for a breakdown where its page sits.
pub(crate) async fn v1(
    state: &AppState,
    credentials: Credentials,
    query: Option<String>,
    kind: V1,
    face: Face,
) -> ApiResult<(V1Result, Option<Pagination>)> {
    let key = credentials.verify(state).await?;
    let query = match face {
        Face::Ours => query,
        Face::Plausible => query.map(|q| read_by(kind, &q)),
    };
    let parsed = parse_query(query.as_deref()).map_err(|e| match face {
        Face::Ours => e,
        Face::Plausible => unreadable_in_plausibles_words(kind, e),
    });
    let params: V1Params = key.validated(state, Scope::Read, parsed).await?;
    // Checked before anything is taken; refused only after the site's refusals.
    let checked = v1_request(kind, &params, face);
    let (website, mut request) = match face {
        Face::Ours => {
            let site_id = params.site_id.clone().ok_or_else(|| invalid("site_id", "is required"));
            let site_id = key.validated(state, Scope::Read, site_id).await?;
            key.validated(state, Scope::Read, common::text::check_line("site_id", &site_id).map_err(Into::into))
                .await?;
            let (_, website, request) =
                authorized_website(state, async { Ok(key) }, site_id, Scope::Read, checked).await?;
            (website, request)
        }
        Face::Plausible => plausible_website(state, &key, params.site_id.clone(), checked).await?,
    };
    request.website_id = website.id;
    if face == Face::Plausible
        && let Some(goal) = unconfigured_goal(state, &request.website_id, &request.filters, V1_GOAL_CHECKS).await?
    {
        return Err(ApiError::new(ErrorCode::Validation, goal_not_configured(&goal)));
    }
    let metrics = request.metrics.clone();
    // A time series also counts each bucket's visitors, which tell a bucket without events.
    if kind == V1::Timeseries && !metrics.iter().any(|m| m == anpb::Metric::Visitors.name()) {
        request.metrics.push(anpb::Metric::Visitors.name().to_owned());
    }
    let dimensions = request.dimensions.clone();
    let per_page = u64::from(request.limit);
    let names: &[(&str, &str)] = match kind {
        V1::Aggregate => &[],
        V1::Timeseries => &[("dimensions", "interval")],
        V1::Breakdown => &[("dimensions", "property")],
    };
    // Only an aggregate shows the comparison, and not of `all`, which has no period before.
    let compare = match params.compare.as_deref() {
        Some("previous_period") if kind == V1::Aggregate && period_name(&params) != anpb::NamedPeriod::All.name() => {
            Comparison::PreviousPeriod
        }
        _ => Comparison::Nothing,
    };
    let Compared { answer, before } = stats_query(state, request, compare).await.map_err(renamed(names))?;
    let pagination = (kind == V1::Breakdown).then(|| Pagination {
        page: params.page.map_or(1, u64::from),
        per_page,
        total: answer.total_rows,
    });
    let data = match kind {
        V1::Aggregate => V1Result::Aggregate(aggregate_result(&answer, &metrics, before.as_deref())),
        V1::Timeseries => V1Result::Timeseries(TimeseriesResult { results: stats::timeseries_rows(&answer, &metrics) }),
        V1::Breakdown => {
            let names: Vec<&str> = dimensions.iter().map(|d| short_name(d)).collect();
            V1Result::Breakdown(BreakdownResult { results: rows_named(&answer, &names, &metrics) })
        }
    };
    Ok((data, pagination))
}

fn aggregate_result(answer: &anpb::QueryResponse, metrics: &[String], before: Option<&[f64]>) -> AggregateResult {
    let values = totals(answer);
    let currency = answer.rows.first().map(|r| r.currency.clone()).unwrap_or_default();
    let results = metrics.iter().enumerate().map(|(i, metric)| {
        let value = values.get(i).copied().unwrap_or_default();
        let was = before.map(|before| before.get(i).copied().unwrap_or_default());
        let aggregate = AggregateValue {
            value: row_metric(metric, value, &currency),
            comparison_value: was.map(|was| row_metric(metric, was, &currency)),
            change: was.map(|was| plausible_change(metric, was, value)),
        };
        (metric.clone(), aggregate)
    });
    AggregateResult { results: results.collect() }
}

/// Plausible's change of a figure against the period before: none when either period has no
/// such figure (an average of nothing, as `time_on_page` without engagement), points for
/// `bounce_rate` (none when there was no bounce rate before) and for `conversion_rate` (one
/// decimal), else the percent change.
fn plausible_change(metric: &str, before: f64, now: f64) -> Value {
    if before.is_nan() || now.is_nan() {
        return Value::Null;
    }
    match anpb::Metric::from_name(metric) {
        Some(anpb::Metric::BounceRate) if before <= 0.0 => Value::Null,
        Some(anpb::Metric::ConversionRate) => serde_json::json!(((now - before) * 10.0).round() / 10.0),
        _ => serde_json::json!(change(metric, before, now)),
    }
}

#[utoipa::path(
    get,
    path = "/stats/aggregate",
    tag = "stats",
    operation_id = "statsAggregate",
    summary = "Aggregate (Plausible Stats API v1)",
    description = "Scope: `read`. The metrics over the period; `data` is Plausible's aggregate body.",
    params(StatsParams, ("compare" = Option<Compare>, Query, description = "Adds each metric's `change`.")),
    responses(
        (status = 200, description = "Plausible's aggregate body in the envelope", body = Success<AggregateResult>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn aggregate(
    State(state): State<AppState>,
    credentials: Credentials,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (data, pagination) = v1(&state, credentials, q, V1::Aggregate, Face::Ours).await?;
    Ok(paged(data, pagination).into_response())
}

#[utoipa::path(
    get,
    path = "/stats/timeseries",
    tag = "stats",
    operation_id = "statsTimeseries",
    summary = "Time series (Plausible Stats API v1)",
    description = "Scope: `read`. The metrics per time bucket, zero-filled; `data` is Plausible's timeseries body.",
    params(
        StatsParams,
        (
            "interval" = Option<Interval>,
            Query,
            description = "Default: `hour` for `day` and `24h`, `month` for `6mo`, `12mo` and `year`, else `date`."
        ),
    ),
    responses(
        (status = 200, description = "Plausible's timeseries body in the envelope", body = Success<TimeseriesResult>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn timeseries(
    State(state): State<AppState>,
    credentials: Credentials,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (data, pagination) = v1(&state, credentials, q, V1::Timeseries, Face::Ours).await?;
    Ok(paged(data, pagination).into_response())
}

#[utoipa::path(
    get,
    path = "/stats/breakdown",
    tag = "stats",
    operation_id = "statsBreakdown",
    summary = "Breakdown (Plausible Stats API v1)",
    description = "Scope: `read`. The metrics per value of a property; `data` is Plausible's breakdown body.",
    params(
        StatsParams,
        ("property" = AnyProperty, Query, description = "The property to break down by: one of `Property`, or `event:props:<name>`."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rows per page; default 100."),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 2147483647, description = "Default 1."),
    ),
    responses(
        (status = 200, description = "Plausible's breakdown body in the envelope, with where this page sits in the whole breakdown", body = Paged<BreakdownResult>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn breakdown(
    State(state): State<AppState>,
    credentials: Credentials,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (data, pagination) = v1(&state, credentials, q, V1::Breakdown, Face::Ours).await?;
    Ok(paged(data, pagination).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_against_a_period_without_the_figure_is_none() {
        assert_eq!(plausible_change("time_on_page", f64::NAN, 42.0), Value::Null);
        assert_eq!(plausible_change("scroll_depth", 50.0, f64::NAN), Value::Null);
        assert_eq!(plausible_change("visitors", 0.0, 3.0), serde_json::json!(100));
        assert_eq!(plausible_change("visitors", 4.0, 3.0), serde_json::json!(-25));
        assert_eq!(plausible_change("bounce_rate", 0.0, 40.0), Value::Null);
    }
}

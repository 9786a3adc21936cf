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

use super::input::{renamed, repeated};
use crate::auth::Credentials;
use crate::envelope::{Paged, Pagination, Success, paged, parse_query};
use crate::error::ApiResult;
use crate::error::invalid;
use crate::filters::v1_filters;
use crate::flows::access::authorized_website;
use crate::flows::stats::{Compared, Comparison, change, row_metric, short_name, stats_query, top, totals};
use crate::rules;
use crate::schema::{AnyProperty, Compare, Interval, StatsParams};
use crate::state::AppState;
use crate::vocabulary::{self, INTERVALS, V1_DAY};
use proto::vocabulary::TIME;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(aggregate)).routes(routes!(timeseries)).routes(routes!(breakdown))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V1Params {
    site_id: String,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
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

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum V1 {
    Aggregate,
    Timeseries,
    Breakdown,
}

/// What every v1 endpoint reads the same way: site, metrics, date, filters and period.
fn v1_common(website_id: String, p: &V1Params) -> ApiResult<anpb::QueryRequest> {
    let metrics: Vec<String> =
        p.metrics.as_deref().unwrap_or(anpb::Metric::Visitors.name()).split(',').map(|m| m.trim().to_owned()).collect();
    // As Plausible: each metric once.
    if let Some(twice) = repeated(&metrics) {
        return Err(invalid("metrics", format!("{twice:?} is given twice")));
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
        website_id,
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

fn v1_request(kind: V1, website_id: String, p: &V1Params) -> ApiResult<anpb::QueryRequest> {
    let mut request = v1_common(website_id, p)?;
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
            request.dimensions = vec![property];
            request.limit = limit;
            request.offset = (page - 1).saturating_mul(limit);
        }
    }
    if let Some(compare) = &p.compare
        && compare != "previous_period"
    {
        return Err(invalid("compare", "only previous_period is supported"));
    }
    Ok(request)
}

/// The time dimension of a time series: the interval asked for, or the period's default.
fn time_dimension(period: &str, interval: Option<&str>) -> ApiResult<&'static str> {
    use anpb::{Interval, NamedPeriod as P};
    let interval = match interval {
        Some(V1_DAY) => Interval::Day,
        Some(name) => Interval::from_name(name).ok_or_else(|| {
            let known: Vec<_> = INTERVALS.iter().copied().filter(|i| *i != Interval::Day.name()).collect();
            invalid("interval", format!("{name:?} is not one of {}", known.join(", ")))
        })?,
        None => match P::from_name(period) {
            Some(P::Day | P::NamedPeriod24h) => Interval::Hour,
            Some(P::NamedPeriod6mo | P::NamedPeriod12mo | P::Year) => Interval::Month,
            _ => Interval::Day,
        },
    };
    Ok(interval.dimension())
}

/// A v1 query string as each endpoint reads it (for the fuzz targets): how many take it.
pub(crate) fn v1_requests(query: &str) -> ApiResult<usize> {
    let params: V1Params = parse_query(Some(query))?;
    let kinds = [V1::Aggregate, V1::Timeseries, V1::Breakdown];
    let taken = kinds.into_iter().filter(|kind| v1_request(*kind, "site".into(), &params).is_ok()).count();
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
    /// With `compare=previous_period`: percent change, or points for `bounce_rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    change: Option<i64>,
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
) -> ApiResult<(V1Result, Option<Pagination>)> {
    let key = credentials.verify(state).await?;
    let params: V1Params = key.validated(state, Scope::Read, parse_query(query.as_deref())).await?;
    key.validated(state, Scope::Read, rules::check_line("site_id", &params.site_id).map_err(Into::into)).await?;
    let (_, website) = authorized_website(state, async { Ok(key) }, params.site_id.clone(), Scope::Read).await?;
    let request = v1_request(kind, website.id, &params)?;
    let metrics = request.metrics.clone();
    let dimension = request.dimensions.first().cloned().unwrap_or_default();
    let per_page = u64::from(request.limit);
    let names: &[(&str, &str)] = match kind {
        V1::Aggregate => &[],
        V1::Timeseries => &[("dimensions", "interval")],
        V1::Breakdown => &[("dimensions", "property")],
    };
    // Only an aggregate shows the comparison.
    let compare = match params.compare {
        Some(_) if kind == V1::Aggregate => Comparison::PreviousPeriod,
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
        V1::Timeseries => V1Result::Timeseries(TimeseriesResult { results: top(&answer, "date", &metrics) }),
        V1::Breakdown => {
            V1Result::Breakdown(BreakdownResult { results: top(&answer, short_name(&dimension), &metrics) })
        }
    };
    Ok((data, pagination))
}

fn aggregate_result(answer: &anpb::QueryResponse, metrics: &[String], before: Option<&[f64]>) -> AggregateResult {
    let values = totals(answer);
    let currency = answer.rows.first().map(|r| r.currency.clone()).unwrap_or_default();
    let results = metrics.iter().enumerate().map(|(i, metric)| {
        let value = values.get(i).copied().unwrap_or_default();
        let change = before.map(|before| change(metric, before.get(i).copied().unwrap_or_default(), value));
        (metric.clone(), AggregateValue { value: row_metric(metric, value, &currency), change })
    });
    AggregateResult { results: results.collect() }
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
    let (data, pagination) = v1(&state, credentials, q, V1::Aggregate).await?;
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
    let (data, pagination) = v1(&state, credentials, q, V1::Timeseries).await?;
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
    let (data, pagination) = v1(&state, credentials, q, V1::Breakdown).await?;
    Ok(paged(data, pagination).into_response())
}

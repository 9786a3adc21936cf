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

use super::{invalid, repeated, run_named};
use crate::auth::Credentials;
use crate::envelope::{Paged, Pagination, Success, paged, parse_query};
use crate::error::ApiResult;
use crate::flows::access::authorized_website;
use crate::flows::stats::{change, row_metric, run, short_name, top, totals};
use crate::rules;
use crate::schema::{AnyProperty, Compare, Interval, StatsParams};
use crate::state::AppState;
use crate::vocabulary::{PROPERTIES, PROPS};

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

/// v1 filters: `event:page==/blog/**;visit:country==US|DE`, with `==`, `!=`, `~` (contains) and
/// `!~`; `*` in an `==`/`!=` value makes it a wildcard match. The grammar is the document's
/// pattern ([`rules::V1_FILTERS`]), checked first; parsing then cannot fail.
pub(crate) fn v1_filters(text: &str) -> ApiResult<Vec<anpb::Filter>> {
    if !rules::is_v1_filters(text) {
        return Err(invalid(
            "filters",
            "must be <property><op><value>[|<value>…] joined by ;, with a property of the Stats API, \
             an op among ==, !=, ~, !~ and at most 100 values",
        ));
    }
    if text.is_empty() {
        return Ok(vec![]);
    }
    text.split(';').map(v1_filter).collect()
}

/// One filter of a text that matches the grammar.
fn v1_filter(f: &str) -> ApiResult<anpb::Filter> {
    let f = f.trim_start_matches(' ');
    let fixed = PROPERTIES
        .iter()
        .find(|p| f.strip_prefix(**p).is_some_and(|rest| rest.trim_start_matches(' ').starts_with(['=', '!', '~'])));
    // A custom property's name runs up to the operator (the grammar keeps spaces out).
    let custom = || f.strip_prefix(PROPS)?.find([' ', '=', '!', '~']).map(|end| &f[..PROPS.len() + end]);
    let property = match fixed {
        Some(property) => *property,
        None => custom().ok_or_else(|| invalid("filters", format!("{f:?} has no property")))?,
    };
    let rest = f[property.len()..].trim_start_matches(' ');
    let (op, values) = ["==", "!=", "!~", "~"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|values| (*op, values)))
        .ok_or_else(|| invalid("filters", format!("{f:?} needs ==, !=, ~ or !~")))?;
    let values: Vec<String> = values.split('|').map(|v| v.trim().to_owned()).collect();
    let wildcard = values.iter().any(|v| v.contains('*'));
    let operator = match (op, wildcard) {
        ("==", false) => "is",
        ("==", true) => "matches",
        ("!=", false) => "is_not",
        ("!=", true) => "matches_not",
        ("~", _) => "contains",
        _ => "contains_not",
    };
    Ok(anpb::Filter { operator: operator.into(), dimension: property.into(), values })
}

/// What every v1 endpoint reads the same way: site, metrics, date, filters and period.
fn v1_common(website_id: String, p: &V1Params) -> ApiResult<anpb::QueryRequest> {
    let metrics: Vec<String> =
        p.metrics.as_deref().unwrap_or("visitors").split(',').map(|m| m.trim().to_owned()).collect();
    // As Plausible: each metric once.
    if let Some(twice) = repeated(&metrics) {
        return Err(invalid("metrics", format!("{twice:?} is given twice")));
    }
    if let Some(date) = &p.date
        && !rules::is_v1_date(date)
    {
        return Err(invalid("date", "must be YYYY-MM-DD, or YYYY-MM-DD,YYYY-MM-DD for period=custom"));
    }
    Ok(anpb::QueryRequest {
        website_id,
        metrics,
        filters: v1_filters(p.filters.as_deref().unwrap_or_default())?,
        period: p.period.clone().unwrap_or_else(|| "30d".into()),
        date: p.date.clone().unwrap_or_default(),
        period_meaning: anpb::PeriodMeaning::PlausibleV1.into(),
        ..Default::default()
    })
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
            request.dimensions = vec![time_dimension(&request.period, p.interval.as_deref())?.into()];
            request.fill_time = true;
        }
        V1::Breakdown => {
            not_here("compare", p.compare.is_some())?;
            not_here("interval", p.interval.is_some())?;
            let property = p.property.clone().ok_or_else(|| invalid("property", "is required"))?;
            if property.starts_with("time:") {
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
    let interval = match interval {
        Some(interval) => interval,
        None if period == "day" || period == "24h" => "hour",
        None if matches!(period, "6mo" | "12mo" | "year") => "month",
        None => "date",
    };
    match interval {
        "hour" => Ok("time:hour"),
        "date" | "day" => Ok("time:day"),
        "week" => Ok("time:week"),
        "month" => Ok("time:month"),
        other => Err(invalid("interval", format!("{other:?} is not one of hour, date, week, month"))),
    }
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
    let previous = params.compare.is_some().then(|| anpb::QueryRequest { previous_period: true, ..request.clone() });
    let dimension = request.dimensions.first().cloned().unwrap_or_default();
    let per_page = u64::from(request.limit);
    let names: &[(&str, &str)] = match kind {
        V1::Aggregate => &[],
        V1::Timeseries => &[("dimensions", "interval")],
        V1::Breakdown => &[("dimensions", "property")],
    };
    let answer = run_named(state, request, names).await?;
    let pagination = (kind == V1::Breakdown).then(|| Pagination {
        page: params.page.map_or(1, u64::from),
        per_page,
        total: answer.total_rows,
    });
    let data = match kind {
        V1::Aggregate => {
            let before = match previous {
                Some(previous) => Some(totals(&run(state, previous).await?)),
                None => None,
            };
            V1Result::Aggregate(aggregate_result(&answer, &metrics, before.as_deref()))
        }
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

#[cfg(test)]
mod tests {
    use common::ErrorCode;

    use super::*;

    #[test]
    fn v1_filters_parse() {
        let filters =
            v1_filters("event:page==/blog/**;visit:country==US|DE;visit:source!=Google;event:page~pricing").unwrap();
        let ops: Vec<_> = filters.iter().map(|f| (f.operator.as_str(), f.dimension.as_str(), f.values.len())).collect();
        assert_eq!(
            ops,
            [
                ("matches", "event:page", 1),
                ("is", "visit:country", 2),
                ("is_not", "visit:source", 1),
                ("contains", "event:page", 1)
            ]
        );
        assert!(v1_filters("event:page").is_err());
        assert_eq!(ErrorCode::Validation, v1_filters("x").unwrap_err().error.code);
    }
}

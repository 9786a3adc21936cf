//! Statistics (docs/behaviour.md#external-rest-api): the overview and breakdowns of `/analytics`, Plausible's v1
//! (`/stats/*`) and v2 (`/query`) inside our envelope, the same without envelope under
//! `/plausible` for existing Plausible clients, and realtime. Each request shape becomes one
//! analytics `Query`; only the parsing and the result bodies differ.

use axum::Json;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::Error;
use common::access::Scope;
use proto::analytics::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Credentials;
use crate::envelope::{Pagination, Path, RawBody, ok, paged, parse_query, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::openapi::{
    AggregateResult, AnyProperty, BreakdownResult, Compare, CountryStats, Forbidden, Interval, NotFound, Overview,
    PageStats, Paged, PlausibleForbidden, PlausibleNotFound, PlausibleServiceUnavailable, PlausibleTooManyRequests,
    PlausibleUnauthorized, PlausibleValidationError, Property, QueryResult, Range, Realtime, ServiceUnavailable,
    StatsParams, Success, Technology, TimeseriesResult, TooManyRequests, Unauthorized, ValidationError,
};
use crate::routes::external::authorized_website;
use crate::rules;
use crate::state::AppState;

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    Error::validation(format!("{field}: {message}")).into()
}

/// A metric of a result row: revenue as Plausible's `{short, long, value}` in the row's
/// currency, the rest as [`metric_value`].
pub(crate) fn row_metric(metric: &str, value: f64, currency: &str) -> Value {
    match metric {
        "total_revenue" | "average_revenue" => crate::views::revenue(value, currency),
        _ => metric_value(metric, value),
    }
}

/// Counts are integers; `views_per_visit` and the shares (`conversion_rate`, `percentage`) have
/// decimals. A metric with no value (time on page or scroll depth without engagement) is null,
/// as in Plausible.
pub(crate) fn metric_value(metric: &str, value: f64) -> Value {
    match metric {
        _ if value.is_nan() => Value::Null,
        "total_revenue" | "average_revenue" => json!(value),
        "views_per_visit" | "conversion_rate" | "percentage" => json!(value),
        _ => json!(value as i64),
    }
}

pub(crate) async fn run(state: &AppState, request: pb::QueryRequest) -> ApiResult<pb::QueryResponse> {
    Ok(state.analytics.clone().query(request).await?.into_inner())
}

/// [`run`] for a request built from parameters the caller's API names differently from
/// analytics (`names`: analytics' field, the caller's): a 400 names the field the caller sent.
async fn run_named(
    state: &AppState,
    request: pb::QueryRequest,
    names: &[(&str, &str)],
) -> ApiResult<pb::QueryResponse> {
    run(state, request).await.map_err(|mut e| {
        if let Some(field) = &mut e.error.field
            && let Some((_, ours)) = names.iter().find(|(theirs, _)| theirs == field)
        {
            *field = (*ours).to_owned();
        }
        e
    })
}

/// Verifies the key, then reads the site it names (id or domain) with read scope.
async fn site(state: &AppState, credentials: Credentials, site_id: String) -> ApiResult<pb::Website> {
    let key = credentials.verify(state).await?;
    Ok(authorized_website(state, async { Ok(key) }, site_id, Scope::Read).await?.1)
}

pub(crate) fn query(website_id: &str, period: &str, metrics: &[&str]) -> pb::QueryRequest {
    pb::QueryRequest {
        website_id: website_id.to_owned(),
        metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
        period: period.to_owned(),
        ..Default::default()
    }
}

// ---- Plausible Stats API v1 ----

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
enum V1 {
    Aggregate,
    Timeseries,
    Breakdown,
}

/// v1 filters: `event:page==/blog/**;visit:country==US|DE`, with `==`, `!=`, `~` (contains) and
/// `!~`; `*` in an `==`/`!=` value makes it a wildcard match. The grammar is the document's
/// pattern ([`rules::V1_FILTERS`]), checked first; parsing then cannot fail.
pub(crate) fn v1_filters(text: &str) -> ApiResult<Vec<pb::Filter>> {
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
    text.split(';')
        .map(|f| {
            let f = f.trim_start_matches(' ');
            let fixed = Property::VALUES.iter().find(|p| {
                f.strip_prefix(**p).is_some_and(|rest| rest.trim_start_matches(' ').starts_with(['=', '!', '~']))
            });
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
            Ok(pb::Filter { operator: operator.into(), dimension: (*property).into(), values })
        })
        .collect()
}

/// The first value given twice, if any.
fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}

/// `visit:source` → `source`, `event:props:plan` → `plan`: how Plausible names a property in
/// result rows.
pub(crate) fn short_name(dimension: &str) -> &str {
    match dimension.strip_prefix(PROPS) {
        Some(name) => name,
        None => dimension.split_once(':').map_or(dimension, |(_, name)| name),
    }
}

/// Prefix of a custom property.
const PROPS: &str = "event:props:";

fn v1_request(kind: V1, website_id: String, p: &V1Params) -> ApiResult<pb::QueryRequest> {
    let period = p.period.clone().unwrap_or_else(|| "30d".into());
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
    let mut request = pb::QueryRequest {
        website_id,
        metrics,
        filters: v1_filters(p.filters.as_deref().unwrap_or_default())?,
        period,
        date: p.date.clone().unwrap_or_default(),
        period_meaning: pb::PeriodMeaning::PlausibleV1.into(),
        ..Default::default()
    };
    let only = |name: &str, given: bool| {
        if given { Err(invalid(name, "is not a parameter of this endpoint")) } else { Ok(()) }
    };
    match kind {
        V1::Aggregate => {
            only("property", p.property.is_some())?;
            only("interval", p.interval.is_some())?;
            only("limit", p.limit.is_some())?;
            only("page", p.page.is_some())?;
        }
        V1::Timeseries => {
            only("property", p.property.is_some())?;
            only("compare", p.compare.is_some())?;
            let interval = match p.interval.as_deref() {
                Some(interval) => interval,
                None if request.period == "day" || request.period == "24h" => "hour",
                None if matches!(request.period.as_str(), "6mo" | "12mo" | "year") => "month",
                None => "date",
            };
            let dimension = match interval {
                "hour" => "time:hour",
                "date" | "day" => "time:day",
                "week" => "time:week",
                "month" => "time:month",
                other => return Err(invalid("interval", format!("{other:?} is not one of hour, date, week, month"))),
            };
            request.dimensions = vec![dimension.into()];
            request.fill_time = true;
        }
        V1::Breakdown => {
            only("compare", p.compare.is_some())?;
            only("interval", p.interval.is_some())?;
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

/// A v1 query string as each endpoint reads it (for the fuzz targets): how many take it.
pub(crate) fn v1_requests(query: &str) -> ApiResult<usize> {
    let params: V1Params = parse_query(Some(query))?;
    let kinds = [V1::Aggregate, V1::Timeseries, V1::Breakdown];
    let taken = kinds.into_iter().filter(|kind| v1_request(*kind, "site".into(), &params).is_ok()).count();
    Ok(taken)
}

/// Plausible's v1 result body for `kind`, and for a breakdown where its page sits.
async fn v1(
    state: &AppState,
    credentials: Credentials,
    query: Option<String>,
    kind: V1,
) -> ApiResult<(Value, Option<Pagination>)> {
    let key = credentials.verify(state).await?;
    let params: V1Params = key.validated(state, Scope::Read, parse_query(query.as_deref())).await?;
    key.validated(state, Scope::Read, rules::check_line("site_id", &params.site_id)).await?;
    let (_, website) = authorized_website(state, async { Ok(key) }, params.site_id.clone(), Scope::Read).await?;
    let request = v1_request(kind, website.id, &params)?;
    let metrics = request.metrics.clone();
    let previous = params.compare.is_some().then(|| pb::QueryRequest { previous_period: true, ..request.clone() });
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
            let values = answer.rows.first().map(|r| r.metrics.clone()).unwrap_or_default();
            let currency = answer.rows.first().map(|r| r.currency.clone()).unwrap_or_default();
            let before = match previous {
                Some(previous) => {
                    Some(run(state, previous).await?.rows.first().map(|r| r.metrics.clone()).unwrap_or_default())
                }
                None => None,
            };
            let mut results = Map::new();
            for (i, metric) in metrics.iter().enumerate() {
                let value = values.get(i).copied().unwrap_or_default();
                let mut entry = json!({ "value": row_metric(metric, value, &currency) });
                if let Some(before) = &before {
                    entry["change"] = json!(change(metric, before.get(i).copied().unwrap_or_default(), value));
                }
                results.insert(metric.clone(), entry);
            }
            json!({ "results": results })
        }
        V1::Timeseries | V1::Breakdown => {
            let key = if kind == V1::Timeseries { "date" } else { short_name(&dimension) };
            json!({ "results": top(&answer, key, &metrics) })
        }
    };
    Ok((data, pagination))
}

/// Plausible's comparison: percentage change, or the difference in points for a rate.
pub(crate) fn change(metric: &str, before: f64, now: f64) -> Value {
    if metric == "bounce_rate" {
        return json!((now - before) as i64);
    }
    if before == 0.0 {
        return json!(if now > 0.0 { 100 } else { 0 });
    }
    json!(((now - before) / before * 100.0).round() as i64)
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
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
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
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
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
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
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

// ---- Plausible Stats API v2 ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QueryBody)]
pub struct V2Body {
    /// Website id or domain. `/query/{websiteId}` names the site in its path: there `site_id`
    /// may be left out (or null), and when given must name the same site. Required by the
    /// Plausible mount.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::query_site_id)]
    site_id: Option<String>,
    /// Each metric once.
    #[schema(schema_with = crate::openapi::query_metrics)]
    metrics: Vec<String>,
    #[schema(schema_with = crate::openapi::date_range)]
    date_range: Value,
    /// Each dimension once, at most one of them time (`time:*`).
    #[serde(default)]
    #[schema(schema_with = crate::openapi::query_dimensions)]
    dimensions: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::filters)]
    filters: Vec<Value>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::order_by)]
    order_by: Vec<(String, String)>,
    #[serde(default)]
    include: V2Include,
    #[serde(default)]
    pagination: Option<V2Pagination>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QueryInclude)]
pub struct V2Include {
    #[serde(default)]
    time_labels: bool,
    #[serde(default)]
    total_rows: bool,
    /// Plausible's imported data; we have none to include.
    #[serde(default)]
    imports: bool,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
#[schema(as = QueryPagination)]
pub struct V2Pagination {
    /// Default 10000.
    #[serde(default = "default_v2_limit", deserialize_with = "json_integer")]
    #[schema(minimum = 1, maximum = 10000)]
    limit: u32,
    /// Rows to skip; default 0.
    #[serde(default, deserialize_with = "json_integer")]
    #[schema(minimum = 0, maximum = 2147483647)]
    offset: u32,
}

/// A JSON integer as JSON Schema counts them: `3` and `3.0` alike.
fn json_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let integral =
        number.as_u64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
    integral
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not an integer from 0 to {}", u32::MAX)))
}

fn default_v2_limit() -> u32 {
    10_000
}

fn v2_filter(filter: &Value) -> ApiResult<pb::Filter> {
    let parts =
        filter.as_array().ok_or_else(|| invalid("filters", "each filter is [operator, dimension, [values]]"))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let operator = text(parts.first()).ok_or_else(|| invalid("filters", "an operator is required"))?;
    if matches!(operator.as_str(), "and" | "or" | "not" | "has_done" | "has_not_done") {
        return Err(invalid("filters", format!("{operator:?} is not supported; filters combine with and")));
    }
    if matches!(operator.as_str(), "matches" | "matches_not") {
        return Err(invalid("filters", "regular expressions are not supported; use matches_wildcard"));
    }
    let dimension = text(parts.get(1)).ok_or_else(|| invalid("filters", "a dimension is required"))?;
    let values = parts
        .get(2)
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| invalid("filters", "values must be a list of strings"))?;
    for value in &values {
        rules::check_line("filters", value)?;
    }
    if parts.len() > 3 {
        return Err(invalid("filters", "modifiers are not supported"));
    }
    let operator = match operator.as_str() {
        "matches_wildcard" => "matches".to_owned(),
        "matches_wildcard_not" => "matches_not".to_owned(),
        _ => operator,
    };
    Ok(pb::Filter { operator, dimension, values })
}

/// A day of a v2 `date_range`: `YYYY-MM-DD`, or an RFC 3339 date-time standing for its day.
fn v2_day(value: &Value) -> ApiResult<&str> {
    let text = value.as_str().unwrap_or_default();
    if rules::is_day(text) {
        return Ok(text);
    }
    let day = text.get(..10).filter(|day| rules::is_day(day));
    match (chrono::DateTime::parse_from_rfc3339(text), day) {
        (Ok(_), Some(day)) => Ok(day),
        _ => Err(invalid("date_range", "days are YYYY-MM-DD or RFC 3339 date-times")),
    }
}

/// `"7d"` or `["2024-01-01", "2024-01-31"]` → period and date.
pub(crate) fn v2_date_range(range: &Value) -> ApiResult<(String, String)> {
    match range {
        Value::String(period) => Ok((period.clone(), String::new())),
        Value::Array(days) if days.len() == 2 => {
            Ok(("custom".into(), format!("{},{}", v2_day(&days[0])?, v2_day(&days[1])?)))
        }
        _ => Err(invalid("date_range", "must be a period such as \"7d\" or [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]")),
    }
}

/// Plausible's v2 result body, and where its page sits.
async fn v2(state: &AppState, website: pb::Website, body: V2Body) -> ApiResult<(Value, Pagination)> {
    let (request, pagination) = v2_request(website.id.clone(), &body)?;
    let answer =
        run_named(state, request, &[("period", "date_range"), ("date", "date_range"), ("interval", "dimensions")])
            .await?;
    Ok(v2_body(website, body, pagination, answer))
}

/// The analytics query a v2 body asks for, and its page; everything but the site's existence is
/// checked here.
pub(crate) fn v2_request(website_id: String, body: &V2Body) -> ApiResult<(pb::QueryRequest, V2Pagination)> {
    let (period, date) = v2_date_range(&body.date_range)?;
    let order_by = body
        .order_by
        .iter()
        .map(|(key, direction)| match direction.as_str() {
            "asc" | "desc" => Ok(pb::Order { key: key.clone(), descending: direction == "desc" }),
            other => Err(invalid("order_by", format!("{other:?} is not asc or desc"))),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let pagination = body.pagination.unwrap_or(V2Pagination { limit: default_v2_limit(), offset: 0 });
    if pagination.limit == 0 || pagination.limit > 10_000 {
        return Err(invalid("pagination.limit", "must be 1 to 10000"));
    }
    if pagination.offset > rules::INT32_MAX {
        return Err(invalid("pagination.offset", format!("must be 0 to {}", rules::INT32_MAX)));
    }
    if let Some(twice) = repeated(&body.metrics) {
        return Err(invalid("metrics", format!("{twice:?} is given twice")));
    }
    let request = pb::QueryRequest {
        website_id,
        metrics: body.metrics.clone(),
        dimensions: body.dimensions.clone(),
        filters: body.filters.iter().map(v2_filter).collect::<ApiResult<_>>()?,
        period,
        date,
        order_by,
        limit: pagination.limit,
        offset: pagination.offset,
        fill_time: false,
        previous_period: false,
        period_meaning: pb::PeriodMeaning::PlausibleV2.into(),
    };
    Ok((request, pagination))
}

/// Continues [`v2`]: the answer as Plausible's body.
fn v2_body(
    website: pb::Website,
    body: V2Body,
    pagination: V2Pagination,
    answer: pb::QueryResponse,
) -> (Value, Pagination) {
    let page = Pagination {
        page: u64::from(pagination.offset / pagination.limit) + 1,
        per_page: u64::from(pagination.limit),
        total: answer.total_rows,
    };
    let results: Vec<Value> = answer
        .rows
        .iter()
        .map(|row| {
            let metrics: Vec<Value> =
                body.metrics.iter().zip(&row.metrics).map(|(m, v)| row_metric(m, *v, &row.currency)).collect();
            json!({ "metrics": metrics, "dimensions": row.dimensions })
        })
        .collect();
    let mut meta = Map::new();
    if body.include.time_labels {
        meta.insert("time_labels".into(), json!(answer.time_labels));
    }
    if body.include.total_rows {
        meta.insert("total_rows".into(), json!(answer.total_rows));
    }
    if body.include.imports {
        meta.insert("imports_included".into(), json!(false));
    }
    let data = json!({
        "results": results,
        "meta": meta,
        "query": {
            "site_id": website.domain,
            "metrics": body.metrics,
            "dimensions": body.dimensions,
            "date_range": [rfc3339(answer.from_unix_ms), rfc3339(answer.to_unix_ms - 1)],
            "filters": body.filters,
            "order_by": body.order_by,
            "pagination": { "limit": pagination.limit, "offset": pagination.offset },
        },
    });
    (data, page)
}

#[utoipa::path(
    post,
    path = "/query/{websiteId}",
    tag = "stats",
    operation_id = "query",
    summary = "Query (Plausible Stats API v2)",
    description = "Scope: `read` (the query only reads). Plausible v2's query; `site_id` may be left out, the path names the site. Regular expressions and `and`/`or`/`not` filter groups are a 400.",
    params(("websiteId" = String, Path, description = "Website id or domain")),
    request_body = V2Body,
    responses(
        (status = 200, description = "Plausible's query body in the envelope, with where this page sits in all rows (`page` counts whole pages of `limit` before `offset`)", body = Paged<QueryResult>),
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn flexible_query(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let website = site(&state, credentials, website_id).await?;
    let body: V2Body = crate::envelope::parse(&body)?;
    if let Some(site_id) = &body.site_id {
        rules::check_line("site_id", site_id)?;
    }
    if body.site_id.as_ref().is_some_and(|id| *id != website.id && *id != website.domain) {
        return Err(invalid("site_id", "names another site than the path"));
    }
    let (data, pagination) = v2(&state, website, body).await?;
    Ok(paged(data, Some(pagination)).into_response())
}

// ---- Plausible drop-in: the same, with Plausible's bodies and errors ----

/// Credentials whose absence is answered in Plausible's error shape too.
pub(crate) type Keyed = Result<Credentials, ApiError>;

/// Plausible's error body: `{"error": "…"}` with the status.
/// An unknown route under the drop-in's mount, in Plausible's error shape.
pub async fn plausible_not_found(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Response {
    let message = format!("no route for {method} {}", uri.path());
    plausible(Err(ApiError::new(common::ErrorCode::NotFound, message)))
}

/// A known drop-in route asked with another method, in Plausible's error shape.
pub async fn plausible_method_not_allowed(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    plausible(Err(ApiError::new(common::ErrorCode::MethodNotAllowed, message)))
}

pub(crate) fn plausible(result: ApiResult<Value>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, Json(json!({ "error": e.error.text() }))).into_response();
            // Keep Retry-After and WWW-Authenticate from our own rendering.
            let ours = e.into_response();
            for name in [axum::http::header::RETRY_AFTER, axum::http::header::WWW_AUTHENTICATE] {
                if let Some(value) = ours.headers().get(&name) {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
    }
}

#[utoipa::path(
    get,
    path = "/plausible/api/v1/stats/aggregate",
    tag = "plausible",
    operation_id = "plausibleAggregate",
    summary = "Plausible v1 aggregate, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/aggregate`: no envelope.",
    params(StatsParams, ("compare" = Option<Compare>, Query, description = "Adds each metric's `change`.")),
    responses(
        (status = 200, description = "Plausible's aggregate body", body = AggregateResult),
        (status = 400, response = PlausibleValidationError),
        (status = 401, response = PlausibleUnauthorized),
        (status = 403, response = PlausibleForbidden),
        (status = 404, response = PlausibleNotFound),
        (status = 429, response = PlausibleTooManyRequests),
        (status = 503, response = PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_aggregate(State(state): State<AppState>, credentials: Keyed, RawQuery(q): RawQuery) -> Response {
    plausible(async { Ok(v1(&state, credentials?, q, V1::Aggregate).await?.0) }.await)
}

#[utoipa::path(
    get,
    path = "/plausible/api/v1/stats/timeseries",
    tag = "plausible",
    operation_id = "plausibleTimeseries",
    summary = "Plausible v1 timeseries, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/timeseries`: no envelope.",
    params(
        StatsParams,
        (
            "interval" = Option<Interval>,
            Query,
            description = "Default: `hour` for `day` and `24h`, `month` for `6mo`, `12mo` and `year`, else `date`."
        ),
    ),
    responses(
        (status = 200, description = "Plausible's timeseries body", body = TimeseriesResult),
        (status = 400, response = PlausibleValidationError),
        (status = 401, response = PlausibleUnauthorized),
        (status = 403, response = PlausibleForbidden),
        (status = 404, response = PlausibleNotFound),
        (status = 429, response = PlausibleTooManyRequests),
        (status = 503, response = PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_timeseries(
    State(state): State<AppState>,
    credentials: Keyed,
    RawQuery(q): RawQuery,
) -> Response {
    plausible(async { Ok(v1(&state, credentials?, q, V1::Timeseries).await?.0) }.await)
}

#[utoipa::path(
    get,
    path = "/plausible/api/v1/stats/breakdown",
    tag = "plausible",
    operation_id = "plausibleBreakdown",
    summary = "Plausible v1 breakdown, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/breakdown`: no envelope.",
    params(
        StatsParams,
        ("property" = AnyProperty, Query, description = "The property to break down by: one of `Property`, or `event:props:<name>`."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rows per page; default 100."),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 2147483647, description = "Default 1."),
    ),
    responses(
        (status = 200, description = "Plausible's breakdown body", body = BreakdownResult),
        (status = 400, response = PlausibleValidationError),
        (status = 401, response = PlausibleUnauthorized),
        (status = 403, response = PlausibleForbidden),
        (status = 404, response = PlausibleNotFound),
        (status = 429, response = PlausibleTooManyRequests),
        (status = 503, response = PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_breakdown(State(state): State<AppState>, credentials: Keyed, RawQuery(q): RawQuery) -> Response {
    plausible(async { Ok(v1(&state, credentials?, q, V1::Breakdown).await?.0) }.await)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SiteParam {
    /// Website id or domain.
    site_id: String,
}

/// A site as Plausible's Sites API lists it.
#[derive(Serialize, ToSchema)]
pub struct PlausibleSite {
    domain: String,
    timezone: String,
}

/// Where a page of Plausible's Sites API sits; every site fits in one page here.
#[derive(Serialize, ToSchema)]
pub struct PlausibleSitesMeta {
    after: Option<String>,
    before: Option<String>,
    limit: u32,
}

impl PlausibleSitesMeta {
    /// The only page, of `limit` rows.
    pub(crate) fn one_page(limit: u32) -> PlausibleSitesMeta {
        PlausibleSitesMeta { after: None, before: None, limit }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlausibleSites {
    sites: Vec<PlausibleSite>,
    meta: PlausibleSitesMeta,
}

/// The sites a key reaches, as Plausible's Sites API lists them (a call some clients make first).
#[utoipa::path(
    get,
    path = "/plausible/api/v1/sites",
    tag = "plausible",
    operation_id = "plausibleSites",
    summary = "Plausible Sites API list, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/sites`: every website of the teams the key reaches, by domain, in one page (`meta.after` is always null).",
    responses(
        (status = 200, description = "The sites", body = PlausibleSites),
        (status = 401, response = PlausibleUnauthorized),
        (status = 403, response = PlausibleForbidden),
        (status = 429, response = PlausibleTooManyRequests),
        (status = 503, response = PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_sites(State(state): State<AppState>, credentials: Keyed) -> Response {
    plausible(
        async {
            let key = credentials?.verify(&state).await?;
            let authorized = key.authorize(&state, Scope::Read, None).await?;
            let mut websites = crate::routes::external::reachable_websites(&state, &authorized).await?;
            websites.sort_by(|a, b| a.domain.cmp(&b.domain));
            let limit = u32::try_from(websites.len()).unwrap_or(u32::MAX).max(1);
            let sites = websites.into_iter().map(|w| PlausibleSite { domain: w.domain, timezone: w.timezone });
            let meta = PlausibleSitesMeta::one_page(limit);
            Ok(json!(PlausibleSites { sites: sites.collect(), meta }))
        }
        .await,
    )
}

/// Plausible answers realtime visitors with a bare number.
#[utoipa::path(
    get,
    path = "/plausible/api/v1/stats/realtime/visitors",
    tag = "plausible",
    operation_id = "plausibleRealtimeVisitors",
    summary = "Plausible v1 realtime visitors, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/realtime/visitors`: the visitors of the last 5 minutes as a bare number.",
    params(SiteParam),
    responses(
        (status = 200, description = "Visitors of the last 5 minutes", body = u64, content_type = "application/json"),
        (status = 400, response = PlausibleValidationError),
        (status = 401, response = PlausibleUnauthorized),
        (status = 403, response = PlausibleForbidden),
        (status = 404, response = PlausibleNotFound),
        (status = 429, response = PlausibleTooManyRequests),
        (status = 503, response = PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_realtime(State(state): State<AppState>, credentials: Keyed, RawQuery(q): RawQuery) -> Response {
    plausible(
        async {
            let key = credentials?.verify(&state).await?;
            let params: SiteParam = key.validated(&state, Scope::Read, parse_query(q.as_deref())).await?;
            key.validated(&state, Scope::Read, rules::check_line("site_id", &params.site_id)).await?;
            let (_, website) = authorized_website(&state, async { Ok(key) }, params.site_id, Scope::Read).await?;
            let answer = run(&state, query(&website.id, "realtime", &["visitors"])).await?;
            Ok(json!(answer.rows.first().and_then(|r| r.metrics.first()).copied().unwrap_or_default() as i64))
        }
        .await,
    )
}

#[utoipa::path(
    post,
    path = "/plausible/api/v2/query",
    tag = "plausible",
    operation_id = "plausibleQuery",
    summary = "Plausible v2 query, drop-in",
    description = "Scope: `read` (the query only reads). As Plausible's `POST /api/v2/query`, `site_id` required: no envelope.",
    request_body = V2Body,
    responses(
        (status = 200, description = "Plausible's query body", body = QueryResult),
        (status = 400, response = PlausibleValidationError),
        (status = 401, response = PlausibleUnauthorized),
        (status = 403, response = PlausibleForbidden),
        (status = 404, response = PlausibleNotFound),
        (status = 429, response = PlausibleTooManyRequests),
        (status = 503, response = PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_query(
    State(state): State<AppState>,
    credentials: Keyed,
    body: Result<RawBody, ApiError>,
) -> Response {
    plausible(
        async {
            // Too large a body is refused before the key is looked at, as on every other route.
            let RawBody(body) = body?;
            let key = credentials?.verify(&state).await?;
            let body: V2Body = key.validated(&state, Scope::Read, crate::envelope::parse(&body)).await?;
            let site_id = body.site_id.clone().ok_or_else(|| invalid("site_id", "is required"));
            let site_id = key.validated(&state, Scope::Read, site_id).await?;
            key.validated(&state, Scope::Read, rules::check_line("site_id", &site_id)).await?;
            let (_, website) = authorized_website(&state, async { Ok(key) }, site_id, Scope::Read).await?;
            Ok(v2(&state, website, body).await?.0)
        }
        .await,
    )
}

// ---- Zenovay's own shapes ----

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// Default `30d`.
    #[serde(default)]
    #[param(value_type = Option<Range>)]
    range: Option<String>,
    /// Rows per list; default 10.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

impl RangeParams {
    fn period(&self) -> ApiResult<String> {
        match self.range.as_deref().unwrap_or("30d") {
            range @ ("24h" | "7d" | "30d" | "90d" | "1y") => Ok(range.to_owned()),
            other => Err(invalid("range", format!("{other:?} is not one of 24h, 7d, 30d, 90d, 1y"))),
        }
    }

    fn limit(&self) -> ApiResult<u32> {
        match self.limit.unwrap_or(10) {
            limit @ 1..=100 => Ok(limit),
            _ => Err(invalid("limit", "must be 1 to 100")),
        }
    }
}

/// Rows of a query of at most one dimension as `[{"<name>": value, "<metric>": n, …}]`; with an
/// empty `name`, metrics only (totals).
pub(crate) fn top(answer: &pb::QueryResponse, name: &str, metrics: &[impl AsRef<str>]) -> Vec<Value> {
    answer
        .rows
        .iter()
        .map(|row| {
            let mut entry = Map::new();
            if !name.is_empty() {
                entry.insert(name.to_owned(), json!(row.dimensions.first().cloned().unwrap_or_default()));
            }
            for (metric, value) in metrics.iter().zip(&row.metrics) {
                entry.insert(metric.as_ref().to_owned(), row_metric(metric.as_ref(), *value, &row.currency));
            }
            Value::Object(entry)
        })
        .collect()
}

pub(crate) fn breakdown_of(
    website_id: &str,
    period: &str,
    dimension: &str,
    metrics: &[&str],
    limit: u32,
) -> pb::QueryRequest {
    pb::QueryRequest { dimensions: vec![dimension.into()], limit, ..query(website_id, period, metrics) }
}

/// Overview: totals, a series (hourly over 24h, else daily) and the top countries.
#[utoipa::path(
    get,
    path = "/analytics/{websiteId}",
    tag = "analytics",
    operation_id = "getAnalyticsOverview",
    summary = "Overview of a website",
    description = "Scope: `read`. Visitors, visits, pageviews, bounce rate and visit duration over the range, a zero-filled series (hourly for `24h`, else daily) and the top countries (`limit`, default 10).",
    params(("websiteId" = String, Path, description = "Website id or domain"), RangeParams),
    responses(
        (status = 200, description = "The overview", body = Success<Overview>),
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn overview(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let website = site(&state, credentials, website_id).await?;
    let params: RangeParams = parse_query(q.as_deref())?;
    let period = params.period()?;
    const TOTALS: [&str; 5] = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"];
    let interval = if period == "24h" { "time:hour" } else { "time:day" };
    let series = pb::QueryRequest {
        dimensions: vec![interval.into()],
        fill_time: true,
        ..query(&website.id, &period, &["visitors", "pageviews"])
    };
    let (totals, series, countries) = tokio::try_join!(
        run(&state, query(&website.id, &period, &TOTALS)),
        run(&state, series),
        run(&state, breakdown_of(&website.id, &period, "visit:country", &["visitors"], params.limit()?)),
    )?;
    let mut data = Map::new();
    data.insert("website_id".into(), json!(website.id));
    data.insert("range".into(), json!(period));
    data.insert("from".into(), json!(rfc3339(totals.from_unix_ms)));
    data.insert("to".into(), json!(rfc3339(totals.to_unix_ms)));
    let values = totals.rows.first().map(|r| r.metrics.clone()).unwrap_or_default();
    for (metric, value) in TOTALS.iter().zip(values) {
        data.insert((*metric).into(), metric_value(metric, value));
    }
    data.insert("series".into(), json!(top(&series, "date", &["visitors", "pageviews"])));
    data.insert("top_countries".into(), json!(top(&countries, "country", &["visitors"])));
    Ok(ok(Value::Object(data)).into_response())
}

#[utoipa::path(
    get,
    path = "/analytics/{websiteId}/pages",
    tag = "analytics",
    operation_id = "getTopPages",
    summary = "Top pages",
    description = "Scope: `read`. Pages by visitors over the range.",
    params(("websiteId" = String, Path, description = "Website id or domain"), RangeParams),
    responses(
        (status = 200, description = "The top pages", body = Success<Vec<PageStats>>),
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn pages(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    breakdown_list(state, credentials, website_id, q, "event:page", "page").await
}

#[utoipa::path(
    get,
    path = "/analytics/{websiteId}/countries",
    tag = "analytics",
    operation_id = "getTopCountries",
    summary = "Top countries",
    description = "Scope: `read`. Countries by visitors over the range.",
    params(("websiteId" = String, Path, description = "Website id or domain"), RangeParams),
    responses(
        (status = 200, description = "The top countries", body = Success<Vec<CountryStats>>),
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn countries(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    breakdown_list(state, credentials, website_id, q, "visit:country", "country").await
}

async fn breakdown_list(
    state: AppState,
    credentials: Credentials,
    website_id: String,
    q: Option<String>,
    dimension: &str,
    name: &str,
) -> ApiResult<Response> {
    let website = site(&state, credentials, website_id).await?;
    let params: RangeParams = parse_query(q.as_deref())?;
    const METRICS: [&str; 2] = ["visitors", "pageviews"];
    let answer =
        run(&state, breakdown_of(&website.id, &params.period()?, dimension, &METRICS, params.limit()?)).await?;
    Ok(ok(top(&answer, name, &METRICS)).into_response())
}

/// Browsers, operating systems and devices, each its own top list.
#[utoipa::path(
    get,
    path = "/analytics/{websiteId}/technology",
    tag = "analytics",
    operation_id = "getTechnology",
    summary = "Top browsers, operating systems and devices",
    description = "Scope: `read`. Three top lists by visitors over the range, each of at most `limit` rows.",
    params(("websiteId" = String, Path, description = "Website id or domain"), RangeParams),
    responses(
        (status = 200, description = "The top lists", body = Success<Technology>),
        (status = 400, response = ValidationError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn technology(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let website = site(&state, credentials, website_id).await?;
    let params: RangeParams = parse_query(q.as_deref())?;
    let (period, limit) = (params.period()?, params.limit()?);
    let list = |dimension| run(&state, breakdown_of(&website.id, &period, dimension, &["visitors"], limit));
    let (browsers, os, devices) = tokio::try_join!(list("visit:browser"), list("visit:os"), list("visit:device"))?;
    Ok(ok(json!({
        "browsers": top(&browsers, "browser", &["visitors"]),
        "operating_systems": top(&os, "os", &["visitors"]),
        "devices": top(&devices, "device", &["visitors"]),
    }))
    .into_response())
}

/// Visitors and pageviews of the last 5 minutes, and their pages.
#[utoipa::path(
    get,
    path = "/realtime/{websiteId}",
    tag = "analytics",
    operation_id = "getRealtime",
    summary = "Visitors right now",
    description = "Scope: `read`. Visitors and pageviews of the last 5 minutes and their top 10 pages.",
    params(("websiteId" = String, Path, description = "Website id or domain")),
    responses(
        (status = 200, description = "The last 5 minutes", body = Success<Realtime>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn realtime(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let website = site(&state, credentials, website_id).await?;
    let (totals, pages) = tokio::try_join!(
        run(&state, query(&website.id, "realtime", &["visitors", "pageviews"])),
        run(&state, breakdown_of(&website.id, "realtime", "event:page", &["visitors"], 10)),
    )?;
    let values = totals.rows.first().map(|r| r.metrics.clone()).unwrap_or_default();
    Ok(ok(json!({
        "visitors": values.first().copied().unwrap_or_default() as i64,
        "pageviews": values.get(1).copied().unwrap_or_default() as i64,
        "from": rfc3339(totals.from_unix_ms),
        "to": rfc3339(totals.to_unix_ms),
        "top_pages": top(&pages, "page", &["visitors"]),
    }))
    .into_response())
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

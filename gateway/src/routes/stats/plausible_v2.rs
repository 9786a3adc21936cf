//! Plausible's Stats API v2 query (`POST /query/{websiteId}`) inside our envelope; [`v2`] also
//! answers the drop-in's `POST /api/v2/query`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::access::Scope;
use proto::analytics::v1 as anpb;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::input::{CONFIGURE_GOALS, Face, renamed, repeated, unconfigured_goal};
use super::v2_filters;
use crate::auth::Credentials;
use crate::envelope::{Paged, Pagination, Path, RawBody, paged};
use crate::error::invalid;
use crate::error::{ApiError, ApiResult};
use crate::flows::access::authorized_website;
use crate::flows::stats::{Compared, Comparison, row_metric, stats_query};
use crate::rules;
use crate::state::AppState;
use crate::time::in_zone;
use crate::vocabulary::{self, CUSTOM_PERIOD};
use proto::vocabulary::{AUTO_TIME, PROPS, TIME};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(flexible_query))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QueryBody)]
pub struct V2Body {
    /// Website id or domain. `/query/{websiteId}` names the site in its path: there `site_id`
    /// may be left out (or null), and when given must name the same site. Required by the
    /// Plausible mount.
    #[serde(default)]
    #[schema(schema_with = crate::schema::query_site_id)]
    pub(crate) site_id: Option<String>,
    /// Each metric once.
    #[schema(schema_with = crate::schema::query_metrics)]
    metrics: Vec<String>,
    #[schema(schema_with = crate::schema::date_range)]
    date_range: Value,
    /// Each dimension once, at most one of them time (`time:*`).
    #[serde(default)]
    #[schema(schema_with = crate::schema::query_dimensions)]
    dimensions: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::filters)]
    filters: Vec<Value>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::order_by)]
    order_by: Vec<(String, String)>,
    #[serde(default, deserialize_with = "crate::envelope::object")]
    include: V2Include,
    #[serde(default, deserialize_with = "crate::envelope::object_or_null")]
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

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
#[schema(as = QueryPagination)]
pub struct V2Pagination {
    /// Default 10000. A page whose answer would pass 16 MiB (rows of long values) is a 400
    /// asking for fewer rows.
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

/// A day of a v2 `date_range`, `YYYY-MM-DD`. A date-time beside a day is refused, as Plausible
/// refuses it: read as its day, it would count other instants than the caller named.
fn v2_day(value: &Value) -> ApiResult<&str> {
    let text = value.as_str().unwrap_or_default();
    if rules::is_day(text) {
        return Ok(text);
    }
    Err(invalid("date_range", "must be two days (YYYY-MM-DD) or two RFC 3339 date-times"))
}

/// Where a v2 `date_range` of two date-times begins and ends: `[from, to)` in unix milliseconds,
/// the second one's whole second included (Plausible counts events up to it, in whole seconds).
fn v2_instants(first: &Value, last: &Value) -> Option<anpb::Instants> {
    let instant = |value: &Value| {
        let text = value.as_str()?;
        let at = chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis();
        (!rules::is_day(text)).then_some(at - at.rem_euclid(1000))
    };
    Some(anpb::Instants { from_unix_ms: instant(first)?, to_unix_ms: instant(last)? + 1000 })
}

/// `"7d"`, `["2024-01-01", "2024-01-31"]` or two date-times → the period and the day it ends
/// on (today).
pub(crate) fn v2_date_range(range: &Value) -> ApiResult<(anpb::Period, String)> {
    use anpb::period::Kind;
    if let Value::Array(ends) = range
        && let [first, last] = ends.as_slice()
        && let Some(instants) = v2_instants(first, last)
    {
        if instants.from_unix_ms >= instants.to_unix_ms {
            return Err(invalid("date_range", "the first date-time must not be after the second"));
        }
        return Ok((anpb::Period { kind: Some(Kind::Instants(instants)) }, String::new()));
    }
    let (name, date) = match range {
        Value::String(period) => (period.as_str(), String::new()),
        Value::Array(days) if days.len() == 2 => {
            (CUSTOM_PERIOD, format!("{},{}", v2_day(&days[0])?, v2_day(&days[1])?))
        }
        _ => return Err(invalid("date_range", "must be a period such as \"7d\" or [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]")),
    };
    vocabulary::period(name, &date, anpb::PeriodMeaning::PlausibleV2).map_err(|mut e| {
        // Both the period and its days are `date_range` to v2's clients.
        e.field = Some("date_range".into());
        e.into()
    })
}

/// A v2 query checked in everything but its site (which `request` names once it is known).
pub(crate) struct V2Query {
    request: anpb::QueryRequest,
    pagination: V2Pagination,
    body: V2Body,
}

/// `body` as the query it asks for, refused in `face`'s words where it is wrong, before its site
/// is read.
pub(crate) fn v2_checked(body: V2Body, face: Face) -> ApiResult<V2Query> {
    if face == Face::Plausible {
        schema_rules(&body).map_err(|text| face.refused("", text))?;
    }
    let (request, pagination) = v2_request(&body)?;
    v2_filters::plausible_rules(&body.filters, &body.metrics).map_err(|(field, text)| face.refused(field, text))?;
    v2_rules(&request, body.include.time_labels).map_err(|(field, text)| face.refused(field, text))?;
    Ok(V2Query { request, pagination, body })
}

/// Plausible's v2 result body for a checked query of `website`, and where its page sits.
pub(crate) async fn v2(
    state: &AppState,
    website: anpb::Website,
    query: V2Query,
    face: Face,
) -> ApiResult<(QueryResult, Pagination)> {
    let V2Query { mut request, pagination, body } = query;
    request.website_id = website.id.clone();
    if face == Face::Plausible
        && let Some(goal) = unconfigured_goal(state, &website.id, &request.filters, &["is"]).await?
    {
        let text = format!("Invalid filters. The goal `{goal}` is not configured for this site. {CONFIGURE_GOALS}");
        return Err(face.refused("filters", text));
    }
    let names = [("period", "date_range"), ("date", "date_range"), ("interval", "dimensions")];
    let Compared { answer, .. } = stats_query(state, request, Comparison::Nothing).await.map_err(renamed(&names))?;
    Ok(v2_body(website, body, pagination, answer))
}

/// What Plausible refuses of a query's shape, in its words (its schema's path in the body
/// first): an unknown metric or dimension, a metric or dimension asked twice, an unknown period,
/// an order by what is not queried. Ours words them after the field instead, where the request
/// is made.
fn schema_rules(body: &V2Body) -> Result<(), String> {
    if body.metrics.is_empty() {
        return Err("#/metrics: Expected a minimum of 1 items but got 0.".to_owned());
    }
    if let Some((i, metric)) = body.metrics.iter().enumerate().find(|(_, m)| !vocabulary::METRICS.contains(&m.as_str()))
    {
        return Err(format!("#/metrics/{i}: Invalid metric {}", Value::from(metric.as_str())));
    }
    if repeated(&body.metrics).is_some() {
        return Err("#/metrics: Expected items to be unique but they were not.".to_owned());
    }
    if let Some((i, dimension)) = body.dimensions.iter().enumerate().find(|(_, d)| !known_dimension(d)) {
        return Err(format!("#/dimensions/{i}: Invalid dimension {}", Value::from(dimension.as_str())));
    }
    if repeated(&body.dimensions).is_some() {
        return Err("#/dimensions: Expected items to be unique but they were not.".to_owned());
    }
    if let Value::String(_) = &body.date_range
        && v2_date_range(&body.date_range).is_err()
    {
        return Err(format!("#/date_range: Invalid date range {}", body.date_range));
    }
    let queried = |key: &String| body.metrics.contains(key) || body.dimensions.contains(key);
    if let Some((key, direction)) = body.order_by.iter().find(|(key, _)| !queried(key)) {
        // As Elixir shows the entry: a metric and the direction as atoms, a dimension as text.
        let key = match vocabulary::METRICS.contains(&key.as_str()) {
            true => format!(":{key}"),
            false => Value::from(key.as_str()).to_string(),
        };
        return Err(format!(
            "Invalid order_by entry '{{{key}, :{direction}}}'. Entry is not a queried metric or dimension."
        ));
    }
    Ok(())
}

/// The drop-in's query body, refused where its shape is wrong in the words of Plausible's JSON
/// schema: a field it does not know, one it requires left out.
pub(crate) fn plausible_body(bytes: &[u8]) -> ApiResult<V2Body> {
    crate::envelope::parse(bytes).map_err(|refused: ApiError| {
        let text = refused.error.text();
        let unknown = text.split("unknown field `").nth(1).and_then(|rest| rest.split('`').next());
        match (unknown, &refused.error.field) {
            (Some(field), path) => {
                // The JSON pointer of the field, its parents included (`#/include/comparisons`).
                let parents = path.as_deref().map(|p| p.replace('.', "/")).unwrap_or_default();
                let pointer = match parents.as_str() {
                    "" => field.to_owned(),
                    p if p == field || p.ends_with(&format!("/{field}")) => p.to_owned(),
                    p => format!("{p}/{field}"),
                };
                ApiError::new(
                    common::ErrorCode::Validation,
                    format!("#/{pointer}: Schema does not allow additional properties."),
                )
            }
            (None, Some(field)) if refused.error.message == "is required" => {
                ApiError::new(common::ErrorCode::Validation, format!("#: Required property {field} was not present."))
            }
            _ => refused,
        }
    })
}

/// Whether a query may be by `dimension`: one of the vocabulary's, or a custom property.
fn known_dimension(dimension: &str) -> bool {
    vocabulary::dimensions().any(|name| name == dimension)
        || dimension.strip_prefix(PROPS).is_some_and(|name| !name.is_empty())
}

/// The analytics query a v2 body asks for, of a site the caller names once it is known, and its
/// page; everything but the site's existence is checked here.
pub(crate) fn v2_request(body: &V2Body) -> ApiResult<(anpb::QueryRequest, V2Pagination)> {
    let (period, end_day) = v2_date_range(&body.date_range)?;
    let order_by = body
        .order_by
        .iter()
        .map(|(key, direction)| match direction.as_str() {
            "asc" | "desc" => Ok(anpb::Order { key: key.clone(), descending: direction == "desc" }),
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
    if let Some(unknown) = body.metrics.iter().find(|m| !vocabulary::METRICS.contains(&m.as_str())) {
        return Err(invalid("metrics", format!("unknown metric {unknown:?}; use {}", vocabulary::METRICS.join(", "))));
    }
    if let Some(unknown) = body.dimensions.iter().find(|d| !known_dimension(d)) {
        let known: Vec<&str> = vocabulary::dimensions().collect();
        let text = format!("unknown dimension {unknown:?}; use {}, or {PROPS}<name>", known.join(", "));
        return Err(invalid("dimensions", text));
    }
    let request = anpb::QueryRequest {
        metrics: body.metrics.clone(),
        dimensions: body.dimensions.clone(),
        filters: v2_filters::conjunction(&body.filters)?,
        period: Some(period),
        end_day,
        order_by,
        limit: pagination.limit,
        offset: pagination.offset,
        fill_time: false,
        previous_period: false,
        period_meaning: anpb::PeriodMeaning::PlausibleV2.into(),
        ..Default::default()
    };
    Ok((request, pagination))
}

/// Plausible v2's rules on which filters, metrics, dimensions and includes go together, in its
/// words, with the field each is about (docs/behaviour.md, "Plausible fidelity"): countries are
/// filtered by their 2-letter code; `time_on_page` and `scroll_depth` are of pages;
/// `views_per_visit` is of whole visits, by no dimension; a metric of visits does not go with a dimension of
/// events (but the page), nor one of events with a visit's entry or exit page.
fn v2_rules(request: &anpb::QueryRequest, time_labels: bool) -> Result<(), (&'static str, String)> {
    use anpb::{Metric as M, Property as P};
    let page = P::EventPage.name();
    let page_filter = request.filters.iter().any(|f| f.dimension == page);
    let by_page = request.dimensions.iter().any(|d| d == page);
    let goal = P::EventGoal.name();
    let of_goals = request.dimensions.iter().any(|d| d == goal) || request.filters.iter().any(|f| f.dimension == goal);
    let country = P::VisitCountry.name();
    let not_a_code = |f: &anpb::Filter| f.values.iter().any(|v| v.chars().count() != 2);
    if request
        .filters
        .iter()
        .any(|f| f.dimension == country && matches!(f.operator.as_str(), "is" | "is_not") && not_a_code(f))
    {
        return Err((
            "filters",
            format!("Invalid {country} filter, {country} needs to be a valid 2-letter country code."),
        ));
    }
    for metric in &request.metrics {
        let text = match M::from_name(metric) {
            Some(M::ConversionRate | M::GroupConversionRate) if !of_goals => {
                format!("Metric `{metric}` can only be queried with {goal} filters or dimensions.")
            }
            Some(M::TimeOnPage | M::ScrollDepth) if !by_page && !page_filter => {
                format!("Metric `{metric}` can only be queried with {page} filters or dimensions.")
            }
            Some(M::ViewsPerVisit) if page_filter => {
                format!("Metric `{metric}` cannot be queried with a filter on `{page}`.")
            }
            Some(M::ViewsPerVisit) if !request.dimensions.is_empty() => {
                format!("Metric `{metric}` cannot be queried with `dimensions`.")
            }
            _ => continue,
        };
        return Err(("metrics", text));
    }
    let listed = |names: Vec<&String>| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let metrics_of = |kinds: &[M]| -> Vec<&String> {
        request.metrics.iter().filter(|m| M::from_name(m).is_some_and(|m| kinds.contains(&m))).collect()
    };
    let of_visits = metrics_of(&[M::BounceRate, M::VisitDuration, M::ViewsPerVisit]);
    let of_events = metrics_of(&[M::Pageviews, M::Events, M::ScrollDepth, M::TotalRevenue, M::AverageRevenue]);
    let event_dimensions: Vec<_> = request.dimensions.iter().filter(|d| d.starts_with("event:")).collect();
    let visit_pages = [P::VisitEntryPage.name(), P::VisitExitPage.name()];
    let visit_dimensions: Vec<_> = request.dimensions.iter().filter(|d| visit_pages.contains(&d.as_str())).collect();
    // By the page alone, a visit's metrics are those of the visits that entered there.
    if event_dimensions != [page] {
        let clashes =
            [("Session", of_visits, "event", event_dimensions), ("Event", of_events, "session", visit_dimensions)];
        for (kind, metrics, other, dimensions) in clashes {
            if !metrics.is_empty() && !dimensions.is_empty() {
                let (metrics, dimensions) = (listed(metrics), listed(dimensions));
                let text = format!(
                    "{kind} metric(s) {metrics} cannot be queried along with {other} dimension(s) {dimensions}"
                );
                return Err(("metrics", text));
            }
        }
    }
    if time_labels && !request.dimensions.iter().any(|d| d.starts_with(TIME) || d == AUTO_TIME) {
        return Err(("include.time_labels", "Invalid include.time_labels: requires a time dimension.".into()));
    }
    Ok(())
}

/// Plausible's v2 query body.
#[derive(Serialize, ToSchema)]
pub struct QueryResult {
    results: Vec<QueryRow>,
    meta: QueryMeta,
    /// The query as understood, as Plausible echoes it: `site_id` (the domain), `metrics`,
    /// `date_range` (the period's first and last second, RFC 3339 in the site's time zone),
    /// `filters`, `dimensions` (`time` as the interval chosen), `order_by` (the default filled
    /// in), `include` (what was asked), `pagination`.
    #[schema(value_type = std::collections::BTreeMap<String, Value>)]
    query: QueryEcho,
}

#[derive(Serialize, ToSchema)]
pub struct QueryRow {
    /// In the order of the requested metrics; null for `time_on_page` and `scroll_depth`
    /// without engagement.
    #[schema(schema_with = crate::schema::metric_figures)]
    metrics: Vec<Value>,
    /// In the order of the requested dimensions.
    dimensions: Vec<String>,
}

/// What `include` asked for.
#[derive(Serialize, ToSchema)]
pub struct QueryMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    time_labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    total_rows: Option<u64>,
    /// Always false: there is no imported data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    imports_included: Option<bool>,
    /// Why imports were not included: always `no_imported_data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    imports_skip_reason: Option<&'static str>,
}

/// The query as understood, as Plausible echoes it.
#[derive(Serialize)]
pub struct QueryEcho {
    site_id: String,
    metrics: Vec<String>,
    /// The period's first and last second in the site's time zone.
    date_range: [String; 2],
    filters: Vec<Value>,
    dimensions: Vec<String>,
    /// As asked, or the order the rows came in: by time first, then by the first metric, most
    /// first.
    order_by: Vec<(String, String)>,
    /// The includes asked for.
    include: serde_json::Map<String, Value>,
    pagination: V2Pagination,
}

/// Continues [`v2`]: the answer as Plausible's body.
fn v2_body(
    website: anpb::Website,
    body: V2Body,
    pagination: V2Pagination,
    answer: anpb::QueryResponse,
) -> (QueryResult, Pagination) {
    let page = Pagination {
        page: u64::from(pagination.offset / pagination.limit) + 1,
        per_page: u64::from(pagination.limit),
        total: answer.total_rows,
    };
    let results = answer
        .rows
        .iter()
        .map(|row| QueryRow {
            metrics: body.metrics.iter().zip(&row.metrics).map(|(m, v)| row_metric(m, *v, &row.currency)).collect(),
            dimensions: row.dimensions.clone(),
        })
        .collect();
    let meta = QueryMeta {
        time_labels: body.include.time_labels.then(|| answer.time_labels.clone()),
        total_rows: body.include.total_rows.then_some(answer.total_rows),
        imports_included: body.include.imports.then_some(false),
        imports_skip_reason: body.include.imports.then_some("no_imported_data"),
    };
    // As Plausible echoes it: `time` named as the interval the period chose.
    let time = answer.dimensions.iter().find(|d| d.starts_with(TIME));
    let resolved = |name: String| match time {
        Some(time) if name == AUTO_TIME => time.clone(),
        _ => name,
    };
    let dimensions: Vec<String> = body.dimensions.into_iter().map(resolved).collect();
    let order_by = if body.order_by.is_empty() {
        let by_time = dimensions.iter().find(|d| d.starts_with(TIME)).map(|time| (time.clone(), "asc".to_owned()));
        by_time.into_iter().chain(body.metrics.first().map(|first| (first.clone(), "desc".to_owned()))).collect()
    } else {
        body.order_by.into_iter().map(|(key, direction)| (resolved(key), direction)).collect()
    };
    let asked = [
        ("imports", body.include.imports),
        ("time_labels", body.include.time_labels),
        ("total_rows", body.include.total_rows),
    ];
    let include = asked.into_iter().filter(|(_, asked)| *asked).map(|(name, _)| (name.to_owned(), Value::Bool(true)));
    let query = QueryEcho {
        site_id: website.domain,
        metrics: body.metrics,
        date_range: [
            in_zone(answer.from_unix_ms, &website.timezone),
            in_zone(answer.to_unix_ms - 1, &website.timezone),
        ],
        filters: body.filters,
        dimensions,
        order_by,
        include: include.collect(),
        pagination,
    };
    (QueryResult { results, meta, query }, page)
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
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn flexible_query(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let checked = crate::envelope::parse(&body).and_then(|body: V2Body| {
        if let Some(site_id) = &body.site_id {
            common::text::check_line("site_id", site_id)?;
        }
        v2_checked(body, Face::Ours)
    });
    let (_, website, query) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Read, checked).await?;
    if query.body.site_id.as_ref().is_some_and(|id| *id != website.id && *id != website.domain) {
        return Err(invalid("site_id", "names another site than the path"));
    }
    let (data, pagination) = v2(&state, website, query, Face::Ours).await?;
    Ok(paged(data, Some(pagination)).into_response())
}

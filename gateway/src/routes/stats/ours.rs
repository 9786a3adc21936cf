//! Zenovay's own statistics shapes: `/analytics/{websiteId}` (overview, pages, countries,
//! technology) and `/realtime/{websiteId}`.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use common::access::Scope;
use proto::analytics::v1 as anpb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{breakdown_of, invalid, query, run, totals};
use crate::auth::Credentials;
use crate::envelope::{Path, Success, ok, parse_query};
use crate::error::ApiResult;
use crate::routes::external::authorized_website;
use crate::schema::Range;
use crate::state::AppState;
use crate::time::rfc3339;
use crate::vocabulary;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(pages))
        .routes(routes!(countries))
        .routes(routes!(technology))
        .routes(routes!(realtime))
}

/// Verifies the key, then reads the site it names (id or domain) with read scope.
async fn site(state: &AppState, credentials: Credentials, site_id: String) -> ApiResult<anpb::Website> {
    let key = credentials.verify(state).await?;
    Ok(authorized_website(state, async { Ok(key) }, site_id, Scope::Read).await?.1)
}

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
            range if vocabulary::RANGES.contains(&range) => Ok(range.to_owned()),
            other => Err(invalid("range", format!("{other:?} is not one of {}", vocabulary::RANGES.join(", ")))),
        }
    }

    fn limit(&self) -> ApiResult<u32> {
        match self.limit.unwrap_or(10) {
            limit @ 1..=100 => Ok(limit),
            _ => Err(invalid("limit", "must be 1 to 100")),
        }
    }
}

/// A count of a row; counts are whole.
fn count(row: &anpb::Row, i: usize) -> u64 {
    row.metrics.get(i).copied().unwrap_or_default() as u64
}

/// The value of a row's only dimension.
fn label(row: &anpb::Row) -> String {
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
    /// Percent of visits with at most one pageview.
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
    /// ISO 3166-1 alpha-2 code.
    country: String,
    visitors: u64,
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
        (status = 404, response = crate::openapi::NotFound),
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
    let series = anpb::QueryRequest {
        dimensions: vec![interval.into()],
        fill_time: true,
        ..query(&website.id, &period, &["visitors", "pageviews"])
    };
    let (answer, series, countries) = tokio::try_join!(
        run(&state, query(&website.id, &period, &TOTALS)),
        run(&state, series),
        run(&state, breakdown_of(&website.id, &period, "visit:country", &["visitors"], params.limit()?)),
    )?;
    let values = totals(&answer);
    let value = |i: usize| values.get(i).copied().unwrap_or_default() as u64;
    Ok(ok(Overview {
        website_id: website.id,
        range: period,
        from: rfc3339(answer.from_unix_ms),
        to: rfc3339(answer.to_unix_ms),
        visitors: value(0),
        visits: value(1),
        pageviews: value(2),
        bounce_rate: value(3),
        visit_duration: value(4),
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
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct PageStats {
    /// Path of the page.
    page: String,
    visitors: u64,
    pageviews: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CountryStats {
    /// ISO 3166-1 alpha-2 code.
    country: String,
    visitors: u64,
    pageviews: u64,
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
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn pages(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let rows = breakdown_list(state, credentials, website_id, q, "event:page").await?;
    let pages = rows.iter().map(|r| PageStats { page: label(r), visitors: count(r, 0), pageviews: count(r, 1) });
    Ok(ok(pages.collect::<Vec<_>>()).into_response())
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
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn countries(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let rows = breakdown_list(state, credentials, website_id, q, "visit:country").await?;
    let countries =
        rows.iter().map(|r| CountryStats { country: label(r), visitors: count(r, 0), pageviews: count(r, 1) });
    Ok(ok(countries.collect::<Vec<_>>()).into_response())
}

/// Rows of visitors and pageviews by `dimension` over the range.
async fn breakdown_list(
    state: AppState,
    credentials: Credentials,
    website_id: String,
    q: Option<String>,
    dimension: &str,
) -> ApiResult<Vec<anpb::Row>> {
    let website = site(&state, credentials, website_id).await?;
    let params: RangeParams = parse_query(q.as_deref())?;
    const METRICS: [&str; 2] = ["visitors", "pageviews"];
    let request = breakdown_of(&website.id, &params.period()?, dimension, &METRICS, params.limit()?);
    Ok(run(&state, request).await?.rows)
}

#[derive(Serialize, ToSchema)]
pub struct Technology {
    browsers: Vec<BrowserVisitors>,
    operating_systems: Vec<OsVisitors>,
    devices: Vec<DeviceVisitors>,
}

#[derive(Serialize, ToSchema)]
pub struct BrowserVisitors {
    browser: String,
    visitors: u64,
}

#[derive(Serialize, ToSchema)]
pub struct OsVisitors {
    os: String,
    visitors: u64,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceVisitors {
    device: String,
    visitors: u64,
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
        (status = 404, response = crate::openapi::NotFound),
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
    Ok(ok(Technology {
        browsers: browsers.rows.iter().map(|r| BrowserVisitors { browser: label(r), visitors: count(r, 0) }).collect(),
        operating_systems: os.rows.iter().map(|r| OsVisitors { os: label(r), visitors: count(r, 0) }).collect(),
        devices: devices.rows.iter().map(|r| DeviceVisitors { device: label(r), visitors: count(r, 0) }).collect(),
    })
    .into_response())
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
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn realtime(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let website = site(&state, credentials, website_id).await?;
    let (answer, pages) = tokio::try_join!(
        run(&state, query(&website.id, "realtime", &["visitors", "pageviews"])),
        run(&state, breakdown_of(&website.id, "realtime", "event:page", &["visitors"], 10)),
    )?;
    let values = totals(&answer);
    let value = |i: usize| values.get(i).copied().unwrap_or_default() as u64;
    Ok(ok(Realtime {
        visitors: value(0),
        pageviews: value(1),
        from: rfc3339(answer.from_unix_ms),
        to: rfc3339(answer.to_unix_ms),
        top_pages: pages.rows.iter().map(|r| PageVisitors { page: label(r), visitors: count(r, 0) }).collect(),
    })
    .into_response())
}

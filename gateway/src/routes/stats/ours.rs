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

use crate::auth::Credentials;
use crate::envelope::{Path, Success, ok, parse_query};
use crate::error::ApiResult;
use crate::error::invalid;
use crate::flows::access::authorized_website;
use crate::flows::stats::{self, Overview, Realtime, breakdown_of, count, label, run};
use crate::schema::Range;
use crate::state::AppState;
use crate::vocabulary;
use anpb::{Metric, NamedPeriod, Property};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(pages))
        .routes(routes!(countries))
        .routes(routes!(technology))
        .routes(routes!(realtime))
}

/// Verifies the key, then reads the site it names (id or domain) with read scope.
/// The website the key may read, and the request's `input` (see [`authorized_website`]).
async fn site<T>(
    state: &AppState,
    credentials: Credentials,
    site_id: String,
    input: ApiResult<T>,
) -> ApiResult<(anpb::Website, T)> {
    let (_, website, input) = authorized_website(state, credentials.verify(state), site_id, Scope::Read, input).await?;
    Ok((website, input))
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

/// What a request of these routes asks for, checked.
struct Asked {
    range: NamedPeriod,
    limit: u32,
}

impl Asked {
    fn of(query: Option<&str>) -> ApiResult<Asked> {
        let params: RangeParams = parse_query(query)?;
        Ok(Asked { range: params.range()?, limit: params.limit()? })
    }

    fn period(&self) -> anpb::Period {
        vocabulary::named(self.range)
    }
}

impl RangeParams {
    fn range(&self) -> ApiResult<NamedPeriod> {
        let name = self.range.as_deref().unwrap_or(NamedPeriod::NamedPeriod30d.name());
        vocabulary::range(name)
            .ok_or_else(|| invalid("range", format!("{name:?} is not one of {}", vocabulary::RANGES.join(", "))))
    }

    fn limit(&self) -> ApiResult<u32> {
        match self.limit.unwrap_or(10) {
            limit @ 1..=100 => Ok(limit),
            _ => Err(invalid("limit", "must be 1 to 100")),
        }
    }
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
    let (website, asked) = site(&state, credentials, website_id, Asked::of(q.as_deref())).await?;
    let overview = stats::overview(&state, &website.id, asked.range, asked.limit).await?;
    Ok(ok(overview).into_response())
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
    /// ISO 3166-1 alpha-2 code; empty when the visitor's country is not known.
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
    let rows = breakdown_list(state, credentials, website_id, q, Property::EventPage).await?;
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
    let rows = breakdown_list(state, credentials, website_id, q, Property::VisitCountry).await?;
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
    dimension: Property,
) -> ApiResult<Vec<anpb::Row>> {
    let (website, asked) = site(&state, credentials, website_id, Asked::of(q.as_deref())).await?;
    const METRICS: [Metric; 2] = [Metric::Visitors, Metric::Pageviews];
    let request = breakdown_of(&website.id, &asked.period(), dimension.name(), &METRICS, asked.limit);
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
    let (website, asked) = site(&state, credentials, website_id, Asked::of(q.as_deref())).await?;
    let (period, limit) = (asked.period(), asked.limit);
    let list = |dimension: Property| {
        run(&state, breakdown_of(&website.id, &period, dimension.name(), &[Metric::Visitors], limit))
    };
    let (browsers, os, devices) =
        tokio::try_join!(list(Property::VisitBrowser), list(Property::VisitOs), list(Property::VisitDevice))?;
    Ok(ok(Technology {
        browsers: browsers.rows.iter().map(|r| BrowserVisitors { browser: label(r), visitors: count(r, 0) }).collect(),
        operating_systems: os.rows.iter().map(|r| OsVisitors { os: label(r), visitors: count(r, 0) }).collect(),
        devices: devices.rows.iter().map(|r| DeviceVisitors { device: label(r), visitors: count(r, 0) }).collect(),
    })
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
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn realtime(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let (website, ()) = site(&state, credentials, website_id, Ok(())).await?;
    Ok(ok(stats::realtime(&state, &website.id).await?).into_response())
}

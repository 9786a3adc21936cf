//! The Plausible drop-in's statistics and sites list under `/plausible`: Plausible's exact
//! requests and bodies, errors as `{"error": "…"}`, for existing Plausible clients.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use common::access::Scope;
use common::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::input::{Face, INVALID_KEY_OR_SITE, plausible_website};
use super::plausible_v1::{AggregateResult, BreakdownResult, TimeseriesResult, V1, as_plausible_reads, v1};
use super::plausible_v2::{QueryResult, V2Body, plausible_body, v2, v2_checked};
use crate::auth::Keyed;
use crate::envelope::{RawBody, parse_query, plausible};
use crate::error::ApiError;
use crate::flows::access::reachable_websites;
use crate::flows::stats;
use crate::schema::{AnyProperty, Interval, StatsParams};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plausible_aggregate))
        .routes(routes!(plausible_timeseries))
        .routes(routes!(plausible_breakdown))
        .routes(routes!(plausible_realtime))
        .routes(routes!(plausible_query))
        .routes(routes!(plausible_sites))
}

/// Plausible's words for a request without a key (docs/behaviour.md, "Plausible fidelity").
const MISSING_KEY: &str = "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
/// The same for the Sites API, which names no site.
const INVALID_KEY: &str =
    "Invalid API key. Please make sure you're using a valid API key with access to the resource you've requested.";

/// Whether the request carries no key at all (rather than a wrong one): as for Plausible, an
/// `Authorization` of another scheme than Bearer carries none.
fn without_key(headers: &HeaderMap) -> bool {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let bearer = authorization.is_some_and(|v| v.get(..7).is_some_and(|s| s.eq_ignore_ascii_case(b"bearer ")));
    !bearer && !headers.contains_key("x-api-key")
}

/// A refusal of the key or of the site in Plausible's status and words (docs/behaviour.md,
/// "Plausible fidelity"): 401 for a missing, unknown or revoked key and for a site out of reach.
/// The product's own refusals (expired key, address, plan, scope, limits) keep their status,
/// words and headers.
fn in_plausibles_words(e: ApiError, no_key: bool, refused: &'static str) -> ApiError {
    match e.error.code {
        ErrorCode::Unauthorized if no_key => Error::unauthorized(MISSING_KEY).into(),
        ErrorCode::Unauthorized | ErrorCode::Forbidden => Error::unauthorized(refused).into(),
        _ => e,
    }
}

/// A drop-in answer: Plausible's body, or the refusal in Plausible's words, `refused` being its
/// words for a key or site it refuses.
async fn answered<T: Serialize>(
    headers: &HeaderMap,
    refused: &'static str,
    answer: impl Future<Output = Result<T, ApiError>>,
) -> Response {
    let no_key = without_key(headers);
    plausible(answer.await.map_err(|e| in_plausibles_words(e, no_key, refused)))
}

/// A v1 statistics answer of the drop-in.
async fn v1_answer(state: &AppState, headers: &HeaderMap, credentials: Keyed, q: Option<String>, kind: V1) -> Response {
    answered(headers, INVALID_KEY_OR_SITE, async { Ok(v1(state, credentials?, q, kind, Face::Plausible).await?.0) })
        .await
}

/// An unknown route under the drop-in's mount, in Plausible's error shape.
pub async fn plausible_not_found(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Response {
    let message = format!("no route for {method} {}", uri.path());
    ApiError::new(common::ErrorCode::NotFound, message).into_plausible_response()
}

/// A known drop-in route asked with another method, in Plausible's error shape.
pub async fn plausible_method_not_allowed(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    ApiError::new(common::ErrorCode::MethodNotAllowed, message).into_plausible_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/stats/aggregate",
    tag = "plausible",
    operation_id = "plausibleAggregate",
    summary = "Plausible v1 aggregate, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/aggregate`: no envelope; parameters it does not read (`with_imported`, …) are ignored, as Plausible ignores them.",
    params(StatsParams, ("compare" = Option<String>, Query, description = "`previous_period` adds each metric's `change`; any other value is ignored, as Plausible ignores it.")),
    responses(
        (status = 200, description = "Plausible's aggregate body", body = AggregateResult),
    ),
)]
pub async fn plausible_aggregate(
    State(state): State<AppState>,
    headers: HeaderMap,
    credentials: Keyed,
    RawQuery(q): RawQuery,
) -> Response {
    v1_answer(&state, &headers, credentials, q, V1::Aggregate).await
}

#[utoipa::path(
    get,
    path = "/api/v1/stats/timeseries",
    tag = "plausible",
    operation_id = "plausibleTimeseries",
    summary = "Plausible v1 timeseries, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/timeseries`: no envelope; parameters it does not read (`with_imported`, …) are ignored, as Plausible ignores them.",
    params(
        StatsParams,
        (
            "interval" = Option<Interval>,
            Query,
            description = "Default: `hour` for `day` and `24h`, `month` for `6mo`, `12mo` and `year`; for `all`, `month` once its first and last days are a month apart, else `date` (or `hour` for a single day); else `date`."
        ),
    ),
    responses(
        (status = 200, description = "Plausible's timeseries body", body = TimeseriesResult),
    ),
)]
pub async fn plausible_timeseries(
    State(state): State<AppState>,
    headers: HeaderMap,
    credentials: Keyed,
    RawQuery(q): RawQuery,
) -> Response {
    v1_answer(&state, &headers, credentials, q, V1::Timeseries).await
}

#[utoipa::path(
    get,
    path = "/api/v1/stats/breakdown",
    tag = "plausible",
    operation_id = "plausibleBreakdown",
    summary = "Plausible v1 breakdown, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/breakdown`: no envelope; parameters it does not read (`with_imported`, …) are ignored, as Plausible ignores them.",
    params(
        StatsParams,
        ("property" = AnyProperty, Query, description = "The property to break down by: one of `Property`, or `event:props:<name>`."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rows per page; default 100."),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 2147483647, description = "Default 1."),
    ),
    responses(
        (status = 200, description = "Plausible's breakdown body", body = BreakdownResult),
    ),
)]
pub async fn plausible_breakdown(
    State(state): State<AppState>,
    headers: HeaderMap,
    credentials: Keyed,
    RawQuery(q): RawQuery,
) -> Response {
    v1_answer(&state, &headers, credentials, q, V1::Breakdown).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SiteParam {
    /// Website id or domain.
    #[serde(default)]
    #[param(required = true)]
    site_id: Option<String>,
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
    path = "/api/v1/sites",
    tag = "plausible",
    operation_id = "plausibleSites",
    summary = "Plausible Sites API list, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/sites`: every website of the teams the key reaches, by domain, in one page (`meta.after` is always null).",
    responses(
        (status = 200, description = "The sites", body = PlausibleSites),
    ),
)]
pub async fn plausible_sites(State(state): State<AppState>, headers: HeaderMap, credentials: Keyed) -> Response {
    answered(&headers, INVALID_KEY, async {
        let key = credentials?.verify(&state).await?;
        let authorized = key.authorize(&state, Scope::Read, None).await?;
        let mut websites = reachable_websites(&state, &authorized).await?;
        websites.sort_by(|a, b| a.website.domain.cmp(&b.website.domain));
        let limit = u32::try_from(websites.len()).unwrap_or(u32::MAX).max(1);
        let sites = websites.iter().map(|listed| {
            let w = &listed.website;
            PlausibleSite { domain: w.domain.clone(), timezone: w.timezone.clone() }
        });
        let meta = PlausibleSitesMeta::one_page(limit);
        Ok(PlausibleSites { sites: sites.collect(), meta })
    })
    .await
}

/// Plausible answers realtime visitors with a bare number.
#[utoipa::path(
    get,
    path = "/api/v1/stats/realtime/visitors",
    tag = "plausible",
    operation_id = "plausibleRealtimeVisitors",
    summary = "Plausible v1 realtime visitors, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/stats/realtime/visitors`: the visitors of the last 5 minutes as a bare number.",
    params(SiteParam),
    responses(
        (status = 200, description = "Visitors of the last 5 minutes", body = u64, content_type = "application/json"),
    ),
)]
pub async fn plausible_realtime(
    State(state): State<AppState>,
    headers: HeaderMap,
    credentials: Keyed,
    RawQuery(q): RawQuery,
) -> Response {
    answered(&headers, INVALID_KEY_OR_SITE, async {
        let key = credentials?.verify(&state).await?;
        let q = q.map(|q| as_plausible_reads(&q, &["site_id"]));
        let params: SiteParam = key.validated(&state, Scope::Read, parse_query(q.as_deref())).await?;
        let (website, ()) = plausible_website(&state, &key, params.site_id, Ok(())).await?;
        Ok(stats::realtime_totals(&state, &website.id).await?.visitors)
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v2/query",
    tag = "plausible",
    operation_id = "plausibleQuery",
    summary = "Plausible v2 query, drop-in",
    description = "Scope: `read` (the query only reads). As Plausible's `POST /api/v2/query`, `site_id` required: no envelope.",
    request_body = V2Body,
    responses(
        (status = 200, description = "Plausible's query body", body = QueryResult),
    ),
)]
pub async fn plausible_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    credentials: Keyed,
    body: Result<RawBody, ApiError>,
) -> Response {
    answered(&headers, INVALID_KEY_OR_SITE, async {
        // Too large a body is refused before the key is verified, as on every other route (a
        // missing or malformed key was refused on its way in).
        let RawBody(body) = body?;
        let key = credentials?.verify(&state).await?;
        let body: V2Body = key.validated(&state, Scope::Read, plausible_body(&body)).await?;
        let site_id = body.site_id.clone();
        let (website, query) = plausible_website(&state, &key, site_id, v2_checked(body, Face::Plausible)).await?;
        Ok(v2(&state, website, query, Face::Plausible).await?.0)
    })
    .await
}

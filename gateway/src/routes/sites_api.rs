//! Plausible's Sites API under the drop-in's mount (sites, goals) and its health checks, in
//! Plausible's bodies.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::Error;
use common::access::Scope;
use proto::analytics::v1 as anpb;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Keyed;
use crate::auth::VerifiedKey;
use crate::envelope::{Path, RawBody, parse_query, plausible};
use crate::error::invalid;
use crate::error::{ApiError, ApiResult};
use crate::flows::access::authorized_website;
use crate::flows::goals::{self, GoalType};
use crate::routes::stats::dropin::PlausibleSitesMeta;
use crate::routes::stats::plausible_v1::as_plausible_reads;
use crate::schema::always_true;
use crate::state::AppState;

/// Plausible's Sites API under the drop-in's mount.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plausible_site))
        .routes(routes!(plausible_goals, plausible_put_goal))
        .routes(routes!(plausible_delete_goal))
        .routes(routes!(plausible_health))
        .routes(routes!(plausible_ready))
        .routes(routes!(plausible_live))
}

/// Plausible's answer to a deletion.
#[derive(Serialize, ToSchema)]
pub struct PlausibleDeleted {
    #[schema(schema_with = always_true)]
    deleted: bool,
}

/// A site as Plausible's Sites API shows one.
#[derive(Serialize, ToSchema)]
pub struct PlausibleSiteDetails {
    domain: String,
    timezone: String,
    /// Properties allowed on the site's events: every property is, so the list is empty.
    custom_properties: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/sites/{site_id}",
    tag = "plausible",
    operation_id = "plausibleSite",
    summary = "Plausible Sites API site, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/sites/{site_id}`: the site's domain and time zone.",
    params(("site_id" = String, Path, description = "Website id or domain")),
    responses(
        (status = 200, description = "The site", body = PlausibleSiteDetails),
        (status = 404, response = crate::openapi::PlausibleNotFound),
    ),
)]
pub async fn plausible_site(
    State(state): State<AppState>,
    credentials: Keyed,
    site_id: Result<Path<String>, ApiError>,
) -> Response {
    plausible(
        async {
            let Path(site_id) = site_id?;
            let key = credentials?.verify(&state);
            let (_, website, ()) =
                authorized_website(&state, key, site_id, Scope::Read, Ok(())).await.map_err(site_not_found)?;
            let site =
                PlausibleSiteDetails { domain: website.domain, timezone: website.timezone, custom_properties: vec![] };
            Ok(site)
        }
        .await,
    )
}

/// Plausible's words for a site that is not there.
fn site_not_found(mut e: ApiError) -> ApiError {
    if e.error.code == common::ErrorCode::NotFound {
        e.error.message = "Site could not be found".into();
    }
    e
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GoalsParams {
    /// Website id or domain. Required, as Plausible requires it; its absence is answered in
    /// Plausible's words, which is why it is read as optional.
    #[serde(default)]
    #[param(required = true, value_type = String)]
    site_id: Option<String>,
}

/// A goal as Plausible's Sites API lists it.
#[derive(Serialize, ToSchema)]
pub struct PlausibleGoal {
    id: String,
    display_name: String,
    /// `event` or `page`.
    goal_type: String,
    event_name: Option<String>,
    page_path: Option<String>,
}

impl PlausibleGoal {
    fn of(g: anpb::Goal) -> PlausibleGoal {
        PlausibleGoal {
            goal_type: goals::goal_type(&g).to_owned(),
            id: g.id,
            display_name: g.display_name,
            event_name: g.event_name,
            page_path: g.page_path,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlausibleGoals {
    goals: Vec<PlausibleGoal>,
    meta: PlausibleSitesMeta,
}

/// `site_id` of a Sites API call, which Plausible requires by name.
fn required_site_id(site_id: Option<String>, action: &str) -> ApiResult<String> {
    let site_id = site_id.ok_or_else(|| invalid("site_id", format!("Parameter `site_id` is required to {action}")))?;
    common::text::check_line("site_id", &site_id)?;
    Ok(site_id)
}

/// The site a Sites API call names by `site_id` (required to `action`), read with `scope`, and
/// the call's checked `input`, refused only after the site's refusals.
async fn named_site<T>(
    state: &AppState,
    key: VerifiedKey,
    scope: Scope,
    site_id: Option<String>,
    action: &str,
    input: ApiResult<T>,
) -> ApiResult<(anpb::Website, T)> {
    let site_id = key.validated(state, scope, required_site_id(site_id, action)).await?;
    let (_, website, input) =
        authorized_website(state, async { Ok(key) }, site_id, scope, input).await.map_err(site_not_found)?;
    Ok((website, input))
}

#[utoipa::path(
    get,
    path = "/api/v1/sites/goals",
    tag = "plausible",
    operation_id = "plausibleGoals",
    summary = "Plausible Sites API goals, drop-in",
    description = "Scope: `read`. As Plausible's `GET /api/v1/sites/goals?site_id=…`: the site's goals in one page (`meta.after` is always null).",
    params(GoalsParams),
    responses(
        (status = 200, description = "The goals", body = PlausibleGoals),
        (status = 404, response = crate::openapi::PlausibleNotFound),
    ),
)]
pub async fn plausible_goals(State(state): State<AppState>, credentials: Keyed, RawQuery(q): RawQuery) -> Response {
    plausible(
        async {
            let key = credentials?.verify(&state).await?;
            let q = q.map(|q| as_plausible_reads(&q, &["site_id"]));
            let params: GoalsParams = key.validated(&state, Scope::Read, parse_query(q.as_deref())).await?;
            let (website, ()) = named_site(&state, key, Scope::Read, params.site_id, "list goals", Ok(())).await?;
            let goals: Vec<PlausibleGoal> =
                goals::list(&state, website.id).await?.into_iter().map(PlausibleGoal::of).collect();
            let limit = u32::try_from(goals.len()).unwrap_or(u32::MAX).max(1);
            let meta = PlausibleSitesMeta::one_page(limit);
            Ok(PlausibleGoals { goals, meta })
        }
        .await,
    )
}

/// The parameters of Plausible's `PUT /api/v1/sites/goals`, in a JSON body, a form body or the
/// query string.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlausibleGoalBody {
    /// Website id or domain. Required, as Plausible requires it.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    site_id: Option<String>,
    /// `event` (give `event_name`) or `page` (give `page_path`). Required.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(event|page)$")]
    goal_type: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::goal_event_name)]
    event_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::goal_page_path)]
    page_path: Option<String>,
    /// A revenue goal's currency (ISO 4217), with `goal_type` `event`.
    #[serde(default)]
    #[schema(schema_with = crate::schema::goal_currency)]
    currency: Option<String>,
}

/// Parameters from a JSON body, a form body, or (with no body) the query string.
fn sites_api_params<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    query: Option<&str>,
) -> ApiResult<T> {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    match (body.is_empty(), form) {
        (true, _) => parse_query(query),
        (false, true) => parse_query(Some(std::str::from_utf8(body).map_err(|_| invalid("body", "must be UTF-8"))?)),
        (false, false) => crate::envelope::parse(body),
    }
}

/// The event name or page path a `PUT /api/v1/sites/goals` asks for, by its `goal_type`.
fn goal_target(params: &PlausibleGoalBody) -> ApiResult<(Option<String>, Option<String>)> {
    let kind = match params.goal_type.as_deref() {
        Some("event") => GoalType::Event,
        Some("page") => GoalType::Page,
        Some(_) => return Err(invalid("goal_type", "must be event or page")),
        None => return Err(invalid("goal_type", "Parameter `goal_type` is required to create a goal")),
    };
    goals::target_of(kind, &params.event_name, &params.page_path)
}

/// A goal as Plausible's `PUT /api/v1/sites/goals` answers it.
#[derive(Serialize, ToSchema)]
pub struct PlausibleCreatedGoal {
    id: String,
    display_name: String,
    /// `event` or `page`.
    goal_type: String,
    event_name: Option<String>,
    page_path: Option<String>,
    domain: String,
}

#[utoipa::path(
    put,
    path = "/api/v1/sites/goals",
    tag = "plausible",
    operation_id = "plausiblePutGoal",
    summary = "Plausible Sites API find-or-create goal, drop-in",
    description = "Scope: `write`. As Plausible's `PUT /api/v1/sites/goals`: `site_id`, `goal_type` (`event` or `page`) and `event_name` or `page_path`, as JSON, a form or query parameters. The site's goal of that name when there is one, else a new one (409 when the site has 100 goals already).",
    request_body = PlausibleGoalBody,
    responses(
        (status = 200, description = "The goal", body = PlausibleCreatedGoal),
        (status = 404, response = crate::openapi::PlausibleNotFound),
        (status = 409, response = crate::openapi::PlausibleConflict),
    ),
)]
pub async fn plausible_put_goal(
    State(state): State<AppState>,
    credentials: Keyed,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Result<RawBody, ApiError>,
) -> Response {
    plausible(
        async {
            let RawBody(body) = body?;
            let key = credentials?.verify(&state).await?;
            let params: PlausibleGoalBody =
                key.validated(&state, Scope::Write, sites_api_params(&headers, &body, q.as_deref())).await?;
            let target = goal_target(&params);
            let (website, (event_name, page_path)) =
                named_site(&state, key, Scope::Write, params.site_id, "create a goal", target).await?;
            let wanted = match (&event_name, &page_path) {
                (Some(name), _) => name.trim().to_owned(),
                (_, path) => format!("Visit {}", path.as_deref().unwrap_or_default()),
            };
            let existing =
                goals::list(&state, website.id.clone()).await?.into_iter().find(|g| g.display_name == wanted);
            let goal = match existing {
                Some(goal) => goal,
                None => {
                    let request = anpb::CreateGoalRequest {
                        website_id: website.id,
                        event_name,
                        page_path,
                        currency: params.currency,
                    };
                    goals::create(&state, request).await?
                }
            };
            let PlausibleGoal { id, display_name, goal_type, event_name, page_path } = PlausibleGoal::of(goal);
            Ok(PlausibleCreatedGoal { id, display_name, goal_type, event_name, page_path, domain: website.domain })
        }
        .await,
    )
}

#[utoipa::path(
    delete,
    path = "/api/v1/sites/goals/{goal_id}",
    tag = "plausible",
    operation_id = "plausibleDeleteGoal",
    summary = "Plausible Sites API delete goal, drop-in",
    description = "Scope: `write`. As Plausible's `DELETE /api/v1/sites/goals/{goal_id}`, `site_id` in the query string or the body.",
    params(("goal_id" = String, Path, description = "The goal's id"), GoalsParams),
    responses(
        (status = 200, description = "Deleted", body = PlausibleDeleted),
        (status = 404, response = crate::openapi::PlausibleNotFound),
    ),
)]
pub async fn plausible_delete_goal(
    State(state): State<AppState>,
    credentials: Keyed,
    headers: HeaderMap,
    goal_id: Result<Path<String>, ApiError>,
    RawQuery(q): RawQuery,
    body: Result<RawBody, ApiError>,
) -> Response {
    plausible(
        async {
            let (Path(goal_id), RawBody(body)) = (goal_id?, body?);
            let key = credentials?.verify(&state).await?;
            let params: GoalsParams =
                key.validated(&state, Scope::Write, sites_api_params(&headers, &body, q.as_deref())).await?;
            let (website, ()) = named_site(&state, key, Scope::Write, params.site_id, "delete a goal", Ok(())).await?;
            goals::delete(&state, website.id, goal_id).await.map_err(|mut e| {
                if e.error.code == common::ErrorCode::NotFound {
                    e.error.message = "Goal could not be found".into();
                }
                e
            })?;
            Ok(PlausibleDeleted { deleted: true })
        }
        .await,
    )
}

/// Plausible's health checks, which clients and uptime monitors probe: no key. Ready when the
/// statistics backend answers.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "plausible",
    operation_id = "plausibleHealth",
    summary = "Plausible health check, drop-in",
    description = "No key. As Plausible's `GET /api/health`: 200 when the statistics backend answers, else 503 (503 too while the gateway drains before it stops).",
    security(),
    responses(
        (status = 200, description = "Ready", body = Object, content_type = "application/json"),
        (status = 503, response = crate::openapi::PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_health(State(state): State<AppState>) -> Response {
    if let Some(draining) = crate::health::draining(&state) {
        return plausible(Err::<serde_json::Value, _>(draining));
    }
    let mut analytics = state.analytics.clone();
    let probe = anpb::ListWebsitesRequest { team_ids: vec!["health-probe".to_owned()] };
    let up = crate::health::reachable(async move { analytics.list_websites(probe).await.map(drop) }).await;
    plausible(match up {
        true => Ok(json!({ "analytics": "ok" })),
        false => Err(Error::unavailable("analytics").into()),
    })
}

/// Plausible's readiness check: the same as its health check.
#[utoipa::path(
    get,
    path = "/api/system/health/ready",
    tag = "plausible",
    operation_id = "plausibleReady",
    summary = "Plausible readiness check, drop-in",
    description = "No key. As Plausible's `GET /api/system/health/ready`: the answer of `GET /api/health`.",
    security(),
    responses(
        (status = 200, description = "Ready", body = Object, content_type = "application/json"),
        (status = 503, response = crate::openapi::PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_ready(state: State<AppState>) -> Response {
    plausible_health(state).await
}

/// Plausible's liveness check: the gateway answers.
#[utoipa::path(
    get,
    path = "/api/system/health/live",
    tag = "plausible",
    operation_id = "plausibleLive",
    summary = "Plausible liveness check, drop-in",
    description = "No key. As Plausible's `GET /api/system/health/live`: `{\"ok\": true}` while the gateway runs, draining included.",
    security(),
    responses((status = 200, description = "Live", body = Object, content_type = "application/json")),
)]
pub async fn plausible_live() -> Response {
    axum::Json(json!({ "ok": true })).into_response()
}

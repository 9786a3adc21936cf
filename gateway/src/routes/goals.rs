//! Goals of a website (README, "Events and statistics"): `/websites/{id}/goals` in the envelope,
//! and Plausible's Sites API calls for sites and goals under the drop-in's mount, in Plausible's
//! bodies. A goal is a custom event by name, or pageviews of the pages a path matches.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::Error;
use common::access::Scope;
use proto::analytics::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Credentials, VerifiedKey};
use crate::envelope::{Path, RawBody, created, ok, parse_query};
use crate::envelope::{Success, plausible};
use crate::error::{ApiError, ApiResult};
use crate::flows::access::authorized_website;
use crate::routes::stats::dropin::{Keyed, PlausibleSitesMeta};
use crate::rules;
use crate::schema::always_true;
use crate::state::AppState;
use crate::time::rfc3339;

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    Error::validation(format!("{field}: {message}")).into()
}

fn goal_type(g: &pb::Goal) -> &'static str {
    if g.event_name.is_some() { "event" } else { "page" }
}

/// Goals in the envelope.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(delete))
}

/// Plausible's Sites API under the drop-in's mount.
pub fn dropin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plausible_site))
        .routes(routes!(plausible_goals, plausible_put_goal))
        .routes(routes!(plausible_delete_goal))
        .routes(routes!(plausible_health))
        .route("/api/system/health/ready", axum::routing::get(plausible_health))
        .route("/api/system/health/live", axum::routing::get(plausible_live))
}

/// A goal of a website.
#[derive(Serialize, ToSchema)]
pub struct Goal {
    id: String,
    website_id: String,
    /// How `event:goal` names it: the event's name, or `Visit <page_path>`.
    display_name: String,
    #[schema(pattern = "^(event|page)$")]
    goal_type: &'static str,
    /// Set for an `event` goal.
    #[schema(required = true)]
    event_name: Option<String>,
    /// Set for a `page` goal; `*` stands for any characters.
    #[schema(required = true)]
    page_path: Option<String>,
    /// A revenue goal's currency (ISO 4217).
    #[schema(required = true)]
    currency: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A goal in the envelope's shape.
pub fn goal_view(g: &pb::Goal) -> Goal {
    Goal {
        id: g.id.clone(),
        website_id: g.website_id.clone(),
        display_name: g.display_name.clone(),
        goal_type: goal_type(g),
        event_name: g.event_name.clone(),
        page_path: g.page_path.clone(),
        currency: g.currency.clone(),
        created_at: rfc3339(g.created_at_unix_ms),
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeletedGoal {
    id: String,
    #[schema(schema_with = always_true)]
    deleted: bool,
}

/// Plausible's answer to a deletion.
#[derive(Serialize, ToSchema)]
pub struct PlausibleDeleted {
    #[schema(schema_with = always_true)]
    deleted: bool,
}

async fn goals_of(state: &AppState, website_id: String) -> ApiResult<Vec<pb::Goal>> {
    Ok(state.analytics.clone().list_goals(pb::ListGoalsRequest { website_id }).await?.into_inner().goals)
}

#[utoipa::path(
    get,
    path = "/websites/{id}/goals",
    tag = "websites",
    operation_id = "listGoals",
    summary = "List a website's goals",
    description = "Scope: `read`. Oldest first. `event:goal` names them by `display_name`.",
    params(("id" = String, Path, description = "Website id or domain")),
    responses(
        (status = 200, description = "The goals", body = Success<Vec<Goal>>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let (_, website) = authorized_website(&state, credentials.verify(&state), website_id, Scope::Read).await?;
    let goals = goals_of(&state, website.id).await?;
    Ok(ok(goals.iter().map(goal_view).collect::<Vec<_>>()).into_response())
}

/// What a goal counts, as Plausible's Sites API names it.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum GoalType {
    Event,
    Page,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGoalBody {
    /// Optional, as Plausible's clients send it: `event` with `event_name`, `page` with
    /// `page_path`.
    #[serde(default)]
    goal_type: Option<GoalType>,
    /// A custom event's name (1 to 120 characters, not `pageview` or `engagement`). Give this
    /// or `page_path`, not both.
    #[serde(default)]
    #[schema(schema_with = crate::schema::goal_event_name)]
    event_name: Option<String>,
    /// A page path starting with `/`; `*` stands for any characters (`/blog/*`).
    #[serde(default)]
    #[schema(schema_with = crate::schema::goal_page_path)]
    page_path: Option<String>,
    /// Makes an event goal a revenue goal: its events' revenue in this currency (ISO 4217)
    /// counts in `total_revenue` and `average_revenue`.
    #[serde(default)]
    #[schema(schema_with = crate::schema::goal_currency)]
    currency: Option<String>,
}

#[utoipa::path(
    post,
    path = "/websites/{id}/goals",
    tag = "websites",
    operation_id = "createGoal",
    summary = "Add a goal to a website",
    description = "Scope: `write`. A custom event goal (`event_name`, named by it) or a pageview goal (`page_path`, named `Visit <path>`); `goal_type` (`event` or `page`) may say which, as Plausible's clients send it. A site's goal names are unique: 409 for a second goal of the same name.",
    params(("id" = String, Path, description = "Website id or domain")),
    request_body = CreateGoalBody,
    responses(
        (status = 201, description = "The new goal", body = Success<Goal>),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let (_, website) = authorized_website(&state, credentials.verify(&state), website_id, Scope::Write).await?;
    let body: CreateGoalBody = crate::envelope::parse(&body)?;
    if let Some(kind) = body.goal_type {
        target_of(kind, &body.event_name, &body.page_path)?;
    }
    let request = pb::CreateGoalRequest {
        website_id: website.id,
        event_name: body.event_name,
        page_path: body.page_path,
        currency: body.currency,
    };
    let goal = create_goal(&state, request).await?;
    Ok(created(goal_view(&goal)).into_response())
}

async fn create_goal(state: &AppState, request: pb::CreateGoalRequest) -> ApiResult<pb::Goal> {
    if request.event_name.is_some() == request.page_path.is_some() {
        return Err(invalid("event_name", "give either event_name or page_path"));
    }
    Ok(state.analytics.clone().create_goal(request).await?.into_inner())
}

#[utoipa::path(
    delete,
    path = "/websites/{id}/goals/{goalId}",
    tag = "websites",
    operation_id = "deleteGoal",
    summary = "Delete a goal",
    description = "Scope: `write`. The events stay; only the goal goes.",
    params(
        ("id" = String, Path, description = "Website id or domain"),
        ("goalId" = String, Path, description = "The goal's id"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Success<DeletedGoal>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((website_id, goal_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, website) = authorized_website(&state, credentials.verify(&state), website_id, Scope::Write).await?;
    let request = pb::DeleteGoalRequest { website_id: website.id, goal_id: goal_id.clone() };
    state.analytics.clone().delete_goal(request).await?;
    Ok(ok(DeletedGoal { id: goal_id, deleted: true }).into_response())
}

// ---- Plausible's Sites API, drop-in ----

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
            let (_, website) = authorized_website(&state, key, site_id, Scope::Read).await.map_err(site_not_found)?;
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
    /// Website id or domain.
    #[serde(default)]
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
    fn of(g: pb::Goal) -> PlausibleGoal {
        PlausibleGoal {
            goal_type: goal_type(&g).to_owned(),
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
    rules::check_line("site_id", &site_id)?;
    Ok(site_id)
}

/// The site a Sites API call names by `site_id` (required to `action`), read with `scope`.
async fn named_site(
    state: &AppState,
    key: VerifiedKey,
    scope: Scope,
    site_id: Option<String>,
    action: &str,
) -> ApiResult<pb::Website> {
    let site_id = key.validated(state, scope, required_site_id(site_id, action)).await?;
    let (_, website) = authorized_website(state, async { Ok(key) }, site_id, scope).await.map_err(site_not_found)?;
    Ok(website)
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
            let params: GoalsParams = key.validated(&state, Scope::Read, parse_query(q.as_deref())).await?;
            let website = named_site(&state, key, Scope::Read, params.site_id, "list goals").await?;
            let goals: Vec<PlausibleGoal> =
                goals_of(&state, website.id).await?.into_iter().map(PlausibleGoal::of).collect();
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

/// The event name or page path a goal of `kind` counts; refused when the one it needs is missing.
fn target_of(
    kind: GoalType,
    event_name: &Option<String>,
    page_path: &Option<String>,
) -> ApiResult<(Option<String>, Option<String>)> {
    match kind {
        GoalType::Event => {
            let name = event_name.clone().ok_or_else(|| invalid("event_name", "is required with goal_type event"))?;
            Ok((Some(name), None))
        }
        GoalType::Page => {
            let path = page_path.clone().ok_or_else(|| invalid("page_path", "is required with goal_type page"))?;
            Ok((None, Some(path)))
        }
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
    target_of(kind, &params.event_name, &params.page_path)
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
    description = "Scope: `write`. As Plausible's `PUT /api/v1/sites/goals`: `site_id`, `goal_type` (`event` or `page`) and `event_name` or `page_path`, as JSON, a form or query parameters. The site's goal of that name when there is one, else a new one.",
    request_body = PlausibleGoalBody,
    responses(
        (status = 200, description = "The goal", body = PlausibleCreatedGoal),
        (status = 404, response = crate::openapi::PlausibleNotFound),
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
            let (event_name, page_path) = key.validated(&state, Scope::Write, goal_target(&params)).await?;
            let website = named_site(&state, key, Scope::Write, params.site_id, "create a goal").await?;
            let wanted = match (&event_name, &page_path) {
                (Some(name), _) => name.trim().to_owned(),
                (_, path) => format!("Visit {}", path.as_deref().unwrap_or_default()),
            };
            let existing = goals_of(&state, website.id.clone()).await?.into_iter().find(|g| g.display_name == wanted);
            let goal = match existing {
                Some(goal) => goal,
                None => {
                    let request = pb::CreateGoalRequest {
                        website_id: website.id,
                        event_name,
                        page_path,
                        currency: params.currency,
                    };
                    create_goal(&state, request).await?
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
            let website = named_site(&state, key, Scope::Write, params.site_id, "delete a goal").await?;
            let request = pb::DeleteGoalRequest { website_id: website.id, goal_id };
            state.analytics.clone().delete_goal(request).await.map_err(|e| {
                let mut e = ApiError::from(Error::from(e));
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
    description = "No key. As Plausible's `GET /api/health` (also `/api/system/health/ready`): 200 when the statistics backend answers, else 503. `/api/system/health/live` answers `{\"ok\": true}` while the gateway runs.",
    security(),
    responses(
        (status = 200, description = "Ready", body = Object, content_type = "application/json"),
        (status = 503, response = crate::openapi::PlausibleServiceUnavailable),
    ),
)]
pub async fn plausible_health(State(state): State<AppState>) -> Response {
    let mut analytics = state.analytics.clone();
    let probe = pb::ListWebsitesRequest { team_ids: vec!["health-probe".to_owned()] };
    let up = crate::reachable(async move { analytics.list_websites(probe).await.map(drop) }).await;
    plausible(match up {
        true => Ok(json!({ "analytics": "ok" })),
        false => Err(Error::unavailable("analytics").into()),
    })
}

/// Plausible's liveness check: the gateway answers.
pub async fn plausible_live() -> Response {
    axum::Json(json!({ "ok": true })).into_response()
}

/// `GET /api/v1/websites/{id}/goals` (session): a website's goals, for a member of its team.
pub async fn session_list(
    State(state): State<AppState>,
    session: crate::session::SessionUser,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let website = crate::routes::websites::member_website(&state, &session, website_id).await?;
    let goals = goals_of(&state, website.id).await?;
    Ok(ok(goals.iter().map(goal_view).collect::<Vec<_>>()).into_response())
}

/// `POST /api/v1/websites/{id}/goals` (session): adds a goal, for any member of the website's
/// team (as any member may add its websites), in the body the external route takes.
pub async fn session_create(
    State(state): State<AppState>,
    session: crate::session::SessionUser,
    Path(website_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let website = crate::routes::websites::member_website(&state, &session, website_id).await?;
    let body: CreateGoalBody = crate::envelope::parse(&body)?;
    let request = pb::CreateGoalRequest {
        website_id: website.id,
        event_name: body.event_name.filter(|name| !name.is_empty()),
        page_path: body.page_path.filter(|path| !path.is_empty()),
        currency: body.currency.filter(|currency| !currency.is_empty()),
    };
    let goal = create_goal(&state, request).await?;
    Ok(created(goal_view(&goal)).into_response())
}

/// `DELETE /api/v1/websites/{id}/goals/{goal_id}` (session): removes a goal, for any member of
/// the website's team.
pub async fn session_delete(
    State(state): State<AppState>,
    session: crate::session::SessionUser,
    Path((website_id, goal_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let website = crate::routes::websites::member_website(&state, &session, website_id).await?;
    let request = pb::DeleteGoalRequest { website_id: website.id, goal_id: goal_id.clone() };
    state.analytics.clone().delete_goal(request).await?;
    Ok(ok(DeletedGoal { id: goal_id, deleted: true }).into_response())
}

//! Goals of a website (README, "Events and statistics"): `/websites/{id}/goals` in the envelope and
//! for the console's sessions. A goal is a custom event by name, or pageviews of the pages a path
//! matches.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::access::Scope;
use proto::analytics::v1 as anpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Credentials;
use crate::envelope::{Path, RawBody, Success, created, ok};
use crate::error::ApiResult;
use crate::flows::access::authorized_website;
use crate::flows::goals::{self, GoalType};
use crate::schema::always_true;
use crate::state::AppState;
use crate::time::rfc3339;

/// Goals in the envelope.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(delete))
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
pub fn goal_view(g: &anpb::Goal) -> Goal {
    Goal {
        id: g.id.clone(),
        website_id: g.website_id.clone(),
        display_name: g.display_name.clone(),
        goal_type: goals::goal_type(g),
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
    let (_, website, ()) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Read, Ok(())).await?;
    let goals = goals::list(&state, website.id).await?;
    Ok(ok(goals.iter().map(goal_view).collect::<Vec<_>>()).into_response())
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
    description = "Scope: `write`. A custom event goal (`event_name`, named by it) or a pageview goal (`page_path`, named `Visit <path>`); `goal_type` (`event` or `page`) may say which, as Plausible's clients send it. A site's goal names are unique: 409 for a second goal of the same name, and for a 101st goal (a website has at most 100).",
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
    let input = crate::envelope::parse(&body).and_then(|body: CreateGoalBody| {
        if let Some(kind) = body.goal_type {
            goals::target_of(kind, &body.event_name, &body.page_path)?;
        }
        Ok(body)
    });
    let (_, website, body) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Write, input).await?;
    let request = anpb::CreateGoalRequest {
        website_id: website.id,
        event_name: body.event_name,
        page_path: body.page_path,
        currency: body.currency,
    };
    let goal = goals::create(&state, request).await?;
    Ok(created(goal_view(&goal)).into_response())
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
    let (_, website, ()) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Write, Ok(())).await?;
    goals::delete(&state, website.id, goal_id.clone()).await?;
    Ok(ok(DeletedGoal { id: goal_id, deleted: true }).into_response())
}

/// `GET /api/v1/websites/{id}/goals` (session): a website's goals, for a member of its team.
pub async fn session_list(
    State(state): State<AppState>,
    session: crate::session::SessionUser,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    let goals = goals::list(&state, website.id).await?;
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
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    let body: CreateGoalBody = crate::envelope::parse(&body)?;
    let request = anpb::CreateGoalRequest {
        website_id: website.id,
        event_name: body.event_name.filter(|name| !name.is_empty()),
        page_path: body.page_path.filter(|path| !path.is_empty()),
        currency: body.currency.filter(|currency| !currency.is_empty()),
    };
    let goal = goals::create(&state, request).await?;
    Ok(created(goal_view(&goal)).into_response())
}

/// `DELETE /api/v1/websites/{id}/goals/{goal_id}` (session): removes a goal, for any member of
/// the website's team.
pub async fn session_delete(
    State(state): State<AppState>,
    session: crate::session::SessionUser,
    Path((website_id, goal_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    goals::delete(&state, website.id, goal_id.clone()).await?;
    Ok(ok(DeletedGoal { id: goal_id, deleted: true }).into_response())
}

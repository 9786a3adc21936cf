//! The external REST API, `/api/external/v1` (docs/behaviour.md#external-rest-api), authenticated by personal API keys.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::access::{Plan, Scope};
use proto::analytics::v1 as anpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Credentials;
use crate::envelope::Success;
use crate::envelope::{Path, RawBody, created, ok};
use crate::error::ApiResult;
use crate::flows::access::{authorized_website, reachable_websites};
use crate::flows::websites;
use crate::schema::{TimeZone, always_true};
use crate::state::AppState;
use crate::views::{self, Website};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_websites, create_website))
        .routes(routes!(get_website, update_website, delete_website))
        .routes(routes!(usage))
}

#[utoipa::path(
    get,
    path = "/websites",
    tag = "websites",
    operation_id = "listWebsites",
    summary = "List websites",
    description = "Scope: `read`. The websites of every team the key reaches.",
    responses(
        (status = 200, description = "The websites", body = Success<Vec<Website>>),
    ),
)]
pub async fn list_websites(State(state): State<AppState>, credentials: Credentials) -> ApiResult<Response> {
    let key = credentials.verify(&state).await?;
    let authorized = key.authorize(&state, Scope::Read, None).await?;
    let websites = reachable_websites(&state, &authorized).await?;
    Ok(ok(websites).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebsiteBody {
    /// A team the key reaches.
    #[schema(pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    team_id: String,
    #[schema(schema_with = crate::schema::domain)]
    domain: String,
    #[schema(schema_with = crate::schema::website_name)]
    name: String,
    /// `UTC` when absent.
    #[serde(default)]
    #[schema(value_type = Option<TimeZone>)]
    timezone: Option<String>,
}

// Handlers of the external API authenticate before they judge a body or a query: a bad key is a
// 401 whatever else is wrong.

#[utoipa::path(
    post,
    path = "/websites",
    tag = "websites",
    operation_id = "createWebsite",
    summary = "Create a website",
    description = "Scope: `write`, on the team named in the body.",
    request_body = CreateWebsiteBody,
    responses(
        (status = 201, description = "The new website", body = Success<Website>),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn create_website(
    State(state): State<AppState>,
    credentials: Credentials,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let key = credentials.verify(&state).await?;
    let body: CreateWebsiteBody = key.validated(&state, Scope::Write, crate::envelope::parse(&body)).await?;
    let checked = common::text::check_line("team_id", &body.team_id)
        .map_err(crate::error::ApiError::from)
        .and_then(|()| websites::check_fields(Some(&body.domain), Some(&body.name), body.timezone.as_deref()));
    // Wrong fields are refused after the team's refusals, as a website's are.
    key.validated_for(&state, Scope::Write, Some(&body.team_id), checked).await?;
    key.authorize(&state, Scope::Write, Some(&body.team_id)).await?;
    let request = anpb::CreateWebsiteRequest {
        team_id: body.team_id,
        domain: body.domain,
        name: body.name,
        timezone: body.timezone,
    };
    let website = websites::create(&state, request).await?;
    Ok(created(views::website(&website)).into_response())
}

#[utoipa::path(
    get,
    path = "/websites/{id}",
    tag = "websites",
    operation_id = "getWebsite",
    summary = "Get a website",
    description = "Scope: `read`.",
    params(("id" = String, Path, description = "Website id or domain")),
    responses(
        (status = 200, description = "The website", body = Success<Website>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn get_website(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let (_, website, ()) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Read, Ok(())).await?;
    Ok(ok(views::website(&website)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebsiteBody {
    #[serde(default)]
    #[schema(schema_with = crate::schema::website_name_or_null)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<TimeZone>)]
    timezone: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/websites/{id}",
    tag = "websites",
    operation_id = "updateWebsite",
    summary = "Rename a website or change its time zone",
    description = "Scope: `write`. Absent fields keep their value.",
    params(("id" = String, Path, description = "Website id or domain")),
    request_body = UpdateWebsiteBody,
    responses(
        (status = 200, description = "The updated website", body = Success<Website>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn update_website(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let input = crate::envelope::parse(&body).and_then(|body: UpdateWebsiteBody| {
        websites::check_fields(None, body.name.as_deref(), body.timezone.as_deref())?;
        Ok(body)
    });
    let (_, website, body) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Write, input).await?;
    let website = websites::update(&state, &website, body.name, body.timezone).await?;
    Ok(ok(views::website(&website)).into_response())
}

#[utoipa::path(
    delete,
    path = "/websites/{id}",
    tag = "websites",
    operation_id = "deleteWebsite",
    summary = "Delete a website and its data",
    description = "Scope: `write`.",
    params(("id" = String, Path, description = "Website id or domain")),
    responses(
        (status = 200, description = "Deleted", body = Success<DeletedWebsite>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn delete_website(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let (_, website, ()) =
        authorized_website(&state, credentials.verify(&state), website_id, Scope::Write, Ok(())).await?;
    websites::delete(&state, &website).await?;
    Ok(ok(DeletedWebsite { id: website.id, deleted: true }).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct DeletedWebsite {
    id: String,
    #[schema(schema_with = always_true)]
    deleted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    plan: Plan,
    limits: UsageLimits,
    usage: UsageCounters,
}

/// The limits that apply to the key: those of its most generous team.
#[derive(Serialize, ToSchema)]
pub struct UsageLimits {
    requests_per_minute: u32,
    requests_per_month: u64,
    mcp_calls_per_day: u32,
}

#[derive(Serialize, ToSchema)]
pub struct UsageCounters {
    /// This call included.
    requests_this_month: u64,
    requests_left_this_month: u64,
    requests_left_this_minute: u32,
    #[schema(format = DateTime)]
    month_resets_at: String,
}

/// Plan, limits and this month's usage of the key's owner (`GET /usage`, docs/behaviour.md#external-rest-api).
#[utoipa::path(
    get,
    path = "/usage",
    tag = "usage",
    operation_id = "getUsage",
    summary = "Plan, limits and usage this month",
    description = "Scope: `read`. The plan and limits that apply to the key, and its owner's usage this UTC month; \
                   this call counts.",
    responses(
        (status = 200, description = "Plan, limits and usage", body = Success<Usage>),
    ),
)]
pub async fn usage(State(state): State<AppState>, credentials: Credentials) -> ApiResult<Response> {
    let key = credentials.verify(&state).await?;
    let authorized = key.authorize(&state, Scope::Read, None).await?;
    let decision = &authorized.decision;
    let limits = decision.limits.unwrap_or_default();
    let rate = decision.rate_limit.clone().unwrap_or_default();
    Ok(ok(Usage {
        plan: Plan::from_proto(decision.plan).unwrap_or(Plan::Free),
        limits: UsageLimits {
            requests_per_minute: limits.requests_per_minute,
            requests_per_month: limits.requests_per_month,
            mcp_calls_per_day: limits.mcp_calls_per_day,
        },
        usage: UsageCounters {
            requests_this_month: rate.month_used,
            requests_left_this_month: rate.month_limit.saturating_sub(rate.month_used),
            requests_left_this_minute: rate.remaining,
            month_resets_at: crate::time::rfc3339(rate.month_reset_at_unix_ms),
        },
    })
    .into_response())
}

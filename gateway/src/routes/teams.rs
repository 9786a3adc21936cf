//! Team management: the dashboard's member and key-policy routes (session, docs/behaviour.md#dashboard-api) and the
//! external admin routes under `/teams/{teamId}/` (API key with admin scope, docs/behaviour.md#external-rest-api).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use common::Error;
use common::access::{ApiKeyPolicy, AuditLimit, AuditPage, Role, Scope};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Credentials;
use crate::envelope::{Body, Pagination, Params, Path, RawBody, created, ok, paged, parse_query};
use crate::envelope::{Paged, Success};
use crate::error::ApiResult;
use crate::flows::teams::{self, OtherMember};
use crate::session::SessionUser;
use crate::state::AppState;
use crate::views::{self, AuditEntry, Member, TeamSettings};

/// The team administration of the external API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(external_members))
        .routes(routes!(external_put_policy))
        .routes(routes!(external_audit_log))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyPolicyBody)]
pub struct PolicyBody {
    policy: ApiKeyPolicy,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries on a page, newest first; default 100.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    per_page: Option<u32>,
    /// The page, from 1; default 1.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// `per_page` by its earlier name (give one of the two, not both): the newest entries, on the
    /// first page unless `page` says.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The id of an entry of this team's log (another is a 400 naming `before`): only entries
    /// older than it are listed, and counted in `total`. To walk the whole log while entries are
    /// added, ask again with the last entry's id of each page (and no `page`): no entry is listed
    /// twice.
    #[serde(default)]
    before: Option<String>,
}

impl AuditParams {
    fn page(&self) -> ApiResult<AuditPage> {
        let per_page = match (self.per_page, self.limit) {
            (Some(_), Some(_)) => return Err(Error::invalid("limit", "give per_page or limit, not both").into()),
            (Some(per_page), None) => AuditLimit::parse(Some(per_page), "per_page")?,
            (None, limit) => AuditLimit::parse(limit, "limit")?,
        };
        Ok(AuditPage { before: self.before.clone(), ..AuditPage::parse(per_page, self.page)? })
    }
}

async fn members(state: &AppState, team_id: String, actor: String) -> ApiResult<Response> {
    let members = teams::members(state, team_id, actor).await?;
    Ok(ok(members.iter().map(views::member).collect::<Vec<_>>()).into_response())
}

async fn set_policy(state: &AppState, team_id: String, actor: &str, policy: ApiKeyPolicy) -> ApiResult<Response> {
    let settings = teams::set_key_policy(state, team_id, actor, policy).await?;
    Ok(ok(views::team_settings(&settings)).into_response())
}

async fn audit_log(state: &AppState, team_id: String, actor: String, params: &AuditParams) -> ApiResult<Response> {
    let page = params.page()?;
    let (entries, total) = teams::audit_log(state, team_id, actor, &page).await?;
    let pagination = Pagination { page: page.page.into(), per_page: page.per_page.get().into(), total };
    Ok(paged(entries.iter().map(views::audit_entry).collect::<Vec<_>>(), Some(pagination)).into_response())
}

// Dashboard (session).

pub async fn list_members(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
) -> ApiResult<Response> {
    members(&state, team_id, session.user.id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    email: String,
    role: Role,
}

pub async fn add_member(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
    Body(body): Body<AddMemberBody>,
) -> ApiResult<Response> {
    let member = teams::add_member(&state, team_id, session.user.id, body.email, body.role).await?;
    Ok(created(views::member(&member)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: Role,
}

pub async fn change_role(
    State(state): State<AppState>,
    session: SessionUser,
    Path((team_id, user_id)): Path<(String, String)>,
    Body(body): Body<RoleBody>,
) -> ApiResult<Response> {
    let member = teams::change_role(&state, OtherMember { team_id, user_id }, session.user.id, body.role).await?;
    Ok(ok(views::member(&member)).into_response())
}

pub async fn remove_member(
    State(state): State<AppState>,
    session: SessionUser,
    Path((team_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    teams::remove_member(&state, OtherMember { team_id, user_id: user_id.clone() }, session.user.id).await?;
    Ok(ok(json!({ "user_id": user_id, "removed": true })).into_response())
}

pub async fn put_policy(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<Response> {
    teams::owner_or_admin(&state, &team_id, &session.user.id).await?;
    set_policy(&state, team_id, &session.user.id, body.policy).await
}

/// `GET /api/v1/teams/{id}/usage` (owners and admins): the team's plan and limits, and what each
/// member has used of the per-user quotas: API requests this UTC month and MCP tool calls today.
pub async fn get_usage(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
) -> ApiResult<Response> {
    let usage = teams::usage(&state, team_id, session.user.id).await?;
    let rows: Vec<Value> = usage
        .members
        .iter()
        .map(|m| {
            json!({
                "user_id": m.user.id,
                "email": m.user.email,
                "requests_this_month": m.usage.requests_this_month,
                "mcp_calls_today": m.usage.mcp_calls_today,
            })
        })
        .collect();
    let settings = views::team_settings(&usage.settings);
    Ok(ok(json!({
        "plan": settings.plan,
        "limits": settings.limits,
        "members": rows,
        "month_resets_at": crate::time::rfc3339(usage.month_reset_at_unix_ms),
        "day_resets_at": crate::time::rfc3339(usage.day_reset_at_unix_ms),
    }))
    .into_response())
}

pub async fn get_audit_log(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
    Params(params): Params<AuditParams>,
) -> ApiResult<Response> {
    audit_log(&state, team_id, session.user.id, &params).await
}

// External API (admin scope).

#[utoipa::path(
    get,
    path = "/teams/{teamId}/members",
    tag = "teams",
    operation_id = "listTeamMembers",
    summary = "Members of a team and their roles",
    description = "Scope: `admin`, on a team where the key's owner is an owner or admin.",
    params(("teamId" = String, Path, description = "Team id")),
    responses(
        (status = 200, description = "The members", body = Success<Vec<Member>>),
    ),
)]
pub async fn external_members(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(team_id): Path<String>,
) -> ApiResult<Response> {
    let key = credentials.verify(&state).await?;
    key.authorize(&state, Scope::Admin, Some(&team_id)).await?;
    members(&state, team_id, key.user_id().to_owned()).await
}

#[utoipa::path(
    put,
    path = "/teams/{teamId}/api-key-policy",
    tag = "teams",
    operation_id = "setApiKeyPolicy",
    summary = "Set the team's API key policy",
    description = "Scope: `admin`, on a team where the key's owner is an owner or admin. Recorded in the audit log.",
    params(("teamId" = String, Path, description = "Team id")),
    request_body = PolicyBody,
    responses(
        (status = 200, description = "The team's settings", body = Success<TeamSettings>),
    ),
)]
pub async fn external_put_policy(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(team_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let key = credentials.verify(&state).await?;
    key.authorize(&state, Scope::Admin, Some(&team_id)).await?;
    let body: PolicyBody = crate::envelope::parse(&body)?;
    set_policy(&state, team_id, key.user_id(), body.policy).await
}

#[utoipa::path(
    get,
    path = "/teams/{teamId}/audit-log",
    tag = "teams",
    operation_id = "getAuditLog",
    summary = "Key and membership events of a team",
    description = "Scope: `admin`, on a team where the key's owner is an owner or admin. Newest first.",
    params(("teamId" = String, Path, description = "Team id"), AuditParams),
    responses(
        (status = 200, description = "The entries", body = Paged<Vec<AuditEntry>>),
    ),
)]
pub async fn external_audit_log(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(team_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let key = credentials.verify(&state).await?;
    key.authorize(&state, Scope::Admin, Some(&team_id)).await?;
    let params: AuditParams = parse_query(query.as_deref())?;
    audit_log(&state, team_id, key.user_id().to_owned(), &params).await
}

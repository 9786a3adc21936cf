//! Team management: the dashboard's member and key-policy routes (session, docs/behaviour.md#dashboard-api) and the
//! external admin routes under `/teams/{teamId}/` (API key with admin scope, docs/behaviour.md#external-rest-api).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use common::access::{ApiKeyPolicy, Role, Scope};
use common::bus::Change;
use common::{Error, ErrorCode};
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Credentials;
use crate::envelope::Success;
use crate::envelope::{Body, Params, Path, RawBody, created, ok, parse_query};
use crate::error::{ApiError, ApiResult};
use crate::flows::teams::audit;
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
    /// Entries, newest first; default 100.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

async fn members(state: &AppState, team_id: String, actor: String) -> ApiResult<Response> {
    let members = state
        .identity
        .clone()
        .list_members(idpb::ListMembersRequest { team_id, actor_user_id: actor })
        .await?
        .into_inner()
        .members;
    Ok(ok(members.iter().map(views::member).collect::<Vec<_>>()).into_response())
}

async fn set_policy(state: &AppState, team_id: String, actor: &str, policy: ApiKeyPolicy) -> ApiResult<Response> {
    let settings = state
        .policy
        .clone()
        .set_api_key_policy(popb::SetApiKeyPolicyRequest {
            team_id: team_id.clone(),
            api_key_policy: popb::ApiKeyPolicy::from(policy) as i32,
        })
        .await?
        .into_inner();
    if let Some(cache) = &state.keys {
        cache.forget(Change::Team(team_id.clone()));
    }
    let details = json!({ "api_key_policy": views::api_key_policy(settings.api_key_policy) });
    audit(state, &team_id, actor, "team.api_key_policy_changed", &details).await?;
    Ok(ok(views::team_settings(&settings)).into_response())
}

async fn audit_log(state: &AppState, team_id: String, actor: String, limit: Option<u32>) -> ApiResult<Response> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation("limit: must be between 1 and 1000").into());
    }
    let entries = state
        .identity
        .clone()
        .list_audit(idpb::ListAuditRequest { team_id, actor_user_id: actor, limit })
        .await?
        .into_inner()
        .entries;
    Ok(ok(entries.iter().map(views::audit_entry).collect::<Vec<_>>()).into_response())
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
    let member = state
        .identity
        .clone()
        .add_member(idpb::AddMemberRequest {
            team_id,
            actor_user_id: session.user.id,
            email: body.email,
            role: idpb::Role::from(body.role) as i32,
        })
        .await?
        .into_inner();
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
    let member = state
        .identity
        .clone()
        .change_role(idpb::ChangeRoleRequest {
            team_id,
            actor_user_id: session.user.id,
            user_id,
            role: idpb::Role::from(body.role) as i32,
        })
        .await?
        .into_inner();
    Ok(ok(views::member(&member)).into_response())
}

pub async fn remove_member(
    State(state): State<AppState>,
    session: SessionUser,
    Path((team_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    state
        .identity
        .clone()
        .remove_member(idpb::RemoveMemberRequest { team_id, actor_user_id: session.user.id, user_id: user_id.clone() })
        .await?;
    Ok(ok(json!({ "user_id": user_id, "removed": true })).into_response())
}

pub async fn put_policy(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<Response> {
    owner_or_admin(&state, &team_id, &session.user.id).await?;
    set_policy(&state, team_id, &session.user.id, body.policy).await
}

/// Refuses (403) anyone but the team's owners and admins.
async fn owner_or_admin(state: &AppState, team_id: &str, user_id: &str) -> ApiResult<()> {
    let membership = state
        .identity
        .clone()
        .get_membership(idpb::GetMembershipRequest { team_id: team_id.to_owned(), actor_user_id: user_id.to_owned() })
        .await?
        .into_inner();
    if !matches!(idpb::Role::try_from(membership.role), Ok(idpb::Role::Owner | idpb::Role::Admin)) {
        return Err(ApiError::new(ErrorCode::Forbidden, "only owners and admins of this team may do this"));
    }
    Ok(())
}

/// `GET /api/v1/teams/{id}/usage` (owners and admins): the team's plan and limits, and what each
/// member has used of the per-user quotas: API requests this UTC month and MCP tool calls today.
pub async fn get_usage(
    State(state): State<AppState>,
    session: SessionUser,
    Path(team_id): Path<String>,
) -> ApiResult<Response> {
    owner_or_admin(&state, &team_id, &session.user.id).await?;
    let members = state
        .identity
        .clone()
        .list_members(idpb::ListMembersRequest { team_id: team_id.clone(), actor_user_id: session.user.id })
        .await?
        .into_inner()
        .members;
    let users: Vec<idpb::User> = members.into_iter().filter_map(|m| m.user).collect();
    let user_ids = users.iter().map(|u| u.id.clone()).collect();
    let (mut settings_client, mut usage_client) = (state.policy.clone(), state.policy.clone());
    let (settings, usage) = tokio::try_join!(
        settings_client.get_team_settings(popb::GetTeamSettingsRequest { team_ids: vec![team_id] }),
        usage_client.get_usage(popb::GetUsageRequest { user_ids }),
    )?;
    let settings = settings.into_inner().teams.into_iter().next().unwrap_or_default();
    let usage = usage.into_inner();
    let used: std::collections::HashMap<&str, &popb::UserUsage> =
        usage.users.iter().map(|u| (u.user_id.as_str(), u)).collect();
    let rows: Vec<Value> = users
        .iter()
        .map(|m| {
            let u = used.get(m.id.as_str()).copied().cloned().unwrap_or_default();
            json!({
                "user_id": m.id,
                "email": m.email,
                "requests_this_month": u.requests_this_month,
                "mcp_calls_today": u.mcp_calls_today,
            })
        })
        .collect();
    let settings = views::team_settings(&settings);
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
    audit_log(&state, team_id, session.user.id, params.limit).await
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
        (status = 200, description = "The entries", body = Success<Vec<AuditEntry>>),
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
    audit_log(&state, team_id, key.user_id().to_owned(), params.limit).await
}

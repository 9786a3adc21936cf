//! Team use cases shared by the dashboard and the external API: teams and their plans, members,
//! the API-key policy, the audit log and the team's usage.

use std::collections::HashMap;

use common::access::{ApiKeyPolicy, AuditPage, Plan, Role};
use common::bus::Change;
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde_json::json;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::views;

/// Records a change made outside identity in the team's audit log.
pub async fn audit(
    state: &AppState,
    team_id: &str,
    actor: &str,
    action: &str,
    details: &serde_json::Value,
) -> ApiResult<()> {
    state
        .identity
        .clone()
        .append_audit(idpb::AppendAuditRequest {
            team_id: team_id.to_owned(),
            actor_user_id: actor.to_owned(),
            action: action.to_owned(),
            target: team_id.to_owned(),
            details_json: details.to_string(),
        })
        .await?;
    Ok(())
}

/// The teams a user belongs to, with the role in each.
pub async fn memberships(state: &AppState, user_id: &str) -> ApiResult<Vec<idpb::Membership>> {
    Ok(state
        .identity
        .clone()
        .list_teams(idpb::ListTeamsRequest { user_id: user_id.to_owned() })
        .await?
        .into_inner()
        .memberships)
}

/// The id of a membership's team.
pub fn team_id(m: &idpb::Membership) -> &str {
    m.team.as_ref().map_or("", |t| t.id.as_str())
}

/// Refuses (403) anyone but the team's owners and admins.
pub async fn owner_or_admin(state: &AppState, team_id: &str, user_id: &str) -> ApiResult<()> {
    let request = idpb::GetMembershipRequest { team_id: team_id.to_owned(), actor_user_id: user_id.to_owned() };
    let membership = state.identity.clone().get_membership(request).await?.into_inner();
    // A role this gateway does not know manages nothing.
    Ok(Role::from_proto(membership.role).unwrap_or(Role::Member).require_admin()?)
}

/// A team of the user's with its plan, limits and key policy.
pub struct TeamOfUser {
    pub membership: idpb::Membership,
    pub settings: Option<popb::TeamSettings>,
}

async fn settings(state: &AppState, team_ids: Vec<String>) -> ApiResult<Vec<popb::TeamSettings>> {
    let request = popb::GetTeamSettingsRequest { team_ids };
    Ok(state.policy.clone().get_team_settings(request).await?.into_inner().teams)
}

/// The user's teams, each with the settings policy holds for it.
pub async fn teams_of(state: &AppState, user_id: &str) -> ApiResult<Vec<TeamOfUser>> {
    let memberships = memberships(state, user_id).await?;
    let mut settings = settings(state, memberships.iter().map(|m| team_id(m).to_owned()).collect()).await?;
    let teams = memberships.into_iter().map(|membership| {
        let found = settings.iter().position(|s| s.team_id == team_id(&membership));
        TeamOfUser { settings: found.map(|i| settings.swap_remove(i)), membership }
    });
    Ok(teams.collect())
}

/// A new team with its creator as owner; policy answers its defaults.
pub async fn create_team(state: &AppState, user_id: String, name: String) -> ApiResult<TeamOfUser> {
    let request = idpb::CreateTeamRequest { user_id, name };
    let membership = state.identity.clone().create_team(request).await?.into_inner();
    let settings = settings(state, vec![team_id(&membership).to_owned()]).await?;
    Ok(TeamOfUser { settings: settings.into_iter().next(), membership })
}

/// The operator sets a team's plan and limit overrides; recorded in the team's audit log.
pub async fn set_plan(
    state: &AppState,
    team_id: String,
    plan: Plan,
    overrides: popb::LimitOverrides,
) -> ApiResult<popb::TeamSettings> {
    state.identity.clone().get_team(idpb::GetTeamRequest { team_id: team_id.clone() }).await?;
    let request = popb::SetPlanRequest { team_id, plan: popb::Plan::from(plan) as i32, overrides: Some(overrides) };
    let settings = state.policy.clone().set_plan(request).await?.into_inner();
    let details = json!({ "plan": views::plan(settings.plan), "overrides": views::team_settings(&settings).overrides });
    forget_team(state, &settings.team_id);
    audit(state, &settings.team_id, "operator", "team.plan_changed", &details).await?;
    Ok(settings)
}

/// This replica drops its cached refusals for the team before answering; the others hear of it
/// from policy.
fn forget_team(state: &AppState, team_id: &str) {
    if let Some(cache) = &state.keys {
        cache.forget(Change::Team(team_id.to_owned()));
    }
}

/// Sets who on the team may use API keys; recorded in the team's audit log.
pub async fn set_key_policy(
    state: &AppState,
    team_id: String,
    actor: &str,
    policy: ApiKeyPolicy,
) -> ApiResult<popb::TeamSettings> {
    let request = popb::SetApiKeyPolicyRequest {
        team_id: team_id.clone(),
        api_key_policy: popb::ApiKeyPolicy::from(policy) as i32,
    };
    let settings = state.policy.clone().set_api_key_policy(request).await?.into_inner();
    forget_team(state, &team_id);
    let details = json!({ "api_key_policy": views::api_key_policy(settings.api_key_policy) });
    audit(state, &team_id, actor, "team.api_key_policy_changed", &details).await?;
    Ok(settings)
}

pub async fn members(state: &AppState, team_id: String, actor: String) -> ApiResult<Vec<idpb::Member>> {
    let request = idpb::ListMembersRequest { team_id, actor_user_id: actor };
    Ok(state.identity.clone().list_members(request).await?.into_inner().members)
}

pub async fn add_member(
    state: &AppState,
    team_id: String,
    actor: String,
    email: String,
    role: Role,
) -> ApiResult<idpb::Member> {
    let request = idpb::AddMemberRequest { team_id, actor_user_id: actor, email, role: idpb::Role::from(role) as i32 };
    Ok(state.identity.clone().add_member(request).await?.into_inner())
}

/// A member of `team_id` other than the actor, by user id.
pub struct OtherMember {
    pub team_id: String,
    pub user_id: String,
}

pub async fn change_role(state: &AppState, member: OtherMember, actor: String, role: Role) -> ApiResult<idpb::Member> {
    let request = idpb::ChangeRoleRequest {
        team_id: member.team_id,
        actor_user_id: actor,
        user_id: member.user_id,
        role: idpb::Role::from(role) as i32,
    };
    Ok(state.identity.clone().change_role(request).await?.into_inner())
}

pub async fn remove_member(state: &AppState, member: OtherMember, actor: String) -> ApiResult<()> {
    let request = idpb::RemoveMemberRequest { team_id: member.team_id, actor_user_id: actor, user_id: member.user_id };
    state.identity.clone().remove_member(request).await?;
    Ok(())
}

/// A page of the team's audit log, newest first, and how many entries the log holds (older than
/// the page's `before` entry, when it names one).
pub async fn audit_log(
    state: &AppState,
    team_id: String,
    actor: String,
    page: &AuditPage,
) -> ApiResult<(Vec<idpb::AuditEntry>, u64)> {
    let request = idpb::ListAuditRequest {
        team_id,
        actor_user_id: actor,
        limit: page.per_page.get(),
        offset: page.offset(),
        before: page.before.clone().unwrap_or_default(),
    };
    let answer = state.identity.clone().list_audit(request).await?.into_inner();
    Ok((answer.entries, answer.total))
}

/// What one member has used of the per-user quotas.
pub struct MemberUsage {
    pub user: idpb::User,
    pub usage: popb::UserUsage,
}

/// A team's plan and limits, and what each member has used of them.
pub struct TeamUsage {
    pub settings: popb::TeamSettings,
    pub members: Vec<MemberUsage>,
    pub month_reset_at_unix_ms: i64,
    pub day_reset_at_unix_ms: i64,
}

/// For owners and admins: the team's settings and each member's API requests this UTC month
/// and MCP tool calls today.
pub async fn usage(state: &AppState, team_id: String, actor: String) -> ApiResult<TeamUsage> {
    owner_or_admin(state, &team_id, &actor).await?;
    let users: Vec<idpb::User> =
        members(state, team_id.clone(), actor).await?.into_iter().filter_map(|m| m.user).collect();
    let user_ids = users.iter().map(|u| u.id.clone()).collect();
    let (mut settings_client, mut usage_client) = (state.policy.clone(), state.policy.clone());
    let (settings, usage) = tokio::try_join!(
        settings_client.get_team_settings(popb::GetTeamSettingsRequest { team_ids: vec![team_id] }),
        usage_client.get_usage(popb::GetUsageRequest { user_ids }),
    )?;
    let usage = usage.into_inner();
    let mut used: HashMap<String, popb::UserUsage> = usage.users.into_iter().map(|u| (u.user_id.clone(), u)).collect();
    let members =
        users.into_iter().map(|user| MemberUsage { usage: used.remove(&user.id).unwrap_or_default(), user }).collect();
    Ok(TeamUsage {
        settings: settings.into_inner().teams.into_iter().next().unwrap_or_default(),
        members,
        month_reset_at_unix_ms: usage.month_reset_at_unix_ms,
        day_reset_at_unix_ms: usage.day_reset_at_unix_ms,
    })
}

//! Team use cases shared by the dashboard and the external API.

use proto::identity::v1 as idpb;

use crate::error::ApiResult;
use crate::state::AppState;

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

//! The dashboard's websites (`/api/v1/websites`, session): what the console lists and adds. The
//! same records as the external API's `/websites`, reached through team membership instead of a
//! key. Any member of a team may list and add its websites, as any member's write key may.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use proto::analytics::v1 as anpb;
use proto::identity::v1 as idpb;
use serde::Deserialize;

use crate::envelope::{Body, created, ok};
use crate::error::ApiResult;
use crate::session::SessionUser;
use crate::state::AppState;
use crate::views;

/// `GET /api/v1/websites`: the websites of every team I belong to.
pub async fn list(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let memberships = state
        .identity
        .clone()
        .list_teams(idpb::ListTeamsRequest { user_id: session.user.id })
        .await?
        .into_inner()
        .memberships;
    let team_ids: Vec<String> = memberships.iter().filter_map(|m| m.team.as_ref().map(|t| t.id.clone())).collect();
    if team_ids.is_empty() {
        return Ok(ok(Vec::<serde_json::Value>::new()).into_response());
    }
    let websites =
        state.analytics.clone().list_websites(anpb::ListWebsitesRequest { team_ids }).await?.into_inner().websites;
    Ok(ok(websites.iter().map(views::website).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    team_id: String,
    domain: String,
    name: String,
    #[serde(default)]
    timezone: Option<String>,
}

/// `POST /api/v1/websites`: adds a website to a team I belong to (a non-member gets 403).
pub async fn create(
    State(state): State<AppState>,
    session: SessionUser,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    if body.team_id.trim().is_empty() {
        return Err(common::Error::validation("team_id: is required").into());
    }
    state
        .identity
        .clone()
        .get_membership(idpb::GetMembershipRequest { team_id: body.team_id.clone(), actor_user_id: session.user.id })
        .await?;
    let website = state
        .analytics
        .clone()
        .create_website(anpb::CreateWebsiteRequest {
            team_id: body.team_id,
            domain: body.domain,
            name: body.name,
            timezone: body.timezone.filter(|t| !t.is_empty()),
        })
        .await?
        .into_inner();
    Ok(created(views::website(&website)).into_response())
}

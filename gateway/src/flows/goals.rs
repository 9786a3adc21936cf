//! Goals of a website (README, "Events and statistics"): listed, created and deleted the same way
//! for the envelope, the console and Plausible's Sites API.

use proto::analytics::v1 as anpb;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, invalid};
use crate::state::AppState;

/// What a goal counts, as Plausible's Sites API names it.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum GoalType {
    Event,
    Page,
}

/// `event` or `page`.
pub fn goal_type(g: &anpb::Goal) -> &'static str {
    if g.event_name.is_some() { "event" } else { "page" }
}

/// The event name or page path a goal of `kind` counts; refused when the one it needs is missing.
pub fn target_of(
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

/// The goals of a website, oldest first.
pub async fn list(state: &AppState, website_id: String) -> ApiResult<Vec<anpb::Goal>> {
    Ok(state.analytics.clone().list_goals(anpb::ListGoalsRequest { website_id }).await?.into_inner().goals)
}

/// A new goal: a custom event by name, or the pages a path matches, never both.
pub async fn create(state: &AppState, request: anpb::CreateGoalRequest) -> ApiResult<anpb::Goal> {
    if request.event_name.is_some() == request.page_path.is_some() {
        return Err(invalid("event_name", "give either event_name or page_path"));
    }
    Ok(state.analytics.clone().create_goal(request).await?.into_inner())
}

/// Deletes a goal of a website; not found when the website has no goal of that id.
pub async fn delete(state: &AppState, website_id: String, goal_id: String) -> ApiResult<()> {
    state.analytics.clone().delete_goal(anpb::DeleteGoalRequest { website_id, goal_id }).await?;
    Ok(())
}

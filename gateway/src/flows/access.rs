//! Which resources a key reaches: the decision of policy combined with what analytics knows of
//! the resource, for every face that takes an API key.

use std::sync::Arc;

use common::access::Scope;
use common::{Error, ErrorCode};
use proto::analytics::v1 as anpb;
use proto::identity::v1 as idpb;

use crate::auth::{Authorized, VerifiedKey};
use crate::cache::Listed;
use crate::error::{ApiError, ApiResult};
use crate::session::SessionUser;
use crate::state::AppState;

/// The websites of every team a decision lets the key reach.
pub(crate) async fn reachable_websites(state: &AppState, authorized: &Authorized) -> ApiResult<Vec<Arc<Listed>>> {
    super::websites::of_teams(state, authorized.reachable_team_ids().to_vec()).await
}

/// A website of this team; another team's is "not found", as if it did not exist.
pub(crate) async fn team_website(state: &AppState, team_id: &str, website_id: String) -> ApiResult<anpb::Website> {
    let website = state.analytics.clone().get_website(anpb::GetWebsiteRequest { website_id }).await?.into_inner();
    if website.team_id != team_id {
        return Err(Error::not_found("website").into());
    }
    Ok(website)
}

/// Verifies the key and looks the website up at the same time, then decides with the
/// website's team. A missing website is a 404 only for a caller allowed to ask. The request's
/// `input`, checked before anything is taken, is refused (400) only after the refusals and the
/// 404 that come first, and then takes nothing: a slot held until its 400 gave it back would
/// refuse good requests sent beside it.
pub(crate) async fn authorized_website<T>(
    state: &AppState,
    key: impl std::future::Future<Output = ApiResult<VerifiedKey>>,
    website_id: String,
    scope: Scope,
    input: ApiResult<T>,
) -> ApiResult<(VerifiedKey, anpb::Website, T)> {
    if let Err(invalid) = common::text::check_line("id", &website_id) {
        let key = key.await?;
        return Err(key.validated(state, scope, Err::<(), ApiError>(invalid.into())).await.unwrap_err());
    }
    let lookup = async {
        let mut analytics = state.analytics.clone();
        analytics.get_website(anpb::GetWebsiteRequest { website_id }).await.map_err(Error::from)
    };
    let (key, website) = tokio::join!(key, lookup);
    let key = key?;
    match website {
        Ok(website) => {
            let website = website.into_inner();
            let input = key.validated_for(state, scope, Some(&website.team_id), input).await?;
            key.authorize(state, scope, Some(&website.team_id)).await?;
            Ok((key, website, input))
        }
        Err(e) if e.code == ErrorCode::NotFound => {
            if input.is_ok() {
                key.authorize(state, scope, None).await?;
                return Err(e.into());
            }
            Err(key.validated(state, scope, Err::<(), ApiError>(e.into())).await.unwrap_err())
        }
        Err(e) => Err(e.into()),
    }
}

/// The website, when the session's user belongs to its team (403 otherwise, 404 when unknown).
pub(crate) async fn member_website(
    state: &AppState,
    session: &SessionUser,
    website_id: String,
) -> ApiResult<anpb::Website> {
    common::text::check_line("id", &website_id)?;
    let website = state.analytics.clone().get_website(anpb::GetWebsiteRequest { website_id }).await?.into_inner();
    state
        .identity
        .clone()
        .get_membership(idpb::GetMembershipRequest {
            team_id: website.team_id.clone(),
            actor_user_id: session.user.id.clone(),
        })
        .await?;
    Ok(website)
}

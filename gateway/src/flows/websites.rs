//! Websites as every face reads and writes them. A team's list is kept in this gateway's memory
//! under the rules of the other caches (README, "API keys, access and limits"): evicted by
//! analytics' `Websites` notices, at most a second old, nothing kept while the channel is down.
//! Listing a key's websites then costs no call to analytics. Writes go to analytics, and this
//! gateway forgets the team's list at once, so that the next request here lists the change.

use std::sync::Arc;

use common::bus::Change;
use common::cache::{LookupResult, NoticeCache};
use common::transport::GrpcTransport;
use proto::analytics::v1 as anpb;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;

use crate::cache::{Listed, WebsiteList};
use crate::error::ApiResult;
use crate::metrics;
use crate::rules;
use crate::state::AppState;

/// The websites of these teams, oldest first.
pub(crate) async fn of_teams(state: &AppState, team_ids: Vec<String>) -> ApiResult<Vec<Arc<Listed>>> {
    let read = |team_ids: Vec<String>| read_lists(state.analytics.clone(), team_ids);
    let counted = |found: LookupResult| metrics::metrics().website_cache.add(found.name());
    let lists = NoticeCache::read_through(state.websites.as_ref(), &team_ids, counted, read).await?;
    Ok(merged(lists.values))
}

fn merged(lists: Vec<WebsiteList>) -> Vec<Arc<Listed>> {
    let mut all: Vec<Arc<Listed>> = lists.iter().flat_map(|list| list.iter().cloned()).collect();
    if lists.len() > 1 {
        all.sort_by(|a, b| {
            let (a, b) = (&a.website, &b.website);
            (a.created_at_unix_ms, &a.id).cmp(&(b.created_at_unix_ms, &b.id))
        });
    }
    all
}

/// Each team's websites, from analytics.
async fn read_lists(
    mut analytics: AnalyticsServiceClient<GrpcTransport>,
    team_ids: Vec<String>,
) -> common::Result<Vec<(String, WebsiteList)>> {
    let request = anpb::ListWebsitesRequest { team_ids: team_ids.clone() };
    let websites = analytics.list_websites(request).await?.into_inner().websites;
    let all: Vec<Arc<Listed>> = websites.into_iter().map(Listed::new).collect();
    let of = |team: &String| Arc::new(all.iter().filter(|l| &l.website.team_id == team).cloned().collect());
    Ok(team_ids.iter().map(|team| (team.clone(), of(team))).collect())
}

/// What the external API's document states of a website's fields, checked the same way for the
/// console's session writes; the rest (uniqueness, the team) is the analytics service's to decide.
pub(crate) fn check_fields(domain: Option<&str>, name: Option<&str>, timezone: Option<&str>) -> ApiResult<()> {
    if domain.is_some_and(|d| !rules::is_domain(d)) {
        return Err(common::Error::validation("domain: must be a host name such as example.com").into());
    }
    if let Some(name) = name {
        common::text::check_line("name", name)?;
    }
    if name.is_some_and(|n| !rules::is_name(n)) {
        return Err(common::Error::validation(format!(
            "name: must be 1 to {} characters, not all white space",
            rules::NAME_MAX
        ))
        .into());
    }
    if timezone.is_some_and(|tz| tz.parse::<chrono_tz::Tz>().is_err()) {
        return Err(common::Error::validation("timezone: must be an IANA time zone such as Europe/Paris").into());
    }
    Ok(())
}

pub(crate) async fn create(state: &AppState, request: anpb::CreateWebsiteRequest) -> ApiResult<anpb::Website> {
    let team_id = request.team_id.clone();
    let created = state.analytics.clone().create_website(request).await;
    changed(state, team_id);
    Ok(created?.into_inner())
}

/// Renames `website` or changes its time zone.
pub(crate) async fn update(
    state: &AppState,
    website: &anpb::Website,
    name: Option<String>,
    timezone: Option<String>,
) -> ApiResult<anpb::Website> {
    let request = anpb::UpdateWebsiteRequest { website_id: website.id.clone(), name, timezone };
    let updated = state.analytics.clone().update_website(request).await;
    changed(state, website.team_id.clone());
    Ok(updated?.into_inner())
}

pub(crate) async fn delete(state: &AppState, website: &anpb::Website) -> ApiResult<()> {
    let request = anpb::DeleteWebsiteRequest { website_id: website.id.clone() };
    let deleted = state.analytics.clone().delete_website(request).await;
    changed(state, website.team_id.clone());
    deleted?;
    Ok(())
}

/// Forgets the team's list whatever the answer: a call that failed on the way may still have
/// changed it.
fn changed(state: &AppState, team_id: String) {
    if let Some(lists) = &state.websites {
        lists.forget(Change::Websites(team_id));
    }
}

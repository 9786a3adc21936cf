//! What the statistics faces share while reading a request: which face asks, the drop-in's site
//! in Plausible's words, and errors that name the caller's field.

use common::access::Scope;
use common::{Error, ErrorCode};
use proto::analytics::v1 as anpb;

use crate::auth::VerifiedKey;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Which face asks: ours answers in our words, the drop-in in Plausible's (docs/behaviour.md,
/// "Plausible fidelity").
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    Ours,
    Plausible,
}

impl Face {
    /// A request refused by one of Plausible's rules, in its words: alone on the drop-in, after
    /// the field it is about on ours.
    pub(super) fn refused(self, field: &str, text: String) -> ApiError {
        match self {
            Face::Plausible => ApiError::new(ErrorCode::Validation, text),
            Face::Ours => crate::error::invalid(field, text),
        }
    }
}

/// Plausible's words for a statistics request whose key or site it refuses: it does not tell
/// an unknown site from one the key cannot reach, nor either from an unknown key.
pub(super) const INVALID_KEY_OR_SITE: &str = "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";
const MISSING_SITE: &str = "Missing site ID. Please provide the required site_id parameter with your request.";

/// The drop-in's site: `site_id` (an id or a domain) when the key may read it, and the
/// request's `input`, refused after the site's refusals without taking anything (as
/// [`crate::flows::access::authorized_website`] does). A missing site is Plausible's 400; an
/// unknown one is refused as a site of a team out of reach, by policy, so that it takes no
/// rate-limit slot, as no 401 does.
pub(super) async fn plausible_website<T>(
    state: &AppState,
    key: &VerifiedKey,
    site_id: Option<String>,
    input: ApiResult<T>,
) -> ApiResult<(anpb::Website, T)> {
    let missing = || ApiError::new(ErrorCode::Validation, MISSING_SITE);
    let site_id = key.validated(state, Scope::Read, site_id.ok_or_else(missing)).await?;
    key.validated(state, Scope::Read, common::text::check_line("site_id", &site_id).map_err(Into::into)).await?;
    let lookup = state.analytics.clone().get_website(anpb::GetWebsiteRequest { website_id: site_id }).await;
    let website = match lookup.map_err(Error::from) {
        Ok(website) => Some(website.into_inner()),
        Err(e) if e.code == ErrorCode::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    // No team is named "": policy refuses it as out of reach.
    let team = website.as_ref().map_or("", |w| w.team_id.as_str());
    let input = key.validated_for(state, Scope::Read, Some(team), input).await?;
    key.authorize(state, Scope::Read, Some(team)).await?;
    Ok((website.ok_or_else(|| Error::unauthorized(INVALID_KEY_OR_SITE))?, input))
}

/// The first goal that a filter on goals with one of `operators` names and the site does not
/// have, for Plausible's words on the drop-in (analytics refuses an `is` in ours).
pub(super) async fn unconfigured_goal(
    state: &AppState,
    website_id: &str,
    filters: &[anpb::Filter],
    operators: &[&str],
) -> ApiResult<Option<String>> {
    let goal = anpb::Property::EventGoal.name();
    let named: Vec<&String> = filters
        .iter()
        .filter(|f| f.dimension == goal && operators.contains(&f.operator.as_str()) && !f.ignore_case)
        .flat_map(|f| &f.values)
        .collect();
    if named.is_empty() {
        return Ok(None);
    }
    let goals = crate::flows::goals::list(state, website_id.to_owned()).await?;
    Ok(named.into_iter().find(|name| !goals.iter().any(|g| &g.display_name == *name)).cloned())
}

/// Plausible v1's words for a goal filter naming `goal`, which the site does not have; it tells a
/// page's goal (`Visit /path`) apart.
pub(super) fn goal_not_configured(goal: &str) -> String {
    let what = match goal.strip_prefix("Visit ") {
        Some(path) => format!("The pageview goal for the pathname `{path}` is not configured for this site."),
        None => format!("The goal `{goal}` is not configured for this site."),
    };
    format!("{what} {CONFIGURE_GOALS}")
}

/// How Plausible ends its refusal of a goal the site does not have, in v1 and v2.
pub(super) const CONFIGURE_GOALS: &str =
    "Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals";

/// For a request built from parameters the caller's API names differently from analytics
/// (`names`: analytics' field, the caller's): a 400 names the field the caller sent.
pub(super) fn renamed<'a>(names: &'a [(&'static str, &'static str)]) -> impl Fn(ApiError) -> ApiError + 'a {
    move |mut e| {
        if let Some(field) = &mut e.error.field
            && let Some((_, ours)) = names.iter().find(|(theirs, _)| theirs == field)
        {
            *field = (*ours).to_owned();
        }
        e
    }
}

/// The first value given twice, if any.
pub(super) fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}

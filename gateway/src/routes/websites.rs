//! The dashboard's websites (`/api/v1/websites`, session): what the console lists, adds, renames,
//! re-zones and deletes. The same records as the external API's `/websites`, reached through team
//! membership instead of a key. Any member of a team may list, add, change and delete its
//! websites, as any member's write key may.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{Months, NaiveDate};
use proto::analytics::v1 as anpb;
use proto::identity::v1 as idpb;
use serde::Deserialize;
use serde_json::{Map, json};

use crate::envelope::{Body, Path, created, ok, parse_query};
use crate::error::ApiResult;
use crate::flows::stats;
use crate::session::SessionUser;
use crate::state::AppState;
use crate::time::rfc3339;
use crate::views;
use crate::vocabulary::{self, CUSTOM_PERIOD, PROPS, named};
use anpb::{Interval, Metric, NamedPeriod, PeriodMeaning, Property};

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
    let websites = crate::flows::websites::of_teams(&state, team_ids).await?;
    Ok(ok(websites).into_response())
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
    // Held to the external API's rules; a domain pasted into a form may bring spaces along.
    let (domain, timezone) = (body.domain.trim().to_owned(), body.timezone.filter(|t| !t.is_empty()));
    crate::flows::websites::check_fields(Some(&domain), Some(&body.name), timezone.as_deref())?;
    state
        .identity
        .clone()
        .get_membership(idpb::GetMembershipRequest { team_id: body.team_id.clone(), actor_user_id: session.user.id })
        .await?;
    let request = anpb::CreateWebsiteRequest { team_id: body.team_id, domain, name: body.name, timezone };
    let website = crate::flows::websites::create(&state, request).await?;
    Ok(created(views::website(&website)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

/// `PATCH /api/v1/websites/{id}`: renames a website of a team I belong to or changes its time
/// zone, as the external `PATCH /websites/{id}` does with a write key; absent fields keep their
/// value. The body is judged first, as `create`'s is (400 whoever asks), then membership (403).
pub async fn update(
    State(state): State<AppState>,
    session: SessionUser,
    Path(website_id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    crate::flows::websites::check_fields(None, body.name.as_deref(), body.timezone.as_deref())?;
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    let website = crate::flows::websites::update(&state, &website, body.name, body.timezone).await?;
    Ok(ok(views::website(&website)).into_response())
}

/// `DELETE /api/v1/websites/{id}`: deletes a website of a team I belong to with its data, as the
/// external `DELETE /websites/{id}` does with a write key.
pub async fn delete(
    State(state): State<AppState>,
    session: SessionUser,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    crate::flows::websites::delete(&state, &website).await?;
    Ok(ok(json!({ "id": website.id, "deleted": true })).into_response())
}

/// The periods the console's picker offers, besides `custom`, which takes its two days from
/// `date`.
const PERIODS: [NamedPeriod; 6] = [
    NamedPeriod::Day,
    NamedPeriod::NamedPeriod24h,
    NamedPeriod::NamedPeriod7d,
    NamedPeriod::NamedPeriod30d,
    NamedPeriod::NamedPeriod90d,
    NamedPeriod::NamedPeriod12mo,
];
const TOTALS: [Metric; 5] =
    [Metric::Visitors, Metric::Visits, Metric::Pageviews, Metric::BounceRate, Metric::VisitDuration];
/// Each breakdown the website's page shows: its name in the answer and its dimension.
const BREAKDOWNS: [(&str, Property); 9] = [
    ("pages", Property::EventPage),
    ("entry_pages", Property::VisitEntryPage),
    ("exit_pages", Property::VisitExitPage),
    ("sources", Property::VisitSource),
    ("utm_campaigns", Property::VisitUtmCampaign),
    ("countries", Property::VisitCountry),
    ("devices", Property::VisitDevice),
    ("browsers", Property::VisitBrowser),
    ("operating_systems", Property::VisitOs),
];
/// The goals' figures, as the Stats API's `event:goal` breakdown gives them.
const GOAL_METRICS: [Metric; 5] =
    [Metric::Visitors, Metric::Events, Metric::ConversionRate, Metric::TotalRevenue, Metric::AverageRevenue];
/// The figures of a custom event or property: its visitors and its events.
const EVENT_METRICS: [Metric; 2] = [Metric::Visitors, Metric::Events];
/// Event names that are not custom events: the page's own.
const NOT_CUSTOM: [&str; 2] = ["pageview", "engagement"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    date: Option<String>,
    /// A JSON list of v2 filters (`[["is","event:page",["/pricing"]]]`), or the Stats API v1
    /// syntax (`event:page==/pricing;visit:country==DE`).
    #[serde(default)]
    filters: Option<String>,
}

/// The two days of a custom period, first and last included.
#[derive(Clone, Copy)]
struct CustomRange {
    first: NaiveDate,
    last: NaiveDate,
}

impl CustomRange {
    /// The series' step, as Plausible picks it for a range: hours for one day, months once the
    /// range spans a month or more, days otherwise.
    fn interval(self) -> Interval {
        if self.first == self.last {
            Interval::Hour
        } else if self.first.checked_add_months(Months::new(1)).is_some_and(|month| month <= self.last) {
            Interval::Month
        } else {
            Interval::Day
        }
    }
}

/// `date` as the period needs it: two days `YYYY-MM-DD,YYYY-MM-DD`, in order, for `custom`; one
/// day (the period's last) or none otherwise.
fn custom_range(period: &str, date: Option<&str>) -> ApiResult<Option<CustomRange>> {
    let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    if period != CUSTOM_PERIOD {
        return match date {
            Some(date) if day(date).is_none() => Err(common::Error::validation("date: must be YYYY-MM-DD").into()),
            _ => Ok(None),
        };
    }
    let (first, last) = date
        .and_then(|d| d.split_once(','))
        .and_then(|(a, b)| Some((day(a)?, day(b)?)))
        .ok_or_else(|| common::Error::validation("date: a custom period needs two days, YYYY-MM-DD,YYYY-MM-DD"))?;
    if first > last {
        return Err(common::Error::validation("date: the first day must not be after the last").into());
    }
    Ok(Some(CustomRange { first, last }))
}

/// `GET /api/v1/websites/{id}/stats`: what the website's console page shows, for a member of its
/// team on any plan: the headline figures with their change against the previous period, a
/// series of visitors and pageviews, the top breakdowns and the visitors of the last 5 minutes.
pub async fn stats(
    State(state): State<AppState>,
    session: SessionUser,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params: StatsParams = parse_query(q.as_deref())?;
    let asked = console_period(params.period, params.date.as_deref())?;
    let filters = crate::filters::console_filters(params.filters.as_deref().unwrap_or_default())?;
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    let period = &asked.period;
    let scoped = |request: anpb::QueryRequest| anpb::QueryRequest {
        filters: filters.clone(),
        end_day: asked.end_day.clone(),
        ..request
    };
    let totals = scoped(stats::query(&website.id, period, &TOTALS));
    let previous = anpb::QueryRequest { previous_period: true, ..totals.clone() };
    let interval = match (NamedPeriod::from_name(&asked.name), asked.custom) {
        (_, Some(range)) => range.interval(),
        (Some(NamedPeriod::Day | NamedPeriod::NamedPeriod24h), _) => Interval::Hour,
        (Some(NamedPeriod::NamedPeriod12mo), _) => Interval::Month,
        _ => Interval::Day,
    };
    let series = anpb::QueryRequest {
        dimensions: vec![interval.dimension().into()],
        fill_time: true,
        ..scoped(stats::query(&website.id, period, &[Metric::Visitors, Metric::Pageviews]))
    };
    let breakdowns = BREAKDOWNS.map(|(_, dimension)| {
        stats::run(&state, scoped(stats::breakdown_of(&website.id, period, dimension.name(), &[Metric::Visitors], 10)))
    });
    let goals = scoped(stats::breakdown_of(&website.id, period, Property::EventGoal.name(), &GOAL_METRICS, 100));
    let events = scoped(stats::breakdown_of(&website.id, period, Property::EventName.name(), &EVENT_METRICS, 100));
    let (now, before, series, breakdowns, realtime, goals, events) = tokio::try_join!(
        stats::run(&state, totals),
        stats::run(&state, previous),
        stats::run(&state, series),
        futures::future::try_join_all(breakdowns),
        stats::run(&state, stats::query(&website.id, &named(NamedPeriod::Realtime), &[Metric::Visitors])),
        stats::run(&state, goals),
        stats::run(&state, events),
    )?;
    let first = |answer: &anpb::QueryResponse| answer.rows.first().map(|r| r.metrics.clone()).unwrap_or_default();
    let (now_values, before_values) = (first(&now), first(&before));
    let mut figures = Map::new();
    for (i, metric) in TOTALS.iter().enumerate() {
        let (value, was) =
            (now_values.get(i).copied().unwrap_or_default(), before_values.get(i).copied().unwrap_or_default());
        figures.insert(
            metric.name().into(),
            json!({
                "value": stats::metric_value(metric.name(), value),
                "previous": stats::metric_value(metric.name(), was),
                "change": stats::change(metric.name(), was, value),
            }),
        );
    }
    let mut tops = Map::new();
    for ((name, _), answer) in BREAKDOWNS.iter().zip(&breakdowns) {
        tops.insert((*name).into(), json!(stats::top(answer, "value", &[Metric::Visitors])));
    }
    Ok(ok(json!({
        "website": views::website(&website),
        "period": asked.name,
        "from": rfc3339(now.from_unix_ms),
        "to": rfc3339(now.to_unix_ms),
        "figures": figures,
        "series": stats::top(&series, "date", &[Metric::Visitors, Metric::Pageviews]),
        "breakdowns": tops,
        "goals": stats::top(&goals, "value", &GOAL_METRICS),
        "custom_events": custom_events(&events),
        "realtime_visitors": first(&realtime).first().copied().unwrap_or_default() as i64,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertiesParams {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    filters: Option<String>,
    /// The custom event whose properties to show.
    #[serde(default)]
    event: Option<String>,
    /// The property to break down by, one of the names seen; default the first.
    #[serde(default)]
    property: Option<String>,
}

/// The period of a console request, checked.
struct ConsolePeriod {
    /// As asked.
    name: String,
    period: anpb::Period,
    end_day: String,
    custom: Option<CustomRange>,
}

/// The period of a console request, checked: its name and `date`.
fn console_period(period: Option<String>, date: Option<&str>) -> ApiResult<ConsolePeriod> {
    let name = period.unwrap_or_else(|| NamedPeriod::NamedPeriod30d.name().into());
    let offered: Vec<&str> = PERIODS.iter().map(|p| p.name()).chain([CUSTOM_PERIOD]).collect();
    if !offered.contains(&name.as_str()) {
        return Err(common::Error::validation(format!("period: must be one of {}", offered.join(", "))).into());
    }
    let custom = custom_range(&name, date)?;
    let (period, end_day) = vocabulary::period(&name, date.unwrap_or_default(), PeriodMeaning::Ours)?;
    Ok(ConsolePeriod { name, period, end_day, custom })
}

/// `GET /api/v1/websites/{id}/properties`: the custom property names seen on one custom event
/// in the period, and the breakdown of one of them (`event:props:<name>`, visitors and
/// events) over that event's events, under the page's filters.
pub async fn properties(
    State(state): State<AppState>,
    session: SessionUser,
    Path(website_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params: PropertiesParams = parse_query(q.as_deref())?;
    let asked = console_period(params.period, params.date.as_deref())?;
    let event =
        params.event.filter(|e| !e.is_empty()).ok_or_else(|| common::Error::validation("event: is required"))?;
    common::text::check_line("event", &event)?;
    let mut filters = crate::filters::console_filters(params.filters.as_deref().unwrap_or_default())?;
    filters.push(anpb::Filter {
        operator: "is".into(),
        dimension: Property::EventName.name().into(),
        values: vec![event.clone()],
        ignore_case: false,
    });
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    let request = anpb::ListPropertyKeysRequest {
        website_id: website.id.clone(),
        period: Some(asked.period.clone()),
        end_day: asked.end_day.clone(),
        event_name: event.clone(),
    };
    let keys = state.analytics.clone().list_property_keys(request).await?.into_inner().keys;
    let Some(property) = params.property.filter(|p| keys.contains(p)).or_else(|| keys.first().cloned()) else {
        return Ok(ok(json!({ "event": event, "keys": keys, "property": null, "rows": [] })).into_response());
    };
    let dimension = format!("{PROPS}{property}");
    let breakdown = anpb::QueryRequest {
        filters,
        end_day: asked.end_day,
        ..stats::breakdown_of(&website.id, &asked.period, &dimension, &EVENT_METRICS, 100)
    };
    let answer = stats::run(&state, breakdown).await?;
    let rows = stats::top(&answer, "value", &EVENT_METRICS);
    Ok(ok(json!({ "event": event, "keys": keys, "property": property, "rows": rows })).into_response())
}

/// The rows of an `event:name` breakdown that are custom events.
fn custom_events(answer: &anpb::QueryResponse) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let custom = anpb::QueryResponse {
        rows: answer
            .rows
            .iter()
            .filter(|row| row.dimensions.first().is_none_or(|name| !NOT_CUSTOM.contains(&name.as_str())))
            .cloned()
            .collect(),
        ..answer.clone()
    };
    stats::top(&custom, "value", &EVENT_METRICS)
}

/// `GET /api/v1/websites/{id}/realtime`: the visitors of the last 5 minutes, which the website's
/// page refreshes on its own without asking for everything else again.
pub async fn realtime(
    State(state): State<AppState>,
    session: SessionUser,
    Path(website_id): Path<String>,
) -> ApiResult<Response> {
    let website = crate::flows::access::member_website(&state, &session, website_id).await?;
    let visitors = stats::realtime_totals(&state, &website.id).await?.visitors;
    Ok(ok(json!({ "visitors": visitors })).into_response())
}

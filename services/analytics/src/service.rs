//! Analytics' rules for websites.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use chrono_tz::Tz;

use common::bus::{Change, ChangeBus, announce};
use common::db::{Backend, OpenError};
use common::secret::random_token;
use common::time::now_ms;
use common::{Error, Result};
use proto::vocabulary::AUTO_TIME;

use crate::model::{Goal, GoalTarget, Website, normalize_domain, validate_currency, validate_name, validate_timezone};
use crate::period::{Asked, Meaning, Period};
use crate::query::{Answer, Buckets, Counted, Filter, Matching, Parts, Query, Shares};
use crate::store::{ReadFrom, Store};
use crate::writer::Writer;

#[derive(Clone)]
pub struct Analytics {
    pub(crate) store: Store,
    pub(crate) bots: Arc<isbot::Bots>,
    /// Today's visitor-hash salt, as (start of the UTC day, salt).
    pub(crate) salt: Arc<Mutex<Option<(i64, String)>>>,
    pub(crate) writer: Writer,
    /// Sites by the name trackers send (domain or tracking code), with when they were read.
    pub(crate) sites: Arc<Mutex<HashMap<String, (Website, Instant)>>>,
    /// User agents seen lately: what they say, or None for bots.
    pub(crate) clients: Arc<Mutex<HashMap<String, Option<crate::parse::Client>>>>,
    /// Where website changes are announced (gateways evict their lists).
    changes: Option<Arc<dyn ChangeBus>>,
    /// Pairs of dimensions known to be recorded for rollups, as (site, pair name).
    pub(crate) pairs: Arc<Mutex<HashSet<(String, String)>>>,
}

/// A statistics query as asked, before validation (see `query.rs` for the names).
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub website_id: String,
    pub metrics: Vec<String>,
    pub dimensions: Vec<String>,
    /// (operator, dimension, values)
    pub filters: Vec<(String, String, Vec<String>)>,
    /// Per filter, whether it carries Plausible's `case_sensitive: false` modifier (a missing
    /// entry: no).
    pub ignore_case: Vec<bool>,
    pub period: Asked,
    /// The day a named or counted period ends on (`YYYY-MM-DD`), empty for today.
    pub end_day: String,
    /// Whose days `period` names.
    pub meaning: Meaning,
    /// (metric or dimension, descending)
    pub order_by: Vec<(String, bool)>,
    pub limit: usize,
    pub offset: usize,
    pub fill_time: bool,
    pub previous_period: bool,
}

pub struct WebsiteChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
}

impl Analytics {
    pub async fn open(backend: &Backend) -> Result<Analytics, OpenError> {
        Analytics::open_with(backend, &crate::Storage::default()).await
    }

    /// Opens the service with a read replica for statistics and event retention, when set.
    pub async fn open_with(backend: &Backend, storage: &crate::Storage) -> Result<Analytics, OpenError> {
        let store = Store::open(backend, storage).await?;
        Ok(Analytics {
            writer: Writer::spawn(backend).await?,
            store,
            bots: Arc::new(isbot::Bots::default()),
            salt: Arc::default(),
            sites: Arc::default(),
            clients: Arc::default(),
            changes: None,
            pairs: Arc::default(),
        })
    }

    /// Announces website changes on `bus`.
    pub fn announcing(self, bus: Arc<dyn ChangeBus>) -> Analytics {
        Analytics { changes: Some(bus), ..self }
    }

    /// Tells every gateway that a website of the team changed.
    async fn changed(&self, team_id: &str) {
        announce(self.changes.as_ref(), Change::Websites(team_id.to_owned())).await;
    }

    pub async fn create_website(
        &self,
        team_id: &str,
        domain: &str,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<Website> {
        if team_id.is_empty() {
            return Err(Error::validation("team_id is required"));
        }
        let website = Website {
            id: uuid::Uuid::now_v7().to_string(),
            team_id: team_id.to_owned(),
            domain: normalize_domain(domain)?,
            name: validate_name(name)?,
            timezone: validate_timezone(timezone.unwrap_or("UTC"))?,
            tracking_code: random_token("zvt_")[..16].to_owned(),
            created_at: now_ms(),
        };
        // The tracker and the drop-in find a site by its name with or without `www.`: the two
        // names are one host, and one site's, which the store checks as it inserts.
        self.store.insert_website(&website).await?;
        self.changed(team_id).await;
        Ok(website)
    }

    pub async fn get_website(&self, id: &str) -> Result<Website> {
        self.store.website(id).await?.ok_or_else(|| Error::not_found("website"))
    }

    /// A website by id, or by domain as Plausible's clients name sites.
    pub async fn find_website(&self, id_or_domain: &str) -> Result<Website> {
        if let Some(website) = self.store.website(id_or_domain).await? {
            return Ok(website);
        }
        let domain = normalize_domain(id_or_domain).map_err(|_| Error::not_found("website"))?;
        self.store.website_by_either_domain(&domain).await?.ok_or_else(|| Error::not_found("website"))
    }

    /// The websites of these teams, oldest first.
    pub async fn list_websites(&self, team_ids: &[String]) -> Result<Vec<Website>> {
        self.store.websites_of(team_ids).await
    }

    pub async fn update_website(&self, id: &str, changes: WebsiteChanges) -> Result<Website> {
        let mut website = self.get_website(id).await?;
        if let Some(name) = changes.name {
            website.name = validate_name(&name)?;
        }
        let old_zone = website.timezone.clone();
        if let Some(tz) = changes.timezone {
            website.timezone = validate_timezone(&tz)?;
        }
        self.store.update_website(&website).await?;
        if website.timezone != old_zone {
            self.zone_changed(&website.id).await?;
        }
        self.changed(&website.team_id).await;
        Ok(website)
    }

    pub async fn delete_website(&self, id: &str) -> Result<()> {
        let website = self.get_website(id).await?;
        if !self.store.delete_website(id).await? {
            return Err(Error::not_found("website"));
        }
        self.sites.lock().expect("sites lock poisoned").retain(|_, (site, _)| site.id != id);
        self.changed(&website.team_id).await;
        Ok(())
    }

    /// Runs a statistics query in the website's time zone; also returns the resolved `[from, to)`.
    pub async fn query(&self, request: QueryRequest) -> Result<(Answer, (i64, i64))> {
        let website = self.get_website(&request.website_id).await?;
        let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
        // Only `all` needs the site's first event.
        let first_event = if request.period.is_all() { self.store.first_event(&website.id).await? } else { None };
        let period = Period {
            meaning: request.meaning,
            asked: &request.period,
            end_day: &request.end_day,
            now: Utc::now(),
            first_event,
        };
        let mut range = crate::period::resolve(tz, &period)?;
        if request.previous_period {
            range = crate::period::previous(tz, &period, range)?;
        }
        let plausibles = request.meaning != Meaning::Ours;
        let filters = request
            .filters
            .into_iter()
            .enumerate()
            .map(|(i, (op, dim, values))| {
                let filter = Filter::new(&op, &dim, values)?.blanks_named();
                // Plausible's text matching on its faces (README, "Events and statistics").
                let ignore_case = request.ignore_case.get(i).copied().unwrap_or_default();
                let matching = match (plausibles, ignore_case) {
                    (false, _) => Matching::Ours,
                    (true, false) => Matching::Exact,
                    (true, true) => Matching::IgnoreCase,
                };
                Ok(Filter { matching, ..filter })
            })
            .collect::<Result<Vec<_>>>()?;
        // `time` is the interval Plausible chooses for the period (README, "Events and statistics").
        let time = match request.meaning {
            Meaning::PlausibleV1 => crate::period::v1_interval(tz, range),
            _ => proto::analytics::v1::Interval::for_period(range.0, range.1),
        }
        .dimension();
        let resolved = |name: &String| if name == AUTO_TIME { time.to_owned() } else { name.clone() };
        let dimensions: Vec<String> = request.dimensions.iter().map(resolved).collect();
        let order_by: Vec<(String, bool)> = request.order_by.iter().map(|(key, d)| (resolved(key), *d)).collect();
        let query = Query::new(
            website.id,
            tz,
            range,
            &request.metrics,
            &dimensions,
            filters,
            &order_by,
            (request.limit, request.offset),
            request.fill_time,
        )?;
        // Plausible computes a page's session figures over the visits that entered there.
        let query = Query {
            sessions_by_entry_page: request.meaning != Meaning::Ours,
            conversion_by_group: request.meaning == Meaning::PlausibleV1,
            blank_labels: plausibles,
            drops_blank: request.meaning == Meaning::PlausibleV1,
            ..query
        };
        let goals = if query.uses_goals() { self.store.goals(&query.website_id).await? } else { vec![] };
        let query = query.with_goals(goals)?;
        let buckets = query.buckets()?;
        let (parts, rolled_up_days) = self.counted(&query, buckets.as_ref()).await?;
        let visitors_of = |(parts, _): (Parts, usize)| {
            parts.events.first().and_then(|(_, counts)| counts.first()).copied().unwrap_or_default()
        };
        let mut shares = Shares::default();
        let bases = query.share_queries();
        if let Some(base) = bases.conversion {
            shares.conversion_base = visitors_of(self.counted(&base, None).await?);
        }
        if let Some(base) = bases.conversion_by_group {
            // Each group's visitors, by the same keys as the query's rows.
            let (parts, _) = self.counted(&base, buckets.as_ref()).await?;
            shares.conversion_groups = parts.events.into_iter().map(|(key, counts)| (key, counts[0])).collect();
        }
        if let Some(base) = bases.percentage {
            shares.percentage_base = visitors_of(self.counted(&base, None).await?);
        }
        let answer = query.answer(parts, buckets.as_ref(), shares);
        Ok((Answer { rolled_up_days, ..answer }, range))
    }

    /// The custom property names on the site's events of `period` (our meaning, ending on
    /// `end_day`), of the events named `event_name` when given.
    pub async fn property_keys(
        &self,
        website_id: &str,
        period: &Asked,
        end_day: &str,
        event_name: &str,
    ) -> Result<Vec<String>> {
        let website = self.get_website(website_id).await?;
        let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
        let first_event = if period.is_all() { self.store.first_event(&website.id).await? } else { None };
        let period = Period { meaning: Meaning::Ours, asked: period, end_day, now: Utc::now(), first_event };
        let range = crate::period::resolve(tz, &period)?;
        common::text::check_line("event_name", event_name)?;
        self.store.property_keys(&website.id, range, event_name).await
    }

    /// Every part of a query, from rollups where they can answer, and how many days they did
    /// for the query and for its entering visits alike.
    async fn counted(&self, query: &Query, buckets: Option<&Buckets>) -> Result<(Parts, usize)> {
        let (mut parts, mut days) = self.parts(query, buckets).await?;
        if let Some(entry) = query.entry_page_query() {
            let (entries, entry_days) = self.parts(&entry, buckets).await?;
            parts.entries = entries.visits;
            days = days.min(entry_days);
        }
        Ok((parts, days))
    }

    async fn parts(&self, query: &Query, buckets: Option<&Buckets>) -> Result<(Parts, usize)> {
        if let Some(parts) = self.read_rollups(query, buckets).await? {
            return Ok(parts);
        }
        Ok((self.read_events(query, buckets, ReadFrom::Replica).await?, 0))
    }

    /// The website's goals, oldest first.
    pub async fn list_goals(&self, website_id: &str) -> Result<Vec<Goal>> {
        let website = self.get_website(website_id).await?;
        self.store.goals(&website.id).await
    }

    /// Adds a goal of a custom event or of pages; a conflict when the site has one of that name.
    pub async fn create_goal(&self, website_id: &str, target: GoalTarget, currency: Option<&str>) -> Result<Goal> {
        let currency = validate_currency(currency, &target)?;
        let website = self.get_website(website_id).await?;
        let goal = Goal {
            id: uuid::Uuid::now_v7().to_string(),
            website_id: website.id,
            display_name: target.display_name(),
            target,
            currency,
            created_at: now_ms(),
        };
        self.store.insert_goal(&goal).await?;
        Ok(goal)
    }

    pub async fn delete_goal(&self, website_id: &str, goal_id: &str) -> Result<()> {
        let website = self.get_website(website_id).await?;
        if !self.store.delete_goal(&website.id, goal_id).await? {
            return Err(Error::not_found("goal"));
        }
        Ok(())
    }

    /// Every part of a query, computed from raw events and visits.
    pub(crate) async fn read_events(&self, query: &Query, buckets: Option<&Buckets>, from: ReadFrom) -> Result<Parts> {
        let dialect = self.store.dialect();
        let part = |sql: Option<crate::query::Sql>, counters: usize| async move {
            match sql {
                Some(sql) => self.store.counted(&sql, &query.dims, counters, from).await,
                None => Ok(vec![]),
            }
        };
        let (events, visits, engagement) = tokio::try_join!(
            self.events_part(query, buckets, from),
            part(query.visit_sql(dialect, buckets), 4),
            part(query.engagement_sql(dialect, buckets), 4),
        )?;
        Ok(Parts { events, visits, engagement, entries: vec![] })
    }

    /// The events part from raw events, or, where visits can answer for the period from some
    /// point on (see [`Query::day_visits_from`]), from events before it and visits from there.
    /// Those visits answer only when no event of theirs lies past the period's end (a period
    /// ending now, as an event arrives; a local day ending within a UTC day): else the events do.
    async fn events_part(&self, query: &Query, buckets: Option<&Buckets>, from: ReadFrom) -> Result<Vec<Counted>> {
        let dialect = self.store.dialect();
        let dims = &query.dims;
        if let Some(first) = query.day_visits_from(buckets, self.store.visits_from(), now_ms()) {
            let days = query.with_range(first, query.to).day_visits_sql(dialect, buckets);
            let head = (first > query.from).then(|| query.with_range(query.from, first).event_sql(dialect, buckets));
            let (mut rows, head) = tokio::try_join!(self.store.counted(&days, dims, 4, from), async {
                match head.flatten() {
                    Some(sql) => self.store.counted(&sql, dims, 3, from).await,
                    None => Ok(vec![]),
                }
            })?;
            if rows.iter().all(|(_, c)| c[3] < query.to) {
                // One row per group, as the parts' readers expect.
                let mut groups = HashMap::new();
                for (key, c) in rows.drain(..).chain(head) {
                    crate::rollup::add(&mut groups, key, &c[..3]);
                }
                return Ok(groups.into_iter().collect());
            }
        }
        match query.event_sql(dialect, buckets) {
            Some(sql) => self.store.counted(&sql, dims, query.event_counters(), from).await,
            None => Ok(vec![]),
        }
    }
}

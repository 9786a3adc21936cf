//! The one query engine behind every statistics endpoint: overview, breakdowns, Plausible's v1
//! and v2 shapes, realtime and MCP all become a [`Query`].
//!
//! Metric definitions (also in the README):
//! - `visitors`: distinct daily visitor hashes among the period's events;
//! - `pageviews`: `pageview` events; `events`: all events;
//! - `visits`: visits that started in the period. A visit is one visitor's run of events with no
//!   gap over 30 minutes;
//! - `views_per_visit`: pageviews of those visits ÷ visits (two decimals);
//! - `bounce_rate`: percentage of those visits with at most one pageview (rounded);
//! - `visit_duration`: mean seconds from a visit's first to its last event (rounded).
//!
//! Grouped by a page or event name, visit metrics are over the visits that include that page or
//! event. Visit attributes (entry page, source, UTM, country, device, browser, os) are the
//! visit's first event's, and every event of the visit carries them.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Timelike, Utc};

use crate::period::midnight;
use chrono_tz::Tz;
use common::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    TimeOnPage,
    ScrollDepth,
}

/// Which part of a query computes a metric: event rows, visit rows, or engagement event rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Events,
    Visits,
    Engagement,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::TimeOnPage,
        Metric::ScrollDepth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::TimeOnPage => "time_on_page",
            Metric::ScrollDepth => "scroll_depth",
        }
    }

    pub fn parse(name: &str) -> Result<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let known: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
            Error::invalid("metrics", format!("unknown metric {name:?}; use {}", known.join(", ")))
        })
    }

    fn part(self) -> Part {
        match self {
            Metric::Visitors | Metric::Pageviews | Metric::Events => Part::Events,
            Metric::TimeOnPage | Metric::ScrollDepth => Part::Engagement,
            _ => Part::Visits,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Page,
    Name,
    EntryPage,
    ExitPage,
    Source,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Country,
    Device,
    Browser,
    Os,
    Time(Interval),
}

/// The dimensions kept in daily rollups (with the day's totals).
pub const ROLLUP_DIMS: [Dim; 12] = [
    Dim::Page,
    Dim::Name,
    Dim::EntryPage,
    Dim::ExitPage,
    Dim::Source,
    Dim::UtmSource,
    Dim::UtmMedium,
    Dim::UtmCampaign,
    Dim::Country,
    Dim::Device,
    Dim::Browser,
    Dim::Os,
];

impl Dim {
    /// Every dimension: the rolled-up ones and time.
    fn all() -> impl Iterator<Item = Dim> {
        let times = [Interval::Hour, Interval::Day, Interval::Week, Interval::Month].map(Dim::Time);
        ROLLUP_DIMS.into_iter().chain(times)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dim::Page => "event:page",
            Dim::Name => "event:name",
            Dim::EntryPage => "visit:entry_page",
            Dim::ExitPage => "visit:exit_page",
            Dim::Source => "visit:source",
            Dim::UtmSource => "visit:utm_source",
            Dim::UtmMedium => "visit:utm_medium",
            Dim::UtmCampaign => "visit:utm_campaign",
            Dim::Country => "visit:country",
            Dim::Device => "visit:device",
            Dim::Browser => "visit:browser",
            Dim::Os => "visit:os",
            Dim::Time(Interval::Hour) => "time:hour",
            Dim::Time(Interval::Day) => "time:day",
            Dim::Time(Interval::Week) => "time:week",
            Dim::Time(Interval::Month) => "time:month",
        }
    }

    pub fn parse(name: &str, what: &str) -> Result<Dim> {
        Dim::all().find(|d| d.name() == name).ok_or_else(|| {
            let known: Vec<_> = Dim::all().map(|d| d.name()).collect();
            Error::invalid(what, format!("unknown dimension {name:?}; use {}", known.join(", ")))
        })
    }

    /// Its column on `events`; the exit page is known only to the visit.
    fn event_column(self) -> Option<&'static str> {
        Some(match self {
            Dim::Page => "pathname",
            Dim::Name => "name",
            Dim::ExitPage | Dim::Time(_) => return None,
            other => other.visit_column()?,
        })
    }

    /// Its column on `visits`; pages and event names belong to events.
    fn visit_column(self) -> Option<&'static str> {
        Some(match self {
            Dim::EntryPage => "entry_page",
            Dim::ExitPage => "exit_page",
            Dim::Source => "source",
            Dim::UtmSource => "utm_source",
            Dim::UtmMedium => "utm_medium",
            Dim::UtmCampaign => "utm_campaign",
            Dim::Country => "country",
            Dim::Device => "device",
            Dim::Browser => "browser",
            Dim::Os => "os",
            Dim::Page | Dim::Name | Dim::Time(_) => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    Matches,
    MatchesNot,
}

impl Op {
    pub fn parse(name: &str) -> Result<Op> {
        Ok(match name {
            "is" => Op::Is,
            "is_not" => Op::IsNot,
            "contains" => Op::Contains,
            "contains_not" => Op::ContainsNot,
            "matches" | "matches_wildcard" => Op::Matches,
            "matches_not" | "matches_wildcard_not" => Op::MatchesNot,
            other => {
                return Err(Error::invalid(
                    "filters",
                    format!("unknown operator {other:?}; use is, is_not, contains, contains_not, matches, matches_not"),
                ));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dim: Dim,
    pub op: Op,
    pub values: Vec<String>,
}

impl Filter {
    pub fn new(op: &str, dim: &str, values: Vec<String>) -> Result<Filter> {
        let dim = Dim::parse(dim, "filters")?;
        if matches!(dim, Dim::Time(_)) {
            return Err(Error::invalid("filters", "time is chosen by the period, not by a filter"));
        }
        if values.is_empty() || values.len() > 100 || values.iter().any(|v| v.len() > 2000) {
            return Err(Error::invalid("filters", "each filter needs 1 to 100 values"));
        }
        for value in &values {
            common::text::check_line("filters", value)?;
        }
        Ok(Filter { dim, op: Op::parse(op)?, values })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    Metric(usize),
    Dim(usize),
}

/// A validated query over `[from, to)`.
#[derive(Debug, Clone)]
pub struct Query {
    pub website_id: String,
    pub tz: Tz,
    pub from: i64,
    pub to: i64,
    pub metrics: Vec<Metric>,
    pub dims: Vec<Dim>,
    pub filters: Vec<Filter>,
    pub order: Vec<(OrderKey, bool)>,
    pub limit: usize,
    pub offset: usize,
    pub fill_time: bool,
}

pub struct Answer {
    pub rows: Vec<(Vec<String>, Vec<f64>)>,
    pub total_rows: usize,
    pub time_labels: Vec<String>,
    /// Days read from rollups rather than raw events.
    pub rolled_up_days: usize,
}

impl Query {
    /// Validates names and order keys against each other.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        website_id: String,
        tz: Tz,
        (from, to): (i64, i64),
        metrics: &[String],
        dims: &[String],
        filters: Vec<Filter>,
        order: &[(String, bool)],
        (limit, offset): (usize, usize),
        fill_time: bool,
    ) -> Result<Query> {
        if metrics.is_empty() {
            return Err(Error::invalid("metrics", "at least one metric is required"));
        }
        let metrics = metrics.iter().map(|m| Metric::parse(m)).collect::<Result<Vec<_>>>()?;
        let dims = dims.iter().map(|d| Dim::parse(d, "dimensions")).collect::<Result<Vec<_>>>()?;
        if dims.iter().filter(|d| matches!(d, Dim::Time(_))).count() > 1 {
            return Err(Error::invalid("dimensions", "at most one time dimension"));
        }
        if dims.len() > 4 || (1..dims.len()).any(|i| dims[..i].contains(&dims[i])) {
            return Err(Error::invalid("dimensions", "at most 4 distinct dimensions"));
        }
        let order = order
            .iter()
            .map(|(key, descending)| {
                let key = if let Some(i) = metrics.iter().position(|m| m.name() == key) {
                    OrderKey::Metric(i)
                } else if let Some(i) = dims.iter().position(|d| d.name() == key) {
                    OrderKey::Dim(i)
                } else {
                    return Err(Error::invalid(
                        "order_by",
                        format!("{key:?} is neither a queried metric nor a dimension"),
                    ));
                };
                Ok((key, *descending))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Query { website_id, tz, from, to, metrics, dims, filters, order, limit, offset, fill_time })
    }

    /// The same query over a part of its period (time buckets stay those of the whole).
    pub fn with_range(&self, from: i64, to: i64) -> Query {
        Query { from, to, ..self.clone() }
    }

    /// Also with engagement metrics: the groups are those of the period's events, as in
    /// Plausible (a page without engagement has no time on page, rather than no row).
    pub fn needs_events(&self) -> bool {
        self.metrics.iter().any(|m| matches!(m.part(), Part::Events | Part::Engagement))
    }

    pub fn needs_visits(&self) -> bool {
        self.metrics.iter().any(|m| m.part() == Part::Visits)
    }

    pub fn needs_engagement(&self) -> bool {
        self.metrics.iter().any(|m| m.part() == Part::Engagement)
    }

    /// Whether daily rollups can answer this query, and with which dimension's rows (None: the
    /// totals). They keep one dimension per row, whole days and no filters.
    pub fn rollup_dim(&self) -> Option<Option<Dim>> {
        let mut other = self.dims.iter().filter(|d| !matches!(d, Dim::Time(_)));
        let dim = other.next().copied();
        let fits = self.filters.is_empty()
            && other.next().is_none()
            && !self.dims.contains(&Dim::Time(Interval::Hour))
            && dim.is_none_or(|d| ROLLUP_DIMS.contains(&d));
        fits.then_some(dim)
    }

    fn time_dim(&self) -> Option<(usize, Interval)> {
        self.dims.iter().enumerate().find_map(|(i, d)| match d {
            Dim::Time(interval) => Some((i, *interval)),
            _ => None,
        })
    }

    pub fn buckets(&self) -> Result<Option<Buckets>> {
        self.time_dim().map(|(_, interval)| Buckets::new(self.tz, interval, self.from, self.to)).transpose()
    }

    /// Event rows of the period matching the filters, engagement events or the others: the
    /// dimensions' columns and the `FROM … WHERE …` that selects them.
    fn event_rows(
        &self,
        sql: &mut Sql,
        like: &str,
        buckets: Option<&Buckets>,
        engagement: bool,
    ) -> (Vec<String>, String) {
        let (site, from, to) = sql.range(self);
        let join_visits = self.dims.contains(&Dim::ExitPage) || self.filters.iter().any(|f| f.dim == Dim::ExitPage);
        let column = |dim: Dim| match dim {
            Dim::ExitPage => "v.exit_page".to_owned(),
            Dim::Time(_) => buckets.expect("buckets of a time dimension").case("e.ts"),
            other => format!("e.{}", other.event_column().expect("events carry every other dimension")),
        };
        let name = if engagement { "e.name = 'engagement'" } else { "e.name <> 'engagement'" };
        let mut conditions = vec![format!("e.website_id = {site} AND e.ts >= {from} AND e.ts < {to} AND {name}")];
        for filter in &self.filters {
            conditions.push(sql.condition(&column(filter.dim), filter, like));
        }
        let dims = self.dims.iter().map(|d| column(*d)).collect();
        let join = if join_visits { " JOIN visits v ON v.id = e.visit_id" } else { "" };
        (dims, format!("FROM events e{join} WHERE {}", conditions.join(" AND ")))
    }

    /// The SQL of the events part, when a metric needs it. Engagement events are not events.
    pub fn event_sql(&self, like: &str, buckets: Option<&Buckets>) -> Option<Sql> {
        if !self.needs_events() {
            return None;
        }
        let mut sql = Sql::default();
        let (dims, rows) = self.event_rows(&mut sql, like, buckets, false);
        sql.text = format!(
            "SELECT {}CAST(COUNT(DISTINCT e.visitor_id) AS BIGINT) AS visitors, \
             CAST(COALESCE(SUM(CASE WHEN e.name = 'pageview' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pageviews, \
             CAST(COUNT(*) AS BIGINT) AS events {rows}{}",
            select_dims(&dims),
            group_by(dims.len()),
        );
        Some(sql)
    }

    /// The SQL of the engagement part, when a metric needs it: per group, the engaged
    /// milliseconds and the visits they belong to, and the sum of each visit's deepest scroll
    /// with the visits that sent one.
    pub fn engagement_sql(&self, like: &str, buckets: Option<&Buckets>) -> Option<Sql> {
        if !self.needs_engagement() {
            return None;
        }
        let mut sql = Sql::default();
        let (dims, rows) = self.event_rows(&mut sql, like, buckets, true);
        let outer: Vec<String> = (0..dims.len()).map(|i| format!("x.d{i}")).collect();
        sql.text = format!(
            "SELECT {}CAST(COALESCE(SUM(x.ms), 0) AS BIGINT) AS engaged_ms, CAST(COUNT(*) AS BIGINT) AS engaged_visits, \
             CAST(COALESCE(SUM(x.sd), 0) AS BIGINT) AS scroll_total, CAST(COUNT(x.sd) AS BIGINT) AS scroll_visits \
             FROM (SELECT {}e.visit_id AS visit, SUM(e.engagement_ms) AS ms, MAX(e.scroll_depth) AS sd {rows}{}) x{}",
            select_dims(&outer),
            select_dims(&dims),
            group_by(dims.len() + 1),
            group_by(dims.len()),
        );
        Some(sql)
    }

    /// How visits meet events filtered or grouped by a page or event name: the join (grouped, a
    /// visit counts once per distinct value it includes) or the condition (filtered, a visit
    /// counts when one of its events in the period matches).
    fn visit_events(&self, sql: &mut Sql, like: &str) -> (String, Option<String>) {
        let (site, from, to) = sql.range(self);
        let event_dims: Vec<Dim> =
            self.dims.iter().copied().filter(|d| d.visit_column().is_none() && !matches!(d, Dim::Time(_))).collect();
        let event_filters: Vec<&Filter> = self.filters.iter().filter(|f| f.dim.visit_column().is_none()).collect();
        let mut inner = vec![format!("website_id = {site} AND ts >= {from} AND ts < {to} AND name <> 'engagement'")];
        for filter in &event_filters {
            inner.push(sql.condition(filter.dim.event_column().expect("an event dimension"), filter, like));
        }
        if !event_dims.is_empty() {
            let columns: Vec<&str> = event_dims.iter().map(|d| d.event_column().expect("an event dimension")).collect();
            let join = format!(
                " JOIN (SELECT DISTINCT visit_id, {} FROM events WHERE {}) x ON x.visit_id = v.id",
                columns.join(", "),
                inner.join(" AND ")
            );
            return (join, None);
        }
        let condition = (!event_filters.is_empty())
            .then(|| format!("v.id IN (SELECT visit_id FROM events WHERE {})", inner.join(" AND ")));
        (String::new(), condition)
    }

    /// The SQL of the visits part, when a metric needs it. A visit counts in the period, and in
    /// each time bucket, that its first to last event overlaps.
    pub fn visit_sql(&self, like: &str, buckets: Option<&Buckets>) -> Option<Sql> {
        if !self.needs_visits() {
            return None;
        }
        let mut sql = Sql::default();
        let (site, from, to) = sql.range(self);
        let mut conditions = vec![format!("v.website_id = {site} AND v.last_ts >= {from} AND v.start_ts < {to}")];
        for filter in self.filters.iter().filter(|f| f.dim.visit_column().is_some()) {
            let column = format!("v.{}", filter.dim.visit_column().expect("a visit dimension"));
            conditions.push(sql.condition(&column, filter, like));
        }
        let (join, condition) = self.visit_events(&mut sql, like);
        conditions.extend(condition);
        let (with, spans) = match (self.time_dim(), buckets) {
            (Some(_), Some(buckets)) => (buckets.values(), " JOIN b ON v.start_ts < b.e AND v.last_ts >= b.s"),
            _ => (String::new(), ""),
        };
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Time(_) => "CAST(b.i AS BIGINT)".to_owned(),
                Dim::Page | Dim::Name => format!("x.{}", d.event_column().expect("an event dimension")),
                other => format!("v.{}", other.visit_column().expect("a visit dimension")),
            })
            .collect();
        // Durations in whole seconds between second-truncated times, as Plausible keeps them.
        sql.text = format!(
            "{with}SELECT {}CAST(COUNT(*) AS BIGINT) AS visits, \
             CAST(COALESCE(SUM(CASE WHEN v.events = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS bounces, \
             CAST(COALESCE(SUM(v.last_ts / 1000 - v.start_ts / 1000), 0) AS BIGINT) AS duration, \
             CAST(COALESCE(SUM(v.pageviews), 0) AS BIGINT) AS views \
             FROM visits v{spans}{join} WHERE {}{}",
            select_dims(&dims),
            conditions.join(" AND "),
            group_by(dims.len()),
        );
        Some(sql)
    }

    /// Joins the parts' rows on their dimension values, computes the metrics, orders and pages.
    pub fn answer(&self, parts: Parts, buckets: Option<&Buckets>) -> Answer {
        let mut groups: HashMap<Vec<String>, Totals> = HashMap::new();
        if self.dims.is_empty() {
            groups.insert(vec![], Totals::default());
        }
        for (key, c) in parts.events {
            let t = groups.entry(key).or_default();
            (t.visitors, t.pageviews, t.events) = (c[0], c[1], c[2]);
        }
        for (key, c) in parts.visits {
            let t = groups.entry(key).or_default();
            (t.visits, t.bounces, t.duration, t.views) = (c[0], c[1], c[2], c[3]);
        }
        // Engagement adds to the groups of other events only: it never makes a row of its own
        // (no `engagement` row in a breakdown by event name).
        for (key, c) in parts.engagement {
            if let Some(t) = groups.get_mut(&key) {
                (t.engaged_ms, t.engaged_visits, t.scroll_total, t.scroll_visits) = (c[0], c[1], c[2], c[3]);
            }
        }
        if let (Some(buckets), true, [Dim::Time(_)]) = (buckets, self.fill_time, self.dims.as_slice()) {
            for i in 0..buckets.labels.len() {
                groups.entry(vec![i.to_string()]).or_default();
            }
        }
        let rows: Vec<(Vec<String>, Vec<f64>)> =
            groups.into_iter().map(|(key, t)| (key, self.metrics.iter().map(|m| t.value(*m)).collect())).collect();
        self.ordered(rows, buckets)
    }

    /// Orders and pages the rows, and names their time buckets.
    fn ordered(&self, mut rows: Vec<(Vec<String>, Vec<f64>)>, buckets: Option<&Buckets>) -> Answer {
        let time = self.time_dim();
        let bucket_of = |key: &[String], i: usize| key[i].parse::<usize>().unwrap_or(usize::MAX);
        let mut order = self.order.clone();
        if order.is_empty() {
            match time {
                Some((i, _)) => order.push((OrderKey::Dim(i), false)),
                None => order.push((OrderKey::Metric(0), true)),
            }
        }
        // Ties are broken by every dimension, so pages of a result never overlap.
        order.extend((0..self.dims.len()).map(|i| (OrderKey::Dim(i), false)));
        rows.sort_by(|a, b| {
            order
                .iter()
                .map(|(key, descending)| {
                    let ordering = match key {
                        OrderKey::Metric(i) => a.1[*i].total_cmp(&b.1[*i]),
                        OrderKey::Dim(i) if Some(*i) == time.map(|t| t.0) => {
                            bucket_of(&a.0, *i).cmp(&bucket_of(&b.0, *i))
                        }
                        OrderKey::Dim(i) => a.0[*i].cmp(&b.0[*i]),
                    };
                    if *descending { ordering.reverse() } else { ordering }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let total_rows = rows.len();
        let limit = if self.limit == 0 { usize::MAX } else { self.limit };
        let mut rows: Vec<_> = rows.into_iter().skip(self.offset).take(limit).collect();
        if let (Some((i, _)), Some(buckets)) = (time, buckets) {
            for (key, _) in &mut rows {
                key[i] = buckets.labels.get(bucket_of(key, i)).cloned().unwrap_or_default();
            }
        }
        Answer {
            rows,
            total_rows,
            time_labels: buckets.map(|b| b.labels.clone()).unwrap_or_default(),
            rolled_up_days: 0,
        }
    }
}

/// One row of a part: dimension values (a bucket index for time) and its counters.
pub type Counted = (Vec<String>, Vec<i64>);

/// A query's rows from each of its parts: events (visitors, pageviews, events), visits (visits,
/// bounces, duration in seconds, pageviews) and engagement (engaged ms, their visits, scroll
/// total, its visits).
#[derive(Default)]
pub struct Parts {
    pub events: Vec<Counted>,
    pub visits: Vec<Counted>,
    pub engagement: Vec<Counted>,
}

/// Every counter of one group.
#[derive(Default, Clone, Copy)]
struct Totals {
    visitors: i64,
    pageviews: i64,
    events: i64,
    visits: i64,
    bounces: i64,
    duration: i64,
    views: i64,
    engaged_ms: i64,
    engaged_visits: i64,
    scroll_total: i64,
    scroll_visits: i64,
}

impl Totals {
    /// A metric of the group, rounded as Plausible rounds it (ClickHouse rounds a tie to even).
    /// NaN when it has no value: time on page and scroll depth with no engagement.
    fn value(&self, metric: Metric) -> f64 {
        let ratio = |x: i64, of: i64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
        let or_none = |x: i64, of: i64| if of == 0 { f64::NAN } else { x as f64 / of as f64 };
        match metric {
            Metric::Visitors => self.visitors as f64,
            Metric::Visits => self.visits as f64,
            Metric::Pageviews => self.pageviews as f64,
            Metric::Events => self.events as f64,
            Metric::ViewsPerVisit => (ratio(self.views, self.visits) * 100.0).round() / 100.0,
            Metric::BounceRate => (ratio(self.bounces, self.visits) * 100.0).round_ties_even(),
            Metric::VisitDuration => ratio(self.duration, self.visits).round_ties_even(),
            Metric::TimeOnPage => (or_none(self.engaged_ms, self.engaged_visits) / 1000.0).round_ties_even(),
            Metric::ScrollDepth => or_none(self.scroll_total, self.scroll_visits).round_ties_even(),
        }
    }
}

fn select_dims(dims: &[String]) -> String {
    dims.iter().enumerate().map(|(i, d)| format!("{d} AS d{i}, ")).collect()
}

fn group_by(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" GROUP BY {}", (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
    }
}

pub enum Bind {
    Text(String),
    Int(i64),
}

/// SQL text with its `$n` parameters.
#[derive(Default)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn range(&mut self, query: &Query) -> (String, String, String) {
        (
            self.bind(Bind::Text(query.website_id.clone())),
            self.bind(Bind::Int(query.from)),
            self.bind(Bind::Int(query.to)),
        )
    }

    /// `column` satisfies `filter`. Text matching ignores ASCII case on both backends (SQLite's
    /// LIKE does; PostgreSQL is given ILIKE).
    fn condition(&mut self, column: &str, filter: &Filter, like: &str) -> String {
        let any = |sql: &mut Sql, pattern: &dyn Fn(&str) -> String| {
            let parts: Vec<String> = filter
                .values
                .iter()
                .map(|v| format!("{column} {like} {} ESCAPE '\\'", sql.bind(Bind::Text(pattern(v)))))
                .collect();
            format!("({})", parts.join(" OR "))
        };
        let contains = |v: &str| format!("%{}%", escape_like(v));
        let wildcard = |v: &str| escape_like(v).replace("\\*", "%");
        match filter.op {
            Op::Is | Op::IsNot => {
                let values: Vec<String> = filter.values.iter().map(|v| self.bind(Bind::Text(v.clone()))).collect();
                let not = if filter.op == Op::IsNot { "NOT " } else { "" };
                format!("{column} {not}IN ({})", values.join(", "))
            }
            Op::Contains => any(self, &contains),
            Op::ContainsNot => format!("NOT {}", any(self, &contains)),
            Op::Matches => any(self, &wildcard),
            Op::MatchesNot => format!("NOT {}", any(self, &wildcard)),
        }
    }
}

fn escape_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\' | '*') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Time buckets of a period in the site's zone: each bucket's first instant and its label.
pub struct Buckets {
    starts: Vec<i64>,
    /// The end of the last bucket: the period's.
    end: i64,
    pub labels: Vec<String>,
}

/// Enough for hours over a month or days over two years, small enough for one SQL `CASE`.
const MAX_BUCKETS: usize = 800;

impl Buckets {
    pub fn new(tz: Tz, interval: Interval, from: i64, to: i64) -> Result<Buckets> {
        let local = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&tz);
        let mut starts = vec![];
        let mut labels = vec![];
        let too_many = || Error::invalid("interval", "too fine for this period; use a coarser one");
        if interval == Interval::Hour {
            let first = local(from);
            let mut t = from - (first.minute() as i64 * 60_000 + first.second() as i64 * 1000);
            while t < to {
                starts.push(t.max(from));
                labels.push(local(t.max(from)).format("%Y-%m-%d %H:00:00").to_string());
                t += 3_600_000;
                if starts.len() > MAX_BUCKETS {
                    return Err(too_many());
                }
            }
        } else {
            let last = local(to - 1).date_naive();
            let mut day = local(from).date_naive();
            let step = |d: NaiveDate| match interval {
                Interval::Day => d.checked_add_days(Days::new(1)),
                Interval::Week => d.checked_add_days(Days::new(7 - d.weekday().num_days_from_monday() as u64)),
                _ => d.with_day(1).and_then(|d| d.checked_add_months(Months::new(1))),
            };
            while day <= last {
                let start = if starts.is_empty() { from } else { midnight(tz, day)? };
                starts.push(start);
                let label_day = match interval {
                    Interval::Month => day.with_day(1).unwrap_or(day),
                    _ => day,
                };
                labels.push(label_day.format("%Y-%m-%d").to_string());
                day = step(day).ok_or_else(|| Error::invalid("date", "out of range"))?;
                if starts.len() > MAX_BUCKETS {
                    return Err(too_many());
                }
            }
        }
        Ok(Buckets { starts, end: to, labels })
    }

    /// The bucket holding instant `ts` of the period.
    pub fn index_of(&self, ts: i64) -> usize {
        self.starts.partition_point(|start| *start <= ts).saturating_sub(1)
    }

    /// A `WITH` clause naming the buckets `b (i, s, e)`: index, first instant, end. The bounds
    /// are integers we computed, so they are written inline rather than bound.
    fn values(&self) -> String {
        let ends = self.starts.iter().skip(1).chain(std::iter::once(&self.end));
        let rows: Vec<String> =
            self.starts.iter().zip(ends).enumerate().map(|(i, (s, e))| format!("({i}, {s}, {e})")).collect();
        format!("WITH b (i, s, e) AS (VALUES {}) ", rows.join(", "))
    }

    /// SQL mapping `column` to its bucket index. The bounds are integers we computed, so they
    /// are written inline rather than bound.
    fn case(&self, column: &str) -> String {
        if self.starts.len() < 2 {
            return "CAST(0 AS BIGINT)".to_owned();
        }
        let mut case = String::from("CAST(CASE");
        for (i, start) in self.starts.iter().enumerate().skip(1) {
            case.push_str(&format!(" WHEN {column} < {start} THEN {}", i - 1));
        }
        case.push_str(&format!(" ELSE {} END AS BIGINT)", self.starts.len().saturating_sub(1)));
        case
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A period as our own endpoints name it.
    fn period_range(tz: Tz, name: &str, date: &str, now: DateTime<Utc>) -> Result<(i64, i64)> {
        let period =
            crate::period::Period { meaning: crate::period::Meaning::Ours, name, date, now, first_event: None };
        crate::period::resolve(tz, &period)
    }

    #[test]
    fn periods_are_whole_local_days() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 23, 30, 0).unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // 23:30 UTC is already the 27th in Paris.
        let (from, to) = period_range(paris, "day", "", now).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 26, 23, 0, 0).unwrap().timestamp_millis());
        assert_eq!(to - from, 86_400_000);
        let (from, to) = period_range(Tz::UTC, "7d", "2026-11-26", now).unwrap();
        assert_eq!((to - from) / 86_400_000, 7);
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap().timestamp_millis());
        let (from, _) = period_range(Tz::UTC, "month", "2026-11-26", now).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap().timestamp_millis());
        let (from, to) = period_range(Tz::UTC, "custom", "2026-01-01,2026-01-31", now).unwrap();
        assert_eq!((to - from) / 86_400_000, 31);
        let (from, to) = period_range(Tz::UTC, "90d", "2026-11-26", now).unwrap();
        assert_eq!((to - from) / 86_400_000, 90);
        for (period, date) in
            [("week", ""), ("custom", "2026-02-01"), ("custom", "2026-02-02,2026-02-01"), ("day", "26/11")]
        {
            assert!(period_range(Tz::UTC, period, date, now).is_err(), "{period} {date}");
        }
    }

    #[test]
    fn buckets_follow_the_local_calendar() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        // March 2026 in Paris: 31 days, one of them 23 hours long.
        let (from, to) = period_range(paris, "custom", "2026-03-01,2026-03-31", now).unwrap();
        let days = Buckets::new(paris, Interval::Day, from, to).unwrap();
        assert_eq!(days.labels.len(), 31);
        assert_eq!(days.labels[29], "2026-03-30");
        assert_eq!(days.starts[29] - days.starts[28], 23 * 3_600_000, "the DST day is 23 hours");
        let weeks = Buckets::new(paris, Interval::Week, from, to).unwrap();
        // Sunday the 1st, then Mondays 2, 9, 16, 23, 30.
        assert_eq!(weeks.labels, ["2026-03-01", "2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23", "2026-03-30"]);
        let (from, to) = period_range(paris, "12mo", "2026-11-26", now).unwrap();
        let months = Buckets::new(paris, Interval::Month, from, to).unwrap();
        assert_eq!(months.labels.first().unwrap(), "2025-12-01");
        assert_eq!(months.labels.len(), 12);
        let (from, to) = period_range(paris, "day", "2026-03-29", now).unwrap();
        let hours = Buckets::new(paris, Interval::Hour, from, to).unwrap();
        assert_eq!(hours.labels.len(), 23);
        assert!(Buckets::new(paris, Interval::Hour, from - 86_400_000 * 60, to).is_err());
    }

    #[test]
    fn filters_escape_their_values() {
        let filter = Filter::new("contains", "event:page", vec!["50%_off".into()]).unwrap();
        let mut sql = Sql::default();
        assert_eq!(sql.condition("e.pathname", &filter, "LIKE"), "(e.pathname LIKE $1 ESCAPE '\\')");
        assert!(matches!(&sql.binds[0], Bind::Text(p) if p == "%50\\%\\_off%"));
        let filter = Filter::new("matches", "event:page", vec!["/blog/*".into()]).unwrap();
        let mut sql = Sql::default();
        sql.condition("e.pathname", &filter, "ILIKE");
        assert!(matches!(&sql.binds[0], Bind::Text(p) if p == "/blog/%"));
        assert!(Filter::new("is", "time:day", vec!["x".into()]).is_err());
        assert!(Filter::new("like", "event:page", vec!["x".into()]).is_err());
    }
}

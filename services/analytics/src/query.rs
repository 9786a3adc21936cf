//! The one query engine behind every statistics endpoint: overview, breakdowns, Plausible's v1
//! and v2 shapes, realtime and MCP all become a [`Query`].
//!
//! Metric definitions (also in the README):
//! - `visitors`: distinct daily visitor hashes among the period's events;
//! - `pageviews`: `pageview` events; `events`: all events;
//! - `visits`: visits that started in the period. A visit is one visitor's run of events with no
//!   gap over 30 minutes;
//! - `views_per_visit`: pageviews of those visits ÷ visits (two decimals);
//! - `bounce_rate`: percentage of those visits holding exactly one event other than `engagement`
//!   and those sent with `interactive: false` after the first
//!   (rounded);
//! - `visit_duration`: mean seconds from a visit's first to its last event (rounded).
//!
//! Grouped by a page or event name, visit metrics are over the visits that include that page or
//! event. Visit attributes (entry page, source, UTM, country, device, browser, os) are the
//! visit's first event's, and every event of the visit carries them.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Timelike, Utc};

use crate::period::midnight;
use chrono_tz::Tz;
use common::regexp::Finds;
use common::{Error, Result};

use crate::model::{Goal, GoalTarget};
use proto::analytics::v1 as pb;

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
    ConversionRate,
    GroupConversionRate,
    Percentage,
    TotalRevenue,
    AverageRevenue,
}

/// Which part of a query computes a metric: event rows, visit rows, or engagement event rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Events,
    Visits,
    Engagement,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::TimeOnPage,
        Metric::ScrollDepth,
        Metric::ConversionRate,
        Metric::GroupConversionRate,
        Metric::Percentage,
        Metric::TotalRevenue,
        Metric::AverageRevenue,
    ];

    /// The contract's value, which names it.
    fn contract(self) -> pb::Metric {
        match self {
            Metric::Visitors => pb::Metric::Visitors,
            Metric::Visits => pb::Metric::Visits,
            Metric::Pageviews => pb::Metric::Pageviews,
            Metric::ViewsPerVisit => pb::Metric::ViewsPerVisit,
            Metric::BounceRate => pb::Metric::BounceRate,
            Metric::VisitDuration => pb::Metric::VisitDuration,
            Metric::Events => pb::Metric::Events,
            Metric::TimeOnPage => pb::Metric::TimeOnPage,
            Metric::ScrollDepth => pb::Metric::ScrollDepth,
            Metric::ConversionRate => pb::Metric::ConversionRate,
            Metric::GroupConversionRate => pb::Metric::GroupConversionRate,
            Metric::Percentage => pb::Metric::Percentage,
            Metric::TotalRevenue => pb::Metric::TotalRevenue,
            Metric::AverageRevenue => pb::Metric::AverageRevenue,
        }
    }

    pub fn name(self) -> &'static str {
        self.contract().name()
    }

    pub fn parse(name: &str) -> Result<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let known: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
            Error::invalid("metrics", format!("unknown metric {name:?}; use {}", known.join(", ")))
        })
    }

    /// Shares are of visitors and revenue is the events', so they come from the events part.
    fn part(self) -> Part {
        match self {
            Metric::Visitors
            | Metric::Pageviews
            | Metric::Events
            | Metric::ConversionRate
            | Metric::GroupConversionRate
            | Metric::Percentage
            | Metric::TotalRevenue
            | Metric::AverageRevenue => Part::Events,
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

impl Interval {
    /// The contract's value, which names it.
    fn contract(self) -> pb::Interval {
        match self {
            Interval::Hour => pb::Interval::Hour,
            Interval::Day => pb::Interval::Day,
            Interval::Week => pb::Interval::Week,
            Interval::Month => pb::Interval::Month,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    Referrer,
    Channel,
    UtmContent,
    UtmTerm,
    Hostname,
    BrowserVersion,
    OsVersion,
    /// A custom property of the event (`event:props:<name>`); `(none)` where the event has none.
    Prop(String),
    /// The goals of the site an event completes (`event:goal`), by display name.
    Goal,
    Time(Interval),
}

/// The dimensions kept in daily rollups (with the day's totals).
pub const ROLLUP_DIMS: [Dim; 19] = [
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
    Dim::Referrer,
    Dim::Channel,
    Dim::UtmContent,
    Dim::UtmTerm,
    Dim::Hostname,
    Dim::BrowserVersion,
    Dim::OsVersion,
];

pub use proto::vocabulary::PROPS;

/// The value of a custom property an event does not have, as Plausible shows it.
pub const NO_PROP: &str = "(none)";

impl Dim {
    /// Every dimension of a fixed name: the rolled-up ones, goals and time.
    fn all() -> impl Iterator<Item = Dim> {
        let times = [Interval::Hour, Interval::Day, Interval::Week, Interval::Month].map(Dim::Time);
        ROLLUP_DIMS.into_iter().chain([Dim::Goal]).chain(times)
    }

    /// The contract's value, which names it; None for a custom property or time.
    fn property(&self) -> Option<pb::Property> {
        Some(match self {
            Dim::Page => pb::Property::EventPage,
            Dim::Name => pb::Property::EventName,
            Dim::EntryPage => pb::Property::VisitEntryPage,
            Dim::ExitPage => pb::Property::VisitExitPage,
            Dim::Source => pb::Property::VisitSource,
            Dim::UtmSource => pb::Property::VisitUtmSource,
            Dim::UtmMedium => pb::Property::VisitUtmMedium,
            Dim::UtmCampaign => pb::Property::VisitUtmCampaign,
            Dim::Country => pb::Property::VisitCountry,
            Dim::Device => pb::Property::VisitDevice,
            Dim::Browser => pb::Property::VisitBrowser,
            Dim::Os => pb::Property::VisitOs,
            Dim::Referrer => pb::Property::VisitReferrer,
            Dim::Channel => pb::Property::VisitChannel,
            Dim::UtmContent => pb::Property::VisitUtmContent,
            Dim::UtmTerm => pb::Property::VisitUtmTerm,
            Dim::Hostname => pb::Property::EventHostname,
            Dim::BrowserVersion => pb::Property::VisitBrowserVersion,
            Dim::OsVersion => pb::Property::VisitOsVersion,
            Dim::Goal => pb::Property::EventGoal,
            Dim::Prop(_) | Dim::Time(_) => return None,
        })
    }

    pub fn name(&self) -> String {
        match self {
            Dim::Prop(name) => format!("{PROPS}{name}"),
            Dim::Time(interval) => interval.contract().dimension().to_owned(),
            fixed => fixed.property().map(pb::Property::name).unwrap_or_default().to_owned(),
        }
    }

    pub fn parse(name: &str, what: &str) -> Result<Dim> {
        if let Some(prop) = name.strip_prefix(PROPS) {
            // Property names go into a JSON path on SQLite, where a quote would end the name.
            if prop.is_empty() || prop.chars().count() > 300 || prop.contains('"') {
                return Err(Error::invalid(
                    what,
                    format!("{name:?}: a property name is 1 to 300 characters, without \""),
                ));
            }
            common::text::check_line(what, prop)?;
            return Ok(Dim::Prop(prop.to_owned()));
        }
        Dim::all().find(|d| d.name() == name).ok_or_else(|| {
            let known: Vec<_> = Dim::all().map(|d| d.name()).collect();
            Error::invalid(what, format!("unknown dimension {name:?}; use {}, or {PROPS}<name>", known.join(", ")))
        })
    }

    /// Its column on `events`; the exit page is known only to the visit, and properties and
    /// goals are expressions over several columns.
    fn event_column(&self) -> Option<&'static str> {
        Some(match self {
            Dim::Page => "pathname",
            Dim::Name => "name",
            Dim::Hostname => "hostname",
            Dim::ExitPage | Dim::Time(_) | Dim::Prop(_) | Dim::Goal => return None,
            other => other.visit_column()?,
        })
    }

    /// Its column on `visits`; pages, event names, properties and goals belong to events.
    fn visit_column(&self) -> Option<&'static str> {
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
            Dim::Referrer => "referrer",
            Dim::Channel => "channel",
            Dim::UtmContent => "utm_content",
            Dim::UtmTerm => "utm_term",
            Dim::BrowserVersion => "browser_version",
            Dim::OsVersion => "os_version",
            Dim::Page | Dim::Name | Dim::Hostname | Dim::Prop(_) | Dim::Goal | Dim::Time(_) => return None,
        })
    }

    /// How Plausible shows the empty value of this visit attribute, where it does not show it
    /// empty. (Source and referrer are kept as `Direct / None` when empty.)
    fn blank_label(&self) -> Option<&'static str> {
        match self {
            Dim::UtmSource
            | Dim::UtmMedium
            | Dim::UtmCampaign
            | Dim::UtmContent
            | Dim::UtmTerm
            | Dim::Device
            | Dim::Browser
            | Dim::BrowserVersion
            | Dim::Os
            | Dim::OsVersion => Some(NOT_SET),
            _ => None,
        }
    }

    /// Whether Plausible's v1 breakdowns leave out its empty value.
    fn blank_dropped_in_v1(&self) -> bool {
        matches!(
            self,
            Dim::UtmSource
                | Dim::UtmMedium
                | Dim::UtmCampaign
                | Dim::UtmContent
                | Dim::UtmTerm
                | Dim::EntryPage
                | Dim::ExitPage
                | Dim::Country
        )
    }

    /// Whether it belongs to events rather than to visits.
    fn of_events(&self) -> bool {
        self.visit_column().is_none() && !matches!(self, Dim::Time(_))
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
    /// A regular expression (see `common::regexp`), Plausible's `matches`.
    Regex,
    RegexNot,
}

impl Op {
    /// Whether the filter picks what does not match its values.
    pub fn negated(self) -> bool {
        matches!(self, Op::IsNot | Op::ContainsNot | Op::MatchesNot | Op::RegexNot)
    }

    pub fn parse(name: &str) -> Result<Op> {
        Ok(match name {
            "is" => Op::Is,
            "is_not" => Op::IsNot,
            "contains" => Op::Contains,
            "contains_not" => Op::ContainsNot,
            "matches" | "matches_wildcard" => Op::Matches,
            "matches_not" | "matches_wildcard_not" => Op::MatchesNot,
            "regex" => Op::Regex,
            "regex_not" => Op::RegexNot,
            other => {
                return Err(Error::invalid(
                    "filters",
                    format!(
                        "unknown operator {other:?}; use is, is_not, contains, contains_not, matches, matches_not, \
                         regex, regex_not"
                    ),
                ));
            }
        })
    }
}

/// How a filter compares text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matching {
    /// Ours: `is` exactly; `contains` and wildcards ignoring case.
    #[default]
    Ours,
    /// Plausible's default: every operator respects case.
    Exact,
    /// Plausible's `case_sensitive: false` modifier: `is` and `contains` ignore case, wildcards
    /// still respect it.
    IgnoreCase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dim: Dim,
    pub op: Op,
    pub values: Vec<String>,
    pub matching: Matching,
}

pub use proto::vocabulary::NOT_SET;

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
        let op = Op::parse(op)?;
        if matches!(op, Op::Regex | Op::RegexNot) {
            for value in &values {
                common::regexp::compile(value).map_err(|e| {
                    Error::invalid("filters", format!("{value:?} is not a regular expression we take: {e}"))
                })?;
            }
        }
        Ok(Filter { dim, op, values, matching: Matching::Ours })
    }

    /// The filter with an `is` or `is_not` value that is the label of an empty attribute (see
    /// [`Dim::blank_label`]) naming the empty ones, as Plausible reads it: every face takes
    /// Plausible's filter syntax, so each reads it alike.
    pub fn blanks_named(mut self) -> Filter {
        if matches!(self.op, Op::Is | Op::IsNot) {
            for value in &mut self.values {
                let blank = match (&self.dim, value.as_str()) {
                    (Dim::Prop(_) | Dim::Goal, _) => continue,
                    (Dim::Source | Dim::Referrer, NOT_SET) => crate::events::DIRECT,
                    (
                        Dim::UtmSource | Dim::UtmMedium | Dim::UtmCampaign | Dim::UtmContent | Dim::UtmTerm,
                        crate::events::DIRECT,
                    )
                    | (_, NOT_SET) => "",
                    _ => continue,
                };
                *value = blank.to_owned();
            }
        }
        self
    }

    /// Whether `is` picks values by equality, as rollups keep them.
    fn exact_is(&self) -> bool {
        self.op == Op::Is && self.matching != Matching::IgnoreCase
    }

    /// Whether the filter compares text ignoring case (see [`Matching`]).
    fn ignores_case(&self) -> bool {
        match (self.matching, self.op) {
            (Matching::Ours, Op::Is | Op::IsNot) | (Matching::Exact, _) => false,
            (Matching::IgnoreCase, Op::Matches | Op::MatchesNot) | (_, Op::Regex | Op::RegexNot) => false,
            (Matching::Ours | Matching::IgnoreCase, _) => true,
        }
    }

    /// Whether a value satisfies the filter's positive form, as the SQL of [`Sql::condition`]
    /// decides.
    fn picks(&self, value: &str) -> bool {
        fn folded(text: &str, ignores: bool) -> std::borrow::Cow<'_, str> {
            if ignores { text.to_lowercase().into() } else { text.into() }
        }
        let ignores = self.ignores_case();
        let fold = |text| folded(text, ignores);
        let value = fold(value);
        self.values.iter().any(|v| match self.op {
            Op::Is | Op::IsNot => fold(v) == value,
            Op::Contains | Op::ContainsNot => value.contains(&*fold(v)),
            Op::Matches | Op::MatchesNot => wildcard_match(&fold(v), &value),
            // Checked by `Filter::new`.
            Op::Regex | Op::RegexNot => common::regexp::compile(v).is_ok_and(|r| r.is_match(&value)),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    Metric(usize),
    Dim(usize),
}

/// What a set of rollup rows is kept of: the day's totals, one dimension's values, or the
/// value pairs of two dimensions (see [`Pair`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rolled {
    Totals,
    One(Dim),
    Pair(Pair),
    /// The events that complete a goal (by its name), and their visitors, visits and
    /// engagement: one row per day or piece, of no values.
    Goal(String),
    /// A goal's rows (by its name) by the values of one dimension: kept for each goal of a site
    /// whose queries asked for the pair of `event:goal` and that dimension.
    GoalBy(String, Dim),
}

impl Rolled {
    /// The rows' `dim` column: '' for the totals, a dimension's name, or a pair's.
    pub fn name(&self) -> String {
        match self {
            Rolled::Totals => String::new(),
            Rolled::One(dim) => dim.name(),
            Rolled::Pair(pair) => pair.name(),
            Rolled::Goal(name) => serde_json::to_string(&[Dim::Goal.name(), name.clone()]).expect("strings serialise"),
            Rolled::GoalBy(name, dim) => {
                serde_json::to_string(&[Dim::Goal.name(), name.clone(), dim.name()]).expect("strings serialise")
            }
        }
    }

    /// The `dim` of the rows (of an empty value) that say which days and pieces hold these
    /// rows: rows there for every day or piece, events or not (the totals', a goal's), or the
    /// marker of a pair or of a goal by a dimension. A dimension's rows are in every day and
    /// piece the totals are.
    pub fn marker(&self) -> String {
        match self {
            Rolled::One(_) => String::new(),
            other => other.name(),
        }
    }

    /// The pair of dimensions a site's queries ask for to have these rows kept, if any.
    pub fn pair(&self) -> Option<Pair> {
        match self {
            Rolled::Pair(pair) => Some(pair.clone()),
            Rolled::GoalBy(_, dim) => Pair::new(&Dim::Goal, dim),
            _ => None,
        }
    }

    /// The dimensions a query over these rows groups by (a goal's are of the events that
    /// complete it).
    pub fn dims(&self) -> Vec<Dim> {
        match self {
            Rolled::Totals | Rolled::Goal(_) => vec![],
            Rolled::One(dim) | Rolled::GoalBy(_, dim) => vec![dim.clone()],
            Rolled::Pair(Pair(a, b)) => vec![a.clone(), b.clone()],
        }
    }

    /// A row's `value` column from the values of its group, in [`Rolled::dims`] order: a JSON
    /// array for a pair or a goal by a dimension, never the marker's empty value.
    pub fn value(&self, values: &[String]) -> String {
        match self {
            Rolled::Pair(_) | Rolled::GoalBy(..) => serde_json::to_string(values).expect("strings serialise"),
            _ => values.first().cloned().unwrap_or_default(),
        }
    }

    /// The `value` of the rows that hold the values `pick`s (each at its place among
    /// [`Rolled::values`]), or None when any row may. A pair's value is the JSON array that
    /// [`Rolled::value`] writes, so one of its two values is a prefix or a suffix of it: the
    /// first element's text and its comma, or the comma and the last's. No row that holds the
    /// values is left out; the caller still checks each row read.
    pub fn picked(&self, pick: &[(usize, String)]) -> Option<ValueIs> {
        let json = |value: &str| serde_json::to_string(value).expect("strings serialise");
        Some(match (self, pick) {
            (Rolled::One(_), [(0, value)]) => ValueIs::Exactly(value.clone()),
            (Rolled::Pair(_), [(0, a), (1, b)] | [(1, b), (0, a)]) => {
                ValueIs::Exactly(self.value(&[a.clone(), b.clone()]))
            }
            (Rolled::Pair(_), [(0, a)]) => ValueIs::StartsWith(format!("[{},", json(a))),
            (Rolled::Pair(_), [(1, b)]) => ValueIs::EndsWith(format!(",{}]", json(b))),
            (Rolled::GoalBy(..), [(1, value)]) => ValueIs::Exactly(self.value(std::slice::from_ref(value))),
            _ => return None,
        })
    }

    /// The values of a row's group, in [`Rolled::dims`] order after a goal's name; None for a
    /// marker row.
    pub fn values(&self, value: &str) -> Option<Vec<String>> {
        match self {
            Rolled::Pair(_) => serde_json::from_str(value).ok(),
            Rolled::Goal(name) => Some(vec![name.clone()]),
            Rolled::GoalBy(name, _) => {
                let [value]: [String; 1] = serde_json::from_str(value).ok()?;
                Some(vec![name.clone(), value])
            }
            _ => Some(vec![value.to_owned()]),
        }
    }
}

/// Which `value`s of one kind's rows a read of rollups keeps (beside its marker's empty one),
/// checked by the database before rows are read (see [`Rolled::picked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueIs {
    Exactly(String),
    StartsWith(String),
    EndsWith(String),
}

/// Two dimensions rolled up together, in the order of their names, so that a site asks for
/// (a, b) and (b, a) once. Kept for a site only once its queries need them (see `rollup.rs`):
/// every pair of every day would multiply what a rollup costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair(Dim, Dim);

impl Pair {
    /// A pair of two different dimensions that rollups can keep: the rolled-up ones, custom
    /// properties and goals (kept as each goal's rows by the other, see [`Rolled::GoalBy`]).
    fn new(a: &Dim, b: &Dim) -> Option<Pair> {
        let kept = |d: &Dim| ROLLUP_DIMS.contains(d) || matches!(d, Dim::Prop(_) | Dim::Goal);
        if a == b || !kept(a) || !kept(b) {
            return None;
        }
        Some(if a.name() <= b.name() { Pair(a.clone(), b.clone()) } else { Pair(b.clone(), a.clone()) })
    }

    /// The rows' `dim` column: both names as a JSON array, which no single name is.
    pub fn name(&self) -> String {
        serde_json::to_string(&[self.0.name(), self.1.name()]).expect("strings serialise")
    }

    pub fn parse(name: &str) -> Result<Pair> {
        let names: [String; 2] = serde_json::from_str(name).map_err(Error::internal)?;
        let (a, b) = (Dim::parse(&names[0], "dimensions")?, Dim::parse(&names[1], "dimensions")?);
        Pair::new(&a, &b).ok_or_else(|| Error::internal(format!("{name} is not a pair rollups keep")))
    }

    fn position(&self, dim: &Dim) -> usize {
        usize::from(self.1 == *dim)
    }

    /// The dimension a goal is paired with: its name sorts after `event:goal`'s.
    pub fn goal_by(&self) -> Option<&Dim> {
        (self.0 == Dim::Goal).then_some(&self.1)
    }
}

/// The rollup rows that answer a query: which rows, the values its filters (each by one value)
/// pick (each at its place among a row's values), and where each of the query's dimensions but
/// time finds its value among a row's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRows {
    /// Of one kind, or a goal's each (alone or by a dimension) for a query grouped by goal.
    pub rolled: Vec<Rolled>,
    pub pick: Vec<(usize, String)>,
    pub places: Vec<usize>,
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
    /// The site's goals, when a dimension or filter names `event:goal`.
    pub goals: Vec<Goal>,
    /// Grouped by page, `bounce_rate`, `visit_duration` and `views_per_visit` are those of the
    /// visits that entered on the page, as Plausible computes them (`visits` stays the visits
    /// that include it). Set for Plausible-shaped queries.
    pub sessions_by_entry_page: bool,
    /// `conversion_rate` is of each row's own group (its dimension values) rather than of the
    /// whole period, as Plausible's v1 breakdowns (but by goal or property) and time series
    /// compute it. Set for v1 queries.
    pub conversion_by_group: bool,
    /// Rows show an empty attribute by Plausible's label for it (see [`Dim::blank_label`]). Set
    /// for Plausible-shaped queries.
    pub blank_labels: bool,
    /// Rows of an empty UTM value, entry or exit page or country are left out, as Plausible's
    /// v1 breakdowns leave them. Set for v1 queries.
    pub drops_blank: bool,
}

/// Visitors that shares are of: for `conversion_rate` and `group_conversion_rate`, with every
/// filter but those on goals and properties, of the whole period or of each row's group (by its
/// dimension values); for `percentage`, of the whole period with every filter.
#[derive(Debug, Default, Clone)]
pub struct Shares {
    pub conversion_base: i64,
    pub conversion_groups: HashMap<Vec<String>, i64>,
    pub percentage_base: i64,
}

/// The visitors each share of a row is of.
#[derive(Debug, Clone, Copy)]
struct Bases {
    conversion: i64,
    group_conversion: i64,
    percentage: i64,
}

/// The queries of the visitors that shares are of (see [`Shares`]), those the metrics need.
pub struct ShareQueries {
    pub conversion: Option<Query>,
    /// Grouped as the query is.
    pub conversion_by_group: Option<Query>,
    pub percentage: Option<Query>,
}

/// The most cents of revenue a group's sum holds: below `i64::MAX`, written as SQL reads a
/// floating point number.
const CENTS_MAX: &str = "9.0e18";

/// The backend's SQL dialect, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The text of custom property `name` of the event in `props` (a JSON object whose values
    /// are strings), or `(none)`.
    fn prop(self, sql: &mut Sql, props: &str, name: &str) -> String {
        match self {
            Dialect::Sqlite => {
                let path = sql.bind(Bind::Text(format!("$.\"{name}\"")));
                format!("COALESCE(CAST(json_extract({props}, {path}) AS TEXT), '{NO_PROP}')")
            }
            Dialect::Postgres => {
                let key = sql.bind(Bind::Text(name.to_owned()));
                format!("COALESCE(CAST({props} AS jsonb) ->> {key}, '{NO_PROP}')")
            }
        }
    }
}

pub struct Answer {
    /// The query's dimensions by name, `time` resolved to its interval's.
    pub dimensions: Vec<String>,
    pub rows: Vec<(Vec<String>, Vec<f64>)>,
    /// Per row, the currency of its revenue metrics; empty where none applies (their values
    /// are then NaN).
    pub currencies: Vec<String>,
    pub total_rows: usize,
    pub time_labels: Vec<String>,
    /// Days read from rollups rather than raw events, by the query's parts and by those of its
    /// entering visits alike (the visitors that shares are of are not counted).
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
        if let Some(twice) = (1..dims.len()).find(|&i| dims[..i].contains(&dims[i])) {
            return Err(Error::invalid("dimensions", format!("{:?} is given twice", dims[twice].name())));
        }
        if dims.len() > 4 {
            return Err(Error::invalid("dimensions", "at most 4 distinct dimensions"));
        }
        let order = order
            .iter()
            .map(|(key, descending)| {
                let key = if let Some(i) = metrics.iter().position(|m| m.name() == key) {
                    OrderKey::Metric(i)
                } else if let Some(i) = dims.iter().position(|d| d.name() == *key) {
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
        Ok(Query {
            website_id,
            tz,
            from,
            to,
            metrics,
            dims,
            filters,
            order,
            limit,
            offset,
            fill_time,
            goals: vec![],
            sessions_by_entry_page: false,
            conversion_by_group: false,
            blank_labels: false,
            drops_blank: false,
        })
    }

    /// Whether a dimension or filter names `event:goal`.
    pub fn uses_goals(&self) -> bool {
        self.dims.contains(&Dim::Goal) || self.filters.iter().any(|f| f.dim == Dim::Goal)
    }

    /// Gives the query the site's goals, and checks what needs them: a goal named by an `is`
    /// filter exists, and `conversion_rate` comes with a goal dimension or filter. Also checks
    /// that `percentage` comes with a dimension.
    pub fn with_goals(self, goals: Vec<Goal>) -> Result<Query> {
        // A goal named ignoring case (Plausible's `case_sensitive: false`) may match several or
        // none, as Plausible takes it: only an exact name must exist.
        let exact = |f: &&Filter| f.dim == Dim::Goal && f.op == Op::Is && f.matching != Matching::IgnoreCase;
        for filter in self.filters.iter().filter(exact) {
            if let Some(unknown) = filter.values.iter().find(|v| !goals.iter().any(|g| &g.display_name == *v)) {
                return Err(Error::invalid("filters", format!("the goal {unknown:?} is not configured for this site")));
            }
        }
        for metric in
            [Metric::ConversionRate, Metric::GroupConversionRate, Metric::TotalRevenue, Metric::AverageRevenue]
        {
            if self.metrics.contains(&metric) && !self.uses_goals() {
                return Err(Error::invalid(
                    "metrics",
                    format!("{} needs an event:goal dimension or filter", metric.name()),
                ));
            }
        }
        if self.metrics.contains(&Metric::Percentage) && self.dims.is_empty() {
            return Err(Error::invalid("metrics", "percentage needs a dimension"));
        }
        Ok(Query { goals, ..self })
    }

    /// Whether a metric is revenue: the events part then also sums revenue.
    pub fn needs_revenue(&self) -> bool {
        self.metrics.iter().any(|m| matches!(m, Metric::TotalRevenue | Metric::AverageRevenue))
    }

    /// Counters of a row of the events part: visitors, pageviews, events, and with revenue the
    /// revenue in cents and the events that carried it.
    pub fn event_counters(&self) -> usize {
        if self.needs_revenue() { 5 } else { 3 }
    }

    /// The revenue goals whose events' revenue counts, as Plausible picks them: every goal with a
    /// currency when grouped by goal, else those with a currency that the goal filters pick.
    fn revenue_goals(&self) -> Vec<&Goal> {
        let picked = |g: &Goal| {
            self.dims.contains(&Dim::Goal)
                || self.filters.iter().any(|f| {
                    f.dim == Dim::Goal
                        && matches!(f.op, Op::Is | Op::Contains | Op::Matches | Op::Regex)
                        && f.picks(&g.display_name)
                })
        };
        self.goals.iter().filter(|g| g.currency.is_some() && picked(g)).collect()
    }

    /// The currency of a row's revenue: its goal's, grouped by goal; else the one currency of
    /// the revenue goals picked, if they have one.
    pub fn revenue_currency(&self, key: &[String]) -> Option<String> {
        if let Some(i) = self.dims.iter().position(|d| *d == Dim::Goal) {
            let goal = self.goals.iter().find(|g| Some(&g.display_name) == key.get(i));
            return goal.and_then(|g| g.currency.clone());
        }
        let goals = self.revenue_goals();
        let first = goals.first().and_then(|g| g.currency.clone());
        goals.iter().all(|g| g.currency == first).then_some(first).flatten()
    }

    /// Each row's revenue currency (by its dimension values, before time buckets become labels);
    /// revenue metrics of a row without one become NaN, as Plausible has no figure for them.
    fn row_currencies(&self, rows: &mut [(Vec<String>, Vec<f64>)]) -> Vec<String> {
        if !self.needs_revenue() {
            return vec![String::new(); rows.len()];
        }
        rows.iter_mut()
            .map(|(key, values)| {
                let currency = self.revenue_currency(key);
                if currency.is_none() {
                    for (metric, value) in self.metrics.iter().zip(values.iter_mut()) {
                        if matches!(metric, Metric::TotalRevenue | Metric::AverageRevenue) {
                            *value = f64::NAN;
                        }
                    }
                }
                currency.unwrap_or_default()
            })
            .collect()
    }

    /// SQL true for an event (columns prefixed by `t`) whose revenue counts: it completes a
    /// revenue goal of the part (`goal`, grouped by goal) or of the filters, in its currency.
    fn revenue_condition(&self, sql: &mut Sql, goal: Option<&Goal>, t: &str, dialect: Dialect) -> String {
        let goals: Vec<&Goal> = match goal {
            Some(goal) => vec![goal],
            None => self.revenue_goals(),
        };
        let conditions: Vec<String> = goals
            .into_iter()
            .filter_map(|g| {
                let currency = sql.bind(Bind::Text(g.currency.clone()?));
                Some(format!("({} AND {t}revenue_currency = {currency})", goal_condition(sql, g, t, dialect)))
            })
            .collect();
        any_of(&conditions)
    }

    /// Whether `group_conversion_rate` is of each row's group: grouped by something other than
    /// goals. A row's group is its values but its goal, as in Plausible: grouped by goal alone,
    /// rows are of the whole period's visitors.
    fn groups_conversion(&self) -> bool {
        self.dims.iter().any(|d| *d != Dim::Goal)
    }

    /// The dimensions of a row's group (see [`Query::groups_conversion`]).
    fn group_dims(&self) -> Vec<Dim> {
        self.dims.iter().filter(|d| **d != Dim::Goal).cloned().collect()
    }

    /// A row's group: its values but its goal.
    fn group_of(&self, key: &[String]) -> Vec<String> {
        self.dims.iter().zip(key).filter(|(d, _)| **d != Dim::Goal).map(|(_, v)| v.clone()).collect()
    }

    /// Whether `conversion_rate` is of each row's group (see [`Query::conversion_by_group`]):
    /// grouped, but not by goal or property, as Plausible's v1.
    pub fn converts_by_group(&self) -> bool {
        self.conversion_by_group
            && !self.dims.is_empty()
            && !self.dims.iter().any(|d| matches!(d, Dim::Goal | Dim::Prop(_)))
    }

    /// The queries of the visitors that the metrics' shares are of.
    pub fn share_queries(&self) -> ShareQueries {
        let base = |keep: &dyn Fn(&Filter) -> bool, dims: Vec<Dim>| Query {
            metrics: vec![Metric::Visitors],
            dims,
            filters: self.filters.iter().filter(|f| keep(f)).cloned().collect(),
            order: vec![],
            limit: 0,
            offset: 0,
            fill_time: false,
            ..self.clone()
        };
        let converting = |f: &Filter| !matches!(f.dim, Dim::Goal | Dim::Prop(_));
        let asks = |metric| self.metrics.contains(&metric);
        let (conversion, group) = (asks(Metric::ConversionRate), asks(Metric::GroupConversionRate));
        let by_group = (conversion && self.converts_by_group()) || (group && self.groups_conversion());
        let whole = (conversion && !self.converts_by_group()) || (group && !self.groups_conversion());
        ShareQueries {
            conversion: whole.then(|| base(&converting, vec![])),
            conversion_by_group: by_group.then(|| base(&converting, self.group_dims())),
            percentage: asks(Metric::Percentage).then(|| base(&|_| true, vec![])),
        }
    }

    /// The query of the entering visits' figures. With `sessions_by_entry_page`, grouped by
    /// page: grouped and filtered by entry page where this one is by page. Not grouped by page
    /// but filtered by it (on every face, so that the console and the Stats API agree): only
    /// `bounce_rate` is of the entering visits, those whose entry page matches the first page
    /// filter, as in Plausible (README, "Events and statistics").
    pub fn entry_page_query(&self) -> Option<Query> {
        let session_metrics = [Metric::BounceRate, Metric::VisitDuration, Metric::ViewsPerVisit];
        let wanted = self.metrics.iter().any(|m| session_metrics.contains(m));
        let entry = |dim: &Dim| if *dim == Dim::Page { Dim::EntryPage } else { dim.clone() };
        let filters: Vec<Filter> = if self.sessions_by_entry_page && self.dims.contains(&Dim::Page) && wanted {
            self.filters.iter().map(|f| Filter { dim: entry(&f.dim), ..f.clone() }).collect()
        } else if self.bounces_by_entry_page() {
            let first = self.filters.iter().position(|f| f.dim == Dim::Page)?;
            let page = &self.filters[first];
            let mut filters = self.filters.clone();
            filters.push(Filter { dim: Dim::EntryPage, ..page.clone() });
            // A visit without a pageview entered on no page, which no page filter picks (a
            // negated one, or a pattern matching anything, would pick its empty entry page).
            // Pages named by `is` are never empty: left out, the filter would keep the query
            // off the rollups of the pair of page and entry page.
            if page.op != Op::Is || page.values.iter().any(String::is_empty) {
                filters.push(Filter {
                    dim: Dim::EntryPage,
                    op: Op::IsNot,
                    values: vec![String::new()],
                    matching: Matching::Exact,
                });
            }
            filters
        } else {
            return None;
        };
        Some(Query {
            metrics: vec![Metric::BounceRate],
            dims: self.dims.iter().map(entry).collect(),
            filters,
            order: vec![],
            limit: 0,
            offset: 0,
            fill_time: false,
            sessions_by_entry_page: false,
            conversion_by_group: false,
            blank_labels: false,
            drops_blank: false,
            ..self.clone()
        })
    }

    /// Whether only `bounce_rate` is of the entering visits (see [`Query::entry_page_query`]).
    fn bounces_by_entry_page(&self) -> bool {
        !self.dims.contains(&Dim::Page)
            && self.metrics.contains(&Metric::BounceRate)
            && self.filters.iter().any(|f| f.dim == Dim::Page)
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

    /// Which rollup rows can answer this query, if any. They keep one dimension or a pair per
    /// row, and hours only as totals. Filtered by one value of a dimension, a query counts what
    /// grouping by that dimension counts in its rows of that value: the same events, visits
    /// and engagement, by the same column. So a query grouped by one dimension and filtered by
    /// one value of another is answered by the pair's rows of that value, one filtered by one
    /// value of each of two dimensions by the pair's row of both, and one grouped and filtered
    /// by the same dimension by that dimension's row of the value.
    pub fn rollup_rows(&self) -> Option<RollupRows> {
        let grouped: Vec<&Dim> = self.dims.iter().filter(|d| !matches!(d, Dim::Time(_))).collect();
        let mut picked = Vec::with_capacity(self.filters.len());
        for filter in &self.filters {
            match filter.values.as_slice() {
                [value] if filter.exact_is() => picked.push((&filter.dim, value.clone())),
                _ => return None,
            }
        }
        let one = |rolled: Rolled, pick, places| RollupRows { rolled: vec![rolled], pick, places };
        let rows = match (grouped.as_slice(), picked.as_slice()) {
            ([], []) => one(Rolled::Totals, vec![], vec![]),
            ([dim], []) if ROLLUP_DIMS.contains(dim) => one(Rolled::One((*dim).clone()), vec![], vec![0]),
            ([], [(dim, value)]) if ROLLUP_DIMS.contains(dim) => {
                one(Rolled::One((*dim).clone()), vec![(0, value.clone())], vec![])
            }
            ([dim], [(by, value)]) if dim == by && ROLLUP_DIMS.contains(dim) => {
                one(Rolled::One((*dim).clone()), vec![(0, value.clone())], vec![0])
            }
            ([Dim::Goal], []) if !self.goals.is_empty() => RollupRows {
                rolled: self.goals.iter().map(|g| Rolled::Goal(g.display_name.clone())).collect(),
                pick: vec![],
                places: vec![0],
            },
            ([], [(Dim::Goal, name)]) => one(Rolled::Goal(name.clone()), vec![], vec![]),
            // Goals filtered by one: no other goal's rows count, as none completes its events.
            ([Dim::Goal], [(Dim::Goal, name)]) if self.completed_alone(name) => {
                one(Rolled::Goal(name.clone()), vec![], vec![0])
            }
            // A goal's rows by another dimension hold the goal's name first, then its value.
            ([Dim::Goal], [(by, value)]) if !self.goals.is_empty() => {
                Pair::new(&Dim::Goal, by)?;
                RollupRows { rolled: self.goals_by(by), pick: vec![(1, value.clone())], places: vec![0] }
            }
            ([dim], [(Dim::Goal, name)]) => {
                Pair::new(&Dim::Goal, dim)?;
                one(Rolled::GoalBy(name.clone(), (*dim).clone()), vec![], vec![1])
            }
            ([a, b], []) if (*a == &Dim::Goal || *b == &Dim::Goal) && !self.goals.is_empty() => {
                let (by, places) = if *a == &Dim::Goal { (*b, vec![0, 1]) } else { (*a, vec![1, 0]) };
                Pair::new(&Dim::Goal, by)?;
                RollupRows { rolled: self.goals_by(by), pick: vec![], places }
            }
            ([], [(Dim::Goal, name), (by, value)] | [(by, value), (Dim::Goal, name)]) => {
                Pair::new(&Dim::Goal, by)?;
                one(Rolled::GoalBy(name.clone(), (*by).clone()), vec![(1, value.clone())], vec![])
            }
            ([a, b], []) => {
                let pair = Pair::new(a, b).filter(|p| p.goal_by().is_none())?;
                let places = vec![pair.position(a), pair.position(b)];
                one(Rolled::Pair(pair), vec![], places)
            }
            ([dim], [(by, value)]) => {
                let pair = Pair::new(dim, by).filter(|p| p.goal_by().is_none())?;
                let (place, pick) = (pair.position(dim), pair.position(by));
                one(Rolled::Pair(pair), vec![(pick, value.clone())], vec![place])
            }
            ([], [(a, x), (b, y)]) => {
                let pair = Pair::new(a, b).filter(|p| p.goal_by().is_none())?;
                let picks = vec![(pair.position(a), x.clone()), (pair.position(b), y.clone())];
                one(Rolled::Pair(pair), picks, vec![])
            }
            _ => return None,
        };
        // Rollups keep hours as totals only, and no revenue: revenue metrics without a revenue
        // goal to count have no value anyway (see `Query::row_currencies`).
        let hourly = self.dims.contains(&Dim::Time(Interval::Hour));
        let revenue = self.needs_revenue() && !self.revenue_goals().is_empty();
        let fits = !revenue && (rows.rolled == [Rolled::Totals] || !hourly);
        fits.then_some(rows)
    }

    /// Whether `name` is a goal of the site whose events no other goal of it completes: a
    /// custom event's goal is the only one of its event (pageviews are none), and a page's
    /// shares no pageview with another page's when both are exact paths.
    fn completed_alone(&self, name: &str) -> bool {
        let Some(goal) = self.goals.iter().find(|g| g.display_name == name) else { return false };
        self.goals.iter().filter(|other| other.id != goal.id).all(|other| match (&goal.target, &other.target) {
            (GoalTarget::Event(a), GoalTarget::Event(b)) => a != b,
            (GoalTarget::Page(a), GoalTarget::Page(b)) => a != b && !a.contains('*') && !b.contains('*'),
            _ => true,
        })
    }

    /// Each of the site's goals' rows by `dim`.
    fn goals_by(&self, dim: &Dim) -> Vec<Rolled> {
        self.goals.iter().map(|g| Rolled::GoalBy(g.display_name.clone(), dim.clone())).collect()
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

    /// The goal each part of a query's SQL is about: with `event:goal` as a dimension, one part
    /// per goal of the site (none without goals), else one part about no goal.
    fn goal_parts(&self) -> Vec<Option<&Goal>> {
        if self.dims.contains(&Dim::Goal) { self.goals.iter().map(Some).collect() } else { vec![None] }
    }

    /// SQL true for an event (columns prefixed by `t`) that satisfies `filter`, a filter on an
    /// event's own dimension.
    fn event_condition(&self, sql: &mut Sql, filter: &Filter, t: &str, dialect: Dialect) -> String {
        match &filter.dim {
            Dim::Goal => {
                // The filter picks goals by name; the event completes one of them.
                let mut named = filter.clone();
                let negated = filter.op.negated();
                named.op = match filter.op {
                    Op::IsNot => Op::Is,
                    Op::ContainsNot => Op::Contains,
                    Op::MatchesNot => Op::Matches,
                    Op::RegexNot => Op::Regex,
                    op => op,
                };
                let chosen: Vec<String> = self
                    .goals
                    .iter()
                    .filter(|g| named.picks(&g.display_name))
                    .map(|g| goal_condition(sql, g, t, dialect))
                    .collect();
                let any = any_of(&chosen);
                if negated { format!("NOT {any}") } else { any }
            }
            Dim::Prop(name) => {
                let column = dialect.prop(sql, &format!("{t}props"), name);
                sql.condition(&column, filter, dialect)
            }
            dim => {
                let column = format!("{t}{}", dim.event_column().expect("an event dimension"));
                sql.condition(&column, filter, dialect)
            }
        }
    }

    /// An event's value of dimension `dim` (columns prefixed by `t`), about goal `goal`.
    fn event_value(sql: &mut Sql, dim: &Dim, t: &str, goal: Option<&Goal>, dialect: Dialect) -> String {
        match dim {
            Dim::Goal => {
                let name = goal.map(|g| g.display_name.clone()).unwrap_or_default();
                format!("CAST({} AS TEXT)", sql.bind(Bind::Text(name)))
            }
            Dim::Prop(name) => dialect.prop(sql, &format!("{t}props"), name),
            other => format!("{t}{}", other.event_column().expect("events carry every other dimension")),
        }
    }

    /// The period's events matching the filters and about `part.goal`, engagement events or the
    /// others: the dimensions' values and the `FROM … WHERE …` that selects them.
    fn event_rows(&self, sql: &mut Sql, part: EventPart<'_>, buckets: Option<&Buckets>) -> (Vec<String>, String) {
        let dialect = part.dialect;
        let (site, from, to) = sql.range(self);
        let join_visits = self.dims.contains(&Dim::ExitPage) || self.filters.iter().any(|f| f.dim == Dim::ExitPage);
        let name = match part.kind {
            EventKind::Engagement => "e.name = 'engagement'",
            EventKind::Others => "e.name <> 'engagement'",
        };
        let mut conditions = vec![format!("e.website_id = {site} AND e.ts >= {from} AND e.ts < {to} AND {name}")];
        for filter in &self.filters {
            let condition = match filter.dim {
                Dim::ExitPage => sql.condition("v.exit_page", filter, dialect),
                _ => self.event_condition(sql, filter, "e.", dialect),
            };
            conditions.push(condition);
        }
        if let Some(goal) = part.goal {
            conditions.push(goal_condition(sql, goal, "e.", dialect));
        }
        let dims = self
            .dims
            .iter()
            .map(|dim| match dim {
                Dim::ExitPage => "v.exit_page".to_owned(),
                Dim::Time(_) => buckets.expect("buckets of a time dimension").case("e.ts", (self.from, self.to)),
                other => Query::event_value(sql, other, "e.", part.goal, dialect),
            })
            .collect();
        // An event's visit started on the event's UTC day (no visit spans two; it may start
        // after an event that arrived out of order): bounding its start by the period's UTC days
        // lets PostgreSQL look it up in those day partitions of `visits` only, instead of
        // probing every day's (README, "Benchmarks": the exit-page breakdown).
        let join = if join_visits {
            let first_day = sql.bind(Bind::Int(crate::store::day_of(self.from)));
            let end_day = sql.bind(Bind::Int(crate::store::day_of(self.to - 1) + crate::store::DAY_MS));
            format!(" JOIN visits v ON v.id = e.visit_id AND v.start_ts >= {first_day} AND v.start_ts < {end_day}")
        } else {
            String::new()
        };
        (dims, format!("FROM events e{join} WHERE {}", conditions.join(" AND ")))
    }

    /// The SQL of the events part, when a metric needs it. Engagement events are not events.
    pub fn event_sql(&self, dialect: Dialect, buckets: Option<&Buckets>) -> Option<Sql> {
        let parts = self.goal_parts();
        if !self.needs_events() || parts.is_empty() {
            return None;
        }
        let mut sql = Sql::default();
        let mut selects = Vec::with_capacity(parts.len());
        for goal in parts {
            let part = EventPart { dialect, goal, kind: EventKind::Others };
            let (dims, rows) = self.event_rows(&mut sql, part, buckets);
            // Revenue in whole cents, added up as floating point numbers, which hold every
            // whole number of cents exactly up to 2^53 (90 trillion in the currency) and cannot
            // overflow, where a BIGINT sum of many large amounts would fail the query; the sum
            // is then kept within a BIGINT.
            let revenue = if self.needs_revenue() {
                let paid = self.revenue_condition(&mut sql, goal, "e.", dialect);
                let cents = format!(
                    "COALESCE(SUM(CASE WHEN {paid} THEN ROUND(CAST(e.revenue_amount AS DOUBLE PRECISION) * 100) ELSE 0 END), 0)"
                );
                let bounded = match dialect {
                    Dialect::Sqlite => format!("MIN(MAX({cents}, -{CENTS_MAX}), {CENTS_MAX})"),
                    Dialect::Postgres => format!("LEAST(GREATEST({cents}, -{CENTS_MAX}), {CENTS_MAX})"),
                };
                format!(
                    ", CAST({bounded} AS BIGINT) AS revenue, \
                     CAST(COALESCE(SUM(CASE WHEN {paid} THEN 1 ELSE 0 END), 0) AS BIGINT) AS revenue_events"
                )
            } else {
                String::new()
            };
            selects.push(format!(
                "SELECT {}CAST(COUNT(DISTINCT e.visitor_id) AS BIGINT) AS visitors, \
                 CAST(COALESCE(SUM(CASE WHEN e.name = 'pageview' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pageviews, \
                 CAST(COUNT(*) AS BIGINT) AS events{revenue} {rows}{}",
                select_dims(&dims),
                group_by(dims.len()),
            ));
        }
        sql.text = selects.join(" UNION ALL ");
        Some(sql)
    }

    /// Where the events part of this query can be read from visits instead of events, with
    /// every day from there on in one time bucket: the period's first UTC midnight from
    /// `visits_from` (the first day whose events their visits all count) on; or its start, when
    /// the query needs no count of events but visitors. None when the part needs events
    /// themselves (an event's dimension, filter, goal or revenue), when no such day is in the
    /// period, or when the period ended (before `now`) within a day: that day's visits have
    /// most likely gone on past its end.
    ///
    /// A visit holds its UTC day's visitor and counts its pageviews and events (engagement
    /// aside), its last event's time bounds them, and no visit spans two UTC days. So over days
    /// read from their start the events part is their visits' (see [`Query::day_visits_sql`]):
    /// several times fewer rows, for today's events, which no rollup holds yet. From within a
    /// day, a visit with an event since then holds a visitor of the period, but its counts may
    /// include events before it: a query of totals or time buckets alone (a site's local day
    /// that starts within a UTC day, New York's today) then counts the events of those visits
    /// since then from events, the few that go on across that instant.
    pub fn day_visits_from(&self, buckets: Option<&Buckets>, visits_from: i64, now: i64) -> Option<i64> {
        let of_visits = |d: &Dim| matches!(d, Dim::Time(_)) || d.visit_column().is_some();
        let fits = self.needs_events()
            && !self.needs_revenue()
            && self.dims.iter().all(of_visits)
            && self.filters.iter().all(|f| f.dim.visit_column().is_some());
        let within_a_day = self.filters.is_empty() && self.dims.iter().all(|d| matches!(d, Dim::Time(_)));
        let first = if self.counts_events() && !within_a_day {
            crate::store::day_of(self.from - 1) + crate::store::DAY_MS
        } else {
            self.from
        };
        let first = first.max(visits_from);
        // A period that ends now (`24h`, resolved a moment ago) has not ended yet for this.
        let ended_within_a_day = self.to < now - ENDED_MS && self.to != crate::store::day_of(self.to);
        if !fits || first >= self.to || ended_within_a_day {
            return None;
        }
        let mut day = first;
        while day < self.to {
            let end = (crate::store::day_of(day) + crate::store::DAY_MS).min(self.to);
            if buckets.is_some_and(|b| b.cut(day, end).len() > 1) {
                return None;
            }
            day = end;
        }
        Some(first)
    }

    /// Whether a metric counts events (pageviews or events), not visitors alone.
    fn counts_events(&self) -> bool {
        self.metrics.iter().any(|m| matches!(m, Metric::Pageviews | Metric::Events))
    }

    /// The events part of this query's period from the visits of its UTC days that have an
    /// event in it (see [`Query::day_visits_from`]), with a fourth counter: the last event's
    /// time among them (engagement aside). They hold all the period's events when that is
    /// before its end, which only a period ending within a day needs to check.
    pub fn day_visits_sql(&self, dialect: Dialect, buckets: Option<&Buckets>) -> Sql {
        let end = crate::store::day_of(self.to - 1) + crate::store::DAY_MS;
        if self.counts_events() && self.from != crate::store::day_of(self.from) {
            return self.visits_from_within_a_day(buckets, end);
        }
        let mut sql = Sql::default();
        let conditions = self.visit_conditions(&mut sql, dialect, end);
        // A visit from before the period's start lies in its first bucket.
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Time(_) => buckets.expect("buckets of a time dimension").case("v.start_ts", (self.from, self.to)),
                other => format!("v.{}", other.visit_column().expect("a visit dimension")),
            })
            .collect();
        sql.text = format!(
            "SELECT {}CAST(COUNT(DISTINCT v.visitor_id) AS BIGINT) AS visitors, \
             CAST(COALESCE(SUM(v.pageviews), 0) AS BIGINT) AS pageviews, \
             CAST(COALESCE(SUM(v.events), 0) AS BIGINT) AS events, \
             CAST(COALESCE(MAX(v.last_ts), 0) AS BIGINT) AS last_event \
             FROM visits v WHERE {}{}",
            select_dims(&dims),
            conditions.join(" AND "),
            group_by(dims.len()),
        );
        sql
    }

    /// [`Query::day_visits_sql`] of a period that starts within a UTC day, for totals or time
    /// buckets alone: the visits that started since, and the events since of those that began
    /// before and go on (few: a visit ends 30 minutes after its last event). Those events are
    /// read between the period's start and the last of those visits' last events, the one range
    /// of the events' index it needs.
    fn visits_from_within_a_day(&self, buckets: Option<&Buckets>, end: i64) -> Sql {
        let mut sql = Sql::default();
        let site = sql.bind(Bind::Text(self.website_id.clone()));
        let from = sql.bind(Bind::Int(self.from));
        let end = sql.bind(Bind::Int(end));
        let day = sql.bind(Bind::Int(crate::store::day_of(self.from)));
        let going_on =
            format!("c.website_id = {site} AND c.start_ts >= {day} AND c.start_ts < {from} AND c.last_ts >= {from}");
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|_| buckets.expect("buckets of a time dimension").case("x.at", (self.from, self.to)))
            .collect();
        sql.text = format!(
            "SELECT {}CAST(COUNT(DISTINCT x.visitor_id) AS BIGINT) AS visitors, \
             CAST(COALESCE(SUM(x.pv), 0) AS BIGINT) AS pageviews, CAST(COALESCE(SUM(x.ev), 0) AS BIGINT) AS events, \
             CAST(COALESCE(MAX(x.last), 0) AS BIGINT) AS last_event FROM (\
             SELECT v.visitor_id, v.pageviews AS pv, v.events AS ev, v.last_ts AS last, v.start_ts AS at FROM visits v \
             WHERE v.website_id = {site} AND v.start_ts >= {from} AND v.start_ts < {end} \
             UNION ALL SELECT e.visitor_id, CASE WHEN e.name = 'pageview' THEN 1 ELSE 0 END, 1, e.ts, e.ts FROM events e \
             WHERE e.website_id = {site} AND e.ts >= {from} AND e.ts <= (SELECT MAX(c.last_ts) FROM visits c WHERE {going_on}) \
             AND e.name <> 'engagement' AND e.visit_id IN (SELECT c.id FROM visits c WHERE {going_on})) x{}",
            select_dims(&dims),
            group_by(dims.len()),
        );
        sql
    }

    /// The SQL of the engagement part, when a metric needs it: per group, the engaged
    /// milliseconds and the visits they belong to, and the sum of each visit's deepest scroll
    /// with the visits that sent one.
    pub fn engagement_sql(&self, dialect: Dialect, buckets: Option<&Buckets>) -> Option<Sql> {
        let parts = self.goal_parts();
        if !self.needs_engagement() || parts.is_empty() {
            return None;
        }
        let mut sql = Sql::default();
        let mut selects = Vec::with_capacity(parts.len());
        for goal in parts {
            let part = EventPart { dialect, goal, kind: EventKind::Engagement };
            let (dims, rows) = self.event_rows(&mut sql, part, buckets);
            let outer: Vec<String> = (0..dims.len()).map(|i| format!("x.d{i}")).collect();
            selects.push(format!(
                "SELECT {}CAST(COALESCE(SUM(x.ms), 0) AS BIGINT) AS engaged_ms, CAST(COUNT(*) AS BIGINT) AS engaged_visits, \
                 CAST(COALESCE(SUM(x.sd), 0) AS BIGINT) AS scroll_total, CAST(COUNT(x.sd) AS BIGINT) AS scroll_visits \
                 FROM (SELECT {}e.visit_id AS visit, SUM(e.engagement_ms) AS ms, MAX(e.scroll_depth) AS sd {rows}{}) x{}",
                select_dims(&outer),
                select_dims(&dims),
                group_by(dims.len() + 1),
                group_by(dims.len()),
            ));
        }
        sql.text = selects.join(" UNION ALL ");
        Some(sql)
    }

    /// The visits that include an event of the period (engagement aside) matching the query's
    /// event filters, as a derived table `x` of `visit_id`, the event's time bucket `xb` when
    /// `buckets` are given, and the event dimensions' values `x0`, `x1`, …: one row per visit and
    /// distinct values. None when no dimension and no filter is the events'.
    fn visit_events(&self, sql: &mut Sql, dialect: Dialect, buckets: Option<&Buckets>) -> Option<String> {
        let event_dims: Vec<&Dim> = self.dims.iter().filter(|d| d.of_events()).collect();
        let event_filters: Vec<&Filter> = self.filters.iter().filter(|f| f.dim.of_events()).collect();
        if event_dims.is_empty() && event_filters.is_empty() {
            return None;
        }
        let (site, from, to) = sql.range(self);
        let mut inner = vec![format!("website_id = {site} AND ts >= {from} AND ts < {to} AND name <> 'engagement'")];
        for filter in event_filters {
            inner.push(self.event_condition(sql, filter, "", dialect));
        }
        let mut selects = vec![];
        for goal in self.goal_parts() {
            let mut conditions = inner.clone();
            if let Some(goal) = goal {
                conditions.push(goal_condition(sql, goal, "", dialect));
            }
            let bucket = buckets.map(|b| format!(", {} AS xb", b.case("ts", (self.from, self.to))));
            let values: Vec<String> = bucket
                .into_iter()
                .chain(
                    event_dims
                        .iter()
                        .enumerate()
                        .map(|(i, d)| format!(", {} AS x{i}", Query::event_value(sql, d, "", goal, dialect))),
                )
                .collect();
            selects.push(format!(
                "SELECT DISTINCT visit_id{} FROM events WHERE {}",
                values.concat(),
                conditions.join(" AND ")
            ));
        }
        Some(selects.join(" UNION ALL "))
    }

    /// Conditions on the site's visits `v` that started before `start_before` and have an event
    /// at the period's start or later, matching the query's filters on visit dimensions.
    fn visit_conditions(&self, sql: &mut Sql, dialect: Dialect, start_before: i64) -> Vec<String> {
        let site = sql.bind(Bind::Text(self.website_id.clone()));
        let from = sql.bind(Bind::Int(self.from));
        // No visit spans two UTC days (visitor hashes are salted per day), so one that reaches
        // the period started on its first UTC day at the earliest: bounding the start lets the
        // index on it read that range rather than every earlier visit of the site.
        let first_day = sql.bind(Bind::Int(crate::store::day_of(self.from)));
        let end = sql.bind(Bind::Int(start_before));
        let mut conditions = vec![format!(
            "v.website_id = {site} AND v.start_ts >= {first_day} AND v.start_ts < {end} AND v.last_ts >= {from}"
        )];
        for filter in self.filters.iter().filter(|f| !f.dim.of_events()) {
            let column = format!("v.{}", filter.dim.visit_column().expect("a visit dimension"));
            conditions.push(sql.condition(&column, filter, dialect));
        }
        conditions
    }

    /// The SQL of the visits part, when a metric needs it. A visit counts in the period, and in
    /// each time bucket, that its first to last event overlaps.
    pub fn visit_sql(&self, dialect: Dialect, buckets: Option<&Buckets>) -> Option<Sql> {
        if !self.needs_visits() || self.goal_parts().is_empty() {
            return None;
        }
        let mut sql = Sql::default();
        let mut conditions = self.visit_conditions(&mut sql, dialect, self.to);
        let buckets = self.time_dim().and(buckets);
        // Events' dimensions live on events: grouped by them, a visit counts once per distinct
        // value it includes; filtered by them, a visit counts when one of its events matches.
        // In a time series, both within each bucket: every bucket answers as its own period
        // would, so a rolled-up piece of a day (see `rollup.rs`) holds what it holds in any
        // period.
        let grouped_by_events = self.dims.iter().any(Dim::of_events);
        let join = match (self.visit_events(&mut sql, dialect, buckets), buckets) {
            (Some(x), Some(_)) => format!(" JOIN ({x}) x ON x.visit_id = v.id AND x.xb = b.i"),
            (Some(x), None) if grouped_by_events => format!(" JOIN ({x}) x ON x.visit_id = v.id"),
            (Some(x), None) => {
                conditions.push(format!("v.id IN ({x})"));
                String::new()
            }
            (None, _) => String::new(),
        };
        let (with, spans) = match buckets {
            Some(buckets) => (buckets.values(self.from, self.to), " JOIN b ON v.start_ts < b.e AND v.last_ts >= b.s"),
            None => (String::new(), ""),
        };
        let mut event_dim = 0;
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Time(_) => "CAST(b.i AS BIGINT)".to_owned(),
                d if d.of_events() => {
                    event_dim += 1;
                    format!("x.x{}", event_dim - 1)
                }
                other => format!("v.{}", other.visit_column().expect("a visit dimension")),
            })
            .collect();
        // Durations in whole seconds between second-truncated times, as Plausible keeps them.
        sql.text = format!(
            "{with}SELECT {}CAST(COUNT(*) AS BIGINT) AS visits, \
             CAST(COALESCE(SUM(CASE WHEN v.events - v.passive = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS bounces, \
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
    pub fn answer(&self, parts: Parts, buckets: Option<&Buckets>, shares: Shares) -> Answer {
        let mut groups: HashMap<Vec<String>, Totals> = HashMap::new();
        if self.dims.is_empty() {
            groups.insert(vec![], Totals::default());
        }
        for (key, c) in parts.events {
            let t = groups.entry(key).or_default();
            (t.visitors, t.pageviews, t.events) = (c[0], c[1], c[2]);
            let extra = |i: usize| c.get(i).copied().unwrap_or_default();
            (t.revenue, t.revenue_events) = (extra(3), extra(4));
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
        if self.entry_page_query().is_some() {
            let bounces_only = self.bounces_by_entry_page();
            for t in groups.values_mut() {
                t.sessions = Some([0; 4]);
                t.bounces_only = bounces_only;
            }
            for (key, c) in parts.entries {
                if let Some(t) = groups.get_mut(&key) {
                    t.sessions = Some([c[0], c[1], c[2], c[3]]);
                }
            }
        }
        if let (Some(buckets), true, [Dim::Time(_)]) = (buckets, self.fill_time, self.dims.as_slice()) {
            for i in 0..buckets.labels.len() {
                groups.entry(vec![i.to_string()]).or_default();
            }
        }
        let dropped = |key: &[String]| {
            self.drops_blank && self.dims.iter().zip(key).any(|(d, v)| v.is_empty() && d.blank_dropped_in_v1())
        };
        let rows: Vec<(Vec<String>, Vec<f64>)> = groups
            .into_iter()
            .filter(|(key, _)| !dropped(key))
            .map(|(key, t)| {
                let group = shares.conversion_groups.get(&self.group_of(&key)).copied().unwrap_or_default();
                let bases = Bases {
                    conversion: if self.converts_by_group() { group } else { shares.conversion_base },
                    group_conversion: if self.groups_conversion() { group } else { shares.conversion_base },
                    percentage: shares.percentage_base,
                };
                (self.labelled(key), self.metrics.iter().map(|m| t.value(*m, bases)).collect())
            })
            .collect();
        self.ordered(rows, buckets)
    }

    /// A row's dimension values, empty ones by Plausible's label where it has one.
    fn labelled(&self, mut key: Vec<String>) -> Vec<String> {
        if self.blank_labels {
            for (dim, value) in self.dims.iter().zip(key.iter_mut()) {
                if let (true, Some(label)) = (value.is_empty(), dim.blank_label()) {
                    *value = label.to_owned();
                }
            }
        }
        key
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
        let currencies = self.row_currencies(&mut rows);
        Answer {
            dimensions: self.dims.iter().map(Dim::name).collect(),
            rows,
            currencies,
            total_rows,
            time_labels: buckets.map(|b| b.labels.clone()).unwrap_or_default(),
            rolled_up_days: 0,
        }
    }
}

/// Which events a part of a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    /// `engagement` events, which only feed time on page and scroll depth.
    Engagement,
    /// Every other event.
    Others,
}

/// One part of a query's SQL over events: which events, about which goal, in which dialect.
#[derive(Clone, Copy)]
struct EventPart<'a> {
    dialect: Dialect,
    goal: Option<&'a Goal>,
    kind: EventKind,
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
    /// With `sessions_by_entry_page`: the visits part of the entering visits, by entry page.
    pub entries: Vec<Counted>,
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
    /// Cents of revenue, and the events that carried it.
    revenue: i64,
    revenue_events: i64,
    /// Visits, bounces, duration and pageviews that bounce rate, visit duration and views per
    /// visit are of, when not those of `visits`: the visits that entered on the page.
    sessions: Option<[i64; 4]>,
    /// Whether `sessions` are only for `bounce_rate` (filtered by page, not grouped by it).
    bounces_only: bool,
}

impl Totals {
    /// A metric of the group, rounded as Plausible rounds it (ClickHouse rounds a tie to even).
    /// NaN when it has no value: time on page and scroll depth with no engagement.
    /// `bases`: the visitors that its conversion rate and its percentage are of.
    fn value(&self, metric: Metric, bases: Bases) -> f64 {
        let ratio = |x: i64, of: i64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
        let or_none = |x: i64, of: i64| if of == 0 { f64::NAN } else { x as f64 / of as f64 };
        // Plausible's shares: percent with one decimal, 0 of nobody.
        let share = |base: i64| (ratio(self.visitors, base) * 1000.0).round_ties_even() / 10.0;
        let own = [self.visits, self.bounces, self.duration, self.views];
        let sessions = self.sessions.unwrap_or(own);
        let [visits, _, duration, views] = if self.bounces_only { own } else { sessions };
        let [entered, bounces, _, _] = sessions;
        match metric {
            Metric::Visitors => self.visitors as f64,
            Metric::Visits => self.visits as f64,
            Metric::Pageviews => self.pageviews as f64,
            Metric::Events => self.events as f64,
            Metric::ViewsPerVisit => (ratio(views, visits) * 100.0).round_ties_even() / 100.0,
            Metric::BounceRate => (ratio(bounces, entered) * 100.0).round_ties_even(),
            Metric::VisitDuration => ratio(duration, visits).round_ties_even(),
            Metric::TimeOnPage => (or_none(self.engaged_ms, self.engaged_visits) / 1000.0).round_ties_even(),
            Metric::ScrollDepth => or_none(self.scroll_total, self.scroll_visits).round_ties_even(),
            Metric::ConversionRate => share(bases.conversion),
            Metric::GroupConversionRate => share(bases.group_conversion),
            Metric::Percentage => share(bases.percentage),
            Metric::TotalRevenue => self.revenue as f64 / 100.0,
            Metric::AverageRevenue => ratio(self.revenue, self.revenue_events).round() / 100.0,
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

/// SQL true when any of `parts` is, none being false (`1 = 0` for no part). A balanced tree of
/// `OR`s: SQLite refuses an expression nested more than 1,000 deep, which a chain of a few
/// hundred parts (a site's local days over years, the values of a long filter) would reach.
pub fn any_of(parts: &[String]) -> String {
    match parts {
        [] => "1 = 0".to_owned(),
        [one] => format!("({one})"),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            format!("({} OR {})", any_of(left), any_of(right))
        }
    }
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

    /// `column` satisfies `filter`. Where text matching ignores case (see [`Matching`]), it
    /// ignores the case of every alphabet on both backends (PostgreSQL is given ILIKE, SQLite a
    /// regular expression, since its LIKE folds ASCII letters only); where
    /// it respects case, `contains` finds the text (`instr`, `strpos`) and wildcards are SQLite's
    /// GLOB or PostgreSQL's LIKE. A regular expression is SQLite's REGEXP (the `regex` crate's,
    /// as `common::regexp` installs it) or PostgreSQL's `~`, whose flavour agrees with RE2's on
    /// what filters use (classes, anchors, alternatives, repetitions, a leading `(?i)`).
    fn condition(&mut self, column: &str, filter: &Filter, dialect: Dialect) -> String {
        let any = |sql: &mut Sql, test: &dyn Fn(&mut Sql, &str) -> String| {
            let parts: Vec<String> = filter.values.iter().map(|v| test(sql, v)).collect();
            any_of(&parts)
        };
        let wildcard = |v: &str| escape_like(v).replace("\\*", "%");
        // Ignoring case: PostgreSQL's ILIKE, a case-blind regular expression on SQLite, whose
        // LIKE folds ASCII letters only.
        let caseless = |sql: &mut Sql, v: &str, finds: Finds| match dialect {
            Dialect::Sqlite => {
                format!("{column} REGEXP {}", sql.bind(Bind::Text(common::regexp::ignoring_case(v, finds))))
            }
            Dialect::Postgres => {
                let pattern = match finds {
                    Finds::Whole => escape_like(v),
                    Finds::Within => format!("%{}%", escape_like(v)),
                    Finds::Wildcard => wildcard(v),
                };
                format!("{column} ILIKE {} ESCAPE '\\'", sql.bind(Bind::Text(pattern)))
            }
        };
        let found = |sql: &mut Sql, v: &str| {
            let v = sql.bind(Bind::Text(v.to_owned()));
            match dialect {
                Dialect::Sqlite => format!("instr({column}, {v}) > 0"),
                Dialect::Postgres => format!("strpos({column}, {v}) > 0"),
            }
        };
        let glob = |sql: &mut Sql, v: &str| match dialect {
            Dialect::Sqlite => format!("{column} GLOB {}", sql.bind(Bind::Text(escape_glob(v)))),
            Dialect::Postgres => format!("{column} LIKE {} ESCAPE '\\'", sql.bind(Bind::Text(wildcard(v)))),
        };
        let ignores = filter.ignores_case();
        let positive = match filter.op {
            Op::Is | Op::IsNot if ignores => any(self, &|sql, v| caseless(sql, v, Finds::Whole)),
            Op::Is | Op::IsNot => {
                let values: Vec<String> = filter.values.iter().map(|v| self.bind(Bind::Text(v.clone()))).collect();
                format!("{column} IN ({})", values.join(", "))
            }
            Op::Contains | Op::ContainsNot if ignores => any(self, &|sql, v| caseless(sql, v, Finds::Within)),
            Op::Contains | Op::ContainsNot => any(self, &found),
            Op::Matches | Op::MatchesNot if ignores => any(self, &|sql, v| caseless(sql, v, Finds::Wildcard)),
            Op::Matches | Op::MatchesNot => any(self, &glob),
            Op::Regex | Op::RegexNot => any(self, &|sql, v| match dialect {
                Dialect::Sqlite => format!("{column} REGEXP {}", sql.bind(Bind::Text(v.to_owned()))),
                Dialect::Postgres => {
                    format!("{column} ~ {}", sql.bind(Bind::Text(common::regexp::for_postgres(v))))
                }
            }),
        };
        match filter.op.negated() {
            true => format!("NOT {positive}"),
            false => positive,
        }
    }
}

/// SQL true for an event (columns prefixed by `t`) that completes `goal`. A page goal's path
/// matches the whole page, `*` standing for any characters, and respects case, as Plausible's
/// does: SQLite's GLOB, PostgreSQL's LIKE.
fn goal_condition(sql: &mut Sql, goal: &Goal, t: &str, dialect: Dialect) -> String {
    match &goal.target {
        GoalTarget::Event(name) => format!("{t}name = {}", sql.bind(Bind::Text(name.clone()))),
        GoalTarget::Page(path) => {
            let matched = match dialect {
                Dialect::Sqlite => format!("{t}pathname GLOB {}", sql.bind(Bind::Text(escape_glob(path)))),
                Dialect::Postgres => {
                    let pattern = sql.bind(Bind::Text(escape_like(path).replace("\\*", "%")));
                    format!("{t}pathname LIKE {pattern} ESCAPE '\\'")
                }
            };
            format!("({t}name = 'pageview' AND {matched})")
        }
    }
}

/// Whether `text` matches `pattern`, whose `*` stands for any characters (none included).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// A wildcard pattern as SQLite's GLOB takes it: `*` stays, the GLOB's other special characters
/// stand for themselves.
fn escape_glob(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '?' => escaped.push_str("[?]"),
            '[' => escaped.push_str("[[]"),
            c => escaped.push(c),
        }
    }
    escaped
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

/// How long ago a period must have ended for its last day's visits to be taken as gone on past
/// it (see [`Query::day_visits_from`]).
const ENDED_MS: i64 = 60_000;

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
            // Milliseconds too: `24h` starts at a millisecond of now, and its later buckets must
            // start on the hour to be the hours rollups keep.
            let into_hour = first.minute() as i64 * 60_000 + first.second() as i64 * 1000;
            let mut t = from - into_hour - i64::from(first.timestamp_subsec_millis());
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

    /// Bucket `i`'s first instant and end.
    pub fn span(&self, i: usize) -> (i64, i64) {
        (self.starts[i], self.starts.get(i + 1).copied().unwrap_or(self.end))
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The latest bound between buckets (or the period's start or end) at or before `at`; the
    /// period's start when `at` is before it.
    pub fn bound_before(&self, at: i64) -> i64 {
        let bounds = self.starts.iter().copied().chain([self.end]);
        bounds.filter(|bound| *bound <= at).max().unwrap_or(self.starts.first().copied().unwrap_or(self.end))
    }

    /// `[from, to)` cut where buckets start: ranges that each lie in one bucket.
    pub fn cut(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut ranges = Vec::new();
        let mut start = from;
        for at in self.starts.iter().filter(|at| **at > from && **at < to) {
            ranges.push((start, *at));
            start = *at;
        }
        ranges.push((start, to));
        ranges
    }

    /// A `WITH` clause naming the buckets' parts within `[from, to)` as `b (i, s, e)`: index,
    /// first instant, end; a query over part of its buckets' period (next to rollups) counts a
    /// visit only in the buckets it overlaps there. The bounds are integers we computed, so they
    /// are written inline rather than bound.
    fn values(&self, from: i64, to: i64) -> String {
        let rows: Vec<String> = (0..self.starts.len())
            .map(|i| self.span(i))
            .enumerate()
            .map(|(i, (s, e))| (i, s.max(from), e.min(to)))
            .filter(|(_, s, e)| s < e)
            .map(|(i, s, e)| format!("({i}, {s}, {e})"))
            .collect();
        // No part: a row no visit overlaps keeps the clause valid.
        let rows = if rows.is_empty() { "(0, 0, 0)".to_owned() } else { rows.join(", ") };
        format!("WITH b (i, s, e) AS (VALUES {rows}) ")
    }

    /// SQL mapping `column`, an instant of the rows of `[from, to)`, to its bucket index (an
    /// instant before `from` to the first bucket: a visit that began before). Only the
    /// buckets that range overlaps are tested: a query reading today's raw events next to the
    /// rollups of a month's days would otherwise test every day's bound for each event. The
    /// bounds are integers we computed, so they are written inline rather than bound.
    fn case(&self, column: &str, (from, to): (i64, i64)) -> String {
        let first = self.index_of(from);
        let bounds: Vec<(usize, i64)> =
            self.starts.iter().copied().enumerate().skip(first + 1).take_while(|(_, start)| *start < to).collect();
        let Some(&(last, last_start)) = bounds.last() else {
            return format!("CAST({first} AS BIGINT)");
        };
        // Hours (and UTC days) start at a fixed step: the index is then arithmetic, where a
        // `CASE` would test up to one bound per bucket for each row.
        let (i1, s1) = bounds[0];
        let step = bounds.get(1).map_or(self.span(i1).1 - s1, |(_, s2)| s2 - s1);
        let even = bounds.windows(2).all(|w| w[1].1 - w[0].1 == step);
        if even && self.span(last).1 - last_start <= step {
            return format!(
                "CAST(CASE WHEN {column} < {s1} THEN {first} ELSE {i1} + ({column} - {s1}) / {step} END AS BIGINT)"
            );
        }
        let mut case = String::from("CAST(CASE");
        for (i, start) in &bounds {
            case.push_str(&format!(" WHEN {column} < {start} THEN {}", i - 1));
        }
        case.push_str(&format!(" ELSE {last} END AS BIGINT)"));
        case
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn any_of_many_parts_nests_them_logarithmically_deep() {
        assert_eq!(any_of(&[]), "1 = 0");
        assert_eq!(any_of(&["a".into(), "b".into(), "c".into()]), "((a) OR ((b) OR (c)))");
        let parts: Vec<String> = (0..1000).map(|i| format!("x = {i}")).collect();
        let sql = any_of(&parts);
        let deepest = sql
            .chars()
            .scan(0i32, |depth, c| {
                *depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                Some(*depth)
            })
            .max();
        assert_eq!(deepest, Some(11));
        assert_eq!(sql.matches(" OR ").count(), 999);
    }

    /// A period as our own endpoints name it.
    fn period_range(tz: Tz, name: &str, date: &str, now: DateTime<Utc>) -> Result<(i64, i64)> {
        use crate::period::Asked;
        // As the gateway sends them; an unknown name is the unspecified period.
        let (asked, end_day) = match (name, date.split_once(',')) {
            ("custom", range) => {
                let (first, last) = range.unwrap_or((date, ""));
                (Asked::Custom { first_day: first.into(), last_day: last.into() }, "")
            }
            _ => (pb::NamedPeriod::from_name(name).map(Asked::Named).unwrap_or_default(), date),
        };
        let meaning = crate::period::Meaning::Ours;
        let period = crate::period::Period { meaning, asked: &asked, end_day, now, first_event: None };
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
    fn the_hours_of_a_period_starting_within_a_second_start_on_the_hour() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 26, 12, 5, 7).unwrap().timestamp_millis() + 345;
        let hours = Buckets::new(kolkata, Interval::Hour, from, from + DAY).unwrap();
        assert_eq!(hours.span(0), (from, Utc.with_ymd_and_hms(2026, 11, 26, 12, 30, 0).unwrap().timestamp_millis()));
        assert_eq!(hours.len(), 25, "a partial hour at each end");
    }

    #[test]
    fn a_period_ending_now_reads_visits_and_one_that_ended_earlier_today_does_not() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 5, 7).unwrap().timestamp_millis();
        let query = |to: i64, dims: &[&str]| {
            let metrics = ["visitors".to_owned(), "pageviews".to_owned()];
            let dims: Vec<String> = dims.iter().map(|d| (*d).to_owned()).collect();
            Query::new("s".into(), Tz::UTC, (to - DAY, to), &metrics, &dims, vec![], &[], (0, 0), false).unwrap()
        };
        let today = now - now.rem_euclid(DAY);
        let countries = query(now - 5, &["visit:country"]);
        assert_eq!(countries.day_visits_from(None, i64::MIN, now), Some(today), "24h, resolved a moment ago");
        let totals = query(now - 5, &[]);
        assert_eq!(totals.day_visits_from(None, i64::MIN, now), Some(now - 5 - DAY), "totals from within a day");
        assert_eq!(query(now - 2 * ENDED_MS, &[]).day_visits_from(None, i64::MIN, now), None, "ended two minutes ago");
        assert_eq!(query(today, &[]).day_visits_from(None, i64::MIN, now), Some(today - DAY), "yesterday, whole");
    }

    #[test]
    fn a_part_of_the_period_tests_only_the_bounds_of_its_buckets() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        // March 2026 in Paris: the 29th is 23 hours long, so its days are unevenly spaced.
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let (from, to) = period_range(paris, "custom", "2026-03-01,2026-03-31", now).unwrap();
        let days = Buckets::new(paris, Interval::Day, from, to).unwrap();
        assert_eq!(days.case("ts", days.span(30)), "CAST(30 AS BIGINT)");
        let start = |i: usize| days.span(i).0;
        assert_eq!(
            days.case("ts", (start(27) + 5, to)),
            format!(
                "CAST(CASE WHEN ts < {} THEN 27 WHEN ts < {} THEN 28 WHEN ts < {} THEN 29 ELSE 30 END AS BIGINT)",
                start(28),
                start(29),
                start(30)
            )
        );
        let whole = days.case("ts", (from, to));
        assert_eq!(whole.matches("WHEN").count(), 30);
        assert!(whole.ends_with("ELSE 30 END AS BIGINT)"));
    }

    #[test]
    fn evenly_spaced_buckets_are_indexed_by_arithmetic() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let (from, to) = period_range(Tz::UTC, "30d", "2026-11-26", now).unwrap();
        let days = Buckets::new(Tz::UTC, Interval::Day, from, to).unwrap();
        let second = days.span(1).0;
        assert_eq!(
            days.case("ts", (from, to)),
            format!("CAST(CASE WHEN ts < {second} THEN 0 ELSE 1 + (ts - {second}) / 86400000 END AS BIGINT)")
        );
        // Hours are an hour apart in Paris across its DST change too, from the first whole one.
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let (from, _) = period_range(paris, "day", "2026-03-29", now).unwrap();
        let (from, to) = (from + 1_800_000, from + 30 * 3_600_000);
        let hours = Buckets::new(paris, Interval::Hour, from, to).unwrap();
        let whole = hours.span(1).0;
        assert_eq!(whole, from + 1_800_000);
        assert_eq!(
            hours.case("ts", (from, to)),
            format!("CAST(CASE WHEN ts < {whole} THEN 0 ELSE 1 + (ts - {whole}) / 3600000 END AS BIGINT)")
        );
    }

    /// A query of `dims` filtered by `filters` (operator, dimension, value), for its rollup shape.
    fn shaped(metrics: &[&str], dims: &[&str], filters: &[(&str, &str, &str)]) -> Query {
        let filters = filters.iter().map(|(op, dim, v)| Filter::new(op, dim, vec![(*v).to_owned()]).unwrap()).collect();
        let metrics: Vec<String> = metrics.iter().map(|m| (*m).to_owned()).collect();
        let dims: Vec<String> = dims.iter().map(|d| (*d).to_owned()).collect();
        Query::new("s".into(), Tz::UTC, (0, DAY), &metrics, &dims, filters, &[], (0, 0), false).unwrap()
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn two_dimensions_or_one_filtered_by_another_read_the_pairs_rows() {
        let pair = Rolled::Pair(Pair(Dim::Page, Dim::Source));
        let both = shaped(&["visitors"], &["visit:source", "event:page"], &[]).rollup_rows().unwrap();
        assert_eq!((both.rolled, both.pick, both.places), (vec![pair.clone()], vec![], vec![1, 0]));
        let filtered =
            shaped(&["visitors"], &["event:page"], &[("is", "visit:source", "Google")]).rollup_rows().unwrap();
        assert_eq!(
            (filtered.rolled, filtered.pick, filtered.places),
            (vec![pair.clone()], vec![(1, "Google".into())], vec![0])
        );
        let twice = shaped(&["visitors"], &[], &[("is", "visit:source", "Google"), ("is", "event:page", "/")]);
        let twice = twice.rollup_rows().unwrap();
        assert_eq!(
            (twice.rolled, twice.pick, twice.places),
            (vec![pair], vec![(1, "Google".into()), (0, "/".into())], vec![])
        );
        assert_eq!(Pair::parse(&Pair(Dim::Page, Dim::Source).name()).unwrap(), Pair(Dim::Page, Dim::Source));
    }

    #[test]
    fn a_dimension_filtered_by_one_of_its_values_reads_that_values_row() {
        let own = shaped(&["visitors"], &["event:page"], &[("is", "event:page", "/")]).rollup_rows().unwrap();
        assert_eq!((own.rolled, own.pick, own.places), (vec![Rolled::One(Dim::Page)], vec![(0, "/".into())], vec![0]));
    }

    #[test]
    fn the_bounce_rate_of_visits_entering_on_the_page_filtered_by_reads_the_pair_of_page_and_entry_page() {
        let pair = Rolled::Pair(Pair(Dim::Page, Dim::EntryPage));
        let metrics = ["visitors", "bounce_rate"];
        let entering = |filter| shaped(&metrics, &["time:day"], &[filter]).entry_page_query().unwrap();
        let by_page = entering(("is", "event:page", "/pricing")).rollup_rows().unwrap();
        assert_eq!((by_page.rolled, by_page.pick), (vec![pair], vec![(0, "/pricing".into()), (1, "/pricing".into())]));
        // A pattern may pick the empty entry page of a visit without a pageview, which the
        // query then leaves out: raw events answer.
        let pattern = entering(("contains", "event:page", "pricing"));
        assert!(pattern.filters.iter().any(|f| f.op == Op::IsNot && f.values == [""]));
        assert!(pattern.rollup_rows().is_none());
    }

    #[test]
    fn goals_by_another_dimension_read_each_goals_rows_by_it() {
        let goal = |name: &str| Goal {
            id: name.into(),
            website_id: "s".into(),
            display_name: name.into(),
            target: GoalTarget::Event(name.into()),
            currency: None,
            created_at: 0,
        };
        let goals = vec![goal("Signup"), goal("Buy")];
        let with_goals = |query: Query| Query { goals: goals.clone(), ..query };
        let by = |name: &str| Rolled::GoalBy(name.into(), Dim::Source);
        let filtered = with_goals(shaped(&["visitors"], &["event:goal"], &[("is", "visit:source", "Google")]));
        let rows = filtered.rollup_rows().unwrap();
        assert_eq!(
            (rows.rolled, rows.pick, rows.places),
            (vec![by("Signup"), by("Buy")], vec![(1, "Google".into())], vec![0])
        );
        let of_one = with_goals(shaped(&["visitors"], &["visit:source"], &[("is", "event:goal", "Buy")]));
        let rows = of_one.rollup_rows().unwrap();
        assert_eq!((rows.rolled, rows.pick, rows.places), (vec![by("Buy")], vec![], vec![1]));
        let both = with_goals(shaped(&["visitors"], &["visit:source", "event:goal"], &[])).rollup_rows().unwrap();
        assert_eq!((both.rolled, both.pick, both.places), (vec![by("Signup"), by("Buy")], vec![], vec![1, 0]));
        let filters = [("is", "visit:source", "Google"), ("is", "event:goal", "Buy")];
        let two_filters = with_goals(shaped(&["visitors"], &["time:day"], &filters)).rollup_rows().unwrap();
        assert_eq!(
            (two_filters.rolled, two_filters.pick, two_filters.places),
            (vec![by("Buy")], vec![(1, "Google".into())], vec![])
        );
        assert_eq!(by("Buy").pair(), Some(Pair(Dim::Goal, Dim::Source)));
        assert_eq!(by("Buy").values(&by("Buy").value(&["".into()])), Some(vec!["Buy".into(), String::new()]));
        assert_eq!(by("Buy").values(""), None, "the marker row");
        // Without goals nothing is grouped by one: raw events answer (nothing), never a pair.
        assert!(shaped(&["visitors"], &["event:goal"], &[("is", "visit:source", "Google")]).rollup_rows().is_none());
    }

    #[test]
    fn goals_filtered_by_one_read_its_rows_unless_another_goal_may_complete_its_events() {
        let goal = |target: GoalTarget| Goal {
            id: target.display_name(),
            website_id: "s".into(),
            display_name: target.display_name(),
            target,
            currency: None,
            created_at: 0,
        };
        let page = |path: &str| goal(GoalTarget::Page(path.into()));
        let signup = goal(GoalTarget::Event("Signup".into()));
        let filtered = |goals: &[Goal], name: &str| {
            let query = shaped(&["visitors", "events"], &["event:goal"], &[("is", "event:goal", name)]);
            Query { goals: goals.to_vec(), ..query }.rollup_rows()
        };
        let alone = filtered(&[signup.clone(), page("/pricing"), page("/docs")], "Visit /pricing").unwrap();
        let rolled = vec![Rolled::Goal("Visit /pricing".into())];
        assert_eq!((alone.rolled, alone.pick, alone.places), (rolled, vec![], vec![0]));
        assert!(filtered(&[signup.clone(), page("/blog/*")], "Signup").is_some(), "a custom event's goal");
        let pages = [signup.clone(), page("/blog/*"), page("/blog/a")];
        assert!(filtered(&pages, "Visit /blog/a").is_none(), "overlapping pages");
        assert!(filtered(&[signup], "Buy").is_none(), "no such goal");
    }

    #[test]
    fn a_read_keeps_the_values_picked_by_their_text_in_the_rows_value() {
        let pair = Rolled::Pair(Pair(Dim::Page, Dim::Source));
        let (page, source) = ("/a\",b", "Goo\"gle");
        let row = pair.value(&[page.into(), source.into()]);
        let kept = |pick: &[(usize, &str)]| {
            let pick: Vec<(usize, String)> = pick.iter().map(|(at, v)| (*at, (*v).to_owned())).collect();
            match pair.picked(&pick).unwrap() {
                ValueIs::Exactly(text) => row == text,
                ValueIs::StartsWith(text) => row.starts_with(&text),
                ValueIs::EndsWith(text) => row.ends_with(&text),
            }
        };
        assert!(kept(&[(0, page)]) && kept(&[(1, source)]) && kept(&[(1, source), (0, page)]));
        assert!(!kept(&[(0, "/a")]) && !kept(&[(1, "gle")]) && !kept(&[(0, source)]));
        let by = Rolled::GoalBy("Signup".into(), Dim::Source);
        assert_eq!(by.picked(&[(1, "Google".into())]), Some(ValueIs::Exactly(r#"["Google"]"#.into())));
        assert_eq!(Rolled::One(Dim::Page).picked(&[(0, "/".into())]), Some(ValueIs::Exactly("/".into())));
        assert_eq!(pair.picked(&[]), None);
    }

    #[test]
    fn rollups_answer_no_hours_by_dimension_no_revenue_and_no_other_filter() {
        assert!(shaped(&["visitors"], &["time:hour", "visit:source", "event:page"], &[]).rollup_rows().is_none());
        assert!(
            shaped(&["visitors"], &["event:page"], &[("is_not", "visit:source", "Google")]).rollup_rows().is_none()
        );
        let contains = [("contains", "event:page", "/"), ("is", "visit:source", "Google")];
        assert!(shaped(&["visitors"], &[], &contains).rollup_rows().is_none());
        assert!(shaped(&["visitors"], &["event:page", "visit:source", "visit:os"], &[]).rollup_rows().is_none());
        let goal = Goal {
            id: "g".into(),
            website_id: "s".into(),
            display_name: "Signup".into(),
            target: GoalTarget::Event("Signup".into()),
            currency: Some("EUR".into()),
            created_at: 0,
        };
        let by_goal = |metrics: &[&str]| Query { goals: vec![goal.clone()], ..shaped(metrics, &["event:goal"], &[]) };
        assert_eq!(by_goal(&["visitors"]).rollup_rows().unwrap().rolled, vec![Rolled::Goal("Signup".into())]);
        assert!(by_goal(&["total_revenue"]).rollup_rows().is_none());
        let unpriced = Goal { currency: None, ..goal.clone() };
        let without_revenue = Query { goals: vec![unpriced], ..shaped(&["total_revenue"], &["event:goal"], &[]) };
        assert!(without_revenue.rollup_rows().is_some(), "no revenue goal: no revenue to count");
    }

    #[test]
    fn filters_escape_their_values() {
        let filter = Filter::new("contains", "event:page", vec!["50%_off".into()]).unwrap();
        let mut sql = Sql::default();
        assert_eq!(sql.condition("e.pathname", &filter, Dialect::Postgres), "(e.pathname ILIKE $1 ESCAPE '\\')");
        assert!(matches!(&sql.binds[0], Bind::Text(p) if p == "%50\\%\\_off%"));
        // Ignoring case on SQLite, in every alphabet: a regular expression of the value as it is.
        let mut sql = Sql::default();
        assert_eq!(sql.condition("e.pathname", &filter, Dialect::Sqlite), "(e.pathname REGEXP $1)");
        assert!(matches!(&sql.binds[0], Bind::Text(p) if p == "(?i)50%_off"));
        let filter = Filter::new("matches", "event:page", vec!["/blog/*".into()]).unwrap();
        let mut sql = Sql::default();
        sql.condition("e.pathname", &filter, Dialect::Postgres);
        assert!(matches!(&sql.binds[0], Bind::Text(p) if p == "/blog/%"));
        // Respecting case, as Plausible does: text found, or SQLite's GLOB.
        let exact = |op: &str, value: &str| Filter {
            matching: Matching::Exact,
            ..Filter::new(op, "event:page", vec![value.into()]).unwrap()
        };
        let mut sql = Sql::default();
        assert_eq!(
            sql.condition("e.pathname", &exact("contains", "50%"), Dialect::Postgres),
            "(strpos(e.pathname, $1) > 0)"
        );
        assert_eq!(
            sql.condition("e.pathname", &exact("matches_not", "/b?[*"), Dialect::Sqlite),
            "NOT (e.pathname GLOB $2)"
        );
        assert!(matches!(&sql.binds[1], Bind::Text(p) if p == "/b[?][[]*"));
        assert!(Filter::new("is", "time:day", vec!["x".into()]).is_err());
        assert!(Filter::new("like", "event:page", vec!["x".into()]).is_err());
    }
}

//! Rollups: what they hold, how closed days are rolled up, and how a query reads them.
//!
//! A visitor hash is salted per UTC day, so no visitor and no visit spans two UTC days. Every
//! counter of a UTC day therefore adds up across days exactly, distinct visitors included, and
//! so do the counters of parts of different UTC days. A closed UTC day is rolled up whole (per
//! rolled-up dimension), and cut into pieces at the site's local midnights (per dimension) and
//! local hours (totals): a local day, an hour or a period's first and last local days are then
//! made of at most one piece of each UTC day. A query reads, for each UTC day of its period, the
//! whole day where it lies in one time bucket, else the pieces each bucket needs, and computes
//! the rest (today but its closed hours, see [`Analytics::roll_up_open_days`]; days written to
//! since their rollup; pieces not cut in the site's present zone) from raw events, then adds
//! everything. Every row is the query engine's own answer for
//! its day or piece, so both paths share one definition of every metric.
//!
//! Besides the totals and the rolled-up dimensions, a site's days keep the pairs of dimensions
//! its queries asked for and its goals (see [`Rolled`]). Those can come after a day was rolled
//! up, so each has marker rows that say which days and pieces hold it: a query reads the
//! markers of its period first, plans, then reads only the rows it needs, with the marker rows
//! of what it planned: a day or piece whose rows went in between is not read as zero (raw
//! events answer the query then).

use std::collections::{BTreeSet, HashMap};

use chrono_tz::Tz;
use common::{Error, Result};

use crate::query::{Buckets, Dim, Filter, Interval, Metric, Pair, Parts, Query, ROLLUP_DIMS, Rolled, ValueIs};
use crate::service::Analytics;
use crate::store::{
    COUNTERS_PER_ROW, DAY_MS, DayRollup, MAX_PAIRS, OpenRollup, OpenWrite, ReadFrom, ReadRow, RollupPiece, RollupReads,
    RollupRow, VISIT_GAP_MS, day_of,
};
use crate::writer::{LATE_MS, open_day};

/// How long a process may take to roll up one day before others may take it over: far more
/// than a day of 10M events takes.
const CLAIM: std::time::Duration = std::time::Duration::from_secs(300);

/// How long after its end a part of today is rolled up: an event committed more than [`LATE_MS`]
/// after its instant bumps the day's version (see `writer.rs`); the rest covers clocks that
/// differ between replicas.
const OPEN_DELAY_MS: i64 = 2 * LATE_MS;

/// The pairs of these names, those this release keeps (a later one may record others).
fn parsed_pairs(names: &[String]) -> Vec<Pair> {
    let parsed = |name: &String| Pair::parse(name).inspect_err(|e| tracing::debug!("pair {name} left: {e}")).ok();
    names.iter().filter_map(parsed).collect()
}

/// The most passes over a day's events a site's pairs cost its rollups: twice the pairs a site
/// records, so that beside as many pairs of two dimensions the goal pairs of a site with a few
/// goals fit (README, "One large site", measured what they cost).
const PAIR_PASSES: usize = 2 * MAX_PAIRS as usize;

/// What a site's pairs keep, within [`PAIR_PASSES`]: a pair of two dimensions costs one pass, a
/// pair of `event:goal` and a dimension one per goal (each goal's rows by the dimension,
/// [`Rolled::GoalBy`]). Pairs of two dimensions come first; a goal pair past the budget is not
/// kept, and its queries read raw events.
fn pair_kinds(pairs: &[Pair], goals: &[String]) -> Vec<Rolled> {
    let (by_goal, plain): (Vec<&Pair>, Vec<&Pair>) = pairs.iter().partition(|p| p.goal_by().is_some());
    let mut kinds: Vec<Rolled> = plain.into_iter().map(|p| Rolled::Pair(p.clone())).collect();
    for dim in by_goal.iter().filter_map(|p| p.goal_by()) {
        if kinds.len() + goals.len() > PAIR_PASSES {
            break;
        }
        kinds.extend(goals.iter().map(|name| Rolled::GoalBy(name.clone(), dim.clone())));
    }
    kinds
}

/// Adds `counters` into the row of `key`, so that parts computed separately merge.
pub(crate) fn add(rows: &mut HashMap<Vec<String>, Vec<i64>>, key: Vec<String>, counters: &[i64]) {
    let row = rows.entry(key).or_insert_with(|| vec![0; counters.len()]);
    for (total, n) in row.iter_mut().zip(counters) {
        *total += n;
    }
}

/// Whether `rows` hold, for each of `markers`, the marker rows of all `read` days and pieces.
fn all_read(markers: &[String], read: usize, rows: &[ReadRow]) -> bool {
    markers.iter().all(|marker| {
        let marked = rows.iter().filter(|r| r.row.dim == *marker && r.row.value.is_empty());
        marked.map(|r| r.rows).sum::<i64>() == read as i64
    })
}

/// Appends `[from, to)` to ranges in time order, joined to the last one when they touch.
fn push_range(ranges: &mut Vec<(i64, i64)>, (from, to): (i64, i64)) {
    match ranges.last_mut() {
        Some(last) if last.1 == from => last.1 = to,
        _ => ranges.push((from, to)),
    }
}

/// Adds the totals of local hours to the pieces cut at local midnights, but an hour that is also
/// such a piece: it has the same totals.
fn add_hours(pieces: &mut Vec<RollupPiece>, hours: Vec<RollupPiece>) {
    let cut: BTreeSet<(i64, i64, String)> = pieces.iter().map(|p| (p.start, p.end, p.row.dim.clone())).collect();
    pieces.extend(hours.into_iter().filter(|p| !cut.contains(&(p.start, p.end, p.row.dim.clone()))));
}

/// A site written to today, as [`Analytics::roll_up_open_days`] found it.
#[derive(Clone, Copy)]
struct OpenSite<'a> {
    website_id: &'a str,
    day: i64,
    /// The day's version.
    version: i64,
    /// What was rolled up of it, when read.
    recorded: Option<OpenRollup>,
}

/// Where each part of a query's period is read from.
#[derive(Default)]
struct Plan {
    /// UTC days read whole from `rollups`.
    days: BTreeSet<i64>,
    /// Pieces read from `rollup_pieces`, by bounds.
    pieces: BTreeSet<(i64, i64)>,
    /// Ranges read from raw events.
    raw: Vec<(i64, i64)>,
}

impl Plan {
    /// For each UTC day of the period (with its ranges, see [`day_ranges`]): the whole day when
    /// it is rolled up and lies in one time bucket; else the piece of each bucket where one was
    /// cut with exactly those bounds (of a rolled-up day, or of today's closed part), raw events
    /// where not.
    fn new(day_ranges: &[(i64, Vec<(i64, i64)>)], days: &BTreeSet<i64>, pieces: &BTreeSet<(i64, i64)>) -> Plan {
        let mut plan = Plan::default();
        for (day, ranges) in day_ranges {
            if days.contains(day) && *ranges == [(*day, day + DAY_MS)] {
                plan.days.insert(*day);
            } else {
                for range in ranges {
                    if pieces.contains(range) {
                        plan.pieces.insert(*range);
                    } else {
                        push_range(&mut plan.raw, *range);
                    }
                }
            }
        }
        plan
    }
}

/// Each UTC day of a query's period with the ranges its buckets cut of it (its part of the
/// period when none): what a [`Plan`] reads from a day's rows, its pieces or raw events.
fn day_ranges(query: &Query, buckets: Option<&Buckets>) -> Vec<(i64, Vec<(i64, i64)>)> {
    let mut days = Vec::new();
    let mut day = day_of(query.from);
    while day < query.to {
        let part = (day.max(query.from), (day + DAY_MS).min(query.to));
        days.push((day, buckets.map_or_else(|| vec![part], |b| b.cut(part.0, part.1))));
        day += DAY_MS;
    }
    days
}

impl Analytics {
    /// Rolls up every closed UTC day (before the day of `now`) written to since its last rollup;
    /// returns how many days were rolled up.
    pub async fn roll_up(&self, now: i64) -> Result<usize> {
        let mut done = 0;
        for (website_id, day, version) in self.store.pending_days(day_of(now)).await? {
            // Another process rolling up (a replica, an import beside the server) takes other days.
            let until = common::time::now_ms() + CLAIM.as_millis() as i64;
            if !self.store.claim_day(&website_id, day, version, until).await? {
                continue;
            }
            // A site deleted meanwhile takes its pending days with it.
            let Some(website) = self.store.website(&website_id).await? else { continue };
            let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
            let kept = self.kept(&website_id).await?;
            // Statistics only speed the rollup up: without them it is still right.
            if let Err(e) = self.store.analyze_day_once(day).await {
                tracing::warn!(error = %e, "could not analyze a day's partitions before its rollup");
            }
            let rollup = self.day_rollup(&website_id, tz, day, &kept).await?;
            if self.store.write_rollup(&website_id, day, version, &rollup).await? {
                done += 1;
            }
        }
        self.roll_up_new_kinds().await?;
        // Only a speed-up: queries read today raw without it.
        if let Err(e) = self.roll_up_open_days(now).await {
            tracing::warn!(error = %e, "could not roll up today's closed part");
        }
        Ok(done)
    }

    /// Rolls up, for each site written to today, the part of the day that no more event can
    /// enter: the site's local hours that ended [`OPEN_DELAY_MS`] ago (totals), and, once no
    /// visit of it can go on, the part before the site's local midnight (every kind of row).
    /// Queries then read today's closed hours as they read a closed day's (see migration 0017).
    async fn roll_up_open_days(&self, now: i64) -> Result<()> {
        let day = day_of(now);
        // In a day's last minutes every write bumps its version (see `writer::open_day`): the
        // work would be lost.
        if !open_day(day, now) {
            return Ok(());
        }
        for (website_id, version, recorded) in self.store.open_days(day).await? {
            let site = OpenSite { website_id: &website_id, day, version, recorded };
            if let Err(e) = self.roll_up_open_day(&site, now).await {
                tracing::warn!(error = %e, "could not roll up a site's closed part of today");
            }
        }
        Ok(())
    }

    /// [`Analytics::roll_up_open_days`] for one site.
    async fn roll_up_open_day(&self, site: &OpenSite<'_>, now: i64) -> Result<()> {
        let OpenSite { website_id, day, version, recorded } = *site;
        let Some(website) = self.store.website(website_id).await? else { return Ok(()) };
        let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
        let hours = Buckets::new(tz, Interval::Hour, day, day + DAY_MS)?;
        let events_until = hours.bound_before(now - OPEN_DELAY_MS);
        let current = recorded.filter(|r| r.version == version);
        if current.is_some_and(|r| r.visits_until == events_until) {
            return Ok(());
        }
        // Pieces of an earlier version are all computed again.
        let from = current.map_or(day, |r| r.visits_until);
        // A visit that may still go on changes the pieces it overlaps; one that began before
        // `from` could not, or the version would have changed.
        let open_visit = self.store.first_open_visit(website_id, from, now - VISIT_GAP_MS - OPEN_DELAY_MS).await?;
        let visits_until = hours.bound_before(open_visit.map_or(events_until, |start| start.min(events_until)));
        let rolled = OpenRollup { version, events_until, visits_until };
        if recorded == Some(rolled) || events_until <= from {
            return Ok(());
        }
        let mut pieces =
            self.piece_rows(website_id, tz, (from, events_until), Some(Interval::Hour), &Rolled::Totals).await?;
        let midnights = Buckets::new(tz, Interval::Day, day, day + DAY_MS)?;
        let midnight = midnights.span(0).1;
        if midnights.len() > 1 && from < midnight && midnight <= visits_until {
            let kinds = std::iter::once(Rolled::Totals)
                .chain(ROLLUP_DIMS.into_iter().map(Rolled::One))
                .chain(self.kept(website_id).await?);
            let mut before = Vec::new();
            for rolled in kinds {
                before.extend(self.piece_rows(website_id, tz, (day, midnight), Some(Interval::Day), &rolled).await?);
            }
            add_hours(&mut before, pieces);
            pieces = before;
        }
        let write = OpenWrite { day, recorded, rolled, from, pieces };
        self.store.write_open_rollup(website_id, &write).await?;
        Ok(())
    }

    /// The kinds of rows a site's days keep besides the totals and the rolled-up dimensions:
    /// the pairs its queries asked for and its goals.
    async fn kept(&self, website_id: &str) -> Result<Vec<Rolled>> {
        let goals: Vec<String> = self.store.goals(website_id).await?.into_iter().map(|g| g.display_name).collect();
        let mut kept = pair_kinds(&parsed_pairs(&self.store.pairs(website_id).await?), &goals);
        kept.extend(goals.into_iter().map(Rolled::Goal));
        Ok(kept)
    }

    /// Rolls up every closed UTC day, and waits for those another process claimed (see
    /// [`Analytics::roll_up`]): on return, every day before the day of `now` is rolled up,
    /// as an import command promises. Returns how many days this process rolled up.
    pub async fn roll_up_closed(&self, now: i64) -> Result<usize> {
        let mut done = self.roll_up(now).await?;
        while self.store.pending_before(day_of(now)).await? {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            done += self.roll_up(now).await?;
        }
        Ok(done)
    }

    /// Adds the rows of a pair asked for, or of a goal made, since its site's days were rolled
    /// up to each of those days that is still current; a day written to meanwhile gets them
    /// with its next rollup.
    async fn roll_up_new_kinds(&self) -> Result<()> {
        let mut goals: HashMap<String, Vec<String>> = HashMap::new();
        for goal in self.store.all_goals().await? {
            goals.entry(goal.website_id).or_default().push(goal.display_name);
        }
        let mut pairs: HashMap<String, Vec<String>> = HashMap::new();
        for (website_id, name) in self.store.all_pairs().await? {
            pairs.entry(website_id).or_default().push(name);
        }
        let mut kinds = Vec::new();
        for (website_id, names) in pairs {
            let kept = pair_kinds(&parsed_pairs(&names), goals.get(&website_id).map_or(&[], Vec::as_slice));
            kinds.extend(kept.into_iter().map(|rolled| (website_id.clone(), rolled)));
        }
        for (website_id, names) in goals {
            kinds.extend(names.into_iter().map(|name| (website_id.clone(), Rolled::Goal(name))));
        }
        for (website_id, rolled) in kinds {
            let name = rolled.name();
            let days = self.store.days_without(&website_id, &name).await?;
            if days.is_empty() {
                continue;
            }
            let Some(website) = self.store.website(&website_id).await? else { continue };
            let tz: Tz = website.timezone.parse().map_err(Error::internal)?;
            for day in days {
                let mut rollup = DayRollup::default();
                self.roll_up_rows(&website_id, tz, day, &rolled, &mut rollup).await?;
                self.store.add_rows(&website_id, day, &name, &rollup).await?;
            }
        }
        Ok(())
    }

    /// Answers from rollups the pairs a site asks for from now on: records that its queries
    /// need `pair`, which the next rollup then computes for every rolled-up day. A site keeps
    /// at most [`crate::store::MAX_PAIRS`] of them.
    async fn want_pair(&self, website_id: &str, pair: &Pair) -> Result<()> {
        let key = (website_id.to_owned(), pair.name());
        if self.pairs.lock().expect("pairs lock poisoned").contains(&key) {
            return Ok(());
        }
        self.store.want_pair(website_id, pair).await?;
        self.pairs.lock().expect("pairs lock poisoned").insert(key);
        Ok(())
    }

    /// A site's time zone changed: its days are cut into pieces again at the next rollup, and
    /// read from raw events where a query needs a piece meanwhile.
    pub(crate) async fn zone_changed(&self, website_id: &str) -> Result<()> {
        self.store.pend_rolled_days(website_id).await
    }

    /// The rows of one UTC day: totals, every rolled-up dimension's values and those of the
    /// site's pairs and goals (`kept`), of the whole day and of its pieces between the site's
    /// local midnights; and the totals of its pieces between the site's local hours.
    async fn day_rollup(&self, website_id: &str, tz: Tz, day: i64, kept: &[Rolled]) -> Result<DayRollup> {
        let rolled =
            std::iter::once(Rolled::Totals).chain(ROLLUP_DIMS.into_iter().map(Rolled::One)).chain(kept.iter().cloned());
        let mut rollup = DayRollup::default();
        for rolled in rolled {
            self.roll_up_rows(website_id, tz, day, &rolled, &mut rollup).await?;
        }
        let hours = self.piece_rows(website_id, tz, (day, day + DAY_MS), Some(Interval::Hour), &Rolled::Totals).await?;
        add_hours(&mut rollup.pieces, hours);
        Ok(rollup)
    }

    /// Adds one kind of rows of UTC day `day` to `rollup`: the whole day's, and, when the
    /// site's zone cuts the day at a local midnight, its pieces'.
    async fn roll_up_rows(
        &self,
        website_id: &str,
        tz: Tz,
        day: i64,
        rolled: &Rolled,
        rollup: &mut DayRollup,
    ) -> Result<()> {
        let rows = self.piece_rows(website_id, Tz::UTC, (day, day + DAY_MS), None, rolled).await?;
        rollup.rows.extend(rows.into_iter().map(|piece| piece.row));
        // A day the site's zone does not cut at midnight is one piece, the whole day.
        if Buckets::new(tz, Interval::Day, day, day + DAY_MS)?.len() > 1 {
            let pieces = self.piece_rows(website_id, tz, (day, day + DAY_MS), Some(Interval::Day), rolled).await?;
            rollup.pieces.extend(pieces);
        }
        Ok(())
    }

    /// One kind of rows of `[from, to)`, part of one UTC day, in zone `tz`, per time bucket of
    /// `interval` (None: the whole range). The totals, and a pair's marker (a row of no values,
    /// which says the pair was rolled up), have a row for every bucket, events or not.
    async fn piece_rows(
        &self,
        website_id: &str,
        tz: Tz,
        (from, to): (i64, i64),
        interval: Option<Interval>,
        rolled: &Rolled,
    ) -> Result<Vec<RollupPiece>> {
        let metrics: Vec<String> = Metric::ALL.iter().map(|m| m.name().to_owned()).collect();
        let dims: Vec<String> = interval.map(Dim::Time).into_iter().chain(rolled.dims()).map(|d| d.name()).collect();
        let (filters, goals) = match rolled {
            Rolled::Goal(name) | Rolled::GoalBy(name, _) => {
                (vec![Filter::new("is", &Dim::Goal.name(), vec![name.clone()])?], self.store.goals(website_id).await?)
            }
            _ => (vec![], vec![]),
        };
        let query = Query::new(website_id.to_owned(), tz, (from, to), &metrics, &dims, filters, &[], (0, 0), false)?;
        let query = Query { goals, ..query };
        let buckets = query.buckets()?;
        // A rollup marked current must hold every event of its day: read what was written.
        let parts = self.read_events(&query, buckets.as_ref(), ReadFrom::Primary).await?;
        let bucket_key = |i: usize| buckets.as_ref().map(|_| i.to_string());
        let mut counters: HashMap<Vec<String>, [i64; COUNTERS_PER_ROW]> = HashMap::new();
        let marked = !rolled.marker().is_empty() || *rolled == Rolled::Totals;
        for i in 0..buckets.as_ref().map_or(1, Buckets::len) {
            if marked {
                counters.insert(bucket_key(i).into_iter().collect(), [0; COUNTERS_PER_ROW]);
            }
        }
        // Each part's counters at their place in a rollup row (see `RollupRow`).
        for (rows, at, width) in [(parts.events, 0, 3), (parts.visits, 3, 4), (parts.engagement, 7, 4)] {
            for (key, c) in rows {
                let row = counters.entry(key).or_insert([0; COUNTERS_PER_ROW]);
                for (total, n) in row[at..at + width].iter_mut().zip(&c) {
                    *total += n;
                }
            }
        }
        let name = rolled.name();
        Ok(counters
            .into_iter()
            .map(|(key, counters)| {
                let bucketed = usize::from(buckets.is_some());
                let (start, end) = match &buckets {
                    Some(b) => b.span(key.first().and_then(|i| i.parse().ok()).unwrap_or_default()),
                    None => (from, to),
                };
                let values = &key[bucketed..];
                // The totals' row and a pair's marker have no values; a pair's value is never empty.
                let value = if values.is_empty() { String::new() } else { rolled.value(values) };
                RollupPiece { start, end, row: RollupRow { dim: name.clone(), value, counters } }
            })
            .collect())
    }

    /// Both parts of a query from the rolled-up days and pieces of its period plus raw events
    /// for the rest, and how many UTC days rollups served (in whole or in part); or None when
    /// rollups cannot answer it (see [`Query::rollup_rows`]) or nothing is rolled up.
    pub(crate) async fn read_rollups(
        &self,
        query: &Query,
        buckets: Option<&Buckets>,
    ) -> Result<Option<(Parts, usize)>> {
        let Some(shape) = query.rollup_rows() else { return Ok(None) };
        for pair in shape.rolled.iter().filter_map(Rolled::pair) {
            self.want_pair(&query.website_id, &pair).await?;
        }
        let (first, last) = (day_of(query.from), day_of(query.to - 1) + DAY_MS);
        let wanted: HashMap<String, &Rolled> = shape.rolled.iter().map(|r| (r.name(), r)).collect();
        // A day or piece has the rows once it has the marker of each kind read (see
        // `Rolled::marker`).
        let markers: BTreeSet<String> = shape.rolled.iter().map(Rolled::marker).collect();
        let listed: Vec<String> = markers.iter().cloned().collect();
        // Only the pieces a plan could read: a site keeps an hour's piece of every hour of
        // today and of its days, which a query by day or of a whole period does not read.
        let ranges = day_ranges(query, buckets);
        let bounds: Vec<(i64, i64)> = ranges.iter().flat_map(|(_, ranges)| ranges.iter().copied()).collect();
        let marks = self.store.rollup_marks(&query.website_id, &listed, (first, last), &bounds).await?;
        let complete = |found: &[(i64, i64)]| {
            let mut counts: HashMap<(i64, i64), usize> = HashMap::new();
            found.iter().for_each(|at| *counts.entry(*at).or_default() += 1);
            counts.into_iter().filter(|(_, n)| *n == markers.len()).map(|(at, _)| at).collect::<BTreeSet<_>>()
        };
        let days: Vec<(i64, i64)> = marks.days.iter().map(|(day, _)| (*day, 0)).collect();
        let rolled: BTreeSet<i64> = complete(&days).into_iter().map(|(day, _)| day).collect();
        let mut pieces: BTreeSet<(i64, i64, &str)> =
            marks.pieces.iter().map(|(s, e, dim)| (*s, *e, dim.as_str())).collect();
        // Today's closed pieces hold their events; a query of visits or engagement reads only
        // those that hold their visits whole too. The others are hours, which hold totals alone
        // (the part before midnight is rolled up only whole): only a query of totals reads them.
        // No later event of a visit changes an hour's totals, as it could a visit dimension's
        // rows (its exit page).
        let events_only = !query.needs_visits()
            && !query.needs_engagement()
            && shape.rolled.iter().all(|rolled| *rolled == Rolled::Totals);
        let open = marks.open.iter().filter(|(.., whole)| *whole || events_only);
        pieces.extend(open.map(|(s, e, dim, _)| (*s, *e, dim.as_str())));
        let pieces: Vec<(i64, i64)> = pieces.into_iter().map(|(s, e, _)| (s, e)).collect();
        let plan = Plan::new(&ranges, &rolled, &complete(&pieces));
        if plan.days.is_empty() && plan.pieces.is_empty() {
            return Ok(None);
        }
        let mut runs = Vec::new();
        plan.days.iter().for_each(|day| push_range(&mut runs, (*day, day + DAY_MS)));
        let names: Vec<String> = wanted.keys().cloned().collect();
        let pieces: Vec<(i64, i64)> = plan.pieces.iter().copied().collect();
        let picked: Vec<(String, ValueIs)> =
            shape.rolled.iter().filter_map(|r| Some((r.name(), r.picked(&shape.pick)?))).collect();
        let reads = RollupReads {
            dims: &names,
            markers: &listed,
            days: &runs,
            pieces: &pieces,
            values: &picked,
            summed: buckets.is_none(),
        };
        let rows = self.store.rollup_reads(&query.website_id, &reads).await?;
        // Markers and rows are read in two statements: a zone change (which drops pieces) or a
        // replica failing over to the primary in between could leave a planned piece without
        // rows, which would count as zero. Raw events answer then.
        if !all_read(&listed, plan.days.len() + plan.pieces.len(), &rows) {
            tracing::debug!("rollups changed while read; reading raw events");
            return Ok(None);
        }
        // The values of a row this query reads, in the rows' order.
        let values = |row: &RollupRow| -> Option<Vec<String>> {
            let values = wanted.get(&row.dim)?.values(&row.value)?;
            shape.pick.iter().all(|(at, value)| values.get(*at) == Some(value)).then_some(values)
        };
        let (mut events, mut visits, mut engagement) = (HashMap::new(), HashMap::new(), HashMap::new());
        for ReadRow { start, row, .. } in &rows {
            let start = *start;
            let Some(values) = values(row) else { continue };
            let mut places = shape.places.iter();
            let key: Vec<String> = query
                .dims
                .iter()
                .map(|d| match (d, buckets) {
                    (Dim::Time(_), Some(b)) => b.index_of(start).to_string(),
                    _ => places.next().and_then(|at| values.get(*at)).cloned().unwrap_or_default(),
                })
                .collect();
            let c = &row.counters;
            if query.needs_events() && c[2] > 0 {
                add(&mut events, key.clone(), &c[..3]);
            }
            if query.needs_visits() && c[3] > 0 {
                add(&mut visits, key.clone(), &c[3..7]);
            }
            if query.needs_engagement() && c[8] > 0 {
                add(&mut engagement, key, &c[7..]);
            }
        }
        for (from, to) in plan.raw {
            let raw = self.read_events(&query.with_range(from, to), buckets, ReadFrom::Replica).await?;
            raw.events.into_iter().for_each(|(key, c)| add(&mut events, key, &c));
            raw.visits.into_iter().for_each(|(key, c)| add(&mut visits, key, &c));
            raw.engagement.into_iter().for_each(|(key, c)| add(&mut engagement, key, &c));
        }
        let served: BTreeSet<i64> =
            plan.days.iter().copied().chain(plan.pieces.iter().map(|(s, _)| day_of(*s))).collect();
        let parts = Parts {
            events: events.into_iter().collect(),
            visits: visits.into_iter().collect(),
            engagement: engagement.into_iter().collect(),
            entries: vec![],
        };
        Ok(Some((parts, served.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(start: i64, dim: &str, value: &str, rows: i64) -> ReadRow {
        let row = RollupRow { dim: dim.into(), value: value.into(), counters: [1; COUNTERS_PER_ROW] };
        ReadRow { start, row, rows }
    }

    #[test]
    fn a_sites_pairs_keep_within_their_passes_goal_pairs_a_pass_per_goal_and_unknown_names_are_left() {
        let names = |dims: &[&str]| -> Vec<String> {
            dims.iter().map(|d| serde_json::to_string(&["event:goal", d]).unwrap()).collect()
        };
        let mut asked = names(&["visit:source", "visit:country", "event:page"]);
        asked.push(r#"["visit:source","event:page"]"#.into());
        asked.push(r#"["visit:source","a dimension of a later release"]"#.into());
        let pairs = parsed_pairs(&asked);
        assert_eq!(pairs.len(), 4, "the unknown name is left");
        let goals = |n: usize| -> Vec<String> { (0..n).map(|i| format!("goal {i}")).collect() };
        let count = |kinds: &[Rolled], goal_pairs: bool| {
            kinds.iter().filter(|k| matches!(k, Rolled::GoalBy(..)) == goal_pairs).count()
        };
        // Two goals: every pair, 1 + 3 × 2 passes.
        let kinds = pair_kinds(&pairs, &goals(2));
        assert_eq!((count(&kinds, false), count(&kinds, true)), (1, 6));
        // Twenty-five goals: the plain pair, then the goal pairs that fit in 64 passes (two).
        let kinds = pair_kinds(&pairs, &goals(25));
        assert_eq!((count(&kinds, false), count(&kinds, true)), (1, 50));
        // More goals than passes: no goal pair.
        assert_eq!(pair_kinds(&pairs, &goals(70)), vec![Rolled::Pair(pairs[3].clone())]);
    }

    #[test]
    fn a_day_or_piece_whose_rows_went_between_its_markers_and_its_rows_is_not_read() {
        let pair = r#"["visit:source","event:page"]"#;
        let markers = vec![String::new(), pair.to_owned()];
        let rows = vec![
            read(0, "", "", 1),
            read(0, pair, "", 1),
            read(0, "visit:source", "Google", 1),
            read(9, "", "", 1),
            read(9, pair, "", 1),
        ];
        assert!(all_read(&markers, 2, &rows));
        assert!(!all_read(&markers, 3, &rows), "a third day or piece planned lost its rows");
        let summed = vec![read(0, "", "", 3), read(0, pair, "", 2), read(0, "visit:source", "Google", 3)];
        assert!(!all_read(&markers, 3, &summed), "summed: one day or piece lost the pair's rows");
        assert!(all_read(&markers[..1], 3, &summed));
    }
}

//! Daily rollups: what they hold, how closed days are rolled up, and how a query reads them.
//!
//! A visitor hash is salted per UTC day, so no visitor and no visit spans two UTC days. Every
//! counter of a UTC day therefore adds up across days exactly, distinct visitors included. A
//! query reads the rolled-up days of its period from `rollups` and computes the rest (partial
//! days at the edges, today, days written to since their rollup) from raw events, then adds
//! both. The rollup of a day is the query engine's own answer for that day, so both paths share
//! one definition of every metric.

use std::collections::{BTreeSet, HashMap};

use chrono_tz::Tz;
use common::Result;

use crate::query::{Buckets, Dim, Metric, Parts, Query, ROLLUP_DIMS};
use crate::service::Analytics;
use crate::store::COUNTERS_PER_ROW;
use crate::store::{DAY_MS, ReadFrom, RollupRow, day_of};

/// Adds `counters` into the row of `key`, so that parts computed separately merge.
fn add(rows: &mut HashMap<Vec<String>, Vec<i64>>, key: Vec<String>, counters: &[i64]) {
    let row = rows.entry(key).or_insert_with(|| vec![0; counters.len()]);
    for (total, n) in row.iter_mut().zip(counters) {
        *total += n;
    }
}

impl Analytics {
    /// Rolls up every closed UTC day (before the day of `now`) written to since its last rollup;
    /// returns how many days were rolled up.
    pub async fn roll_up(&self, now: i64) -> Result<usize> {
        let mut done = 0;
        for (website_id, day, version) in self.store.pending_days(day_of(now)).await? {
            let rows = self.day_rows(&website_id, day).await?;
            if self.store.write_rollup(&website_id, day, version, &rows).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// The rows of one day: totals, and every rolled-up dimension's values.
    async fn day_rows(&self, website_id: &str, day: i64) -> Result<Vec<RollupRow>> {
        let metrics: Vec<String> = Metric::ALL.iter().map(|m| m.name().to_owned()).collect();
        let mut rows = Vec::new();
        for dim in std::iter::once(None).chain(ROLLUP_DIMS.into_iter().map(Some)) {
            let dims: Vec<String> = dim.as_ref().map(Dim::name).into_iter().collect();
            let query = Query::new(
                website_id.to_owned(),
                Tz::UTC,
                (day, day + DAY_MS),
                &metrics,
                &dims,
                vec![],
                &[],
                (0, 0),
                false,
            )?;
            // A rollup marked current must hold every event of its day: read what was written.
            let parts = self.read_events(&query, None, ReadFrom::Primary).await?;
            let mut counters: HashMap<Vec<String>, Vec<i64>> = HashMap::new();
            // Each part's counters at their place in a rollup row (see `RollupRow`).
            for (rows, at) in [(parts.events, 0), (parts.visits, 3), (parts.engagement, 7)] {
                for (key, c) in rows {
                    let mut row = [0; COUNTERS_PER_ROW];
                    row[at..at + c.len()].copy_from_slice(&c);
                    add(&mut counters, key, &row);
                }
            }
            for (key, c) in counters {
                let counters: [i64; COUNTERS_PER_ROW] = c.try_into().expect("rows of every counter");
                let value = key.into_iter().next().unwrap_or_default();
                rows.push(RollupRow { dim: dim.as_ref().map(Dim::name).unwrap_or_default(), value, counters });
            }
        }
        Ok(rows)
    }

    /// Both parts of a query from the rolled-up days of its period plus raw events for the rest,
    /// and how many days came from rollups; or None when rollups cannot answer it (filters, two dimensions, hours, nothing rolled up).
    pub(crate) async fn read_rollups(
        &self,
        query: &Query,
        buckets: Option<&Buckets>,
    ) -> Result<Option<(Parts, usize)>> {
        let Some(dim) = query.rollup_dim() else { return Ok(None) };
        let (first, last) = (day_of(query.from + DAY_MS - 1), day_of(query.to));
        if first >= last {
            return Ok(None);
        }
        let wanted = dim.as_ref().map(Dim::name).unwrap_or_default();
        let rows = self.store.rollup_rows(&query.website_id, &wanted, first, last).await?;
        let rolled: BTreeSet<i64> = rows.iter().filter(|(_, r)| r.dim.is_empty()).map(|(day, _)| *day).collect();
        // Each rolled-up day must fall in one time bucket: days of the site's zone that are not
        // UTC days are computed from raw events.
        let splits_a_day = |b: &Buckets| rolled.iter().any(|day| b.index_of(*day) != b.index_of(day + DAY_MS - 1));
        if rolled.is_empty() || buckets.is_some_and(splits_a_day) {
            return Ok(None);
        }
        let (mut events, mut visits, mut engagement) = (HashMap::new(), HashMap::new(), HashMap::new());
        for (day, row) in rows.iter().filter(|(_, r)| r.dim == wanted) {
            let key: Vec<String> = query
                .dims
                .iter()
                .map(|d| match (d, buckets) {
                    (Dim::Time(_), Some(b)) => b.index_of(*day).to_string(),
                    _ => row.value.clone(),
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
        let mut start = query.from;
        let mut segments = Vec::new();
        for day in &rolled {
            if *day > start {
                segments.push((start, *day));
            }
            start = day + DAY_MS;
        }
        if start < query.to {
            segments.push((start, query.to));
        }
        for (from, to) in segments {
            let raw = self.read_events(&query.with_range(from, to), buckets, ReadFrom::Replica).await?;
            raw.events.into_iter().for_each(|(key, c)| add(&mut events, key, &c));
            raw.visits.into_iter().for_each(|(key, c)| add(&mut visits, key, &c));
            raw.engagement.into_iter().for_each(|(key, c)| add(&mut engagement, key, &c));
        }
        let parts = Parts {
            events: events.into_iter().collect(),
            visits: visits.into_iter().collect(),
            engagement: engagement.into_iter().collect(),
            entries: vec![],
        };
        Ok(Some((parts, rolled.len())))
    }
}

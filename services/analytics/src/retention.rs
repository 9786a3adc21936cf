//! Event retention and PostgreSQL's day partitions of `events` and `visits`.
//!
//! On PostgreSQL `events` is partitioned by UTC day of `ts`, and `visits` by UTC day of
//! `start_ts`: the partitions of the coming days are made ahead of time, and past the retention
//! a day's partitions are dropped whole. On SQLite old events and visits are deleted. Either way
//! a day's raw events and visits go only once the day is rolled up, so the daily totals stay.

use std::num::NonZeroU32;

use chrono::DateTime;
use common::Result;

use crate::service::Analytics;
use crate::store::{DAY_MS, day_of};

/// Days of partitions made ahead of today: upkeep may stall this long before an event finds no
/// partition.
pub const DAYS_AHEAD: i64 = 14;

/// How long raw events are kept, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub NonZeroU32);

/// What one pass of retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Day partitions dropped, of events and of visits (PostgreSQL).
    pub partitions: u64,
    /// Rows deleted one by one (SQLite's events and visits; on PostgreSQL those stored before
    /// partitioning, or in a default partition).
    pub rows: u64,
}

/// The tables partitioned by UTC day on PostgreSQL: `events` by `ts` (migration 0010), `visits`
/// by `start_ts` (0012).
pub(crate) const PARTITIONED: [&str; 2] = ["events", "visits"];

/// The name of a table's partition of a day, from the day's first instant: `events_d20261201`.
pub fn partition_name(table: &str, day: i64) -> String {
    let date = DateTime::from_timestamp_millis(day).unwrap_or_default();
    format!("{table}_d{}", date.format("%Y%m%d"))
}

/// The first instant of the day a partition of `table` holds, from its name.
pub(crate) fn partition_day(table: &str, name: &str) -> Option<i64> {
    let digits = name.strip_prefix(table)?.strip_prefix("_d")?;
    let date = chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

impl Analytics {
    /// Makes the partitions of today and the coming days, of events and visits (PostgreSQL;
    /// nothing on SQLite).
    pub async fn make_partitions_ahead(&self, now: i64) -> Result<()> {
        let today = day_of(now);
        self.store.ensure_partitions(today, today + DAYS_AHEAD * DAY_MS).await
    }

    /// Removes raw events older than `retention` days before the day of `now`, and the visits
    /// that started then, unless a day among them is not rolled up yet (its totals would go too):
    /// then nothing is removed this time.
    pub async fn expire(&self, retention: Retention, now: i64) -> Result<Expired> {
        let horizon = day_of(now) - i64::from(retention.0.get()) * DAY_MS;
        if self.store.pending_before(horizon).await? {
            tracing::warn!(horizon, "events past retention wait for their days' rollups");
            return Ok(Expired::default());
        }
        self.store.expire_before(horizon).await
    }

    /// Rolls closed days up, keeps partitions ahead and expires old events, now and then, for
    /// as long as the service runs.
    pub fn spawn_upkeep(&self, every: std::time::Duration, retention: Option<Retention>) {
        let analytics = self.clone();
        tokio::spawn(async move {
            loop {
                let now = common::time::now_ms();
                if let Err(e) = analytics.make_partitions_ahead(now).await {
                    tracing::error!(error = %e, "could not make the coming days' event partitions");
                }
                if let Err(e) = analytics.roll_up(now).await {
                    tracing::warn!(error = %e, "rollup failed; queries read raw events meanwhile");
                }
                if let Some(retention) = retention {
                    match analytics.expire(retention, now).await {
                        Ok(expired) if expired != Expired::default() => {
                            tracing::info!(partitions = expired.partitions, rows = expired.rows, "expired old events")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "event retention failed; it is tried again later"),
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_their_utc_day() {
        let day = 1_764_547_200_000; // 2025-12-01T00:00:00Z
        assert_eq!(partition_name("events", day), "events_d20251201");
        assert_eq!(partition_name("visits", day), "visits_d20251201");
        assert_eq!(partition_day("events", "events_d20251201"), Some(day));
        assert_eq!(partition_day("visits", "visits_d20251201"), Some(day));
        assert_eq!(partition_day("events", "visits_d20251201"), None);
        assert_eq!(partition_day("events", "events_before_partitioning"), None);
        assert_eq!(partition_day("visits", "visits_default"), None);
    }
}

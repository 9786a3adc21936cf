//! The SQLite writer: one connection of its own, called synchronously on the writer's thread
//! with statements prepared once. Through `sqlx`, each statement was handed to a worker thread
//! and back and every value converted twice (`Any`, then SQLite), and a batch's multi-row SQL
//! was parsed anew whenever its size changed; the profile showed that work, not SQLite's, as
//! most of the write.

use std::path::Path;

use common::db::OpenError;
use common::{Error, Result};
use rusqlite::{Connection, params};

use super::{ENTERED_LATE, PENDING_STALE, Rows, VISIT_UPDATE, Visit};
use crate::store::{EVENT_COLUMNS, VISIT_COLUMNS};

pub struct Db(Connection);

impl Db {
    /// Opens the service's database file, which the store has already created and migrated.
    pub fn open(path: &Path) -> std::result::Result<Db, OpenError> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            // As every other connection (`common::db`), and: the writer touches the same pages
            // batch after batch, so it keeps 64 MiB of them, and copies the log back once per
            // 10,000 pages written rather than once per 1,000.
            let pragmas: [(&str, i64); 5] = [
                ("synchronous", 1), // NORMAL
                ("foreign_keys", 1),
                ("mmap_size", 268_435_456),
                ("cache_size", -65_536),
                ("wal_autocheckpoint", 10_000),
            ];
            conn.pragma_update(None, "journal_mode", "WAL")?;
            for (pragma, value) in pragmas {
                conn.pragma_update(None, pragma, value)?;
            }
            Ok(conn)
        };
        let conn = open().map_err(|e| OpenError::WriterDb { service: "analytics", source: e.into() })?;
        Ok(Db(conn))
    }

    /// Takes the write lock up front: a transaction that reads first cannot upgrade once another
    /// connection has written, and fails at once instead of waiting.
    pub fn begin(&self) -> Result<()> {
        if !self.0.is_autocommit() {
            // A transaction left open by a failure would fail this BEGIN, and every later one.
            self.rollback();
        }
        self.0.execute_batch("BEGIN IMMEDIATE").map_err(failed)
    }

    pub fn commit(&self) -> Result<()> {
        self.0.execute_batch("COMMIT").map_err(failed)
    }

    pub fn rollback(&self) {
        // Ignored: either nothing is left to roll back, or the next BEGIN finds out.
        drop(self.0.execute_batch("ROLLBACK"));
    }

    pub fn visits(&self, visitors: &[&str], since: i64) -> Result<Vec<Visit>> {
        let read = || -> rusqlite::Result<Vec<Visit>> {
            let mut select = self.0.prepare_cached(&format!(
                "SELECT {VISIT_COLUMNS} FROM visits WHERE visitor_id = ?1 AND alive_ts >= ?2"
            ))?;
            let mut visits = vec![];
            for visitor in visitors {
                for visit in
                    select.query_map(params![visitor, since], |row| Visit::from_row(|i| row.get(i), |i| row.get(i)))?
                {
                    visits.push(visit?);
                }
            }
            Ok(visits)
        };
        read().map_err(failed)
    }

    /// The batch's events, visits and pending roll-ups, in the caller's transaction.
    pub fn write(&self, rows: &Rows<'_>) -> Result<()> {
        let write = || -> rusqlite::Result<()> {
            self.insert_events(rows.events)?;
            self.upsert_visits(rows.visits)?;
            self.enter_late(rows.visits)?;
            self.mark_pending(rows)
        };
        write().map_err(failed)
    }

    fn enter_late(&self, visits: &[Visit]) -> rusqlite::Result<()> {
        let sql = ENTERED_LATE.replace('$', "?");
        for v in visits.iter().filter(|v| v.entered_late) {
            let mut update = self.0.prepare_cached(&sql)?;
            update.execute(params![v.attributes.entry_page, v.id, v.website_id, v.start_ts, v.alive_ts])?;
        }
        Ok(())
    }

    fn insert_events(&self, events: &[&crate::store::NewEvent]) -> rusqlite::Result<()> {
        let mut insert = self.0.prepare_cached(&format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
             ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)"
        ))?;
        for e in events {
            let v = &e.visit;
            insert.execute(params![
                e.id,
                e.website_id,
                e.ts,
                e.name,
                e.pathname,
                e.referrer_host,
                e.visitor_id,
                v.country,
                e.props,
                e.revenue_amount,
                e.revenue_currency,
                e.visit_id,
                v.entry_page,
                v.source,
                v.utm_source,
                v.utm_medium,
                v.utm_campaign,
                v.browser,
                v.os,
                v.device,
                e.hostname,
                v.referrer,
                v.channel,
                v.utm_content,
                v.utm_term,
                v.browser_version,
                v.os_version,
                e.scroll_depth,
                e.engagement_ms,
            ])?;
        }
        Ok(())
    }

    fn upsert_visits(&self, visits: &[Visit]) -> rusqlite::Result<()> {
        let mut upsert = self.0.prepare_cached(&format!(
            "INSERT INTO visits ({VISIT_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) ON CONFLICT (id) {VISIT_UPDATE}"
        ))?;
        for visit in visits {
            let a = &visit.attributes;
            upsert.execute(params![
                visit.id,
                visit.website_id,
                visit.visitor_id,
                visit.start_ts,
                visit.last_ts,
                visit.pageviews,
                visit.events,
                a.entry_page,
                visit.exit_page,
                a.source,
                a.utm_source,
                a.utm_medium,
                a.utm_campaign,
                a.country,
                a.browser,
                a.os,
                a.device,
                a.referrer,
                a.channel,
                a.utm_content,
                a.utm_term,
                a.browser_version,
                a.os_version,
                visit.alive_ts,
                visit.passive,
            ])?;
        }
        Ok(())
    }

    /// Marks the batch's days for the roll-up, and drops the rollups of the days it makes stale.
    fn mark_pending(&self, rows: &Rows<'_>) -> rusqlite::Result<()> {
        for (days, on_conflict) in [(&rows.open_days, rows.open_conflict()), (&rows.stale_days, PENDING_STALE)] {
            let mut pending = self.0.prepare_cached(&format!(
                "INSERT INTO rollup_pending (website_id, day, version) VALUES (?1, ?2, 1) {on_conflict}"
            ))?;
            for (website_id, day) in days {
                pending.execute(params![website_id, day])?;
            }
        }
        let mut stale = self.0.prepare_cached("DELETE FROM rollup_days WHERE website_id = ?1 AND day = ?2")?;
        for (website_id, day) in &rows.stale_days {
            stale.execute(params![website_id, day])?;
        }
        Ok(())
    }
}

/// A refusal that may pass (busy, locked, disk full) is worth a retry (503); anything else is a
/// fault.
fn failed(e: rusqlite::Error) -> Error {
    if e.sqlite_error().is_some_and(|sqlite| common::error::sqlite_transient(sqlite.extended_code)) {
        tracing::warn!(error = %e, "event database unavailable");
        return Error::unavailable("the database");
    }
    Error::internal(e)
}

//! The PostgreSQL writer: one connection of its own, and one statement per table, the same text
//! for every batch, that takes the whole batch as arrays (`UNNEST`). Each is prepared once per
//! connection; multi-row `VALUES` lists had a new text, so a new parse and plan, for every batch
//! size, and thousands of parameters each.

use std::str::FromStr;
use std::time::Duration;

use common::db::OpenError;
use common::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

use super::{ENTERED_LATE, PENDING_STALE, Rows, VISIT_UPDATE, Visit};
use crate::store::{EVENT_COLUMNS, VISIT_COLUMNS, day_of};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// As the gateway's call timeout: past it no sender waits for the batch any more, and a writer
/// stuck behind a lock would hold every later event back.
const STATEMENT_TIMEOUT: &str = "10s";

pub struct Db {
    options: PgConnectOptions,
    /// None until the first batch, and again after the connection failed.
    conn: Option<PgConnection>,
}

impl Db {
    pub fn open(url: &str) -> std::result::Result<Db, OpenError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| OpenError::Connect { service: "analytics", source })?
            .options([("search_path", "analytics"), ("statement_timeout", STATEMENT_TIMEOUT)]);
        Ok(Db { options, conn: None })
    }

    /// Runs `op` on the connection, connecting first if need be. A failure other than the
    /// database refusing a statement, or a refusal that may pass (the server shutting down, a
    /// timeout), drops the connection, so the next batch starts on a fresh one.
    async fn with<T>(
        &mut self,
        op: impl AsyncFnOnce(&mut PgConnection) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<T> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => {
                // As the shared pools' acquire timeout: an unreachable server is a 503 in
                // seconds, not a writer stuck on a TCP handshake.
                let connect = PgConnection::connect_with(&self.options);
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect).await.map_err(|_| {
                    tracing::warn!("connecting the event writer to the database timed out");
                    Error::unavailable("the database")
                })??;
                empty.insert(conn)
            }
        };
        let done = op(conn).await;
        if let Err(e) = &done
            && (e.as_database_error().is_none() || common::error::is_transient(e))
        {
            self.conn = None;
        }
        Ok(done?)
    }

    pub async fn begin(&mut self) -> Result<()> {
        self.with(async |conn| sqlx::raw_sql("BEGIN").execute(conn).await.map(drop)).await
    }

    pub async fn commit(&mut self) -> Result<()> {
        self.with(async |conn| sqlx::raw_sql("COMMIT").execute(conn).await.map(drop)).await
    }

    /// Never connects: without a connection there is no transaction left to roll back.
    pub async fn rollback(&mut self) {
        if let Some(conn) = &mut self.conn
            && sqlx::raw_sql("ROLLBACK").execute(conn).await.is_err()
        {
            self.conn = None;
        }
    }

    /// A visitor hash is salted by UTC day, so a visitor's visits start on the day of its events,
    /// which is the day of `since` or later: the lookup reads the day partitions of `visits` from
    /// that day on, not one per day kept.
    pub async fn visits(&mut self, visitors: &[&str], since: i64) -> Result<Vec<Visit>> {
        let rows = self
            .with(async |conn| {
                sqlx::query(&format!(
                    "SELECT {VISIT_COLUMNS} FROM visits WHERE visitor_id = ANY($1) AND alive_ts >= $2 AND start_ts >= $3"
                ))
                .bind(visitors)
                .bind(since)
                .bind(day_of(since))
                .fetch_all(conn)
                .await
            })
            .await?;
        rows.iter()
            .map(|row| Visit::from_row(|i| row.try_get(i), |i| row.try_get(i)))
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::internal)
    }

    /// The batch's events, visits and pending roll-ups, in the caller's transaction.
    pub async fn write(&mut self, rows: &Rows<'_>) -> Result<()> {
        self.with(async |conn| {
            insert_events(conn, rows.events).await?;
            upsert_visits(conn, rows.visits).await?;
            enter_late(conn, rows.visits).await?;
            mark_pending(conn, rows).await
        })
        .await
    }
}

async fn enter_late(conn: &mut PgConnection, visits: &[Visit]) -> std::result::Result<(), sqlx::Error> {
    for v in visits.iter().filter(|v| v.entered_late) {
        sqlx::query(ENTERED_LATE)
            .bind(&v.attributes.entry_page)
            .bind(&v.id)
            .bind(&v.website_id)
            .bind(v.start_ts)
            .bind(v.alive_ts)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_events(
    conn: &mut PgConnection,
    events: &[&crate::store::NewEvent],
) -> std::result::Result<(), sqlx::Error> {
    let text = |f: fn(&crate::store::NewEvent) -> &str| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    sqlx::query(&format!(
        "INSERT INTO events ({EVENT_COLUMNS}) SELECT * FROM UNNEST({}, $28::int8[], $29::int8[])",
        casts(&["text", "text", "int8"], 24)
    ))
    .bind(text(|e| &e.id))
    .bind(text(|e| &e.website_id))
    .bind(events.iter().map(|e| e.ts).collect::<Vec<_>>())
    .bind(text(|e| &e.name))
    .bind(text(|e| &e.pathname))
    .bind(text(|e| &e.referrer_host))
    .bind(text(|e| &e.visitor_id))
    .bind(text(|e| &e.visit.country))
    .bind(text(|e| &e.props))
    .bind(events.iter().map(|e| e.revenue_amount.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.revenue_currency.as_deref()).collect::<Vec<_>>())
    .bind(text(|e| &e.visit_id))
    .bind(text(|e| &e.visit.entry_page))
    .bind(text(|e| &e.visit.source))
    .bind(text(|e| &e.visit.utm_source))
    .bind(text(|e| &e.visit.utm_medium))
    .bind(text(|e| &e.visit.utm_campaign))
    .bind(text(|e| &e.visit.browser))
    .bind(text(|e| &e.visit.os))
    .bind(text(|e| &e.visit.device))
    .bind(text(|e| &e.hostname))
    .bind(text(|e| &e.visit.referrer))
    .bind(text(|e| &e.visit.channel))
    .bind(text(|e| &e.visit.utm_content))
    .bind(text(|e| &e.visit.utm_term))
    .bind(text(|e| &e.visit.browser_version))
    .bind(text(|e| &e.visit.os_version))
    .bind(events.iter().map(|e| e.scroll_depth).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.engagement_ms).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_visits(conn: &mut PgConnection, visits: &[Visit]) -> std::result::Result<(), sqlx::Error> {
    let text = |f: fn(&Visit) -> &str| visits.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&Visit) -> i64| visits.iter().map(f).collect::<Vec<_>>();
    sqlx::query(&format!(
        // The key holds the start, the partition key (migration 0012): the visit's
        // partition is the only one searched for the conflict.
        "INSERT INTO visits ({VISIT_COLUMNS}) SELECT * FROM UNNEST({}, $24::int8[], $25::int8[]) \
         ON CONFLICT (id, start_ts) {VISIT_UPDATE}",
        casts(&["text", "text", "text", "int8", "int8", "int8", "int8"], 16)
    ))
    .bind(text(|v| &v.id))
    .bind(text(|v| &v.website_id))
    .bind(text(|v| &v.visitor_id))
    .bind(int(|v| v.start_ts))
    .bind(int(|v| v.last_ts))
    .bind(int(|v| v.pageviews))
    .bind(int(|v| v.events))
    .bind(text(|v| &v.attributes.entry_page))
    .bind(text(|v| &v.exit_page))
    .bind(text(|v| &v.attributes.source))
    .bind(text(|v| &v.attributes.utm_source))
    .bind(text(|v| &v.attributes.utm_medium))
    .bind(text(|v| &v.attributes.utm_campaign))
    .bind(text(|v| &v.attributes.country))
    .bind(text(|v| &v.attributes.browser))
    .bind(text(|v| &v.attributes.os))
    .bind(text(|v| &v.attributes.device))
    .bind(text(|v| &v.attributes.referrer))
    .bind(text(|v| &v.attributes.channel))
    .bind(text(|v| &v.attributes.utm_content))
    .bind(text(|v| &v.attributes.utm_term))
    .bind(text(|v| &v.attributes.browser_version))
    .bind(text(|v| &v.attributes.os_version))
    .bind(int(|v| v.alive_ts))
    .bind(int(|v| v.passive))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the batch's days for the roll-up, and drops the rollups of the days it makes stale.
async fn mark_pending(conn: &mut PgConnection, rows: &Rows<'_>) -> std::result::Result<(), sqlx::Error> {
    // In the order given (sorted), so that two writers lock shared rows in the same order.
    for (days, on_conflict) in [(&rows.open_days, rows.open_conflict()), (&rows.stale_days, PENDING_STALE)] {
        let (sites, days) = columns(days);
        if sites.is_empty() {
            continue;
        }
        sqlx::query(&format!(
            "INSERT INTO rollup_pending (website_id, day, version) \
             SELECT website_id, day, 1 FROM UNNEST($1::text[], $2::int8[]) AS t (website_id, day) {on_conflict}"
        ))
        .bind(&sites)
        .bind(&days)
        .execute(&mut *conn)
        .await?;
    }
    let (sites, days) = columns(&rows.stale_days);
    if !sites.is_empty() {
        sqlx::query(
            "DELETE FROM rollup_days WHERE (website_id, day) IN \
             (SELECT * FROM UNNEST($1::text[], $2::int8[]))",
        )
        .bind(&sites)
        .bind(&days)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Site-days as the two arrays `UNNEST` takes.
fn columns<'a>(days: &[(&'a str, i64)]) -> (Vec<&'a str>, Vec<i64>) {
    days.iter().copied().unzip()
}

/// `$1::a[], $2::b[], …` for the given column types, then `text_after` more text columns.
fn casts(types: &[&str], text_after: usize) -> String {
    let types = types.iter().copied().chain(std::iter::repeat_n("text", text_after));
    types.enumerate().map(|(i, t)| format!("${}::{t}[]", i + 1)).collect::<Vec<_>>().join(", ")
}

//! Analytics' storage: portable SQL over `sqlx::Any`, the same on SQLite and PostgreSQL.

use common::db::{AnyPool, Backend, OpenError};
use common::error::is_unique_violation;
use common::{Error, ErrorCode, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use std::collections::HashMap;

use crate::model::Website;
use crate::query::{Bind, Counted, Dim, Sql};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const COLUMNS: &str = "id, team_id, domain, name, timezone, tracking_code, created_at";

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// `db.system` of the backend, for spans.
    system: &'static str,
}

fn website(row: &AnyRow) -> Result<Website> {
    Ok(Website {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        domain: row.try_get("domain")?,
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        tracking_code: row.try_get("tracking_code")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn open(backend: &Backend) -> Result<Store, OpenError> {
        Ok(Store { pool: common::db::open(backend, "analytics", &MIGRATOR).await?, system: backend.system() })
    }

    /// The event writer's store, on a connection of its own; see [`common::db::open_writer`].
    pub async fn open_writer(backend: &Backend) -> Result<Store, OpenError> {
        Ok(Store { pool: common::db::open_writer(backend, "analytics").await?, system: backend.system() })
    }

    pub async fn insert_website(&self, w: &Website) -> Result<()> {
        let inserted = sqlx::query(&format!("INSERT INTO websites ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&w.id)
            .bind(&w.team_id)
            .bind(&w.domain)
            .bind(&w.name)
            .bind(&w.timezone)
            .bind(&w.tracking_code)
            .bind(w.created_at)
            .execute(&self.pool)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                Err(Error::new(ErrorCode::Conflict, format!("a website with domain {} already exists", w.domain)))
            }
            other => other.map(drop).map_err(Error::from),
        }
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT websites"))]
    pub async fn website(&self, id: &str) -> Result<Option<Website>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM websites WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(website).transpose()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT websites"))]
    pub async fn websites_of(&self, team_ids: &[String]) -> Result<Vec<Website>> {
        if team_ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM websites WHERE team_id IN ({}) ORDER BY created_at, id",
            common::db::placeholders(team_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in team_ids {
            query = query.bind(id);
        }
        query.fetch_all(&self.pool).await?.iter().map(website).collect()
    }

    pub async fn update_website(&self, w: &Website) -> Result<()> {
        sqlx::query("UPDATE websites SET name = $1, timezone = $2 WHERE id = $3")
            .bind(&w.name)
            .bind(&w.timezone)
            .bind(&w.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes the website and everything stored for it; false when there was none.
    pub async fn delete_website(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM websites WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn website_by_domain(&self, domain: &str) -> Result<Option<Website>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM websites WHERE domain = $1"))
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(website).transpose()
    }

    pub async fn website_by_tracking_code(&self, code: &str) -> Result<Option<Website>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM websites WHERE tracking_code = $1"))
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(website).transpose()
    }

    /// Stores a batch of events in one transaction, each joined to its visitor's open visit or
    /// starting a new one. Events are taken in time order.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "INSERT events", batch = events.len()))]
    pub async fn insert_events(&self, events: &mut [NewEvent]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Every visit the batch may touch; `current` points at each visitor's latest.
        let mut visits: Vec<(Visit, bool)> = vec![];
        let mut current: HashMap<(String, String), usize> = HashMap::new();
        let earliest = events.iter().map(|e| e.ts).min().unwrap_or_default();
        let mut visitors: Vec<&str> = events.iter().map(|e| e.visitor_id.as_str()).collect();
        visitors.sort_unstable();
        visitors.dedup();
        for chunk in visitors.chunks(500) {
            let sql = format!(
                "SELECT {VISIT_COLUMNS} FROM visits WHERE visitor_id IN ({}) AND last_ts >= {}",
                self.params(0, chunk.len()),
                self.params(chunk.len(), 1)
            );
            let mut query = sqlx::query(&sql);
            for visitor in chunk {
                query = query.bind(*visitor);
            }
            for row in query.bind(earliest - VISIT_GAP_MS).fetch_all(&mut *tx).await? {
                let visit = Visit::from_row(&row)?;
                let key = (visit.website_id.clone(), visit.visitor_id.clone());
                if current.get(&key).is_none_or(|&i| visits[i].0.last_ts < visit.last_ts) {
                    current.insert(key, visits.len());
                    visits.push((visit, false));
                }
            }
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| events[i].ts);
        for i in order {
            let event = &mut events[i];
            let key = (event.website_id.clone(), event.visitor_id.clone());
            let index = match current.get(&key) {
                Some(&i) if event.ts - visits[i].0.last_ts <= VISIT_GAP_MS => i,
                _ => {
                    current.insert(key, visits.len());
                    visits.push((Visit::start(event), false));
                    visits.len() - 1
                }
            };
            let (visit, touched) = &mut visits[index];
            visit.add(event);
            *touched = true;
        }
        for chunk in events.chunks(200) {
            let sql = self.insert_rows("events", EVENT_COLUMNS, chunk.len());
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(&e.id)
                    .bind(&e.website_id)
                    .bind(e.ts)
                    .bind(&e.name)
                    .bind(&e.pathname)
                    .bind(&e.referrer_host)
                    .bind(&e.visitor_id)
                    .bind(&e.visit.country)
                    .bind(&e.props)
                    .bind(&e.revenue_amount)
                    .bind(&e.revenue_currency)
                    .bind(&e.visit_id)
                    .bind(&e.visit.entry_page)
                    .bind(&e.visit.source)
                    .bind(&e.visit.utm_source)
                    .bind(&e.visit.utm_medium)
                    .bind(&e.visit.utm_campaign)
                    .bind(&e.visit.browser)
                    .bind(&e.visit.os)
                    .bind(&e.visit.device);
            }
            query.execute(&mut *tx).await?;
        }
        let touched: Vec<&Visit> = visits.iter().filter(|(_, touched)| *touched).map(|(visit, _)| visit).collect();
        for chunk in touched.chunks(200) {
            let mut sql = self.insert_rows("visits", VISIT_COLUMNS, chunk.len());
            sql.push_str(
                " ON CONFLICT (id) DO UPDATE SET last_ts = excluded.last_ts, pageviews = excluded.pageviews, \
                 events = excluded.events, exit_page = excluded.exit_page",
            );
            let mut query = sqlx::query(&sql);
            for v in chunk {
                let a = &v.attributes;
                query = query
                    .bind(&v.id)
                    .bind(&v.website_id)
                    .bind(&v.visitor_id)
                    .bind(v.start_ts)
                    .bind(v.last_ts)
                    .bind(v.pageviews)
                    .bind(v.events)
                    .bind(&a.entry_page)
                    .bind(&v.exit_page)
                    .bind(&a.source)
                    .bind(&a.utm_source)
                    .bind(&a.utm_medium)
                    .bind(&a.utm_campaign)
                    .bind(&a.country)
                    .bind(&a.browser)
                    .bind(&a.os)
                    .bind(&a.device);
            }
            query.execute(&mut *tx).await?;
        }
        let mut days: Vec<(&str, i64)> = events.iter().map(|e| (e.website_id.as_str(), day_of(e.ts))).collect();
        days.sort_unstable();
        days.dedup();
        // Two statements per batch, whatever the number of site-days it touches.
        for chunk in days.chunks(200) {
            let mut sql = self.insert_rows("rollup_pending", "website_id, day, version", chunk.len());
            sql.push_str(" ON CONFLICT (website_id, day) DO UPDATE SET version = rollup_pending.version + 1");
            let mut upsert = sqlx::query(&sql);
            for (website_id, day) in chunk {
                upsert = upsert.bind(*website_id).bind(*day).bind(1_i64);
            }
            upsert.execute(&mut *tx).await?;
            let pairs: Vec<String> = (0..chunk.len())
                .map(|i| format!("(website_id = {} AND day = {})", self.params(2 * i, 1), self.params(2 * i + 1, 1)))
                .collect();
            let sql = format!("DELETE FROM rollup_days WHERE {}", pairs.join(" OR "));
            let mut delete = sqlx::query(&sql);
            for (website_id, day) in chunk {
                delete = delete.bind(*website_id).bind(*day);
            }
            delete.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Days with events not rolled up yet, before `before` (a day start): (site, day, version).
    pub async fn pending_days(&self, before: i64) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query("SELECT website_id, day, version FROM rollup_pending WHERE day < $1 ORDER BY day")
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("website_id")?, r.try_get("day")?, r.try_get("version")?))).collect()
    }

    /// Replaces a day's rollup, and marks it current unless the day was written to since
    /// `version` was read. Returns whether it was marked current.
    pub async fn write_rollup(&self, website_id: &str, day: i64, version: i64, rows: &[RollupRow]) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query("DELETE FROM rollup_pending WHERE website_id = $1 AND day = $2 AND version = $3")
            .bind(website_id)
            .bind(day)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if claimed.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM rollups WHERE website_id = $1 AND day = $2")
            .bind(website_id)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        for chunk in rows.chunks(200) {
            let sql = self.insert_rows("rollups", ROLLUP_COLUMNS, chunk.len());
            let mut insert = sqlx::query(&sql);
            for row in chunk {
                insert = insert.bind(website_id).bind(day).bind(&row.dim).bind(&row.value);
                for counter in row.counters {
                    insert = insert.bind(counter);
                }
            }
            insert.execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO rollup_days (website_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(website_id)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Rollup rows of `dim` and the totals ('') of the current days in `[from, to)`, in one
    /// statement so that both come from the same state.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT rollups"))]
    pub async fn rollup_rows(&self, website_id: &str, dim: &str, from: i64, to: i64) -> Result<Vec<(i64, RollupRow)>> {
        let rows = sqlx::query(&format!(
            "SELECT r.day, r.dim, r.value, {COUNTERS} FROM rollups r \
             JOIN rollup_days d ON d.website_id = r.website_id AND d.day = r.day \
             WHERE r.website_id = $1 AND r.dim IN ('', $2) AND r.day >= $3 AND r.day < $4"
        ))
        .bind(website_id)
        .bind(dim)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mut counters = [0; 7];
                for (i, counter) in counters.iter_mut().enumerate() {
                    *counter = r.try_get(3 + i)?;
                }
                Ok((r.try_get("day")?, RollupRow { dim: r.try_get("dim")?, value: r.try_get("value")?, counters }))
            })
            .collect()
    }

    /// Rows of one part of a query: its dimension values (time buckets as indexes) and counters.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT events"))]
    pub async fn counted(&self, sql: &Sql, dims: &[Dim], counters: usize) -> Result<Vec<Counted>> {
        let mut query = sqlx::query(&sql.text);
        for bind in &sql.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.as_str()),
                Bind::Int(n) => query.bind(*n),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let key = dims
                    .iter()
                    .enumerate()
                    .map(|(i, dim)| match dim {
                        Dim::Time(_) => row.try_get::<i64, _>(i).map(|b| b.to_string()),
                        _ => row.try_get::<String, _>(i),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let values =
                    (0..counters).map(|j| row.try_get::<i64, _>(dims.len() + j)).collect::<Result<Vec<_>, _>>()?;
                Ok((key, values))
            })
            .collect()
    }

    /// `n` parameters numbered after `before`, comma-separated. SQLite gets anonymous `?`s:
    /// it looks numbered parameters up by name one at a time, which made a statement of a few
    /// thousand parameters spend most of its time finding them.
    fn params(&self, before: usize, n: usize) -> String {
        let one = |i: usize| if self.system == "sqlite" { "?".to_owned() } else { format!("${}", before + i) };
        (1..=n).map(one).collect::<Vec<_>>().join(", ")
    }

    /// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows: one statement per chunk of
    /// a batch instead of one per row.
    fn insert_rows(&self, table: &str, columns: &str, rows: usize) -> String {
        let width = columns.split(',').count();
        let rows: Vec<String> = (0..rows).map(|i| format!("({})", self.params(i * width, width))).collect();
        format!("INSERT INTO {table} ({columns}) VALUES {}", rows.join(", "))
    }

    /// A transaction that will write. SQLite's must take the write lock up front: a transaction
    /// that reads first cannot upgrade once another connection (another process, say) has
    /// written, and fails at once instead of waiting.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(if self.system == "sqlite" {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }

    /// `LIKE` that ignores ASCII case, as SQLite's does.
    pub fn like(&self) -> &'static str {
        if self.system == "postgresql" { "ILIKE" } else { "LIKE" }
    }

    /// The salt of `day`, storing `candidate` if the day has none yet (the first replica wins).
    pub async fn salt(&self, day: &str, candidate: &str) -> Result<String> {
        sqlx::query("INSERT INTO salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        // Yesterday's salt must not outlive the day: visitors are not followed across days.
        sqlx::query("DELETE FROM salts WHERE day < $1").bind(day).execute(&self.pool).await?;
        let row = sqlx::query("SELECT salt FROM salts WHERE day = $1").bind(day).fetch_one(&self.pool).await?;
        Ok(row.try_get("salt")?)
    }
}

pub struct NewEvent {
    pub id: String,
    pub website_id: String,
    pub ts: i64,
    pub name: String,
    pub pathname: String,
    pub referrer_host: String,
    pub visitor_id: String,
    pub props: String,
    pub revenue_amount: Option<String>,
    pub revenue_currency: Option<String>,
    /// Set when the event is stored.
    pub visit_id: String,
    /// The event's own attributes on arrival; its visit's once stored.
    pub visit: VisitAttributes,
}

pub const DAY_MS: i64 = 86_400_000;

/// The first instant of the UTC day of `ts`.
pub fn day_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(DAY_MS)
}

const COUNTERS: &str = "visitors, pageviews, events, visits, bounces, duration, views";
const ROLLUP_COLUMNS: &str =
    "website_id, day, dim, value, visitors, pageviews, events, visits, bounces, duration, views";

/// One dimension value's counters for a day: visitors, pageviews, events (over the day's
/// events), then visits, bounces, duration, views (over visits that started that day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub dim: String,
    pub value: String,
    pub counters: [i64; 7],
}

/// Events of one visit more than this apart belong to two visits.
pub const VISIT_GAP_MS: i64 = 30 * 60_000;

const EVENT_COLUMNS: &str = "id, website_id, ts, name, pathname, referrer_host, visitor_id, country, props, \
     revenue_amount, revenue_currency, visit_id, entry_page, source, utm_source, utm_medium, utm_campaign, browser, os, device";

const VISIT_COLUMNS: &str = "id, website_id, visitor_id, start_ts, last_ts, pageviews, events, entry_page, exit_page, \
     source, utm_source, utm_medium, utm_campaign, country, browser, os, device";

/// What a visit's first event says about the whole visit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitAttributes {
    pub entry_page: String,
    pub source: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub country: String,
    pub browser: String,
    pub os: String,
    pub device: String,
}

struct Visit {
    id: String,
    website_id: String,
    visitor_id: String,
    start_ts: i64,
    last_ts: i64,
    pageviews: i64,
    events: i64,
    exit_page: String,
    attributes: VisitAttributes,
}

impl Visit {
    fn start(event: &NewEvent) -> Visit {
        Visit {
            id: uuid::Uuid::now_v7().to_string(),
            website_id: event.website_id.clone(),
            visitor_id: event.visitor_id.clone(),
            start_ts: event.ts,
            last_ts: event.ts,
            pageviews: 0,
            events: 0,
            exit_page: event.pathname.clone(),
            attributes: VisitAttributes { entry_page: event.pathname.clone(), ..event.visit.clone() },
        }
    }

    /// Counts the event in the visit, and gives the event the visit's attributes.
    fn add(&mut self, event: &mut NewEvent) {
        self.last_ts = self.last_ts.max(event.ts);
        self.events += 1;
        if event.name == "pageview" {
            self.pageviews += 1;
            self.exit_page = event.pathname.clone();
        }
        event.visit_id = self.id.clone();
        event.visit = self.attributes.clone();
    }

    fn from_row(row: &AnyRow) -> Result<Visit> {
        Ok(Visit {
            id: row.try_get("id")?,
            website_id: row.try_get("website_id")?,
            visitor_id: row.try_get("visitor_id")?,
            start_ts: row.try_get("start_ts")?,
            last_ts: row.try_get("last_ts")?,
            pageviews: row.try_get("pageviews")?,
            events: row.try_get("events")?,
            exit_page: row.try_get("exit_page")?,
            attributes: VisitAttributes {
                entry_page: row.try_get("entry_page")?,
                source: row.try_get("source")?,
                utm_source: row.try_get("utm_source")?,
                utm_medium: row.try_get("utm_medium")?,
                utm_campaign: row.try_get("utm_campaign")?,
                country: row.try_get("country")?,
                browser: row.try_get("browser")?,
                os: row.try_get("os")?,
                device: row.try_get("device")?,
            },
        })
    }
}

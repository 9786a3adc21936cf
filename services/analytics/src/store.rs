//! Analytics' storage: portable SQL over `sqlx::Any`, the same on SQLite and PostgreSQL.

use common::db::{AnyPool, Backend, OpenError};
use common::error::is_unique_violation;
use common::{Error, ErrorCode, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::Website;

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

    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "INSERT events"))]
    pub async fn insert_event(&self, e: &NewEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO events (id, website_id, ts, name, pathname, referrer_host, visitor_id, country, props, \
             revenue_amount, revenue_currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.id)
        .bind(&e.website_id)
        .bind(e.ts)
        .bind(&e.name)
        .bind(&e.pathname)
        .bind(&e.referrer_host)
        .bind(&e.visitor_id)
        .bind(&e.country)
        .bind(&e.props)
        .bind(&e.revenue_amount)
        .bind(&e.revenue_currency)
        .execute(&self.pool)
        .await?;
        Ok(())
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

    /// Visit-level totals of a website's events in `[from, to)`. A visit is one visitor's run of
    /// events without a gap over 30 minutes; visits are cut at the range's edges.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT events"))]
    pub async fn visit_totals(&self, website_id: &str, from: i64, to: i64) -> Result<VisitTotals> {
        let row = sqlx::query(
            "WITH e AS ( \
               SELECT id, visitor_id, ts, name, \
                 CASE WHEN ts - LAG(ts) OVER (PARTITION BY visitor_id ORDER BY ts, id) <= 1800000 THEN 0 ELSE 1 END \
                   AS starts \
               FROM events WHERE website_id = $1 AND ts >= $2 AND ts < $3), \
             v AS ( \
               SELECT visitor_id, ts, name, \
                 SUM(starts) OVER (PARTITION BY visitor_id ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS visit \
               FROM e), \
             s AS ( \
               SELECT visitor_id, COUNT(*) AS events, SUM(CASE WHEN name = 'pageview' THEN 1 ELSE 0 END) AS views, \
                 MAX(ts) - MIN(ts) AS duration \
               FROM v GROUP BY visitor_id, visit) \
             SELECT CAST(COUNT(DISTINCT visitor_id) AS BIGINT) AS visitors, CAST(COUNT(*) AS BIGINT) AS visits, \
               CAST(COALESCE(SUM(views), 0) AS BIGINT) AS pageviews, \
               CAST(COALESCE(SUM(CASE WHEN views <= 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS bounces, \
               CAST(COALESCE(SUM(duration), 0) AS BIGINT) AS duration, \
               CAST(COALESCE(SUM(events), 0) AS BIGINT) AS events \
             FROM s",
        )
        .bind(website_id)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(VisitTotals {
            visitors: row.try_get("visitors")?,
            visits: row.try_get("visits")?,
            pageviews: row.try_get("pageviews")?,
            bounces: row.try_get("bounces")?,
            duration_ms: row.try_get("duration")?,
            events: row.try_get("events")?,
        })
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
    pub country: String,
    pub props: String,
    pub revenue_amount: Option<String>,
    pub revenue_currency: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitTotals {
    pub visitors: i64,
    pub visits: i64,
    pub pageviews: i64,
    pub bounces: i64,
    pub duration_ms: i64,
    pub events: i64,
}

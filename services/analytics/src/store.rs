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
        Ok(Store { pool: common::db::open(backend, "analytics", &MIGRATOR).await? })
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

    pub async fn website(&self, id: &str) -> Result<Option<Website>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM websites WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(website).transpose()
    }

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
}

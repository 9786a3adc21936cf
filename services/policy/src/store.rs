//! Policy's storage: portable SQL over `sqlx::Any`, the same on SQLite and PostgreSQL.

use std::collections::HashMap;

use common::Result;
use common::db::{AnyPool, Backend, OpenError};
use common::time::now_ms;
use sqlx::Row;

use crate::plans::{ApiKeyPolicy, Overrides, Plan, TeamSettings};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// `db.system` of the backend, for spans.
    system: &'static str,
}

impl Store {
    pub async fn open(backend: &Backend) -> Result<Store, OpenError> {
        Ok(Store { pool: common::db::open(backend, "policy", &MIGRATOR).await?, system: backend.system() })
    }

    /// Settings of each team asked for, defaults for teams never configured, in the order asked.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT team_settings"))]
    pub async fn settings(&self, team_ids: &[String]) -> Result<Vec<TeamSettings>> {
        if team_ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT team_id, plan, api_key_policy, requests_per_minute, requests_per_month, mcp_calls_per_day \
             FROM team_settings WHERE team_id IN ({})",
            common::db::placeholders(team_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in team_ids {
            query = query.bind(id);
        }
        let mut found = HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let settings = TeamSettings {
                team_id: row.try_get("team_id")?,
                plan: row.try_get::<String, _>("plan")?.parse()?,
                api_key_policy: row.try_get::<String, _>("api_key_policy")?.parse()?,
                overrides: Overrides {
                    requests_per_minute: row.try_get::<Option<i64>, _>("requests_per_minute")?.map(|v| v as u32),
                    requests_per_month: row.try_get::<Option<i64>, _>("requests_per_month")?.map(|v| v as u64),
                    mcp_calls_per_day: row.try_get::<Option<i64>, _>("mcp_calls_per_day")?.map(|v| v as u32),
                },
            };
            found.insert(settings.team_id.clone(), settings);
        }
        // An id asked twice gets its settings twice, not defaults the second time.
        Ok(team_ids.iter().map(|id| found.get(id).cloned().unwrap_or_else(|| TeamSettings::defaults(id))).collect())
    }

    /// The in-process limiter's kept state, if one was saved.
    pub async fn limiter_state(&self) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT state FROM limiter_state WHERE name = 'memory'").fetch_optional(&self.pool).await?;
        Ok(row.map(|row| row.try_get("state")).transpose()?)
    }

    /// Saves the in-process limiter's state in place of the last one.
    pub async fn save_limiter_state(&self, state: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO limiter_state (name, state, saved_at) VALUES ('memory', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
        )
        .bind(state)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets plan and overrides, leaving the key policy as it is.
    pub async fn set_plan(&self, team_id: &str, plan: Plan, overrides: &Overrides) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_settings \
               (team_id, plan, api_key_policy, requests_per_minute, requests_per_month, mcp_calls_per_day, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (team_id) DO UPDATE SET plan = excluded.plan, \
               requests_per_minute = excluded.requests_per_minute, requests_per_month = excluded.requests_per_month, \
               mcp_calls_per_day = excluded.mcp_calls_per_day, updated_at = excluded.updated_at",
        )
        .bind(team_id)
        .bind(plan.as_str())
        .bind(ApiKeyPolicy::default().as_str())
        .bind(overrides.requests_per_minute.map(i64::from))
        .bind(overrides.requests_per_month.map(|v| v as i64))
        .bind(overrides.mcp_calls_per_day.map(i64::from))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets the key policy, leaving plan and overrides as they are.
    pub async fn set_api_key_policy(&self, team_id: &str, policy: ApiKeyPolicy) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_settings (team_id, plan, api_key_policy, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (team_id) DO UPDATE SET api_key_policy = excluded.api_key_policy, updated_at = excluded.updated_at",
        )
        .bind(team_id)
        .bind(Plan::Free.as_str())
        .bind(policy.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

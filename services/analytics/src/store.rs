//! Analytics' storage: portable SQL over `sqlx::Any`, the same on SQLite and PostgreSQL.
//! Statistics may be read from a PostgreSQL replica (`replica.rs`); everything else uses the
//! primary.

use common::db::{AnyPool, Backend, OpenError};
use common::error::{is_foreign_key_violation, is_unique_violation};
use common::{Error, ErrorCode, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::{Goal, GoalTarget, Website};
use crate::query::{Bind, Counted, Dialect, Dim, Pair, Sql, ValueIs, any_of};
use crate::replica::Replica;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// PostgreSQL's own text of some migrations (see `migrations/postgres`).
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const COLUMNS: &str = "id, team_id, domain, name, timezone, tracking_code, created_at";
/// The first key of the advisory locks on a website's host (the second is the host's hash), so
/// that they cannot meet another use of PostgreSQL's advisory locks.
const WEBSITE_HOST_LOCKS: i32 = 0x7a76_0001;
/// The class of the advisory locks of a site's goals (by its id), taken by each creation.
const GOAL_LOCKS: i32 = 0x7a76_0002;
/// The class of the advisory locks of a site's UTC day (`<site id>/<day>`), held by every write
/// of the day's rolled-up rows: a day's rollup and the rows a new goal or pair adds to it are
/// computed by any process, and two writes that replace the same rows would otherwise both insert
/// them (a unique violation on PostgreSQL, where they run at once).
const ROLLUP_LOCKS: i32 = 0x7a76_0003;

const GOAL_COLUMNS: &str = "id, website_id, display_name, event_name, page_path, currency, created_at";

fn goal(row: &AnyRow) -> Result<Goal> {
    let event_name: Option<String> = row.try_get("event_name")?;
    let page_path: Option<String> = row.try_get("page_path")?;
    let target = match (event_name, page_path) {
        (Some(name), _) => GoalTarget::Event(name),
        (None, Some(path)) => GoalTarget::Page(path),
        (None, None) => return Err(Error::internal("a goal of neither an event nor a page")),
    };
    Ok(Goal {
        id: row.try_get("id")?,
        website_id: row.try_get("website_id")?,
        display_name: row.try_get("display_name")?,
        target,
        currency: row.try_get("currency")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Connections of the pool of statistics reads (PostgreSQL), and statistics statements at once
/// on either backend (SQLite's pool holds as many).
const STATISTICS_CONNECTIONS: u32 = 8;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Statistics reads on the primary: on PostgreSQL a pool of their own, whose statements are
    /// bounded (see [`common::db::connect_reader`]); on SQLite, `pool`.
    statistics: AnyPool,
    /// One per connection of `statistics`: a statistics statement waits here for its turn, for as
    /// long as its caller waits, so that a view of a dozen questions queues rather than failing
    /// in the pool (README, "Events and statistics").
    statistics_turns: Arc<tokio::sync::Semaphore>,
    /// `db.system` of the backend, for spans.
    system: &'static str,
    replica: Option<Arc<Replica>>,
    /// The first UTC day whose events this version stored, so that their visits count them
    /// (see migration 0016).
    visits_from: i64,
}

/// Where a read goes: statistics may come from the replica, which may lag; reads that must see
/// this service's own writes come from the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    Replica,
    Primary,
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
    pub async fn open(backend: &Backend, storage: &crate::Storage) -> Result<Store, OpenError> {
        let pool =
            common::db::open_with_postgres_variants(backend, "analytics", &MIGRATOR, &POSTGRES_MIGRATIONS).await?;
        let statistics = match backend {
            Backend::Postgres { url } => common::db::connect_reader(&common::db::Reader {
                url,
                service: "analytics",
                // Beside the primary's pool of 16 (writes, rollups, lookups), of which statistics
                // had a share before: a PostgreSQL server's connections serve every process.
                max_connections: STATISTICS_CONNECTIONS,
                // Statements wait their turn (`statistics_turns`), but a connection whose
                // statement's caller left is busy until the statement ends, which PostgreSQL is
                // not asked to stop: the next statements wait for it, as long as a statement may run.
                acquire_timeout: storage.statistics_timeout,
                statement_timeout: storage.statistics_timeout,
            })?,
            Backend::Sqlite { .. } => pool.clone(),
        };
        let replica =
            storage.read_replica.as_ref().map(|r| Replica::connect(r, storage.statistics_timeout)).transpose()?;
        if let Some(replica) = &replica {
            replica.spawn_probe(pool.clone());
        }
        let last_legacy: i64 = sqlx::query_scalar("SELECT last_ts FROM legacy_events")
            .fetch_one(&pool)
            .await
            .map_err(|source| OpenError::Connect { service: "analytics", source })?;
        let visits_from = if last_legacy < 0 { i64::MIN } else { day_of(last_legacy) + DAY_MS };
        let statistics_turns = Arc::new(tokio::sync::Semaphore::new(STATISTICS_CONNECTIONS as usize));
        let store = Store { pool, statistics, statistics_turns, system: backend.system(), replica, visits_from };
        // Today's events and visits need their partitions before the first one arrives.
        let today = day_of(common::time::now_ms());
        store
            .create_partitions(today, today + crate::retention::DAYS_AHEAD * DAY_MS)
            .await
            .map_err(|source| OpenError::Connect { service: "analytics", source })?;
        Ok(store)
    }

    /// Runs a read on the replica when `from` allows it and the replica is usable, else (and
    /// when it fails there) on the primary: a replica's trouble is never the query's. A
    /// statistics read (`ReadFrom::Replica`) is bounded on either (see [`Store::statistics`]).
    async fn reading<'a, T, Fut>(&'a self, from: ReadFrom, op: impl Fn(&'a AnyPool) -> Fut) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, sqlx::Error>> + Send + 'a,
    {
        if from == ReadFrom::Primary {
            return Ok(op(&self.pool).await?);
        }
        // A console's view asks a dozen questions at once, each of up to four statements.
        let _turn = self.statistics_turns.acquire().await.map_err(Error::internal)?;
        if let Some(replica) = self.replica.as_ref().filter(|r| r.usable()) {
            match op(&replica.pool).await {
                Ok(value) => return Ok(value),
                // Its bound holds on the primary too: the query would only run out of it again.
                Err(e) if common::error::is_cancelled(&e) => return Err(e.into()),
                Err(e) => replica.failed(&e),
            }
        }
        Ok(op(&self.statistics).await?)
    }

    /// Stores a new website unless its domain, or the same host named the other way (with or
    /// without `www.`), is taken: then a conflict naming the site that has it. The check and the
    /// insert hold the names' locks, so that two sites created at once as `x` and `www.x`
    /// cannot both be stored (the unique index covers only the same name): SQLite's write lock,
    /// taken up front, or on PostgreSQL a transaction-scoped advisory lock on each name.
    pub async fn insert_website(&self, w: &Website) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let mut names: Vec<String> =
            std::iter::once(w.domain.clone()).chain(crate::model::other_www_name(&w.domain)).collect();
        // A lock per name it checks, taken in one order by every creation.
        names.sort();
        for name in &names {
            self.lock(&mut tx, WEBSITE_HOST_LOCKS, name).await?;
        }
        for name in names {
            let taken = sqlx::query("SELECT domain FROM websites WHERE domain = $1")
                .bind(&name)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = taken {
                let domain: String = row.try_get("domain")?;
                return Err(Error::new(ErrorCode::Conflict, format!("a website with domain {domain} already exists")));
            }
        }
        let inserted = sqlx::query(&format!("INSERT INTO websites ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&w.id)
            .bind(&w.team_id)
            .bind(&w.domain)
            .bind(&w.name)
            .bind(&w.timezone)
            .bind(&w.tracking_code)
            .bind(w.created_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            // Only a tracking code drawn twice can get here now.
            Err(e) if is_unique_violation(&e) => {
                Err(Error::new(ErrorCode::Conflict, format!("a website with domain {} already exists", w.domain)))
            }
            other => {
                other?;
                Ok(tx.commit().await?)
            }
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

    /// Refreshes PostgreSQL's statistics of the tables ingestion writes, after a bulk load.
    /// Without them the planner sizes `visitor_id = ANY($1)` (each batch's lookup of open
    /// visits) by defaults, and at millions of rows it chose plans that read a large part of
    /// `visits` per batch: ingestion from 1,024 senders fell from 21,700 to 1,000 events/s with
    /// 10M events stored. Autovacuum does this in time for live traffic; a bulk load outruns it,
    /// and some servers run without it. SQLite's planner needs no statistics for these lookups.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "ANALYZE"))]
    pub async fn analyze(&self) -> Result<()> {
        if self.system == "postgresql" {
            sqlx::raw_sql("ANALYZE visits, events").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Gives PostgreSQL statistics of a UTC day's partitions of `events` and `visits` that have
    /// none yet. Without column statistics the planner took a day's site-and-time conditions to
    /// match a row or two: a rollup of a day imported seconds earlier, before autovacuum reached
    /// it, joined its visits to its events by nested loops, over ten minutes per query at
    /// 100,000 events a day. An empty partition costs nothing to analyze; one with statistics,
    /// however old, is left to autovacuum. Analyzing takes no lock that writes or reads wait for.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "ANALYZE"))]
    pub async fn analyze_day_once(&self, day: i64) -> Result<()> {
        if self.system != "postgresql" {
            return Ok(());
        }
        for table in crate::retention::PARTITIONED {
            let name = crate::retention::partition_name(table, day);
            // -1: never analyzed nor vacuumed (PostgreSQL 14 on).
            let row = sqlx::query("SELECT COUNT(*) AS n FROM pg_class WHERE oid = to_regclass($1) AND reltuples < 0")
                .bind(&name)
                .fetch_one(&self.pool)
                .await?;
            if row.try_get::<i64, _>("n")? > 0 {
                sqlx::raw_sql(&format!("ANALYZE {name}")).execute(&self.pool).await?;
            }
        }
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

    /// The site of `domain`, or else of the same host named the other way (with or without
    /// `www.`): Plausible's tracker names a site either way, and a site may be named either way.
    pub async fn website_by_either_domain(&self, domain: &str) -> Result<Option<Website>> {
        if let Some(website) = self.website_by_domain(domain).await? {
            return Ok(Some(website));
        }
        match crate::model::other_www_name(domain) {
            Some(other) => self.website_by_domain(&other).await,
            None => Ok(None),
        }
    }

    pub async fn website_by_tracking_code(&self, code: &str) -> Result<Option<Website>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM websites WHERE tracking_code = $1"))
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(website).transpose()
    }

    /// When the site's first event happened, if it has any.
    pub async fn first_event(&self, website_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(ts) AS first FROM events WHERE website_id = $1")
            .bind(website_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("first")?)
    }

    /// Makes the day partitions of `events` and `visits` for the days in `[from, to]` that have
    /// none (PostgreSQL; SQLite has one table of each). A day inside the partition of rows stored
    /// before partitioning is left to it.
    pub async fn ensure_partitions(&self, from: i64, to: i64) -> Result<()> {
        Ok(self.create_partitions(from, to).await?)
    }

    async fn create_partitions(&self, from: i64, to: i64) -> std::result::Result<(), sqlx::Error> {
        if self.system != "postgresql" {
            return Ok(());
        }
        let mut day = day_of(from);
        while day <= to {
            for table in crate::retention::PARTITIONED {
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({day}) TO ({})",
                    crate::retention::partition_name(table, day),
                    day + DAY_MS
                );
                match self.partition_ddl(&sql).await {
                    // 42P17: the day overlaps the partition of rows stored before partitioning;
                    // 23514: the default partition holds rows of the day already. Either keeps it.
                    Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P17" | "23514")) => {}
                    // 42P07, 23505: another replica made it meanwhile.
                    Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P07" | "23505")) => {}
                    other => {
                        other?;
                    }
                }
            }
            day += DAY_MS;
        }
        Ok(())
    }

    /// Runs a statement that makes a partition. It needs an exclusive lock on the partitioned
    /// table, and while it waits for one, every insert and query queues behind it: waiting for a
    /// statistics query or a rollup of a large site stalled ingestion for as long as they ran,
    /// past the statement timeout. So it waits a moment at a time, and lets the queue through in
    /// between, for up to [`PARTITION_PATIENCE`].
    async fn partition_ddl(&self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        // One simple query of two statements is one transaction: the timeout ends with it.
        let bounded = format!("SET LOCAL lock_timeout = '100ms'; {sql}");
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            match sqlx::raw_sql(&bounded).execute(&self.pool).await {
                // 55P03: the lock was not granted in time.
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55P03") && started.elapsed() < PARTITION_PATIENCE =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
                other => return other.map(drop),
            }
        }
    }

    /// Whether any day before `horizon` has events not rolled up yet.
    pub async fn pending_before(&self, horizon: i64) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rollup_pending WHERE day < $1")
            .bind(horizon)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Removes events before `horizon` (a day start), and the visits that started before it:
    /// whole day partitions on PostgreSQL, rows on SQLite.
    pub async fn expire_before(&self, horizon: i64) -> Result<crate::retention::Expired> {
        let mut expired = crate::retention::Expired::default();
        if self.system == "postgresql" {
            for table in crate::retention::PARTITIONED {
                let rows = sqlx::query(
                    "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     WHERE i.inhparent = to_regclass($1)",
                )
                .bind(table)
                .fetch_all(&self.pool)
                .await?;
                for row in rows {
                    let name: String = row.try_get("name")?;
                    if crate::retention::partition_day(table, &name).is_some_and(|day| day + DAY_MS <= horizon) {
                        sqlx::raw_sql(&format!("DROP TABLE {name}")).execute(&self.pool).await?;
                        expired.partitions += 1;
                    }
                }
            }
        }
        // On PostgreSQL only the partitions of rows stored before partitioning, and the default
        // ones, still hold any.
        let events = sqlx::query("DELETE FROM events WHERE ts < $1").bind(horizon).execute(&self.pool).await?;
        let visits = sqlx::query("DELETE FROM visits WHERE start_ts < $1").bind(horizon).execute(&self.pool).await?;
        expired.rows = events.rows_affected() + visits.rows_affected();
        Ok(expired)
    }

    /// Distinct property names on the site's events in `[from, to)` (of one name, unless
    /// `event_name` is empty), the most used first (then alphabetical), at most 100: names sent
    /// by a few visitors do not push out those most events carry.
    pub async fn property_keys(
        &self,
        website_id: &str,
        (from, to): (i64, i64),
        event_name: &str,
    ) -> Result<Vec<String>> {
        let keys = match self.dialect() {
            Dialect::Sqlite => "SELECT j.key AS key FROM events, json_each(events.props) AS j",
            Dialect::Postgres => "SELECT jsonb_object_keys(CAST(props AS jsonb)) AS key FROM events",
        };
        let named = if event_name.is_empty() { "name <> 'engagement'" } else { "name = $4" };
        let sql = format!(
            "SELECT key FROM ({keys} WHERE website_id = $1 AND ts >= $2 AND ts < $3 AND {named}) AS k \
             GROUP BY key ORDER BY count(*) DESC, key LIMIT 100"
        );
        let query = sqlx::query(&sql).bind(website_id).bind(from).bind(to);
        let query = if event_name.is_empty() { query } else { query.bind(event_name) };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get::<String, _>("key")?)).collect()
    }

    /// Days with events not rolled up yet, before `before` (a day start): (site, day, version).
    pub async fn pending_days(&self, before: i64) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query("SELECT website_id, day, version FROM rollup_pending WHERE day < $1 ORDER BY day")
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("website_id")?, r.try_get("day")?, r.try_get("version")?))).collect()
    }

    /// Claims a pending day's `version` until `until` (unix ms), unless another process holds
    /// an unexpired claim on it (see migration 0015); returns whether this one has it now.
    pub async fn claim_day(&self, website_id: &str, day: i64, version: i64, until: i64) -> Result<bool> {
        let now = common::time::now_ms();
        let claimed = sqlx::query(
            "UPDATE rollup_pending SET claimed_until = $4 \
             WHERE website_id = $1 AND day = $2 AND version = $3 AND claimed_until <= $5",
        )
        .bind(website_id)
        .bind(day)
        .bind(version)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Replaces a day's rollup, and marks it current unless the day was written to since
    /// `version` was read. Returns whether it was marked current.
    pub async fn write_rollup(&self, website_id: &str, day: i64, version: i64, rollup: &DayRollup) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        self.lock(&mut tx, ROLLUP_LOCKS, &format!("{website_id}/{day}")).await?;
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
        for table in ["rollup_pieces", "rollup_open_days"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE website_id = $1 AND day = $2"))
                .bind(website_id)
                .bind(day)
                .execute(&mut *tx)
                .await?;
        }
        self.insert_rollup(&mut tx, website_id, day, rollup).await?;
        sqlx::query("INSERT INTO rollup_days (website_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(website_id)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_rollup(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        website_id: &str,
        day: i64,
        rollup: &DayRollup,
    ) -> Result<()> {
        for chunk in rollup.rows.chunks(200) {
            let sql = self.insert_rows("rollups", ROLLUP_COLUMNS, chunk.len());
            let mut insert = sqlx::query(&sql);
            for row in chunk {
                insert = insert.bind(website_id).bind(day).bind(&row.dim).bind(&row.value);
                for counter in row.counters {
                    insert = insert.bind(counter);
                }
            }
            insert.execute(&mut **tx).await?;
        }
        for chunk in rollup.pieces.chunks(200) {
            let sql = self.insert_rows("rollup_pieces", PIECE_COLUMNS, chunk.len());
            let mut insert = sqlx::query(&sql);
            for piece in chunk {
                insert = insert.bind(website_id).bind(day).bind(piece.start).bind(piece.end);
                insert = insert.bind(&piece.row.dim).bind(&piece.row.value);
                for counter in piece.row.counters {
                    insert = insert.bind(counter);
                }
            }
            insert.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Sites written to on `day` (today), each with the day's version and what is rolled up of
    /// it (see migration 0017).
    pub async fn open_days(&self, day: i64) -> Result<Vec<(String, i64, Option<OpenRollup>)>> {
        let rows = sqlx::query(
            "SELECT p.website_id, p.version, o.version AS rolled_version, o.events_until, o.visits_until \
             FROM rollup_pending p LEFT JOIN rollup_open_days o ON o.website_id = p.website_id AND o.day = p.day \
             WHERE p.day = $1 ORDER BY p.website_id",
        )
        .bind(day)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let rolled = match r.try_get::<Option<i64>, _>("rolled_version")? {
                    Some(version) => Some(OpenRollup {
                        version,
                        events_until: r.try_get("events_until")?,
                        visits_until: r.try_get("visits_until")?,
                    }),
                    None => None,
                };
                Ok((r.try_get("website_id")?, r.try_get("version")?, rolled))
            })
            .collect()
    }

    /// The earliest start, from `started_from` on within its UTC day, of a visit with an event
    /// at `alive_since` or later: a visit that may still go on.
    pub async fn first_open_visit(&self, website_id: &str, started_from: i64, alive_since: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(start_ts) FROM visits \
             WHERE website_id = $1 AND start_ts >= $2 AND start_ts < $3 AND alive_ts >= $4",
        )
        .bind(website_id)
        .bind(started_from)
        .bind(day_of(started_from) + DAY_MS)
        .bind(alive_since)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Writes pieces of an open day and records what is rolled up of it, unless another process
    /// wrote since the record was read; returns whether it wrote. Every piece of the day from
    /// `write.from` on is replaced, so none computed at an earlier version is left to count.
    pub async fn write_open_rollup(&self, website_id: &str, write: &OpenWrite) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        self.lock(&mut tx, ROLLUP_LOCKS, &format!("{website_id}/{}", write.day)).await?;
        let rolled = &write.rolled;
        // The record is compared and set first: of two processes writing the same day, the
        // second waits for the first's commit, then finds the record changed.
        let sql = match write.recorded {
            None => {
                "INSERT INTO rollup_open_days (website_id, day, version, events_until, visits_until) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            }
            Some(_) => {
                "UPDATE rollup_open_days SET version = $3, events_until = $4, visits_until = $5 \
                 WHERE website_id = $1 AND day = $2 AND version = $6 AND events_until = $7 AND visits_until = $8"
            }
        };
        let mut statement = sqlx::query(sql).bind(website_id).bind(write.day);
        for record in std::iter::once(rolled).chain(write.recorded.as_ref()) {
            statement = statement.bind(record.version).bind(record.events_until).bind(record.visits_until);
        }
        if statement.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        // The day must still be pending at the version the pieces were computed at, and not
        // rolled up whole: on PostgreSQL the row is held against a whole day's rollup (which
        // deletes it) until this commits, not against a writer's bump.
        let hold = if self.dialect() == Dialect::Postgres { " FOR KEY SHARE" } else { "" };
        let pending: Option<i64> =
            sqlx::query_scalar(&format!("SELECT version FROM rollup_pending WHERE website_id = $1 AND day = $2{hold}"))
                .bind(website_id)
                .bind(write.day)
                .fetch_optional(&mut *tx)
                .await?;
        let whole: Option<i64> = sqlx::query_scalar("SELECT day FROM rollup_days WHERE website_id = $1 AND day = $2")
            .bind(website_id)
            .bind(write.day)
            .fetch_optional(&mut *tx)
            .await?;
        if pending != Some(rolled.version) || whole.is_some() {
            return Ok(false);
        }
        let earlier: BTreeSet<(i64, i64)> =
            write.pieces.iter().filter(|p| p.start < write.from).map(|p| (p.start, p.end)).collect();
        sqlx::query("DELETE FROM rollup_pieces WHERE website_id = $1 AND day = $2 AND start_ts >= $3")
            .bind(website_id)
            .bind(write.day)
            .bind(write.from)
            .execute(&mut *tx)
            .await?;
        for (start, end) in earlier {
            sqlx::query("DELETE FROM rollup_pieces WHERE website_id = $1 AND start_ts = $2 AND end_ts = $3")
                .bind(website_id)
                .bind(start)
                .bind(end)
                .execute(&mut *tx)
                .await?;
        }
        let rollup = DayRollup { rows: vec![], pieces: write.pieces.clone() };
        self.insert_rollup(&mut tx, website_id, write.day, &rollup).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that a site's queries need the rows of a pair, unless the site has [`MAX_PAIRS`]
    /// already (pairs with `event:goal` in a table of their own, see migration 0020).
    pub async fn want_pair(&self, website_id: &str, pair: &Pair) -> Result<()> {
        let table = if pair.goal_by().is_some() { "rollup_goal_pairs" } else { "rollup_pairs" };
        sqlx::query(&format!(
            "INSERT INTO {table} (website_id, pair) SELECT $1, $2 WHERE (SELECT COUNT(*) FROM ({ALL_PAIRS}) p \
             WHERE p.website_id = $1) < $3 ON CONFLICT DO NOTHING",
        ))
        .bind(website_id)
        .bind(pair.name())
        .bind(MAX_PAIRS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The names of the pairs a site's days are rolled up with.
    pub async fn pairs(&self, website_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(&format!("SELECT p.pair FROM ({ALL_PAIRS}) p WHERE p.website_id = $1 ORDER BY p.pair"))
            .bind(website_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("pair")?)).collect()
    }

    /// Every site's pairs: (site, pair name).
    pub async fn all_pairs(&self) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query(&format!("SELECT p.website_id, p.pair FROM ({ALL_PAIRS}) p ORDER BY p.website_id, p.pair"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok((r.try_get("website_id")?, r.try_get("pair")?))).collect()
    }

    /// The current days of a site without the marker row of `dim`.
    pub async fn days_without(&self, website_id: &str, dim: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT d.day FROM rollup_days d WHERE d.website_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM rollups r WHERE r.website_id = d.website_id AND r.day = d.day AND r.dim = $2 AND r.value = '') \
             ORDER BY d.day",
        )
        .bind(website_id)
        .bind(dim)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("day")?)).collect()
    }

    /// Adds the rows of `dim` to a day's rollup if the day is still current (not written to
    /// since); returns whether it was.
    pub async fn add_rows(&self, website_id: &str, day: i64, dim: &str, rollup: &DayRollup) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        self.lock(&mut tx, ROLLUP_LOCKS, &format!("{website_id}/{day}")).await?;
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT d.day FROM rollup_days d WHERE d.website_id = $1 AND d.day = $2 AND NOT EXISTS \
             (SELECT 1 FROM rollup_pending p WHERE p.website_id = d.website_id AND p.day = d.day)",
        )
        .bind(website_id)
        .bind(day)
        .fetch_optional(&mut *tx)
        .await?;
        if current.is_none() {
            return Ok(false);
        }
        for table in ["rollups", "rollup_pieces"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE website_id = $1 AND day = $2 AND dim = $3"))
                .bind(website_id)
                .bind(day)
                .bind(dim)
                .execute(&mut *tx)
                .await?;
        }
        self.insert_rollup(&mut tx, website_id, day, rollup).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The markers (see `Rolled::marker`) of a site's current days that start in `[from, to)`
    /// and of its current pieces of bounds among `pieces`, among `markers`: (day, marker) and
    /// (start, end, marker).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT rollup markers"))]
    pub async fn rollup_marks(
        &self,
        website_id: &str,
        markers: &[String],
        (from, to): (i64, i64),
        pieces: &[(i64, i64)],
    ) -> Result<Marks> {
        // `kind`: a rolled-up day, a piece of one, or a piece of a day not rolled up (see below);
        // `whole`: whether the piece holds its visits whole.
        const DAY: i64 = 0;
        const PIECE: i64 = 1;
        const OPEN: i64 = 2;
        let sql = |kind: i64, table: &str, (start, end): (&str, &str), whole: &str, joins: &str| {
            format!(
                "SELECT CAST({kind} AS BIGINT) AS kind, r.{start} AS s, {end} AS e, r.dim, CAST({whole} AS BIGINT) AS whole FROM {table} r {joins} \
                 WHERE r.website_id = $1 AND r.{start} >= $2 AND r.{start} < $3 AND r.value = '' AND r.dim IN ({})",
                numbered(4, markers.len())
            )
        };
        let mut binds = Vec::new();
        let mut param = |value| {
            binds.push(value);
            format!("${}", 3 + markers.len() + binds.len())
        };
        // The bounds as a table joined to the pieces, not a condition of each bound `OR`ed,
        // which PostgreSQL took milliseconds to plan for a month of a site's local days (some
        // 60 bounds) and then tested on each piece of the period, its hours included.
        let rows: Vec<String> =
            pieces.iter().map(|&(a, b)| format!("({}, {})", param(Bind::Int(a)), param(Bind::Int(b)))).collect();
        // No bounds: a row no piece has (a piece ends after it starts).
        let rows = if rows.is_empty() { "(0, 0)".to_owned() } else { rows.join(", ") };
        let bounds = format!("WITH pb (s, e) AS (VALUES {rows}) ");
        let bounded = "JOIN pb ON r.start_ts = pb.s AND r.end_ts = pb.e";
        let rolled = "JOIN rollup_days d ON d.website_id = r.website_id AND d.day = r.day";
        let days = sql(DAY, "rollups", ("day", "CAST(0 AS BIGINT)"), "1", rolled);
        let pieces_sql = sql(PIECE, "rollup_pieces", ("start_ts", "r.end_ts"), "1", &format!("{bounded} {rolled}"));
        // A piece of a day not rolled up counts while the day's version is the one it was
        // computed at: for its events until `events_until`, whole until `visits_until`.
        let open = sql(
            OPEN,
            "rollup_pieces",
            ("start_ts", "r.end_ts"),
            "CASE WHEN r.end_ts <= o.visits_until THEN 1 ELSE 0 END",
            &format!(
                "{bounded} JOIN rollup_open_days o ON o.website_id = r.website_id AND o.day = r.day \
                 AND r.end_ts <= o.events_until \
                 JOIN rollup_pending p ON p.website_id = o.website_id AND p.day = o.day AND p.version = o.version"
            ),
        );
        // One statement: one round trip, and one snapshot for the three.
        let sql = format!("{bounds}{days} UNION ALL {pieces_sql} UNION ALL {open}");
        let rows = self
            .reading(ReadFrom::Replica, |pool| {
                let query = sqlx::query(&sql).bind(website_id).bind(from).bind(to);
                let query = markers.iter().fold(query, |query, m| query.bind(m.as_str()));
                bound(query, &binds).fetch_all(pool)
            })
            .await?;
        let mut marks = Marks { days: Vec::new(), pieces: Vec::new(), open: Vec::new() };
        for r in &rows {
            let (start, end, dim): (i64, i64, String) = (r.try_get("s")?, r.try_get("e")?, r.try_get("dim")?);
            match r.try_get::<i64, _>("kind")? {
                DAY => marks.days.push((start, dim)),
                PIECE => marks.pieces.push((start, end, dim)),
                _ => marks.open.push((start, end, dim, r.try_get::<i64, _>("whole")? == 1)),
            }
        }
        Ok(marks)
    }

    /// The rollup rows of `dims` of whole days in `days` (runs `[first, end)`) and of the pieces
    /// in `pieces` (exact bounds), each with the start of its day or piece; or, `summed`, their
    /// sums by dimension and value (start 0), which is what a query without time buckets adds.
    /// Of the kinds in `values`, only the rows of those values (and the markers). The days and
    /// pieces were current when their markers were read: a day rolled up again since is read as
    /// now rolled up (its rows change in one transaction); one whose rows went (a zone change
    /// drops pieces) lacks its marker rows, which are read too.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT rollups"))]
    pub async fn rollup_reads(&self, website_id: &str, reads: &RollupReads<'_>) -> Result<Vec<ReadRow>> {
        let names: BTreeSet<&String> =
            reads.dims.iter().chain(reads.markers).chain(reads.values.iter().map(|(dim, _)| dim)).collect();
        let mut binds: Vec<Bind> = Vec::new();
        let mut param = |value: Bind| {
            binds.push(value);
            format!("${}", 1 + names.len() + binds.len())
        };
        let dims = numbered(2, names.len());
        // Each name's parameter, as `dims` numbers them.
        let name_param = |name: &String| names.iter().position(|n| *n == name).map(|i| format!("${}", 2 + i));
        // Every row of a kind not in `values`, and the markers' (of an empty value); also a
        // filtered dimension's rows of an empty value, which the caller's check leaves.
        let mut kept: Vec<String> = names
            .iter()
            .filter(|name| reads.values.iter().all(|(dim, _)| dim != **name))
            .filter_map(|name| Some(format!("r.dim = {}", name_param(name)?)))
            .collect();
        kept.push("r.value = ''".to_owned());
        for (dim, value) in reads.values {
            let dim = name_param(dim).expect("a name read");
            let condition = match value {
                ValueIs::Exactly(text) => format!("r.value = {}", param(Bind::Text(text.clone()))),
                ValueIs::StartsWith(text) => {
                    let text = param(Bind::Text(text.clone()));
                    format!("substr(r.value, 1, length({text})) = {text}")
                }
                // A value shorter than the text starts at 0 or less, from which both databases
                // take fewer characters than the text has: no match.
                ValueIs::EndsWith(text) => {
                    let text = param(Bind::Text(text.clone()));
                    format!("substr(r.value, length(r.value) - length({text}) + 1) = {text}")
                }
            };
            kept.push(format!("r.dim = {dim} AND {condition}"));
        }
        // Without a filtered kind every row of `dims` and of the markers is kept: no condition,
        // which PostgreSQL would otherwise read as one index scan per part of it, merged.
        let kept = if reads.values.is_empty() { String::new() } else { format!(" AND {}", any_of(&kept)) };
        let days: Vec<String> = reads
            .days
            .iter()
            .map(|&(a, b)| format!("(r.day >= {} AND r.day < {})", param(Bind::Int(a)), param(Bind::Int(b))))
            .collect();
        let pieces = piece_bounds(reads.pieces, &mut param);
        let rows = format!(
            "SELECT r.day AS s, r.dim, r.value, {COUNTERS}, CAST(1 AS BIGINT) AS n FROM rollups r \
             WHERE r.website_id = $1 AND r.dim IN ({dims}){kept} AND ({}) \
             UNION ALL SELECT r.start_ts AS s, r.dim, r.value, {COUNTERS}, CAST(1 AS BIGINT) AS n FROM rollup_pieces r \
             WHERE r.website_id = $1 AND r.dim IN ({dims}){kept} AND {pieces}",
            any_of(&days)
        );
        let sql = if reads.summed {
            let sums: Vec<String> =
                COUNTERS.split(',').map(|c| format!("CAST(SUM(x.{0}) AS BIGINT) AS {0}", c.trim())).collect();
            format!(
                "SELECT CAST(0 AS BIGINT) AS s, x.dim, x.value, {}, CAST(SUM(x.n) AS BIGINT) AS n FROM ({rows}) x \
                 GROUP BY x.dim, x.value",
                sums.join(", ")
            )
        } else {
            rows
        };
        let read = |pool| {
            let query = sqlx::query(&sql).bind(website_id);
            let query = names.iter().fold(query, |query, dim| query.bind(dim.as_str()));
            bound(query, &binds).fetch_all(pool)
        };
        let rows = self.reading(ReadFrom::Replica, read).await?;
        rows.iter()
            .map(|r| Ok(ReadRow { start: r.try_get("s")?, row: rollup_row(r, 3)?, rows: r.try_get("n")? }))
            .collect()
    }

    /// Marks every day of a site pending, so that the next rollup cuts its pieces again (its
    /// time zone changed), and drops the pieces cut in the zone it left. Its days' rollups stay
    /// current meanwhile; a query that needs a piece reads raw events until it is cut again. A
    /// piece holds totals (an hour) or every kind of row (a part between midnights), which its
    /// markers do not tell apart: one of the old zone could have the bounds a query of the new
    /// zone needs, and lack its rows.
    pub async fn pend_rolled_days(&self, website_id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for table in ["rollup_open_days", "rollup_pieces"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE website_id = $1"))
                .bind(website_id)
                .execute(&mut *tx)
                .await?;
        }
        // A rollup under way, of a closed day or of today, is then not marked current.
        sqlx::query("UPDATE rollup_pending SET version = version + 1, claimed_until = 0 WHERE website_id = $1")
            .bind(website_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO rollup_pending (website_id, day, version) \
             SELECT website_id, day, 1 FROM rollup_days WHERE website_id = $1 ON CONFLICT (website_id, day) DO NOTHING",
        )
        .bind(website_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rows of one part of a query: its dimension values (time buckets as indexes) and counters.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT events"))]
    pub async fn counted(&self, sql: &Sql, dims: &[Dim], counters: usize, from: ReadFrom) -> Result<Vec<Counted>> {
        let read = |pool| bound(sqlx::query(&sql.text), &sql.binds).fetch_all(pool);
        let rows = self.reading(from, read).await?;
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

    /// Takes PostgreSQL's advisory lock of `name` in `class` until `tx` ends. SQLite needs none:
    /// a write transaction holds the whole database from its start (see [`Store::begin_write`]).
    async fn lock(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>, class: i32, name: &str) -> Result<()> {
        if self.system == "postgresql" {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(class)
                .bind(name)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(common::db::begin_write(&self.pool, self.system).await?)
    }

    /// The first UTC day whose events are all counted by their visits: events stored by
    /// versions before migration 0016 may not be.
    pub fn visits_from(&self) -> i64 {
        self.visits_from
    }

    pub fn dialect(&self) -> Dialect {
        if self.system == "postgresql" { Dialect::Postgres } else { Dialect::Sqlite }
    }

    /// Stores a new goal unless its site has one of that name, or [`MAX_GOALS`] others: the
    /// count and the insert hold the site's goal lock, so that two goals created at once cannot
    /// both take its last place.
    pub async fn insert_goal(&self, goal: &Goal) -> Result<()> {
        let (event_name, page_path) = match &goal.target {
            GoalTarget::Event(name) => (Some(name.as_str()), None),
            GoalTarget::Page(path) => (None, Some(path.as_str())),
        };
        let mut tx = self.begin_write().await?;
        self.lock(&mut tx, GOAL_LOCKS, &goal.website_id).await?;
        // A goal of the same name is a conflict of its own, whatever the count.
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM goals WHERE website_id = $1 AND display_name <> $2")
            .bind(&goal.website_id)
            .bind(&goal.display_name)
            .fetch_one(&mut *tx)
            .await?;
        if others >= MAX_GOALS {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("the website has {MAX_GOALS} goals, the most it may have: delete one to add another"),
            ));
        }
        let inserted = sqlx::query(&format!("INSERT INTO goals ({GOAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&goal.id)
            .bind(&goal.website_id)
            .bind(&goal.display_name)
            .bind(event_name)
            .bind(page_path)
            .bind(goal.currency.as_deref())
            .bind(goal.created_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(Error::new(
                ErrorCode::Conflict,
                format!("the website already has the goal {:?}", goal.display_name),
            )),
            // The website was deleted meanwhile.
            Err(e) if is_foreign_key_violation(&e) => Err(Error::not_found("website")),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(tx.commit().await?),
        }
    }

    /// The site's goals, oldest first.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT goals"))]
    pub async fn goals(&self, website_id: &str) -> Result<Vec<Goal>> {
        let rows =
            sqlx::query(&format!("SELECT {GOAL_COLUMNS} FROM goals WHERE website_id = $1 ORDER BY created_at, id"))
                .bind(website_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(goal).collect()
    }

    /// Every site's goals.
    pub async fn all_goals(&self) -> Result<Vec<Goal>> {
        let rows = sqlx::query(&format!("SELECT {GOAL_COLUMNS} FROM goals ORDER BY website_id, created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(goal).collect()
    }

    /// Deletes a goal of the site; false when it has none of that id.
    pub async fn delete_goal(&self, website_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM goals WHERE website_id = $1 AND id = $2")
            .bind(website_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
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
    /// An engagement event's scroll depth (0–100), if it sent one.
    pub scroll_depth: Option<i64>,
    /// An engagement event's engaged time; 0 for other events.
    pub engagement_ms: i64,
    /// The page's host without `www.`.
    pub hostname: String,
    /// Plausible's `interactive: false`: counted, but it does not end its visit's bounce.
    pub non_interactive: bool,
    /// Set when the event is stored.
    pub visit_id: String,
    /// The event's own attributes on arrival; its visit's once stored.
    pub visit: VisitAttributes,
}

pub const DAY_MS: i64 = 86_400_000;

/// How long making a partition keeps asking for its lock before the caller gets "unavailable":
/// an import needs its days' partitions and has no later try, and rolling up the days of a site
/// with 10M events took about 10 minutes.
const PARTITION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

/// The most pairs of dimensions recorded for one site: each costs its days' rollups one more
/// pass over their events, a pair with `event:goal` a pass per goal (see `rollup.rs`, which
/// keeps a site's pairs within as many passes).
pub const MAX_PAIRS: i64 = 32;

/// Every site's pairs, both tables (see migration 0020): `website_id`, `pair`.
const ALL_PAIRS: &str =
    "SELECT website_id, pair FROM rollup_pairs UNION ALL SELECT website_id, pair FROM rollup_goal_pairs";

/// How many goals a website may have (README, "Events and statistics"): each is rolled up for
/// every day as a kind of rows of its own, and read as a part of its own by a query by goal, so
/// a day's rollup and such a query grow with them.
pub const MAX_GOALS: i64 = 100;

/// The first instant of the UTC day of `ts`.
pub fn day_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(DAY_MS)
}

const COUNTERS: &str = "visitors, pageviews, events, visits, bounces, duration, views, \
     engaged_ms, engaged_visits, scroll_total, scroll_visits";
const ROLLUP_COLUMNS: &str = "website_id, day, dim, value, visitors, pageviews, events, visits, bounces, duration, views, \
     engaged_ms, engaged_visits, scroll_total, scroll_visits";

const PIECE_COLUMNS: &str = "website_id, day, start_ts, end_ts, dim, value, visitors, pageviews, events, visits, bounces, \
     duration, views, engaged_ms, engaged_visits, scroll_total, scroll_visits";

/// Counters of a rollup row.
pub const COUNTERS_PER_ROW: usize = 11;

/// `query` with `binds` bound after its other parameters, in order.
fn bound<'q>(query: AnyQuery<'q>, binds: &'q [Bind]) -> AnyQuery<'q> {
    binds.iter().fold(query, |query, bind| match bind {
        Bind::Text(text) => query.bind(text.as_str()),
        Bind::Int(n) => query.bind(*n),
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// SQL true for a piece (`r`) of exactly one of these bounds, each bound by `param`: looked up
/// one by one in the index (a read of a period's rows, where a table of the bounds joined to
/// the pieces had PostgreSQL hash every piece of the site's kind instead).
fn piece_bounds(pieces: &[(i64, i64)], mut param: impl FnMut(Bind) -> String) -> String {
    let bounds: Vec<String> = pieces
        .iter()
        .map(|&(a, b)| format!("(r.start_ts = {} AND r.end_ts = {})", param(Bind::Int(a)), param(Bind::Int(b))))
        .collect();
    any_of(&bounds)
}

/// `n` parameters numbered from `$first` on.
fn numbered(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Which days and pieces have which markers (see [`Store::rollup_marks`]).
pub struct Marks {
    pub days: Vec<(i64, String)>,
    pub pieces: Vec<(i64, i64, String)>,
    /// Pieces of days not closed or not rolled up yet, each with whether it holds its visits
    /// whole (see migration 0017).
    pub open: Vec<(i64, i64, String, bool)>,
}

/// What is rolled up of an open day (see migration 0017).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRollup {
    /// The day's `rollup_pending.version` its pieces were computed at.
    pub version: i64,
    pub events_until: i64,
    pub visits_until: i64,
}

/// What [`Store::write_open_rollup`] writes.
pub struct OpenWrite {
    pub day: i64,
    /// The record as read before computing, if there was one.
    pub recorded: Option<OpenRollup>,
    pub rolled: OpenRollup,
    /// Where the recomputed pieces start (besides those of `pieces` that start earlier).
    pub from: i64,
    pub pieces: Vec<RollupPiece>,
}

/// What [`Store::rollup_reads`] reads.
pub struct RollupReads<'a> {
    pub dims: &'a [String],
    /// The markers (see `Rolled::marker`) that made these days and pieces current: their rows
    /// are read too, so that the caller can tell that none went meanwhile.
    pub markers: &'a [String],
    pub days: &'a [(i64, i64)],
    pub pieces: &'a [(i64, i64)],
    /// Of these kinds (among `dims`), only the rows of these values and the marker's.
    pub values: &'a [(String, ValueIs)],
    pub summed: bool,
}

/// A rollup row read, with the start of its day or piece (0 when summed) and how many rows of
/// days and pieces it sums (1 unless summed).
pub struct ReadRow {
    pub start: i64,
    pub row: RollupRow,
    pub rows: i64,
}

/// A rollup row read from `r`, whose counters start at column `first`.
fn rollup_row(r: &AnyRow, first: usize) -> Result<RollupRow> {
    let mut counters = [0; COUNTERS_PER_ROW];
    for (i, counter) in counters.iter_mut().enumerate() {
        *counter = r.try_get(first + i)?;
    }
    Ok(RollupRow { dim: r.try_get("dim")?, value: r.try_get("value")?, counters })
}

/// A row of a part of a UTC day, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupPiece {
    pub start: i64,
    pub end: i64,
    pub row: RollupRow,
}

/// Everything rolled up of one UTC day: its rows and its pieces' (see `rollup.rs`).
#[derive(Debug, Default)]
pub struct DayRollup {
    pub rows: Vec<RollupRow>,
    pub pieces: Vec<RollupPiece>,
}

/// One dimension value's counters for a day: visitors, pageviews, events (over the day's
/// events but engagement), then visits, bounces, duration (seconds), views (over the day's
/// visits), then engaged ms and their visits, scroll total and its visits (over engagement
/// events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub dim: String,
    pub value: String,
    pub counters: [i64; COUNTERS_PER_ROW],
}

/// Events of one visit are less than this apart ([`continues_visit`]).
pub const VISIT_GAP_MS: i64 = 31 * 60_000;

/// Whether an event at `ts` continues a visit whose last event was at `alive_ts`. As Plausible:
/// its clock keeps whole seconds, and a visit goes on while the gap is at most 30 whole minutes,
/// so up to 30:59.
pub fn continues_visit(alive_ts: i64, ts: i64) -> bool {
    ts.div_euclid(1000) - alive_ts.div_euclid(1000) < VISIT_GAP_MS / 1000
}

pub(crate) const EVENT_COLUMNS: &str = "id, website_id, ts, name, pathname, referrer_host, visitor_id, country, props, \
     revenue_amount, revenue_currency, visit_id, entry_page, source, utm_source, utm_medium, utm_campaign, browser, os, device, \
     hostname, referrer, channel, utm_content, utm_term, browser_version, os_version, scroll_depth, engagement_ms";

pub(crate) const VISIT_COLUMNS: &str = "id, website_id, visitor_id, start_ts, last_ts, pageviews, events, entry_page, exit_page, \
     source, utm_source, utm_medium, utm_campaign, country, browser, os, device, \
     referrer, channel, utm_content, utm_term, browser_version, os_version, alive_ts, passive";

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
    /// The referrer's host and path (see `parse::referrer`), `Direct / None` without one.
    pub referrer: String,
    /// The acquisition channel (see `parse::channel`).
    pub channel: String,
    pub utm_content: String,
    pub utm_term: String,
    pub browser_version: String,
    pub os_version: String,
}

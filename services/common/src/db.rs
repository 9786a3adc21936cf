//! Storage: a SQLite file per service under the data directory by default, or the service's own
//! schema in PostgreSQL when a database URL is configured. Services write portable SQL against
//! `sqlx::Any`, so one store implementation runs on both backends and one conformance suite
//! checks it on each. The one exception, analytics' event writers, speaks each backend's own
//! dialect for speed and opens its own connections (`sqlite_file` names the file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Executor;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;

pub use sqlx::AnyPool;

#[derive(Debug, Clone)]
pub enum Backend {
    /// `<data_dir>/<service>.db`
    Sqlite { data_dir: PathBuf },
    /// Schema `<service>` in this database.
    Postgres { url: String },
}

impl Backend {
    /// The OpenTelemetry `db.system` name of the backend.
    pub fn system(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgresql",
        }
    }

    pub fn from_config(data_dir: PathBuf, database_url: Option<String>) -> Self {
        match database_url {
            Some(url) => Backend::Postgres { url },
            None => Backend::Sqlite { data_dir },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("cannot connect to the {service} database")]
    Connect { service: &'static str, source: sqlx::Error },
    #[error("cannot migrate the {service} database")]
    Migrate { service: &'static str, source: sqlx::migrate::MigrateError },
    #[error("cannot start the {service} writer thread")]
    Writer { service: &'static str, source: std::io::Error },
    #[error("cannot open the {service} writer's database")]
    WriterDb { service: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
}

/// Opens the pool of one service and applies its migrations.
/// `service` names the SQLite file or PostgreSQL schema and must be a plain identifier.
pub async fn open(backend: &Backend, service: &'static str, migrator: &Migrator) -> Result<AnyPool, OpenError> {
    let pool = connect(backend, service).await?;
    migrator.run(&pool).await.map_err(|source| OpenError::Migrate { service, source })?;
    Ok(pool)
}

/// As [`open`], with PostgreSQL's own text of the migrations that `postgres` holds: DDL that
/// SQLite has no form of (partitioning) keeps its place in the one numbered sequence, and each
/// database records the text it ran.
pub async fn open_with_postgres_variants(
    backend: &Backend,
    service: &'static str,
    shared: &Migrator,
    postgres: &Migrator,
) -> Result<AnyPool, OpenError> {
    let Backend::Postgres { .. } = backend else { return open(backend, service, shared).await };
    let migrations: Vec<_> =
        shared.iter().map(|m| postgres.iter().find(|p| p.version == m.version).unwrap_or(m).clone()).collect();
    let migrator = Migrator { migrations: std::borrow::Cow::Owned(migrations), ..Migrator::DEFAULT };
    open(backend, service, &migrator).await
}

/// The SQLite file of `service` under `data_dir`.
pub fn sqlite_file(data_dir: &Path, service: &str) -> PathBuf {
    data_dir.join(format!("{service}.db"))
}

async fn connect(backend: &Backend, service: &'static str) -> Result<AnyPool, OpenError> {
    install_default_drivers();
    let connect = |source| OpenError::Connect { service, source };
    let options = match backend {
        // A COMMIT that SQLite refuses (a full disk) rolls the transaction back by itself; the
        // ROLLBACK sqlx then sends finds none and fails, and sqlx goes on counting the
        // connection in a transaction, so that every later BEGIN on it fails. Such a connection
        // is closed when it is next taken, and another opened. (One whose rollback is still on
        // its way may be closed too: it costs a new connection, after a failed transaction.)
        Backend::Sqlite { .. } => AnyPoolOptions::new()
            .max_connections(8)
            .before_acquire(|conn, _| Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })),
        Backend::Postgres { .. } => AnyPoolOptions::new().max_connections(16),
    };
    let pool = match backend {
        Backend::Sqlite { data_dir } => {
            crate::regexp::install();
            std::fs::create_dir_all(data_dir).map_err(|e| OpenError::DataDir(data_dir.clone(), e))?;
            let url = format!("sqlite://{}?mode=rwc", sqlite_file(data_dir, service).display());
            options
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        // WAL lets readers proceed during a write; the timeout makes writers queue
                        // instead of failing with SQLITE_BUSY.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        // No memory map: each of the pool's connections would map the file
                        // anew, and every page a query touches would count once per connection
                        // in the process's resident memory (README, "Benchmarks"). Pages come
                        // from the kernel's page cache into SQLite's default 2 MB per connection.
                        Ok(())
                    })
                })
                .connect(&url)
                .await
                .map_err(connect)?
        }
        Backend::Postgres { url } => {
            let pool = options
                .acquire_timeout(Duration::from_secs(3))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(format!("SET search_path TO {service}").as_str()).await?;
                        Ok(())
                    })
                })
                .connect_lazy(url)
                .map_err(connect)?;
            // Replicas starting together may race to create the schema; losing the race is fine.
            let created = pool.execute(format!("CREATE SCHEMA IF NOT EXISTS {service}").as_str()).await;
            if let Err(e) = created
                && !crate::error::is_unique_violation(&e)
            {
                return Err(connect(e));
            }
            pool
        }
    };
    Ok(pool)
}

/// Where a pool of statistics reads connects, and how long its statements may run.
pub struct Reader<'a> {
    pub url: &'a str,
    pub service: &'static str,
    /// How many connections the pool may open.
    pub max_connections: u32,
    /// How long a read waits for a connection before the pool reports that it has none.
    pub acquire_timeout: Duration,
    /// After this PostgreSQL cancels a statement: no one waits for its answer any longer.
    pub statement_timeout: Duration,
}

/// A pool of statistics reads on PostgreSQL (a read replica, or the primary beside its pool for
/// everything else): no schema creation, no migrations (a standby refuses writes, and the
/// primary's reach it by replication). Connections are made on use. Each statement is cancelled
/// past its bound, and none is compiled by PostgreSQL's JIT, which for a query of many parts
/// (a breakdown by many goals) can take minutes of CPU and gigabytes and cannot be interrupted.
pub fn connect_reader(reader: &Reader) -> Result<AnyPool, OpenError> {
    install_default_drivers();
    let service = reader.service;
    let timeout_ms = reader.statement_timeout.as_millis();
    AnyPoolOptions::new()
        .max_connections(reader.max_connections)
        .acquire_timeout(reader.acquire_timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(format!("SET search_path TO {service}").as_str()).await?;
                conn.execute(format!("SET statement_timeout = {timeout_ms}").as_str()).await?;
                conn.execute("SET jit = off").await?;
                Ok(())
            })
        })
        .connect_lazy(reader.url)
        .map_err(|source| OpenError::Connect { service, source })
}

/// A transaction that will write. SQLite's must take the write lock up front: a deferred
/// transaction that reads first cannot upgrade once another connection has written since, and
/// fails at once with SQLITE_BUSY instead of waiting for the busy timeout.
pub async fn begin_write(pool: &AnyPool, system: &str) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    if system == "sqlite" { pool.begin_with("BEGIN IMMEDIATE").await } else { pool.begin().await }
}

/// `$1, $2, … $n`, for an `IN (…)` list bound one value at a time.
pub fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

//! Analytics service: websites, their events and the statistics computed from them.
//!
//! `service.rs` holds the rules, `model.rs` the field rules, `store.rs` the SQL (but the
//! writers'), `grpc.rs` the proto edge, `events.rs` ingestion, `writer.rs` the event writers and
//! their statements, `query.rs` the query engine, `period.rs` the days a period covers, `parse.rs` what an event's user agent,
//! referrer and URL say.

pub mod backfill;
pub mod events;
pub mod generate;
pub mod grpc;
pub mod model;
pub mod parse;
pub mod period;
pub mod query;
pub mod replica;
pub mod retention;
pub mod rollup;
pub mod service;
pub mod store;
pub mod writer;

use std::net::SocketAddr;

use common::db::Backend;
use common::grpc::BuildError;
use common::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use service::Analytics;

/// How often closed days are rolled up (and partitions made ahead, old events expired).
pub const ROLLUP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// After shutdown, how long the service goes on answering, reporting NOT_SERVING to health
    /// checks, before it stops accepting calls.
    pub drain: std::time::Duration,
    pub backend: Backend,
    pub storage: Storage,
    /// Website changes are announced on Redis (one, or a cluster) when set. Without it, gateways
    /// hear no change made through another gateway, and may list a website up to a second late.
    pub redis: Option<common::redis_link::Target>,
    /// Prefix of every Redis key and channel this service uses.
    pub redis_prefix: String,
}

/// Storage settings beyond the backend.
#[derive(Debug, Clone)]
pub struct Storage {
    /// A PostgreSQL streaming replica that statistics are read from.
    pub read_replica: Option<replica::ReadReplica>,
    /// How long raw events are kept; unset keeps them.
    pub retention: Option<retention::Retention>,
    /// How long a statement of a statistics query may run on PostgreSQL before it is cancelled
    /// (SQLite's are not bounded).
    pub statistics_timeout: std::time::Duration,
}

impl Default for Storage {
    /// No replica, every event kept, and statistics statements bounded a second within the
    /// gateway's wait for their answer: no work goes on that no one waits for, and the client is
    /// told why.
    fn default() -> Storage {
        let statistics_timeout = common::transport::CALL_TIMEOUT - std::time::Duration::from_secs(1);
        Storage { read_replica: None, retention: None, statistics_timeout }
    }
}

/// The analytics service bound to its listener, ready to `run`.
pub struct Server {
    listener: TcpListener,
    analytics: Analytics,
    drain: std::time::Duration,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Server, BuildError> {
        let mut analytics = Analytics::open_with(&config.backend, &config.storage).await?;
        if let Some(bus) = common::bus::redis(config.redis.as_ref(), &config.redis_prefix)? {
            analytics = analytics.announcing(bus);
        }
        analytics.spawn_upkeep(ROLLUP_EVERY, config.storage.retention);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| BuildError::Listen { addr: config.listen, source })?;
        Ok(Server { listener, analytics, drain: config.drain })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run(self, shutdown: Shutdown) -> Result<(), tonic::transport::Error> {
        common::grpc::serve(self.listener, self.analytics.into_grpc(), self.drain, shutdown).await
    }
}

//! Policy service: plans and limits, team API-key policies, the authorization decision and
//! the per-key rate limit.
//!
//! `service.rs` holds the rules, `plans.rs` the catalogue, `limiter/` the sliding-window log,
//! `store.rs` the SQL, `grpc.rs` the proto edge.

pub mod grpc;
pub mod limiter;
pub mod plans;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use common::bus::ChangeBus;
use common::db::Backend;
use common::grpc::BuildError;
use common::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use service::Policy;

use crate::limiter::{Limiter, MemoryLimiter, RedisLimiter, ResilientLimiter};
use crate::plans::Catalogue;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// After shutdown, how long the service goes on answering, reporting NOT_SERVING to health
    /// checks, before it stops accepting calls.
    pub drain: std::time::Duration,
    pub backend: Backend,
    /// Limiter state goes to Redis (one, or a cluster) when set, stays in-process otherwise.
    pub redis: Option<common::redis_link::Target>,
    /// Prefix of every Redis key this service writes.
    pub redis_prefix: String,
    /// Bound on each Redis call of the limiter; past it the decision is made in-process.
    pub redis_timeout: std::time::Duration,
    pub catalogue: Catalogue,
}

impl Config {
    pub fn limiter(&self) -> Result<Arc<dyn Limiter>, BuildError> {
        Ok(match &self.redis {
            Some(target) => ResilientLimiter::new(RedisLimiter::new(target, &self.redis_prefix, self.redis_timeout)?),
            None => Arc::new(MemoryLimiter::default()),
        })
    }

    /// Opens the service; changes go to `changes` when given, else to Redis when configured.
    pub async fn open(&self, changes: Option<Arc<dyn ChangeBus>>) -> Result<Policy, BuildError> {
        let changes = match changes {
            Some(bus) => Some(bus),
            None => common::bus::redis(self.redis.as_ref(), &self.redis_prefix)?,
        };
        Ok(Policy::open(&self.backend, self.catalogue.clone(), self.limiter()?, changes).await?)
    }
}

/// The policy service bound to its listener, ready to `run`.
pub struct Server {
    listener: TcpListener,
    policy: Policy,
    drain: std::time::Duration,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Server, BuildError> {
        let policy = config.open(None).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| BuildError::Listen { addr: config.listen, source })?;
        Ok(Server { listener, policy, drain: config.drain })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run(self, shutdown: Shutdown) -> Result<(), tonic::transport::Error> {
        let policy = self.policy.clone();
        common::grpc::serve(self.listener, self.policy.into_grpc(), self.drain, shutdown).await?;
        policy.keep_limiter().await;
        Ok(())
    }
}

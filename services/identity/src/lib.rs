//! Identity service: users, sessions, teams, memberships and personal API keys.
//!
//! `service.rs` holds the rules, `store.rs` the SQL, `grpc.rs` the proto edge.

pub mod grpc;
pub mod keyhash;
pub mod login;
pub mod mcp;
pub mod model;
pub mod service;
pub mod store;
pub mod teams;

use std::net::SocketAddr;

use common::db::Backend;
use common::grpc::BuildError;
use common::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use keyhash::KeyHasher;
pub use login::{Limit, LoginLimits};
pub use service::Identity;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// After shutdown, how long the service goes on answering, reporting NOT_SERVING to health
    /// checks, before it stops accepting calls.
    pub drain: std::time::Duration,
    pub backend: Backend,
    /// Changes are announced on Redis pub/sub when set.
    pub redis: Option<common::redis_link::Target>,
    pub redis_prefix: String,
    /// Server secrets keying the stored digests of API keys.
    pub key_hasher: KeyHasher,
}

/// The identity service bound to its listener, ready to `run`.
pub struct Server {
    listener: TcpListener,
    identity: Identity,
    drain: std::time::Duration,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Server, BuildError> {
        let changes = common::bus::redis(config.redis.as_ref(), &config.redis_prefix)?;
        let identity = Identity::open(&config.backend, config.key_hasher.clone(), changes).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| BuildError::Listen { addr: config.listen, source })?;
        Ok(Server { listener, identity, drain: config.drain })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run(self, shutdown: Shutdown) -> Result<(), tonic::transport::Error> {
        common::grpc::serve(self.listener, self.identity.into_grpc(), self.drain, shutdown).await
    }
}

//! Where the shared Redis state lives: one Redis, or a Redis Cluster named by seed nodes. Both
//! are reached through [`Link`], a connection that scripts and commands run on unchanged: on a
//! cluster each command goes to the master of its keys' hash slot, follows a failover, and is
//! bounded by the same timeouts as on one Redis.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// The configured Redis deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Single(String),
    /// Seed nodes: any reachable one tells the client the rest of the cluster.
    Cluster(Vec<String>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("ZENOVAY_REDIS_URL must be a redis:// or rediss:// URL")]
    Url,
    #[error("ZENOVAY_REDIS_CLUSTER_NODES must be a comma-separated list of redis:// or rediss:// URLs")]
    ClusterNodes,
}

fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

impl Target {
    /// The cluster's seed nodes when given (they win over a single URL), else the single URL.
    pub fn from_settings(url: Option<&str>, cluster_nodes: Option<&str>) -> Result<Option<Target>, TargetError> {
        if let Some(nodes) = cluster_nodes {
            let nodes: Vec<String> = nodes.split(',').map(str::trim).map(str::to_owned).collect();
            if nodes.iter().any(|node| !is_redis_url(node)) {
                return Err(TargetError::ClusterNodes);
            }
            return Ok(Some(Target::Cluster(nodes)));
        }
        match url {
            Some(url) if is_redis_url(url) => Ok(Some(Target::Single(url.to_owned()))),
            Some(_) => Err(TargetError::Url),
            None => Ok(None),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// A cluster client of these seed nodes, with every call bounded by `timeouts`.
    /// Sharded pub/sub needs RESP3 to hear pushes on the cluster connection.
    pub(crate) fn cluster_client(nodes: &[String], timeouts: Timeouts, resp3: bool) -> RedisResult<ClusterClient> {
        let mut builder = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.response)
            .retries(timeouts.retries);
        if resp3 {
            builder = builder.use_protocol(redis::ProtocolVersion::RESP3);
        }
        builder.build()
    }
}

/// Bounds on each call to Redis.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
    /// Attempts after the first, e.g. after a MOVED during a failover.
    pub retries: u32,
}

impl Timeouts {
    pub fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig::new().set_connection_timeout(self.connect).set_response_timeout(self.response)
    }
}

/// A connection to the configured Redis, made on first use: a process starts while Redis is
/// down, and its calls fail until it is up.
#[derive(Clone)]
pub enum Link {
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

/// A cluster connection, made on the first call that finds none and shared afterwards. Once
/// made it follows the cluster's topology (failovers, resharding) by itself, from the MOVED
/// answers of the nodes it asks, with one exception: a master that hangs (a stopped process, a
/// partition) answers nothing, so its slots stay routed to it after its replica took over. A
/// call that times out therefore has a new connection made in the background (at most one at a
/// time, and one a second), which learns the topology anew from the nodes that answer and then
/// replaces the old one; calls go on over the old one meanwhile. So does a call its caller gave
/// up on after half its response timeout: with retries, a call to a hung node outlasts the
/// checks that wait for it (a gRPC deadline drops the call), and no call would ever time out.
pub struct LazyCluster {
    client: ClusterClient,
    config: ClusterConfig,
    conn: RwLock<Option<ClusterConnection>>,
    /// One first connection at a time.
    making: tokio::sync::Mutex<()>,
    /// A new connection is being made in the background.
    renewing: AtomicBool,
    /// When the last renewal began, in ms since `created`.
    renewed_at: AtomicI64,
    created: Instant,
    /// Bound on discovering the cluster: the client bounds each node's connection, not the
    /// whole discovery.
    discovery: Duration,
    /// A call dropped unanswered after this long is taken as stuck.
    stuck_after: Duration,
}

/// Bound on a renewal, which no call waits for. A hung seed node costs a renewal its whole
/// connection timeout (the connection is accepted, its handshake never answered), which would
/// leave the rest of a discovery bounded like a first connection one response timeout, not
/// always enough on a loaded host.
const RENEWAL: Duration = Duration::from_secs(5);

impl LazyCluster {
    fn current(&self) -> Option<ClusterConnection> {
        self.conn.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    async fn connect(&self, bound: Duration) -> RedisResult<ClusterConnection> {
        let connect = self.client.get_async_connection_with_config(self.config.clone());
        tokio::time::timeout(bound, connect)
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "cluster connection timed out")))?
    }

    /// The connection, made first if there is none; callers waiting for it wait no longer than
    /// one discovery in all.
    async fn get(&self) -> RedisResult<ClusterConnection> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let first = async {
            let _making = self.making.lock().await;
            if let Some(conn) = self.current() {
                return Ok(conn);
            }
            let conn = self.connect(self.discovery).await?;
            *self.conn.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(conn.clone());
            Ok(conn)
        };
        tokio::time::timeout(self.discovery, first)
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "cluster connection timed out")))?
    }

    /// Makes a new connection in the background, unless one is being made or was begun less
    /// than a second ago.
    fn renew(self: &Arc<Self>) {
        // A call may be dropped as its runtime shuts down, with no runtime left to renew on.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let now = self.created.elapsed().as_millis() as i64;
        let last = self.renewed_at.load(Ordering::Relaxed);
        if now - last < 1000 || self.renewing.swap(true, Ordering::Relaxed) {
            return;
        }
        self.renewed_at.store(now, Ordering::Relaxed);
        let this = Arc::clone(self);
        runtime.spawn(async move {
            match this.connect(RENEWAL.max(this.discovery)).await {
                Ok(conn) => {
                    *this.conn.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(conn);
                    tracing::warn!("a call to the Redis Cluster went unanswered; its topology was read again");
                }
                Err(error) => tracing::warn!(%error, "could not read the Redis Cluster's topology again"),
            }
            this.renewing.store(false, Ordering::Relaxed);
        });
    }

    /// Runs a call on the connection; see [`Call`].
    async fn call<T>(self: &Arc<Self>, run: impl AsyncFnOnce(ClusterConnection) -> RedisResult<T>) -> RedisResult<T> {
        let call = Call { cluster: self, started: Instant::now(), answered: false };
        let result = match self.get().await {
            Ok(conn) => run(conn).await,
            Err(error) => Err(error),
        };
        call.answered(result)
    }
}

/// A call in flight: one dropped unanswered after [`LazyCluster::stuck_after`] renews the
/// connection as a timeout does.
struct Call<'a> {
    cluster: &'a Arc<LazyCluster>,
    started: Instant,
    answered: bool,
}

impl Call<'_> {
    /// A timeout has a new connection made (see [`LazyCluster`]).
    fn answered<T>(mut self, result: RedisResult<T>) -> RedisResult<T> {
        self.answered = true;
        if result.as_ref().is_err_and(redis::RedisError::is_timeout) {
            self.cluster.renew();
        }
        result
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.answered && self.started.elapsed() >= self.cluster.stuck_after {
            self.cluster.renew();
        }
    }
}

impl Link {
    pub fn open(target: &Target, timeouts: Timeouts) -> RedisResult<Link> {
        Ok(match target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(timeouts.retries as usize)
                    .set_max_delay(Duration::from_millis(200));
                Link::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            Target::Cluster(nodes) => Link::Cluster(Arc::new(LazyCluster {
                client: Target::cluster_client(nodes, timeouts, false)?,
                config: timeouts.cluster_config(),
                conn: RwLock::new(None),
                making: tokio::sync::Mutex::new(()),
                renewing: AtomicBool::new(false),
                renewed_at: AtomicI64::new(-1000),
                created: Instant::now(),
                discovery: timeouts.connect + timeouts.response,
                stuck_after: timeouts.response / 2,
            })),
        })
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(conn) => conn.req_packed_command(cmd),
            Link::Cluster(lazy) => Box::pin(lazy.call(async move |mut conn| conn.req_packed_command(cmd).await)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Link::Cluster(lazy) => {
                Box::pin(lazy.call(async move |mut conn| conn.req_packed_commands(pipeline, offset, count).await))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(conn) => conn.get_db(),
            Link::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster link whose seed answers nothing, with calls of 100 ms.
    fn cluster() -> Arc<LazyCluster> {
        let timeouts =
            Timeouts { connect: Duration::from_millis(100), response: Duration::from_millis(100), retries: 0 };
        match Link::open(&Target::Cluster(vec!["redis://127.0.0.1:1".into()]), timeouts).unwrap() {
            Link::Cluster(cluster) => cluster,
            Link::Single(_) => unreachable!("a cluster target"),
        }
    }

    fn renewals_begun(cluster: &LazyCluster) -> bool {
        cluster.renewed_at.load(Ordering::Relaxed) >= 0
    }

    #[tokio::test]
    async fn a_call_given_up_on_after_half_its_response_timeout_reads_the_topology_again() {
        let cluster = cluster();
        let call = Call { cluster: &cluster, started: Instant::now(), answered: false };
        std::thread::sleep(Duration::from_millis(60));
        drop(call);
        assert!(renewals_begun(&cluster));
    }

    #[tokio::test]
    async fn a_call_given_up_on_at_once_reads_nothing_again() {
        let cluster = cluster();
        drop(Call { cluster: &cluster, started: Instant::now(), answered: false });
        assert!(!renewals_begun(&cluster));
    }

    #[test]
    fn cluster_nodes_win_over_a_single_url() {
        let target = Target::from_settings(Some("redis://a:1"), Some("redis://b:1, redis://c:2")).unwrap();
        assert_eq!(target, Some(Target::Cluster(vec!["redis://b:1".into(), "redis://c:2".into()])));
        assert_eq!(
            Target::from_settings(Some("redis://a:1"), None).unwrap(),
            Some(Target::Single("redis://a:1".into()))
        );
        assert_eq!(Target::from_settings(None, None).unwrap(), None);
        assert_eq!(Target::from_settings(None, Some("redis://b:1,http://c")), Err(TargetError::ClusterNodes));
        assert_eq!(Target::from_settings(Some("http://a"), None), Err(TargetError::Url));
    }
}

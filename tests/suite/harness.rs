//! The one test harness. `TestEnv::all_in_one()` starts every service in this process on a
//! random port with its own SQLite directory; `TestEnv::split(n)` starts identity, policy,
//! analytics and `n` gateways as real `zenovay` processes on loopback ports, with a fresh
//! PostgreSQL database and Redis key prefix. Readiness is each process announcing its address;
//! everything is torn down on drop.
//!
//! PostgreSQL and Redis are required: a test that cannot reach them fails, it is never skipped.
//! `ZENOVAY_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `ZENOVAY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) say where they are.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use common::shutdown::Shutdown;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

pub use crate::postgres_pair::PostgresPair;
pub use crate::redis_cluster::RedisCluster;

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";
/// The trusted header carrying the visitor's country, as a CDN would set it.
pub const COUNTRY_HEADER: &str = "x-test-country";
pub const KEY_HASH_SECRETS: &str = "1:test-key-hash-secret-0123456789abcdef";

pub fn postgres_admin_url() -> String {
    std::env::var("ZENOVAY_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("ZENOVAY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A PostgreSQL database of its own, dropped with this value.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin: String,
}

impl TestDatabase {
    /// A database whose every service schema is migrated already: a copy of the suite's
    /// template. Migrating a fresh database cost PostgreSQL a quarter of a second of CPU, once
    /// per split test; the services still run their migrations at start, and find them applied.
    pub async fn create() -> TestDatabase {
        let admin = postgres_admin_url();
        let template = template_database(&admin).await;
        TestDatabase::create_with(admin, &format!("TEMPLATE {template}")).await
    }

    /// A database without any schema, for the tests of the migrations themselves.
    pub async fn empty() -> TestDatabase {
        TestDatabase::create_on(postgres_admin_url()).await
    }

    /// An empty database on the server of `admin` (a URL of a database there to connect to).
    pub async fn create_on(admin: String) -> TestDatabase {
        TestDatabase::create_with(admin, "").await
    }

    async fn create_with(admin: String, options: &str) -> TestDatabase {
        let name = format!("zv_test_{}", random_suffix());
        let mut conn = admin_connection(&admin).await;
        sqlx::query(&format!("CREATE DATABASE {name} {options}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        TestDatabase { url: database_url(&admin, &name), name, admin }
    }
}

async fn admin_connection(admin: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for the test suite ({admin}): {e}"))
}

/// The URL of database `name` on `admin`'s server, with `admin`'s parameters (`sslmode`).
fn database_url(admin: &str, name: &str) -> String {
    let (address, parameters) = admin.split_once('?').map_or((admin, ""), |(a, p)| (a, p));
    let (base, _) = address.rsplit_once('/').expect("database URL has a path");
    if parameters.is_empty() { format!("{base}/{name}") } else { format!("{base}/{name}?{parameters}") }
}

/// The name of the suite's template database on `admin`'s server, made once per run when the
/// server lacks it. It is named after the migrations and the day, so that runs of the same
/// schema on the same day share it (the analytics schema holds partitions from its day on) and
/// the next day's or schema's run replaces it; it is migrated under a name of its own and
/// renamed when complete, so that a run stopped midway leaves no half-migrated template.
async fn template_database(admin: &str) -> &'static str {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE.get_or_init(|| make_template_database(admin)).await
}

async fn make_template_database(admin: &str) -> String {
    use sha2::Digest as _;

    let mut migrations: Vec<std::path::PathBuf> = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("services")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the services' directories").map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "src" && n != "target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "sql") {
                migrations.push(path);
            }
        }
    }
    migrations.sort();
    let mut hash = sha2::Sha256::new();
    for path in &migrations {
        hash.update(path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_string_lossy().as_bytes());
        hash.update(std::fs::read(path).expect("read a migration"));
    }
    let hash: String = hash.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    let name = format!("zv_template_{hash}_{}", chrono::Utc::now().format("%Y%m%d"));

    let mut conn = admin_connection(admin).await;
    // Another test process on the same server may be making the same template.
    const LOCK: i64 = 0x7a76_7465_6d70;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK).execute(&mut conn).await.expect("template lock");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .expect("look for the template");
    if !exists {
        let making = format!("zv_template_making_{}", random_suffix());
        sqlx::query(&format!("CREATE DATABASE {making}")).execute(&mut conn).await.expect("create the template");
        let backend = common::db::Backend::Postgres { url: database_url(admin, &making) };
        identity::store::Store::open(&backend).await.expect("migrate identity");
        policy::store::Store::open(&backend).await.expect("migrate policy");
        analytics::store::Store::open(&backend, &analytics::Storage::default()).await.expect("migrate analytics");
        // The stores' pools close their connections as they are dropped; a copy needs none open.
        sqlx::query(&format!("ALTER DATABASE {making} WITH ALLOW_CONNECTIONS false"))
            .execute(&mut conn)
            .await
            .expect("close the template");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&making)
            .execute(&mut conn)
            .await
            .expect("end the migrations' connections");
        // Terminated backends take a moment to leave.
        let rename = format!("ALTER DATABASE {making} RENAME TO {name}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Err(e) = sqlx::query(&rename).execute(&mut conn).await {
            assert!(std::time::Instant::now() < deadline, "name the template: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Earlier days' and schemas' templates; one in use by another run stays.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'zv\\_template\\_%' AND datname <> $1",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .expect("list old templates");
        for old in stale {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {old}")).execute(&mut conn).await;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut conn).await.expect("template unlock");
    name
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs outside async context; a small runtime of its own does the cleanup.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            })
        })
        .join();
    }
}

/// A TCP relay to a server, which a test can cut to make that server unreachable.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl TcpProxy {
    pub async fn start(target: String) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let relays = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                relays.lock().unwrap().push(relay.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        TcpProxy { addr, tasks }
    }

    /// Closes the listener and every relayed connection.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// A Redis server of a test's own, on a free port, to stop and start at will.
pub struct RedisServer {
    port: u16,
    process: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = RedisServer { port, process: None };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    #[allow(dead_code)] // used by tests/bench only
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts it again on the same port (empty: it keeps nothing on disk).
    pub fn resume(&mut self) {
        let process = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is required for this test");
        self.process = Some(process);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis key prefix of its own; its keys are deleted with this value.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
    /// Seed nodes of a Redis Cluster of the test's own, used instead of `url`.
    pub cluster_nodes: Option<String>,
}

impl TestRedis {
    pub async fn create() -> TestRedis {
        TestRedis::at(redis_url()).await
    }

    pub async fn at(url: String) -> TestRedis {
        let client = redis::Client::open(url.as_str()).expect("redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("Redis is required for the test suite ({url}): {e}"));
        let _: String = redis::cmd("PING").query_async(&mut conn).await.expect("redis ping");
        TestRedis { url, prefix: format!("zvtest:{}:", random_suffix()), cluster_nodes: None }
    }

    /// A prefix on a cluster of the test's own (which goes with its keys).
    pub fn on_cluster(cluster: &RedisCluster) -> TestRedis {
        let prefix = format!("zvtest:{}:", random_suffix());
        TestRedis { url: String::new(), prefix, cluster_nodes: Some(cluster.seeds()) }
    }

    /// The keys under this prefix (a single Redis only).
    fn keys(&self, conn: &mut redis::Connection) -> Vec<String> {
        redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(conn).unwrap_or_default()
    }

    /// The flags naming this Redis to a service.
    fn args(&self) -> Vec<(&'static str, String)> {
        let target = match &self.cluster_nodes {
            Some(nodes) => ("--redis-cluster-nodes", nodes.clone()),
            None => ("--redis-url", self.url.clone()),
        };
        vec![target, ("--redis-prefix", self.prefix.clone())]
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if self.cluster_nodes.is_some() {
            return;
        }
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let Ok(client) = redis::Client::open(self.url.as_str()) else {
                    return;
                };
                let Ok(mut conn) = client.get_connection() else { return };
                let keys = self.keys(&mut conn);
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            });
        });
    }
}

/// A `zenovay` child process, killed on drop.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `zenovay <role>` (`all`: plain `zenovay`) and waits for its "listening on" line.
fn spawn(
    role: &str,
    args: &[(&str, String)],
    log_dir: &Path,
    filter: &str,
    otlp: Option<(&str, &str)>,
) -> Result<(Process, String)> {
    let log = std::fs::File::create(log_dir.join(format!("{role}-{}.log", random_suffix())))?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_zenovay"));
    if role != "all" {
        command.arg(role);
    }
    for (flag, value) in args {
        command.arg(flag).arg(value);
    }
    // The children must see only what the harness gives them.
    for (name, _) in std::env::vars() {
        if name.starts_with("ZENOVAY_") {
            command.env_remove(name);
        }
    }
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    if let Some((endpoint, protocol)) = otlp {
        // Export promptly: the test waits for the spans.
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    }
    let mut child = command
        .env("ZENOVAY_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn zenovay {role}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let process = Process { child };
    let (tx, rx) = mpsc::channel();
    let prefix = format!("zenovay {role} listening on ");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix(&prefix) {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow!("zenovay {role} did not announce its address; see its log in {}", log_dir.display()))?;
    Ok((process, addr))
}

/// How a split topology is started: its gateways, Redis, log filter, trace export, flags of
/// the gateways' own, and the PostgreSQL pair it runs on instead of the shared server.
struct SplitSetup<'a> {
    gateways: usize,
    /// Replicas of policy and of analytics: gateway `i` calls replica `i` modulo their number.
    replicas: usize,
    redis: TestRedis,
    log: &'a str,
    otlp: Option<(&'a str, &'a str)>,
    gateway_args: Vec<(&'static str, String)>,
    replica: Option<ReplicaSetup<'a>>,
    /// A database of the test's own server, instead of one on the suite's.
    database: Option<TestDatabase>,
}

/// A database on `pair`'s primary, analytics reading statistics from its replica while that is
/// no more than `max_lag_ms` behind.
struct ReplicaSetup<'a> {
    pair: &'a PostgresPair,
    max_lag_ms: u64,
}

impl SplitSetup<'_> {
    /// Services logging at debug level, so that the secrets test reads everything they can say.
    fn new(gateways: usize, redis: TestRedis) -> Self {
        let log = "debug,h2=info,hyper=info,tower=info";
        SplitSetup {
            gateways,
            replicas: 1,
            redis,
            log,
            otlp: None,
            gateway_args: vec![],
            replica: None,
            database: None,
        }
    }
}

/// Flags of the gateway's own (`--public-url`, `--client-ip-header`, …) as (flag, value) pairs:
/// the same in both modes, as the all-in-one process takes every gateway flag.
pub type GatewayFlags = &'static [(&'static str, &'static str)];

/// The database of an environment on `pair`'s primary, and the flags that give analytics its
/// replica.
async fn database_on_replica(pair: &PostgresPair, max_lag_ms: u64) -> (TestDatabase, [(&'static str, String); 2]) {
    let database = TestDatabase::create_on(pair.primary_url()).await;
    let replica = format!("{}/{}", pair.replica_url().rsplit_once('/').unwrap().0, database.name);
    let flags =
        [("--analytics-read-database-url", replica), ("--analytics-replica-max-lag-ms", max_lag_ms.to_string())];
    (database, flags)
}

/// A whole deployment under test and an HTTP client for it.
pub struct TestEnv {
    /// Base URL of each gateway, e.g. `http://127.0.0.1:40123`.
    pub gateways: Vec<String>,
    pub http: reqwest::Client,
    shutdown: Shutdown,
    processes: Vec<(String, Process)>,
    /// Flags naming this environment's storage, for operator commands.
    storage: Vec<(&'static str, String)>,
    /// Where each gRPC service listens (split mode), by role.
    pub services: Vec<(String, String)>,
    /// How a gateway of this environment is started (split mode), or the all-in-one process
    /// (`all_in_one_process`), for restarts.
    gateway_args: Vec<(&'static str, String)>,
    log_filter: String,
    _database: Option<TestDatabase>,
    _redis: Option<TestRedis>,
    _dir: tempfile::TempDir,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.trigger();
        // Processes go before the database they use.
        self.processes.clear();
    }
}

fn http_client() -> reqwest::Client {
    // Idle connections are dropped before the gateway's own idle timeout (10 s) closes them: a
    // request sent on one the gateway is closing would fail after a test's long pause.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

impl TestEnv {
    /// Every service in this process, SQLite under a temporary directory, in-process limiter.
    pub async fn all_in_one() -> TestEnv {
        TestEnv::all_in_one_with(&[]).await
    }

    /// The all-in-one process with flags of the gateway's own.
    pub async fn all_in_one_with_gateway(flags: GatewayFlags) -> TestEnv {
        let args: Vec<&str> = flags.iter().flat_map(|(flag, value)| [*flag, *value]).collect();
        TestEnv::all_in_one_with(&args).await
    }

    /// The split topology with one gateway given flags of its own.
    pub async fn split_with_gateway(flags: GatewayFlags) -> TestEnv {
        let args: Vec<(&'static str, String)> =
            flags.iter().map(|(flag, value)| (*flag, (*value).to_owned())).collect();
        TestEnv::split_with_gateway_args(1, &args).await
    }

    /// The all-in-one process with extra flags (e.g. `--database-url`).
    pub async fn all_in_one_with(extra: &[&str]) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let mut args: Vec<std::ffi::OsString> =
            ["zenovay", "--http-addr", "127.0.0.1:0", "--operator-token", OPERATOR_TOKEN]
                .into_iter()
                .chain(["--country-header", COUNTRY_HEADER])
                .chain(extra.iter().copied())
                .map(Into::into)
                .collect();
        args.extend(["--data-dir".into(), data_dir.clone().into_os_string()]);
        let cli = <zenovay::Cli as clap::Parser>::try_parse_from(args).expect("cli");
        let app = zenovay::AllInOne::build(&cli.settings).await.expect("all-in-one starts");
        let base = format!("http://{}", app.local_addr());
        let shutdown = Shutdown::default();
        tokio::spawn(app.run(shutdown.clone()));
        TestEnv {
            gateways: vec![base],
            http: http_client(),
            shutdown,
            processes: vec![],
            storage: vec![("--data-dir", data_dir.display().to_string())],
            services: vec![],
            gateway_args: vec![],
            log_filter: String::new(),
            _database: None,
            _redis: None,
            _dir: dir,
        }
    }

    /// The all-in-one binary as its own process on a fresh PostgreSQL database, without Redis:
    /// its limiter in-process, as on SQLite.
    pub async fn all_in_one_process_on_postgres() -> TestEnv {
        let database = TestDatabase::create().await;
        let args = [("--database-url", database.url.clone()), ("--key-hash-secrets", KEY_HASH_SECRETS.to_owned())];
        let mut env = TestEnv::all_in_one_process_with(&args).await;
        env._database = Some(database);
        env
    }

    /// The all-in-one binary on a PostgreSQL primary of `pair`, reading statistics from its
    /// streaming replica while that is no more than `max_lag_ms` behind (a process of its own, so
    /// that its `/metrics` has every service's); returns the name of the database too.
    pub async fn all_in_one_on_replica(pair: &PostgresPair, max_lag_ms: u64) -> (TestEnv, String) {
        let (database, replica) = database_on_replica(pair, max_lag_ms).await;
        let mut args =
            vec![("--database-url", database.url.clone()), ("--key-hash-secrets", KEY_HASH_SECRETS.to_owned())];
        args.extend(replica);
        let mut env = TestEnv::all_in_one_process_with(&args).await;
        let name = database.name.clone();
        env._database = Some(database);
        (env, name)
    }

    /// The all-in-one binary as its own process, as a newcomer runs it, logging at `info`: for
    /// benchmarks, whose load generator must not share the server's runtime, and for tests that
    /// read its `/metrics`, which no other test adds to.
    pub async fn all_in_one_process() -> TestEnv {
        TestEnv::all_in_one_process_with(&[]).await
    }

    /// The all-in-one binary as its own process, with extra flags.
    pub async fn all_in_one_process_with(extra: &[(&'static str, String)]) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data").display().to_string();
        let mut args = vec![
            ("--http-addr", "127.0.0.1:0".to_owned()),
            ("--data-dir", data_dir.clone()),
            ("--operator-token", OPERATOR_TOKEN.to_owned()),
            ("--country-header", COUNTRY_HEADER.to_owned()),
        ];
        args.extend(extra.iter().cloned());
        let log = "info,sqlx=warn";
        let (process, addr) = spawn("all", &args, dir.path(), log, None).expect("zenovay starts");
        TestEnv {
            gateways: vec![format!("http://{addr}")],
            http: http_client(),
            shutdown: Shutdown::default(),
            processes: vec![("all".to_owned(), process)],
            storage: vec![("--data-dir", data_dir)],
            services: vec![],
            gateway_args: args,
            log_filter: log.to_owned(),
            _database: None,
            _redis: None,
            _dir: dir,
        }
    }

    /// identity, policy, analytics and `gateways` gateways as separate processes, with
    /// PostgreSQL and Redis.
    pub async fn split(gateways: usize) -> TestEnv {
        TestEnv::split_on(gateways, TestRedis::create().await).await
    }

    /// The split topology using a given Redis. The services log at debug level, so that the
    /// secrets test reads everything they can say.
    pub async fn split_on(gateways: usize, redis: TestRedis) -> TestEnv {
        TestEnv::start_split(SplitSetup::new(gateways, redis)).await
    }

    /// The split topology with flags of the gateways' own (e.g. `--secret-scanning-keys-file`).
    pub async fn split_with_gateway_args(gateways: usize, args: &[(&'static str, String)]) -> TestEnv {
        let redis = TestRedis::create().await;
        let setup =
            SplitSetup { log: "info,sqlx=warn", gateway_args: args.to_vec(), ..SplitSetup::new(gateways, redis) };
        TestEnv::start_split(setup).await
    }

    /// The split topology exporting traces to an OTLP receiver over `protocol` (`grpc` or
    /// `http/protobuf`).
    pub async fn split_traced(gateways: usize, otlp_endpoint: &str, protocol: &str) -> TestEnv {
        let redis = TestRedis::create().await;
        let setup = SplitSetup {
            log: "info,sqlx=warn",
            otlp: Some((otlp_endpoint, protocol)),
            ..SplitSetup::new(gateways, redis)
        };
        TestEnv::start_split(setup).await
    }

    /// The split topology on a PostgreSQL primary of `pair`, analytics reading statistics from
    /// its streaming replica while that is no more than `max_lag_ms` behind, logging at `info`;
    /// returns the name of the database too.
    pub async fn split_on_replica(pair: &PostgresPair, max_lag_ms: u64) -> (TestEnv, String) {
        let redis = TestRedis::create().await;
        let setup = SplitSetup {
            log: "info,sqlx=warn",
            replica: Some(ReplicaSetup { pair, max_lag_ms }),
            ..SplitSetup::new(1, redis)
        };
        let env = TestEnv::start_split(setup).await;
        let name = env._database.as_ref().expect("a database").name.clone();
        (env, name)
    }

    /// The split topology on a database and a Redis of the test's own servers.
    #[allow(dead_code)] // not every test binary uses it
    pub async fn split_on_servers(database: TestDatabase, redis: TestRedis) -> TestEnv {
        let setup = SplitSetup { log: "info,sqlx=warn", database: Some(database), ..SplitSetup::new(1, redis) };
        TestEnv::start_split(setup).await
    }

    /// Two gateways, each calling replicas of policy and analytics of its own (identity is
    /// shared): what one replica caches, another changes.
    #[allow(dead_code)] // not every test binary uses it
    pub async fn split_replicas() -> TestEnv {
        TestEnv::split_replicas_on(TestRedis::create().await).await
    }

    /// The same on a given Redis.
    #[allow(dead_code)] // not every test binary uses it
    pub async fn split_replicas_on(redis: TestRedis) -> TestEnv {
        TestEnv::start_split(SplitSetup { replicas: 2, log: "info,sqlx=warn", ..SplitSetup::new(2, redis) }).await
    }

    /// The split topology logging as in production (`info`), for benchmarks.
    #[allow(dead_code)] // used by tests/bench only
    pub async fn split_quiet(gateways: usize) -> TestEnv {
        let setup = SplitSetup { log: "info,sqlx=warn", ..SplitSetup::new(gateways, TestRedis::create().await) };
        TestEnv::start_split(setup).await
    }

    async fn start_split(setup: SplitSetup<'_>) -> TestEnv {
        let SplitSetup { gateways, replicas, redis, log, otlp, gateway_args: extra, replica, database } = setup;
        let dir = tempfile::tempdir().expect("tempdir");
        let (database, analytics_args) = match (replica, database) {
            (Some(ReplicaSetup { pair, max_lag_ms }), _) => {
                let (database, flags) = database_on_replica(pair, max_lag_ms).await;
                (database, flags.to_vec())
            }
            (None, Some(database)) => (database, vec![]),
            (None, None) => (TestDatabase::create().await, vec![]),
        };
        let mut shared = vec![
            ("--database-url", database.url.clone()),
            ("--key-hash-secrets", KEY_HASH_SECRETS.to_owned()),
            // The CI machine runs many processes on two cores: a slow answer there is load on the
            // client side, not an outage (the outage test stops Redis outright).
            ("--redis-timeout-ms", "2000".to_owned()),
        ];
        shared.extend(redis.args());
        let mut processes = Vec::new();
        let mut services: Vec<(String, String)> = Vec::new();
        let roles = [("identity", "--identity-listen", 1), ("policy", "--policy-listen", replicas)];
        for (role, flag, count) in roles.into_iter().chain([("analytics", "--analytics-listen", replicas)]) {
            for _ in 0..count {
                let mut args = shared.clone();
                args.push((flag, "127.0.0.1:0".into()));
                if role == "analytics" {
                    args.extend(analytics_args.iter().cloned());
                }
                let (process, addr) = spawn(role, &args, dir.path(), log, otlp).expect("service starts");
                processes.push((role.to_owned(), process));
                services.push((role.to_owned(), format!("http://{addr}")));
            }
        }
        let url = |role: &str, n: usize| {
            let of_role: Vec<&String> = services.iter().filter(|(r, _)| r == role).map(|(_, url)| url).collect();
            of_role[n % of_role.len()].clone()
        };
        let mut bases = Vec::new();
        let args_of = |n: usize| {
            let mut args = shared.clone();
            args.extend([
                ("--http-addr", "127.0.0.1:0".to_owned()),
                ("--identity-url", url("identity", n)),
                ("--policy-url", url("policy", n)),
                ("--analytics-url", url("analytics", n)),
                ("--operator-token", OPERATOR_TOKEN.to_owned()),
                ("--country-header", COUNTRY_HEADER.to_owned()),
                ("--shutdown-drain-ms", "1000".to_owned()),
            ]);
            args.extend(extra.iter().cloned());
            args
        };
        for n in 0..gateways {
            let (process, addr) = spawn("gateway", &args_of(n), dir.path(), log, otlp).expect("gateway starts");
            processes.push(("gateway".to_owned(), process));
            bases.push(format!("http://{addr}"));
        }
        let gateway_args = args_of(0);
        let env = TestEnv {
            gateways: bases,
            http: http_client(),
            shutdown: Shutdown::default(),
            processes,
            services,
            gateway_args,
            log_filter: log.to_owned(),
            storage: vec![
                ("--database-url", database.url.clone()),
                ("--key-hash-secrets", KEY_HASH_SECRETS.to_owned()),
            ],
            _database: Some(database),
            _redis: Some(redis),
            _dir: dir,
        };
        for base in &env.gateways {
            let status = env.http.get(format!("{base}/healthz")).send().await.expect("healthz").status();
            assert_eq!(status, StatusCode::OK);
        }
        env
    }

    /// Runs `zenovay admin <args>` against this environment's storage; returns its stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let output = self.admin_output(args);
        assert!(output.status.success(), "zenovay admin failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// What `zenovay admin <args>` printed on its error output, when it failed as expected.
    pub fn admin_refused(&self, args: &[&str]) -> String {
        let output = self.admin_output(args);
        assert!(!output.status.success(), "zenovay admin succeeded: {}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8(output.stderr).expect("utf-8 output")
    }

    fn admin_output(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zenovay"));
        command.arg("admin").args(args);
        for (flag, value) in &self.storage {
            command.arg(flag).arg(value);
        }
        command.output().expect("run zenovay admin")
    }

    /// The process ids of the services this environment started, for benchmarks that read
    /// their CPU time.
    #[allow(dead_code)] // used by tests/bench only
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|(_, p)| p.child.id()).collect()
    }

    /// Each process this environment started, by role (`all` for the all-in-one binary).
    #[allow(dead_code)] // used by tests/bench only
    pub fn pids_by_role(&self) -> Vec<(String, u32)> {
        self.processes.iter().map(|(role, p)| (role.clone(), p.child.id())).collect()
    }

    /// The PostgreSQL database of this environment, when it has one.
    #[allow(dead_code)] // used by tests/bench only
    pub fn database_name(&self) -> Option<&str> {
        self._database.as_ref().map(|d| d.name.as_str())
    }

    /// The keys this environment keeps in Redis, each with its time to live in milliseconds (-1:
    /// none), in split mode on a single Redis; empty otherwise.
    pub fn redis_keys_and_ttls(&self) -> Vec<(String, i64)> {
        let Some(redis) = self._redis.as_ref().filter(|r| r.cluster_nodes.is_none()) else { return Vec::new() };
        let mut conn = redis::Client::open(redis.url.as_str()).and_then(|c| c.get_connection()).expect("redis");
        let keys = redis.keys(&mut conn);
        keys.into_iter()
            .map(|key| {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).expect("PTTL");
                (key, ttl)
            })
            .collect()
    }

    /// The value of one of the flags naming this environment's storage (`--data-dir`,
    /// `--database-url`).
    #[allow(dead_code)] // used by tests/bench only
    pub fn storage_flag(&self, flag: &str) -> Option<&str> {
        self.storage.iter().find(|(f, _)| *f == flag).map(|(_, value)| value.as_str())
    }

    /// Stops every process of a role (split mode), as a crash would.
    pub fn kill(&mut self, role: &str) {
        self.processes.retain(|(r, _)| r != role);
    }

    /// Stops gateway `index` with SIGTERM as an orchestrator would, waits for it to finish its
    /// in-flight requests and exit, then starts a new one; returns the new base URL.
    pub fn restart_gateway(&mut self, index: usize) -> String {
        let position = self.processes.iter().position(|(r, _)| r == "gateway").expect("a gateway") + index;
        let (_, mut process) = self.processes.remove(position);
        let pid = process.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let status = process.child.wait().expect("gateway exits");
        assert!(status.success(), "a SIGTERM is a clean exit: {status}");
        let (process, addr) =
            spawn("gateway", &self.gateway_args, self._dir.path(), &self.log_filter, None).expect("gateway restarts");
        self.processes.push(("gateway".to_owned(), process));
        self.gateways[index] = format!("http://{addr}");
        self.gateways[index].clone()
    }

    /// Stops the all-in-one process (`all_in_one_process`) with `signal` (`TERM`, as an
    /// orchestrator stops it, or `KILL`, as a crash would), then starts it again on the same
    /// storage; returns the new base URL.
    pub fn restart_all_in_one(&mut self, signal: &str) -> String {
        let position = self.processes.iter().position(|(r, _)| r == "all").expect("an all-in-one process");
        let (_, mut process) = self.processes.remove(position);
        let pid = process.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill").success());
        process.child.wait().expect("zenovay exits");
        let (process, addr) =
            spawn("all", &self.gateway_args, self._dir.path(), &self.log_filter, None).expect("zenovay restarts");
        self.processes.push(("all".to_owned(), process));
        self.gateways[0] = format!("http://{addr}");
        self.gateways[0].clone()
    }

    /// Everything the processes of a split environment have logged so far.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self._dir.path()).expect("log dir").flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }

    pub fn base(&self) -> &str {
        &self.gateways[0]
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base()))
    }

    /// Signs a new user up; returns their session and personal team.
    pub async fn user(&self, name: &str) -> TestUser {
        let email = format!("{name}-{}@example.com", random_suffix());
        let response = self
            .request(Method::POST, "/api/v1/auth/signup")
            .json(&json!({ "email": email, "password": "correct horse battery", "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        let session = body["data"]["session_token"].as_str().unwrap().to_owned();
        let user_id = body["data"]["user"]["id"].as_str().unwrap().to_owned();
        let teams = self.session_json(Method::GET, "/api/v1/teams", &session, None).await;
        let team_id = teams.1["data"][0]["id"].as_str().unwrap().to_owned();
        TestUser { email, session, user_id, team_id }
    }

    /// A dashboard call with a session; returns status and body.
    pub async fn session_json(
        &self,
        method: Method,
        path: &str,
        session: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path).bearer_auth(session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_json(request.send().await.unwrap()).await
    }

    pub async fn set_plan(&self, team_id: &str, plan: &str) {
        self.set_plan_with(team_id, plan, json!({})).await;
    }

    /// Sets a plan with limit overrides through the operator API.
    pub async fn set_plan_with(&self, team_id: &str, plan: &str, overrides: Value) {
        let response = self
            .request(Method::PUT, &format!("/api/v1/teams/{team_id}/plan"))
            .header("x-operator-token", OPERATOR_TOKEN)
            .json(&json!({ "plan": plan, "overrides": overrides }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "set plan");
    }

    /// Creates a key; returns the secret and the key's record.
    pub async fn create_key(&self, user: &TestUser, body: Value) -> (String, Value) {
        let (status, body) =
            self.session_json(Method::POST, "/api/v1/account/api-keys", &user.session, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "create key: {body}");
        (body["data"]["key"].as_str().unwrap().to_owned(), body["data"]["api_key"].clone())
    }

    /// An external API call with a key; returns status and body.
    pub async fn api(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, &format!("/api/external/v1{path}")).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_json(request.send().await.unwrap()).await
    }
}

/// A Pro user's website in `timezone` and a read-write key that reaches it: (key, website id,
/// domain).
pub async fn site_with_key(env: &TestEnv, prefix: &str, timezone: &str) -> (String, String, String) {
    let owner = env.user("owner").await;
    env.set_plan(&owner.team_id, "pro").await;
    let (key, _) =
        env.create_key(&owner, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let domain = format!("{prefix}-{}.example", &owner.user_id[..8]);
    let body = json!({ "team_id": owner.team_id, "domain": domain, "name": "S", "timezone": timezone });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    (key, site["data"]["id"].as_str().unwrap().to_owned(), domain)
}

/// Stores past events for a website through `zenovay admin import-events`, each a JSON object
/// with its time (`at`) as that command takes it.
pub fn import_events(env: &TestEnv, website_id: &str, events: &[Value]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(file.path(), lines.join("\n")).unwrap();
    let out = env.admin(&["import-events", website_id, file.path().to_str().unwrap()]);
    assert!(out.contains("stored"), "{out}");
}

pub struct TestUser {
    pub email: String,
    pub session: String,
    pub user_id: String,
    pub team_id: String,
}

/// A new team of `owner`'s on `plan`; its id.
pub async fn new_team(env: &TestEnv, owner: &TestUser, name: &str, plan: &str) -> String {
    let (status, body) =
        env.session_json(Method::POST, "/api/v1/teams", &owner.session, Some(json!({ "name": name }))).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    env.set_plan(&id, plan).await;
    id
}

/// `owner` adds `who` to `team_id` with `role`, through the dashboard API.
pub async fn add_member(env: &TestEnv, owner: &TestUser, team_id: &str, who: &TestUser, role: &str) {
    let (status, body) = env
        .session_json(
            Method::POST,
            &format!("/api/v1/teams/{team_id}/members"),
            &owner.session,
            Some(json!({ "email": who.email, "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["role"], role);
}

/// An error answer in the envelope: the status, `success: false`, the code, a message and a
/// timestamp.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (expected, Some(code)), "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["timestamp"].is_string(), "{body}");
}

/// A 400 `VALIDATION_ERROR` whose message starts with the field it names.
pub fn assert_refused(status: StatusCode, body: &Value, field: &str) {
    assert_error(status, body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&format!("{field}: ")), "{message:?} does not name {field}");
}

pub async fn into_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"));
    (status, value)
}

/// Runs `check` against a fresh SQLite directory and a fresh PostgreSQL database (its schemas
/// migrated already, see [`TestDatabase::create`]).
pub async fn on_each_backend<F, Fut>(check: F)
where
    F: Fn(common::db::Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_sqlite_and(TestDatabase::create().await, check).await
}

/// As [`on_each_backend`], with a PostgreSQL database without any schema: for the tests of the
/// migrations themselves.
pub async fn on_each_empty_backend<F, Fut>(check: F)
where
    F: Fn(common::db::Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_sqlite_and(TestDatabase::empty().await, check).await
}

async fn on_sqlite_and<F, Fut>(database: TestDatabase, check: F)
where
    F: Fn(common::db::Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    check(common::db::Backend::Sqlite { data_dir: dir.path().to_owned() }).await;
    check(common::db::Backend::Postgres { url: database.url.clone() }).await;
}

/// The identifier of [`ReportSigner`]'s key in its published-keys file.
pub const REPORT_KEY_ID: &str = "test-key-1";

/// Signs leaked-key reports as GitHub's secret-scanning programme does, with the file of public
/// keys (GitHub's shape) that a gateway is given to check them.
pub struct ReportSigner {
    key: p256::ecdsa::SigningKey,
    pub file: String,
    _dir: tempfile::TempDir,
}

impl ReportSigner {
    pub fn new() -> ReportSigner {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).expect("a PEM public key");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.json");
        let published = json!({ "public_keys": [{ "key_identifier": REPORT_KEY_ID, "key": pem, "is_current": true }] });
        std::fs::write(&path, published.to_string()).expect("keys file");
        ReportSigner { key, file: path.display().to_string(), _dir: dir }
    }

    /// The `Github-Public-Key-Signature` of `body`: base64 of the DER ECDSA signature.
    pub fn sign(&self, body: &str) -> String {
        use base64::Engine;
        use p256::ecdsa::signature::Signer;
        let signature: p256::ecdsa::Signature = self.key.sign(body.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

/// A Pro user "ann" with a read-write key and a website `{prefix}-….example`: the user, the key,
/// the domain and the website as created.
pub async fn pro_site(env: &TestEnv, prefix: &str) -> (TestUser, String, String, Value) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let domain = format!("{prefix}-{}.example", &ann.user_id[..8]);
    let (status, site) = env
        .api(Method::POST, "/websites", &key, Some(json!({ "team_id": ann.team_id, "domain": domain, "name": "S" })))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    (ann, key, domain, site)
}

/// Sends one event to the public endpoint as a browser with `user_agent` would (from the test's
/// address, so the user agent tells visitors apart); returns the status.
pub async fn track(env: &TestEnv, user_agent: &str, event: Value) -> StatusCode {
    let response = env
        .request(Method::POST, "/api/event")
        .header("user-agent", user_agent)
        .header(COUNTRY_HEADER, "US")
        .json(&event)
        .send()
        .await
        .unwrap();
    response.status()
}

/// A browser's user agent, one per `n`: distinct visitors from one address.
pub fn browser(n: u32) -> String {
    format!("Mozilla/5.0 (X11; Linux x86_64; rv:{n}.0) Gecko/20100101 Firefox/{n}.0")
}

/// A period as clients name it (`day`, `30d`, or `custom` with `YYYY-MM-DD,YYYY-MM-DD`) and its
/// `date`, as analytics' own requests carry them: the period asked and the day it ends on.
pub fn asked_period(name: &str, date: &str) -> (analytics::period::Asked, String) {
    use analytics::period::Asked;
    if name == proto::vocabulary::CUSTOM_PERIOD {
        let (first, last) = date.split_once(',').expect("a custom period has two days");
        return (Asked::Custom { first_day: first.into(), last_day: last.into() }, String::new());
    }
    let named = proto::analytics::v1::NamedPeriod::from_name(name).expect("a period's name");
    (Asked::Named(named), date.into())
}

/// A response header that must be there, as text.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap()
}

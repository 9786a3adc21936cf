//! Command line and configuration: compiled-in defaults, then `ZENOVAY_*` variables, then flags,
//! then validation.

use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::sync::Arc;

use common::access::Plan;
use common::bus::ChangeBus;
use common::db::Backend;
use common::redis_link::Target;
use identity::KeyHasher;
use policy::plans::Catalogue;

#[derive(Parser, Debug)]
#[command(name = "zenovay", version, about = "Zenovay analytics API platform", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Every service in one process, embedded storage, in-process limiter (the default).
    All,
    /// The HTTP gateway; reaches the services at their `*_URL`.
    Gateway,
    /// The identity service (users, sessions, teams, API keys) on `ZENOVAY_IDENTITY_LISTEN`.
    Identity,
    /// The policy service (plans, authorization, rate limits) on `ZENOVAY_POLICY_LISTEN`.
    Policy,
    /// The analytics service (websites, events, statistics) on `ZENOVAY_ANALYTICS_LISTEN`.
    Analytics,
    /// Operator commands, run against the configured storage.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Sets a team's plan (stands in for billing) and optional limit overrides.
    SetPlan {
        /// Team id.
        team_id: String,
        #[arg(value_parser = PossibleValuesParser::new(Plan::ALL.map(Plan::as_str)).try_map(|name| name.parse::<Plan>()))]
        plan: Plan,
        /// Requests a minute per key, instead of the plan's; at least 1, as through the operator API.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        requests_per_minute: Option<u32>,
        /// Requests a month per user, instead of the plan's.
        #[arg(long)]
        requests_per_month: Option<u64>,
        /// MCP tool calls a day per user, instead of the plan's.
        #[arg(long)]
        mcp_calls_per_day: Option<u32>,
    },
    /// Stores realistic made-up traffic for a website (for trials and benchmarks): visits with a
    /// daily rhythm, long-tailed pages, search and social sources, several countries and devices.
    GenerateEvents {
        /// Website id or domain.
        website: String,
        /// How many events, about.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Over how many days before now.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Same seed, same events.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Stores past events, each with its own time, through the same validation and visits as
    /// live ones: one JSON object per line, `{"at": RFC 3339, "name", "url", "referrer"?,
    /// "props"?, "user_agent", "ip", "country"?, "h"?, "sd"?, "e"?}`.
    ImportEvents {
        /// Website id or domain.
        website: String,
        /// The file of events, one per line.
        file: std::path::PathBuf,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, Default)]
pub enum LogFormatArg {
    #[default]
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// All-in-one only: seed a demo user, a Pro team and a website with 30 days of traffic, and
    /// print an API key and a curl line to try.
    #[arg(long, global = true)]
    pub demo: bool,
    /// Where the gateway listens for HTTP.
    #[arg(long, env = "ZENOVAY_HTTP_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub http_addr: SocketAddr,
    /// Directory of the embedded SQLite files (one per service).
    #[arg(long, env = "ZENOVAY_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// PostgreSQL URL; when set, used instead of SQLite (each service in its own schema).
    #[arg(long, env = "ZENOVAY_DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Redis URL; when set, limiter state and change notifications go through Redis.
    #[arg(long, env = "ZENOVAY_REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// A PostgreSQL streaming replica of `ZENOVAY_DATABASE_URL` that statistics queries are read
    /// from; writes, and reads that must see them, stay on the primary.
    #[arg(long, env = "ZENOVAY_ANALYTICS_READ_DATABASE_URL", hide_env_values = true, global = true)]
    pub analytics_read_database_url: Option<String>,
    /// Past this replication lag (milliseconds) statistics are read from the primary instead.
    #[arg(long, env = "ZENOVAY_ANALYTICS_REPLICA_MAX_LAG_MS", default_value_t = 5000, global = true)]
    pub analytics_replica_max_lag_ms: u64,
    /// Days of raw events kept; older ones are dropped once their days are rolled up (the
    /// daily totals stay). Unset keeps every event.
    #[arg(long, env = "ZENOVAY_EVENT_RETENTION_DAYS", global = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_retention_days: Option<u32>,
    /// Redis Cluster seed nodes, `redis://host:port,redis://host:port,…`; when set, used instead
    /// of `ZENOVAY_REDIS_URL` (limiter state and change notifications go to the cluster).
    #[arg(long, env = "ZENOVAY_REDIS_CLUSTER_NODES", hide_env_values = true, global = true)]
    pub redis_cluster_nodes: Option<String>,
    /// Prefix of every Redis key, so that several deployments can share one Redis.
    #[arg(long, env = "ZENOVAY_REDIS_PREFIX", default_value = "zenovay:", global = true)]
    pub redis_prefix: String,
    /// Server secrets keying the stored digests of API keys, `version:secret[,version:secret…]`,
    /// current first (older ones still verify, and keys are re-keyed on use). Required with
    /// PostgreSQL; with SQLite a secret is generated once into the data directory.
    #[arg(long, env = "ZENOVAY_KEY_HASH_SECRETS", hide_env_values = true, global = true)]
    pub key_hash_secrets: Option<String>,
    /// Bound on each rate-limit call to Redis, in milliseconds; a decision whose call passes it
    /// is a 503, and after three such calls in a row each policy replica decides alone with its
    /// share of the limit until Redis answers again.
    #[arg(long, env = "ZENOVAY_REDIS_TIMEOUT_MS", default_value_t = 100, global = true)]
    pub redis_timeout_ms: u64,
    /// JSON file of plan limits (`{"pro": {"api_access": true, "requests_per_minute": 30,
    /// "requests_per_month": 10000, "mcp_calls_per_day": 500}, …}`); plans left out, or no file,
    /// keep the built-in table (docs/behaviour.md#plans-limits-and-quotas).
    #[arg(long, env = "ZENOVAY_PLANS_FILE", global = true)]
    pub plans_file: Option<PathBuf>,
    /// Trusted header naming the client's address behind a proxy you run (e.g.
    /// `x-forwarded-for`, its last entry): tracker visitors, sign-in limits and API keys' IP
    /// allowlists go by it; unset = the connection's peer address.
    #[arg(long, env = "ZENOVAY_CLIENT_IP_HEADER", global = true)]
    pub client_ip_header: Option<String>,
    /// Trusted header carrying the visitor's ISO 3166 country code (e.g. `cf-ipcountry`); no
    /// GeoIP file is needed.
    #[arg(long, env = "ZENOVAY_COUNTRY_HEADER", global = true)]
    pub country_header: Option<String>,
    /// The origin clients reach the gateway at, behind a proxy or load balancer
    /// (`https://api.example.com`): OAuth metadata and `/mcp`'s challenge name it. Unset = taken
    /// from each request's `Host` header (and `X-Forwarded-Proto`), which suits local use only.
    #[arg(long, env = "ZENOVAY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// After SIGTERM, how long a gateway keeps answering (readiness 503, `Connection: close`), and
    /// a service (gRPC health NOT_SERVING), before it stops accepting, in milliseconds (at most
    /// a minute).
    #[arg(long, env = "ZENOVAY_SHUTDOWN_DRAIN_MS", default_value_t = 2000, global = true, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub shutdown_drain_ms: u64,
    /// How long a client has to send a request's headers, and how long an idle keep-alive
    /// connection stays open, in milliseconds.
    #[arg(long, env = "ZENOVAY_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, global = true)]
    pub http_header_timeout_ms: u64,
    /// How long a client has to send a request's whole body, in milliseconds.
    #[arg(long, env = "ZENOVAY_HTTP_BODY_TIMEOUT_MS", default_value_t = 30_000, global = true)]
    pub http_body_timeout_ms: u64,
    /// GitHub's secret-scanning public keys (their published JSON), which leak reports to
    /// `/api/v1/secret-scanning/reports` must be signed with; unset: reports are refused.
    #[arg(long, env = "ZENOVAY_SECRET_SCANNING_KEYS_FILE", global = true)]
    pub secret_scanning_keys_file: Option<std::path::PathBuf>,
    /// Credential of the operator API (`X-Operator-Token`); unset or empty turns the operator API off.
    #[arg(long, env = "ZENOVAY_OPERATOR_TOKEN", hide_env_values = true, global = true)]
    pub operator_token: Option<String>,
    /// Where the identity service listens (split mode).
    #[arg(long, env = "ZENOVAY_IDENTITY_LISTEN", default_value = "127.0.0.1:50051", global = true)]
    pub identity_listen: SocketAddr,
    /// Where the policy service listens (split mode).
    #[arg(long, env = "ZENOVAY_POLICY_LISTEN", default_value = "127.0.0.1:50052", global = true)]
    pub policy_listen: SocketAddr,
    /// Where the analytics service listens (split mode).
    #[arg(long, env = "ZENOVAY_ANALYTICS_LISTEN", default_value = "127.0.0.1:50053", global = true)]
    pub analytics_listen: SocketAddr,
    /// Where the gateway reaches the identity service (split mode).
    #[arg(long, env = "ZENOVAY_IDENTITY_URL", default_value = "http://127.0.0.1:50051", global = true)]
    pub identity_url: String,
    /// Where the gateway reaches the policy service (split mode).
    #[arg(long, env = "ZENOVAY_POLICY_URL", default_value = "http://127.0.0.1:50052", global = true)]
    pub policy_url: String,
    /// Where the gateway reaches the analytics service (split mode).
    #[arg(long, env = "ZENOVAY_ANALYTICS_URL", default_value = "http://127.0.0.1:50053", global = true)]
    pub analytics_url: String,
    /// Log filter, e.g. `info` or `info,zenovay=debug`.
    #[arg(
        long,
        env = "ZENOVAY_LOG",
        default_value = "info,sqlx=warn,opentelemetry=warn,opentelemetry_sdk=warn",
        global = true
    )]
    pub log: String,
    /// Log line format.
    #[arg(long, env = "ZENOVAY_LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: LogFormatArg,
}

impl Settings {
    /// Checks what clap's types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err("ZENOVAY_DATABASE_URL must be a postgres:// URL".into());
        }
        let redis = self.redis().map_err(|e| e.to_string())?;
        if let Some(url) = &self.analytics_read_database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err("ZENOVAY_ANALYTICS_READ_DATABASE_URL must be a postgres:// URL".into());
            }
            if self.database_url.is_none() {
                return Err("ZENOVAY_ANALYTICS_READ_DATABASE_URL needs ZENOVAY_DATABASE_URL (a replica of it)".into());
            }
        }
        telemetry::check_filter(&self.log).map_err(|e| format!("ZENOVAY_LOG is not a log filter: {e}"))?;
        if self.redis_prefix.is_empty() {
            return Err("ZENOVAY_REDIS_PREFIX must not be empty".into());
        }
        // Braces in a key name choose its hash slot; the limiter's keys choose their own.
        if redis.is_some_and(|r| r.is_cluster()) && self.redis_prefix.contains(['{', '}']) {
            return Err("ZENOVAY_REDIS_PREFIX must not contain { or } with a Redis Cluster".into());
        }
        if self.operator_token.as_ref().is_some_and(|t| !t.is_empty() && t.len() < 16) {
            return Err("ZENOVAY_OPERATOR_TOKEN must be at least 16 characters".into());
        }
        if let Some(url) = &self.public_url
            && public_origin(url).is_none()
        {
            return Err(
                "ZENOVAY_PUBLIC_URL must be an http:// or https:// origin, such as https://api.example.com".into()
            );
        }
        for (name, url) in [
            ("ZENOVAY_IDENTITY_URL", &self.identity_url),
            ("ZENOVAY_POLICY_URL", &self.policy_url),
            ("ZENOVAY_ANALYTICS_URL", &self.analytics_url),
        ] {
            // The services speak plaintext gRPC, for a private network (README, "Split mode").
            if !url.starts_with("http://") {
                return Err(format!(
                    "{name} must be an http:// URL: the services speak gRPC without TLS, on a private network"
                ));
            }
        }
        Ok(())
    }

    /// The Redis deployment: the cluster when seed nodes are given, else the single URL.
    pub fn redis(&self) -> Result<Option<Target>, common::redis_link::TargetError> {
        Target::from_settings(self.redis_url.as_deref(), self.redis_cluster_nodes.as_deref())
    }

    /// After SIGTERM, how long a process goes on answering before it stops accepting.
    fn drain(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_drain_ms)
    }

    pub fn backend(&self) -> Backend {
        Backend::from_config(self.data_dir.clone(), self.database_url.clone())
    }

    pub fn identity(&self) -> anyhow::Result<identity::Config> {
        Ok(identity::Config {
            listen: self.identity_listen,
            drain: self.drain(),
            backend: self.backend(),
            redis: self.redis()?,
            redis_prefix: self.redis_prefix.clone(),
            key_hasher: self.key_hasher()?,
        })
    }

    pub fn key_hasher(&self) -> anyhow::Result<KeyHasher> {
        let spec = match (&self.key_hash_secrets, &self.database_url) {
            (Some(spec), _) => spec.clone(),
            (None, Some(_)) => anyhow::bail!("ZENOVAY_KEY_HASH_SECRETS is required with ZENOVAY_DATABASE_URL"),
            (None, None) => self.generated_key_hash_secret()?,
        };
        KeyHasher::parse(&spec).map_err(anyhow::Error::msg)
    }

    /// The embedded mode's secret: made once, kept beside the data it protects, readable only by
    /// its owner.
    fn generated_key_hash_secret(&self) -> anyhow::Result<String> {
        let path = self.data_dir.join("key-hash.secret");
        if let Ok(spec) = std::fs::read_to_string(&path) {
            return Ok(spec.trim().to_owned());
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!("cannot create the data directory {} (ZENOVAY_DATA_DIR)", self.data_dir.display())
        })?;
        let spec = format!("1:{}", common::secret::random_token(""));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => std::io::Write::write_all(&mut file, spec.as_bytes())?,
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(std::fs::read_to_string(&path)?.trim().to_owned());
            }
            Err(e) => {
                let message = format!("cannot write the key-hash secret {} (ZENOVAY_DATA_DIR)", path.display());
                return Err(anyhow::Error::new(e).context(message));
            }
        }
        Ok(spec)
    }

    /// Redis pub/sub when Redis is configured.
    pub fn change_bus(&self) -> anyhow::Result<Option<Arc<dyn ChangeBus>>> {
        Ok(common::bus::redis(self.redis()?.as_ref(), &self.redis_prefix)?)
    }

    pub fn policy(&self) -> anyhow::Result<policy::Config> {
        let catalogue = match &self.plans_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read ZENOVAY_PLANS_FILE {}: {e}", path.display()))?;
                Catalogue::from_json(&text)
                    .map_err(|e| anyhow::anyhow!("ZENOVAY_PLANS_FILE {}: {e}", path.display()))?
            }
            None => Catalogue::default(),
        };
        Ok(policy::Config {
            catalogue,
            listen: self.policy_listen,
            drain: self.drain(),
            backend: self.backend(),
            redis: self.redis()?,
            redis_prefix: self.redis_prefix.clone(),
            redis_timeout: std::time::Duration::from_millis(self.redis_timeout_ms),
        })
    }

    pub fn analytics(&self) -> anyhow::Result<analytics::Config> {
        Ok(analytics::Config {
            listen: self.analytics_listen,
            drain: self.drain(),
            backend: self.backend(),
            storage: self.analytics_storage(),
            redis: self.redis()?,
            redis_prefix: self.redis_prefix.clone(),
        })
    }

    pub fn analytics_storage(&self) -> analytics::Storage {
        let read_replica = self.analytics_read_database_url.clone().map(|url| analytics::replica::ReadReplica {
            url,
            max_lag: std::time::Duration::from_millis(self.analytics_replica_max_lag_ms),
        });
        let retention =
            self.event_retention_days.and_then(std::num::NonZeroU32::new).map(analytics::retention::Retention);
        analytics::Storage { read_replica, retention, ..analytics::Storage::default() }
    }

    pub fn gateway(&self) -> gateway::Config {
        gateway::Config {
            http_addr: self.http_addr,
            operator_token: self.operator_token.clone().filter(|t| !t.is_empty()),
            client_ip_header: self.client_ip_header.clone(),
            country_header: self.country_header.clone(),
            public_url: self.public_url.as_deref().and_then(public_origin),
            drain: self.drain(),
            header_timeout: std::time::Duration::from_millis(self.http_header_timeout_ms),
            body_timeout: std::time::Duration::from_millis(self.http_body_timeout_ms),
            secret_scanning_keys_file: self.secret_scanning_keys_file.clone(),
        }
    }
}

/// An http(s) origin, optionally with a trailing slash, in its canonical form (lower-case
/// scheme and host, no default port): what the OAuth metadata prefixes its paths with.
fn public_origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let origin = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    origin.then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn set_plan_refuses_a_per_minute_limit_of_zero_as_the_operator_api_does() {
        let set_plan = |limit: &str| {
            Cli::try_parse_from(["zenovay", "admin", "set-plan", "t1", "pro", "--requests-per-minute", limit])
        };
        assert!(set_plan("1").is_ok());
        let refused = set_plan("0").unwrap_err().to_string();
        assert!(refused.contains("--requests-per-minute"), "{refused}");
    }
}

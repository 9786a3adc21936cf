//! The `zenovay` binary: runs every service in one process, or one service per process, and
//! operator commands. Each role is built (listeners bound, pools opened) then run.

pub mod cli;
mod demo;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use common::bus::MemoryBus;
use common::shutdown::Shutdown;
use common::transport::{in_process, remote};
use gateway::{Backends, Gateway};

pub use cli::{Cli, Command, Settings};

/// Every service in one process: the gateway calls each service's gRPC handlers in-process.
pub struct AllInOne {
    gateway: Gateway,
    identity: identity::Identity,
    policy: policy::Policy,
    analytics: analytics::Analytics,
}

impl AllInOne {
    pub async fn build(settings: &Settings) -> anyhow::Result<AllInOne> {
        let backend = settings.backend();
        // With Redis configured, notifications go through it (other processes may share the
        // data); otherwise they stay in this process.
        let changes = match settings.change_bus()? {
            Some(bus) => bus,
            None => Arc::new(MemoryBus::default()),
        };
        let identity = identity::Identity::open(&backend, settings.key_hasher()?, Some(changes.clone())).await?;
        let policy = settings.policy()?.open(Some(changes.clone())).await?;
        let storage = settings.analytics_storage();
        let analytics = analytics::Analytics::open_with(&backend, &storage).await?.announcing(changes.clone());
        analytics.spawn_upkeep(analytics::ROLLUP_EVERY, storage.retention);
        let backends = Backends {
            identity: in_process(identity.clone().into_grpc()),
            policy: in_process(policy.clone().into_grpc()),
            analytics: in_process(analytics.clone().into_grpc()),
            changes: Some(changes),
        };
        let gateway = Gateway::build(&settings.gateway(), backends).await?;
        Ok(AllInOne { gateway, identity, policy, analytics })
    }

    /// Seeds the `--demo` data and prints a key and a curl line to try.
    pub async fn seed_demo(&self) -> anyhow::Result<()> {
        demo::seed(&self.identity, &self.policy, &self.analytics, &format!("http://{}", self.local_addr())).await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.gateway.local_addr()
    }

    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.gateway.run(shutdown).await?;
        self.policy.keep_limiter().await;
        Ok(())
    }
}

/// The line a process prints once it accepts connections; the test harness waits for it.
fn announce(role: &str, addr: SocketAddr) {
    println!("zenovay {role} listening on {addr}");
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    settings.validate().map_err(anyhow::Error::msg)?;
    let role = match &cli.command {
        None | Some(Command::All) => "all",
        Some(Command::Gateway) => "gateway",
        Some(Command::Identity) => "identity",
        Some(Command::Policy) => "policy",
        Some(Command::Analytics) => "analytics",
        Some(Command::Admin(_)) => "admin",
    };
    if settings.demo && role != "all" {
        anyhow::bail!("--demo seeds the all-in-one mode only: run `zenovay --demo` (or `zenovay all --demo`)");
    }
    let _telemetry = telemetry::init(
        role,
        &settings.log,
        match settings.log_format {
            cli::LogFormatArg::Text => telemetry::LogFormat::Text,
            cli::LogFormatArg::Json => telemetry::LogFormat::Json,
        },
    );
    let shutdown = Shutdown::default();
    shutdown.on_signals();
    match cli.command.unwrap_or(Command::All) {
        Command::All => {
            let app = AllInOne::build(&settings).await?;
            if settings.demo {
                app.seed_demo().await?;
            }
            announce("all", app.local_addr());
            app.run(shutdown).await
        }
        Command::Gateway => {
            let backends = Backends {
                identity: remote(&settings.identity_url)?,
                policy: remote(&settings.policy_url)?,
                analytics: remote(&settings.analytics_url)?,
                changes: settings.change_bus()?,
            };
            let gateway = Gateway::build(&settings.gateway(), backends).await?;
            announce("gateway", gateway.local_addr());
            Ok(gateway.run(shutdown).await?)
        }
        Command::Identity => {
            let server = identity::Server::build(&settings.identity()?).await?;
            announce("identity", server.local_addr());
            Ok(server.run(shutdown).await?)
        }
        Command::Policy => {
            let server = policy::Server::build(&settings.policy()?).await?;
            announce("policy", server.local_addr());
            Ok(server.run(shutdown).await?)
        }
        Command::Analytics => {
            let server = analytics::Server::build(&settings.analytics()?).await?;
            announce("analytics", server.local_addr());
            Ok(server.run(shutdown).await?)
        }
        Command::Admin(command) => admin(&settings, command).await,
    }
}

async fn admin(settings: &Settings, command: cli::AdminCommand) -> anyhow::Result<()> {
    use policy::plans::Overrides;
    match command {
        cli::AdminCommand::SetPlan { team_id, plan, requests_per_minute, requests_per_month, mcp_calls_per_day } => {
            let backend = settings.backend();
            let identity = identity::Identity::open(&backend, settings.key_hasher()?, settings.change_bus()?).await?;
            identity.get_team(&team_id).await.context("no such team")?;
            let policy = settings.policy()?.open(None).await?;
            let overrides = Overrides { requests_per_minute, requests_per_month, mcp_calls_per_day };
            let settings = policy.set_plan(&team_id, plan, overrides).await?;
            // In the team's audit log as the operator API's change is (README, "Configuration").
            let o = &settings.overrides;
            let details = serde_json::json!({
                "plan": settings.plan.to_string(),
                "overrides": {
                    "requests_per_minute": o.requests_per_minute,
                    "requests_per_month": o.requests_per_month,
                    "mcp_calls_per_day": o.mcp_calls_per_day,
                },
            });
            identity.append_audit(&team_id, "operator", "team.plan_changed", &team_id, &details.to_string()).await?;
            let limits = policy.limits(&settings);
            println!(
                "team {team_id}: plan {}, {} requests/minute, {} requests/month, {} MCP calls/day",
                settings.plan, limits.requests_per_minute, limits.requests_per_month, limits.mcp_calls_per_day
            );
            Ok(())
        }
        cli::AdminCommand::GenerateEvents { website, events, days, seed } => {
            let analytics = analytics::Analytics::open(&settings.backend()).await?;
            let site = analytics.find_website(&website).await.context("no such website")?;
            let started = std::time::Instant::now();
            let now = common::time::now_ms();
            analytics.prepare_import(now - i64::from(days) * analytics::store::DAY_MS, now).await?;
            let traffic = analytics::generate::traffic(&site.domain, now, days, events, seed);
            let stored = analytics.import(traffic).await?;
            let secs = started.elapsed().as_secs_f64();
            let started = std::time::Instant::now();
            let rolled = analytics.roll_up_closed(common::time::now_ms()).await?;
            let rollup_secs = started.elapsed().as_secs_f64();
            println!(
                "{}: stored {stored} events over {days} days in {secs:.1} s, rolled up {rolled} days in {rollup_secs:.1} s",
                site.domain
            );
            Ok(())
        }
        cli::AdminCommand::ImportEvents { website, file } => import_events(settings, &website, &file).await,
    }
}

/// `zenovay admin import-events`: the file's events, then a rollup of the closed days they touch.
async fn import_events(settings: &Settings, website: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let analytics = analytics::Analytics::open(&settings.backend()).await?;
    let site = analytics.find_website(website).await.context("no such website")?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(|(i, line)| (i + 1, line)).collect();
    let refused = |number: usize| format!("line {number} (no event was stored)");
    let events = lines
        .iter()
        .map(|&(number, line)| analytics::backfill::event(&site.domain, line).with_context(|| refused(number)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Every line is checked before any is stored: a file refused midway would leave its first
    // part stored, and importing it again once mended would store that part twice.
    for (&(number, _), (ts, event)) in lines.iter().zip(&events) {
        analytics.check(event, *ts).await.with_context(|| refused(number))?;
    }
    // Only the days with events: a sparse file may span years.
    let days: std::collections::BTreeSet<i64> = events.iter().map(|(ts, _)| analytics::store::day_of(*ts)).collect();
    for day in days {
        analytics.prepare_import(day, day).await?;
    }
    let stored = analytics.import(events).await?;
    let rolled = analytics.roll_up_closed(common::time::now_ms()).await?;
    println!("{}: stored {stored} events, rolled up {rolled} days", site.domain);
    Ok(())
}

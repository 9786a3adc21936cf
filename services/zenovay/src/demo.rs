//! `--demo`: a user with a Pro team, a website with 30 days of generated traffic, and a key to
//! try the API with, all seeded through the services' own rules before the server starts; it
//! prints the console's address with the demo user's e-mail and password, the key and a curl line.

use anyhow::Context;
use common::access::{Grant, KeyTeams};
use common::secret::random_token;
use gateway::apikey::ApiKeySecret;
use identity::service::NewApiKey;
use indicatif::{ProgressBar, ProgressStyle};
use policy::plans::{Overrides, Plan};

const EMAIL: &str = "demo@zenovay.local";
const DOMAIN: &str = "demo.zenovay.example";
const EVENTS: u64 = 60_000;

/// Seeds the demo and prints how to use it.
pub async fn seed(
    identity: &identity::Identity,
    policy: &policy::Policy,
    analytics: &analytics::Analytics,
    base_url: &str,
) -> anyhow::Result<()> {
    let password = random_token("")[..20].to_owned();
    let (user, _session) = identity.signup(EMAIL, &password, "Demo").await.context(
        "the demo was already seeded in this data directory; start with an empty --data-dir to seed it again",
    )?;
    let team = identity.list_teams(&user.id).await?.into_iter().next().context("the demo user has no team")?;
    policy.set_plan(&team.team.id, Plan::Pro, Overrides::default()).await?;
    let website = analytics.create_website(&team.team.id, DOMAIN, "Demo site", Some("UTC")).await?;

    let bar = ProgressBar::new(EVENTS).with_style(
        ProgressStyle::with_template("seeding 30 days of traffic {bar:40} {pos}/{len} events")
            .expect("a valid template"),
    );
    let now = common::time::now_ms();
    analytics.prepare_import(now - 30 * analytics::store::DAY_MS, now).await?;
    let traffic = analytics::generate::traffic(DOMAIN, now, 30, EVENTS, 42).inspect(|_| bar.inc(1));
    analytics.import(traffic).await?;
    bar.finish();
    analytics.roll_up_closed(common::time::now_ms()).await?;

    let secret = ApiKeySecret::generate();
    let key = NewApiKey {
        user_id: user.id,
        name: "demo".into(),
        grant: Grant::Full,
        teams: KeyTeams::All,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at: None,
        allowed_ips: vec![],
    };
    identity.create_api_key(key).await?;
    println!("console: {base_url}/login (log in as {EMAIL} with password {password})");
    println!("demo API key (shown once): {}", secret.expose());
    println!(
        "try: curl -H 'Authorization: Bearer {}' '{base_url}/api/external/v1/analytics/{}?range=30d'",
        secret.expose(),
        website.id
    );
    Ok(())
}

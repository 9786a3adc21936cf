//! Policy keeps team settings and gateways keep website lists, evicted by change notifications
//! (ARCHITECTURE.md, "Change notifications"): a change applies to the next request on the
//! replica that made it and reaches every other replica within a second, a lost channel
//! included (docs/behaviour.md#effective-access).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{RedisServer, TestEnv, TestRedis, TestUser};

/// An Enterprise user allowed `per_minute` requests, with a read-write key.
async fn keyed(env: &TestEnv, per_minute: u32) -> (TestUser, String) {
    let ann = env.user("ann").await;
    env.set_plan_with(&ann.team_id, "enterprise", json!({ "requests_per_minute": per_minute })).await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    (ann, key)
}

/// `GET /websites` through gateway `gateway` with `key`.
async fn list(env: &TestEnv, gateway: usize, key: &str) -> reqwest::Response {
    let url = format!("{}/api/external/v1/websites", env.gateways[gateway]);
    env.http.get(url).bearer_auth(key).send().await.unwrap()
}

/// The domains `GET /websites` lists through gateway `gateway`.
async fn domains(env: &TestEnv, gateway: usize, key: &str) -> Vec<String> {
    let response = list(env, gateway, key).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["data"].as_array().unwrap().iter().map(|w| w["domain"].as_str().unwrap().to_owned()).collect()
}

/// Asks until `seen` holds, for 10 seconds at most.
async fn until<F, Fut>(what: &str, seen: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !seen().await {
        assert!(start.elapsed() < Duration::from_secs(10), "never seen: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn limit_on(env: &TestEnv, gateway: usize, key: &str) -> String {
    let response = list(env, gateway, key).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["x-ratelimit-limit"].to_str().unwrap().to_owned()
}

/// Both replicas have decided for the team (policy cached its settings); a plan change through
/// one applies there on the next request and reaches the other.
#[tokio::test]
async fn a_plan_change_reaches_every_policy_replica() {
    let env = TestEnv::split_replicas().await;
    let (ann, key) = keyed(&env, 500).await;
    for gateway in 0..2 {
        assert_eq!(limit_on(&env, gateway, &key).await, "500");
    }
    env.set_plan_with(&ann.team_id, "enterprise", json!({ "requests_per_minute": 400 })).await;
    assert_eq!(limit_on(&env, 0, &key).await, "400", "at once on the replica that made the change");
    until("the new limit on the other replica", || async { limit_on(&env, 1, &key).await == "400" }).await;
}

/// A team's key policy tightened through one replica: a member's key loses the team on the other.
#[tokio::test]
async fn a_key_policy_change_reaches_every_policy_replica() {
    let env = TestEnv::split_replicas().await;
    let (ann, _) = keyed(&env, 500).await;
    let bob = env.user("bob").await;
    crate::harness::add_member(&env, &ann, &ann.team_id, &bob, "member").await;
    let (key, _) = env.create_key(&bob, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    for gateway in 0..2 {
        assert_eq!(list(&env, gateway, &key).await.status(), StatusCode::OK);
    }
    let policy = json!({ "policy": "admins_only" });
    let path = format!("/api/v1/teams/{}/api-key-policy", ann.team_id);
    assert_eq!(env.session_json(Method::PUT, &path, &ann.session, Some(policy)).await.0, StatusCode::OK);
    // Bob's own team is free: without Acme's plan the key has no API access.
    assert_eq!(list(&env, 0, &key).await.status(), StatusCode::FORBIDDEN);
    until("the key policy on the other replica", || async {
        list(&env, 1, &key).await.status() == StatusCode::FORBIDDEN
    })
    .await;
}

/// Both gateways have listed the team's websites; websites created, renamed and deleted through
/// one are listed so at once there and soon on the other.
#[tokio::test]
async fn website_changes_reach_every_gateway() {
    let env = TestEnv::split_replicas().await;
    let (ann, key) = keyed(&env, 1000).await;
    for gateway in 0..2 {
        assert!(domains(&env, gateway, &key).await.is_empty());
    }
    let domain = format!("cached-{}.example", &ann.user_id[..8]);
    let body = json!({ "team_id": ann.team_id, "domain": domain, "name": "S" });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(domains(&env, 0, &key).await, std::slice::from_ref(&domain));
    until("the new website on the other replica", || async { domains(&env, 1, &key).await == [domain.clone()] }).await;

    let id = site["data"]["id"].as_str().unwrap();
    let names = |gateway: usize| {
        let key = key.clone();
        let env = &env;
        async move {
            let body: Value = list(env, gateway, &key).await.json().await.unwrap();
            body["data"][0]["name"].as_str().map(str::to_owned)
        }
    };
    let (status, _) = env.api(Method::PATCH, &format!("/websites/{id}"), &key, Some(json!({ "name": "T" }))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(0).await.as_deref(), Some("T"));
    until("the new name on the other replica", || async { names(1).await.as_deref() == Some("T") }).await;

    assert_eq!(env.api(Method::DELETE, &format!("/websites/{id}"), &key, None).await.0, StatusCode::OK);
    assert!(domains(&env, 0, &key).await.is_empty());
    until("the deletion on the other replica", || async { domains(&env, 1, &key).await.is_empty() }).await;
}

/// With Redis gone no notification can be sent or heard: each replica empties its cache and
/// reads its store until the channel is back, so changes still reach every replica.
#[tokio::test]
async fn with_the_change_channel_lost_changes_still_reach_every_replica() {
    let mut redis = RedisServer::start();
    let env = TestEnv::split_replicas_on(TestRedis::at(redis.url()).await).await;
    let (ann, key) = keyed(&env, 1000).await;
    for gateway in 0..2 {
        assert!(domains(&env, gateway, &key).await.is_empty());
    }
    redis.stop();
    // The first decisions without Redis are 503s (a failed call may have been a moment's delay);
    // once a policy replica's breaker is open it decides in-process. Each gateway has its own.
    for gateway in 0..2 {
        until("decisions made in-process", || async { list(&env, gateway, &key).await.status() == StatusCode::OK })
            .await;
    }
    let domain = format!("lost-{}.example", &ann.user_id[..8]);
    let body = json!({ "team_id": ann.team_id, "domain": domain, "name": "S" });
    let create = env.request(Method::POST, "/api/external/v1/websites").bearer_auth(&key).json(&body);
    assert_eq!(create.send().await.unwrap().status(), StatusCode::CREATED);
    until("the new website on the other replica", || async { domains(&env, 1, &key).await == [domain.clone()] }).await;
    env.set_plan(&ann.team_id, "free").await;
    until("the downgrade on the other replica", || async {
        list(&env, 1, &key).await.status() == StatusCode::FORBIDDEN
    })
    .await;
}

/// In either mode a website change is listed by the next request.
async fn website_changes_are_listed_at_once(env: &TestEnv) {
    let (ann, key) = keyed(env, 1000).await;
    assert!(domains(env, 0, &key).await.is_empty());
    let domain = format!("now-{}.example", &ann.user_id[..8]);
    let body = json!({ "team_id": ann.team_id, "domain": domain, "name": "S" });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(domains(env, 0, &key).await, [domain]);
    let id = site["data"]["id"].as_str().unwrap();
    assert_eq!(env.api(Method::DELETE, &format!("/websites/{id}"), &key, None).await.0, StatusCode::OK);
    assert!(domains(env, 0, &key).await.is_empty());
}

both_modes!(website_changes_are_listed_at_once);

/// The sum of a counter's series with `result` in the gateway's `/metrics`.
async fn lookups(env: &TestEnv, counter: &str, result: &str) -> f64 {
    let text = env.request(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let label = format!("result=\"{result}\"");
    let series = text.lines().filter(|l| l.starts_with(counter) && l.contains(&label));
    series.map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap()).sum()
}

/// A key and its team's websites in steady use are read again in the background before they
/// expire: after the first request, requests do not wait for identity and analytics.
async fn a_key_in_steady_use_waits_only_for_its_first_verification(env: &TestEnv) {
    let (_, key) = keyed(env, 100_000).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        assert_eq!(list(env, 0, &key).await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for counter in ["zenovay_key_cache_lookups_total", "zenovay_website_cache_lookups_total"] {
        refreshed_in_steady_use(env, counter).await;
    }
}

/// Without refreshes, four seconds of use would miss at least four times; a second miss is
/// allowed for a notice or a slow read of a busy machine.
async fn refreshed_in_steady_use(env: &TestEnv, counter: &str) {
    let misses = lookups(env, counter, "miss").await;
    assert!((1.0..=2.0).contains(&misses), "{counter}: {misses} misses");
    assert!(lookups(env, counter, "refresh").await >= 3.0, "{counter}: refreshed while it served");
}

// Processes of their own, whose metrics no other test adds to.
#[tokio::test]
async fn a_key_in_steady_use_waits_only_for_its_first_verification_all_in_one() {
    let env = TestEnv::all_in_one_process().await;
    a_key_in_steady_use_waits_only_for_its_first_verification(&env).await;
    // Policy's team settings too: its metrics reach `/metrics` in this mode only (the split
    // mode's services send theirs over OTLP).
    refreshed_in_steady_use(&env, "zenovay_settings_cache_lookups_total").await;
}

#[tokio::test]
async fn a_key_in_steady_use_waits_only_for_its_first_verification_split() {
    a_key_in_steady_use_waits_only_for_its_first_verification(&TestEnv::split(1).await).await;
}

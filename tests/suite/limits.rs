//! Plans, per-minute limits and monthly quotas (docs/behaviour.md#plans-limits-and-quotas), through the gateway.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{RedisCluster, TestEnv, TestRedis, TestUser, header};

async fn keyed_user(env: &TestEnv, overrides: Value, permissions: Value) -> (TestUser, String) {
    let user = env.user("limits").await;
    env.set_plan_with(&user.team_id, "pro", overrides).await;
    let (key, _) = env.create_key(&user, json!({ "name": "k", "permissions": permissions, "teams": "all" })).await;
    (user, key)
}

async fn headers_and_refunds(env: &TestEnv) {
    let (user, key) = keyed_user(env, json!({}), json!(["read", "write"])).await;
    let get = || env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send();
    let first = get().await.unwrap();
    assert_eq!(header(&first, "x-ratelimit-limit"), "30");
    assert_eq!(header(&first, "x-ratelimit-remaining"), "29");
    assert!(header(&first, "x-ratelimit-reset").parse::<i64>().unwrap() > 1_700_000_000);
    assert_eq!(header(&first, "x-usage-monthly"), "1");
    assert_eq!(header(&first, "x-usage-limit"), "10000");
    assert!(header(&first, "x-usage-reset").ends_with("-01T00:00:00.000Z"), "start of next month");
    assert_eq!(header(&first, "ratelimit-policy"), "\"per-minute\";q=30;w=60");
    assert!(header(&first, "ratelimit").starts_with("\"per-minute\";r=29;t="));

    // Refused requests (400, 403) carry the headers and consume nothing.
    let bad = env
        .request(Method::POST, "/api/external/v1/websites")
        .bearer_auth(&key)
        .json(&json!({ "team_id": user.team_id, "domain": "not a domain", "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&bad, "x-ratelimit-remaining"), "29");
    let forbidden = env
        .request(Method::GET, &format!("/api/external/v1/teams/{}/members", user.team_id))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&forbidden, "x-ratelimit-remaining"), "29");
    assert_eq!(header(&forbidden, "x-usage-monthly"), "1");
    // Input wrong before its resource is known (a body that does not parse, a missing
    // `site_id`, in both API shapes) is decided first, so its 400 carries the headers too.
    let unparsable = env
        .request(Method::POST, "/api/external/v1/websites")
        .bearer_auth(&key)
        .json(&json!({ "team_id": user.team_id, "domain": "example.com", "name": "x", "colour": "red" }))
        .send()
        .await
        .unwrap();
    let no_site = env.request(Method::GET, "/api/external/v1/stats/aggregate").bearer_auth(&key).send().await.unwrap();
    let no_site_v2 = env
        .request(Method::POST, "/api/external/v1/plausible/api/v2/query")
        .bearer_auth(&key)
        .json(&json!({ "metrics": ["visitors"], "date_range": "7d" }))
        .send()
        .await
        .unwrap();
    for refused in [&unparsable, &no_site, &no_site_v2] {
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(refused, "x-ratelimit-remaining"), "29");
        assert_eq!(header(refused, "x-usage-monthly"), "1");
    }
    let second = get().await.unwrap();
    assert_eq!(header(&second, "x-ratelimit-remaining"), "28");
    assert_eq!(header(&second, "x-usage-monthly"), "2");

    let (status, usage) = env.api(Method::GET, "/usage", &key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["data"]["plan"], "pro");
    assert_eq!(
        usage["data"]["limits"],
        json!({ "requests_per_minute": 30, "requests_per_month": 10000, "mcp_calls_per_day": 500 })
    );
    assert_eq!(usage["data"]["usage"]["requests_this_month"], 3);
    assert_eq!(usage["data"]["usage"]["requests_left_this_month"], 9997);
}

async fn per_minute_limit(env: &TestEnv) {
    let (user, key) = keyed_user(env, json!({ "requests_per_minute": 3 }), json!("full")).await;
    for remaining in ["2", "1", "0"] {
        let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
        assert_eq!((response.status(), header(&response, "x-ratelimit-remaining")), (StatusCode::OK, remaining));
    }
    let limited = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&limited, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&limited, "x-usage-monthly"), "3", "a 429 consumes nothing");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
    // Repeated without asking policy (the gateway's refusal cache), it still counts down to the
    // slot that frees.
    let again = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_again: u64 = header(&again, "retry-after").parse().unwrap();
    assert!(retry_again <= retry && retry_again + 1 >= retry, "Retry-After {retry_again} after {retry}");

    // An upgrade applies to the next request.
    env.set_plan_with(&user.team_id, "pro", json!({ "requests_per_minute": 4 })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::TOO_MANY_REQUESTS);
}

/// The scope is checked before the limits (docs/behaviour.md#authorization-of-a-request), also
/// once the key is over its limit and the gateway repeats the refusal itself.
async fn a_key_over_its_limit_is_still_refused_for_a_scope_it_lacks(env: &TestEnv) {
    let (user, key) = keyed_user(env, json!({ "requests_per_minute": 1 }), json!(["read"])).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::TOO_MANY_REQUESTS);
    let body = json!({ "team_id": user.team_id, "domain": "scope.example", "name": "S" });
    let (status, body) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::FORBIDDEN, &json!("INSUFFICIENT_SCOPE")), "{body}");
}

async fn monthly_quota(env: &TestEnv) {
    let (user, key) = keyed_user(env, json!({ "requests_per_month": 2 }), json!("full")).await;
    // The quota is the user's: a second key shares it.
    let (other, _) = env.create_key(&user, json!({ "name": "k2", "permissions": ["read"], "teams": "all" })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    assert_eq!(env.api(Method::GET, "/websites", &other, None).await.0, StatusCode::OK);
    let spent = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&spent, "retry-after").parse().unwrap();
    assert!(retry > 0);
    let spent_again = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    let retry_again: u64 = header(&spent_again, "retry-after").parse().unwrap();
    assert!(
        retry_again <= retry && retry_again + 1 >= retry,
        "a repeated refusal waits for the month too: {retry_again} after {retry}"
    );
    assert_eq!(header(&spent, "x-usage-monthly"), "2");
    let body: Value = spent.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MONTHLY_LIMIT_EXCEEDED");
    let again = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&other).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&again, "x-usage-monthly"), "2", "a refusal consumes none of the month");
}

/// The highest plan among a key's teams applies, with that team's override: a lower plan's
/// larger override does not carry over (docs/behaviour.md#plans-limits-and-quotas).
async fn the_highest_plan_applies(env: &TestEnv) {
    let (user, key) = keyed_user(env, json!({ "requests_per_minute": 500 }), json!(["read"])).await;
    let limit = || async {
        let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        header(&response, "x-ratelimit-limit").to_owned()
    };
    assert_eq!(limit().await, "500", "one pro team, with its override");
    let (status, team) =
        env.session_json(Method::POST, "/api/v1/teams", &user.session, Some(json!({ "name": "Scale" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let scale = team["data"]["id"].as_str().unwrap();
    env.set_plan(scale, "scale").await;
    assert_eq!(limit().await, "60", "scale's own limit, not pro's override");
    env.set_plan_with(scale, "scale", json!({ "requests_per_minute": 7 })).await;
    assert_eq!(limit().await, "7");
}

/// Bad requests sent at once beside good ones hold no slot: every good one within the limit is
/// let through, whatever the bad ones' timing (a bad one that finds the limit used up is refused
/// for it, the limit coming before the input).
async fn bad_requests_sent_beside_good_ones_take_no_slot_from_them(env: &TestEnv) {
    let (user, key) = keyed_user(env, json!({ "requests_per_minute": 10 }), json!(["read", "write"])).await;
    let site = json!({ "team_id": user.team_id, "domain": format!("bad-{}.example", &user.user_id[..8]), "name": "W" });
    let (status, site) = env.session_json(Method::POST, "/api/v1/websites", &user.session, Some(site)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    let (id, domain) = (site["data"]["id"].as_str().unwrap(), site["data"]["domain"].as_str().unwrap());
    let bad = json!({ "team_id": user.team_id, "domain": "bad.example", "name": "W", "bogus": 1 });
    let external = |method: Method, path: String| env.request(method, &format!("/api/external/v1{path}"));
    // Input refused before the site is known, and input refused once it is, on every face.
    let sends = (0..40).map(|i| {
        let request = match (i % 4, i / 4 % 6) {
            (0, _) => external(Method::GET, "/websites".into()),
            (_, 0) => external(Method::POST, "/websites".into()).json(&bad),
            (_, 1) => external(Method::GET, format!("/analytics/{id}?range=bad")),
            (_, 2) => external(Method::GET, format!("/stats/aggregate?site_id={id}&metrics=nope")),
            (_, 3) => {
                external(Method::POST, format!("/query/{id}")).json(&json!({ "metrics": ["nope"], "date_range": "7d" }))
            }
            (_, 4) => external(Method::PATCH, format!("/websites/{id}")).json(&json!({ "timezone": "Nowhere/X" })),
            _ => external(Method::GET, format!("/plausible/api/v1/stats/aggregate?site_id={domain}&period=zz")),
        };
        let request = request.bearer_auth(&key);
        async move { (i % 4 == 0, request.send().await.unwrap().status()) }
    });
    let answers = futures::future::join_all(sends).await;
    let good: Vec<StatusCode> = answers.iter().filter(|(good, _)| *good).map(|(_, status)| *status).collect();
    assert_eq!(good, [StatusCode::OK; 10], "{answers:?}");
    let bad = [StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS];
    assert!(answers.iter().filter(|(good, _)| !*good).all(|(_, s)| bad.contains(s)), "{answers:?}");
}

async fn a_path_that_does_not_decode_is_a_400_carrying_the_keys_budget(env: &TestEnv) {
    let (_, key) = keyed_user(env, json!({}), json!(["read", "write"])).await;
    for path in ["/websites/%FF", "/websites/a%01b", "/analytics/%FF/pages"] {
        let response =
            env.request(Method::GET, &format!("/api/external/v1{path}")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(header(&response, "x-ratelimit-remaining"), "30", "{path}: taking nothing");
        assert_eq!(header(&response, "x-usage-monthly"), "0", "{path}");
        let (_, body) = crate::harness::into_json(response).await;
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{path}");
    }
}

async fn a_website_out_of_reach_or_unknown_is_refused_before_the_input_is(env: &TestEnv) {
    let (owner, _) = keyed_user(env, json!({}), json!("full")).await;
    let site =
        json!({ "team_id": owner.team_id, "domain": format!("reach-{}.example", &owner.user_id[..8]), "name": "W" });
    let (status, site) = env.session_json(Method::POST, "/api/v1/websites", &owner.session, Some(site)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    let theirs = site["data"]["id"].as_str().unwrap().to_owned();
    let (_, stranger) = keyed_user(env, json!({}), json!("full")).await;
    let unknown = "01a24c99-0000-7000-8000-000000000000";
    for (id, expected) in [(theirs.as_str(), StatusCode::FORBIDDEN), (unknown, StatusCode::NOT_FOUND)] {
        let bad_range = env.request(Method::GET, &format!("/api/external/v1/analytics/{id}?range=bad"));
        let bad_metric = env.request(Method::POST, &format!("/api/external/v1/query/{id}"));
        let bad_metric = bad_metric.json(&json!({ "metrics": ["nope"], "date_range": "7d" }));
        for request in [bad_range, bad_metric] {
            let response = request.bearer_auth(&stranger).send().await.unwrap();
            assert_eq!(response.status(), expected, "{id}");
        }
    }
}

/// A body naming another team (a new website) or another team's site (a Plausible goal) is
/// refused for that first, as the same body made right would be, whatever else is wrong in it.
async fn a_body_naming_a_team_out_of_reach_is_refused_for_that_before_its_fields(env: &TestEnv) {
    let (owner, _) = keyed_user(env, json!({}), json!("full")).await;
    let domain = format!("fields-{}.example", &owner.user_id[..8]);
    let site = json!({ "team_id": owner.team_id, "domain": domain, "name": "W" });
    let (status, site) = env.session_json(Method::POST, "/api/v1/websites", &owner.session, Some(site)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    let (_, stranger) = keyed_user(env, json!({}), json!("full")).await;
    let send = |method: Method, path: &str, body: Value| {
        let request = env.request(method, &format!("/api/external/v1{path}")).bearer_auth(&stranger).json(&body);
        async move { request.send().await.unwrap().status() }
    };
    let good = json!({ "team_id": owner.team_id, "domain": "new.example", "name": "N" });
    let bad = json!({ "team_id": owner.team_id, "domain": "!!", "name": "" });
    let refused = send(Method::POST, "/websites", good).await;
    assert_eq!(refused, StatusCode::FORBIDDEN);
    assert_eq!(send(Method::POST, "/websites", bad).await, refused);
    let good = json!({ "site_id": domain, "goal_type": "event", "event_name": "Signup" });
    let bad = json!({ "site_id": domain, "goal_type": "event" });
    let refused = send(Method::PUT, "/plausible/api/v1/sites/goals", good).await;
    assert!(refused.is_client_error() && refused != StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(send(Method::PUT, "/plausible/api/v1/sites/goals", bad).await, refused);
}

both_modes!(
    a_body_naming_a_team_out_of_reach_is_refused_for_that_before_its_fields,
    a_website_out_of_reach_or_unknown_is_refused_before_the_input_is,
    a_path_that_does_not_decode_is_a_400_carrying_the_keys_budget,
    bad_requests_sent_beside_good_ones_take_no_slot_from_them,
    headers_and_refunds,
    per_minute_limit,
    a_key_over_its_limit_is_still_refused_for_a_scope_it_lacks,
    monthly_quota,
    the_highest_plan_applies
);

/// The window logs and monthly counters the limiter keeps in Redis all expire, those made by
/// admitted requests and by refused ones alike.
#[tokio::test]
async fn every_counter_the_limiter_keeps_in_redis_expires() {
    let env = TestEnv::split(1).await;
    let (_, key) = keyed_user(&env, json!({ "requests_per_minute": 2, "requests_per_month": 3 }), json!("full")).await;
    let statuses = futures::future::join_all((0..4).map(|_| async {
        env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap().status()
    }))
    .await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 2, "{statuses:?}");
    let (_, spent) = keyed_user(&env, json!({ "requests_per_month": 0 }), json!("full")).await;
    let refused = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&spent).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let keys = env.redis_keys_and_ttls();
    for kind in [":rl:", ":mq:"] {
        assert!(keys.iter().any(|(key, _)| key.contains(kind)), "no {kind} key in {keys:?}");
    }
    let persistent: Vec<_> = keys.iter().filter(|(_, ttl)| *ttl == -1).collect();
    assert!(persistent.is_empty(), "{persistent:?}");
}

/// 200 concurrent requests on one key through three replicas: exactly the limit gets through.
#[tokio::test]
async fn the_limit_is_exact_across_replicas() {
    exactly_the_limit_passes(&TestEnv::split(3).await).await;
}

/// The same on a 3-master Redis Cluster: one decision is still one atomic script.
#[tokio::test]
async fn the_limit_is_exact_across_replicas_on_a_redis_cluster() {
    let cluster = RedisCluster::start(0);
    exactly_the_limit_passes(&TestEnv::split_on(3, TestRedis::on_cluster(&cluster)).await).await;
}

async fn exactly_the_limit_passes(env: &TestEnv) {
    let (_, key) = keyed_user(env, json!({ "requests_per_minute": 50 }), json!(["read"])).await;
    let calls = (0..200).map(|i| {
        let request = env.http.get(format!("{}/api/external/v1/websites", env.gateways[i % 3])).bearer_auth(&key);
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(calls).await;
    let count = |status: StatusCode| statuses.iter().filter(|s| **s == status).count();
    let (ok, limited, unavailable) =
        (count(StatusCode::OK), count(StatusCode::TOO_MANY_REQUESTS), count(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(ok + limited + unavailable, 200, "{statuses:?}");
    // On a host too loaded to decide within the gateway's wait, some answers are 503s (a decision
    // that may have been made, its slot taken): never more than the limit, and exactly the limit
    // when every decision was answered.
    match unavailable {
        0 => assert_eq!((ok, limited), (50, 150)),
        _ => assert!(ok <= 50, "{ok} passed a limit of 50"),
    }
}

/// A key over its limit is refused by the gateway itself until a slot frees: no policy call
/// (here policy is gone) and never an extra request.
#[tokio::test]
async fn refusals_are_answered_from_the_gateway() {
    let mut env = TestEnv::split(1).await;
    let (user, key) = keyed_user(&env, json!({ "requests_per_minute": 1 }), json!(["read"])).await;
    let (other, _) = env.create_key(&user, json!({ "name": "other", "permissions": ["read"], "teams": "all" })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::TOO_MANY_REQUESTS);
    env.kill("policy");
    let refused = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&refused, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    // Anything that needs a decision fails safe.
    let (status, body) = env.api(Method::GET, "/websites", &other, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE"))
    );
}

/// Redis stops mid-test: the decisions whose call to Redis fails are 503s until policy's breaker
/// opens (a failed call may have been a moment's delay, which a window of policy's own must not
/// answer); then decisions go on in-process, limited, without errors or hangs; when Redis is
/// back, decisions are shared again.
#[tokio::test]
async fn a_redis_outage_degrades_to_local_limits_and_recovers() {
    let mut redis = crate::harness::RedisServer::start();
    let env = TestEnv::split_on(1, crate::harness::TestRedis::at(redis.url()).await).await;
    let (_, key) = keyed_user(&env, json!({ "requests_per_minute": 4 }), json!(["read"])).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    let (free, free_key) = keyed_user(&env, json!({}), json!(["read"])).await;
    env.set_plan(&free.team_id, "free").await;

    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(env.api(Method::GET, "/websites", &key, None).await.0);
    }
    assert_unavailable_until_the_breaker_opens(&statuses);
    assert!(statuses.contains(&StatusCode::OK), "still serving: {statuses:?}");
    assert!(statuses.ends_with(&[StatusCode::TOO_MANY_REQUESTS]), "never unlimited: {statuses:?}");
    // A key without API access still reports a budget of none, not a replica's share of one.
    let refused = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&free_key).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "x-ratelimit-limit"), "0");

    redis.resume();
    // The restarted Redis is empty, the local window is full: an OK means Redis decides again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = env.api(Method::GET, "/websites", &key, None).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(std::time::Instant::now() < deadline, "decisions never went back to Redis");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Statuses of requests made one after another as Redis fails: 503 for the three whose calls
/// to Redis fail before policy's breaker opens, then decided in-process (200 or 429).
fn assert_unavailable_until_the_breaker_opens(statuses: &[StatusCode]) {
    let unavailable = statuses.iter().take_while(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    assert!(unavailable <= 3, "{statuses:?}");
    let decided = &statuses[unavailable..];
    assert!(decided.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}

/// The master holding a user's counters dies: decisions go on in-process as in an outage (once
/// the breaker is open; never unlimited) until its replica takes over, then they are shared again, on the
/// promoted replica, which kept the month's count.
#[tokio::test]
async fn a_redis_cluster_failover_is_survived_like_an_outage() {
    let mut cluster = RedisCluster::start(1);
    let redis = TestRedis::on_cluster(&cluster);
    let prefix = redis.prefix.clone();
    let env = TestEnv::split_on(1, redis).await;
    let (user, key) = keyed_user(&env, json!({ "requests_per_minute": 4 }), json!(["read"])).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    let month = chrono::Utc::now().format("%Y-%m");
    let counter = format!("{prefix}mq:{{{}}}:{month}", user.user_id);
    // The count as the cluster has it; None while the cluster cannot tell (mid-failover).
    let used = |cluster: &RedisCluster| cluster.get(&counter).and_then(|n| n.parse::<u64>().ok());
    assert_eq!(used(&cluster), Some(1), "the decision was made on the cluster");

    let master = cluster.master_of(&format!("{{{}}}", user.user_id));
    cluster.kill(master);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(env.api(Method::GET, "/websites", &key, None).await.0);
    }
    assert_unavailable_until_the_breaker_opens(&statuses);
    assert!(statuses.ends_with(&[StatusCode::TOO_MANY_REQUESTS]), "never unlimited: {statuses:?}");

    cluster.wait_for_failover(master);
    // Room in the window whoever decided so far, so that a request the cluster decides counts.
    env.set_plan_with(&user.team_id, "pro", json!({ "requests_per_minute": 1000 })).await;
    // The promoted replica kept the month's count; a request the cluster decides raises it.
    let before = until_decided_on_the_cluster(&env, &key, || used(&cluster), StatusCode::TOO_MANY_REQUESTS).await;
    assert!(before >= 1, "the promoted replica kept the month's count");
}

/// Sends requests with `key` until the cluster's count of the month (`used`) rises, answered 200
/// or `meanwhile`; returns the count the cluster had before.
async fn until_decided_on_the_cluster(
    env: &TestEnv,
    key: &str,
    used: impl Fn() -> Option<u64>,
    meanwhile: StatusCode,
) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut before = None;
    loop {
        let (status, _) = env.api(Method::GET, "/websites", key, None).await;
        assert!(status == StatusCode::OK || status == meanwhile, "{status}");
        match (before, used()) {
            (None, Some(now)) => before = Some(now),
            (Some(then), Some(now)) if now > then => return then,
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "decisions never went back to the cluster");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The master holding a user's counters hangs (it keeps its connections and answers nothing):
/// once its replica has taken over, decisions go back to the cluster while the old master is
/// still hung, rather than waiting on it.
#[tokio::test]
async fn decisions_go_back_to_the_cluster_when_a_hung_masters_replica_takes_over() {
    let mut cluster = RedisCluster::start(1);
    let redis = TestRedis::on_cluster(&cluster);
    let prefix = redis.prefix.clone();
    let env = TestEnv::split_on(1, redis).await;
    let (user, key) = keyed_user(&env, json!({ "requests_per_minute": 1000 }), json!(["read"])).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    let month = chrono::Utc::now().format("%Y-%m");
    let counter = format!("{prefix}mq:{{{}}}:{month}", user.user_id);
    let used = |cluster: &RedisCluster| cluster.get(&counter).and_then(|n| n.parse::<u64>().ok());

    let master = cluster.master_of(&format!("{{{}}}", user.user_id));
    cluster.freeze(master);
    cluster.wait_for_failover(master);
    until_decided_on_the_cluster(&env, &key, || used(&cluster), StatusCode::SERVICE_UNAVAILABLE).await;
}

/// The all-in-one process on each backend, its limiter in-process.
async fn all_in_one_processes() -> [TestEnv; 2] {
    [TestEnv::all_in_one_process().await, TestEnv::all_in_one_process_on_postgres().await]
}

/// Uses up a key's minute (3) of a month of 5, then stops the process with `signal` and starts
/// it again: the next request is still refused for the minute, and the month still counts 3.
async fn the_limits_outlive_a_restart(signal: &str) {
    for mut env in all_in_one_processes().await {
        let overrides = json!({ "requests_per_minute": 3, "requests_per_month": 5 });
        let (_, key) = keyed_user(&env, overrides, json!(["read"])).await;
        for _ in 0..3 {
            assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
        }
        let (status, body) = env.api(Method::GET, "/websites", &key, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMIT_EXCEEDED"))
        );
        // The kept state is written about once a second: a crash forgets at most that much.
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        env.restart_all_in_one(signal);
        let refused = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "the minute's window outlives the restart");
        assert_eq!(header(&refused, "x-usage-monthly"), "3", "so does the month's count");
        assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    }
}

#[tokio::test]
async fn the_in_process_limits_outlive_a_graceful_restart() {
    the_limits_outlive_a_restart("TERM").await;
}

#[tokio::test]
async fn the_in_process_limits_outlive_a_crash() {
    the_limits_outlive_a_restart("KILL").await;
}

//! Statistics from a PostgreSQL streaming replica (a primary and a replica of the test's own),
//! and event retention with day partitions.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

use crate::harness::{PostgresPair, TestEnv, asked_period, on_each_backend};

/// A key allowed far more than the polling below asks, and a website: (key, site id, domain).
async fn site(env: &TestEnv) -> (String, String, String) {
    let ann = env.user("ann").await;
    let limits = json!({ "requests_per_minute": 100_000, "requests_per_month": 10_000_000 });
    env.set_plan_with(&ann.team_id, "enterprise", limits).await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let domain = format!("replica-{}.example", &ann.user_id[..8]);
    let body = json!({ "team_id": ann.team_id, "domain": domain, "name": "S" });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    (key, site["data"]["id"].as_str().unwrap().to_owned(), domain)
}

/// One pageview of a new visitor; returns once it is stored on the primary.
async fn pageview(env: &TestEnv, domain: &str, visitor: u32) {
    let body = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/") });
    let response = env
        .request(Method::POST, "/api/event")
        .header("user-agent", format!("Mozilla/5.0 (X11; Linux x86_64; rv:{visitor}.0) Gecko/20100101 Firefox/128.0"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// Today's pageviews as the statistics API answers.
async fn pageviews(env: &TestEnv, key: &str, site_id: &str) -> f64 {
    let path = format!("/stats/aggregate?site_id={site_id}&period=day&metrics=pageviews");
    let (status, body) = env.api(Method::GET, &path, key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["results"]["pageviews"]["value"].as_f64().unwrap()
}

async fn until_pageviews(env: &TestEnv, key: &str, site_id: &str, expected: f64) -> Duration {
    let start = Instant::now();
    while pageviews(env, key, site_id).await != expected {
        assert!(start.elapsed() < Duration::from_secs(20), "never {expected} pageviews");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// A website with one pageview, counted: (key, site id, domain).
async fn site_with_one_pageview(env: &TestEnv) -> (String, String, String) {
    let (key, site_id, domain) = site(env).await;
    pageview(env, &domain, 1).await;
    until_pageviews(env, &key, &site_id, 1.0).await;
    (key, site_id, domain)
}

/// With the replica's replay paused (and statistics read there), a second pageview is not
/// counted at first, then is, from the primary, once the replica is further behind than
/// allowed (at least 2 s later for the limits these tests set). Replay stays paused.
async fn a_second_pageview_counts_only_past_the_lag(
    env: &TestEnv,
    replica: &mut sqlx::PgConnection,
    (key, site_id, domain): (&str, &str, &str),
) {
    // The replica, now in use, has replayed the first one.
    until_pageviews(env, key, site_id, 1.0).await;
    sqlx::query("SELECT pg_wal_replay_pause()").execute(&mut *replica).await.unwrap();
    pageview(env, domain, 2).await;
    assert_eq!(pageviews(env, key, site_id).await, 1.0, "read from the replica, which has not replayed it");
    let waited = until_pageviews(env, key, site_id, 2.0).await;
    assert!(waited >= Duration::from_secs(2), "the primary answered only past the allowed lag: {waited:?}");
}

/// A gauge of the process's `/metrics`.
async fn gauge(env: &TestEnv, name: &str) -> f64 {
    let text = env.request(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /metrics"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn until_gauge(env: &TestEnv, name: &str, wanted: impl Fn(f64) -> bool) {
    let start = Instant::now();
    while !wanted(gauge(env, name).await) {
        assert!(start.elapsed() < Duration::from_secs(20), "{name} never as wanted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replica_connection(pair: &PostgresPair, database: &str) -> sqlx::PgConnection {
    let url = format!("{}/{database}", pair.replica_url().rsplit_once('/').unwrap().0);
    sqlx::PgConnection::connect(&url).await.expect("replica connection")
}

/// While the replica keeps up, statistics come from it (a pageview it has not replayed is not
/// counted yet); once it is further behind than allowed, from the primary; the lag and which
/// database answers are reported as metrics.
#[tokio::test]
async fn statistics_are_read_from_the_replica_until_it_lags_too_far() {
    let pair = PostgresPair::start();
    let (env, database) = TestEnv::all_in_one_on_replica(&pair, 3000).await;
    let (key, site_id, domain) = site_with_one_pageview(&env).await;
    until_gauge(&env, "zenovay_analytics_replica_in_use", |v| v == 1.0).await;

    let mut replica = replica_connection(&pair, &database).await;
    a_second_pageview_counts_only_past_the_lag(&env, &mut replica, (&key, &site_id, &domain)).await;
    assert_eq!(gauge(&env, "zenovay_analytics_replica_in_use").await, 0.0);
    assert!(gauge(&env, "zenovay_analytics_replica_lag").await >= 3.0);

    sqlx::query("SELECT pg_wal_replay_resume()").execute(&mut replica).await.unwrap();
    until_gauge(&env, "zenovay_analytics_replica_in_use", |v| v == 1.0).await;
    until_gauge(&env, "zenovay_analytics_replica_lag", |v| v < 3.0).await;
    assert_eq!(pageviews(&env, &key, &site_id).await, 2.0);
}

/// An analytics process started while the replica lags far behind knows nothing of how far:
/// statistics come from the primary until the replica is seen to have caught up.
#[tokio::test]
async fn a_process_started_while_the_replica_lags_reads_from_the_primary() {
    let pair = PostgresPair::start();
    let (mut env, database) = TestEnv::all_in_one_on_replica(&pair, 5000).await;
    let (key, site_id, domain) = site_with_one_pageview(&env).await;
    let mut replica = replica_connection(&pair, &database).await;
    sqlx::query("SELECT pg_wal_replay_pause()").execute(&mut replica).await.unwrap();
    pageview(&env, &domain, 2).await;
    env.restart_all_in_one("TERM");
    // The replica has not replayed the second pageview: every answer counts it all the same.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(pageviews(&env, &key, &site_id).await, 2.0, "read from a replica of unknown lag");
    }
    assert_eq!(gauge(&env, "zenovay_analytics_replica_in_use").await, 0.0);
    sqlx::query("SELECT pg_wal_replay_resume()").execute(&mut replica).await.unwrap();
    until_gauge(&env, "zenovay_analytics_replica_in_use", |v| v == 1.0).await;
}

/// The replica stops while statistics are being asked for: every answer is still a 200 with
/// the right figures, from the primary; when it is back, statistics return to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_mid_load_leaves_statistics_to_the_primary() {
    let pair = PostgresPair::start();
    let (env, _) = TestEnv::all_in_one_on_replica(&pair, 5000).await;
    let (key, site_id, _) = site_with_one_pageview(&env).await;
    until_gauge(&env, "zenovay_analytics_replica_in_use", |v| v == 1.0).await;

    stop_replica_under_load(&env, &pair, &key, &site_id).await;
    assert_eq!(gauge(&env, "zenovay_analytics_replica_in_use").await, 0.0);

    pair.start_replica();
    until_gauge(&env, "zenovay_analytics_replica_in_use", |v| v == 1.0).await;
}

/// Four clients ask for today's pageviews (one) for four seconds while the replica is stopped
/// after one: every answer is a 200 with the right figure.
async fn stop_replica_under_load(env: &TestEnv, pair: &PostgresPair, key: &str, site_id: &str) {
    // The replica, in use only since its lag was last seen within bounds, has replayed the pageview.
    until_pageviews(env, key, site_id, 1.0).await;
    let load = (0..4).map(|_| async {
        let mut answers = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) {
            assert_eq!(pageviews(env, key, site_id).await, 1.0);
            answers += 1;
        }
        answers
    });
    let stop = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| pair.stop_replica());
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(load), stop);
    assert!(answers.iter().all(|n| *n > 0), "{answers:?}");
}

/// How many times analytics has logged that the replica became usable. The split mode's
/// analytics has no `/metrics` of its own to ask.
fn times_replica_became_usable(env: &TestEnv) -> usize {
    env.logs().lines().filter(|l| l.contains("statistics are read from the read replica")).count()
}

async fn until_replica_usable(env: &TestEnv, times: usize) {
    let start = Instant::now();
    while times_replica_became_usable(env) < times {
        assert!(start.elapsed() < Duration::from_secs(20), "the replica never became usable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The split topology (gateway, identity, policy and analytics processes) with analytics given
/// the replica: through the gateway's Stats API, a pageview the paused replica has not replayed
/// is not counted, then is, from the primary, once the lag passes the limit.
#[tokio::test]
async fn split_statistics_are_read_from_the_replica_until_it_lags_too_far() {
    let pair = PostgresPair::start();
    let (env, database) = TestEnv::split_on_replica(&pair, 3000).await;
    let (key, site_id, domain) = site_with_one_pageview(&env).await;
    until_replica_usable(&env, 1).await;

    let mut replica = replica_connection(&pair, &database).await;
    a_second_pageview_counts_only_past_the_lag(&env, &mut replica, (&key, &site_id, &domain)).await;

    sqlx::query("SELECT pg_wal_replay_resume()").execute(&mut replica).await.unwrap();
    until_replica_usable(&env, 2).await;
    assert_eq!(pageviews(&env, &key, &site_id).await, 2.0);
}

/// The split topology with analytics on the replica: stopping the replica under load leaves
/// every Stats API answer through the gateway a 200 with the right figures; once it is back,
/// analytics reads from it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_statistics_survive_a_replica_stopped_mid_load() {
    let pair = PostgresPair::start();
    let (env, _) = TestEnv::split_on_replica(&pair, 5000).await;
    let (key, site_id, _) = site_with_one_pageview(&env).await;
    until_replica_usable(&env, 1).await;

    stop_replica_under_load(&env, &pair, &key, &site_id).await;
    pair.start_replica();
    until_replica_usable(&env, 2).await;
    assert_eq!(pageviews(&env, &key, &site_id).await, 1.0);
}

/// Raw events and visits past the retention go (whole day partitions on PostgreSQL, rows on
/// SQLite) once their days are rolled up, and the daily totals stay: a period's figures read from rollups are
/// unchanged, while a question only raw events answer no longer sees those days.
#[tokio::test]
async fn retention_drops_old_events_while_rollups_keep_the_totals() {
    use analytics::retention::Retention;
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "retention.example", "R", None).await.unwrap();
        let now = common::time::now_ms();
        let stored = analytics.import(analytics::generate::traffic(&site.domain, now, 10, 3_000, 3)).await.unwrap();
        assert!(stored > 1_000);
        let figures = |filters: Vec<(String, String, Vec<String>)>| {
            let request = QueryRequest {
                website_id: site.id.clone(),
                metrics: vec!["visitors".into(), "pageviews".into(), "visits".into()],
                filters,
                period: asked_period("30d", "").0,
                ..Default::default()
            };
            let analytics = analytics.clone();
            async move { analytics.query(request).await.unwrap().0.rows[0].1.clone() }
        };
        let raw_only = || vec![("is_not".to_owned(), "event:page".to_owned(), vec!["/nowhere".to_owned()])];
        analytics.roll_up(now).await.unwrap();
        let (totals, raw) = (figures(vec![]).await, figures(raw_only()).await);
        assert_eq!(totals, raw, "both paths agree before retention");

        let keep = Retention(std::num::NonZeroU32::new(3).unwrap());
        let expired = analytics.expire(keep, now).await.unwrap();
        match backend {
            // The six whole days past the horizon (and the first, partial day when its hours hold
            // any traffic), of events and of visits, each day's a partition dropped whole.
            common::db::Backend::Postgres { .. } => {
                assert!(expired.partitions >= 12, "{expired:?}");
                assert_eq!(expired.rows, 0, "nothing deleted row by row: {expired:?}");
            }
            common::db::Backend::Sqlite { .. } => {
                assert_eq!(expired.partitions, 0);
                assert!(expired.rows > 0, "old events and visits are deleted: {expired:?}");
            }
        }
        assert_eq!(figures(vec![]).await, totals, "rollups keep the totals");
        let after = figures(raw_only()).await;
        assert!(after[1] < raw[1], "raw events before the horizon are gone: {after:?} {raw:?}");
        assert_eq!(analytics.expire(keep, now).await.unwrap(), Default::default(), "nothing left to expire");
    })
    .await;
}

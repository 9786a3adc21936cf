//! Plausible's visit and time semantics, end to end: engagement events, the bounce rule, time on
//! page and scroll depth, the days of v1 and v2 periods, and visits counted in every day they
//! were active in.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, import_events, site_with_key};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// An event line for `admin import-events`.
fn line(domain: &str, at: &str, ip: &str, name: &str, path: &str) -> Value {
    json!({ "at": at, "name": name, "url": format!("https://{domain}{path}"), "user_agent": FIREFOX, "ip": ip })
}

/// An engagement event line: scroll depth and engaged milliseconds.
fn engagement(domain: &str, at: &str, ip: &str, path: &str, sd: i64, ms: i64) -> Value {
    let mut event = line(domain, at, ip, "engagement", path);
    event["sd"] = json!(sd);
    event["e"] = json!(ms);
    event
}

/// A Plausible v2 query through the drop-in; the body's results.
async fn v2(env: &TestEnv, key: &str, body: Value) -> Value {
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Four visits on 2026-01-10 (UTC): A views `/` and, 45 minutes later but 25 after an
/// engagement event, `/b`; B views `/` and signs up; C and D view one page each, D then sends an
/// engagement event. Engagement: A 60 s on `/` (scrolled 50 %) and 30 s on `/b` (80 %), B 90 s
/// and 10 s on `/` (75 % and 40 %), D 5 s on `/d` (100 %).
fn visits(domain: &str) -> Vec<Value> {
    vec![
        line(domain, "2026-01-10T10:00:00Z", "1.1.1.1", "pageview", "/"),
        engagement(domain, "2026-01-10T10:20:00Z", "1.1.1.1", "/", 50, 60_000),
        line(domain, "2026-01-10T10:45:00Z", "1.1.1.1", "pageview", "/b"),
        engagement(domain, "2026-01-10T10:50:00Z", "1.1.1.1", "/b", 80, 30_000),
        line(domain, "2026-01-10T11:00:00Z", "2.2.2.2", "pageview", "/"),
        line(domain, "2026-01-10T11:01:00Z", "2.2.2.2", "Signup", "/"),
        engagement(domain, "2026-01-10T11:02:00Z", "2.2.2.2", "/", 75, 90_000),
        engagement(domain, "2026-01-10T11:03:00Z", "2.2.2.2", "/", 40, 10_000),
        line(domain, "2026-01-10T12:00:00Z", "3.3.3.3", "pageview", "/c"),
        line(domain, "2026-01-10T13:00:00Z", "4.4.4.4", "pageview", "/d"),
        engagement(domain, "2026-01-10T13:05:00Z", "4.4.4.4", "/d", 100, 5_000),
    ]
}

/// A site holding [`visits`]: its key and domain.
async fn site_with_visits(env: &TestEnv) -> (String, String) {
    let (key, site_id, domain) = site_with_key(env, "fidelity", "UTC").await;
    import_events(env, &site_id, &visits(&domain));
    (key, domain)
}

fn on_the_10th(domain: &str, metrics: &[&str], dimensions: &[&str]) -> Value {
    json!({ "site_id": domain, "metrics": metrics, "dimensions": dimensions,
            "date_range": ["2026-01-10", "2026-01-10"], "order_by": [[dimensions.first().unwrap_or(&"visitors"), "asc"]] })
}

async fn engagement_events_are_neither_events_nor_lengthen_visits(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let metrics = ["visitors", "visits", "pageviews", "events", "visit_duration"];
    let body = json!({ "site_id": domain, "metrics": metrics, "date_range": ["2026-01-10", "2026-01-10"] });
    // 5 pageviews and a signup; durations 2700 s (A), 60 s (B), 0 and 0: engagement after a
    // visit's last event does not lengthen it.
    assert_eq!(v2(env, &key, body).await["results"], json!([{ "metrics": [4, 4, 5, 6, 690], "dimensions": [] }]));
    // No `engagement` row (Plausible takes no `scroll_depth` by event name: docs/behaviour.md,
    // "Plausible fidelity").
    let names = v2(env, &key, on_the_10th(&domain, &["visitors", "events"], &["event:name"])).await;
    assert_eq!(
        names["results"],
        json!([{ "metrics": [1, 1], "dimensions": ["Signup"] }, { "metrics": [4, 5], "dimensions": ["pageview"] }])
    );
}

async fn an_engagement_event_keeps_its_visit_open(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // A's second pageview is 45 minutes after the first but 25 after an engagement event.
    // (Plausible takes no `pageviews` by entry page: docs/behaviour.md, "Plausible fidelity".)
    let entries = v2(env, &key, on_the_10th(&domain, &["visits"], &["visit:entry_page"])).await;
    assert_eq!(entries["results"][0], json!({ "metrics": [2], "dimensions": ["/"] }));
}

async fn a_visit_bounces_with_exactly_one_event_other_than_engagement(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // A (two pageviews) and B (a pageview and a signup) do not bounce; C and D (a pageview and
    // an engagement event) do.
    let body = json!({ "site_id": domain, "metrics": ["bounce_rate"], "date_range": ["2026-01-10", "2026-01-10"] });
    assert_eq!(v2(env, &key, body).await["results"][0]["metrics"], json!([50]));
    let v1 =
        format!("/plausible/api/v1/stats/aggregate?site_id={domain}&period=day&date=2026-01-10&metrics=bounce_rate");
    let (status, answer) = env.api(Method::GET, &v1, &key, None).await;
    assert_eq!((status, &answer["results"]["bounce_rate"]["value"]), (StatusCode::OK, &json!(50)));
}

async fn by_page_bounce_rate_and_duration_are_of_the_visits_that_entered_there(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // Visits are those that include the page; bounce rate and duration those of the visits that
    // entered on it: A (45 min) and B (1 min) entered on `/`, nobody on `/b`, which A reached.
    let metrics = ["visits", "bounce_rate", "visit_duration"];
    let pages = v2(env, &key, on_the_10th(&domain, &metrics, &["event:page"])).await;
    assert_eq!(
        pages["results"],
        json!([
            { "metrics": [2, 0, 1380], "dimensions": ["/"] },
            { "metrics": [1, 0, 0], "dimensions": ["/b"] },
            { "metrics": [1, 100, 0], "dimensions": ["/c"] },
            { "metrics": [1, 100, 0], "dimensions": ["/d"] },
        ])
    );
    let v1 = format!(
        "/plausible/api/v1/stats/breakdown?site_id={domain}&period=day&date=2026-01-10&property=event:page\
         &metrics=visit_duration&filters=event:page%3D%3D%2Fb"
    );
    let (status, answer) = env.api(Method::GET, &v1, &key, None).await;
    assert_eq!((status, &answer["results"]), (StatusCode::OK, &json!([{ "page": "/b", "visit_duration": 0 }])));
}

async fn time_on_page_and_scroll_depth_are_computed_as_plausible_does(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // Engaged seconds over the visits that sent engagement, and the mean of each visit's
    // deepest scroll: (90 + 100 + 5) / 3 and (80 + 75 + 100) / 3.
    // Plausible gives them only of pages (docs/behaviour.md, "Plausible fidelity"): of every page.
    let body = json!({ "site_id": domain, "metrics": ["time_on_page", "scroll_depth"], "date_range": ["2026-01-10", "2026-01-10"],
                       "filters": [["contains", "event:page", ["/"]]] });
    assert_eq!(v2(env, &key, body).await["results"][0]["metrics"], json!([65, 85]));
    // Per page: on `/`, (60 + 100) / 2 s and (50 + 75) / 2 %, a tie rounded to even; `/c` had
    // no engagement.
    let pages = v2(env, &key, on_the_10th(&domain, &["time_on_page", "scroll_depth"], &["event:page"])).await;
    assert_eq!(
        pages["results"],
        json!([
            { "metrics": [80, 62], "dimensions": ["/"] },
            { "metrics": [30, 80], "dimensions": ["/b"] },
            { "metrics": [null, null], "dimensions": ["/c"] },
            { "metrics": [5, 100], "dimensions": ["/d"] },
        ])
    );
}

async fn the_trackers_engagement_events_are_accepted_as_plausible_accepts_them(env: &TestEnv) {
    let (_, _, domain) = site_with_key(env, "engaged", "UTC").await;
    let send = |user_agent: &'static str, body: Value| async move {
        let request = env
            .request(Method::POST, "/api/event")
            .header("user-agent", user_agent)
            .header("content-type", "text/plain");
        crate::harness::into_json(request.body(body.to_string()).send().await.unwrap()).await
    };
    let page = json!({ "n": "pageview", "u": format!("https://{domain}/"), "d": domain });
    assert_eq!(send(FIREFOX, page).await.0, StatusCode::ACCEPTED);
    let engaged = json!({ "n": "engagement", "u": format!("https://{domain}/"), "d": domain, "sd": 40, "e": "1200" });
    let (status, body) = send(FIREFOX, engaged.clone()).await;
    assert_eq!((status, &body["data"]["stored"]), (StatusCode::ACCEPTED, &json!(true)));
    // Without a visit to keep open, it is answered and dropped, as Plausible drops it.
    let (status, body) = send(SAFARI, engaged).await;
    assert_eq!((status, &body["data"]["stored"]), (StatusCode::ACCEPTED, &json!(false)));
    let empty = json!({ "n": "engagement", "u": format!("https://{domain}/"), "d": domain, "sd": "deep" });
    let (status, body) = send(FIREFOX, empty).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("sd:"), "{body}");
}

/// Noon of the UTC day `days` before today, or a moment of today that has passed for 0.
fn days_ago(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    let today = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    if days == 0 { today + (now - today) / 2 } else { today - Duration::days(days) + Duration::hours(12) }
}

/// A UTC site with 1 pageview today, 2 yesterday, 4 a week ago and 8 the day before: its key,
/// domain and the days of those pageviews.
async fn site_with_recent_days(env: &TestEnv) -> (String, String, Vec<(NaiveDate, u64)>) {
    let (key, site_id, domain) = site_with_key(env, "periods", "UTC").await;
    let now = Utc::now();
    let mut events = Vec::new();
    let mut days = Vec::new();
    for (ago, count) in [(0, 1), (1, 2), (7, 4), (8, 8)] {
        let at = days_ago(now, ago);
        days.push((at.date_naive(), count));
        for visitor in 0..count {
            events.push(line(&domain, &at.to_rfc3339(), &format!("10.0.{ago}.{visitor}"), "pageview", "/"));
        }
    }
    import_events(env, &site_id, &events);
    (key, domain, days)
}

async fn v1_pageviews(env: &TestEnv, key: &str, domain: &str, period: &str) -> Value {
    let path = format!("/plausible/api/v1/stats/aggregate?site_id={domain}&period={period}&metrics=pageviews");
    let (status, answer) = env.api(Method::GET, &path, key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["results"]["pageviews"]["value"].clone()
}

async fn v1_periods_cover_plausibles_days(env: &TestEnv) {
    let (key, domain, days) = site_with_recent_days(env).await;
    // `7d` and `30d` are the days before today; `day` is today; `6mo` runs to the end of this month.
    assert_eq!(v1_pageviews(env, &key, &domain, "7d").await, json!(6));
    assert_eq!(v1_pageviews(env, &key, &domain, "30d").await, json!(14));
    assert_eq!(v1_pageviews(env, &key, &domain, "day").await, json!(1));
    assert_eq!(v1_pageviews(env, &key, &domain, "6mo").await, json!(15));
    let today = days[0].0;
    let this_month: u64 =
        days.iter().filter(|(d, _)| d.month() == today.month() && d.year() == today.year()).map(|d| d.1).sum();
    assert_eq!(v1_pageviews(env, &key, &domain, "month").await, json!(this_month));
}

async fn v2_date_ranges_cover_plausibles_days(env: &TestEnv) {
    let (key, domain, days) = site_with_recent_days(env).await;
    let pageviews = |range: Value| {
        let body = json!({ "site_id": domain, "metrics": ["pageviews"], "date_range": range });
        let (env, key) = (env, key.clone());
        async move { v2(env, &key, body).await["results"][0]["metrics"][0].clone() }
    };
    assert_eq!(pageviews(json!("7d")).await, json!(6));
    assert_eq!(pageviews(json!("30d")).await, json!(14));
    assert_eq!(pageviews(json!("day")).await, json!(1));
    // `6mo`: the six whole months before this one.
    let today = days[0].0;
    let month = |d: NaiveDate| d.year() * 12 + d.month0() as i32;
    let expected: u64 = days.iter().filter(|(d, _)| (1..=6).contains(&(month(today) - month(*d)))).map(|d| d.1).sum();
    assert_eq!(pageviews(json!("6mo")).await, json!(expected));
    let (first, last) = (days[3].0.to_string(), days[1].0.to_string());
    assert_eq!(pageviews(json!([first, last])).await, json!(14));
}

async fn date_range_all_starts_on_the_sites_first_day(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "alltime", "UTC").await;
    let first = days_ago(Utc::now(), 40);
    let events = [
        line(&domain, &first.to_rfc3339(), "1.1.1.1", "pageview", "/"),
        line(&domain, &days_ago(Utc::now(), 0).to_rfc3339(), "2.2.2.2", "pageview", "/"),
    ];
    import_events(env, &site_id, &events);
    let answer = v2(env, &key, json!({ "site_id": domain, "metrics": ["pageviews"], "date_range": "all" })).await;
    assert_eq!(answer["results"][0]["metrics"], json!([2]));
    let start = answer["query"]["date_range"][0].as_str().unwrap();
    assert!(start.starts_with(&first.date_naive().to_string()), "{start}");
}

async fn a_visit_across_local_midnight_counts_in_both_days(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "newyork", "America/New_York").await;
    // 23:50 on the 10th and 00:10 on the 11th in New York: one visit of 20 minutes.
    let events = [
        line(&domain, "2026-01-11T04:50:00Z", "1.1.1.1", "pageview", "/"),
        line(&domain, "2026-01-11T05:10:00Z", "1.1.1.1", "pageview", "/next"),
    ];
    import_events(env, &site_id, &events);
    let body = json!({ "site_id": domain, "metrics": ["visits", "visitors", "pageviews", "visit_duration", "bounce_rate"],
                       "dimensions": ["time:day"], "date_range": ["2026-01-10", "2026-01-11"] });
    assert_eq!(
        v2(env, &key, body).await["results"],
        json!([
            { "metrics": [1, 1, 1, 1200, 0], "dimensions": ["2026-01-10"] },
            { "metrics": [1, 1, 1, 1200, 0], "dimensions": ["2026-01-11"] },
        ])
    );
    let both = json!({ "site_id": domain, "metrics": ["visits"], "date_range": ["2026-01-10", "2026-01-11"] });
    assert_eq!(v2(env, &key, both).await["results"][0]["metrics"], json!([1]), "once over both days");
}

/// Plausible's endpoints read their own parameters and ignore the rest (`with_imported`, an
/// aggregate's `interval`, …); the drop-in does too, where our own face refuses them.
async fn the_drop_in_ignores_parameters_its_endpoint_does_not_read(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let on_the_10th = format!("site_id={domain}&period=day&date=2026-01-10&with_imported=true");
    let ask = |path: String| {
        let key = key.clone();
        async move {
            let (status, answer) = env.api(Method::GET, &path, &key, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
            answer["results"].clone()
        }
    };
    let aggregate = ask(format!("/plausible/api/v1/stats/aggregate?{on_the_10th}&interval=date&limit=5")).await;
    assert_eq!(aggregate["visitors"]["value"], 4);
    let series = ask(format!("/plausible/api/v1/stats/timeseries?{on_the_10th}&compare=previous_period")).await;
    assert_eq!(series.as_array().unwrap().len(), 24, "hours of the day");
    let pages = ask(format!("/plausible/api/v1/stats/breakdown?{on_the_10th}&property=event:page&interval=date")).await;
    assert_eq!(pages[0], json!({ "page": "/", "visitors": 2 }));
    let (status, refused) = env.api(Method::GET, &format!("/stats/aggregate?{on_the_10th}"), &key, None).await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("VALIDATION_ERROR")));
}

/// v2's answer echoes the query as Plausible's does: the period's first and last second in the
/// site's time zone, the default order filled in, and the includes asked for.
async fn v2_echoes_the_query_as_plausible_does(env: &TestEnv) {
    let (key, _, domain) = site_with_key(env, "echo", "America/Los_Angeles").await;
    let body = json!({ "site_id": domain, "metrics": ["pageviews", "visitors"], "dimensions": ["time:day"],
                       "date_range": ["2026-11-30", "2026-12-05"], "include": { "total_rows": true } });
    let query = v2(env, &key, body).await["query"].clone();
    assert_eq!(query["date_range"], json!(["2026-11-30T00:00:00-08:00", "2026-12-05T23:59:59-08:00"]));
    assert_eq!(query["order_by"], json!([["time:day", "asc"], ["pageviews", "desc"]]));
    assert_eq!(query["include"], json!({ "total_rows": true }));
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day" });
    let query = v2(env, &key, body).await["query"].clone();
    assert_eq!((&query["order_by"], &query["include"]), (&json!([["visitors", "desc"]]), &json!({})));
}

/// A site in New York whose closed days are rolled up: its local days, hours and filtered
/// figures, which rollup pieces and filtered rows answer, equal what raw events answer (the same
/// queries with a filter that excludes nothing, which rollups never serve).
async fn rolled_up_local_days_and_filters_answer_as_raw_events(env: &TestEnv) {
    let (key, id, _) = site_with_key(env, "pieces", "America/New_York").await;
    let out = env.admin(&["generate-events", &id, "--events", "4000", "--days", "10", "--seed", "4"]);
    assert!(out.contains("rolled up"), "{out}");
    let day = (Utc::now() - Duration::days(3)).format("%Y-%m-%d");
    let metrics = "visitors,visits,pageviews,bounce_rate,visit_duration";
    for (path, filters) in [
        (format!("/stats/timeseries?site_id={id}&period=7d&metrics={metrics}"), ""),
        (format!("/stats/timeseries?site_id={id}&period=day&date={day}&metrics=visitors,pageviews"), ""),
        (format!("/stats/aggregate?site_id={id}&period=7d&metrics={metrics}"), "visit:source%3D%3DGoogle"),
        (format!("/stats/timeseries?site_id={id}&period=7d&metrics={metrics}"), "event:page%3D%3D/pricing"),
    ] {
        let rolled = if filters.is_empty() { path.clone() } else { format!("{path}&filters={filters}") };
        let (status, answer) = env.api(Method::GET, &rolled, &key, None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let separator = if filters.is_empty() { "" } else { ";" };
        let raw = format!("{path}&filters={filters}{separator}visit:country!%3DZZ");
        let (status, expected) = env.api(Method::GET, &raw, &key, None).await;
        assert_eq!(status, StatusCode::OK, "{expected}");
        assert_eq!(answer["data"], expected["data"], "{rolled}");
    }
}

/// Years of local days, each read from its rolled-up pieces, make a long SQL condition, which is
/// answered as raw events answer it, with a filter of a hundred values too.
async fn a_daily_series_over_years_of_local_days_answers_as_raw_events(env: &TestEnv) {
    let (key, id, _) = site_with_key(env, "years", "America/Los_Angeles").await;
    let out = env.admin(&["generate-events", &id, "--events", "2000", "--days", "520", "--seed", "5"]);
    assert!(out.contains("rolled up"), "{out}");
    let (first, last) = ((Utc::now() - Duration::days(519)).format("%Y-%m-%d"), Utc::now().format("%Y-%m-%d"));
    let path =
        format!("/stats/timeseries?site_id={id}&period=custom&date={first},{last}&interval=date&metrics=visitors");
    let pages: Vec<String> = (0..100).map(|i| format!("/page-{i}")).collect();
    for rolled in [path.clone(), format!("{path}&filters=event:page%3D%3D{}", pages.join("|"))] {
        let (status, answer) = env.api(Method::GET, &rolled, &key, None).await;
        assert_eq!(status, StatusCode::OK, "{}", answer["error"]);
        let days = answer["data"]["results"].as_array().unwrap();
        assert_eq!(days.len(), 520);
        let separator = if rolled.contains("filters=") { ";" } else { "&filters=" };
        let (status, expected) =
            env.api(Method::GET, &format!("{rolled}{separator}visit:country!%3DZZ"), &key, None).await;
        assert_eq!(status, StatusCode::OK, "{}", expected["error"]);
        assert!(answer["data"] == expected["data"], "rolled-up and raw days differ for {}", &rolled[..80]);
    }
}

both_modes!(
    a_daily_series_over_years_of_local_days_answers_as_raw_events,
    the_drop_in_ignores_parameters_its_endpoint_does_not_read,
    v2_echoes_the_query_as_plausible_does,
    rolled_up_local_days_and_filters_answer_as_raw_events,
    engagement_events_are_neither_events_nor_lengthen_visits,
    an_engagement_event_keeps_its_visit_open,
    a_visit_bounces_with_exactly_one_event_other_than_engagement,
    time_on_page_and_scroll_depth_are_computed_as_plausible_does,
    by_page_bounce_rate_and_duration_are_of_the_visits_that_entered_there,
    the_trackers_engagement_events_are_accepted_as_plausible_accepts_them,
    v1_periods_cover_plausibles_days,
    v2_date_ranges_cover_plausibles_days,
    date_range_all_starts_on_the_sites_first_day,
    a_visit_across_local_midnight_counts_in_both_days
);

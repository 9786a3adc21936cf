//! Plausible's meaning of the Stats API's figures where it is not the obvious one: conversion
//! rates of each row's group in v1, bounce rates of the visits that entered on a filtered page,
//! a version's row naming its browser or OS, empty UTM values, case in filters, date ranges of
//! two date-times, and v1's comparison.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, import_events, site_with_key};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// An event line for `admin import-events`, from a US visitor unless `country` says otherwise.
fn line(domain: &str, at: &str, ip: &str, country: &str, name: &str, path: &str) -> Value {
    json!({ "at": format!("2026-01-10T{at}:00Z"), "name": name, "url": format!("https://{domain}{path}"),
            "user_agent": FIREFOX, "ip": ip, "country": country })
}

/// Six visits on 2026-01-10 (UTC), one visitor each: 1 (US) bounces on `/pricing`; 2 (US)
/// enters on `/pricing`, views `/` and signs up; 3 (DE) enters on `/` and views `/pricing`; 4
/// (US) views `/` and signs up; 5 (US) and 6 (DE) bounce on `/about`.
fn visits(domain: &str) -> Vec<Value> {
    vec![
        line(domain, "10:00", "1.1.1.1", "US", "pageview", "/pricing"),
        line(domain, "10:00", "2.2.2.2", "US", "pageview", "/pricing"),
        line(domain, "10:01", "2.2.2.2", "US", "pageview", "/"),
        line(domain, "10:02", "2.2.2.2", "US", "Signup", "/"),
        line(domain, "11:00", "3.3.3.3", "DE", "pageview", "/"),
        line(domain, "11:01", "3.3.3.3", "DE", "pageview", "/pricing"),
        line(domain, "12:00", "4.4.4.4", "US", "pageview", "/"),
        line(domain, "12:01", "4.4.4.4", "US", "Signup", "/"),
        line(domain, "13:00", "5.5.5.5", "US", "pageview", "/about"),
        line(domain, "13:00", "6.6.6.6", "DE", "pageview", "/about"),
    ]
}

/// A site holding [`visits`] and a `Signup` goal: its key and domain.
async fn site_with_visits(env: &TestEnv) -> (String, String) {
    let (key, site_id, domain) = site_with_key(env, "semantics", "UTC").await;
    import_events(env, &site_id, &visits(&domain));
    let goals = format!("/websites/{site_id}/goals");
    let (status, goal) = env.api(Method::POST, &goals, &key, Some(json!({ "event_name": "Signup" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{goal}");
    (key, domain)
}

/// A v1 call through the drop-in on the 10th; the body.
async fn v1(env: &TestEnv, key: &str, endpoint: &str, domain: &str, rest: &str) -> Value {
    let path = format!("/plausible/api/v1/stats/{endpoint}?site_id={domain}&period=day&date=2026-01-10&{rest}");
    let (status, answer) = env.api(Method::GET, &path, key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// A v2 query through the drop-in on the 10th; the body's results.
async fn v2(env: &TestEnv, key: &str, domain: &str, body: Value) -> Value {
    let mut body = body;
    body["site_id"] = json!(domain);
    body["date_range"] = json!(["2026-01-10", "2026-01-10"]);
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["results"].clone()
}

async fn a_v1_breakdowns_conversion_rate_is_of_its_rows_own_visitors(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // 2 of the 4 US visitors signed up; DE has no conversion, so no row.
    let rest = "property=visit:country&metrics=visitors,conversion_rate&filters=event:goal%3D%3DSignup";
    let answer = v1(env, &key, "breakdown", &domain, rest).await;
    assert_eq!(answer["results"], json!([{ "country": "US", "visitors": 2, "conversion_rate": 50.0 }]));
    // Our own envelope's v1 breakdown says the same.
    let path = format!("/stats/breakdown?site_id={domain}&period=day&date=2026-01-10&{rest}");
    let (status, ours) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!((status, &ours["data"]["results"]), (StatusCode::OK, &answer["results"]));
    // By goal, it stays of the whole period's 6 visitors.
    let by_goal = v1(env, &key, "breakdown", &domain, "property=event:goal&metrics=visitors,conversion_rate").await;
    assert_eq!(by_goal["results"], json!([{ "goal": "Signup", "visitors": 2, "conversion_rate": 33.3 }]));
}

async fn a_v1_time_series_conversion_rate_is_of_each_buckets_visitors(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let rest = "metrics=visitors,conversion_rate&filters=event:goal%3D%3DSignup";
    let answer = v1(env, &key, "timeseries", &domain, rest).await;
    let hour = |h: usize| answer["results"][h].clone();
    // At 10:00, 1 of 2 visitors converted; at 11:00, none of 1; at 12:00, 1 of 1.
    assert_eq!(hour(10), json!({ "date": "2026-01-10 10:00:00", "visitors": 1, "conversion_rate": 50.0 }));
    assert_eq!(hour(11), json!({ "date": "2026-01-10 11:00:00", "visitors": 0, "conversion_rate": 0.0 }));
    assert_eq!(hour(12), json!({ "date": "2026-01-10 12:00:00", "visitors": 1, "conversion_rate": 100.0 }));
}

async fn v2s_conversion_rate_stays_of_the_whole_periods_visitors(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let body = json!({ "metrics": ["visitors", "conversion_rate"], "dimensions": ["visit:country"],
                       "filters": [["is", "event:goal", ["Signup"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [2, 33.3], "dimensions": ["US"] }]));
}

async fn v2s_group_conversion_rate_is_of_each_rows_own_visitors(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // 2 of the 4 US visitors signed up: 50 % of the group, 33.3 % of the day's 6 visitors.
    let body = json!({ "metrics": ["visitors", "conversion_rate", "group_conversion_rate"],
                       "dimensions": ["visit:country"], "filters": [["is", "event:goal", ["Signup"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [2, 33.3, 50.0], "dimensions": ["US"] }]));
    // Not grouped, or by goal alone, it is of all the visitors.
    let body = json!({ "metrics": ["group_conversion_rate"], "dimensions": ["event:goal"] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [33.3], "dimensions": ["Signup"] }]));
    // By goal and country, of the row's country.
    let body = json!({ "metrics": ["visitors", "conversion_rate", "group_conversion_rate"],
                       "dimensions": ["event:goal", "visit:country"] });
    assert_eq!(
        v2(env, &key, &domain, body).await,
        json!([{ "metrics": [2, 33.3, 50.0], "dimensions": ["Signup", "US"] }])
    );
    // Without a goal it is refused, in Plausible's words.
    let body = json!({ "site_id": domain, "metrics": ["group_conversion_rate"], "date_range": "day" });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"],
        "Metric `group_conversion_rate` can only be queried with event:goal filters or dimensions."
    );
}

async fn v2s_group_conversion_rate_by_a_property_is_of_each_values_visitors(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "group-props", "UTC").await;
    let event = |at: &str, ip: &str, name: &str, author: Option<&str>| {
        let mut line = line(&domain, at, ip, "US", name, "/post");
        if let Some(author) = author {
            line["props"] = json!({ "author": author });
        }
        line
    };
    import_events(
        env,
        &site_id,
        &[
            event("10:00", "1.1.1.1", "pageview", Some("Uku")),
            event("10:01", "1.1.1.1", "Signup", Some("Uku")),
            event("11:00", "2.2.2.2", "pageview", Some("Uku")),
            event("12:00", "3.3.3.3", "pageview", Some("Ann")),
            event("13:00", "4.4.4.4", "pageview", None),
        ],
    );
    let goals = format!("/websites/{site_id}/goals");
    let (status, goal) = env.api(Method::POST, &goals, &key, Some(json!({ "event_name": "Signup" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{goal}");
    // One of Uku's two visitors signed up: 50 % of them, 25 % of the day's 4.
    let body = json!({ "metrics": ["visitors", "conversion_rate", "group_conversion_rate"],
                       "dimensions": ["event:props:author"], "filters": [["is", "event:goal", ["Signup"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [1, 25.0, 50.0], "dimensions": ["Uku"] }]));
}

async fn filtered_by_page_bounce_rate_is_of_the_visits_that_entered_there(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // Visits 1, 2 and 3 include `/pricing`; 1 and 2 entered there, and 1 bounced. Visits stay
    // all three, and so does the duration.
    let rest = "metrics=visits,bounce_rate,visit_duration&filters=event:page%3D%3D%2Fpricing";
    let answer = v1(env, &key, "aggregate", &domain, rest).await;
    assert_eq!(
        answer["results"],
        json!({ "visits": { "value": 3 }, "bounce_rate": { "value": 50 }, "visit_duration": { "value": 60 } })
    );
    let body = json!({ "metrics": ["visits", "bounce_rate"], "filters": [["is", "event:page", ["/pricing"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [3, 50], "dimensions": [] }]));
    // By country too: in DE, visit 3 did not enter there, so no visit is left to bounce.
    let body = json!({ "metrics": ["visits", "bounce_rate"], "dimensions": ["visit:country"],
                       "filters": [["is", "event:page", ["/pricing"]]], "order_by": [["visit:country", "asc"]] });
    assert_eq!(
        v2(env, &key, &domain, body).await,
        json!([{ "metrics": [1, 0], "dimensions": ["DE"] }, { "metrics": [2, 50], "dimensions": ["US"] }])
    );
}

/// A visit without a pageview entered on no page, so a negated page filter does not pick it
/// for the bounce rate, as a positive one does not.
async fn a_negated_page_filters_bounce_rate_leaves_out_visits_without_a_pageview(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "negated", "UTC").await;
    let lines = [
        line(&domain, "10:00", "1.1.1.1", "US", "pageview", "/"),
        line(&domain, "10:01", "1.1.1.1", "US", "pageview", "/a"),
        line(&domain, "11:00", "2.2.2.2", "US", "Signup", "/b"),
        line(&domain, "12:00", "3.3.3.3", "US", "pageview", "/c"),
        line(&domain, "12:01", "3.3.3.3", "US", "pageview", "/d"),
    ];
    import_events(env, &site_id, &lines);
    // Visit 3 alone entered on a page other than `/`, and did not bounce.
    let answer = v1(env, &key, "aggregate", &domain, "metrics=bounce_rate&filters=event:page!%3D%2F").await;
    assert_eq!(answer["results"], json!({ "bounce_rate": { "value": 0 } }));
    let body = json!({ "metrics": ["bounce_rate"], "filters": [["is_not", "event:page", ["/"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [0], "dimensions": [] }]));
}

/// Figures with decimals round a tie to the even digit, as whole ones do (ClickHouse's `round`).
async fn a_tie_in_a_figures_last_decimal_goes_to_the_even_digit(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "ties", "UTC").await;
    // Sixteen visitors view `/`; one of them `/x` too and another `/y`: 18 pageviews in 16 visits.
    let mut lines: Vec<Value> =
        (1..=16).map(|n| line(&domain, "10:00", &format!("10.0.0.{n}"), "US", "pageview", "/")).collect();
    lines.push(line(&domain, "10:01", "10.0.0.15", "US", "pageview", "/x"));
    lines.push(line(&domain, "10:01", "10.0.0.16", "US", "pageview", "/y"));
    import_events(env, &site_id, &lines);
    let answer = v1(env, &key, "aggregate", &domain, "metrics=views_per_visit").await;
    assert_eq!(answer["results"], json!({ "views_per_visit": { "value": 1.12 } }));
    let body = json!({ "metrics": ["visitors", "percentage"], "dimensions": ["event:page"],
                       "order_by": [["event:page", "asc"]] });
    assert_eq!(
        v2(env, &key, &domain, body).await,
        json!([
            { "metrics": [16, 100.0], "dimensions": ["/"] },
            { "metrics": [1, 6.2], "dimensions": ["/x"] },
            { "metrics": [1, 6.2], "dimensions": ["/y"] },
        ])
    );
}

async fn a_v1_version_breakdown_names_the_browser_or_os_of_each_version(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let browsers = v1(env, &key, "breakdown", &domain, "property=visit:browser_version").await;
    assert_eq!(browsers["results"], json!([{ "browser": "Firefox", "browser_version": "128.0", "visitors": 6 }]));
    let systems = v1(env, &key, "breakdown", &domain, "property=visit:os_version").await;
    let row = &systems["results"][0];
    assert_eq!((&row["os"], &row["visitors"]), (&json!("GNU/Linux"), &json!(6)), "{systems}");
    // v2 names its dimensions as asked.
    let body = json!({ "metrics": ["visitors"], "dimensions": ["visit:browser_version"] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [6], "dimensions": ["128.0"] }]));
}

async fn a_v1_comparison_gives_the_figure_before_and_the_change(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let rest = "metrics=visitors,bounce_rate&compare=previous_period";
    let answer = v1(env, &key, "aggregate", &domain, rest).await;
    // Nobody came on the 9th: no bounce rate to compare with.
    assert_eq!(
        answer["results"],
        json!({ "visitors": { "value": 6, "comparison_value": 0, "change": 100 },
                "bounce_rate": { "value": 50, "comparison_value": 0, "change": null } })
    );
    // `all` has no period before: the comparison is left out.
    let path = format!("/plausible/api/v1/stats/aggregate?site_id={domain}&period=all&{rest}");
    let (status, all) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!((status, &all["results"]["visitors"]), (StatusCode::OK, &json!({ "value": 6 })));
}

/// Three visitors on 2026-01-10 (UTC): one from `utm_source=news`, two with no UTM.
async fn site_with_utm(env: &TestEnv) -> (String, String) {
    let (key, site_id, domain) = site_with_key(env, "utm", "UTC").await;
    let events = [
        line(&domain, "10:00", "1.1.1.1", "US", "pageview", "/?utm_source=news"),
        line(&domain, "10:00", "2.2.2.2", "US", "pageview", "/"),
        line(&domain, "11:00", "3.3.3.3", "US", "pageview", "/"),
    ];
    import_events(env, &site_id, &events);
    (key, domain)
}

async fn an_empty_utm_value_is_left_out_of_v1_breakdowns_and_not_set_in_v2(env: &TestEnv) {
    let (key, domain) = site_with_utm(env).await;
    let v1_rows = v1(env, &key, "breakdown", &domain, "property=visit:utm_source").await;
    assert_eq!(v1_rows["results"], json!([{ "utm_source": "news", "visitors": 1 }]));
    let body = json!({ "metrics": ["visitors"], "dimensions": ["visit:utm_source"] });
    assert_eq!(
        v2(env, &key, &domain, body).await,
        json!([{ "metrics": [2], "dimensions": ["(not set)"] }, { "metrics": [1], "dimensions": ["news"] }])
    );
}

async fn a_filter_on_plausibles_label_of_an_empty_utm_value_picks_the_empty_ones(env: &TestEnv) {
    let (key, domain) = site_with_utm(env).await;
    let answer = v1(env, &key, "aggregate", &domain, "filters=visit:utm_source%3D%3DDirect%20%2F%20None").await;
    assert_eq!(answer["results"]["visitors"]["value"], json!(2));
    let body = json!({ "metrics": ["visitors"], "filters": [["is", "visit:utm_source", ["(not set)"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [2], "dimensions": [] }]));
    let body = json!({ "metrics": ["visitors"], "filters": [["is_not", "visit:utm_source", ["(not set)"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [1], "dimensions": [] }]));
}

async fn a_v1_filter_value_holding_an_escaped_pipe_matches_that_value_alone(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "pipes", "UTC").await;
    let events = [
        line(&domain, "10:00", "1.1.1.1", "US", "pageview", "/a%7Cb"),
        line(&domain, "10:00", "2.2.2.2", "US", "pageview", "/a%5C"),
        line(&domain, "10:00", "3.3.3.3", "US", "pageview", "/b"),
    ];
    import_events(env, &site_id, &events);
    let rest = "property=event:page&filters=event:page%3D%3D%2Fa%5C%7Cb";
    let answer = v1(env, &key, "breakdown", &domain, rest).await;
    assert_eq!(answer["results"], json!([{ "page": "/a|b", "visitors": 1 }]));
    let rest = "property=event:page&filters=event:page%3D%3D%2Fa%5C%7Cb%7C%2Fb";
    let answer = v1(env, &key, "breakdown", &domain, rest).await;
    assert_eq!(answer["results"], json!([{ "page": "/a|b", "visitors": 1 }, { "page": "/b", "visitors": 1 }]));
}

/// A line as [`line`] makes it, from `referrer`.
fn referred(domain: &str, ip: &str, path: &str, referrer: &str) -> Value {
    let mut line = line(domain, "10:00", ip, "US", "pageview", path);
    line["referrer"] = json!(referrer);
    line
}

async fn sources_mediums_and_channels_are_told_apart_as_plausible_tells_them(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "acquisition", "UTC").await;
    let events = [
        // Not a referral: Direct, as Plausible has it.
        referred(&domain, "1.1.1.1", "/", "http://localhost:3000/x"),
        // An ad click without a medium is given the click id's.
        referred(&domain, "2.2.2.2", "/?gclid=abc", "https://www.google.com/"),
        // A `source` parameter names the source; only `utm_source` makes a visit e-mail.
        referred(&domain, "3.3.3.3", "/?source=newsletter2", ""),
        referred(&domain, "4.4.4.4", "/?utm_source=newsletter2", ""),
    ];
    import_events(env, &site_id, &events);
    let by = |dimension: &'static str| {
        let body = json!({ "metrics": ["visitors"], "dimensions": [dimension], "order_by": [[dimension, "asc"]] });
        v2(env, &key, &domain, body)
    };
    let rows = |results: Value| -> Vec<(String, u64)> {
        results
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["dimensions"][0].as_str().unwrap().to_owned(), r["metrics"][0].as_u64().unwrap()))
            .collect()
    };
    let pairs = |expected: &[(&str, u64)]| expected.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect::<Vec<_>>();
    assert_eq!(
        rows(by("visit:channel").await),
        pairs(&[("Direct", 1), ("Email", 1), ("Paid Search", 1), ("Referral", 1)])
    );
    assert_eq!(rows(by("visit:utm_medium").await), pairs(&[("(gclid)", 1), ("(not set)", 3)]));
    assert_eq!(rows(by("visit:source").await), pairs(&[("Direct / None", 1), ("Google", 1), ("newsletter2", 2)]));
}

async fn v2s_contains_respects_case_unless_told_not_to(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let contains = |modifiers: Option<Value>| {
        let mut filter = json!(["contains", "event:page", ["PRIC"]]);
        if let Some(modifiers) = modifiers {
            filter.as_array_mut().unwrap().push(modifiers);
        }
        json!({ "metrics": ["visitors"], "filters": [filter] })
    };
    assert_eq!(v2(env, &key, &domain, contains(None)).await, json!([{ "metrics": [0], "dimensions": [] }]));
    let ignoring = contains(Some(json!({ "case_sensitive": false })));
    assert_eq!(v2(env, &key, &domain, ignoring).await, json!([{ "metrics": [3], "dimensions": [] }]));
    let respecting = contains(Some(json!({ "case_sensitive": true })));
    assert_eq!(v2(env, &key, &domain, respecting).await, json!([{ "metrics": [0], "dimensions": [] }]));
    // `is` ignores case too with the modifier; wildcards never do.
    let body = json!({ "metrics": ["visitors"], "filters": [["is", "event:page", ["/PRICING"], { "case_sensitive": false }]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [3], "dimensions": [] }]));
    let body = json!({ "metrics": ["visitors"], "filters": [["matches_wildcard", "event:page", ["/PRIC*"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [0], "dimensions": [] }]));
    // Any other modifier is refused.
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day",
                       "filters": [["contains", "event:page", ["p"], { "case": false }]] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

async fn ignoring_case_ignores_it_in_every_alphabet(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "cafe", "UTC").await;
    let events = [
        line(&domain, "10:00", "1.1.1.1", "FR", "pageview", "/café"),
        line(&domain, "10:05", "2.2.2.2", "FR", "pageview", "/Straße"),
    ];
    import_events(env, &site_id, &events);
    let one = json!([{ "metrics": [1], "dimensions": [] }]);
    for filter in [
        json!(["is", "event:page", ["/CAFÉ"], { "case_sensitive": false }]),
        json!(["contains", "event:page", ["AFÉ"], { "case_sensitive": false }]),
        json!(["contains", "event:page", ["STRASSE", "straße"], { "case_sensitive": false }]),
    ] {
        let body = json!({ "metrics": ["visitors"], "filters": [filter.clone()] });
        assert_eq!(v2(env, &key, &domain, body).await, one, "{filter}");
    }
}

async fn events_before_a_visits_first_pageview_count_under_the_page_it_entered_on(env: &TestEnv) {
    let (_, key, domain, _) = crate::harness::pro_site(env, "entered").await;
    let event =
        |name: &str, path: &str| json!({ "domain": domain, "name": name, "url": format!("https://{domain}{path}") });
    // A custom event, stored before the visit's first pageview arrives in a later batch; and a
    // second visitor whose two events may share one.
    for (visitor, name, path) in [(150, "Signup", "/signup"), (150, "pageview", "/pricing"), (151, "Signup", "/x")] {
        assert_eq!(
            crate::harness::track(env, &crate::harness::browser(visitor), event(name, path)).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        crate::harness::track(env, &crate::harness::browser(151), event("pageview", "/about")).await,
        StatusCode::ACCEPTED
    );
    let today = |body: Value| {
        let mut body = body;
        body["site_id"] = json!(domain);
        body["date_range"] = json!("day");
        let key = key.clone();
        async move {
            let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["results"].clone()
        }
    };
    let body = json!({ "metrics": ["visitors"], "dimensions": ["visit:entry_page", "event:name"] });
    let mut rows = today(body).await.as_array().unwrap().clone();
    rows.sort_by_key(|row| row["dimensions"].to_string());
    assert_eq!(
        rows,
        [
            json!({ "dimensions": ["/about", "Signup"], "metrics": [1] }),
            json!({ "dimensions": ["/about", "pageview"], "metrics": [1] }),
            json!({ "dimensions": ["/pricing", "Signup"], "metrics": [1] }),
            json!({ "dimensions": ["/pricing", "pageview"], "metrics": [1] }),
        ]
    );
    let filters = json!([["is", "visit:entry_page", ["/pricing"]], ["is", "event:name", ["Signup"]]]);
    assert_eq!(
        today(json!({ "metrics": ["visitors"], "filters": filters })).await,
        json!([{ "metrics": [1], "dimensions": [] }])
    );
}

async fn v2s_and_or_not_groups_count_what_they_say(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let visitors = |filter: Value| json!({ "metrics": ["visitors"], "filters": [filter] });
    let count = |n: i64| json!([{ "metrics": [n], "dimensions": [] }]);
    // Visits 1, 2, 3 saw /pricing; 5 and 6 /about.
    let either_page = json!(["or", [["is", "event:page", ["/pricing"]], ["is", "event:page", ["/about"]]]]);
    assert_eq!(v2(env, &key, &domain, visitors(either_page)).await, count(5));
    // Visits 1 and 2 are from the US and saw /pricing.
    let both = json!(["and", [["is", "visit:country", ["US"]], ["is", "event:page", ["/pricing"]]]]);
    assert_eq!(v2(env, &key, &domain, visitors(both)).await, count(2));
    // Four visitors are not from Germany; none is from neither the US nor Germany.
    let not_de = json!(["not", ["is", "visit:country", ["DE"]]]);
    assert_eq!(v2(env, &key, &domain, visitors(not_de)).await, count(4));
    let neither = json!(["not", ["or", [["is", "visit:country", ["US"]], ["is", "visit:country", ["DE"]]]]]);
    assert_eq!(v2(env, &key, &domain, visitors(neither)).await, count(0));
    let twice_not = json!(["not", ["not", ["contains", "event:page", ["abo"]]]]);
    assert_eq!(v2(env, &key, &domain, visitors(twice_not)).await, count(2));
    // Operators of one dimension mixed: /pricing exactly, or a page holding "bou" (visits 5, 6).
    let mixed = json!(["or", [["is", "event:page", ["/pricing"]], ["contains", "event:page", ["bou"]]]]);
    assert_eq!(v2(env, &key, &domain, visitors(mixed)).await, count(5));
    let elsewhere = json!(["not", ["or", [["is", "event:page", ["/"]], ["matches_wildcard", "event:page", ["/a*"]]]]]);
    // As a page filter does, it counts the visitors with a pageview elsewhere: /pricing's 1, 2, 3.
    assert_eq!(v2(env, &key, &domain, visitors(elsewhere)).await, count(3));
}

async fn v2s_matches_finds_a_regular_expression_in_each_value(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let visitors = |filter: Value| json!({ "metrics": ["visitors"], "filters": [filter] });
    let count = |n: i64| json!([{ "metrics": [n], "dimensions": [] }]);
    let cases = [
        // Visits 1, 2, 3 saw /pricing; 5 and 6 /about.
        (json!(["matches", "event:page", ["^/(pricing|about)$"]]), 5),
        (json!(["matches", "event:page", ["ric"]]), 3),
        (json!(["matches", "event:page", ["^/PRICING"]]), 0),
        (json!(["matches", "event:page", ["(?i)^/PRICING"]]), 3),
        // RE2's word boundaries, which PostgreSQL writes otherwise.
        (json!(["matches", "event:page", [r"\babout\b"]]), 2),
        (json!(["matches", "event:page", [r"\Bbout"]]), 2),
        (json!(["matches", "event:page", [r"^\x2Fabout\z"]]), 2),
        // As a page filter does, it counts the visitors with a pageview elsewhere than /.
        (json!(["matches_not", "event:page", ["^/$"]]), 5),
        // Visits 3 and 6 are from Germany.
        (json!(["matches", "visit:country", ["^D"]]), 2),
        // Visits 2 and 4 completed the Signup goal.
        (json!(["matches", "event:goal", ["^Sign"]]), 2),
        (json!(["or", [["matches", "event:page", ["^/p"]], ["matches", "event:page", ["^/a"]]]]), 5),
    ];
    for (filter, n) in cases {
        assert_eq!(v2(env, &key, &domain, visitors(filter.clone())).await, count(n), "{filter}");
    }
    let by_page = json!({
        "metrics": ["visitors"],
        "dimensions": ["event:page"],
        "filters": [["matches", "event:page", ["^/[a-z]+$"]]],
        "order_by": [["visitors", "desc"]],
    });
    let rows = json!([{ "metrics": [3], "dimensions": ["/pricing"] }, { "metrics": [2], "dimensions": ["/about"] }]);
    assert_eq!(v2(env, &key, &domain, by_page).await, rows);
}

async fn a_v2_matches_value_that_is_not_a_regular_expression_is_refused_naming_it(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let refused = |filter: Value| {
        let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day", "filters": [filter] });
        let key = key.clone();
        async move {
            let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            answer["error"].as_str().unwrap().to_owned()
        }
    };
    let answer = refused(json!(["matches", "event:page", ["/blog", "("]])).await;
    assert!(answer.contains("\"(\" is not a regular expression we take: unclosed group"), "{answer}");
    let answer = refused(json!(["matches", "event:page", ["a{1000}{1000}"]])).await;
    assert!(answer.contains("it compiles too large"), "{answer}");
    // A regular expression's case is its own: it does not merge with a `contains`.
    let answer =
        refused(json!(["or", [["matches", "event:page", ["^/p"]], ["contains", "event:page", ["bou"]]]])).await;
    assert!(answer.contains("\"or\" group"), "{answer}");
    let answer = refused(json!(["matches", "event:page", ["^/p"], { "case_sensitive": false }])).await;
    assert!(answer.contains("case_sensitive modifier is not allowed with pattern operators"), "{answer}");
    // RE2's named groups are not in PostgreSQL's flavour: on PostgreSQL, a 400 that says so.
    let named = json!({ "metrics": ["visitors"], "filters": [["matches", "event:page", ["(?P<section>^/p)"]]] });
    match env.database_name() {
        None => assert_eq!(v2(env, &key, &domain, named).await, json!([{ "metrics": [3], "dimensions": [] }])),
        Some(_) => {
            let mut body = named;
            body["site_id"] = json!(domain);
            body["date_range"] = json!("day");
            let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            let text = answer["error"].as_str().unwrap();
            assert!(
                text.contains("PostgreSQL does not take this regular expression: invalid regular expression"),
                "{text}"
            );
        }
    }
}

async fn a_v2_or_across_dimensions_is_refused_saying_which_groups_are_taken(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let groups = [
        json!(["or", [["is", "visit:country", ["US"]], ["is", "event:page", ["/about"]]]]),
        json!(["or", [["is_not", "event:page", ["/"]], ["is_not", "event:page", ["/about"]]]]),
        json!(["not", ["and", [["is", "event:page", ["/"]], ["is", "visit:country", ["US"]]]]]),
    ];
    for group in groups {
        let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day", "filters": [group] });
        let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("\"or\" group"), "{answer}");
    }
}

async fn v2_takes_goals_and_hostnames_only_at_the_top_level_as_plausible_does(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let refused = |metrics: Value, group: Value| {
        let body = json!({ "site_id": domain, "metrics": metrics, "date_range": "day", "filters": [group] });
        let key = key.clone();
        async move {
            let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            answer["error"].as_str().unwrap().to_owned()
        }
    };
    let group = json!(["and", [["is", "visit:country", ["US"]], ["is", "event:goal", ["Signup"]]]]);
    assert_eq!(
        refused(json!(["visitors"]), group).await,
        "Invalid filters. Dimension `event:goal` can only be filtered at the top level."
    );
    let group = json!(["not", ["is", "event:hostname", ["example.com"]]]);
    assert_eq!(
        refused(json!(["visitors"]), group).await,
        "Invalid filters. Dimension `event:hostname` can only be filtered at the top level."
    );
    let group = json!(["not", ["is", "event:props:plan", ["free"]]]);
    let answer = refused(json!(["visitors", "conversion_rate"]), group).await;
    assert!(answer.contains("custom property filters can only be used on top level"), "{answer}");
    // At the top level, the goal filters as before: visits 2 and 4 signed up.
    let body = json!({ "metrics": ["visitors"], "filters": [["is", "event:goal", ["Signup"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [2], "dimensions": [] }]));
}

async fn v2_refuses_a_case_modifier_on_a_pattern_operator_in_plausibles_words(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let filter = json!(["matches_wildcard", "event:page", ["/PRIC*"], { "case_sensitive": false }]);
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day", "filters": [filter] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"],
        "Invalid filters. The case_sensitive modifier is not allowed with pattern operators \
         ([:matches_wildcard, \"event:page\", [\"/PRIC*\"], %{case_sensitive: false}])"
    );
}

/// Plausible's clock keeps whole seconds, and a visit goes on while the gap is at most 30 whole
/// minutes: 30:59 continues it, 31:00 starts another.
async fn a_visit_goes_on_after_a_gap_of_up_to_thirty_whole_minutes(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "gaps", "UTC").await;
    let at = |time: &str, path: &str| {
        json!({ "at": format!("2026-01-10T{time}Z"), "name": "pageview", "url": format!("https://{domain}{path}"),
                "user_agent": FIREFOX, "ip": "7.7.7.7", "country": "US" })
    };
    let events = [at("10:00:00", "/a"), at("10:30:59", "/b"), at("11:00:00", "/c"), at("11:31:00", "/d")];
    import_events(env, &site_id, &events);
    let answer = v1(env, &key, "aggregate", &domain, "metrics=visits,pageviews,bounce_rate,visit_duration").await;
    let figures = &answer["results"];
    assert_eq!(
        [&figures["visits"]["value"], &figures["pageviews"]["value"], &figures["bounce_rate"]["value"]],
        [&json!(2), &json!(4), &json!(50)],
        "{answer}"
    );
    // One visit of an hour and one of a single pageview.
    assert_eq!(figures["visit_duration"]["value"], json!(1800), "{answer}");
    let entries = v1(env, &key, "breakdown", &domain, "property=visit:entry_page&metrics=visits").await;
    assert_eq!(entries["results"], json!([{ "entry_page": "/a", "visits": 1 }, { "entry_page": "/d", "visits": 1 }]));
}

/// Plausible orders a v1 breakdown by its first metric other than `time_on_page`, adding the
/// visitors to order by when there is none, then by the property.
async fn a_v1_breakdown_is_never_ordered_by_time_on_page(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let pages = |answer: &Value| -> Vec<(Value, Value)> {
        answer["results"].as_array().unwrap().iter().map(|r| (r["page"].clone(), r["visitors"].clone())).collect()
    };
    let expected = vec![(json!("/"), json!(3)), (json!("/pricing"), json!(3))];
    for metrics in ["time_on_page", "time_on_page,visitors"] {
        let rest = format!("property=event:page&metrics={metrics}&limit=2");
        let answer = v1(env, &key, "breakdown", &domain, &rest).await;
        assert_eq!(pages(&answer), expected, "{metrics}: {answer}");
    }
}

async fn a_v1_time_series_gives_an_hour_without_visits_no_visit_duration(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let metrics = "metrics=visitors,visits,pageviews,visit_duration,bounce_rate";
    let answer = v1(env, &key, "timeseries", &domain, metrics).await;
    let hours = answer["results"].as_array().unwrap();
    assert_eq!(hours.len(), 24, "{answer}");
    // Nothing happened at 09:00; visit 2 (10:00–10:02) lasted two minutes, visit 1 bounced.
    assert_eq!(
        hours[9],
        json!({ "date": "2026-01-10 09:00:00", "visitors": 0, "visits": 0, "pageviews": 0,
                "visit_duration": null, "bounce_rate": 0 })
    );
    assert_eq!(
        hours[10],
        json!({ "date": "2026-01-10 10:00:00", "visitors": 2, "visits": 2, "pageviews": 3,
                "visit_duration": 60, "bounce_rate": 50 })
    );
}

async fn v2_refuses_a_malformed_query_in_plausibles_words(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let cases = [
        (json!({ "dimensions": ["badproperty"] }), "#/dimensions/0: Invalid dimension \"badproperty\""),
        (json!({ "dimensions": ["event:props:"] }), "#/dimensions/0: Invalid dimension \"event:props:\""),
        (json!({ "date_range": "bad_period" }), "#/date_range: Invalid date range \"bad_period\""),
        (json!({ "metrics": ["visitors", "baa"] }), "#/metrics/1: Invalid metric \"baa\""),
        (
            json!({ "metrics": ["views_per_visit", "visitors", "visitors"] }),
            "#/metrics: Expected items to be unique but they were not.",
        ),
        (
            json!({ "dimensions": ["event:page", "event:page"] }),
            "#/dimensions: Expected items to be unique but they were not.",
        ),
        (
            json!({ "order_by": [["pageviews", "desc"]] }),
            "Invalid order_by entry '{:pageviews, :desc}'. Entry is not a queried metric or dimension.",
        ),
        (json!({ "metrics": [] }), "#/metrics: Expected a minimum of 1 items but got 0."),
        (json!({ "foo": 1 }), "#/foo: Schema does not allow additional properties."),
        (
            json!({ "include": { "comparisons": { "mode": "previous_period" } } }),
            "#/include/comparisons: Schema does not allow additional properties.",
        ),
        (json!({ "pagination": { "page": 2 } }), "#/pagination/page: Schema does not allow additional properties."),
    ];
    for (change, error) in cases {
        let mut body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "all" });
        for (field, value) in change.as_object().unwrap() {
            body[field] = value.clone();
        }
        let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
        assert_eq!((status, &answer), (StatusCode::BAD_REQUEST, &json!({ "error": error })));
    }
    let body = json!({ "site_id": domain, "metrics": ["visitors"] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    let error = "#: Required property date_range was not present.";
    assert_eq!((status, &answer), (StatusCode::BAD_REQUEST, &json!({ "error": error })));
}

async fn a_v1_time_series_keeps_both_hours_named_alike_when_the_clocks_go_back(env: &TestEnv) {
    let (key, site_id, domain) = site_with_key(env, "dst", "Europe/Paris").await;
    // 02:30 in Paris twice on 2026-10-25: at 00:30 UTC (summer time), then at 01:30 UTC.
    let at = |utc: &str, ip: &str| {
        json!({ "at": format!("2026-10-25T{utc}:00Z"), "name": "pageview", "url": format!("https://{domain}/"),
                "user_agent": FIREFOX, "ip": ip, "country": "FR" })
    };
    import_events(env, &site_id, &[at("00:30", "1.1.1.1"), at("01:30", "2.2.2.2"), at("01:40", "3.3.3.3")]);
    let path =
        format!("/plausible/api/v1/stats/timeseries?site_id={domain}&period=day&date=2026-10-25&metrics=pageviews");
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let at_two: Vec<&Value> =
        answer["results"].as_array().unwrap().iter().filter(|r| r["date"] == "2026-10-25 02:00:00").collect();
    assert_eq!(
        at_two,
        [
            &json!({ "date": "2026-10-25 02:00:00", "pageviews": 1 }),
            &json!({ "date": "2026-10-25 02:00:00", "pageviews": 2 })
        ]
    );
}

async fn a_v2_date_range_of_two_date_times_covers_exactly_those_instants(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    // Visits 1 to 4 started from 10:00 to 12:01; 5 and 6 at 13:00.
    let body = json!({ "site_id": domain, "metrics": ["visitors"],
                       "date_range": ["2026-01-10T10:00:00Z", "2026-01-10T12:30:00Z"] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"], json!([{ "metrics": [4], "dimensions": [] }]));
    assert_eq!(answer["query"]["date_range"], json!(["2026-01-10T10:00:00Z", "2026-01-10T12:30:00Z"]));
    // From 11:30 UTC, the last second included as Plausible includes it: visitors 4, 5 and 6.
    let body = json!({ "site_id": domain, "metrics": ["visitors"],
                       "date_range": ["2026-01-10T12:30:00+01:00", "2026-01-10T13:00:00Z"] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!((status, &answer["results"]), (StatusCode::OK, &json!([{ "metrics": [3], "dimensions": [] }])));
}

async fn a_v2_date_range_mixing_a_day_and_a_date_time_is_refused_as_plausible_refuses_it(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    for range in [json!(["2026-01-10T10:00:00Z", "2026-01-11"]), json!(["2026-01-10", "2026-01-10T23:00:00+14:00"])] {
        let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": range });
        let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("date_range"), "{answer}");
    }
}

async fn a_v1_time_series_of_all_time_without_an_interval_is_by_month_once_it_spans_a_month(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let path = format!("/plausible/api/v1/stats/timeseries?site_id={domain}&period=all&metrics=visitors");
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let rows = answer["results"].as_array().unwrap();
    // From the first visit's month (January 2026) to this one, each month's first day.
    assert_eq!(rows[0], json!({ "date": "2026-01-01", "visitors": 6 }));
    assert!(rows.iter().all(|row| row["date"].as_str().unwrap().ends_with("-01")), "{answer}");
    let this_month = chrono::Utc::now().format("%Y-%m-01").to_string();
    assert_eq!(rows.last().unwrap()["date"], json!(this_month));
}

async fn the_drop_in_ignores_a_comparison_other_than_the_previous_period_as_plausible_does(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let answer = v1(env, &key, "aggregate", &domain, "metrics=visitors&compare=year_over_year").await;
    assert_eq!(answer["results"]["visitors"], json!({ "value": 6 }), "{answer}");
    let ours =
        format!("/stats/aggregate?site_id={domain}&period=day&date=2026-01-10&metrics=visitors&compare=year_over_year");
    let (status, refused) = env.api(Method::GET, &ours, &key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

async fn a_custom_v1_date_with_spaces_around_its_days_reads_them_trimmed(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let path = format!(
        "/plausible/api/v1/stats/aggregate?site_id={domain}&period=custom&date=2026-01-09,%202026-01-10&metrics=visitors"
    );
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"]["visitors"], json!({ "value": 6 }));
}

async fn v2_says_why_imports_are_not_included_as_plausible_does(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": ["2026-01-10", "2026-01-10"],
                       "include": { "imports": true } });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["meta"]["imports_included"], false);
    assert_eq!(answer["meta"]["imports_skip_reason"], "no_imported_data");
}

async fn the_drop_ins_realtime_and_goal_list_read_a_site_id_given_twice_as_its_last(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    for path in ["/plausible/api/v1/stats/realtime/visitors", "/plausible/api/v1/sites/goals"] {
        let path = format!("{path}?site_id=nowhere.example&site_id={domain}&unread=1");
        let (status, answer) = env.api(Method::GET, &path, &key, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
}

const INVALID_KEY_OR_SITE: &str = "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";

/// A drop-in call with `key` (none if empty): status, `X-RateLimit-Remaining` and body.
async fn dropin(
    env: &TestEnv,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Option<u64>, Value) {
    let mut request = env.request(method, &format!("/api/external/v1/plausible{path}"));
    if !key.is_empty() {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let remaining = response.headers().get("x-ratelimit-remaining").map(|v| v.to_str().unwrap().parse().unwrap());
    let (status, body) = crate::harness::into_json(response).await;
    (status, remaining, body)
}

async fn an_unknown_site_or_one_out_of_reach_is_plausibles_401_and_takes_no_slot(env: &TestEnv) {
    let (key, _, domain) = site_with_key(env, "mine", "UTC").await;
    let (_, _, theirs) = site_with_key(env, "theirs", "UTC").await;
    let aggregate = |site: &str| format!("/api/v1/stats/aggregate?site_id={site}&period=day");
    let (status, before, _) = dropin(env, &key, Method::GET, &aggregate(&domain), None).await;
    assert_eq!(status, StatusCode::OK);
    for site in ["nowhere.example", theirs.as_str()] {
        let v2 = json!({ "site_id": site, "metrics": ["visitors"], "date_range": "day" });
        for (method, path, body) in [
            (Method::GET, aggregate(site), None),
            (Method::GET, format!("/api/v1/stats/realtime/visitors?site_id={site}"), None),
            (Method::POST, "/api/v2/query".to_owned(), Some(v2)),
        ] {
            let (status, remaining, answer) = dropin(env, &key, method, &path, body).await;
            assert_eq!((status, answer), (StatusCode::UNAUTHORIZED, json!({ "error": INVALID_KEY_OR_SITE })), "{path}");
            // The budget's headers are there, and the refusal took nothing from it.
            assert_eq!(remaining, before, "{path}");
        }
    }
    // Our own endpoints keep our words: an unknown website is a 404 in the envelope.
    let (status, ours) = env.api(Method::GET, "/stats/aggregate?site_id=nowhere.example&period=day", &key, None).await;
    assert_eq!((status, ours["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{ours}");
}

async fn a_drop_in_request_without_a_key_or_site_id_is_refused_in_plausibles_words(env: &TestEnv) {
    let (key, _, domain) = site_with_key(env, "words", "UTC").await;
    let (status, _, answer) =
        dropin(env, "", Method::GET, &format!("/api/v1/stats/aggregate?site_id={domain}"), None).await;
    let missing_key = "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
    assert_eq!((status, answer), (StatusCode::UNAUTHORIZED, json!({ "error": missing_key })));
    // Another scheme than Bearer carries no key either.
    let path = format!("/api/external/v1/plausible/api/v1/stats/aggregate?site_id={domain}");
    let basic = env.request(Method::GET, &path).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    let (status, answer) = crate::harness::into_json(basic).await;
    assert_eq!((status, answer), (StatusCode::UNAUTHORIZED, json!({ "error": missing_key })));
    let wrong = "zv_live_0000000000000000000000000000000000000000";
    let (status, _, answer) =
        dropin(env, wrong, Method::GET, &format!("/api/v1/stats/aggregate?site_id={domain}"), None).await;
    assert_eq!((status, answer), (StatusCode::UNAUTHORIZED, json!({ "error": INVALID_KEY_OR_SITE })));
    let missing_site =
        json!({ "error": "Missing site ID. Please provide the required site_id parameter with your request." });
    let (status, _, answer) = dropin(env, &key, Method::GET, "/api/v1/stats/aggregate?period=day", None).await;
    assert_eq!((status, answer), (StatusCode::BAD_REQUEST, missing_site.clone()));
    let body = json!({ "metrics": ["visitors"], "date_range": "day" });
    let (status, _, answer) = dropin(env, &key, Method::POST, "/api/v2/query", Some(body)).await;
    assert_eq!((status, answer), (StatusCode::BAD_REQUEST, missing_site));
}

/// A v1 call through the drop-in that Plausible refuses: its error text.
async fn v1_refused(env: &TestEnv, key: &str, endpoint: &str, domain: &str, rest: &str) -> String {
    let path = format!("/plausible/api/v1/stats/{endpoint}?site_id={domain}&date=2026-01-10&{rest}");
    let (status, answer) = env.api(Method::GET, &path, key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{rest}: {answer}");
    answer["error"].as_str().unwrap().to_owned()
}

async fn v1_refuses_a_bad_page_filter_property_or_goal_in_plausibles_words(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    for page in ["0", "-5", "abc", "1.0"] {
        assert_eq!(
            v1_refused(env, &key, "breakdown", &domain, &format!("period=day&property=event:page&page={page}")).await,
            "Please provide page as a positive number."
        );
    }
    for limit in ["0", "-1", "abc", "3.0", "", "1001"] {
        assert_eq!(
            v1_refused(env, &key, "breakdown", &domain, &format!("period=day&property=event:page&limit={limit}")).await,
            "Please provide limit as a number between 1 and 1000.",
            "{limit}"
        );
    }
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&filters=foo%3D%3Dbar").await,
        "Invalid filter property 'foo'. Please provide a valid filter property: \
         https://plausible.io/docs/stats-api#properties"
    );
    let goals = "Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals";
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&filters=event:goal%3D%3DNope").await,
        format!("The goal `Nope` is not configured for this site. {goals}")
    );
    assert_eq!(
        v1_refused(env, &key, "timeseries", &domain, "period=day&filters=event:goal%3D%3DVisit%20/register**").await,
        format!("The pageview goal for the pathname `/register**` is not configured for this site. {goals}")
    );
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&filters=event:goal!%3DNope").await,
        format!("The goal `Nope` is not configured for this site. {goals}")
    );
    // v2 words it its way.
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "all",
                       "filters": [["is", "event:goal", ["Signup", "Nope"]]] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"], format!("Invalid filters. The goal `Nope` is not configured for this site. {goals}"));
}

async fn v1_refuses_an_unknown_period_metric_or_property_in_plausibles_words(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=foo").await,
        "Error parsing `period` parameter: invalid period `foo`. \
         Please find accepted values in our docs: https://plausible.io/docs/stats-api#time-periods"
    );
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&metrics=visitors,foo").await,
        "The metric `foo` is not recognized. Find valid metrics from the documentation: \
         https://plausible.io/docs/stats-api#metrics"
    );
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&metrics=group_conversion_rate").await,
        "The metric `group_conversion_rate` is not recognized. Find valid metrics from the documentation: \
         https://plausible.io/docs/stats-api#metrics"
    );
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&metrics=visitors,visitors").await,
        "Metrics cannot be queried multiple times."
    );
    assert_eq!(
        v1_refused(env, &key, "breakdown", &domain, "period=day&property=visit:foo").await,
        "Invalid property 'visit:foo'. Please provide a valid property for the breakdown endpoint: \
         https://plausible.io/docs/stats-api#properties"
    );
    assert_eq!(
        v1_refused(env, &key, "breakdown", &domain, "period=day").await,
        "The `property` parameter is required. Please provide at least one property to show a breakdown by."
    );
}

async fn v1_refuses_a_visits_metric_with_an_event_names_filter_or_breakdown(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&metrics=bounce_rate&filters=event:name%3D%3DSignup")
            .await,
        "Session metric `bounce_rate` cannot be queried when using a filter on `event:name`."
    );
    assert_eq!(
        v1_refused(env, &key, "breakdown", &domain, "period=day&metrics=visit_duration&property=event:name").await,
        "Session metric `visit_duration` cannot be queried for breakdown by `event:name`."
    );
    // Our own envelope's v1 says the same, naming the field.
    let path =
        format!("/stats/aggregate?site_id={domain}&period=day&metrics=bounce_rate&filters=event:name%3D%3DSignup");
    let (status, ours) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{ours}");
    assert!(ours["error"]["message"].as_str().unwrap().starts_with("metrics: Session metric"), "{ours}");
}

async fn v1_refuses_views_per_visit_by_page(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&metrics=views_per_visit&filters=event:page%3D%3D/")
            .await,
        "Metric `views_per_visit` cannot be queried with a filter on `event:page`."
    );
    assert_eq!(
        v1_refused(env, &key, "breakdown", &domain, "period=day&metrics=views_per_visit&property=event:page").await,
        "Metric `views_per_visit` is not supported in breakdown queries."
    );
}

async fn v1_gives_conversion_rate_only_by_or_of_goals(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let words = "Metric `conversion_rate` can only be queried in a goal breakdown or with a goal filter";
    for (endpoint, rest) in [
        ("aggregate", "period=day&metrics=conversion_rate"),
        ("timeseries", "period=day&metrics=visitors,conversion_rate"),
        ("breakdown", "period=day&metrics=conversion_rate&property=visit:country"),
    ] {
        assert_eq!(v1_refused(env, &key, endpoint, &domain, rest).await, words, "{endpoint}");
    }
}

async fn v1_gives_time_on_page_only_of_pages(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    assert_eq!(
        v1_refused(env, &key, "aggregate", &domain, "period=day&metrics=time_on_page").await,
        "Metric `time_on_page` can only be queried in a page breakdown or with a page filter."
    );
    assert_eq!(
        v1_refused(env, &key, "breakdown", &domain, "period=day&metrics=time_on_page&property=visit:country").await,
        "Metric `time_on_page` is not supported in breakdown queries (except `event:page` breakdown)"
    );
    v1(env, &key, "aggregate", &domain, "metrics=time_on_page&filters=event:page%3D%3D/").await;
    v1(env, &key, "breakdown", &domain, "metrics=time_on_page&property=event:page").await;
}

/// A v2 query through the drop-in that Plausible refuses: its error text.
async fn v2_refused(env: &TestEnv, key: &str, domain: &str, body: Value) -> String {
    let mut body = body;
    body["site_id"] = json!(domain);
    body["date_range"] = json!(["2026-01-10", "2026-01-10"]);
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", key, Some(body.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    answer["error"].as_str().unwrap().to_owned()
}

async fn v2_gives_time_on_page_and_scroll_depth_only_of_pages(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    for metric in ["time_on_page", "scroll_depth"] {
        let text = v2_refused(env, &key, &domain, json!({ "metrics": [metric] })).await;
        assert_eq!(text, format!("Metric `{metric}` can only be queried with event:page filters or dimensions."));
        v2(env, &key, &domain, json!({ "metrics": [metric], "dimensions": ["event:page"] })).await;
        v2(env, &key, &domain, json!({ "metrics": [metric], "filters": [["is", "event:page", ["/"]]] })).await;
    }
}

async fn v2_gives_views_per_visit_only_of_whole_visits(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let by_page = json!({ "metrics": ["views_per_visit"], "filters": [["is", "event:page", ["/"]]] });
    assert_eq!(
        v2_refused(env, &key, &domain, by_page).await,
        "Metric `views_per_visit` cannot be queried with a filter on `event:page`."
    );
    let by_country = json!({ "metrics": ["views_per_visit"], "dimensions": ["visit:country"] });
    assert_eq!(
        v2_refused(env, &key, &domain, by_country).await,
        "Metric `views_per_visit` cannot be queried with `dimensions`."
    );
    // A time dimension too.
    let by_day = json!({ "metrics": ["views_per_visit"], "dimensions": ["time:day"] });
    assert_eq!(
        v2_refused(env, &key, &domain, by_day).await,
        "Metric `views_per_visit` cannot be queried with `dimensions`."
    );
    // Our own `/query` refuses it too, naming the field.
    let (site_id, body) = (
        domain.clone(),
        json!({ "metrics": ["views_per_visit"], "dimensions": ["visit:country"], "date_range": "day" }),
    );
    let (status, ours) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{ours}");
    assert!(ours["error"]["message"].as_str().unwrap().starts_with("metrics: Metric `views_per_visit`"), "{ours}");
}

async fn v2_refuses_a_visits_metric_by_event_and_an_events_metric_by_entry_page(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let body = json!({ "metrics": ["visitors", "bounce_rate"], "dimensions": ["event:name"] });
    assert_eq!(
        v2_refused(env, &key, &domain, body).await,
        "Session metric(s) `bounce_rate` cannot be queried along with event dimension(s) `event:name`"
    );
    let body = json!({ "metrics": ["pageviews"], "dimensions": ["visit:entry_page"] });
    assert_eq!(
        v2_refused(env, &key, &domain, body).await,
        "Event metric(s) `pageviews` cannot be queried along with session dimension(s) `visit:entry_page`"
    );
    // By the page alone, the bounce rate is that of the visits that entered there.
    v2(env, &key, &domain, json!({ "metrics": ["bounce_rate"], "dimensions": ["event:page"] })).await;
}

async fn v2_refuses_time_labels_without_a_time_dimension(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let body = json!({ "metrics": ["visitors"], "include": { "time_labels": true } });
    assert_eq!(v2_refused(env, &key, &domain, body).await, "Invalid include.time_labels: requires a time dimension.");
}

async fn v2_filters_countries_by_their_two_letter_code_only(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let body = json!({ "metrics": ["visitors"], "filters": [["is", "visit:country", ["USA"]]] });
    assert_eq!(
        v2_refused(env, &key, &domain, body).await,
        "Invalid visit:country filter, visit:country needs to be a valid 2-letter country code."
    );
    let body = json!({ "metrics": ["visitors"], "filters": [["is", "visit:country", ["US"]]] });
    assert_eq!(v2(env, &key, &domain, body).await, json!([{ "metrics": [4], "dimensions": [] }]));
}

async fn v2s_time_dimension_is_by_hour_over_a_day_and_by_day_over_a_week(env: &TestEnv) {
    let (key, domain) = site_with_visits(env).await;
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "dimensions": ["time"],
                       "date_range": ["2026-01-10", "2026-01-10"], "order_by": [["time", "desc"]] });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["query"]["dimensions"], json!(["time:hour"]));
    assert_eq!(answer["query"]["order_by"], json!([["time:hour", "desc"]]));
    let hours: Vec<&Value> = answer["results"].as_array().unwrap().iter().map(|r| &r["dimensions"][0]).collect();
    assert_eq!(hours, ["2026-01-10 13:00:00", "2026-01-10 12:00:00", "2026-01-10 11:00:00", "2026-01-10 10:00:00"]);
    let body = json!({ "site_id": domain, "metrics": ["visitors"], "dimensions": ["time"],
                       "date_range": ["2026-01-04", "2026-01-10"], "include": { "time_labels": true } });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["query"]["dimensions"], json!(["time:day"]));
    assert_eq!(answer["results"], json!([{ "metrics": [6], "dimensions": ["2026-01-10"] }]));
    assert_eq!(answer["meta"]["time_labels"].as_array().map(Vec::len), Some(7));
}

both_modes!(
    the_drop_ins_realtime_and_goal_list_read_a_site_id_given_twice_as_its_last,
    the_drop_in_ignores_a_comparison_other_than_the_previous_period_as_plausible_does,
    a_custom_v1_date_with_spaces_around_its_days_reads_them_trimmed,
    v2_says_why_imports_are_not_included_as_plausible_does,
    a_v2_date_range_mixing_a_day_and_a_date_time_is_refused_as_plausible_refuses_it,
    a_v1_time_series_of_all_time_without_an_interval_is_by_month_once_it_spans_a_month,
    a_v1_filter_value_holding_an_escaped_pipe_matches_that_value_alone,
    sources_mediums_and_channels_are_told_apart_as_plausible_tells_them,
    v1_gives_conversion_rate_only_by_or_of_goals,
    v2s_time_dimension_is_by_hour_over_a_day_and_by_day_over_a_week,
    a_v1_breakdowns_conversion_rate_is_of_its_rows_own_visitors,
    a_v1_time_series_conversion_rate_is_of_each_buckets_visitors,
    a_v1_time_series_gives_an_hour_without_visits_no_visit_duration,
    a_v1_time_series_keeps_both_hours_named_alike_when_the_clocks_go_back,
    v2s_conversion_rate_stays_of_the_whole_periods_visitors,
    v2s_group_conversion_rate_is_of_each_rows_own_visitors,
    v2s_group_conversion_rate_by_a_property_is_of_each_values_visitors,
    filtered_by_page_bounce_rate_is_of_the_visits_that_entered_there,
    a_v1_version_breakdown_names_the_browser_or_os_of_each_version,
    an_empty_utm_value_is_left_out_of_v1_breakdowns_and_not_set_in_v2,
    a_filter_on_plausibles_label_of_an_empty_utm_value_picks_the_empty_ones,
    v2s_contains_respects_case_unless_told_not_to,
    ignoring_case_ignores_it_in_every_alphabet,
    events_before_a_visits_first_pageview_count_under_the_page_it_entered_on,
    a_negated_page_filters_bounce_rate_leaves_out_visits_without_a_pageview,
    a_tie_in_a_figures_last_decimal_goes_to_the_even_digit,
    v2s_and_or_not_groups_count_what_they_say,
    a_v2_or_across_dimensions_is_refused_saying_which_groups_are_taken,
    v2s_matches_finds_a_regular_expression_in_each_value,
    a_v2_matches_value_that_is_not_a_regular_expression_is_refused_naming_it,
    v2_takes_goals_and_hostnames_only_at_the_top_level_as_plausible_does,
    v2_refuses_a_case_modifier_on_a_pattern_operator_in_plausibles_words,
    v2_refuses_a_malformed_query_in_plausibles_words,
    a_v2_date_range_of_two_date_times_covers_exactly_those_instants,
    a_v1_comparison_gives_the_figure_before_and_the_change,
    an_unknown_site_or_one_out_of_reach_is_plausibles_401_and_takes_no_slot,
    a_drop_in_request_without_a_key_or_site_id_is_refused_in_plausibles_words,
    v1_refuses_an_unknown_period_metric_or_property_in_plausibles_words,
    v1_refuses_a_bad_page_filter_property_or_goal_in_plausibles_words,
    v1_refuses_a_visits_metric_with_an_event_names_filter_or_breakdown,
    v1_refuses_views_per_visit_by_page,
    v1_gives_time_on_page_only_of_pages,
    v2_gives_time_on_page_and_scroll_depth_only_of_pages,
    v2_gives_views_per_visit_only_of_whole_visits,
    v2_refuses_a_visits_metric_by_event_and_an_events_metric_by_entry_page,
    v2_refuses_time_labels_without_a_time_dimension,
    v2_filters_countries_by_their_two_letter_code_only,
    a_visit_goes_on_after_a_gap_of_up_to_thirty_whole_minutes,
    a_v1_breakdown_is_never_ordered_by_time_on_page,
);

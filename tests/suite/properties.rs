//! Custom properties (`event:props:<name>`) as a dimension and as a filter, in every query shape:
//! ours, Plausible v1 and v2 in the envelope, and the drop-in.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, browser, pro_site, track};

/// Three visitors: one on the `pro` plan (a pageview and a Signup event carrying the property), one
/// on `free` (a numeric property too), and one whose event has no properties.
async fn site_with_properties(env: &TestEnv) -> (String, String, String) {
    let (_, key, domain, site) = pro_site(env, "props").await;
    let url = |path: &str| format!("https://{domain}{path}");
    let events = [
        (1, json!({ "domain": domain, "name": "pageview", "url": url("/"), "props": { "plan": "pro" } })),
        (1, json!({ "domain": domain, "name": "Signup", "url": url("/"), "props": { "plan": "pro" } })),
        (
            2,
            json!({ "domain": domain, "name": "pageview", "url": url("/pricing"), "props": { "plan": "free", "seats": 3 } }),
        ),
        (3, json!({ "domain": domain, "name": "pageview", "url": url("/") })),
    ];
    for (visitor, event) in events {
        assert_eq!(track(env, &browser(100 + visitor), event).await, StatusCode::ACCEPTED);
    }
    (key, domain, site["data"]["id"].as_str().unwrap().to_owned())
}

fn rows(body: &Value) -> Vec<(Value, Value)> {
    body["results"].as_array().unwrap().iter().map(|r| (r["dimensions"].clone(), r["metrics"].clone())).collect()
}

async fn custom_properties_are_a_dimension_and_a_filter_in_every_query_shape(env: &TestEnv) {
    let (key, domain, site_id) = site_with_properties(env).await;
    // Ours (v2 in the envelope): grouped by the property, `(none)` for the event without it.
    let query = json!({ "metrics": ["visitors", "events"], "date_range": "day", "dimensions": ["event:props:plan"] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected =
        vec![(json!(["(none)"]), json!([1, 1])), (json!(["free"]), json!([1, 1])), (json!(["pro"]), json!([1, 2]))];
    assert_eq!(rows(&body["data"]), expected, "{body}");
    // The drop-in's v2, the same.
    let dropin = json!({ "site_id": domain, "metrics": ["visitors", "events"], "date_range": "day", "dimensions": ["event:props:plan"] });
    let (status, body) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(dropin)).await;
    assert_eq!((status, rows(&body)), (StatusCode::OK, expected), "{body}");
    // A filter: the pro visitor's pageview and event, and their one visit.
    let filtered = json!({
        "metrics": ["visitors", "visits", "pageviews", "events"],
        "date_range": "day",
        "filters": [["is", "event:props:plan", ["pro"]]],
    });
    let (_, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(filtered)).await;
    assert_eq!(rows(&body["data"]), vec![(json!([]), json!([1, 1, 1, 2]))], "{body}");
    // Numbers are kept as text, as Plausible keeps them.
    let seats =
        json!({ "metrics": ["visitors"], "date_range": "day", "filters": [["is", "event:props:seats", ["3"]]] });
    let (_, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(seats)).await;
    assert_eq!(rows(&body["data"]), vec![(json!([]), json!([1]))], "{body}");

    // v1: breakdown by the property, named by its name in the rows; a filter on it.
    let breakdown =
        format!("/stats/breakdown?site_id={site_id}&period=day&property=event:props:plan&metrics=visitors,events");
    let (status, body) = env.api(Method::GET, &breakdown, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["results"],
        json!([
            { "plan": "(none)", "visitors": 1, "events": 1 },
            { "plan": "free", "visitors": 1, "events": 1 },
            { "plan": "pro", "visitors": 1, "events": 2 },
        ])
    );
    let dropin = format!("/plausible/api/v1/stats/breakdown?site_id={domain}&period=day&property=event:props:plan");
    let (status, body) = env.api(Method::GET, &dropin, &key, None).await;
    assert_eq!((status, body["results"].as_array().map(Vec::len)), (StatusCode::OK, Some(3)), "{body}");
    for (filters, visitors) in [("event:props:plan==free", 1), ("event:props:plan!=pro", 2), ("event:props:plan~r", 2)]
    {
        let aggregate = format!("/plausible/api/v1/stats/aggregate?site_id={domain}&period=day&filters={filters}");
        let (status, body) = env.api(Method::GET, &aggregate, &key, None).await;
        assert_eq!(
            (status, &body["results"]["visitors"]["value"]),
            (StatusCode::OK, &json!(visitors)),
            "{filters}: {body}"
        );
    }
    // A property name no store can hold is a 400 naming the field.
    let bad = json!({ "metrics": ["visitors"], "date_range": "day", "dimensions": ["event:props:"] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(bad)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")));
    assert!(body["error"]["message"].as_str().unwrap().starts_with("dimensions"), "{body}");
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Safari/537.36";

async fn referrer_channel_utm_content_term_hostname_and_versions_are_dimensions_and_filters(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "dims").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let campaign =
        format!("https://www.{domain}/?utm_source=newsletter&utm_medium=email&utm_content=header&utm_term=stats");
    let events = [
        (CHROME.to_owned(), json!({ "domain": domain, "name": "pageview", "url": campaign })),
        (
            browser(120),
            json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/a"), "referrer": "https://www.google.com/search?q=x" }),
        ),
        (
            browser(121),
            json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/b"), "referrer": "https://news.example/post/" }),
        ),
    ];
    for (user_agent, event) in events {
        assert_eq!(track(env, &user_agent, event).await, StatusCode::ACCEPTED);
    }
    let expected = [
        ("visit:channel", json!([["Email", 1], ["Organic Search", 1], ["Referral", 1]])),
        ("visit:referrer", json!([["Direct / None", 1], ["google.com/search", 1], ["news.example/post", 1]])),
        ("visit:utm_content", json!([["(not set)", 2], ["header", 1]])),
        ("visit:utm_term", json!([["(not set)", 2], ["stats", 1]])),
        ("event:hostname", json!([[domain, 3]])),
        ("visit:browser_version", json!([["120.0", 1], ["121.0", 1], ["126.0", 1]])),
        ("visit:os_version", json!([["(not set)", 2], ["10", 1]])),
    ];
    for (dimension, rows) in expected {
        let query = json!({ "metrics": ["visitors"], "date_range": "day", "dimensions": [dimension] });
        let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query)).await;
        assert_eq!(status, StatusCode::OK, "{dimension}: {body}");
        let found: Vec<Value> = body["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["dimensions"][0], r["metrics"][0]]))
            .collect();
        assert_eq!(json!(found), rows, "{dimension}");
        // The same through v1: a breakdown keyed by the short name (without the empty UTM
        // values, which v1 leaves out), and a filter on the first value, `(not set)` the empty ones.
        let short = dimension.split_once(':').unwrap().1;
        let v1 = format!("/plausible/api/v1/stats/breakdown?site_id={domain}&period=day&property={dimension}");
        let (status, body) = env.api(Method::GET, &v1, &key, None).await;
        let first = if rows[0][0] == "(not set)" && short.starts_with("utm_") { &rows[1][0] } else { &rows[0][0] };
        assert_eq!((status, &body["results"][0][short]), (StatusCode::OK, first), "{dimension}: {body}");
        let value = rows[0][0].as_str().unwrap();
        if !value.is_empty() {
            let filter = format!("/stats/aggregate?site_id={site_id}&period=day&filters={dimension}=={value}");
            let (status, body) = env.api(Method::GET, &filter, &key, None).await;
            assert_eq!(
                (status, &body["data"]["results"]["visitors"]["value"]),
                (StatusCode::OK, &rows[0][1]),
                "{filter}"
            );
        }
    }
}

async fn an_event_keeps_its_first_thirty_properties_and_drops_blank_ones(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "many-props").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let mut props = serde_json::Map::new();
    props.insert("blank".into(), json!("  "));
    props.insert(" ".into(), json!("no name"));
    props.insert("nothing".into(), Value::Null);
    for n in 0..35 {
        props.insert(format!("p{n:02}"), json!(format!("v{n}")));
    }
    let event = json!({ "domain": domain, "name": "Signup", "url": format!("https://{domain}/"), "props": props });
    assert_eq!(track(env, &browser(140), event).await, StatusCode::ACCEPTED);
    let visitors = |filters: Value| {
        let query = json!({ "metrics": ["visitors"], "date_range": "day", "filters": filters });
        let path = format!("/query/{site_id}");
        let key = key.clone();
        async move {
            let (status, body) = env.api(Method::POST, &path, &key, Some(query)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["data"]["results"][0]["metrics"][0].clone()
        }
    };
    // The 30 properties kept are the first 30 that are not blank: p00 to p29.
    assert_eq!(visitors(json!([["is", "event:props:p29", ["v29"]]])).await, 1);
    assert_eq!(visitors(json!([["is", "event:props:p30", ["v30"]]])).await, 0);
    assert_eq!(visitors(json!([["is", "event:props:blank", ["  "]]])).await, 0);
    let by_name = json!({ "metrics": ["visitors"], "date_range": "day", "dimensions": ["event:props:blank"] });
    let (_, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(by_name)).await;
    assert_eq!(rows(&body["data"]), vec![(json!(["(none)"]), json!([1]))], "{body}");
}

/// A property name holding `"` could not be asked for by any query shape: the event is kept
/// without it, and the event's properties stay readable.
async fn a_property_name_holding_a_quote_is_dropped(env: &TestEnv) {
    let (ann, _, domain, site) = pro_site(env, "quote-props").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let props = json!({ "\"": "1", "a\"b": "2", "plan": "pro" });
    let event = json!({ "domain": domain, "name": "Signup", "url": format!("https://{domain}/"), "props": props });
    assert_eq!(track(env, &browser(141), event).await, StatusCode::ACCEPTED);
    let path = format!("/api/v1/websites/{site_id}/properties?period=day&event=Signup");
    let (status, body) = env.session_json(Method::GET, &path, &ann.session, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["keys"], json!(["plan"]), "{body}");
}

async fn an_event_takes_thirty_properties_of_plausibles_longest_names_and_values_and_no_longer(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "long-props").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    // Thirty names of 300 bytes and values of 2,000: some 68 KB of properties, as Plausible takes.
    let name = |n: usize| format!("{n:02}{}", "n".repeat(298));
    let props: serde_json::Map<String, Value> =
        (0..30).map(|n| (name(n), json!(format!("{n:02}{}", "v".repeat(1998))))).collect();
    let event = |props: Value| json!({ "domain": domain, "name": "Signup", "url": format!("https://{domain}/"), "props": props });
    assert_eq!(track(env, &browser(140), event(Value::Object(props))).await, StatusCode::ACCEPTED);
    let query = json!({ "metrics": ["visitors"], "date_range": "day",
                        "filters": [["contains", format!("event:props:{}", name(29)), ["29v"]]] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query)).await;
    assert_eq!((status, &body["data"]["results"][0]["metrics"][0]), (StatusCode::OK, &json!(1)), "{body}");
    // A name of 301 bytes, or a value of 2,001, is refused, as Plausible refuses it.
    for props in [json!({ "x".repeat(301): "v" }), json!({ "k": "v".repeat(2001) })] {
        assert_eq!(track(env, &browser(140), event(props)).await, StatusCode::BAD_REQUEST);
    }
}

async fn a_large_answer_is_given_and_one_past_the_bound_asks_for_fewer_rows(env: &TestEnv) {
    let (_, key, _, site) = pro_site(env, "large").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    // 9,000 values of 1,990 bytes: all of them are about 18 MiB, 3,000 about 6.
    let events: Vec<Value> = (0..9_000)
        .map(|i| {
            json!({ "at": "2026-01-10T10:00:00Z", "name": "pageview", "url": "https://large.example/",
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                    "ip": "1.2.3.4", "props": { "k": format!("{i:06}{}", "x".repeat(1_984)) } })
        })
        .collect();
    crate::harness::import_events(env, site_id, &events);
    let query = |limit: u32| {
        json!({ "metrics": ["visitors"], "date_range": ["2026-01-10", "2026-01-10"],
                "dimensions": ["event:props:k"], "pagination": { "limit": limit } })
    };
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query(3_000))).await;
    assert_eq!(status, StatusCode::OK, "{}", &body.to_string()[..300.min(body.to_string().len())]);
    assert_eq!(body["data"]["results"].as_array().map(Vec::len), Some(3_000));
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query(10_000))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("ask for fewer rows"), "{body}");
}

both_modes!(
    a_property_name_holding_a_quote_is_dropped,
    a_large_answer_is_given_and_one_past_the_bound_asks_for_fewer_rows,
    an_event_keeps_its_first_thirty_properties_and_drops_blank_ones,
    an_event_takes_thirty_properties_of_plausibles_longest_names_and_values_and_no_longer,
    custom_properties_are_a_dimension_and_a_filter_in_every_query_shape,
    referrer_channel_utm_content_term_hostname_and_versions_are_dimensions_and_filters
);

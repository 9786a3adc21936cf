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

both_modes!(custom_properties_are_a_dimension_and_a_filter_in_every_query_shape);

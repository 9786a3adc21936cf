//! Public ingestion (SPEC §6) and the aggregate metrics computed from it, in both modes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestEnv;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

async fn send(env: &TestEnv, user_agent: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let response = env
        .request(Method::POST, "/api/event")
        .header("user-agent", user_agent)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    crate::harness::into_json(response).await
}

async fn ingestion_and_aggregate(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let domain = format!("site-{}.example", &ann.user_id[..8]);
    let (status, site) = env
        .api(Method::POST, "/websites", &key, Some(json!({ "team_id": ann.team_id, "domain": domain, "name": "S" })))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let site_id = site["data"]["id"].as_str().unwrap().to_owned();
    let tracking_code = site["data"]["tracking_code"].as_str().unwrap().to_owned();

    // Visitor A (Firefox): two pageviews and a custom event, the long form and the tracker's.
    let long = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/"), "referrer": "https://news.example/item" });
    assert_eq!(send(env, FIREFOX, "application/json", &long.to_string()).await.0, StatusCode::ACCEPTED);
    let short = json!({ "n": "pageview", "u": format!("https://{domain}/pricing"), "d": domain, "r": null, "p": { "plan": "pro" } });
    let (status, body) = send(env, FIREFOX, "text/plain", &short.to_string()).await;
    assert_eq!((status, &body["data"]["stored"]), (StatusCode::ACCEPTED, &json!(true)));
    let custom = json!({ "tracking_code": tracking_code, "name": "Signup", "url": format!("https://{domain}/pricing"), "revenue": { "amount": "12.50", "currency": "EUR" } });
    assert_eq!(send(env, FIREFOX, "application/json", &custom.to_string()).await.0, StatusCode::ACCEPTED);
    // Visitor B (Safari): one pageview, a bounce.
    assert_eq!(send(env, SAFARI, "text/plain", &short.to_string()).await.0, StatusCode::ACCEPTED);
    // A bot is answered and dropped.
    let (status, body) = send(env, GOOGLEBOT, "application/json", &long.to_string()).await;
    assert_eq!((status, &body["data"]["stored"]), (StatusCode::ACCEPTED, &json!(false)));

    // Bad payloads: 400 naming the field, nothing stored.
    for (body, field) in [
        (json!({ "domain": domain, "url": format!("https://{domain}/") }), "name"),
        (json!({ "domain": domain, "name": "pageview" }), "url"),
        (json!({ "domain": domain, "name": "pageview", "url": "/relative" }), "url"),
        (json!({ "domain": "nobody.example", "name": "pageview", "url": "https://nobody.example/" }), "domain"),
        (
            json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/"), "props": [1, 2] }),
            "props",
        ),
        (
            json!({ "domain": domain, "name": "Buy", "url": format!("https://{domain}/"), "revenue": { "amount": "x", "currency": "EUR" } }),
            "revenue",
        ),
    ] {
        let (status, error) = send(env, FIREFOX, "application/json", &body.to_string()).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")),
            "{body}"
        );
        assert!(error["error"]["message"].as_str().unwrap().contains(field), "{error}");
    }
    assert_eq!(send(env, FIREFOX, "text/plain", "{not json").await.0, StatusCode::BAD_REQUEST);

    // Hand-computed: 2 visitors, 2 visits (B bounced), 3 pageviews, 4 events.
    let metrics = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
    let (status, body) = env
        .api(Method::GET, &format!("/stats/aggregate?site_id={site_id}&period=day&metrics={metrics}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = &body["data"]["results"];
    let value = |m: &str| results[m]["value"].as_f64().unwrap();
    assert_eq!(
        [value("visitors"), value("visits"), value("pageviews"), value("events")],
        [2.0, 2.0, 3.0, 4.0],
        "{results}"
    );
    assert_eq!((value("views_per_visit"), value("bounce_rate"), value("visit_duration")), (1.5, 50.0, 0.0));
    let (_, month) = env
        .api(
            Method::GET,
            &format!("/stats/aggregate?site_id={site_id}&period=custom&date=2020-01-01,2020-01-31"),
            &key,
            None,
        )
        .await;
    assert_eq!(month["data"]["results"]["visitors"]["value"], 0.0, "nothing then");

    for query in ["metrics=visitors,sessions", "period=week", "period=custom&date=2020-02-02", "colour=blue"] {
        let (status, body) =
            env.api(Method::GET, &format!("/stats/aggregate?site_id={site_id}&{query}"), &key, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")),
            "{query}"
        );
    }
    let (status, _) = env.api(Method::GET, "/stats/aggregate?site_id=nope", &key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A stranger's key cannot read them.
    let bob = env.user("bob").await;
    env.set_plan(&bob.team_id, "pro").await;
    let (bob_key, _) = env.create_key(&bob, json!({ "name": "b", "permissions": "full", "teams": "all" })).await;
    let (status, _) = env.api(Method::GET, &format!("/stats/aggregate?site_id={site_id}"), &bob_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ingestion_and_aggregate_all_in_one() {
    ingestion_and_aggregate(&TestEnv::all_in_one().await).await;
}

#[tokio::test]
async fn ingestion_and_aggregate_split() {
    ingestion_and_aggregate(&TestEnv::split(1).await).await;
}

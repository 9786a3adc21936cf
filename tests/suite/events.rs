//! Public ingestion (docs/behaviour.md#public-tracking) and the aggregate metrics computed from it, in both modes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, pro_site};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

async fn send(env: &TestEnv, user_agent: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let country = if user_agent == SAFARI { "DE" } else { "US" };
    let response = env
        .request(Method::POST, "/api/event")
        .header("user-agent", user_agent)
        .header(crate::harness::COUNTRY_HEADER, country)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    crate::harness::into_json(response).await
}

/// Ann's Pro website with two visitors today: A (Firefox, US) viewed / (from news.example) and
/// /pricing and signed up (12.50 EUR); B (Safari on iPhone, DE) viewed /pricing. A bot's pageview
/// was answered and dropped.
struct TwoVisitors {
    key: String,
    domain: String,
    site_id: String,
}

async fn two_visitors(env: &TestEnv) -> TwoVisitors {
    let (_, key, domain, site) = pro_site(env, "site").await;
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

    TwoVisitors { key, domain, site_id }
}

async fn what_was_tracked_is_counted_as_computed_by_hand(env: &TestEnv) {
    let TwoVisitors { key, site_id, .. } = two_visitors(env).await;
    // Hand-computed: 2 visitors, 2 visits (B bounced), 3 pageviews, 4 events.
    let metrics = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
    let (status, body) = env
        .api(Method::GET, &format!("/stats/aggregate?site_id={site_id}&period=day&metrics={metrics}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = &body["data"]["results"];
    let value = |m: &str| results[m]["value"].as_f64().unwrap();
    assert!(results["visitors"]["value"].is_u64(), "counts are integers: {results}");
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
}

async fn a_bad_event_is_a_400_naming_the_field_and_stores_nothing(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "bad").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for (body, field) in [
        (json!({ "domain": domain, "url": format!("https://{domain}/") }), "name"),
        (json!({ "domain": domain, "name": "pageview" }), "url"),
        (json!({ "domain": domain, "name": "pageview", "url": "/relative" }), "url"),
        (json!({ "domain": domain, "name": "pageview", "url": "data:text/html,<p>hi</p>" }), "url"),
        (json!({ "domain": "nobody.example", "name": "pageview", "url": "https://nobody.example/" }), "domain"),
        (
            json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/"), "props": [1, 2] }),
            "props",
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
    let long = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/{}", "a".repeat(2100)) });
    let (_, error) = send(env, FIREFOX, "application/json", &long.to_string()).await;
    assert_eq!(error["error"]["message"], "url: must be at most 2048 bytes", "a long URL is told by its length");
    let path = format!("/stats/aggregate?site_id={site_id}&period=day&metrics=events");
    let (_, stored) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(stored["data"]["results"]["events"]["value"], 0, "{stored}");
}

async fn a_dropped_bots_event_says_so_in_plausibles_header(env: &TestEnv) {
    let (_, _, domain, _) = pro_site(env, "dropped").await;
    let body = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/") }).to_string();
    let dropped = |user_agent: &'static str| {
        let body = body.clone();
        async move {
            let request = env.request(Method::POST, "/api/event").header("user-agent", user_agent).body(body);
            let response = request.header("content-type", "text/plain").send().await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            response.headers().get("x-plausible-dropped").map(|v| v.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(dropped(GOOGLEBOT).await.as_deref(), Some("1"));
    assert_eq!(dropped(FIREFOX).await, None);
}

async fn a_browser_may_ask_before_sending_an_event_as_json(env: &TestEnv) {
    let preflight = env
        .request(Method::OPTIONS, "/api/event")
        .header("origin", "https://tracked.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    assert_eq!(preflight.headers()["access-control-allow-headers"], "content-type");
    let wrong = env.request(Method::GET, "/api/event").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED, "only preflights are answered for another method");
}

async fn an_event_over_160_kib_is_refused_alone_with_413(env: &TestEnv) {
    let (_, _, domain, _) = pro_site(env, "huge").await;
    // Events travel to analytics in batches: one far over any real event's size is refused alone.
    let huge = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/"), "p": { "k": "x".repeat(200_000) } });
    let (status, error) = send(env, FIREFOX, "application/json", &huge.to_string()).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("PAYLOAD_TOO_LARGE")));
}

async fn a_body_past_2_mib_is_a_413_in_the_envelope(env: &TestEnv) {
    let (_, key, domain, _) = pro_site(env, "big").await;
    // Past the 2 MiB every body may have, the answer is still the envelope, here and on the keyed
    // routes that read their body before judging it. The server answers as soon as the body
    // passes the limit, without reading the rest, and closes the connection: each request goes
    // on a connection of its own, and the body is barely over, so that nothing is left unread
    // (unread data would make the server's close a reset that may overtake its answer).
    let body =
        format!(r#"{{"domain":"{domain}","name":"pageview","url":"https://{domain}/","p":"{}"}}"#, "x".repeat(2 << 20));
    for path in ["/api/event", "/api/external/v1/websites"] {
        let request = env.request(Method::POST, path).bearer_auth(&key).header("connection", "close");
        let response = request.header("content-type", "application/json").body(body.clone()).send().await;
        let (status, error) = crate::harness::into_json(response.unwrap()).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("PAYLOAD_TOO_LARGE"))
        );
    }
}

async fn an_id_that_does_not_decode_is_a_400_in_the_envelope(env: &TestEnv) {
    let (_, key, _, _) = pro_site(env, "id").await;
    // An id that does not decode is refused in the envelope too.
    let (status, error) = env.api(Method::GET, "/websites/%FF", &key, None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")));
}

async fn a_bad_aggregate_query_is_a_400_and_an_unknown_site_a_404(env: &TestEnv) {
    let (_, key, _, site) = pro_site(env, "agg").await;
    let site_id = site["data"]["id"].as_str().unwrap();
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
}

async fn a_strangers_key_reads_no_statistics_by_any_route(env: &TestEnv) {
    let (_, _, domain, site) = pro_site(env, "private").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    // A stranger's key cannot read them, by any route.
    let bob = env.user("bob").await;
    env.set_plan(&bob.team_id, "pro").await;
    let (bob_key, _) = env.create_key(&bob, json!({ "name": "b", "permissions": "full", "teams": "all" })).await;
    for path in [
        format!("/stats/aggregate?site_id={site_id}"),
        format!("/stats/breakdown?site_id={domain}&property=event:page"),
        format!("/analytics/{site_id}"),
        format!("/realtime/{site_id}"),
    ] {
        let (status, _) = env.api(Method::GET, &path, &bob_key, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}

async fn a_read_only_key_may_post_a_query_and_a_write_only_one_may_not(env: &TestEnv) {
    let (ann, _, _, site) = pro_site(env, "scopes").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    // POST /query is a read (docs/behaviour.md#authorization-of-a-request): a read-only key may, a write-only one not.
    let (read_only, _) = env.create_key(&ann, json!({ "name": "r", "permissions": ["read"], "teams": "all" })).await;
    let (write_only, _) = env.create_key(&ann, json!({ "name": "w", "permissions": ["write"], "teams": "all" })).await;
    let body = json!({ "metrics": ["visitors"], "date_range": "day" });
    let (status, _) = env.api(Method::POST, &format!("/query/{site_id}"), &read_only, Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = env.api(Method::POST, &format!("/query/{site_id}"), &write_only, Some(body)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("INSUFFICIENT_SCOPE")));
}

async fn plausible_v1_shapes_answer_in_the_envelope(env: &TestEnv) {
    let TwoVisitors { key, domain, site_id, .. } = two_visitors(env).await;
    let key = key.as_str();
    let get = |path: String| async move {
        let (status, body) = env.api(Method::GET, &path, key, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body["data"].clone()
    };
    let now = chrono::Utc::now();
    let today = now.format("%Y-%m-%d").to_string();
    let tomorrow = (now + chrono::Duration::days(1)).format("%Y-%m-%d");

    // Plausible v1 inside the envelope. Its `7d` ends the day before `date`: tomorrow, to end today.
    let series =
        get(format!("/stats/timeseries?site_id={site_id}&period=7d&date={tomorrow}&metrics=visitors,pageviews")).await;
    let series = series["results"].as_array().unwrap().clone();
    assert_eq!(series.len(), 7, "zero-filled days");
    assert_eq!(series[6], json!({ "date": today, "visitors": 2, "pageviews": 3 }));
    assert_eq!(series[0]["visitors"], 0);
    let pages =
        get(format!("/stats/breakdown?site_id={site_id}&period=day&property=event:page&metrics=visitors,pageviews"))
            .await;
    assert_eq!(
        pages["results"],
        json!([{ "page": "/pricing", "visitors": 2, "pageviews": 2 }, { "page": "/", "visitors": 1, "pageviews": 1 }])
    );
    // A page of a breakdown says where it sits: a paged list adds `pagination` (docs/behaviour.md#external-rest-api).
    let path = format!("/stats/breakdown?site_id={site_id}&period=day&property=event:page&limit=1&page=2");
    let (status, second) = env.api(Method::GET, &path, key, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["data"]["results"], json!([{ "page": "/", "visitors": 1 }]));
    assert_eq!(second["pagination"], json!({ "page": 2, "per_page": 1, "total": 2 }));
    let filtered = get(format!(
        "/stats/breakdown?site_id={domain}&period=day&property=visit:browser&filters=event:page%3D%3D/&metrics=visitors"
    ))
    .await;
    assert_eq!(filtered["results"], json!([{ "browser": "Firefox", "visitors": 1 }]));
    let countries = get(format!(
        "/stats/breakdown?site_id={site_id}&period=day&property=visit:country&filters=visit:country!%3DUS"
    ))
    .await;
    assert_eq!(countries["results"], json!([{ "country": "DE", "visitors": 1 }]));
    let compared = get(format!(
        "/stats/aggregate?site_id={site_id}&period=day&compare=previous_period&metrics=visitors,bounce_rate"
    ))
    .await;
    assert_eq!(compared["results"]["visitors"], json!({ "value": 2, "comparison_value": 0, "change": 100 }));
    // As Plausible's: no bounce-rate change without a bounce rate before.
    assert_eq!(compared["results"]["bounce_rate"], json!({ "value": 50, "comparison_value": 0, "change": null }));
}

async fn a_bad_v1_parameter_is_a_400_naming_it(env: &TestEnv) {
    let (_, key, _, site) = pro_site(env, "v1").await;
    let (key, site_id) = (key.as_str(), site["data"]["id"].as_str().unwrap());
    // Each 400 names the parameter the caller sent.
    for (query, field) in [
        ("property=event:page&metrics=visitors&interval=month", "interval"),
        ("property=visit:planet", "property"),
        ("property=event:page&limit=0", "limit"),
        ("metrics=visitors&filters=event:page", "filters"),
        ("metrics=visitors&compare=last_year", "compare"),
        ("property=event:page&period=fortnight", "period"),
    ] {
        let path = format!("/stats/breakdown?site_id={site_id}&{query}");
        let (status, body) = env.api(Method::GET, &path, key, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")),
            "{query}"
        );
        assert!(body["error"]["message"].as_str().unwrap().starts_with(&format!("{field}: ")), "{query}: {body}");
    }
    let (status, _) =
        env.api(Method::GET, &format!("/stats/timeseries?site_id={site_id}&interval=minute"), key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A number the parser cannot read is named for what the parameter takes.
    let refusals = [
        ("limit=abc", "limit: must be a whole number, 1 or more"),
        ("limit=-1", "limit: must be a whole number, 1 or more"),
        ("page=99999999999", "page: out of range"),
    ];
    for (query, message) in refusals {
        let path = format!("/stats/breakdown?site_id={site_id}&property=event:page&{query}");
        let (status, body) = env.api(Method::GET, &path, key, None).await;
        assert_eq!((status, body["error"]["message"].as_str()), (StatusCode::BAD_REQUEST, Some(message)), "{body}");
    }
}

/// Ours refuses a parameter given twice, naming it; the drop-in reads its last value, as
/// Plausible (Phoenix) reads a query string.
async fn a_parameter_given_twice_is_refused_by_ours_and_read_last_by_the_drop_in(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "twice").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let path = format!("/stats/aggregate?site_id={site_id}&period=fortnight&period=day");
    let (status, body) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["message"], "period: given more than once");
    let path =
        format!("/api/external/v1/plausible/api/v1/stats/aggregate?site_id={domain}&period=fortnight&period=day");
    let response = env.request(Method::GET, &path).header("authorization", format!("Bearer {key}")).send().await;
    let (status, body) = crate::harness::into_json(response.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "results": { "visitors": { "value": 0 } } })));
}

async fn plausible_v2_queries_answer_at_query_website_id(env: &TestEnv) {
    let TwoVisitors { key, site_id, .. } = two_visitors(env).await;
    let key = key.as_str();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    // Plausible v2 at /query/{websiteId}.
    let body = json!({
        "metrics": ["visitors", "pageviews"],
        "date_range": "day",
        "dimensions": ["event:page"],
        "order_by": [["pageviews", "desc"]],
        "include": { "total_rows": true },
        "pagination": { "limit": 1 },
    });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site_id}"), key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["results"], json!([{ "metrics": [2, 2], "dimensions": ["/pricing"] }]));
    assert_eq!(answer["data"]["meta"]["total_rows"], 2);
    assert_eq!(answer["pagination"], json!({ "page": 1, "per_page": 1, "total": 2 }));
    let body = json!({
        "metrics": ["visitors", "events"],
        "date_range": [today, today],
        "filters": [["is", "visit:country", ["US"]], ["contains", "event:page", ["pric"]]],
    });
    let (_, answer) = env.api(Method::POST, &format!("/query/{site_id}"), key, Some(body)).await;
    assert_eq!(answer["data"]["results"], json!([{ "metrics": [1, 2], "dimensions": [] }]), "{answer}");
}

async fn a_bad_v2_body_is_a_400_naming_the_field(env: &TestEnv) {
    let (_, key, _, site) = pro_site(env, "v2").await;
    let (key, site_id) = (key.as_str(), site["data"]["id"].as_str().unwrap());
    for (body, field) in [
        (
            json!({ "metrics": ["visitors"], "date_range": "7d", "filters": [["matches", "event:page", ["^/(p"]]] }),
            "filters: ",
        ),
        (json!({ "metrics": ["visitors"], "date_range": "7d", "colour": "blue" }), "colour: unknown field"),
        (json!({ "metrics": ["visitors"], "date_range": "fortnight" }), "date_range: "),
        (json!({ "metrics": ["visitors"], "date_range": ["2026-02-30", "2026-03-01"] }), "date_range: "),
        (json!({ "metrics": [], "date_range": "7d" }), "metrics: "),
        (json!({ "metrics": ["visitors"], "date_range": "7d", "order_by": [["visitors", "up"]] }), "order_by: "),
    ] {
        let (status, error) = env.api(Method::POST, &format!("/query/{site_id}"), key, Some(body.clone())).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")),
            "{body}"
        );
        assert!(error["error"]["message"].as_str().unwrap().starts_with(field), "{body}: {error}");
    }
}

async fn our_overview_breakdowns_and_realtime_answer(env: &TestEnv) {
    let TwoVisitors { key, site_id, .. } = two_visitors(env).await;
    let key = key.as_str();
    let get = |path: String| async move {
        let (status, body) = env.api(Method::GET, &path, key, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body["data"].clone()
    };
    // Zenovay's own overview and breakdowns.
    let overview = get(format!("/analytics/{site_id}?range=7d")).await;
    assert_eq!((overview["visitors"].clone(), overview["pageviews"].clone()), (json!(2), json!(3)), "{overview}");
    assert_eq!((overview["visits"].clone(), overview["bounce_rate"].clone()), (json!(2), json!(50)));
    assert_eq!(overview["series"].as_array().unwrap().len(), 7);
    assert_eq!(
        overview["top_countries"],
        json!([{ "country": "DE", "visitors": 1 }, { "country": "US", "visitors": 1 }])
    );
    let top = get(format!("/analytics/{site_id}?range=7d&limit=1")).await;
    assert_eq!(top["top_countries"], json!([{ "country": "DE", "visitors": 1 }]));
    let hourly = get(format!("/analytics/{site_id}?range=24h")).await;
    assert!(hourly["series"].as_array().unwrap().len() >= 24, "{hourly}");
    let pages = get(format!("/analytics/{site_id}/pages?range=30d&limit=1")).await;
    assert_eq!(pages, json!([{ "page": "/pricing", "visitors": 2, "pageviews": 2 }]));
    let countries = get(format!("/analytics/{site_id}/countries")).await;
    assert_eq!(countries.as_array().unwrap().len(), 2);
    let technology = get(format!("/analytics/{site_id}/technology?range=90d")).await;
    assert_eq!(
        technology["browsers"],
        json!([{ "browser": "Firefox", "visitors": 1 }, { "browser": "Safari", "visitors": 1 }])
    );
    assert_eq!(
        technology["devices"],
        json!([{ "device": "Desktop", "visitors": 1 }, { "device": "Mobile", "visitors": 1 }])
    );
    assert_eq!(
        technology["operating_systems"],
        json!([{ "os": "GNU/Linux", "visitors": 1 }, { "os": "iOS", "visitors": 1 }])
    );
    let realtime = get(format!("/realtime/{site_id}")).await;
    assert_eq!((realtime["visitors"].clone(), realtime["pageviews"].clone()), (json!(2), json!(3)), "{realtime}");
}

async fn a_bad_overview_parameter_is_a_400(env: &TestEnv) {
    let (_, key, _, site) = pro_site(env, "ours").await;
    let (key, site_id) = (key.as_str(), site["data"]["id"].as_str().unwrap());
    for path in [format!("/analytics/{site_id}?range=2w"), format!("/analytics/{site_id}/pages?limit=500")] {
        let (status, _) = env.api(Method::GET, &path, key, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
}

async fn the_drop_in_answers_plausibles_bodies_without_the_envelope(env: &TestEnv) {
    let TwoVisitors { key, domain, .. } = two_visitors(env).await;
    // The Plausible drop-in: Plausible's bodies, no envelope, Plausible's error shape.
    let plausible = |method: Method, path: &str| {
        env.request(method, &format!("/api/external/v1/plausible{path}"))
            .header("authorization", format!("Bearer {key}"))
    };
    let response = plausible(
        Method::GET,
        &format!("/api/v1/stats/aggregate?site_id={domain}&period=day&metrics=visitors,pageviews"),
    )
    .send()
    .await
    .unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "results": { "visitors": { "value": 2 }, "pageviews": { "value": 3 } } }))
    );
    let response =
        plausible(Method::GET, &format!("/api/v1/stats/timeseries?site_id={domain}&period=7d")).send().await.unwrap();
    let (_, body) = crate::harness::into_json(response).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 7);
    let response =
        plausible(Method::GET, &format!("/api/v1/stats/breakdown?site_id={domain}&period=day&property=visit:device"))
            .send()
            .await
            .unwrap();
    let (_, body) = crate::harness::into_json(response).await;
    assert_eq!(body["results"][0]["device"], "Desktop");
    let response =
        plausible(Method::GET, &format!("/api/v1/stats/realtime/visitors?site_id={domain}")).send().await.unwrap();
    let (_, body) = crate::harness::into_json(response).await;
    assert_eq!(body, json!(2));
    let query = json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day", "dimensions": ["visit:os"] });
    let response = plausible(Method::POST, "/api/v2/query").json(&query).send().await.unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["results"],
        json!([{ "metrics": [1], "dimensions": ["GNU/Linux"] }, { "metrics": [1], "dimensions": ["iOS"] }])
    );
    assert_eq!(body["query"]["site_id"], domain);
}

async fn the_drop_in_answers_errors_in_plausibles_shape(env: &TestEnv) {
    let (_, key, domain, _) = pro_site(env, "dropin").await;
    let plausible = |method: Method, path: &str| {
        env.request(method, &format!("/api/external/v1/plausible{path}"))
            .header("authorization", format!("Bearer {key}"))
    };
    let response =
        plausible(Method::GET, &format!("/api/v1/stats/aggregate?site_id={domain}&period=week")).send().await.unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("period"), "{body}");
    assert!(body.get("success").is_none());
    // Plausible's words for its dates and intervals.
    let docs = "See https://plausible.io/docs/stats-api#time-periods";
    for (query, words) in [
        ("aggregate?period=custom", format!("The `date` parameter is required when using a custom period. {docs}")),
        (
            "aggregate?period=custom&date=2026-13-01,2026-12-01",
            format!("Invalid format for `date` parameter. When using a custom period, please include two ISO-8601 formatted dates joined by a comma. {docs}"),
        ),
        (
            "aggregate?period=day&date=notadate",
            "Error parsing `date` parameter: invalid_format. Please specify a valid date in ISO-8601 format.".to_owned(),
        ),
        (
            "aggregate?period=day&date=2026-02-29",
            "Error parsing `date` parameter: invalid_date. Please specify a valid date in ISO-8601 format.".to_owned(),
        ),
        (
            "timeseries?interval=bogus",
            "Error parsing `interval` parameter: invalid interval `bogus`. Valid intervals are `date`, `hour`, `week`, `month`".to_owned(),
        ),
    ] {
        let path = format!("/api/v1/stats/{query}&site_id={domain}");
        let (status, body) = crate::harness::into_json(plausible(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({ "error": words })), "{query}");
    }
    let response = env
        .request(Method::GET, &format!("/api/external/v1/plausible/api/v1/stats/aggregate?site_id={domain}"))
        .send()
        .await
        .unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].is_string(), "{body}");
}

/// Concurrent senders share batches (gateway to analytics, analytics to its database); each
/// still gets its own answer, and a bad event in a batch does not fail the others.
async fn concurrent_events_get_their_own_answers(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "busy").await;
    let site_id = site["data"]["id"].as_str().unwrap().to_owned();

    // 60 at once: good pageviews, events for an unknown site, and bots, interleaved.
    let sends = (0..60).map(|i| {
        let (user_agent, target) = match i % 3 {
            0 => (FIREFOX, domain.as_str()),
            1 => (FIREFOX, "nobody.example"),
            _ => (GOOGLEBOT, domain.as_str()),
        };
        let body = json!({ "domain": target, "name": "pageview", "url": format!("https://{target}/p{i}") });
        async move { (i, send(env, user_agent, "application/json", &body.to_string()).await) }
    });
    for (i, (status, body)) in futures::future::join_all(sends).await {
        match i % 3 {
            0 => assert_eq!((status, &body["data"]["stored"]), (StatusCode::ACCEPTED, &json!(true)), "{body}"),
            1 => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
                assert!(body["error"]["message"].as_str().unwrap().starts_with("domain:"), "{body}");
            }
            _ => assert_eq!((status, &body["data"]["stored"]), (StatusCode::ACCEPTED, &json!(false)), "{body}"),
        }
    }
    let path = format!("/stats/aggregate?site_id={site_id}&period=day&metrics=pageviews");
    let (status, body) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["results"]["pageviews"]["value"], 20, "{body}");
}

/// Today's pageviews by page (v1, ours), sorted by page.
async fn pages(env: &TestEnv, key: &str, site_id: &str) -> Vec<(String, u64)> {
    breakdown(env, key, site_id, "event:page", "pageviews").await
}

async fn in_hash_mode_the_fragment_is_part_of_the_page(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "hash").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for (url, hash) in [("/app/#/home", "1"), ("/app/#/settings", "1"), ("/app/#/settings", "true"), ("/app/#top", "0")]
    {
        let body = format!(r#"{{"n":"pageview","u":"https://{domain}{url}","d":"{domain}","h":{hash}}}"#);
        let (status, answer) = send(env, FIREFOX, "text/plain", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let expected = [("/app/".to_owned(), 1), ("/app/#/home".to_owned(), 1), ("/app/#/settings".to_owned(), 2)];
    assert_eq!(pages(env, &key, site_id).await, expected);
}

async fn a_page_is_named_by_its_decoded_path(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "decoded").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let body = format!(r#"{{"n":"pageview","u":"https://{domain}/caf%C3%A9/a%20b","d":"{domain}"}}"#);
    let (status, answer) = send(env, FIREFOX, "text/plain", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(pages(env, &key, site_id).await, [("/café/a b".to_owned(), 1)]);
}

/// Today's visitors by `property` (v1, ours), sorted by value.
async fn visitors_by(env: &TestEnv, key: &str, site_id: &str, property: &str) -> Vec<(String, u64)> {
    breakdown(env, key, site_id, property, "visitors").await
}

/// Today's `metric` by `property` (v1, ours), as `(value, figure)` sorted by value.
async fn breakdown(env: &TestEnv, key: &str, site_id: &str, property: &str, metric: &str) -> Vec<(String, u64)> {
    let path = format!("/stats/breakdown?site_id={site_id}&period=day&property={property}&metrics={metric}");
    let (status, body) = env.api(Method::GET, &path, key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let short = property.split_once(':').unwrap().1;
    let mut rows: Vec<(String, u64)> = body["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row[short].as_str().unwrap().to_owned(), row[metric].as_u64().unwrap()))
        .collect();
    rows.sort();
    rows
}

/// Visitor 1 starts with a custom event on `/a`, then views `/b`; visitor 2 sends a custom
/// event on `/c` only. As Plausible's, a visit's entry and exit pages are its pageviews': `/b`
/// both, and none for the visit without a pageview (which v1 leaves out).
async fn a_visit_enters_and_exits_on_its_first_and_last_pageview(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "entry").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let url = |path: &str| format!("https://{domain}{path}");
    for (visitor, name, path) in [(1, "Download", "/a"), (1, "pageview", "/b"), (2, "Only", "/c")] {
        let event = json!({ "domain": domain, "name": name, "url": url(path) });
        assert_eq!(crate::harness::track(env, &crate::harness::browser(visitor), event).await, StatusCode::ACCEPTED);
    }
    let on_b = vec![("/b".to_owned(), 1)];
    assert_eq!(visitors_by(env, &key, site_id, "visit:entry_page").await, on_b);
    assert_eq!(visitors_by(env, &key, site_id, "visit:exit_page").await, on_b);
}

/// A page's `ref` or `source` parameter tags its visit's source when `utm_source` does not, and
/// a tag naming a known source (in any case, or by Plausible's shorthands) is that source.
async fn a_pages_tag_names_the_source_as_plausible_names_it(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "tags").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for (visitor, query) in
        [(1, "ref=producthunt"), (2, "source=hn&ref=x"), (3, "utm_source=GOOGLE"), (4, "utm_source=ig")]
    {
        let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/?{query}") });
        assert_eq!(crate::harness::track(env, &crate::harness::browser(visitor), event).await, StatusCode::ACCEPTED);
    }
    let sources = visitors_by(env, &key, site_id, "visit:source").await;
    let expected = [("Google", 1), ("Instagram", 1), ("hn", 1), ("producthunt", 1)];
    assert_eq!(sources, expected.map(|(s, n)| (s.to_owned(), n)));
    let tags = visitors_by(env, &key, site_id, "visit:utm_source").await;
    let expected = [("GOOGLE", 1), ("hn", 1), ("ig", 1), ("producthunt", 1)];
    assert_eq!(tags, expected.map(|(s, n)| (s.to_owned(), n)), "the tag as given");
}

/// Plausible's tracker may name several sites, comma-separated, or a site with `www.`, or none
/// (the page's host then names it), and an event by a number (`404`).
async fn the_trackers_domain_forms_and_numeric_names_are_taken(env: &TestEnv) {
    let (ann, key, domain, site) = pro_site(env, "forms").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let other = format!("other-{domain}");
    let (status, second) = env
        .api(Method::POST, "/websites", &key, Some(json!({ "team_id": ann.team_id, "domain": other, "name": "O" })))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let events = [
        json!({ "domain": format!("{domain}, {other}"), "name": "pageview", "url": format!("https://{domain}/both") }),
        json!({ "domain": format!("www.{domain}"), "name": "pageview", "url": format!("https://www.{domain}/www") }),
        json!({ "name": "pageview", "url": format!("https://www.{domain}/host") }),
        json!({ "domain": domain, "name": 404, "url": format!("https://{domain}/gone") }),
        json!({ "domain": format!("{domain},unknown.example"), "name": "pageview", "url": format!("https://{domain}/one") }),
    ];
    for event in events {
        let (status, body) = send(env, FIREFOX, "application/json", &event.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}: {body}");
    }
    let pages = pages(env, &key, site_id).await;
    let expected = [("/both", 1), ("/gone", 0), ("/host", 1), ("/one", 1), ("/www", 1)];
    assert_eq!(pages, expected.map(|(p, n)| (p.to_owned(), n)), "pageviews by page");
    let second_id = second["data"]["id"].as_str().unwrap();
    assert_eq!(self::pages(env, &key, second_id).await, [("/both".to_owned(), 1)]);
    let names = visitors_by(env, &key, site_id, "event:name").await;
    assert!(names.contains(&("404".to_owned(), 1)), "{names:?}");
    let nowhere =
        json!({ "domain": "unknown.example,nobody.example", "name": "pageview", "url": "https://unknown.example/" });
    let (status, body) = send(env, FIREFOX, "application/json", &nowhere.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")), "{body}");
}

/// As Plausible takes them, a page URL of any scheme but `data:` is taken, its path the page:
/// Plausible's Events API tells mobile apps to send `app://localhost/<screen>`.
async fn a_mobile_apps_screen_url_is_counted_by_its_path(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "app").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for url in ["app://localhost/login", "android-app://com.example.app/settings"] {
        let event = json!({ "domain": domain, "name": "pageview", "url": url });
        let (status, body) = send(env, FIREFOX, "application/json", &event.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{url}: {body}");
    }
    assert_eq!(pages(env, &key, site_id).await, [("/login".to_owned(), 1), ("/settings".to_owned(), 1)]);
}

/// As Plausible's, an event sent with `interactive: false` (`i: false` in the tracker's form)
/// counts but does not end its visit's bounce; an interactive one after it does.
async fn a_non_interactive_event_does_not_end_a_bounce(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "interactive").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let page = format!("https://{domain}/");
    let visits: [&[Value]; 3] = [
        &[
            json!({ "n": "pageview", "u": page, "d": domain }),
            json!({ "n": "Autoplay", "u": page, "d": domain, "i": false }),
        ],
        &[json!({ "name": "Autoplay", "url": page, "domain": domain, "interactive": false })],
        &[
            json!({ "n": "pageview", "u": page, "d": domain }),
            json!({ "n": "Autoplay", "u": page, "d": domain, "i": false }),
            json!({ "n": "Play", "u": page, "d": domain, "i": true }),
        ],
    ];
    for (visitor, events) in visits.iter().enumerate() {
        for event in *events {
            let (status, body) =
                send(env, &crate::harness::browser(visitor as u32), "text/plain", &event.to_string()).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{event}: {body}");
        }
    }
    let path = format!("/stats/aggregate?site_id={site_id}&period=day&metrics=visits,events,bounce_rate");
    let (_, body) = env.api(Method::GET, &path, &key, None).await;
    let results = &body["data"]["results"];
    let figures = ["visits", "events", "bounce_rate"].map(|m| results[m]["value"].as_f64().unwrap());
    assert_eq!(figures, [3.0, 6.0, 67.0], "two of three visits bounced: {body}");
}

/// A site named with `www.` is reached by the tracker's events from either host, with the domain
/// named either way or not at all, as Plausible's tracker names it; the drop-in finds it by either
/// name too.
async fn a_site_named_with_www_is_reached_from_either_host(env: &TestEnv) {
    let (ann, key, domain, _) = pro_site(env, "plain").await;
    let www = format!("www.www-{domain}");
    let body = json!({ "team_id": ann.team_id, "domain": format!("https://WWW.www-{domain}/"), "name": "W" });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!((status, &site["data"]["domain"]), (StatusCode::CREATED, &json!(www)), "named as given: {site}");
    for (visitor, event) in [
        json!({ "name": "pageview", "url": format!("https://www-{domain}/a") }),
        json!({ "domain": format!("www-{domain}"), "name": "pageview", "url": format!("https://www-{domain}/b") }),
        json!({ "domain": www, "name": "pageview", "url": format!("https://{www}/c") }),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) =
            send(env, &crate::harness::browser(visitor as u32), "application/json", &event.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}: {body}");
    }
    let expected = [("/a".to_owned(), 1), ("/b".to_owned(), 1), ("/c".to_owned(), 1)];
    assert_eq!(pages(env, &key, &format!("www-{domain}")).await, expected);
}

/// A site's domain with or without `www.` is one host, found by either name: a second site
/// cannot take the other name, in any team.
async fn a_domain_with_or_without_www_is_taken_by_one_site(env: &TestEnv) {
    let (_, key, domain, _) = pro_site(env, "host").await;
    let bob = env.user("bob").await;
    env.set_plan(&bob.team_id, "pro").await;
    let (bobs_key, _) =
        env.create_key(&bob, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let body = json!({ "team_id": bob.team_id, "domain": format!("www.{domain}"), "name": "Other" });
    let (status, refused) = env.api(Method::POST, "/websites", &bobs_key, Some(body)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")), "{refused}");
    let (_, listed) = env.api(Method::GET, "/websites", &key, None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
}

/// An event imported for today and one tracked after it from the same sender are one visitor
/// in one visit: an import hashes today's senders with today's salt, as tracking does.
async fn a_visitor_imported_today_and_then_tracked_is_one_visitor(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "imported").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let user_agent = crate::harness::browser(77);
    // Both events on one UTC day, which a salt lasts.
    let since_midnight = chrono::Utc::now().timestamp().rem_euclid(86_400);
    if !(10..86_370).contains(&since_midnight) {
        tokio::time::sleep(std::time::Duration::from_secs(40)).await;
    }
    let at = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let line = json!({ "at": at, "name": "pageview", "url": format!("https://{domain}/"),
                       "user_agent": user_agent, "ip": "127.0.0.1" });
    crate::harness::import_events(env, site_id, &[line]);
    let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/next") });
    assert_eq!(crate::harness::track(env, &user_agent, event).await, StatusCode::ACCEPTED);
    let body = json!({ "site_id": domain, "metrics": ["visitors", "visits", "pageviews", "bounce_rate"],
                       "date_range": "day" });
    let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"], json!([{ "metrics": [1, 1, 2, 0], "dimensions": [] }]));
}

/// A file whose fourth line (after a blank one) holds a URL no event may have is refused whole:
/// the error names that line of the file, and none of the lines before it is stored.
async fn an_import_with_a_line_a_live_event_could_not_have_stores_none_of_it(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "refused-import").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let at = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    let line = |path: &str| {
        json!({ "at": at, "name": "pageview", "url": format!("https://{domain}/{path}"),
                "user_agent": crate::harness::browser(3), "ip": "127.0.0.9" })
        .to_string()
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines = [line("a"), line("b"), String::new(), line(&"x".repeat(2100)), line("c")];
    std::fs::write(file.path(), lines.join("\n")).unwrap();
    let refused = env.admin_refused(&["import-events", site_id, file.path().to_str().unwrap()]);
    assert!(refused.contains("line 4 (no event was stored)"), "{refused}");
    assert!(refused.contains("url: must be at most 2048 bytes"), "{refused}");
    let path = format!("/stats/aggregate?site_id={site_id}&period=7d&metrics=pageviews");
    let pageviews = || async {
        let (status, answer) = env.api(Method::GET, &path, &key, None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["data"]["results"]["pageviews"]["value"].clone()
    };
    assert_eq!(pageviews().await, 0);
    // Mended, the same file stores each of its events once.
    let mended = [line("a"), line("b"), String::new(), line("x"), line("c")];
    std::fs::write(file.path(), mended.join("\n")).unwrap();
    env.admin(&["import-events", site_id, file.path().to_str().unwrap()]);
    assert_eq!(pageviews().await, 4);
}

/// Two teams creating the same host at once, one as `x` and one as `www.x`, get one site: the
/// other is a 409, however the two requests interleave.
async fn a_host_created_at_once_with_and_without_www_is_one_site(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let mut keys = Vec::new();
    for user in [&ann, &bob] {
        env.set_plan(&user.team_id, "pro").await;
        let (key, _) =
            env.create_key(user, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
        keys.push((key, user.team_id.clone()));
    }
    for round in 0..8 {
        let host = format!("race{round}-{}.example", &ann.user_id[..8]);
        let creations = keys.iter().zip([host.clone(), format!("www.{host}")]).map(|((key, team_id), domain)| {
            env.api(Method::POST, "/websites", key, Some(json!({ "team_id": team_id, "domain": domain, "name": "S" })))
        });
        let mut statuses: Vec<StatusCode> =
            futures::future::join_all(creations).await.into_iter().map(|(status, _)| status).collect();
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "round {round}");
    }
}

/// `XX` (unknown) and `ZZ` (no country), placeholders of geo headers such as Cloudflare's, are
/// no country, as Plausible leaves them out.
async fn a_geo_headers_placeholder_is_no_country(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "geo").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for (visitor, country) in [(1, "XX"), (2, "ZZ"), (3, "fr")] {
        let response = env
            .request(Method::POST, "/api/event")
            .header("user-agent", crate::harness::browser(visitor))
            .header(crate::harness::COUNTRY_HEADER, country)
            .json(&json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(visitors_by(env, &key, site_id, "visit:country").await, [("FR".to_owned(), 1)]);
}

async fn the_drop_in_answers_unknown_routes_and_methods_in_plausibles_shape(env: &TestEnv) {
    let cases = [
        (Method::GET, "/api/external/v1/plausible/api/v1/nothing", StatusCode::NOT_FOUND),
        (Method::GET, "/api/external/v1/plausible/nothing/here", StatusCode::NOT_FOUND),
        (Method::POST, "/api/external/v1/plausible/api/v1/stats/aggregate", StatusCode::METHOD_NOT_ALLOWED),
    ];
    for (method, path, expected) in cases {
        let (status, body) = crate::harness::into_json(env.request(method, path).send().await.unwrap()).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body["error"].is_string() && body.get("success").is_none(), "{path}: {body}");
    }
}

async fn the_drop_in_lists_the_sites_a_key_reaches_as_plausibles_sites_api(env: &TestEnv) {
    let (_, key, domain, _) = pro_site(env, "sites").await;
    let path = "/api/external/v1/plausible/api/v1/sites";
    let response = env.request(Method::GET, path).bearer_auth(&key).send().await.unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sites"], json!([{ "domain": domain, "timezone": "UTC" }]));
    assert_eq!(body["meta"]["after"], Value::Null);
    let (status, body) = crate::harness::into_json(env.request(Method::GET, path).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].is_string(), "{body}");
}

both_modes!(
    a_non_interactive_event_does_not_end_a_bounce,
    a_mobile_apps_screen_url_is_counted_by_its_path,
    a_site_named_with_www_is_reached_from_either_host,
    a_domain_with_or_without_www_is_taken_by_one_site,
    a_host_created_at_once_with_and_without_www_is_one_site,
    a_visitor_imported_today_and_then_tracked_is_one_visitor,
    an_import_with_a_line_a_live_event_could_not_have_stores_none_of_it,
    a_geo_headers_placeholder_is_no_country,
    a_browser_may_ask_before_sending_an_event_as_json,
    what_was_tracked_is_counted_as_computed_by_hand,
    a_bad_event_is_a_400_naming_the_field_and_stores_nothing,
    an_event_over_160_kib_is_refused_alone_with_413,
    a_dropped_bots_event_says_so_in_plausibles_header,
    a_body_past_2_mib_is_a_413_in_the_envelope,
    an_id_that_does_not_decode_is_a_400_in_the_envelope,
    a_bad_aggregate_query_is_a_400_and_an_unknown_site_a_404,
    a_strangers_key_reads_no_statistics_by_any_route,
    a_read_only_key_may_post_a_query_and_a_write_only_one_may_not,
    plausible_v1_shapes_answer_in_the_envelope,
    a_bad_v1_parameter_is_a_400_naming_it,
    a_parameter_given_twice_is_refused_by_ours_and_read_last_by_the_drop_in,
    plausible_v2_queries_answer_at_query_website_id,
    a_bad_v2_body_is_a_400_naming_the_field,
    our_overview_breakdowns_and_realtime_answer,
    a_bad_overview_parameter_is_a_400,
    the_drop_in_answers_plausibles_bodies_without_the_envelope,
    the_drop_in_answers_errors_in_plausibles_shape,
    the_drop_in_lists_the_sites_a_key_reaches_as_plausibles_sites_api,
    the_drop_in_answers_unknown_routes_and_methods_in_plausibles_shape,
    concurrent_events_get_their_own_answers,
    in_hash_mode_the_fragment_is_part_of_the_page,
    a_page_is_named_by_its_decoded_path,
    a_visit_enters_and_exits_on_its_first_and_last_pageview,
    a_pages_tag_names_the_source_as_plausible_names_it,
    the_trackers_domain_forms_and_numeric_names_are_taken
);

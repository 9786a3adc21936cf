//! Goals: their endpoints (ours and Plausible's Sites API under the drop-in), `event:goal` as a
//! dimension and filter, and `conversion_rate`, checked against hand-computed figures.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, browser, pro_site, track};

fn assert_invalid(status: StatusCode, body: &Value, field: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(field), "{field}: {body}");
}

async fn goals_are_created_listed_and_deleted_with_the_write_scope(env: &TestEnv) {
    let (ann, key, _, site) = pro_site(env, "goals").await;
    let goals = format!("/websites/{}/goals", site["data"]["id"].as_str().unwrap());
    let (status, signup) = env.api(Method::POST, &goals, &key, Some(json!({ "event_name": "Signup" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{signup}");
    let signup = &signup["data"];
    assert_eq!(
        (&signup["display_name"], &signup["goal_type"], &signup["event_name"], &signup["page_path"]),
        (&json!("Signup"), &json!("event"), &json!("Signup"), &Value::Null)
    );
    let (status, blog) = env.api(Method::POST, &goals, &key, Some(json!({ "page_path": "/blog/*" }))).await;
    assert_eq!((status, &blog["data"]["display_name"]), (StatusCode::CREATED, &json!("Visit /blog/*")), "{blog}");
    let (status, body) = env.api(Method::POST, &goals, &key, Some(json!({ "event_name": "Signup" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")), "{body}");

    for (body, field) in [
        (json!({}), "event_name"),
        (json!({ "event_name": "A", "page_path": "/a" }), "event_name"),
        (json!({ "event_name": "" }), "event_name"),
        (json!({ "event_name": "pageview" }), "event_name"),
        (json!({ "page_path": "blog" }), "page_path"),
        (json!({ "event_name": 3 }), "event_name"),
        (json!({ "colour": "blue" }), "colour"),
    ] {
        let (status, answer) = env.api(Method::POST, &goals, &key, Some(body.clone())).await;
        assert_invalid(status, &answer, field);
    }

    // A read key lists them but may not change them.
    let (reader, _) = env.create_key(&ann, json!({ "name": "r", "permissions": ["read"], "teams": "all" })).await;
    let (status, list) = env.api(Method::GET, &goals, &reader, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|g| g["display_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Signup", "Visit /blog/*"]);
    let (status, body) = env.api(Method::POST, &goals, &reader, Some(json!({ "event_name": "Buy" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("INSUFFICIENT_SCOPE")), "{body}");
    let one = format!("{goals}/{}", signup["id"].as_str().unwrap());
    assert_eq!(env.api(Method::DELETE, &one, &reader, None).await.0, StatusCode::FORBIDDEN);

    let (status, body) = env.api(Method::DELETE, &one, &key, None).await;
    assert_eq!((status, &body["data"]["deleted"]), (StatusCode::OK, &json!(true)), "{body}");
    let (status, body) = env.api(Method::DELETE, &one, &key, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{body}");
    let (_, list) = env.api(Method::GET, &goals, &key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");

    // The console reads them with a session, as a member of the website's team; others get 403.
    let console = format!("/api/v1{goals}");
    let (status, list) = env.session_json(Method::GET, &console, &ann.session, None).await;
    assert_eq!((status, &list["data"][0]["display_name"]), (StatusCode::OK, &json!("Visit /blog/*")), "{list}");
    let bob = env.user("bob").await;
    assert_eq!(env.session_json(Method::GET, &console, &bob.session, None).await.0, StatusCode::FORBIDDEN);
}

/// Five visitors: A reads a blog post and signs up, B reads two posts, C one, D signs up twice,
/// E sees the home page. Goals: Signup, and pageviews of /blog/*.
async fn a_goal_may_be_posted_in_plausibles_shape_with_goal_type(env: &TestEnv) {
    let (_, key, _, site) = pro_site(env, "goal-types").await;
    let goals = format!("/websites/{}/goals", site["data"]["id"].as_str().unwrap());
    let event = json!({ "goal_type": "event", "event_name": "Signup" });
    let (status, body) = env.api(Method::POST, &goals, &key, Some(event)).await;
    assert_eq!((status, &body["data"]["goal_type"]), (StatusCode::CREATED, &json!("event")), "{body}");
    let page = json!({ "goal_type": "page", "page_path": "/thanks" });
    let (status, body) = env.api(Method::POST, &goals, &key, Some(page)).await;
    assert_eq!((status, &body["data"]["display_name"]), (StatusCode::CREATED, &json!("Visit /thanks")), "{body}");
    let (status, body) =
        env.api(Method::POST, &goals, &key, Some(json!({ "goal_type": "page", "event_name": "A" }))).await;
    assert_invalid(status, &body, "page_path");
    let (status, body) =
        env.api(Method::POST, &goals, &key, Some(json!({ "goal_type": "visit", "page_path": "/" }))).await;
    assert_invalid(status, &body, "goal_type");
}

async fn site_with_conversions(env: &TestEnv) -> (String, String, String) {
    let (_, key, domain, site) = pro_site(env, "conversions").await;
    let site_id = site["data"]["id"].as_str().unwrap().to_owned();
    for goal in [json!({ "event_name": "Signup" }), json!({ "page_path": "/blog/*" })] {
        let (status, body) = env.api(Method::POST, &format!("/websites/{site_id}/goals"), &key, Some(goal)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let event =
        |name: &str, path: &str| json!({ "domain": domain, "name": name, "url": format!("https://{domain}{path}") });
    let visits = [
        (1, vec![event("pageview", "/blog/a"), event("Signup", "/blog/a")]),
        (2, vec![event("pageview", "/blog/b"), event("pageview", "/blog/c")]),
        (3, vec![event("pageview", "/blog/a")]),
        (4, vec![event("pageview", "/"), event("Signup", "/"), event("Signup", "/")]),
        (5, vec![event("pageview", "/")]),
    ];
    for (visitor, events) in visits {
        for e in events {
            assert_eq!(track(env, &browser(110 + visitor), e).await, StatusCode::ACCEPTED);
        }
    }
    (key, domain, site_id)
}

/// As Plausible's, a page goal's path matches the whole page, `*` for any characters (`/`
/// included), and respects case.
async fn a_page_goal_matches_the_whole_page_and_respects_case(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "casegoal").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for goal in [json!({ "page_path": "/pricing" }), json!({ "page_path": "/docs/*" })] {
        let (status, body) = env.api(Method::POST, &format!("/websites/{site_id}/goals"), &key, Some(goal)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for (visitor, path) in
        [(1, "/pricing"), (2, "/PriCing"), (3, "/pricing/team"), (4, "/docs/api/keys"), (5, "/Docs/a")]
    {
        let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}{path}") });
        assert_eq!(track(env, &browser(130 + visitor), event).await, StatusCode::ACCEPTED);
    }
    let breakdown = json!({ "metrics": ["visitors"], "date_range": "day", "dimensions": ["event:goal"] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(breakdown)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!([
        { "dimensions": ["Visit /docs/*"], "metrics": [1] },
        { "dimensions": ["Visit /pricing"], "metrics": [1] },
    ]);
    assert_eq!(body["data"]["results"], expected);
}

async fn goal_conversions_and_conversion_rates_match_a_hand_computation(env: &TestEnv) {
    let (key, domain, site_id) = site_with_conversions(env).await;
    // Blog: A, B, C (4 pageviews) of 5 visitors; Signup: A and D (3 events).
    let breakdown = json!({
        "metrics": ["visitors", "events", "conversion_rate", "percentage"],
        "date_range": "day",
        "dimensions": ["event:goal"],
    });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(breakdown)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["results"],
        json!([
            { "dimensions": ["Visit /blog/*"], "metrics": [3, 4, 60.0, 60.0] },
            { "dimensions": ["Signup"], "metrics": [2, 3, 40.0, 40.0] },
        ])
    );
    // Filtered by a goal: its converted visitors, and their share of everyone.
    let v1 = format!(
        "/plausible/api/v1/stats/aggregate?site_id={domain}&period=day&metrics=visitors,events,conversion_rate&filters=event:goal==Signup"
    );
    let (status, body) = env.api(Method::GET, &v1, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let value = |m: &str| body["results"][m]["value"].clone();
    assert_eq!((value("visitors"), value("events"), value("conversion_rate")), (json!(2), json!(3), json!(40.0)));
    let v1 =
        format!("/stats/breakdown?site_id={site_id}&period=day&property=event:goal&metrics=visitors,conversion_rate");
    let (_, body) = env.api(Method::GET, &v1, &key, None).await;
    assert_eq!(
        body["data"]["results"],
        json!([
            { "goal": "Visit /blog/*", "visitors": 3, "conversion_rate": 60.0 },
            { "goal": "Signup", "visitors": 2, "conversion_rate": 40.0 },
        ])
    );
    // Visits that converted: A's and D's.
    let visits = json!({ "metrics": ["visits"], "date_range": "day", "filters": [["is", "event:goal", ["Signup"]]] });
    let (_, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(visits)).await;
    assert_eq!(body["data"]["results"], json!([{ "dimensions": [], "metrics": [2] }]));

    // A goal the site does not have, and conversion_rate without goals, are 400s.
    let unknown = json!({ "metrics": ["visitors"], "date_range": "day", "filters": [["is", "event:goal", ["Buy"]]] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(unknown)).await;
    assert_invalid(status, &body, "filters");
    let plain = format!("/stats/aggregate?site_id={site_id}&period=day&metrics=conversion_rate");
    let (status, body) = env.api(Method::GET, &plain, &key, None).await;
    assert_invalid(status, &body, "metrics");
}

/// A goal named ignoring case (Plausible's `case_sensitive: false`) is the goal of that name in
/// any case, as in Plausible, which checks only exact names for existence.
async fn a_goal_named_ignoring_case_is_that_goal(env: &TestEnv) {
    let (key, domain, _) = site_with_conversions(env).await;
    let path = "/plausible/api/v2/query";
    let query =
        |filter: Value| json!({ "site_id": domain, "metrics": ["visitors"], "date_range": "day", "filters": [filter] });
    let ignoring = query(json!(["is", "event:goal", ["signup"], { "case_sensitive": false }]));
    let (status, body) = env.api(Method::POST, path, &key, Some(ignoring)).await;
    assert_eq!((status, &body["results"]), (StatusCode::OK, &json!([{ "metrics": [2], "dimensions": [] }])), "{body}");
    let exact = query(json!(["is", "event:goal", ["signup"]]));
    let (status, body) = env.api(Method::POST, path, &key, Some(exact)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an exact name must exist: {body}");
}

async fn revenue_goals_sum_their_events_revenue_in_their_currency(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "revenue").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let goals = format!("/websites/{site_id}/goals");
    for goal in [json!({ "event_name": "Purchase", "currency": "EUR" }), json!({ "event_name": "Signup" })] {
        let (status, body) = env.api(Method::POST, &goals, &key, Some(goal)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for (body, field) in [
        (json!({ "page_path": "/thanks", "currency": "EUR" }), "currency"),
        (json!({ "event_name": "Buy", "currency": "eur" }), "currency"),
    ] {
        let (status, answer) = env.api(Method::POST, &goals, &key, Some(body)).await;
        assert_invalid(status, &answer, field);
    }
    let purchase = |amount: Value, currency: &str| {
        json!({ "domain": domain, "name": "Purchase", "url": format!("https://{domain}/checkout"),
                "revenue": { "amount": amount, "currency": currency } })
    };
    // Two purchases in euros count; one in dollars is not the goal's currency.
    let events = [
        (1, purchase(json!("10.50"), "EUR")),
        (2, purchase(json!(20.1), "EUR")),
        (3, purchase(json!(5), "USD")),
        (4, json!({ "domain": domain, "name": "Signup", "url": format!("https://{domain}/") })),
    ];
    for (visitor, event) in events {
        assert_eq!(track(env, &browser(130 + visitor), event).await, StatusCode::ACCEPTED);
    }
    let query = json!({
        "metrics": ["visitors", "total_revenue", "average_revenue"],
        "date_range": "day",
        "dimensions": ["event:goal"],
    });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["results"],
        json!([
            { "dimensions": ["Purchase"], "metrics": [
                3,
                { "short": "€30.6", "long": "€30.60", "value": 30.6 },
                { "short": "€15.3", "long": "€15.30", "value": 15.3 },
            ] },
            { "dimensions": ["Signup"], "metrics": [1, null, null] },
        ])
    );
    let v1 = format!(
        "/plausible/api/v1/stats/aggregate?site_id={domain}&period=day&metrics=total_revenue&filters=event:goal==Purchase"
    );
    let (status, body) = env.api(Method::GET, &v1, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"]["total_revenue"]["value"]["long"], "€30.60");
}

async fn the_drop_in_serves_plausibles_sites_api_for_sites_goals_and_health(env: &TestEnv) {
    let (ann, key, domain, _) = pro_site(env, "sitesapi").await;
    let (status, body) = env.api(Method::GET, &format!("/plausible/api/v1/sites/{domain}"), &key, None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "domain": domain, "timezone": "UTC", "custom_properties": [] }))
    );
    let (status, body) = env.api(Method::GET, "/plausible/api/v1/sites/nobody.example", &key, None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({ "error": "Site could not be found" })));

    let put = json!({ "site_id": domain, "goal_type": "event", "event_name": "Signup" });
    let (status, goal) = env.api(Method::PUT, "/plausible/api/v1/sites/goals", &key, Some(put.clone())).await;
    assert_eq!(status, StatusCode::OK, "{goal}");
    assert_eq!(
        (&goal["goal_type"], &goal["event_name"], &goal["page_path"], &goal["domain"], &goal["display_name"]),
        (&json!("event"), &json!("Signup"), &Value::Null, &json!(domain), &json!("Signup"))
    );
    // Find or create: the same goal again.
    let (_, again) = env.api(Method::PUT, "/plausible/api/v1/sites/goals", &key, Some(put)).await;
    assert_eq!(again["id"], goal["id"]);
    let (status, list) =
        env.api(Method::GET, &format!("/plausible/api/v1/sites/goals?site_id={domain}"), &key, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["goals"][0]["display_name"], "Signup");
    assert_eq!(list["goals"].as_array().unwrap().len(), 1);

    // Errors in Plausible's shape: a missing parameter, a read key writing, an unknown goal.
    let (status, body) = env.api(Method::GET, "/plausible/api/v1/sites/goals", &key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("site_id") && body.get("success").is_none(), "{body}");
    let bad = json!({ "site_id": domain, "goal_type": "scroll" });
    let (status, body) = env.api(Method::PUT, "/plausible/api/v1/sites/goals", &key, Some(bad)).await;
    assert!(status == StatusCode::BAD_REQUEST && body["error"].as_str().unwrap().contains("goal_type"), "{body}");
    let (reader, _) = env.create_key(&ann, json!({ "name": "r", "permissions": ["read"], "teams": "all" })).await;
    let page = json!({ "site_id": domain, "goal_type": "page", "page_path": "/thanks" });
    let (status, body) = env.api(Method::PUT, "/plausible/api/v1/sites/goals", &reader, Some(page)).await;
    assert!(status == StatusCode::FORBIDDEN && body["error"].is_string(), "{body}");

    let delete = format!("/plausible/api/v1/sites/goals/{}?site_id={domain}", goal["id"].as_str().unwrap());
    let (status, body) = env.api(Method::DELETE, &delete, &key, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "deleted": true })));
    let (status, body) = env.api(Method::DELETE, &delete, &key, None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({ "error": "Goal could not be found" })));

    // An id that does not decode is refused in Plausible's shape too.
    let (status, body) = env.api(Method::GET, "/plausible/api/v1/sites/%FF", &key, None).await;
    assert!(status == StatusCode::BAD_REQUEST && body["error"].is_string(), "{body}");

    // The health checks clients probe need no key.
    for (path, expected) in [
        ("/api/external/v1/plausible/api/health", json!({ "analytics": "ok" })),
        ("/api/external/v1/plausible/api/system/health/live", json!({ "ok": true })),
    ] {
        let response = env.request(Method::GET, path).send().await.unwrap();
        assert_eq!(crate::harness::into_json(response).await, (StatusCode::OK, expected), "{path}");
    }
}

/// Adds a revenue goal on the custom event `name`, in `currency`.
async fn revenue_goal(env: &TestEnv, key: &str, site_id: &str, name: &str, currency: &str) {
    let goal = json!({ "event_name": name, "currency": currency });
    let (status, body) = env.api(Method::POST, &format!("/websites/{site_id}/goals"), key, Some(goal)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_revenue_that_is_no_amount_is_no_revenue_and_a_huge_sum_is_still_answered(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "huge").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    revenue_goal(env, &key, site_id, "Purchase", "USD").await;
    let purchase = |amount: Value| {
        json!({ "domain": domain, "name": "Purchase", "url": format!("https://{domain}/buy"),
                "revenue": { "amount": amount, "currency": "USD" } })
    };
    // As in Plausible, the event is kept without the revenue it cannot take.
    for amount in [json!("NaN"), json!("Infinity"), json!("-inf"), json!(1e308), json!("1e15"), json!(-1e16)] {
        assert_eq!(track(env, &browser(140), purchase(amount.clone())).await, StatusCode::ACCEPTED, "{amount}");
    }
    // A hundred of the largest amounts pass what a BIGINT of cents holds; the sum stops there.
    for _ in 0..100 {
        assert_eq!(track(env, &browser(141), purchase(json!(999_999_999_999_999.0))).await, StatusCode::ACCEPTED);
    }
    let query = json!({ "metrics": ["total_revenue", "average_revenue"], "date_range": "day",
                        "filters": [["is", "event:goal", ["Purchase"]]] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = &body["data"]["results"][0]["metrics"];
    assert_eq!(metrics[0]["value"].as_f64(), Some(9.0e16), "{body}");
    assert_eq!(metrics[1]["value"].as_f64(), Some(9.0e14), "{body}");
}

async fn a_revenue_plausibles_tracker_sends_empty_keeps_its_event_and_a_leading_number_is_the_amount(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "tagged").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    revenue_goal(env, &key, site_id, "Donate", "EUR").await;
    let url = format!("https://{domain}/give");
    // Plausible's tracker sends `"$":{}` for every element tagged with a class, and a site may
    // send a currency in lower case or none: each event is kept, without revenue.
    for revenue in [json!({}), json!({ "currency": "EUR" }), json!({ "amount": 5, "currency": "eur" }), json!([])] {
        let event = json!({ "d": domain, "n": "Donate", "u": url, "$": revenue });
        assert_eq!(track(env, &browser(150), event).await, StatusCode::ACCEPTED, "{revenue}");
    }
    let event = json!({ "d": domain, "n": "Donate", "u": url, "$": { "amount": "12.5abc", "currency": "EUR" } });
    assert_eq!(track(env, &browser(151), event).await, StatusCode::ACCEPTED);
    let query = json!({ "metrics": ["events", "total_revenue"], "date_range": "day",
                        "filters": [["is", "event:goal", ["Donate"]]] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = &body["data"]["results"][0]["metrics"];
    assert_eq!((metrics[0].as_u64(), metrics[1]["value"].as_f64()), (Some(5), Some(12.5)), "{body}");
}

async fn a_form_submission_or_404_without_a_path_is_given_its_pages_as_plausible_gives_it(env: &TestEnv) {
    let (_, key, domain, site) = pro_site(env, "forms").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    for (name, path, props) in [
        ("Form: Submission", "/contact", json!({})),
        ("404", "/missing", json!({ "x": "1" })),
        ("404", "/elsewhere", json!({ "path": "/kept" })),
        ("Form: Submission", "/blank", json!({ "path": "" })),
        ("Signup", "/join", json!({})),
    ] {
        let event = json!({ "domain": domain, "name": name, "url": format!("https://{domain}{path}"), "props": props });
        assert_eq!(track(env, &browser(160), event).await, StatusCode::ACCEPTED);
    }
    let query = json!({ "metrics": ["events"], "date_range": "day", "dimensions": ["event:name", "event:props:path"],
                        "filters": [["is_not", "event:name", ["pageview"]]],
                        "order_by": [["event:name", "asc"], ["event:props:path", "asc"]] });
    let (status, body) = env.api(Method::POST, &format!("/query/{site_id}"), &key, Some(query)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<(String, String)> = body["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["dimensions"][0].as_str().unwrap().to_owned(), r["dimensions"][1].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("404", "/kept"),
        ("404", "/missing"),
        ("Form: Submission", "/blank"),
        ("Form: Submission", "/contact"),
        ("Signup", "(none)"),
    ];
    assert_eq!(rows, expected.map(|(n, p)| (n.to_owned(), p.to_owned())), "{body}");
}

async fn a_website_has_at_most_100_goals_even_when_they_are_created_at_once(env: &TestEnv) {
    let (ann, key, _, site) = pro_site(env, "many-goals").await;
    env.set_plan_with(&ann.team_id, "pro", json!({ "requests_per_minute": 400 })).await;
    let id = site["data"]["id"].as_str().unwrap();
    let goals = format!("/websites/{id}/goals");
    for i in 0..90 {
        let (status, body) = env.api(Method::POST, &goals, &key, Some(json!({ "event_name": format!("G{i}") }))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let racing = (0..20).map(|i| env.api(Method::POST, &goals, &key, Some(json!({ "event_name": format!("R{i}") }))));
    let answers = futures::future::join_all(racing).await;
    let created = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    assert_eq!(created, 10, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != StatusCode::CREATED) {
        assert_eq!((*status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("100 goals"), "{body}");
    }
    let (_, list) = env.api(Method::GET, &goals, &key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 100, "{list}");
    // A goal the site has is that goal still, as Plausible's find-or-create answers it.
    let (status, body) = env.api(Method::POST, &goals, &key, Some(json!({ "event_name": "G7" }))).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("already has the goal"), "{status} {body}");
    let find_or_create = |name: &str| {
        let body = json!({ "site_id": site["data"]["domain"], "goal_type": "event", "event_name": name });
        env.api(Method::PUT, "/plausible/api/v1/sites/goals", &key, Some(body))
    };
    let (status, body) = find_or_create("G7").await;
    assert_eq!((status, &body["display_name"]), (StatusCode::OK, &json!("G7")), "{body}");
    let (status, body) = find_or_create("New").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("100 goals"), "{body}");
    // A breakdown by every one of them is answered.
    let path =
        format!("/stats/breakdown?site_id={id}&period=30d&property=event:goal&metrics=visitors,events&limit=1000");
    let (status, body) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Deleting one makes room for another.
    let first = list["data"][0]["id"].as_str().unwrap();
    assert_eq!(env.api(Method::DELETE, &format!("{goals}/{first}"), &key, None).await.0, StatusCode::OK);
    let (status, body) = env.api(Method::POST, &goals, &key, Some(json!({ "page_path": "/last" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

both_modes!(
    a_website_has_at_most_100_goals_even_when_they_are_created_at_once,
    a_form_submission_or_404_without_a_path_is_given_its_pages_as_plausible_gives_it,
    goals_are_created_listed_and_deleted_with_the_write_scope,
    a_revenue_that_is_no_amount_is_no_revenue_and_a_huge_sum_is_still_answered,
    a_revenue_plausibles_tracker_sends_empty_keeps_its_event_and_a_leading_number_is_the_amount,
    a_goal_may_be_posted_in_plausibles_shape_with_goal_type,
    goal_conversions_and_conversion_rates_match_a_hand_computation,
    a_goal_named_ignoring_case_is_that_goal,
    a_page_goal_matches_the_whole_page_and_respects_case,
    revenue_goals_sum_their_events_revenue_in_their_currency,
    the_drop_in_serves_plausibles_sites_api_for_sites_goals_and_health
);

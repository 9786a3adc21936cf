//! The console (issue 15): its pages, its headers, and the session website endpoints it calls.
//! The pages themselves are driven in a real browser by tests/browser.

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE, X_FRAME_OPTIONS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, TestUser};

async fn a_member_adds_a_website_with_a_session_and_finds_it_in_the_list(env: &TestEnv) {
    let ann = env.user("ann").await;
    let body = json!({ "team_id": ann.team_id, "domain": "https://Ann.Example.com/", "name": "Ann's site" });
    let (status, created) = env.session_json(Method::POST, "/api/v1/websites", &ann.session, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["domain"], "ann.example.com");
    assert_eq!(created["data"]["timezone"], "UTC");
    let (status, list) = env.session_json(Method::GET, "/api/v1/websites", &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [created["data"]["id"].as_str().unwrap()]);
}

async fn a_website_is_not_added_to_a_team_i_do_not_belong_to(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    let body = json!({ "team_id": bob.team_id, "domain": "bob-owned.example.com", "name": "Not mine" });
    let (status, refused) = env.session_json(Method::POST, "/api/v1/websites", &ann.session, Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (_, bobs) = env.session_json(Method::GET, "/api/v1/websites", &bob.session, None).await;
    assert_eq!(bobs["data"], json!([]));
    let (_, anns) = env.session_json(Method::GET, "/api/v1/websites", &ann.session, None).await;
    assert_eq!(anns["data"], json!([]));
}

async fn a_bad_website_domain_is_a_validation_error_naming_the_field(env: &TestEnv) {
    let ann = env.user("ann").await;
    let body = json!({ "team_id": ann.team_id, "domain": "not a domain!", "name": "Bad" });
    let (status, refused) = env.session_json(Method::POST, "/api/v1/websites", &ann.session, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("domain"), "{refused}");
}

async fn the_website_endpoints_need_a_session(env: &TestEnv) {
    let response = env.request(Method::GET, "/api/v1/websites").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn a_website_added_with_the_session_cookie_needs_the_csrf_token(env: &TestEnv) {
    let ann = env.user("ann").await;
    let body = json!({ "team_id": ann.team_id, "domain": "csrf.example.com", "name": "Forged" });
    let forged = env
        .request(Method::POST, "/api/v1/websites")
        .header("cookie", format!("zenovay_session={}", ann.session))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let (_, list) = env.session_json(Method::GET, "/api/v1/websites", &ann.session, None).await;
    assert_eq!(list["data"], json!([]));
}

/// A client that does not follow redirects, to see where the console sends a visitor.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn the_root_sends_a_visitor_to_log_in_without_a_session_and_to_websites_with_one(env: &TestEnv) {
    let client = no_redirects();
    let anonymous = client.get(format!("{}/", env.base())).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()[LOCATION], "/login");
    let ann = env.user("ann").await;
    let signed_in = client
        .get(format!("{}/", env.base()))
        .header("cookie", format!("zenovay_session={}", ann.session))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.headers()[LOCATION], "/websites");
    let page = client.get(format!("{}/settings/api-keys", env.base())).send().await.unwrap();
    assert_eq!(page.headers()[LOCATION], "/login");
}

async fn a_console_page_carries_the_csrf_token_and_refuses_framing_and_foreign_scripts(env: &TestEnv) {
    let ann = env.user("ann").await;
    let page = env
        .request(Method::GET, "/settings/api-keys")
        .header("cookie", format!("zenovay_session={}", ann.session))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()[X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers()[CACHE_CONTROL], "no-store");
    let html = page.text().await.unwrap();
    let token = html.split(r#"<meta name="csrf-token" content=""#).nth(1).and_then(|rest| rest.split('"').next());
    let token = token.expect("the page names its CSRF token");
    // The token the page holds is the one a state-changing call needs.
    let (status, _) = crate::harness::into_json(
        env.request(Method::POST, "/api/v1/teams")
            .header("cookie", format!("zenovay_session={}", ann.session))
            .header("x-csrf-token", token)
            .json(&json!({ "name": "Second" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn the_console_assets_are_cached_for_good_under_their_content_hash(env: &TestEnv) {
    let html = env.request(Method::GET, "/login").send().await.unwrap().text().await.unwrap();
    let href = html.split(r#"<link rel="stylesheet" href=""#).nth(1).and_then(|r| r.split('"').next()).unwrap();
    let css = env.request(Method::GET, href).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    let stale = env.request(Method::GET, "/assets/console.000000000000.css").send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}

async fn the_session_cookie_is_not_secure_without_an_https_public_url(env: &TestEnv) {
    let ann = env.user("ann").await;
    let login = env
        .request(Method::POST, "/api/v1/auth/login")
        .json(&json!({ "email": ann.email, "password": "correct horse battery" }))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// A website added with `user`'s session, and three pageviews of two visitors on it: its id.
async fn site_with_visits(env: &TestEnv, user: &TestUser) -> String {
    let domain = format!("stats-{}.example", &user.user_id[..8]);
    let body = json!({ "team_id": user.team_id, "domain": domain, "name": "Stats" });
    let (status, site) = env.session_json(Method::POST, "/api/v1/websites", &user.session, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    // A visitor is told apart by its browser: Firefox in the US, Safari in Germany.
    for (agent, country, path) in [(FIREFOX, "US", "/"), (FIREFOX, "US", "/pricing"), (SAFARI, "DE", "/pricing")] {
        let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}{path}") });
        let response = env
            .request(Method::POST, "/api/event")
            .header("user-agent", agent)
            .header(crate::harness::COUNTRY_HEADER, country)
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    site["data"]["id"].as_str().unwrap().to_owned()
}

async fn console_stats(env: &TestEnv, user: &TestUser, site_id: &str, query: &str) -> (StatusCode, Value) {
    env.session_json(Method::GET, &format!("/api/v1/websites/{site_id}/stats?{query}"), &user.session, None).await
}

async fn the_website_page_figures_equal_the_external_aggregate(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let metrics = "visitors,visits,pageviews,bounce_rate,visit_duration";
    // Plausible's v1 `7d` ends the day before `date`; ours ends today.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d");
    let query = format!(
        "/stats/aggregate?site_id={site_id}&period=7d&date={tomorrow}&metrics={metrics}&compare=previous_period"
    );
    let (status, api) = env.api(Method::GET, &query, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{api}");
    let (status, page) = console_stats(env, &ann, &site_id, "period=7d").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for metric in metrics.split(',') {
        let (ours, theirs) = (&page["data"]["figures"][metric], &api["data"]["results"][metric]);
        assert_eq!((&ours["value"], &ours["change"]), (&theirs["value"], &theirs["change"]), "{metric}");
    }
    assert_eq!(page["data"]["figures"]["pageviews"]["value"], 3);
}

async fn the_website_page_breakdowns_follow_a_filter(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let (status, page) = console_stats(env, &ann, &site_id, "period=day&filters=visit:country%3D%3DDE").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"]["figures"]["pageviews"]["value"], 1);
    assert_eq!(page["data"]["breakdowns"]["pages"], json!([{ "value": "/pricing", "visitors": 1 }]));
}

async fn a_free_team_sees_its_website_page(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let (status, page) = console_stats(env, &ann, &site_id, "period=day").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"]["figures"]["visitors"]["value"], 2);
}

async fn the_website_page_of_another_team_is_forbidden(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    let site_id = site_with_visits(env, &ann).await;
    let (status, refused) = console_stats(env, &bob, &site_id, "period=day").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{refused}");
}

async fn the_website_page_of_an_unknown_website_is_not_found(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, refused) = console_stats(env, &ann, "no-such-site", "period=day").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
}

async fn an_unknown_period_is_a_validation_error_naming_the_field(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let (status, refused) = console_stats(env, &ann, &site_id, "period=forever").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("period"), "{refused}");
}

async fn a_bad_website_page_filter_is_a_validation_error_naming_the_field(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    for filters in ["event:page", "visit:planet%3D%3DMars"] {
        let (status, refused) = console_stats(env, &ann, &site_id, &format!("period=day&filters={filters}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().starts_with("filters"), "{refused}");
    }
}

async fn the_website_page_counts_the_visitors_right_now(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}/realtime");
    let (status, now) = env.session_json(Method::GET, &path, &ann.session, None).await;
    assert_eq!((status, &now["data"]["visitors"]), (StatusCode::OK, &json!(2)), "{now}");
}

async fn the_visitors_right_now_of_another_team_are_forbidden(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    let site_id = site_with_visits(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}/realtime");
    let (status, refused) = env.session_json(Method::GET, &path, &bob.session, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_an_https_public_url() {
    let env = TestEnv::all_in_one_with(&["--public-url", "https://zenovay.example.com"]).await;
    let response = env
        .request(Method::POST, "/api/v1/auth/signup")
        .json(&json!({ "email": "secure@example.com", "password": "correct horse battery", "name": "S" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("; Secure;"), "{cookie}");
}

both_modes!(
    a_member_adds_a_website_with_a_session_and_finds_it_in_the_list,
    a_website_is_not_added_to_a_team_i_do_not_belong_to,
    a_bad_website_domain_is_a_validation_error_naming_the_field,
    the_website_endpoints_need_a_session,
    a_website_added_with_the_session_cookie_needs_the_csrf_token,
    the_root_sends_a_visitor_to_log_in_without_a_session_and_to_websites_with_one,
    a_console_page_carries_the_csrf_token_and_refuses_framing_and_foreign_scripts,
    the_console_assets_are_cached_for_good_under_their_content_hash,
    the_session_cookie_is_not_secure_without_an_https_public_url,
    the_website_page_figures_equal_the_external_aggregate,
    the_website_page_breakdowns_follow_a_filter,
    a_free_team_sees_its_website_page,
    the_website_page_of_another_team_is_forbidden,
    the_website_page_of_an_unknown_website_is_not_found,
    an_unknown_period_is_a_validation_error_naming_the_field,
    a_bad_website_page_filter_is_a_validation_error_naming_the_field,
    the_website_page_counts_the_visitors_right_now,
    the_visitors_right_now_of_another_team_are_forbidden
);

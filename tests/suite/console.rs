//! The console (issue 15): its pages, its headers, and the session website endpoints it calls.
//! The pages themselves are driven in a real browser by tests/browser.

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE, X_FRAME_OPTIONS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{GatewayFlags, TestEnv, TestUser, add_member, assert_error};

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

/// The console's form and an API client sending the same website are answered alike; a domain
/// pasted with spaces around it is taken.
async fn a_website_added_with_a_session_is_held_to_the_external_apis_rules(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    for (domain, name) in [("not a domain!", "Bad"), ("good.example", "   ")] {
        let body = json!({ "team_id": ann.team_id, "domain": domain, "name": name });
        let (_, by_session) =
            env.session_json(Method::POST, "/api/v1/websites", &ann.session, Some(body.clone())).await;
        let (_, by_key) = env.api(Method::POST, "/websites", &key, Some(body)).await;
        assert_eq!(by_session["error"]["message"], by_key["error"]["message"], "{by_session} {by_key}");
    }
    let body = json!({ "team_id": ann.team_id, "domain": "  pasted.example ", "name": "Pasted" });
    let (status, created) = env.session_json(Method::POST, "/api/v1/websites", &ann.session, Some(body)).await;
    assert_eq!((status, &created["data"]["domain"]), (StatusCode::CREATED, &json!("pasted.example")), "{created}");
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

/// A Pro team's website added with `owner`'s session, and a read key of `owner`'s to see it
/// through the external API: (website id, key).
async fn site_and_read_key(env: &TestEnv, owner: &TestUser) -> (String, String) {
    env.set_plan(&owner.team_id, "pro").await;
    let (key, _) = env.create_key(owner, json!({ "name": "reader", "permissions": ["read"], "teams": "all" })).await;
    let domain = format!("edit-{}.example", &owner.user_id[..8]);
    let body = json!({ "team_id": owner.team_id, "domain": domain, "name": "Before", "timezone": "UTC" });
    let (status, site) = env.session_json(Method::POST, "/api/v1/websites", &owner.session, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    (site["data"]["id"].as_str().unwrap().to_owned(), key)
}

async fn a_plain_member_renames_rezones_and_deletes_a_website_with_a_session(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    let (site_id, key) = site_and_read_key(env, &ann).await;
    add_member(env, &ann, &ann.team_id, &bob, "member").await;
    let path = format!("/api/v1/websites/{site_id}");

    let body = json!({ "name": "After", "timezone": "Europe/Berlin" });
    let (status, updated) = env.session_json(Method::PATCH, &path, &bob.session, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (updated["data"]["name"].as_str(), updated["data"]["timezone"].as_str()),
        (Some("After"), Some("Europe/Berlin"))
    );
    let (status, seen) = env.api(Method::GET, &format!("/websites/{site_id}"), &key, None).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(
        (seen["data"]["name"].as_str(), seen["data"]["timezone"].as_str()),
        (Some("After"), Some("Europe/Berlin"))
    );

    // An absent field keeps its value.
    let (status, renamed) =
        env.session_json(Method::PATCH, &path, &ann.session, Some(json!({ "name": "Again" }))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["data"]["timezone"], "Europe/Berlin");
    let (_, listed) = env.api(Method::GET, "/websites", &key, None).await;
    assert_eq!(listed["data"][0]["name"], "Again", "{listed}");

    let (status, deleted) = env.session_json(Method::DELETE, &path, &bob.session, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["data"], json!({ "id": site_id, "deleted": true }));
    let (status, gone) = env.api(Method::GET, &format!("/websites/{site_id}"), &key, None).await;
    assert_error(status, &gone, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (_, mine) = env.session_json(Method::GET, "/api/v1/websites", &ann.session, None).await;
    assert_eq!(mine["data"], json!([]));
    let (status, again) = env.session_json(Method::DELETE, &path, &ann.session, None).await;
    assert_error(status, &again, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn another_teams_website_can_be_neither_changed_nor_deleted_with_a_session(env: &TestEnv) {
    let (ann, eve) = (env.user("ann").await, env.user("eve").await);
    let (site_id, key) = site_and_read_key(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}");
    let (status, refused) = env.session_json(Method::PATCH, &path, &eve.session, Some(json!({ "name": "Mine" }))).await;
    assert_error(status, &refused, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, refused) = env.session_json(Method::DELETE, &path, &eve.session, None).await;
    assert_error(status, &refused, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, seen) = env.api(Method::GET, &format!("/websites/{site_id}"), &key, None).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["data"]["name"], "Before");
}

async fn a_bad_website_change_is_a_validation_error_naming_the_field(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (site_id, key) = site_and_read_key(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}");
    for (body, field) in [
        (json!({ "name": "x", "domain": "other.example" }), "domain"),
        (json!({ "timezone": "Mars/Olympus" }), "timezone"),
        (json!({ "name": "   " }), "name"),
        (json!({ "name": 7 }), "name"),
    ] {
        let (status, refused) = env.session_json(Method::PATCH, &path, &ann.session, Some(body.clone())).await;
        assert_error(status, &refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(refused["error"]["message"].as_str().unwrap().contains(field), "{body}: {refused}");
    }
    let (status, seen) = env.api(Method::GET, &format!("/websites/{site_id}"), &key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((seen["data"]["name"].as_str(), seen["data"]["timezone"].as_str()), (Some("Before"), Some("UTC")));
    let (status, unknown) = env
        .session_json(Method::PATCH, "/api/v1/websites/no-such-site", &ann.session, Some(json!({ "name": "X" })))
        .await;
    assert_error(status, &unknown, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn a_website_change_needs_a_session_and_with_the_cookie_the_csrf_token(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (site_id, key) = site_and_read_key(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}");
    let anonymous = env.request(Method::PATCH, &path).json(&json!({ "name": "X" })).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let anonymous = env.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let cookie = format!("zenovay_session={}", ann.session);
    let forged =
        env.request(Method::PATCH, &path).header("cookie", &cookie).json(&json!({ "name": "X" })).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let forged = env.request(Method::DELETE, &path).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let (status, seen) = env.api(Method::GET, &format!("/websites/{site_id}"), &key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["data"]["name"], "Before");
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
    // A page asked for without a session leads to log in, and from there back to it.
    let page = client.get(format!("{}/settings/api-keys?x=1", env.base())).send().await.unwrap();
    assert_eq!(page.headers()[LOCATION], "/login?next=%2Fsettings%2Fapi-keys%3Fx%3D1");
}

async fn an_address_with_no_page_is_a_console_page_for_a_browser_and_the_apis_404_for_a_program(env: &TestEnv) {
    let page = env.request(Method::GET, "/setings").header("accept", "text/html,*/*;q=0.8").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.headers().contains_key(CONTENT_SECURITY_POLICY));
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Page not found · Zenovay</title>") && html.contains(r#"href="/login""#), "{html}");
    let program = env.request(Method::GET, "/setings").send().await.unwrap();
    let (status, body) = crate::harness::into_json(program).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{body}");
    let api = env.request(Method::GET, "/api/v1/nope").header("accept", "text/html").send().await.unwrap();
    assert_eq!(crate::harness::into_json(api).await.1["error"]["code"], "NOT_FOUND", "the APIs answer JSON");
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
    let (status, body) = crate::harness::into_json(stale).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("NOT_FOUND")), "in the envelope");
}

/// The dashboard API's answers are one person's: no cache keeps them, none is sniffed.
async fn the_dashboard_apis_answers_are_not_kept_by_caches(env: &TestEnv) {
    let ann = env.user("ann").await;
    for path in ["/api/v1/me", "/api/v1/teams", "/api/v1/account/api-keys", "/api/v1/no-such-thing"] {
        let response = env.request(Method::GET, path).bearer_auth(&ann.session).send().await.unwrap();
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("cache-control").as_deref(), Some("no-store"), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
    }
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
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
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

/// Today's visitors on the website page filtered by `filters` (v1 text or a JSON list of v2's).
async fn visitors_today(env: &TestEnv, user: &TestUser, site_id: &str, filters: &str) -> Value {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("period", "day")
        .append_pair("filters", filters)
        .finish();
    let (status, body) = console_stats(env, user, site_id, &query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["figures"]["visitors"]["value"].clone()
}

/// The console's filters as v2 filters take a value as written: `|`, `;` and `*` in a page are
/// the page's, where the v1 text reads them as alternatives, a second filter and a wildcard.
async fn the_website_page_filters_by_a_value_as_written(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let domain = format!("stats-{}.example", &ann.user_id[..8]);
    for path in ["/p|/pricing", "/q;visit:browser==Safari", "/*"] {
        let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}{path}") });
        let response = env.request(Method::POST, "/api/event").header("user-agent", FIREFOX).json(&event).send();
        assert_eq!(response.await.unwrap().status(), StatusCode::ACCEPTED);
    }
    for (page, visitors) in [("/p|/pricing", 1), ("/q;visit:browser==Safari", 1), ("/*", 1), ("/pricing", 2)] {
        let filters = json!([["is", "event:page", [page]]]).to_string();
        assert_eq!(visitors_today(env, &ann, &site_id, &filters).await, visitors, "{page}");
    }
    let (status, body) = console_stats(env, &ann, &site_id, "period=day&filters=%5B%22is%22").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// `(not set)`, Plausible's label of an empty attribute, picks the empty values on the website
/// page as on the Stats API, in the v1 syntax a shared address holds and as a v2 filter.
async fn the_website_page_reads_a_filter_on_not_set_as_the_stats_api_does(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let domain = format!("stats-{}.example", &ann.user_id[..8]);
    let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/?utm_source=news") });
    let response = env.request(Method::POST, "/api/event").header("user-agent", CHROME).json(&event).send();
    assert_eq!(response.await.unwrap().status(), StatusCode::ACCEPTED);
    let v2 = |op: &str| json!([[op, "visit:utm_source", ["(not set)"]]]).to_string();
    for (filters, visitors) in [
        ("visit:utm_source==(not set)".to_owned(), 2),
        ("visit:utm_source!=(not set)".to_owned(), 1),
        (v2("is"), 2),
        (v2("is_not"), 1),
    ] {
        assert_eq!(visitors_today(env, &ann, &site_id, &filters).await, visitors, "{filters}");
    }
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
        assert_same_figure(metric, ours, theirs);
    }
    assert_eq!(page["data"]["figures"]["pageviews"]["value"], 3);
}

/// The console's figure is the Stats API's v1 aggregate's, its change too, except where
/// Plausible's has none (a bounce rate with none before), where the console still shows points.
fn assert_same_figure(metric: &str, ours: &Value, theirs: &Value) {
    assert_eq!(ours["value"], theirs["value"], "{metric}");
    assert_eq!(ours["previous"], theirs["comparison_value"], "{metric}");
    if theirs["change"].is_null() {
        assert!(metric == "bounce_rate" && ours["change"].is_number(), "{metric}: {ours} {theirs}");
    } else {
        assert_eq!(ours["change"], theirs["change"], "{metric}");
    }
}

/// Today's day in UTC (the sites of these tests are in UTC), as `YYYY-MM-DD`.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

async fn a_custom_period_on_the_website_page_equals_the_external_aggregate_for_the_same_days(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let earlier = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y-%m-%d").to_string();
    let (date, filters) = (format!("{earlier},{}", today()), "event:page%3D%3D/pricing");
    let metrics = "visitors,visits,pageviews,bounce_rate,visit_duration";
    let query = format!(
        "/stats/aggregate?site_id={site_id}&period=custom&date={date}&filters={filters}&metrics={metrics}&compare=previous_period"
    );
    let (status, api) = env.api(Method::GET, &query, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{api}");
    let (status, page) =
        console_stats(env, &ann, &site_id, &format!("period=custom&date={date}&filters={filters}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for metric in metrics.split(',') {
        let (ours, theirs) = (&page["data"]["figures"][metric], &api["data"]["results"][metric]);
        assert_same_figure(metric, ours, theirs);
    }
    assert_eq!(page["data"]["figures"]["pageviews"]["value"], 2);
    assert_eq!(page["data"]["series"].as_array().unwrap().len(), 4, "one point a day: {page}");
}

async fn a_custom_period_of_one_day_is_charted_by_the_hour(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let (status, page) = console_stats(env, &ann, &site_id, &format!("period=custom&date={0},{0}", today())).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"]["series"].as_array().unwrap().len(), 24, "{page}");
    assert_eq!(page["data"]["figures"]["pageviews"]["value"], 3);
}

async fn a_custom_period_without_two_ordered_days_is_a_validation_error_naming_the_date(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    for date in ["", "&date=2026-01-01", "&date=2026-02-01,2026-01-01", "&date=2026-01-01,soon"] {
        let (status, refused) = console_stats(env, &ann, &site_id, &format!("period=custom{date}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{date}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap().starts_with("date:"), "{refused}");
    }
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

async fn team_usage(env: &TestEnv, user: &TestUser, team_id: &str) -> (StatusCode, Value) {
    env.session_json(Method::GET, &format!("/api/v1/teams/{team_id}/usage"), &user.session, None).await
}

async fn the_team_usage_shows_the_plan_limits_and_each_members_requests_this_month(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    env.set_plan_with(&ann.team_id, "pro", json!({ "requests_per_minute": 7 })).await;
    add_member(env, &ann, &ann.team_id, &bob, "member").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    for _ in 0..2 {
        assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    }
    let (status, usage) = team_usage(env, &ann, &ann.team_id).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let data = &usage["data"];
    assert_eq!(data["plan"], "pro");
    assert_eq!(
        data["limits"],
        json!({ "api_access": true, "requests_per_minute": 7, "requests_per_month": 10_000, "mcp_calls_per_day": 500 })
    );
    let used = |email: &str| data["members"].as_array().unwrap().iter().find(|m| m["email"] == email).cloned().unwrap();
    assert_eq!(
        (&used(&ann.email)["requests_this_month"], &used(&ann.email)["mcp_calls_today"]),
        (&json!(2), &json!(0))
    );
    assert_eq!(used(&bob.email)["requests_this_month"], 0);
    let (_, again) = team_usage(env, &ann, &ann.team_id).await;
    assert_eq!(again["data"]["members"], data["members"], "reading the usage takes nothing");
}

async fn a_plain_member_cannot_read_the_team_usage(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    add_member(env, &ann, &ann.team_id, &bob, "member").await;
    let (status, refused) = team_usage(env, &bob, &ann.team_id).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{refused}");
}

/// The OAuth authorization page for a client registered with `redirect_uri`, with `cookie`.
async fn oauth_page(env: &TestEnv, redirect_uri: &str, cookie: &str) -> reqwest::Response {
    let registered = env
        .request(Method::POST, "/oauth/register")
        .json(&json!({ "client_name": "Claude", "redirect_uris": [redirect_uri] }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let client_id = registered.json::<Value>().await.unwrap()["client_id"].as_str().unwrap().to_owned();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    env.request(Method::GET, &format!("/oauth/authorize?{query}")).header("cookie", cookie).send().await.unwrap()
}

async fn the_oauth_sign_in_page_has_the_console_look_and_policy(env: &TestEnv) {
    let page = oauth_page(env, "http://127.0.0.1:9/callback", "").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"), "{csp}");
    assert!(csp.ends_with("frame-ancestors 'none'; base-uri 'none'; form-action 'self'"), "{csp}");
    assert_eq!(page.headers()[X_FRAME_OPTIONS], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<link rel="stylesheet" href="/assets/console."#), "{html}");
    assert!(
        html.contains(r#"<label for="email">Email</label>"#)
            && html.contains(r#"<label for="password">Password</label>"#)
    );
    assert!(!html.contains("style="), "no inline style, which the policy would block: {html}");
}

async fn the_oauth_consent_form_may_lead_only_here_and_to_the_clients_redirect_origin(env: &TestEnv) {
    let ann = env.user("ann").await;
    let page =
        oauth_page(env, "http://127.0.0.1:9/callback?from=claude", &format!("zenovay_session={}", ann.session)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.ends_with("form-action 'self' http://127.0.0.1:9"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<label for="team">Team</label>"#) && html.contains("<legend>What it may do</legend>"),
        "{html}"
    );
    let app = oauth_page(
        env,
        "cursor://anysphere.cursor-retrieval/oauth/callback",
        &format!("zenovay_session={}", ann.session),
    )
    .await;
    let csp = app.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.ends_with("form-action 'self' cursor:"), "an app's own scheme: {csp}");
}

async fn the_session_cookie_is_secure_behind_an_https_public_url(env: &TestEnv) {
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

/// A website of `user`'s with a goal "Signup" added through the session route: the site's id.
async fn site_with_signup_goal(env: &TestEnv, user: &TestUser) -> String {
    let site_id = site_with_visits(env, user).await;
    let path = format!("/api/v1/websites/{site_id}/goals");
    let (status, goal) =
        env.session_json(Method::POST, &path, &user.session, Some(json!({ "event_name": "Signup" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{goal}");
    assert_eq!(goal["data"]["display_name"], "Signup");
    site_id
}

async fn goals_of(env: &TestEnv, user: &TestUser, site_id: &str) -> Value {
    let path = format!("/api/v1/websites/{site_id}/goals");
    let (status, goals) = env.session_json(Method::GET, &path, &user.session, None).await;
    assert_eq!(status, StatusCode::OK, "{goals}");
    goals["data"].clone()
}

async fn a_member_adds_a_goal_with_a_session_and_deletes_it(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_signup_goal(env, &ann).await;
    let goals = goals_of(env, &ann, &site_id).await;
    assert_eq!(goals.as_array().unwrap().len(), 1, "{goals}");
    let path = format!("/api/v1/websites/{site_id}/goals/{}", goals[0]["id"].as_str().unwrap());
    let (status, deleted) = env.session_json(Method::DELETE, &path, &ann.session, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(goals_of(env, &ann, &site_id).await, json!([]));
}

async fn a_goal_without_an_event_name_or_page_path_is_a_validation_error_naming_the_field(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}/goals");
    let (status, refused) = env.session_json(Method::POST, &path, &ann.session, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("event_name"), "{refused}");
}

async fn a_goal_added_with_the_session_cookie_needs_the_csrf_token(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let forged = env
        .request(Method::POST, &format!("/api/v1/websites/{site_id}/goals"))
        .header("cookie", format!("zenovay_session={}", ann.session))
        .json(&json!({ "event_name": "Forged" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(goals_of(env, &ann, &site_id).await, json!([]));
}

async fn the_goals_of_another_teams_website_can_be_neither_added_nor_deleted(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    let site_id = site_with_signup_goal(env, &ann).await;
    let goal_id = goals_of(env, &ann, &site_id).await[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/websites/{site_id}/goals");
    let (status, refused) =
        env.session_json(Method::POST, &path, &bob.session, Some(json!({ "event_name": "X" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, refused) = env.session_json(Method::DELETE, &format!("{path}/{goal_id}"), &bob.session, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, refused) = env.session_json(Method::GET, &path, &bob.session, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(goals_of(env, &ann, &site_id).await.as_array().unwrap().len(), 1);
}

async fn the_goal_endpoints_need_a_session(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}/goals");
    let response = env.request(Method::POST, &path).json(&json!({ "event_name": "X" })).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = env.request(Method::DELETE, &format!("{path}/any")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn the_website_page_goals_and_custom_events_equal_the_stats_api_breakdowns(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_signup_goal(env, &ann).await;
    let domain = format!("stats-{}.example", &ann.user_id[..8]);
    for agent in [FIREFOX, FIREFOX, SAFARI] {
        let event = json!({ "domain": domain, "name": "Signup", "url": format!("https://{domain}/"), "props": { "plan": "pro" } });
        let response =
            env.request(Method::POST, "/api/event").header("user-agent", agent).json(&event).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let (_, page) = console_stats(env, &ann, &site_id, "period=day").await;
    let breakdown = |property: &str, metrics: &str| {
        format!("/stats/breakdown?site_id={site_id}&period=day&property={property}&metrics={metrics}")
    };
    let (status, goals) =
        env.api(Method::GET, &breakdown("event:goal", "visitors,events,conversion_rate"), &key, None).await;
    assert_eq!(status, StatusCode::OK, "{goals}");
    let row = &page["data"]["goals"][0];
    let theirs = &goals["data"]["results"][0];
    assert_eq!(
        (&row["value"], &row["visitors"], &row["events"]),
        (&theirs["goal"], &theirs["visitors"], &theirs["events"])
    );
    assert_eq!(row["conversion_rate"], theirs["conversion_rate"]);
    assert_eq!((row["visitors"].as_i64(), row["events"].as_i64()), (Some(2), Some(3)));
    let (_, events) = env.api(Method::GET, &breakdown("event:name", "visitors,events"), &key, None).await;
    let custom: Vec<Value> = events["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] != "pageview")
        .map(|r| json!({ "value": r["name"], "visitors": r["visitors"], "events": r["events"] }))
        .collect();
    assert_eq!(page["data"]["custom_events"], json!(custom));
}

/// Sends `name` with `props` from the browser `agent` to `user`'s site of [`site_with_visits`].
async fn send_custom_event(env: &TestEnv, user: &TestUser, agent: &str, name: &str, props: Value) {
    let domain = format!("stats-{}.example", &user.user_id[..8]);
    let event = json!({ "domain": domain, "name": name, "url": format!("https://{domain}/"), "props": props });
    let response =
        env.request(Method::POST, "/api/event").header("user-agent", agent).json(&event).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn console_properties(env: &TestEnv, user: &TestUser, site_id: &str, query: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/websites/{site_id}/properties?{query}");
    env.session_json(Method::GET, &path, &user.session, None).await
}

/// The property picker lists the names most events carry first, so that names a visitor sends
/// on one event cannot push the site's own out of the first hundred.
async fn the_property_names_most_used_come_first(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    send_custom_event(env, &ann, FIREFOX, "Signup", json!({ "!junk": "1", "plan": "pro" })).await;
    send_custom_event(env, &ann, SAFARI, "Signup", json!({ "plan": "free" })).await;
    let (status, page) = console_properties(env, &ann, &site_id, "period=day&event=Signup").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"]["keys"], json!(["plan", "!junk"]));
}

async fn the_website_page_lists_a_custom_events_properties_and_breaks_one_down_as_the_stats_api_does(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    send_custom_event(env, &ann, FIREFOX, "Signup", json!({ "plan": "pro", "source": "ad" })).await;
    send_custom_event(env, &ann, FIREFOX, "Signup", json!({ "plan": "pro" })).await;
    send_custom_event(env, &ann, SAFARI, "Signup", json!({ "plan": "free" })).await;
    send_custom_event(env, &ann, SAFARI, "Click", json!({ "button": "buy" })).await;
    let (status, page) = console_properties(env, &ann, &site_id, "period=day&event=Signup").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"]["keys"], json!(["plan", "source"]));
    assert_eq!(page["data"]["property"], "plan");
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let path = format!(
        "/stats/breakdown?site_id={site_id}&period=day&property=event:props:plan&metrics=visitors,events&filters=event:name%3D%3DSignup"
    );
    let (status, api) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{api}");
    let theirs: Vec<Value> = api["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({ "value": r["plan"], "visitors": r["visitors"], "events": r["events"] }))
        .collect();
    assert_eq!(page["data"]["rows"], json!(theirs));
    assert_eq!(theirs.len(), 2, "{api}");
}

async fn an_event_without_properties_lists_none(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    send_custom_event(env, &ann, FIREFOX, "Signup", json!({})).await;
    let (status, page) = console_properties(env, &ann, &site_id, "period=day&event=Signup").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!((&page["data"]["keys"], &page["data"]["rows"]), (&json!([]), &json!([])));
}

async fn the_properties_need_an_event_named_in_a_validation_error(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let (status, refused) = console_properties(env, &ann, &site_id, "period=day").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("event"), "{refused}");
}

async fn the_properties_of_another_teams_website_are_forbidden(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    let site_id = site_with_visits(env, &ann).await;
    let (status, refused) = console_properties(env, &bob, &site_id, "period=day&event=Signup").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let response =
        env.request(Method::GET, &format!("/api/v1/websites/{site_id}/properties?event=Signup")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn the_website_page_shows_a_revenue_goals_revenue_as_the_stats_api_does(env: &TestEnv) {
    let ann = env.user("ann").await;
    let site_id = site_with_visits(env, &ann).await;
    let path = format!("/api/v1/websites/{site_id}/goals");
    let body = json!({ "event_name": "Purchase", "currency": "EUR" });
    let (status, goal) = env.session_json(Method::POST, &path, &ann.session, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{goal}");
    let domain = format!("stats-{}.example", &ann.user_id[..8]);
    for (agent, amount) in [(FIREFOX, "10.50"), (SAFARI, "4.50")] {
        let event = json!({ "domain": domain, "name": "Purchase", "url": format!("https://{domain}/"), "revenue": { "amount": amount, "currency": "EUR" } });
        let response =
            env.request(Method::POST, "/api/event").header("user-agent", agent).json(&event).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let path = format!(
        "/stats/breakdown?site_id={site_id}&period=day&property=event:goal&metrics=visitors,events,conversion_rate,total_revenue,average_revenue"
    );
    let (status, api) = env.api(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{api}");
    let (_, page) = console_stats(env, &ann, &site_id, "period=day").await;
    let (ours, theirs) = (&page["data"]["goals"][0], &api["data"]["results"][0]);
    for metric in ["visitors", "events", "conversion_rate", "total_revenue", "average_revenue"] {
        assert_eq!(ours[metric], theirs[metric], "{metric}");
    }
    assert_eq!(ours["total_revenue"]["value"], 15.0, "{ours}");
}

const HTTPS_PUBLIC_URL: GatewayFlags = &[("--public-url", "https://zenovay.example.com")];

both_modes!(
    a_website_added_with_a_session_is_held_to_the_external_apis_rules,
    an_address_with_no_page_is_a_console_page_for_a_browser_and_the_apis_404_for_a_program,
    the_dashboard_apis_answers_are_not_kept_by_caches,
    the_property_names_most_used_come_first,
    the_website_page_filters_by_a_value_as_written,
    the_website_page_reads_a_filter_on_not_set_as_the_stats_api_does,
    the_website_page_shows_a_revenue_goals_revenue_as_the_stats_api_does,
    the_website_page_lists_a_custom_events_properties_and_breaks_one_down_as_the_stats_api_does,
    an_event_without_properties_lists_none,
    the_properties_need_an_event_named_in_a_validation_error,
    the_properties_of_another_teams_website_are_forbidden,
    a_member_adds_a_goal_with_a_session_and_deletes_it,
    a_goal_without_an_event_name_or_page_path_is_a_validation_error_naming_the_field,
    a_goal_added_with_the_session_cookie_needs_the_csrf_token,
    the_goals_of_another_teams_website_can_be_neither_added_nor_deleted,
    the_goal_endpoints_need_a_session,
    the_website_page_goals_and_custom_events_equal_the_stats_api_breakdowns,
    a_member_adds_a_website_with_a_session_and_finds_it_in_the_list,
    a_website_is_not_added_to_a_team_i_do_not_belong_to,
    a_bad_website_domain_is_a_validation_error_naming_the_field,
    the_website_endpoints_need_a_session,
    a_website_added_with_the_session_cookie_needs_the_csrf_token,
    a_plain_member_renames_rezones_and_deletes_a_website_with_a_session,
    another_teams_website_can_be_neither_changed_nor_deleted_with_a_session,
    a_bad_website_change_is_a_validation_error_naming_the_field,
    a_website_change_needs_a_session_and_with_the_cookie_the_csrf_token,
    the_root_sends_a_visitor_to_log_in_without_a_session_and_to_websites_with_one,
    a_console_page_carries_the_csrf_token_and_refuses_framing_and_foreign_scripts,
    the_console_assets_are_cached_for_good_under_their_content_hash,
    the_session_cookie_is_not_secure_without_an_https_public_url,
    the_website_page_figures_equal_the_external_aggregate,
    the_website_page_breakdowns_follow_a_filter,
    a_custom_period_on_the_website_page_equals_the_external_aggregate_for_the_same_days,
    a_custom_period_of_one_day_is_charted_by_the_hour,
    a_custom_period_without_two_ordered_days_is_a_validation_error_naming_the_date,
    a_free_team_sees_its_website_page,
    the_website_page_of_another_team_is_forbidden,
    the_website_page_of_an_unknown_website_is_not_found,
    an_unknown_period_is_a_validation_error_naming_the_field,
    a_bad_website_page_filter_is_a_validation_error_naming_the_field,
    the_website_page_counts_the_visitors_right_now,
    the_visitors_right_now_of_another_team_are_forbidden,
    the_team_usage_shows_the_plan_limits_and_each_members_requests_this_month,
    a_plain_member_cannot_read_the_team_usage,
    the_oauth_sign_in_page_has_the_console_look_and_policy,
    the_oauth_consent_form_may_lead_only_here_and_to_the_clients_redirect_origin;
    gateway HTTPS_PUBLIC_URL => the_session_cookie_is_secure_behind_an_https_public_url
);

//! The walking skeleton's scenario (issue 2): sign up, get a key, call the API.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, TestUser, assert_error, pro_site};

async fn hello_world(env: &TestEnv) {
    let ann = env.user("ann").await;

    // Free plan: no API keys.
    let (status, body) = env
        .session_json(
            Method::POST,
            "/api/v1/account/api-keys",
            &ann.session,
            Some(json!({ "name": "ci", "permissions": "full", "teams": "all" })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "API_PAID_PLAN_REQUIRED");

    env.set_plan(&ann.team_id, "pro").await;
    let (_, teams) = env.session_json(Method::GET, "/api/v1/teams", &ann.session, None).await;
    assert_eq!(teams["data"][0]["plan"], "pro");
    assert_eq!(teams["data"][0]["role"], "owner");
    assert_eq!(teams["data"][0]["api_key_policy"], "all_members");

    let (key, record) = env.create_key(&ann, json!({ "name": "  ci  ", "permissions": "full", "teams": "all" })).await;
    assert!(key.starts_with("zv_"));
    assert_eq!(record["name"], "ci");
    assert_eq!(record["permissions"], "full");
    assert_eq!(record["teams"], "all");
    let hint = record["hint"].as_str().unwrap();
    assert!(hint.starts_with(&key[..7]) && hint.ends_with(&key[key.len() - 4..]));
    assert!(!record.to_string().contains(&key), "the record never holds the secret");

    // The hello-world call: no websites yet.
    let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["x-ratelimit-limit"], "30");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"], json!([]));
    assert!(body["timestamp"].as_str().is_some());

    // Create one, through X-API-Key this time, and see it listed.
    let response = env
        .request(Method::POST, "/api/external/v1/websites")
        .header("x-api-key", &key)
        .json(&json!({ "team_id": ann.team_id, "domain": "https://Www.Example.com/home", "name": "Example", "timezone": "Europe/Paris" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let site = &created["data"];
    assert_eq!(site["domain"], "www.example.com");
    assert_eq!(site["team_id"], ann.team_id.as_str());
    assert_eq!(site["timezone"], "Europe/Paris");
    for field in ["id", "name", "tracking_code", "created_at"] {
        assert!(site[field].as_str().is_some_and(|v| !v.is_empty()), "{field} missing: {site}");
    }
    let (status, list) = env.api(Method::GET, "/websites", &key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([site]));
    let (status, one) = env.api(Method::GET, &format!("/websites/{}", site["id"].as_str().unwrap()), &key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one["data"], site);
}

/// Ann (Pro) with a full key and a website: the user, the key and the website's id.
async fn ann_with_a_website(env: &TestEnv) -> (TestUser, String, String) {
    let (ann, key, _, site) = pro_site(env, "hello").await;
    (ann, key, site["data"]["id"].as_str().unwrap().to_owned())
}

async fn another_users_key_can_neither_see_nor_touch_a_website(env: &TestEnv) {
    let (ann, _, site_id) = ann_with_a_website(env).await;
    // Another user's key cannot see or touch Ann's website.
    let bob = env.user("bob").await;
    env.set_plan(&bob.team_id, "scale").await;
    let (bob_key, _) =
        env.create_key(&bob, json!({ "name": "bob", "permissions": ["read", "write"], "teams": [bob.team_id] })).await;
    let (status, body) = env.api(Method::GET, "/websites", &bob_key, None).await;
    assert_eq!((status, &body["data"]), (StatusCode::OK, &json!([])));
    let (status, body) = env.api(Method::GET, &format!("/websites/{}", site_id), &bob_key, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = env
        .api(
            Method::POST,
            "/websites",
            &bob_key,
            Some(json!({ "team_id": ann.team_id, "domain": "bob.example", "name": "x" })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
}

async fn missing_malformed_mistyped_and_unknown_keys_are_a_401_with_a_challenge(env: &TestEnv) {
    let (_, key, _) = ann_with_a_website(env).await;
    // Missing, malformed, mistyped and unknown keys: 401 with WWW-Authenticate.
    let mistyped = format!("{}{}", &key[..10], if &key[10..11] == "a" { "b" } else { "a" }) + &key[11..];
    let unknown = gateway::apikey::ApiKeySecret::generate();
    for credential in [
        None,
        Some("Bearer nonsense"),
        Some(&*format!("Bearer {mistyped}")),
        Some(&*format!("Bearer {}", unknown.expose())),
    ] {
        let mut request = env.request(Method::GET, "/api/external/v1/websites");
        if let Some(value) = credential {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"].to_str().unwrap().split(' ').next(), Some("Bearer"));
        assert!(response.headers().contains_key("x-request-id"));
        let (status, body) = crate::harness::into_json(response).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
}

async fn an_unknown_key_with_a_bad_body_is_a_401(env: &TestEnv) {
    let unknown = gateway::apikey::ApiKeySecret::generate();
    // Authentication comes first: an unknown key with a bad body is a 401.
    let (status, body) = env.api(Method::POST, "/websites", unknown.expose(), Some(json!({ "colour": 1 }))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn a_malformed_website_body_is_a_400_naming_the_field_and_creates_nothing(env: &TestEnv) {
    let (ann, key, _) = ann_with_a_website(env).await;
    // Malformed bodies: 400 naming the field, nothing created.
    for (body, field) in [
        (json!({ "team_id": ann.team_id, "domain": "x.example", "name": "x", "colour": "red" }), "colour"),
        (json!({ "team_id": 42, "domain": "x.example", "name": "x" }), "team_id"),
        (json!({ "team_id": ann.team_id, "name": "x" }), "domain"),
        (json!({ "team_id": ann.team_id, "domain": "not a domain", "name": "x" }), "domain"),
        (json!({ "team_id": ann.team_id, "domain": "y.example", "name": "x", "timezone": "Mars/Base" }), "timezone"),
    ] {
        let (status, error) = env.api(Method::POST, "/websites", &key, Some(body)).await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(error["error"]["message"].as_str().unwrap().contains(field), "{error}");
    }
    // A field left out, and a name holding a tab, are refused in words about that field.
    for (body, message) in [
        (json!({ "team_id": ann.team_id, "name": "x" }), "domain: is required"),
        (
            json!({ "team_id": ann.team_id, "domain": "z.example", "name": "a\tb" }),
            "name: must not contain control characters",
        ),
    ] {
        let (status, error) = env.api(Method::POST, "/websites", &key, Some(body)).await;
        assert_eq!((status, error["error"]["message"].as_str()), (StatusCode::BAD_REQUEST, Some(message)), "{error}");
    }
    let response = env
        .request(Method::POST, "/api/external/v1/websites")
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let (_, list) = env.api(Method::GET, "/websites", &key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn a_revoked_key_stops_at_once_and_looks_unknown(env: &TestEnv) {
    let (ann, key, _) = ann_with_a_website(env).await;
    let unknown = gateway::apikey::ApiKeySecret::generate();
    // Listing keys never shows a secret; revoking makes the key stop working at once.
    let (status, keys) = env.session_json(Method::GET, "/api/v1/account/api-keys", &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    assert!(!keys.to_string().contains(&key));
    assert!(keys["data"][0]["last_used_at"].as_str().is_some(), "{keys}");
    let key_id = keys["data"][0]["id"].as_str().unwrap();
    let (status, revoked) =
        env.session_json(Method::DELETE, &format!("/api/v1/account/api-keys/{key_id}"), &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["data"]["revoked_at"].as_str().is_some());
    let (status, body) = env.api(Method::GET, "/websites", &key, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, unknown_body) = env.api(Method::GET, "/websites", unknown.expose(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], unknown_body["error"]["message"], "revoked and unknown look alike");
}

async fn unknown_routes_answer_in_the_envelope(env: &TestEnv) {
    // Unknown routes and methods answer in the envelope too.
    let (status, body) =
        crate::harness::into_json(env.request(Method::GET, "/api/external/v1/nope").send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn a_signup_with_a_taken_email_is_a_conflict(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, body) = env
        .session_json(
            Method::POST,
            "/api/v1/auth/signup",
            "",
            Some(json!({ "email": ann.email, "password": "another password", "name": "A" })),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
}

async fn login(env: &TestEnv, email: &str, password: &str) -> (StatusCode, Value) {
    env.session_json(Method::POST, "/api/v1/auth/login", "", Some(json!({ "email": email, "password": password })))
        .await
}

async fn a_login_ignores_the_emails_case(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, ok) = login(env, &ann.email.to_uppercase(), "correct horse battery").await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let session = ok["data"]["session_token"].as_str().unwrap();
    let (status, me) = env.session_json(Method::GET, "/api/v1/me", session, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["id"], ann.user_id.as_str());
}

async fn a_wrong_password_and_an_unknown_email_look_alike(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (wrong_status, wrong) = login(env, &ann.email, "wrong password!").await;
    let (unknown_status, unknown) = login(env, "nobody@example.com", "wrong password!").await;
    assert_error(wrong_status, &wrong, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!((wrong_status, &wrong["error"]["message"]), (unknown_status, &unknown["error"]["message"]));
}

async fn a_new_team_is_owned_by_its_creator_on_the_free_plan(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, team) =
        env.session_json(Method::POST, "/api/v1/teams", &ann.session, Some(json!({ "name": "Acme" }))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((team["data"]["role"].as_str(), team["data"]["plan"].as_str()), (Some("owner"), Some("free")));
    let (_, teams) = env.session_json(Method::GET, "/api/v1/teams", &ann.session, None).await;
    assert_eq!(teams["data"].as_array().unwrap().len(), 2);
}

async fn set_plan_as_operator(env: &TestEnv, token: &str, team_id: &str, plan: &str) -> (StatusCode, Value) {
    let request = env.request(Method::PUT, &format!("/api/v1/teams/{team_id}/plan")).header("x-operator-token", token);
    crate::harness::into_json(request.json(&json!({ "plan": plan })).send().await.unwrap()).await
}

async fn the_operator_api_needs_its_token_a_known_team_and_a_known_plan(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, body) = set_plan_as_operator(env, "wrong-token-wrong-token", &ann.team_id, "pro").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, body) = set_plan_as_operator(env, crate::harness::OPERATOR_TOKEN, "no-such-team", "pro").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, body) = set_plan_as_operator(env, crate::harness::OPERATOR_TOKEN, &ann.team_id, "platinum").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    // Without the token nothing about the body is said; with it, overrides are an object.
    let (status, body) = set_plan_as_operator(env, "wrong-token-wrong-token", &ann.team_id, "platinum").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let request = env
        .request(Method::PUT, &format!("/api/v1/teams/{}/plan", ann.team_id))
        .header("x-operator-token", crate::harness::OPERATOR_TOKEN)
        .json(&json!({ "plan": "pro", "overrides": [77, 7777, 7] }));
    let (status, body) = crate::harness::into_json(request.send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["error"]["message"], "overrides: invalid type: sequence, expected an object", "{body}");
}

async fn a_logout_ends_the_session(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, _) = env.session_json(Method::POST, "/api/v1/auth/logout", &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

/// The README's path: the operator command stands in for billing.
async fn admin_set_plan(env: &TestEnv) {
    let ann = env.user("ann").await;
    let out = env.admin(&["set-plan", &ann.team_id, "scale", "--requests-per-minute", "7"]);
    assert!(out.contains("plan scale") && out.contains("7 requests/minute"), "{out}");
    let (_, teams) = env.session_json(Method::GET, "/api/v1/teams", &ann.session, None).await;
    assert_eq!(teams["data"][0]["plan"], "scale");
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-limit"], "7");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "6");
    // In the team's audit log, as the operator API's change is.
    let path = format!("/api/v1/teams/{}/audit-log", ann.team_id);
    let (_, log) = env.session_json(Method::GET, &path, &ann.session, None).await;
    let changed = log["data"].as_array().unwrap().iter().find(|e| e["action"] == "team.plan_changed").cloned();
    let changed = changed.unwrap_or_else(|| panic!("no team.plan_changed in {log}"));
    assert_eq!((&changed["actor_id"], &changed["details"]["plan"]), (&json!("operator"), &json!("scale")), "{changed}");
    assert_eq!(changed["details"]["overrides"]["requests_per_minute"], 7, "{changed}");
}

both_modes!(
    hello_world,
    another_users_key_can_neither_see_nor_touch_a_website,
    missing_malformed_mistyped_and_unknown_keys_are_a_401_with_a_challenge,
    an_unknown_key_with_a_bad_body_is_a_401,
    a_malformed_website_body_is_a_400_naming_the_field_and_creates_nothing,
    a_revoked_key_stops_at_once_and_looks_unknown,
    unknown_routes_answer_in_the_envelope,
    a_signup_with_a_taken_email_is_a_conflict,
    a_login_ignores_the_emails_case,
    a_wrong_password_and_an_unknown_email_look_alike,
    a_new_team_is_owned_by_its_creator_on_the_free_plan,
    the_operator_api_needs_its_token_a_known_team_and_a_known_plan,
    a_logout_ends_the_session,
    admin_set_plan
);

#[tokio::test]
async fn demo_prints_a_working_key_and_curl_line() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zenovay"))
        .args(["--demo", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("ZENOVAY_DATABASE_URL")
        .env_remove("ZENOVAY_REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.starts_with("zenovay all listening on"))
        .collect();
    let curl = lines.iter().find_map(|l| l.strip_prefix("try: curl -H 'Authorization: Bearer ")).expect("a curl line");
    let (key, url) = curl.split_once("' '").unwrap();
    let url = url.trim_end_matches('\'');
    assert!(key.starts_with("zv_"), "{lines:?}");
    let http = reqwest::Client::new();
    let response = http.get(url).bearer_auth(key).send().await.unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    // The console's line: its log-in page, and an e-mail and password that log in there.
    let console = lines.iter().find_map(|l| l.strip_prefix("console: ")).expect("a console line");
    let (login_page, credentials) = console.split_once(" (log in as ").unwrap();
    let (email, password) = credentials.trim_end_matches(')').split_once(" with password ").unwrap();
    let page = http.get(login_page).send().await.unwrap();
    let page_status = page.status();
    let page_text = page.text().await.unwrap();
    let base = login_page.trim_end_matches("/login");
    let login = json!({ "email": email, "password": password });
    let signed_in = http.post(format!("{base}/api/v1/auth/login")).json(&login).send().await.unwrap().status();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["visitors"].as_u64().unwrap() > 1000, "{body}");
    assert_eq!(body["data"]["series"].as_array().unwrap().len(), 30);
    assert_eq!(page_status, StatusCode::OK);
    assert!(page_text.contains("Log in"), "{page_text}");
    assert_eq!(signed_in, StatusCode::OK, "the printed e-mail and password log in");
}

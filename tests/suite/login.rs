//! Sign-in and sign-up abuse resistance and session management (README.md, "Sign-in
//! protection" and "Sessions"), through the gateway in both modes, and identity's hashing bound
//! and shared counters on each backend.

use std::time::Duration;

use common::ErrorCode;
use common::db::Backend;
use identity::{Identity, KeyHasher, Limit, LoginLimits};
use reqwest::header::{RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::harness::{TestEnv, TestUser, assert_error, into_json, on_each_backend};

const PASSWORD: &str = "correct horse battery";

async fn login_at(env: &TestEnv, base: &str, email: &str, password: &str) -> Response {
    env.http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn login(env: &TestEnv, email: &str, password: &str) -> Response {
    login_at(env, env.base(), email, password).await
}

async fn signup(env: &TestEnv, email: &str, name: &str) -> Response {
    env.request(Method::POST, "/api/v1/auth/signup")
        .json(&json!({ "email": email, "password": PASSWORD, "name": name }))
        .send()
        .await
        .unwrap()
}

/// A 429 `RATE_LIMIT_EXCEEDED` in the envelope with a `Retry-After` of at least a second, whose
/// message says the same wait in words.
async fn assert_throttled(response: Response) {
    let retry_after = response.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let (status, body) = into_json(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED");
    let secs = retry_after.unwrap_or_else(|| panic!("a Retry-After: {body}"));
    assert!(secs >= 1, "Retry-After: {secs}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.ends_with(&format!("try again in {}", common::time::wait_in_words(secs))), "{message}");
}

async fn wrong_password_refused(env: &TestEnv, base: &str, email: &str) {
    let (status, body) = into_json(login_at(env, base, email, "wrong password!").await).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn ten_wrong_passwords_lock_the_account_even_for_the_right_one(env: &TestEnv) {
    let ann = env.user("ann").await;
    for _ in 0..10 {
        wrong_password_refused(env, env.base(), &ann.email).await;
    }
    assert_throttled(login(env, &ann.email, PASSWORD).await).await;
    // The session held before stays good: only new logins are throttled.
    let (status, _) = env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_successful_login_clears_the_accounts_failures(env: &TestEnv) {
    let ann = env.user("ann").await;
    for _ in 0..2 {
        for _ in 0..9 {
            wrong_password_refused(env, env.base(), &ann.email).await;
        }
        assert_eq!(login(env, &ann.email, PASSWORD).await.status(), StatusCode::OK);
    }
}

async fn failed_logins_from_one_address_are_throttled_over_every_account(env: &TestEnv) {
    let ann = env.user("ann").await;
    // One failure each on 100 accounts that do not exist, a few at a time.
    for batch in 0..20 {
        let attempts = (0..5).map(|i| async move {
            let email = format!("nobody-{batch}-{i}@example.com");
            wrong_password_refused(env, env.base(), &email).await;
        });
        futures::future::join_all(attempts).await;
    }
    assert_throttled(login(env, &ann.email, PASSWORD).await).await;
}

async fn signups_from_one_address_are_throttled(env: &TestEnv) {
    for i in 0..30 {
        let response = signup(env, &format!("new-{i}-{}@example.com", uuid::Uuid::new_v4().simple()), "New").await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    assert_throttled(signup(env, "one-too-many@example.com", "New").await).await;
}

async fn an_email_with_characters_no_address_has_is_refused(env: &TestEnv) {
    for email in
        ["<s>@x.y", "a b@example.com", "\"q\"@example.com", "a\0b@example.com", "a\u{7}@example.com", "a@b@c.de"]
    {
        let (status, body) = into_json(signup(env, email, "Ann").await).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(body["error"]["message"].as_str().unwrap().contains("email"), "{email:?}: {body}");
    }
}

async fn a_nul_in_the_login_email_is_a_validation_error(env: &TestEnv) {
    let (status, body) = into_json(login(env, "ann\0@example.com", PASSWORD).await).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(body["error"]["message"].as_str().unwrap().contains("email"), "{body}");
}

async fn a_control_character_in_a_name_is_refused(env: &TestEnv) {
    for name in ["A\0nn", "A\u{7}nn", "\u{1b}[31mAnn", "Ann\u{7f}"] {
        let email = format!("ctl-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, body) = into_json(signup(env, &email, name).await).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(body["error"]["message"].as_str().unwrap().contains("name"), "{name:?}: {body}");
    }
    let ann = env.user("ann").await;
    let (status, body) =
        env.session_json(Method::POST, "/api/v1/teams", &ann.session, Some(json!({ "name": "Ac\0me" }))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(body["error"]["message"].as_str().unwrap().contains("name"), "{body}");
}

/// Ann's second session, opened by a login with a user agent of its own.
async fn second_session(env: &TestEnv, ann: &TestUser) -> String {
    let response = env
        .request(Method::POST, "/api/v1/auth/login")
        .header("user-agent", "second-browser/1.0")
        .json(&json!({ "email": ann.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let (status, body) = into_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["session_token"].as_str().unwrap().to_owned()
}

async fn sessions(env: &TestEnv, session: &str) -> Vec<Value> {
    let (status, body) = env.session_json(Method::GET, "/api/v1/account/sessions", session, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

async fn a_user_lists_their_sessions_with_the_current_one_marked(env: &TestEnv) {
    let ann = env.user("ann").await;
    let second = second_session(env, &ann).await;
    let listed = sessions(env, &second).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed:?}");
    assert_eq!(current[0]["user_agent"], "second-browser/1.0");
    for session in &listed {
        for field in ["id", "created_at", "expires_at"] {
            assert!(session[field].is_string(), "{field}: {session}");
        }
    }
    // Neither a token nor its digest is ever shown.
    let text = serde_json::to_string(&listed).unwrap();
    for token in [&ann.session, &second] {
        assert!(!text.contains(token.as_str()) && !text.contains(&sha256_hex(token)[..16]), "{text}");
    }
    // From the first session, the other one is current.
    let from_first = sessions(env, &ann.session).await;
    let first_current = from_first.iter().find(|s| s["current"] == true).unwrap();
    assert_ne!(first_current["id"], current[0]["id"]);
}

async fn a_revoked_session_stops_working_at_once(env: &TestEnv) {
    let ann = env.user("ann").await;
    let second = second_session(env, &ann).await;
    let other = sessions(env, &second).await.into_iter().find(|s| s["current"] == false).unwrap();
    let path = format!("/api/v1/account/sessions/{}", other["id"].as_str().unwrap());
    let (status, body) = env.session_json(Method::DELETE, &path, &second, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(env.session_json(Method::GET, "/api/v1/me", &second, None).await.0, StatusCode::OK);
    assert_eq!(sessions(env, &second).await.len(), 1);
    // Revoking it again: it is gone.
    let (status, body) = env.session_json(Method::DELETE, &path, &second, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn revoking_the_current_session_logs_out(env: &TestEnv) {
    let ann = env.user("ann").await;
    let listed = sessions(env, &ann.session).await;
    let id = listed[0]["id"].as_str().unwrap();
    let response = env
        .request(Method::DELETE, &format!("/api/v1/account/sessions/{id}"))
        .bearer_auth(&ann.session)
        .send()
        .await
        .unwrap();
    let cookie = response.headers().get(SET_COOKIE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, body) = into_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["current"], true);
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert_eq!(env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await.0, StatusCode::UNAUTHORIZED);
}

async fn another_users_session_cannot_be_revoked(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let id = sessions(env, &ann.session).await[0]["id"].as_str().unwrap().to_owned();
    let (status, body) =
        env.session_json(Method::DELETE, &format!("/api/v1/account/sessions/{id}"), &bob.session, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    assert_eq!(env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await.0, StatusCode::OK);
}

async fn change_password(env: &TestEnv, session: &str, current: &str, new: &str) -> (StatusCode, Value) {
    let body = json!({ "current_password": current, "new_password": new });
    env.session_json(Method::PUT, "/api/v1/account/password", session, Some(body)).await
}

async fn a_changed_password_logs_in_and_the_old_one_no_longer_does(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, body) = change_password(env, &ann.session, PASSWORD, "a brand new secret").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wrong_password_refused(env, env.base(), &ann.email).await;
    let (status, body) = into_json(login(env, &ann.email, "a brand new secret").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn changing_the_password_ends_the_users_other_sessions_and_keeps_this_one(env: &TestEnv) {
    let ann = env.user("ann").await;
    let second = second_session(env, &ann).await;
    let bob = env.user("bob").await;
    let (status, body) = change_password(env, &second, PASSWORD, "a brand new secret").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["sessions_ended"], 1, "{body}");
    let (status, body) = env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(env.session_json(Method::GET, "/api/v1/me", &second, None).await.0, StatusCode::OK);
    assert_eq!(env.session_json(Method::GET, "/api/v1/me", &bob.session, None).await.0, StatusCode::OK);
}

async fn a_wrong_current_password_changes_nothing_and_counts_as_a_failed_login(env: &TestEnv) {
    let ann = env.user("ann").await;
    let second = second_session(env, &ann).await;
    for _ in 0..10 {
        let (status, body) = change_password(env, &second, "not the password", "a brand new secret").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(body["error"]["message"], "current_password: is not your current password");
    }
    // Both sessions still work: a wrong password is no reason to end one.
    assert_eq!(env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await.0, StatusCode::OK);
    let (status, body) = change_password(env, &second, PASSWORD, "a brand new secret").await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED");
    assert_throttled(login(env, &ann.email, PASSWORD).await).await;
}

async fn a_new_password_is_held_to_the_sign_up_rules_before_the_current_one_is_tried(env: &TestEnv) {
    let ann = env.user("ann").await;
    let (status, body) = change_password(env, &ann.session, "not the password", "short").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(body["error"]["message"], "new_password: must be 8–128 characters");
    let (status, body) = into_json(login(env, &ann.email, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_password_change_needs_a_session(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    let body = json!({ "current_password": PASSWORD, "new_password": "a brand new secret" });
    let response =
        env.request(Method::PUT, "/api/v1/account/password").bearer_auth(&key).json(&body).send().await.unwrap();
    let (status, body) = into_json(response).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

both_modes!(
    a_changed_password_logs_in_and_the_old_one_no_longer_does,
    changing_the_password_ends_the_users_other_sessions_and_keeps_this_one,
    a_wrong_current_password_changes_nothing_and_counts_as_a_failed_login,
    a_new_password_is_held_to_the_sign_up_rules_before_the_current_one_is_tried,
    a_password_change_needs_a_session,
    ten_wrong_passwords_lock_the_account_even_for_the_right_one,
    a_successful_login_clears_the_accounts_failures,
    failed_logins_from_one_address_are_throttled_over_every_account,
    signups_from_one_address_are_throttled,
    an_email_with_characters_no_address_has_is_refused,
    a_nul_in_the_login_email_is_a_validation_error,
    a_control_character_in_a_name_is_refused,
    a_user_lists_their_sessions_with_the_current_one_marked,
    a_revoked_session_stops_working_at_once,
    revoking_the_current_session_logs_out,
    another_users_session_cannot_be_revoked
);

#[tokio::test]
async fn the_account_limit_holds_across_gateways() {
    let env = TestEnv::split(2).await;
    let ann = env.user("ann").await;
    for i in 0..10 {
        wrong_password_refused(&env, &env.gateways[i % 2], &ann.email).await;
    }
    for base in &env.gateways {
        assert_throttled(login_at(&env, base, &ann.email, PASSWORD).await).await;
    }
}

async fn identity_on(backend: &Backend, limits: LoginLimits) -> Identity {
    let hasher = KeyHasher::parse("1:login-test-secret-0123456789abcdef").unwrap();
    Identity::open(backend, hasher, None).await.unwrap().with_login_limits(limits)
}

fn client(address: &str) -> identity::service::Client {
    identity::service::Client::parse(address, "test").unwrap()
}

#[tokio::test]
async fn two_identity_replicas_count_the_same_failures() {
    on_each_backend(|backend| async move {
        let limits = LoginLimits {
            failures_per_account: Limit { attempts: 3, window: Duration::from_secs(900) },
            ..LoginLimits::default()
        };
        let replicas = [identity_on(&backend, limits.clone()).await, identity_on(&backend, limits).await];
        replicas[0].signup("ann@example.com", PASSWORD, "Ann").await.unwrap();
        for i in 0..3 {
            let refused = replicas[i % 2].login(&client("192.0.2.1"), "ann@example.com", "wrong!").await.unwrap_err();
            assert_eq!(refused.error.code, ErrorCode::Unauthorized);
        }
        let before = replicas[1].hashing_stats().verifications;
        let refused = replicas[1].login(&client("192.0.2.1"), "ann@example.com", PASSWORD).await.unwrap_err();
        assert_eq!(refused.error.code, ErrorCode::RateLimitExceeded);
        assert!(refused.retry_after_secs.is_some_and(|secs| (1..=900).contains(&secs)), "{refused:?}");
        assert_eq!(replicas[1].hashing_stats().verifications, before, "a throttled attempt hashes nothing");
    })
    .await;
}

#[tokio::test]
async fn concurrent_logins_never_run_more_hashes_than_the_bound() {
    on_each_backend(|backend| async move {
        // Concurrent attempts on one account count as attempts until they succeed.
        let many = Limit { attempts: 1000, window: Duration::from_secs(900) };
        let limits = LoginLimits { concurrent_hashes: 2, failures_per_account: many, ..LoginLimits::default() };
        let identity = identity_on(&backend, limits).await;
        identity.signup("ann@example.com", PASSWORD, "Ann").await.unwrap();
        let logins = (0..16).map(|i| {
            let identity = identity.clone();
            tokio::spawn(
                async move { identity.login(&client(&format!("192.0.2.{i}")), "ann@example.com", PASSWORD).await },
            )
        });
        for login in futures::future::join_all(logins).await {
            match login.unwrap() {
                Ok(_) => {}
                Err(refused) => {
                    assert_eq!(refused.error.code, ErrorCode::ServiceUnavailable, "{refused:?}");
                    assert_eq!(refused.retry_after_secs, Some(1));
                }
            }
        }
        let stats = identity.hashing_stats();
        assert!((1..=2).contains(&stats.high_water), "{stats:?}");
        assert!(stats.runs >= 2, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_email_costs_one_argon2_verification_like_a_known_one() {
    on_each_backend(|backend| async move {
        let identity = identity_on(&backend, LoginLimits::default()).await;
        identity.signup("ann@example.com", PASSWORD, "Ann").await.unwrap();
        for email in ["ann@example.com", "nobody@example.com"] {
            let before = identity.hashing_stats().verifications;
            let refused = identity.login(&client("192.0.2.1"), email, "wrong password").await.unwrap_err();
            assert_eq!(refused.error.code, ErrorCode::Unauthorized);
            assert_eq!(identity.hashing_stats().verifications, before + 1, "{email}");
        }
    })
    .await;
}

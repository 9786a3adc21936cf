//! API keys, access rules and teams (docs/behaviour.md), through the gateway, in both modes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{
    GatewayFlags, KEY_HASH_SECRETS, TcpProxy, TestDatabase, TestEnv, TestUser, add_member, assert_error, header,
    new_team,
};

async fn key_attempt(env: &TestEnv, user: &TestUser, body: Value) -> (StatusCode, Value) {
    env.session_json(Method::POST, "/api/v1/account/api-keys", &user.session, Some(body)).await
}

async fn key_count(env: &TestEnv, user: &TestUser) -> usize {
    let (_, keys) = env.session_json(Method::GET, "/api/v1/account/api-keys", &user.session, None).await;
    keys["data"].as_array().unwrap().len()
}

async fn set_policy(env: &TestEnv, actor: &TestUser, team_id: &str, policy: &str) -> (StatusCode, Value) {
    env.session_json(
        Method::PUT,
        &format!("/api/v1/teams/{team_id}/api-key-policy"),
        &actor.session,
        Some(json!({ "policy": policy })),
    )
    .await
}

async fn creation_rules(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let bad = [
        json!({ "name": "", "permissions": "full", "teams": "all" }),
        json!({ "name": "   ", "permissions": "full", "teams": "all" }),
        json!({ "name": "x".repeat(65), "permissions": "full", "teams": "all" }),
        json!({ "name": "k", "permissions": [], "teams": "all" }),
        json!({ "name": "k", "permissions": ["read", "delete"], "teams": "all" }),
        json!({ "name": "k", "permissions": "everything", "teams": "all" }),
        json!({ "name": "k", "permissions": "full", "teams": [] }),
        json!({ "name": "k", "permissions": "full", "teams": "some" }),
        json!({ "name": "k", "permissions": "full" }),
        json!({ "name": "k", "permissions": "full", "teams": "all", "expires": "never" }),
    ];
    for body in bad {
        let (status, error) = key_attempt(env, &ann, body.clone()).await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
    for (name, permissions) in
        [("x".repeat(64), json!("full")), ("w".into(), json!(["write"])), ("a".into(), json!(["admin"]))]
    {
        let (status, body) =
            key_attempt(env, &ann, json!({ "name": name, "permissions": permissions, "teams": "all" })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) =
        key_attempt(env, &ann, json!({ "name": "k", "permissions": "full", "teams": ["not-my-team"] })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");

    // Admin scope only where the user is owner or admin; nothing is made otherwise.
    let bob = env.user("bob").await;
    add_member(env, &bob, &bob.team_id, &ann, "member").await;
    env.set_plan(&bob.team_id, "pro").await;
    let before = key_count(env, &ann).await;
    for permissions in [json!(["admin"]), json!(["read", "admin"])] {
        let (status, body) =
            key_attempt(env, &ann, json!({ "name": "k", "permissions": permissions, "teams": [bob.team_id] })).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    assert_eq!(key_count(env, &ann).await, before);
    let (status, _) =
        key_attempt(env, &ann, json!({ "name": "k", "permissions": ["read"], "teams": [bob.team_id] })).await;
    assert_eq!(status, StatusCode::CREATED);

    // Team API-key policy.
    let (status, _) = set_policy(env, &bob, &bob.team_id, "admins_only").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        key_attempt(env, &ann, json!({ "name": "k", "permissions": ["read"], "teams": [bob.team_id] })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "KEY_POLICY_FORBIDS");
    let (status, body) = set_policy(env, &ann, &bob.team_id, "all_members").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _) = set_policy(env, &bob, &bob.team_id, "nobody").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        key_attempt(env, &bob, json!({ "name": "k", "permissions": "full", "teams": [bob.team_id] })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "KEY_POLICY_FORBIDS");
    let (status, body) = set_policy(env, &bob, &bob.team_id, "whoever").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

async fn scopes(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "scale").await;
    let key = |permissions: Value| {
        let ann = &ann;
        async move { env.create_key(ann, json!({ "name": "k", "permissions": permissions, "teams": "all" })).await.0 }
    };
    let (read, write, admin, full) = (
        key(json!(["read"])).await,
        key(json!(["write"])).await,
        key(json!(["admin"])).await,
        key(json!("full")).await,
    );
    let site = json!({ "team_id": ann.team_id, "domain": "scopes.example", "name": "S" });
    let members = format!("/teams/{}/members", ann.team_id);

    assert_eq!(env.api(Method::GET, "/websites", &read, None).await.0, StatusCode::OK);
    let (status, body) = env.api(Method::POST, "/websites", &read, Some(site.clone())).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE");
    assert!(body["error"]["message"].as_str().unwrap().contains("write"), "the message names the scope");
    let (status, body) = env.api(Method::GET, "/websites", &write, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE");
    let (status, created) = env.api(Method::POST, "/websites", &write, Some(site)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = env.api(Method::GET, &members, &read, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE");
    let (status, body) = env.api(Method::GET, &members, &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["role"], "owner");
    let (status, body) = env.api(Method::GET, "/websites", &admin, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE");
    for path in ["/websites".to_owned(), members.clone(), format!("/teams/{}/audit-log", ann.team_id)] {
        assert_eq!(env.api(Method::GET, &path, &full, None).await.0, StatusCode::OK, "{path}");
    }
    let id = created["data"]["id"].as_str().unwrap();
    let (status, body) = env.api(Method::DELETE, &format!("/websites/{id}"), &read, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE");
    let (status, _) = env.api(Method::PATCH, &format!("/websites/{id}"), &write, Some(json!({ "name": "T" }))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.api(Method::DELETE, &format!("/websites/{id}"), &write, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.api(Method::GET, &format!("/websites/{id}"), &read, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");

    // The external key-policy endpoint needs admin.
    let policy = format!("/teams/{}/api-key-policy", ann.team_id);
    let (status, body) = env.api(Method::PUT, &policy, &write, Some(json!({ "policy": "admins_only" }))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "INSUFFICIENT_SCOPE");
    let (status, body) = env.api(Method::PUT, &policy, &admin, Some(json!({ "policy": "admins_only" }))).await;
    assert_eq!((status, body["data"]["api_key_policy"].as_str()), (StatusCode::OK, Some("admins_only")));
}

async fn access_is_computed_per_request(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let acme = new_team(env, &ann, "Acme", "pro").await;
    add_member(env, &ann, &acme, &bob, "admin").await;
    let (_, site) = {
        let (key, _) = env.create_key(&ann, json!({ "name": "a", "permissions": "full", "teams": [acme] })).await;
        env.api(
            Method::POST,
            "/websites",
            &key,
            Some(json!({ "team_id": acme, "domain": "acme.example", "name": "Acme" })),
        )
        .await
    };
    let site_id = site["data"]["id"].as_str().unwrap().to_owned();

    // Bob's "all" key reaches Acme through his membership.
    let (all_key, _) = env.create_key(&bob, json!({ "name": "all", "permissions": "full", "teams": "all" })).await;
    let (admin_key, admin_record) =
        env.create_key(&bob, json!({ "name": "adm", "permissions": ["admin", "read"], "teams": [acme] })).await;
    let (_, list) = env.api(Method::GET, "/websites", &all_key, None).await;
    assert_eq!(list["data"][0]["id"], site_id.as_str());
    assert_eq!(env.api(Method::GET, &format!("/teams/{acme}/members"), &admin_key, None).await.0, StatusCode::OK);

    // Demoted: admin scope no longer counts on Acme.
    let (status, _) = env
        .session_json(
            Method::PATCH,
            &format!("/api/v1/teams/{acme}/members/{}", bob.user_id),
            &ann.session,
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.api(Method::GET, &format!("/teams/{acme}/members"), &admin_key, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(env.api(Method::GET, &format!("/websites/{site_id}"), &admin_key, None).await.0, StatusCode::OK);

    // Policy tightened: Acme drops out of Bob's reach; his free personal team is all that is left.
    set_policy(env, &ann, &acme, "admins_only").await;
    let (status, body) = env.api(Method::GET, "/websites", &all_key, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "API_PAID_PLAN_REQUIRED");
    set_policy(env, &ann, &acme, "all_members").await;
    assert_eq!(env.api(Method::GET, "/websites", &all_key, None).await.0, StatusCode::OK);

    // Downgrade and upgrade apply on the next request.
    env.set_plan(&acme, "free").await;
    let (status, body) = env.api(Method::GET, "/websites", &all_key, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "API_PAID_PLAN_REQUIRED");
    // The refusal carries the budget too: none without API access.
    let refused = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&all_key).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for (name, value) in [("x-ratelimit-limit", "0"), ("x-ratelimit-remaining", "0"), ("x-usage-limit", "0")] {
        assert_eq!(refused.headers()[name], value, "{name}");
    }
    for name in ["x-ratelimit-reset", "x-usage-monthly", "x-usage-reset"] {
        assert!(refused.headers().contains_key(name), "{name} missing");
    }
    // Access is decided before input is validated: no 400 for a key refused access.
    let body = json!({ "team_id": acme, "domain": "nope nope" , "name": "x", "extra": 1 });
    let (status, body) = env.api(Method::POST, "/websites", &all_key, Some(body)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "API_PAID_PLAN_REQUIRED");
    env.set_plan(&acme, "enterprise").await;
    let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&all_key).send().await.unwrap();
    assert_eq!(response.headers()["x-ratelimit-limit"], "120");

    // Removed from Acme: the key that selected only Acme is revoked for good.
    let (status, _) = env
        .session_json(Method::DELETE, &format!("/api/v1/teams/{acme}/members/{}", bob.user_id), &ann.session, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Marked at once, before anyone presents the key.
    let (_, keys) = env.session_json(Method::GET, "/api/v1/account/api-keys", &bob.session, None).await;
    let record = keys["data"].as_array().unwrap().iter().find(|k| k["id"] == admin_record["id"]).unwrap().clone();
    assert_eq!(record["revoked_reason"], "team_access_lost");
    assert!(record["revoked_at"].as_str().is_some());
    // And Acme's audit log says so, beside the removal.
    let (_, log) = env.session_json(Method::GET, &format!("/api/v1/teams/{acme}/audit-log"), &ann.session, None).await;
    let revoked = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_key.revoked" && e["target"] == admin_record["id"]);
    let revoked = revoked.unwrap_or_else(|| panic!("no api_key.revoked for the key in {log}"));
    assert!(revoked.to_string().contains("team_access_lost"), "{revoked}");
    let (status, body) = env.api(Method::GET, &format!("/websites/{site_id}"), &admin_key, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // The "all" key lives on, without Acme, and cannot see Acme's website.
    let (status, body) = env.api(Method::GET, &format!("/websites/{site_id}"), &all_key, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "API_PAID_PLAN_REQUIRED");
}

async fn members(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let cat = env.user("cat").await;
    let team = &ann.team_id;
    let path = |rest: &str| format!("/api/v1/teams/{team}/members{rest}");

    let (status, body) = env.session_json(Method::GET, &path(""), &bob.session, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    add_member(env, &ann, team, &bob, "admin").await;
    let (status, body) = env
        .session_json(Method::POST, &path(""), &bob.session, Some(json!({ "email": cat.email, "role": "owner" })))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    add_member(env, &bob, team, &cat, "member").await;
    let (status, body) = env
        .session_json(Method::POST, &path(""), &ann.session, Some(json!({ "email": cat.email, "role": "member" })))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    let (status, body) = env
        .session_json(
            Method::POST,
            &path(""),
            &ann.session,
            Some(json!({ "email": "ghost@example.com", "role": "member" })),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, body) = env
        .session_json(
            Method::POST,
            &path(""),
            &cat.session,
            Some(json!({ "email": "x@example.com", "role": "member" })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, list) = env.session_json(Method::GET, &path(""), &cat.session, None).await;
    assert_eq!(status, StatusCode::OK);
    let roles: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["owner", "admin", "member"]);

    // Only owners make owners or touch an owner; the last owner stays.
    let ann_path = path(&format!("/{}", ann.user_id));
    let (status, body) = env
        .session_json(
            Method::PATCH,
            &path(&format!("/{}", cat.user_id)),
            &bob.session,
            Some(json!({ "role": "owner" })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) =
        env.session_json(Method::PATCH, &ann_path, &bob.session, Some(json!({ "role": "member" }))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = env.session_json(Method::DELETE, &ann_path, &bob.session, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) =
        env.session_json(Method::PATCH, &ann_path, &ann.session, Some(json!({ "role": "admin" }))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    let (status, body) = env.session_json(Method::DELETE, &ann_path, &ann.session, None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    let (status, body) = env
        .session_json(Method::PATCH, &path(&format!("/{}", bob.user_id)), &ann.session, Some(json!({ "role": "king" })))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let (status, _) = env
        .session_json(
            Method::PATCH,
            &path(&format!("/{}", bob.user_id)),
            &ann.session,
            Some(json!({ "role": "owner" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.session_json(Method::DELETE, &ann_path, &ann.session, None).await;
    assert_eq!(status, StatusCode::OK, "with another owner, an owner may leave");
    // Anyone may leave; a plain member cannot remove others.
    let (status, body) =
        env.session_json(Method::DELETE, &path(&format!("/{}", bob.user_id)), &cat.session, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _) = env.session_json(Method::DELETE, &path(&format!("/{}", cat.user_id)), &cat.session, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = env.session_json(Method::GET, &path(""), &bob.session, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

/// An edit is held to the rules of a new key whatever it changes: a key its team's policy no
/// longer allows, or an admin key of an owner now a plain member, is not renamed nor given a longer life.
async fn an_edit_of_any_field_is_held_to_the_rules_of_a_new_key(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    env.set_plan(&bob.team_id, "pro").await;
    add_member(env, &bob, &bob.team_id, &ann, "admin").await;
    let (_, plain) =
        env.create_key(&ann, json!({ "name": "rw", "permissions": ["read", "write"], "teams": [bob.team_id] })).await;
    let (_, admin) =
        env.create_key(&ann, json!({ "name": "adm", "permissions": ["admin"], "teams": [bob.team_id] })).await;
    let edit = |key: &Value, body: Value| {
        let path = format!("/api/v1/account/api-keys/{}", key["id"].as_str().unwrap());
        let session = ann.session.clone();
        async move { env.session_json(Method::PATCH, &path, &session, Some(body)).await }
    };
    let later = (chrono::Utc::now() + chrono::Duration::days(300)).to_rfc3339();
    let path = format!("/api/v1/teams/{}/members/{}", bob.team_id, ann.user_id);
    let (status, body) = env.session_json(Method::PATCH, &path, &bob.session, Some(json!({ "role": "member" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for change in [json!({ "name": "renamed" }), json!({ "expires_at": later })] {
        let (status, body) = edit(&admin, change).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let (status, _) = set_policy(env, &bob, &bob.team_id, "nobody").await;
    assert_eq!(status, StatusCode::OK);
    for change in [json!({ "name": "renamed" }), json!({ "expires_at": later }), json!({ "permissions": ["read"] })] {
        let (status, body) = edit(&plain, change).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "KEY_POLICY_FORBIDS");
    }
}

async fn editing_and_audit(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    env.set_plan(&ann.team_id, "pro").await;
    add_member(env, &ann, &ann.team_id, &bob, "member").await;
    let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    let id = record["id"].as_str().unwrap();
    let key_path = format!("/api/v1/account/api-keys/{id}");
    let edit = |body: Value| env.session_json(Method::PATCH, &key_path, &ann.session, Some(body));

    let site = json!({ "team_id": ann.team_id, "domain": "edit.example", "name": "E" });
    assert_eq!(env.api(Method::POST, "/websites", &key, Some(site.clone())).await.0, StatusCode::FORBIDDEN);
    let (status, body) = edit(json!({ "name": " renamed ", "permissions": ["read", "write"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["data"]["name"].as_str(), body["data"]["permissions"].clone()),
        (Some("renamed"), json!(["read", "write"]))
    );
    assert_eq!(
        env.api(Method::POST, "/websites", &key, Some(site)).await.0,
        StatusCode::CREATED,
        "rights apply at once"
    );
    let nulls = [json!({ "name": null }), json!({ "permissions": null }), json!({ "teams": null })];
    let bad = [json!({ "name": "" }), json!({ "permissions": [] }), json!({ "teams": [] }), json!({ "colour": 1 })];
    for bad in bad.into_iter().chain(nulls) {
        let (status, body) = edit(bad.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        let field = bad.as_object().unwrap().keys().next().unwrap().clone();
        assert!(body["error"]["message"].as_str().unwrap().starts_with(&field), "{bad}: {body}");
    }
    let (status, body) = edit(json!({ "teams": ["someone-elses"] })).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = env
        .session_json(
            Method::PATCH,
            &format!("/api/v1/account/api-keys/{id}"),
            &bob.session,
            Some(json!({ "name": "mine" })),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    env.session_json(Method::DELETE, &format!("/api/v1/account/api-keys/{id}"), &ann.session, None).await;
    let (status, again) =
        env.session_json(Method::DELETE, &format!("/api/v1/account/api-keys/{id}"), &ann.session, None).await;
    assert_eq!(
        (status, &again["data"]["status"]),
        (StatusCode::OK, &json!("revoked")),
        "revoking again changes nothing"
    );
    let (status, body) = edit(json!({ "name": "late" })).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");

    set_policy(env, &ann, &ann.team_id, "admins_only").await;
    let (status, log) =
        env.session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log", ann.team_id), &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "team.plan_changed",
        "member.added",
        "api_key.created",
        "api_key.updated",
        "api_key.revoked",
        "team.api_key_policy_changed",
    ] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    assert_eq!(actions[0], "team.api_key_policy_changed", "newest first");
    assert_eq!(actions.iter().filter(|a| **a == "api_key.revoked").count(), 1, "revoked once, logged once");
    assert!(!log.to_string().contains(&key), "no secret in the audit log");
    let (status, body) =
        env.session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log", ann.team_id), &bob.session, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = env
        .session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log?limit=zero", ann.team_id), &ann.session, None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let (_, one) = env
        .session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log?limit=1", ann.team_id), &ann.session, None)
        .await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
}

async fn a_plain_member_may_create_a_full_key_for_a_selected_team(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    add_member(env, &bob, &bob.team_id, &ann, "member").await;
    env.set_plan(&bob.team_id, "pro").await;
    let body = json!({ "name": "k", "permissions": "full", "teams": [bob.team_id] });
    let (key, _) = env.create_key(&ann, body).await;
    // Read and write on the team, but admin only where ann is owner or admin, which she is not.
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    let (status, body) = env.api(Method::GET, &format!("/teams/{}/members", bob.team_id), &key, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
}

/// An RFC 3339 time `secs` seconds from now (negative: in the past).
fn from_now(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

async fn a_key_expiry_must_be_in_the_future_and_within_366_days(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    for expires_at in [json!(from_now(-60)), json!(from_now(367 * 86_400)), json!("tomorrow")] {
        let body = json!({ "name": "k", "permissions": "full", "teams": "all", "expires_at": expires_at });
        let (status, body) = key_attempt(env, &ann, body).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(body["error"]["message"].as_str().unwrap().starts_with("expires_at: "), "{body}");
    }
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "expires_at": from_now(2 * 86_400) });
    let (_, record) = env.create_key(&ann, body).await;
    assert_eq!(record["status"], "expiring", "{record}");
    assert!(record["expires_at"].is_string(), "{record}");
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "expires_at": null });
    let (_, record) = env.create_key(&ann, body).await;
    assert_eq!((&record["status"], &record["expires_at"]), (&json!("active"), &Value::Null), "{record}");
}

async fn an_edit_sets_or_clears_the_expiry(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (_, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    let path = format!("/api/v1/account/api-keys/{}", record["id"].as_str().unwrap());
    let set = json!({ "expires_at": from_now(30 * 86_400) });
    let (status, edited) = env.session_json(Method::PATCH, &path, &ann.session, Some(set)).await;
    assert_eq!((status, &edited["data"]["status"]), (StatusCode::OK, &json!("active")), "{edited}");
    assert!(edited["data"]["expires_at"].is_string());
    let (_, renamed) = env.session_json(Method::PATCH, &path, &ann.session, Some(json!({ "name": "n" }))).await;
    assert_eq!(renamed["data"]["expires_at"], edited["data"]["expires_at"], "an edit without it keeps it");
    let (_, cleared) = env.session_json(Method::PATCH, &path, &ann.session, Some(json!({ "expires_at": null }))).await;
    assert_eq!(cleared["data"]["expires_at"], Value::Null, "{cleared}");
}

async fn an_expired_key_is_refused_with_its_own_code(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "expires_at": from_now(2) });
    let (key, record) = env.create_key(&ann, body).await;
    // Used once before it expires, so that the gateway holds it in its cache.
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    let (status, body) = crate::harness::into_json(response).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "API_KEY_EXPIRED");
    let (_, keys) = env.session_json(Method::GET, "/api/v1/account/api-keys", &ann.session, None).await;
    let listed = keys["data"].as_array().unwrap().iter().find(|k| k["id"] == record["id"]).unwrap().clone();
    assert_eq!(listed["status"], "expired", "{listed}");
    // Its successor would take its expiry and be born expired.
    let (status, body) = rotate(env, &ann, &record, json!({ "grace_period_seconds": 0 })).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    // The refusals are requests of the key, counted in its usage.
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::UNAUTHORIZED);
    let path = format!("/api/v1/account/api-keys/{}/usage?days=1", record["id"].as_str().unwrap());
    let mut today = Value::Null;
    for _ in 0..50 {
        let (_, body) = env.session_json(Method::GET, &path, &ann.session, None).await;
        today = body["data"][0].clone();
        if today["client_error"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!((&today["success"], &today["client_error"]), (&json!(1), &json!(2)), "{today}");
}

/// Rotates `record`'s key with a grace period; returns the new secret and record.
async fn rotate(env: &TestEnv, user: &TestUser, record: &Value, body: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/account/api-keys/{}/rotate", record["id"].as_str().unwrap());
    env.session_json(Method::POST, &path, &user.session, Some(body)).await
}

async fn a_rotated_key_works_until_its_grace_period_ends(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let body =
        json!({ "name": "deploy", "permissions": ["read"], "teams": "all", "expires_at": from_now(86_400 * 30) });
    let (old_key, old) = env.create_key(&ann, body).await;
    assert_eq!(env.api(Method::GET, "/websites", &old_key, None).await.0, StatusCode::OK, "cached before rotation");
    let (status, rotated) = rotate(env, &ann, &old, json!({ "grace_period_seconds": 2 })).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let (new_key, new) = (rotated["data"]["key"].as_str().unwrap().to_owned(), &rotated["data"]["api_key"]);
    assert_ne!(new_key, old_key);
    for field in ["name", "permissions", "teams", "expires_at"] {
        assert_eq!(new[field], old[field], "{field} carries over");
    }
    assert_eq!(new["rotated_from"], old["id"]);
    // Both work during the grace period; the old one stops the moment it ends, on every replica.
    assert_eq!(env.api(Method::GET, "/websites", &old_key, None).await.0, StatusCode::OK);
    assert_eq!(env.api(Method::GET, "/websites", &new_key, None).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let (status, body) = env.api(Method::GET, "/websites", &old_key, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    for base in &env.gateways {
        let response = env.http.get(format!("{base}/api/external/v1/websites")).bearer_auth(&old_key).send().await;
        assert_eq!(response.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(env.api(Method::GET, "/websites", &new_key, None).await.0, StatusCode::OK);
    let (_, keys) = env.session_json(Method::GET, "/api/v1/account/api-keys", &ann.session, None).await;
    let listed = keys["data"].as_array().unwrap().iter().find(|k| k["id"] == old["id"]).unwrap().clone();
    assert_eq!((&listed["status"], &listed["revoked_reason"]), (&json!("revoked"), &json!("rotated")), "{listed}");
    assert_eq!(listed["rotated_to"], new["id"]);
    let (_, log) =
        env.session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log", ann.team_id), &ann.session, None).await;
    let entry = log["data"].as_array().unwrap().iter().find(|e| e["action"] == "api_key.rotated").unwrap().clone();
    let retires_at = entry["details"]["retires_at"].as_str().unwrap_or_else(|| panic!("a time, as text: {entry}"));
    assert!(chrono::DateTime::parse_from_rfc3339(retires_at).is_ok(), "{retires_at}");
}

async fn the_audit_log_is_paged(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    for name in ["a", "b", "c", "d"] {
        env.create_key(&ann, json!({ "name": name, "permissions": "full", "teams": "all" })).await;
    }
    let ann = &ann;
    let log = |query: &'static str| {
        let path = format!("/api/v1/teams/{}/audit-log{query}", ann.team_id);
        async move { env.session_json(Method::GET, &path, &ann.session, None).await }
    };
    let (status, all) = log("").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let total = all["data"].as_array().unwrap().len();
    assert!(total >= 5, "the plan change and four keys: {all}");
    assert_eq!(all["pagination"], json!({ "page": 1, "per_page": 100, "total": total }));
    let (_, second) = log("?per_page=2&page=2").await;
    assert_eq!(second["pagination"], json!({ "page": 2, "per_page": 2, "total": total }));
    assert_eq!(second["data"], json!(all["data"].as_array().unwrap()[2..4]), "newest first, two pages in");
    let (_, beyond) = log("?per_page=2&page=100").await;
    assert_eq!(beyond["data"], json!([]));
    for query in ["?page=0", "?per_page=1001", "?per_page=2&limit=2", "?cursor=x"] {
        let (status, body) = log(query).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
}

async fn the_audit_log_walked_from_its_last_entry_lists_none_twice_while_entries_arrive(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let ann = &ann;
    let key = |name: &'static str| env.create_key(ann, json!({ "name": name, "permissions": "full", "teams": "all" }));
    for name in ["a", "b", "c", "d"] {
        key(name).await;
    }
    let log = |query: String| {
        let path = format!("/api/v1/teams/{}/audit-log{query}", ann.team_id);
        async move { env.session_json(Method::GET, &path, &ann.session, None).await }
    };
    let (_, all) = log(String::new()).await;
    let all = all["data"].as_array().unwrap().clone();
    let (_, first) = log("?per_page=2".into()).await;
    let mut walked = first["data"].as_array().unwrap().clone();
    // New entries arrive at the head of the log: with offsets, the next page would repeat two.
    key("e").await;
    key("f").await;
    loop {
        let last = walked.last().unwrap()["id"].as_str().unwrap().to_owned();
        let (status, page) = log(format!("?per_page=2&before={last}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let older = all.iter().skip_while(|e| e["id"] != last.as_str()).skip(1).count();
        assert_eq!(
            page["pagination"],
            json!({ "page": 1, "per_page": 2, "total": older }),
            "counted from the entry on"
        );
        let entries = page["data"].as_array().unwrap();
        if entries.is_empty() {
            break;
        }
        walked.extend(entries.iter().cloned());
    }
    assert_eq!(walked, all, "every entry of the log as it was, once each, newest first");
    // An entry of another team's log is no place in this one.
    let bob = env.user("bob").await;
    env.set_plan(&bob.team_id, "pro").await;
    let path = format!("/api/v1/teams/{}/audit-log", bob.team_id);
    let (_, theirs) = env.session_json(Method::GET, &path, &bob.session, None).await;
    let theirs = theirs["data"][0]["id"].as_str().expect("the plan change").to_owned();
    for before in [theirs.as_str(), "01890000-0000-7000-8000-000000000000", "x"] {
        let (status, body) = log(format!("?before={before}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(body["error"]["message"].as_str().unwrap().starts_with("before: "), "{body}");
    }
}

async fn the_audit_log_names_its_actors_and_whose_role_changed_after_they_left(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let cat = env.user("cat").await;
    add_member(env, &ann, &ann.team_id, &bob, "admin").await;
    add_member(env, &bob, &ann.team_id, &cat, "member").await;
    let path = format!("/api/v1/teams/{}/members/{}", ann.team_id, cat.user_id);
    let (status, body) = env.session_json(Method::PATCH, &path, &bob.session, Some(json!({ "role": "admin" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/api/v1/teams/{}/members/{}", ann.team_id, bob.user_id);
    assert_eq!(env.session_json(Method::DELETE, &path, &bob.session, None).await.0, StatusCode::OK);
    let (_, log) =
        env.session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log", ann.team_id), &ann.session, None).await;
    let entry = log["data"].as_array().unwrap().iter().find(|e| e["action"] == "member.role_changed").unwrap().clone();
    assert_eq!((&entry["actor_id"], &entry["actor_email"]), (&json!(bob.user_id), &json!(bob.email)), "{entry}");
    assert_eq!(entry["target"], cat.user_id);
    assert_eq!(entry["details"], json!({ "email": cat.email, "from": "member", "to": "admin" }));
}

async fn a_rotation_without_grace_retires_the_old_key_at_once(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (old_key, old) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    let (status, rotated) = rotate(env, &ann, &old, json!({ "grace_period_seconds": 0 })).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(env.api(Method::GET, "/websites", &old_key, None).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = rotate(env, &ann, &old, json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
}

async fn a_null_grace_period_is_the_days_default(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (_, old) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    let (status, rotated) = rotate(env, &ann, &old, json!({ "grace_period_seconds": null })).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let (_, listed) = env.session_json(Method::GET, "/api/v1/account/api-keys", &ann.session, None).await;
    let keys = listed["data"].as_array().unwrap_or_else(|| panic!("a list: {listed}"));
    let old = keys.iter().find(|k| k["id"] == old["id"]).unwrap_or_else(|| panic!("the old key: {listed}"));
    let retires_at = old["retires_at"].as_str().unwrap_or_else(|| panic!("a time: {old}"));
    let left = chrono::DateTime::parse_from_rfc3339(retires_at).unwrap().timestamp() - chrono::Utc::now().timestamp();
    assert!((86_300..=86_400).contains(&left), "{left} s left");
}

async fn a_grace_period_beyond_a_week_is_refused(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (_, old) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    for grace in [json!(604_801), json!(-1), json!("1d")] {
        let (status, body) = rotate(env, &ann, &old, json!({ "grace_period_seconds": grace })).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(body["error"]["message"].as_str().unwrap().starts_with("grace_period_seconds"), "{body}");
    }
}

async fn a_key_is_refused_from_outside_its_allowlist_and_takes_nothing(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let body =
        json!({ "name": "k", "permissions": "full", "teams": "all", "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"] });
    let (key, record) = env.create_key(&ann, body).await;
    let refused = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    // Like every answer to a recognised key, it carries the key's budget, untouched.
    let budget = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-usage-monthly"].map(|h| header(&refused, h));
    assert_eq!(budget, ["30", "30", "0"]);
    let (status, body) = crate::harness::into_json(refused).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "IP_NOT_ALLOWED");
    let path = format!("/api/v1/account/api-keys/{}", record["id"].as_str().unwrap());
    let edit = json!({ "allowed_ips": ["127.0.0.1"] });
    let (status, edited) = env.session_json(Method::PATCH, &path, &ann.session, Some(edit)).await;
    assert_eq!((status, &edited["data"]["allowed_ips"]), (StatusCode::OK, &json!(["127.0.0.1/32"])), "{edited}");
    let response = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-usage-monthly"], "1", "the refused request consumed nothing");
}

async fn an_allowlist_holds_at_most_20_valid_networks(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let many: Vec<String> = (0..21).map(|i| format!("10.0.{i}.0/24")).collect();
    for allowed in [json!(["10.0.0.0/33"]), json!(["example.com"]), json!(["010.0.0.0/8"]), json!(many)] {
        let body = json!({ "name": "k", "permissions": "full", "teams": "all", "allowed_ips": allowed });
        let (status, body) = key_attempt(env, &ann, body).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(body["error"]["message"].as_str().unwrap().starts_with("allowed_ips: "), "{body}");
    }
    let allowed = ["10.1.2.3/8", "::1", "::ffff:127.0.0.1", "::ffff:192.168.0.0/112", "10.0.0.0/8", "127.0.0.1"];
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "allowed_ips": allowed });
    let (key, record) = env.create_key(&ann, body).await;
    // IPv4 in IPv6's mapped form is kept as the IPv4 network it is, which clients match; a
    // network given twice, in whatever form, is kept once.
    assert_eq!(record["allowed_ips"], json!(["10.0.0.0/8", "::1/128", "127.0.0.1/32", "192.168.0.0/16"]));
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK, "from 127.0.0.1");
    // 21 entries naming 20 networks are 20: the limit counts networks.
    let twenty: Vec<String> = (0..20).map(|i| format!("10.0.{i}.0/24")).chain(["10.0.0.1/24".to_owned()]).collect();
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "allowed_ips": twenty });
    let (_, record) = env.create_key(&ann, body).await;
    assert_eq!(record["allowed_ips"].as_array().unwrap().len(), 20);
}

/// A key's call on gateway `index`.
async fn call_on(env: &TestEnv, index: usize, key: &str) -> (StatusCode, Value) {
    let url = format!("{}/api/external/v1/websites", env.gateways[index]);
    crate::harness::into_json(env.http.get(url).bearer_auth(key).send().await.unwrap()).await
}

#[tokio::test]
async fn a_key_expires_on_another_replica_at_its_second() {
    let env = TestEnv::split(2).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "expires_at": from_now(2) });
    let (key, _) = env.create_key(&ann, body).await;
    // Cached on the second replica while it still works.
    assert_eq!(call_on(&env, 1, &key).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (status, body) = call_on(&env, 1, &key).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "API_KEY_EXPIRED");
}

#[tokio::test]
async fn a_rotated_keys_grace_ends_on_another_replica() {
    let env = TestEnv::split(2).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (old_key, old) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    assert_eq!(call_on(&env, 1, &old_key).await.0, StatusCode::OK, "cached on the second replica");
    let (status, _) = rotate(&env, &ann, &old, json!({ "grace_period_seconds": 2 })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(call_on(&env, 1, &old_key).await.0, StatusCode::OK, "in its grace period");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (status, body) = call_on(&env, 1, &old_key).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn usage_counts_every_request_across_replicas_and_a_graceful_restart() {
    let mut env = TestEnv::split(2).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    for i in 0..10 {
        assert_eq!(call_on(&env, i % 2, &key).await.0, StatusCode::OK);
    }
    // Stopped right after its requests: its counts go out on the way down.
    env.restart_gateway(0);
    let path = format!("/api/v1/account/api-keys/{}/usage?days=1", record["id"].as_str().unwrap());
    let mut success = Value::Null;
    for _ in 0..50 {
        let (_, body) = env.session_json(Method::GET, &path, &ann.session, None).await;
        success = body["data"][0]["success"].clone();
        if success == 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(success, 10);
}

/// While policy is down a key's requests are 503s that no decision was made for: requests that
/// could not be checked, which its usage does not count.
#[tokio::test]
async fn requests_that_could_not_be_checked_are_not_counted_in_a_keys_usage() {
    let mut env = TestEnv::split(1).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    env.kill("policy");
    for _ in 0..3 {
        assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    // Gateways add their counts about once a second: two flushes later, what counted is in.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let path = format!("/api/v1/account/api-keys/{}/usage?days=1", record["id"].as_str().unwrap());
    let (_, body) = env.session_json(Method::GET, &path, &ann.session, None).await;
    let today = &body["data"][0];
    assert_eq!((&today["success"], &today["server_error"]), (&json!(1), &json!(0)), "{today}");
}

/// The proxy in front of the gateway appends the peer it saw, so the last entry is the client and
/// the ones before it are whatever the client sent.
async fn the_allowlist_reads_the_trusted_client_address_header(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let body = json!({ "name": "k", "permissions": "full", "teams": "all", "allowed_ips": ["203.0.113.0/24"] });
    let (key, record) = env.create_key(&ann, body).await;
    let from = |address: &'static str| {
        env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).header("x-forwarded-for", address)
    };
    assert_eq!(from("10.0.0.1, 203.0.113.9").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(from("198.51.100.7").send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let forged = from("203.0.113.9, 198.51.100.7").send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "an allowed address the client put first is not believed");
    // A proxy that adds a line of its own after the client's: the list is the lines in order.
    let forged_line = from("203.0.113.9").header("x-forwarded-for", "198.51.100.7").send().await.unwrap();
    assert_eq!(forged_line.status(), StatusCode::FORBIDDEN, "nor one the client put on a line of its own");
    let proxied = from("198.51.100.7").header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    // IPv6 alike.
    let path = format!("/api/v1/account/api-keys/{}", record["id"].as_str().unwrap());
    let edit = json!({ "allowed_ips": ["2001:db8::/32"] });
    assert_eq!(env.session_json(Method::PATCH, &path, &ann.session, Some(edit)).await.0, StatusCode::OK);
    assert_eq!(from("2001:db8::5").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(from("2001:db9::5").send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

async fn a_keys_usage_is_counted_by_day_and_outcome(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan_with(&ann.team_id, "pro", json!({ "requests_per_minute": 3 })).await;
    let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    for path in ["/websites", "/websites", "/websites/no-such-site", "/websites"] {
        env.api(Method::GET, path, &key, None).await;
    }
    let path = format!("/api/v1/account/api-keys/{}/usage", record["id"].as_str().unwrap());
    let expected = json!({ "success": 2, "client_error": 1, "rate_limited": 1, "server_error": 0 });
    // Gateways add their counts about once a second.
    let mut today = Value::Null;
    for _ in 0..50 {
        let (status, body) = env.session_json(Method::GET, &path, &ann.session, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let days = body["data"].as_array().unwrap();
        assert_eq!(days.len(), 30, "every day of the default range");
        today = days.last().unwrap().clone();
        if today["success"] == expected["success"] && today["rate_limited"] == expected["rate_limited"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for (field, count) in expected.as_object().unwrap() {
        assert_eq!(&today[field], count, "{field}: {today}");
    }
    assert_eq!(today["date"], date);
}

async fn usage_covers_1_to_90_days_of_my_own_keys(env: &TestEnv) {
    let (ann, bob) = (env.user("ann").await, env.user("bob").await);
    env.set_plan(&ann.team_id, "pro").await;
    let (_, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    let path = format!("/api/v1/account/api-keys/{}/usage", record["id"].as_str().unwrap());
    for days in ["0", "91", "x"] {
        let (status, body) = env.session_json(Method::GET, &format!("{path}?days={days}"), &ann.session, None).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    }
    let (status, body) = env.session_json(Method::GET, &format!("{path}?days=90"), &ann.session, None).await;
    assert_eq!((status, body["data"].as_array().unwrap().len()), (StatusCode::OK, 90));
    let (status, body) = env.session_json(Method::GET, &path, &bob.session, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

const TRUSTED_HEADER: GatewayFlags = &[("--client-ip-header", "x-forwarded-for")];

both_modes!(
    an_edit_of_any_field_is_held_to_the_rules_of_a_new_key,
    a_keys_usage_is_counted_by_day_and_outcome,
    usage_covers_1_to_90_days_of_my_own_keys,
    a_key_is_refused_from_outside_its_allowlist_and_takes_nothing,
    an_allowlist_holds_at_most_20_valid_networks,
    a_rotated_key_works_until_its_grace_period_ends,
    the_audit_log_is_paged,
    the_audit_log_walked_from_its_last_entry_lists_none_twice_while_entries_arrive,
    the_audit_log_names_its_actors_and_whose_role_changed_after_they_left,
    a_rotation_without_grace_retires_the_old_key_at_once,
    a_grace_period_beyond_a_week_is_refused,
    a_null_grace_period_is_the_days_default,
    a_key_expiry_must_be_in_the_future_and_within_366_days,
    an_edit_sets_or_clears_the_expiry,
    an_expired_key_is_refused_with_its_own_code,
    a_plain_member_may_create_a_full_key_for_a_selected_team,
    creation_rules,
    scopes,
    access_is_computed_per_request,
    members,
    editing_and_audit;
    gateway TRUSTED_HEADER => the_allowlist_reads_the_trusted_client_address_header
);

#[tokio::test]
async fn a_backend_down_is_503_never_200() {
    let mut env = TestEnv::split(1).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    env.kill("policy");
    let (status, body) = env.api(Method::GET, "/websites", &key, None).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
    env.kill("identity");
    let (status, body) = env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
}

/// The all-in-one process on PostgreSQL, reached through a relay the test cuts: with its database
/// unreachable the answer is 503, never an unauthorized 200.
#[tokio::test]
async fn a_database_down_is_503_in_the_all_in_one_mode() {
    let database = TestDatabase::create().await;
    let url = url_without_host(&database.url);
    let proxy = TcpProxy::start(format!("{}:{}", url.1, url.2)).await;
    let through = format!("postgres://{}@{}/{}", url.0, proxy.addr, url.3);
    let env = TestEnv::all_in_one_with(&["--database-url", &through, "--key-hash-secrets", KEY_HASH_SECRETS]).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    proxy.cut();
    // What the caches hold (the verified key, the team's settings and websites) may answer for
    // their one second; past it every check needs the database.
    tokio::time::sleep(common::cache::TTL).await;
    let (status, body) = env.api(Method::GET, "/websites", &key, None).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
    let (status, body) = env.session_json(Method::GET, "/api/v1/me", &ann.session, None).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
}

/// `postgres://user@host:port/name` → (user, host, port, name).
fn url_without_host(url: &str) -> (String, String, String, String) {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")).expect("a postgres URL");
    let (user, rest) = rest.split_once('@').expect("a user");
    let (hostport, name) = rest.split_once('/').expect("a database name");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    (user.to_owned(), host.to_owned(), port.to_owned(), name.to_owned())
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let env = TestEnv::split(2).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let mut secrets = vec![ann.session.clone()];
    for _ in 0..3 {
        let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
        for base in &env.gateways {
            let response = env
                .http
                .get(format!("{base}/api/external/v1/websites"))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        let id = record["id"].as_str().unwrap();
        env.session_json(Method::DELETE, &format!("/api/v1/account/api-keys/{id}"), &ann.session, None).await;
        assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::UNAUTHORIZED);
        secrets.push(key);
    }
    let logs = env.logs();
    assert!(logs.len() > 1000, "the services log at debug level");
    for secret in &secrets {
        // The random part alone would give a key away.
        assert!(!logs.contains(&secret[3..]), "a secret reached the logs");
    }
}

/// A key sent where something else belongs (the path, percent-encoded or not, a team id, a field
/// name, the request id) is shown as its hint in the error message, and the logs never hold it.
#[tokio::test]
async fn a_key_sent_in_the_wrong_place_is_shown_as_its_hint_and_kept_out_of_the_logs() {
    let env = TestEnv::split(1).await;
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    let hint = format!("{}…{}", &key[..7], &key[key.len() - 4..]);
    // A character percent-encoded hides nothing from whoever decodes the path.
    let encoded = format!("{}%{:02X}{}", &key[..3], key.as_bytes()[3], &key[4..]);
    let messages = [
        env.api(Method::GET, &format!("/{key}"), &key, None).await,
        env.api(Method::GET, &format!("/{encoded}"), &key, None).await,
        env.api(Method::POST, "/websites", &key, Some(json!({ key.clone(): 1 }))).await,
        env.session_json(
            Method::POST,
            "/api/v1/account/api-keys",
            &ann.session,
            Some(json!({ "name": "x", "permissions": "full", "teams": [key] })),
        )
        .await,
    ];
    for (status, body) in messages {
        assert!(status.is_client_error(), "{status} {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&hint) && !message.contains(&key[4..]), "{message}");
    }
    let response = env.request(Method::GET, "/healthz").header("x-request-id", &key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The answer echoes a request id: one of its own instead of the key.
    let echoed = response.headers()["x-request-id"].to_str().unwrap();
    assert!(!echoed.contains(&key[4..]), "{echoed}");
    let logs = env.logs();
    assert!(logs.contains(&hint), "the requests were logged");
    assert!(!logs.contains(&key[4..]), "a key reached the logs");
}

/// Session tokens (and the OAuth tokens, which share the cut) have no hint: a run after their
/// prefix is cut whole, in answers and in the logs.
#[tokio::test]
async fn a_session_token_sent_in_the_wrong_place_is_cut_from_answers_and_logs() {
    let env = TestEnv::split(1).await;
    let ann = env.user("ann").await;
    let secret = &ann.session[4..];
    let (status, body) =
        env.session_json(Method::GET, &format!("/api/v1/websites/{}", ann.session), &ann.session, None).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(!body.to_string().contains(secret), "{body}");
    let response = env.request(Method::GET, "/healthz").header("x-request-id", &ann.session).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers()["x-request-id"].to_str().unwrap().contains(secret));
    // Lines leave through a writer that flushes every few milliseconds.
    let mut logs = env.logs();
    for _ in 0..50 {
        if logs.contains("zvs_…") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        logs = env.logs();
    }
    assert!(logs.contains("zvs_…"), "the requests were logged");
    assert!(!logs.contains(secret), "a session token reached the logs");
}

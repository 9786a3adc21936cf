//! Requests that race each other on one team, member or website, in both modes: each answer says
//! what its request did, the audit log says the same, and no rule is broken in between.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, TestUser, add_member};

async fn audit_actions(env: &TestEnv, owner: &TestUser, team_id: &str) -> Vec<Value> {
    let path = format!("/api/v1/teams/{team_id}/audit-log?per_page=100");
    let (status, log) = env.session_json(Method::GET, &path, &owner.session, None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    log["data"].as_array().unwrap().clone()
}

fn count(log: &[Value], action: &str) -> usize {
    log.iter().filter(|entry| entry["action"] == action).count()
}

fn statuses(answers: &[(StatusCode, Value)]) -> Vec<u16> {
    answers.iter().map(|(status, _)| status.as_u16()).collect()
}

/// A key made while its owner is removed from the only team it selects either comes first and
/// is revoked with the removal, or comes after and is refused: none outlives the membership,
/// and none comes back when its owner rejoins.
async fn a_key_made_while_its_owner_leaves_its_team_does_not_outlive_the_membership(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    env.set_plan(&ann.team_id, "pro").await;
    add_member(env, &ann, &ann.team_id, &bob, "member").await;
    let body = json!({ "name": "k", "permissions": "full", "teams": [ann.team_id] });
    let creations =
        (0..10).map(|_| env.session_json(Method::POST, "/api/v1/account/api-keys", &bob.session, Some(body.clone())));
    let bobs_membership = format!("/api/v1/teams/{}/members/{}", ann.team_id, bob.user_id);
    let removal = env.session_json(Method::DELETE, &bobs_membership, &ann.session, None);
    let (created, (removed, _)) = tokio::join!(join_all(creations), removal);
    assert_eq!(removed, StatusCode::OK);
    assert!(statuses(&created).iter().all(|s| [201, 403].contains(s)), "{:?}", statuses(&created));
    let made: Vec<&Value> =
        created.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| &b["data"]).collect();

    let (_, listed) = env.session_json(Method::GET, "/api/v1/account/api-keys", &bob.session, None).await;
    for key in listed["data"].as_array().unwrap() {
        assert_eq!((&key["status"], &key["revoked_reason"]), (&json!("revoked"), &json!("team_access_lost")), "{key}");
    }
    let log = audit_actions(env, &ann, &ann.team_id).await;
    assert_eq!(count(&log, "api_key.created"), made.len(), "{log:?}");
    assert_eq!(count(&log, "api_key.revoked"), made.len(), "{log:?}");

    add_member(env, &ann, &ann.team_id, &bob, "member").await;
    for key in made {
        let (status, _) = env.api(Method::GET, "/websites", key["key"].as_str().unwrap(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

/// A key that selects two teams is revoked when its owner is removed from both at once: each
/// removal sees the other's.
async fn a_key_is_revoked_when_its_owner_leaves_both_its_teams_at_once(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let other = crate::harness::new_team(env, &ann, "Other", "pro").await;
    env.set_plan(&ann.team_id, "pro").await;
    for team in [&ann.team_id, &other] {
        add_member(env, &ann, team, &bob, "member").await;
    }
    let body = json!({ "name": "k", "permissions": "full", "teams": [ann.team_id, other] });
    let (status, made) = env.session_json(Method::POST, "/api/v1/account/api-keys", &bob.session, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let paths = [&ann.team_id, &other].map(|team| format!("/api/v1/teams/{team}/members/{}", bob.user_id));
    let removals = paths.iter().map(|path| env.session_json(Method::DELETE, path, &ann.session, None));
    assert!(join_all(removals).await.iter().all(|(status, _)| *status == StatusCode::OK));
    let (_, listed) = env.session_json(Method::GET, "/api/v1/account/api-keys", &bob.session, None).await;
    let key = &listed["data"][0];
    assert_eq!((&key["status"], &key["revoked_reason"]), (&json!("revoked"), &json!("team_access_lost")), "{key}");
}

/// One member removed and promoted by several requests at once: one removal succeeds, every
/// other request finds no member (never "the last owner"), and the log holds one removal and at
/// most the one promotion that happened before it.
async fn concurrent_removals_and_role_changes_of_a_member_answer_what_they_did(env: &TestEnv) {
    let ann = env.user("ann").await;
    let cat = env.user("cat").await;
    add_member(env, &ann, &ann.team_id, &cat, "member").await;
    let path = format!("/api/v1/teams/{}/members/{}", ann.team_id, cat.user_id);
    let removals = (0..5).map(|_| env.session_json(Method::DELETE, &path, &ann.session, None));
    let promotions =
        (0..5).map(|_| env.session_json(Method::PATCH, &path, &ann.session, Some(json!({ "role": "admin" }))));
    let (removed, promoted) = tokio::join!(join_all(removals), join_all(promotions));
    let (removed, promoted) = (statuses(&removed), statuses(&promoted));
    assert_eq!(removed.iter().filter(|s| **s == 200).count(), 1, "{removed:?}");
    assert!(removed.iter().chain(&promoted).all(|s| [200, 404].contains(s)), "{removed:?} {promoted:?}");
    let log = audit_actions(env, &ann, &ann.team_id).await;
    assert_eq!(count(&log, "member.removed"), 1, "{log:?}");
    let changes = count(&log, "member.role_changed");
    assert_eq!(changes, usize::from(promoted.contains(&200)), "{promoted:?} {log:?}");
}

/// Setting the role a member has answers the member and logs nothing.
async fn setting_the_role_a_member_has_logs_nothing(env: &TestEnv) {
    let ann = env.user("ann").await;
    let cat = env.user("cat").await;
    add_member(env, &ann, &ann.team_id, &cat, "member").await;
    let path = format!("/api/v1/teams/{}/members/{}", ann.team_id, cat.user_id);
    let promotions =
        (0..5).map(|_| env.session_json(Method::PATCH, &path, &ann.session, Some(json!({ "role": "admin" }))));
    let answers = join_all(promotions).await;
    assert!(answers.iter().all(|(status, body)| *status == StatusCode::OK && body["data"]["role"] == "admin"));
    let log = audit_actions(env, &ann, &ann.team_id).await;
    let changes: Vec<&Value> = log.iter().filter(|e| e["action"] == "member.role_changed").collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((&changes[0]["details"]["from"], &changes[0]["details"]["to"]), (&json!("member"), &json!("admin")));
}

/// Adds and removals of one user at once: every add the log records was answered 201, every
/// removal 200, and the team ends as they left it.
async fn concurrent_adds_and_removals_of_a_user_answer_what_they_did(env: &TestEnv) {
    let ann = env.user("ann").await;
    let bob = env.user("bob").await;
    let members = format!("/api/v1/teams/{}/members", ann.team_id);
    let one = format!("{members}/{}", bob.user_id);
    let adds = (0..5).map(|_| {
        env.session_json(Method::POST, &members, &ann.session, Some(json!({ "email": bob.email, "role": "member" })))
    });
    let removals = (0..5).map(|_| env.session_json(Method::DELETE, &one, &ann.session, None));
    let (added, removed) = tokio::join!(join_all(adds), join_all(removals));
    let (added, removed) = (statuses(&added), statuses(&removed));
    assert!(added.iter().all(|s| [201, 409].contains(s)), "{added:?}");
    assert!(removed.iter().all(|s| [200, 404].contains(s)), "{removed:?}");
    let (adds, removals) = (added.iter().filter(|s| **s == 201).count(), removed.iter().filter(|s| **s == 200).count());
    let log = audit_actions(env, &ann, &ann.team_id).await;
    assert_eq!((count(&log, "member.added"), count(&log, "member.removed")), (adds, removals), "{log:?}");
    let (_, listed) = env.session_json(Method::GET, &members, &ann.session, None).await;
    let still = listed["data"].as_array().unwrap().iter().any(|m| m["user_id"] == bob.user_id);
    assert_eq!(usize::from(still), adds - removals, "{listed}");
}

/// A goal created while its website is deleted is a 404, as the website is gone, never a 500.
async fn a_goal_created_while_its_website_is_deleted_is_a_404(env: &TestEnv) {
    let (_, key, _, site) = crate::harness::pro_site(env, "goals").await;
    let site_id = site["data"]["id"].as_str().unwrap();
    let goals = format!("/websites/{site_id}/goals");
    let creations =
        (0..10).map(|n| env.api(Method::POST, &goals, &key, Some(json!({ "event_name": format!("G{n}") }))));
    let website = format!("/websites/{site_id}");
    let deletion = env.api(Method::DELETE, &website, &key, None);
    let (created, (deleted, _)) = tokio::join!(join_all(creations), deletion);
    assert!(deleted.is_success(), "{deleted}");
    assert!(statuses(&created).iter().all(|s| [201, 404].contains(s)), "{created:?}");
}

both_modes!(
    a_key_made_while_its_owner_leaves_its_team_does_not_outlive_the_membership,
    a_key_is_revoked_when_its_owner_leaves_both_its_teams_at_once,
    concurrent_removals_and_role_changes_of_a_member_answer_what_they_did,
    setting_the_role_a_member_has_logs_nothing,
    concurrent_adds_and_removals_of_a_user_answer_what_they_did,
    a_goal_created_while_its_website_is_deleted_is_a_404,
);

//! Leaked-key reports signed as GitHub's secret-scanning partner programme signs them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::{REPORT_KEY_ID, ReportSigner, TestEnv, into_json};

const KEY_ID: &str = REPORT_KEY_ID;

async fn all_in_one(signer: &ReportSigner) -> TestEnv {
    TestEnv::all_in_one_with(&["--secret-scanning-keys-file", &signer.file]).await
}

async fn split(signer: &ReportSigner) -> TestEnv {
    TestEnv::split_with_gateway_args(1, &[("--secret-scanning-keys-file", signer.file.clone())]).await
}

async fn post_report(env: &TestEnv, body: &str, key_id: &str, signature: &str) -> (StatusCode, Value) {
    let request = env
        .request(Method::POST, "/api/v1/secret-scanning/reports")
        .header("content-type", "application/json")
        .header("github-public-key-identifier", key_id)
        .header("github-public-key-signature", signature)
        .body(body.to_owned());
    into_json(request.send().await.unwrap()).await
}

fn sign(signer: &ReportSigner, body: &str) -> String {
    signer.sign(body)
}

/// A Pro user's live key: the secret and its record's id.
async fn live_key(env: &TestEnv) -> (crate::harness::TestUser, String, String) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
    (ann, key, record["id"].as_str().unwrap().to_owned())
}

async fn a_signed_report_revokes_a_live_key_and_says_so(env: TestEnv, signer: ReportSigner) {
    let (ann, key, id) = live_key(&env).await;
    let url = "https://github.com/someone/repo/blob/main/.env";
    let body = json!([
        { "token": key, "type": "zenovay_api_key", "url": url, "source": "content" },
        { "token": "zv_notakey", "type": "zenovay_api_key", "url": url, "source": "content" },
        { "token": key, "type": "zenovay_api_key", "url": url, "source": "commit" },
    ])
    .to_string();
    let (status, answer) = post_report(&env, &body, KEY_ID, &sign(&signer, &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let hash = |token: &str| format!("{:x}", sha2::Sha256::digest(token.as_bytes()));
    assert_eq!(
        answer,
        json!([
            { "token_hash": hash(&key), "token_type": "zenovay_api_key", "label": "true_positive" },
            { "token_hash": hash("zv_notakey"), "token_type": "zenovay_api_key", "label": "false_positive" },
            // Found at a second place in the same report: as live as at the first.
            { "token_hash": hash(&key), "token_type": "zenovay_api_key", "label": "true_positive" },
        ])
    );
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::UNAUTHORIZED);
    let (_, keys) = env.session_json(Method::GET, "/api/v1/account/api-keys", &ann.session, None).await;
    let record = keys["data"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert_eq!((&record["revoked_reason"], &record["leak_url"]), (&json!("leaked"), &json!(url)), "{record}");
    // The report revoked it, not its owner.
    let log = format!("/api/v1/teams/{}/audit-log", ann.team_id);
    let (_, log) = env.session_json(Method::GET, &log, &ann.session, None).await;
    let leaked = log["data"].as_array().unwrap().iter().find(|e| e["action"] == "api_key.leaked").unwrap().clone();
    assert_eq!((&leaked["actor_id"], &leaked["actor_email"]), (&json!("secret_scanning"), &Value::Null), "{leaked}");
    // Reported again (GitHub's retry of a report it got no answer to), it is the same leak; and
    // it is recorded once.
    let (_, again) = post_report(&env, &body, KEY_ID, &sign(&signer, &body)).await;
    assert_eq!((&again[0]["label"], &again[1]["label"]), (&json!("true_positive"), &json!("false_positive")));
    let (_, log) =
        env.session_json(Method::GET, &format!("/api/v1/teams/{}/audit-log", ann.team_id), &ann.session, None).await;
    let leaks = log["data"].as_array().unwrap().iter().filter(|e| e["action"] == "api_key.leaked").count();
    assert_eq!(leaks, 1, "{log}");
    // A null where the report knows no value refuses nothing.
    let body = json!([{ "token": "zv_notakey", "type": null, "url": null, "source": "content" }]).to_string();
    let (status, answer) = post_report(&env, &body, KEY_ID, &sign(&signer, &body)).await;
    assert_eq!((status, &answer[0]["label"]), (StatusCode::OK, &json!("false_positive")), "{answer}");
}

async fn an_unverifiable_report_is_a_401_and_changes_nothing(env: TestEnv, signer: ReportSigner) {
    let (_, key, _) = live_key(&env).await;
    let body = json!([{ "token": key, "type": "zenovay_api_key", "url": "https://x.example", "source": "content" }])
        .to_string();
    let other = format!("{body} ");
    for (key_id, signature) in [
        (KEY_ID, sign(&signer, &other)),
        ("unknown-key", sign(&signer, &body)),
        (KEY_ID, "bm90IGEgc2lnbmF0dXJl".into()),
    ] {
        let (status, answer) = post_report(&env, &body, key_id, &signature).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    }
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
}

mod all_in_one {
    use crate::harness::ReportSigner;

    #[tokio::test]
    async fn a_signed_report_revokes_a_live_key_and_says_so() {
        let signer = ReportSigner::new();
        super::a_signed_report_revokes_a_live_key_and_says_so(super::all_in_one(&signer).await, signer).await;
    }

    #[tokio::test]
    async fn an_unverifiable_report_is_a_401_and_changes_nothing() {
        let signer = ReportSigner::new();
        super::an_unverifiable_report_is_a_401_and_changes_nothing(super::all_in_one(&signer).await, signer).await;
    }
}

mod split {
    use crate::harness::ReportSigner;

    #[tokio::test]
    async fn a_signed_report_revokes_a_live_key_and_says_so() {
        let signer = ReportSigner::new();
        super::a_signed_report_revokes_a_live_key_and_says_so(super::split(&signer).await, signer).await;
    }

    #[tokio::test]
    async fn an_unverifiable_report_is_a_401_and_changes_nothing() {
        let signer = ReportSigner::new();
        super::an_unverifiable_report_is_a_401_and_changes_nothing(super::split(&signer).await, signer).await;
    }
}

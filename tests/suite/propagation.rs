//! Changes reach every gateway replica within 1 second (docs/behaviour.md#effective-access), caches notwithstanding.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::TestEnv;

/// Asks `base` until the key is refused; returns how long that took.
pub async fn until_refused(env: &TestEnv, base: &str, key: &str) -> Duration {
    let start = Instant::now();
    loop {
        let response = env.http.get(format!("{base}/api/external/v1/websites")).bearer_auth(key).send().await.unwrap();
        if response.status() == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(start.elapsed() < Duration::from_secs(10), "the key still works on {base}");
    }
}

#[tokio::test]
async fn revocation_reaches_every_replica() {
    revoked_keys_are_refused_everywhere(&TestEnv::split(2).await).await;
}

/// The same through sharded pub/sub on a 3-master Redis Cluster.
#[tokio::test]
async fn revocation_reaches_every_replica_through_a_redis_cluster() {
    let cluster = crate::harness::RedisCluster::start(0);
    let env = TestEnv::split_on(2, crate::harness::TestRedis::on_cluster(&cluster)).await;
    revoked_keys_are_refused_everywhere(&env).await;
}

async fn revoked_keys_are_refused_everywhere(env: &TestEnv) {
    let ann = env.user("ann").await;
    env.set_plan(&ann.team_id, "enterprise").await;
    for _ in 0..3 {
        let (key, record) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;
        // Both replicas have verified (and cached) the key.
        for base in &env.gateways {
            for _ in 0..2 {
                let status = env
                    .http
                    .get(format!("{base}/api/external/v1/websites"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, StatusCode::OK);
            }
        }
        let id = record["id"].as_str().unwrap();
        let (status, _) =
            env.session_json(Method::DELETE, &format!("/api/v1/account/api-keys/{id}"), &ann.session, None).await;
        assert_eq!(status, StatusCode::OK);
        // The replica that revoked refuses at once; the other as soon as it hears.
        let status = env
            .http
            .get(format!("{}/api/external/v1/websites", env.gateways[0]))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        until_refused(env, &env.gateways[1], &key).await;
    }
}

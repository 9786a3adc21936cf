//! Benchmarks over the real topology, started by the test harness. They print figures and
//! assert nothing about time. Run one with
//! `cargo test --release --test bench -- --ignored --nocapture <name>`.

#[path = "../suite/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use harness::TestEnv;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

/// Revocation through replica A, then how long replica B (which had the key cached) keeps
/// accepting it. Target (issue 3): p99 under 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn revocation_to_401_across_replicas() {
    const ROUNDS: usize = 200;
    let env = TestEnv::split(2).await;
    let ann = env.user("bench").await;
    env.set_plan(&ann.team_id, "enterprise").await;
    let (a, b) = (&env.gateways[0], &env.gateways[1]);
    let get = |base: &str, key: &str| {
        env.http.get(format!("{base}/api/external/v1/websites")).bearer_auth(key.to_owned()).send()
    };
    let (mut from_sent, mut from_answered) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (key, record) =
            env.create_key(&ann, json!({ "name": "bench", "permissions": ["read"], "teams": "all" })).await;
        // Both replicas verify, then answer from their caches.
        for base in [a, b, a, b] {
            assert_eq!(get(base, &key).await.unwrap().status(), StatusCode::OK);
        }
        let path = format!("{a}/api/v1/account/api-keys/{}", record["id"].as_str().unwrap());
        let sent = Instant::now();
        let revoked = env.http.request(Method::DELETE, path).bearer_auth(&ann.session).send().await.unwrap();
        assert_eq!(revoked.status(), StatusCode::OK);
        let answered = Instant::now();
        loop {
            let status = get(b, &key).await.unwrap().status();
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK);
        }
        from_sent.push(sent.elapsed());
        from_answered.push(answered.elapsed());
    }
    report("revocation → 401 on the other replica, from the DELETE sent", from_sent);
    report("revocation → 401 on the other replica, from the DELETE answered", from_answered);
}

//! Health, readiness and graceful operation (issue 6).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::TestEnv;

#[tokio::test]
async fn health_and_readiness() {
    let all = TestEnv::all_in_one().await;
    let (status, body) = crate::harness::into_json(all.request(Method::GET, "/readyz").send().await.unwrap()).await;
    assert_eq!((status, &body["data"]["status"]), (StatusCode::OK, &json!("ready")));

    let mut env = TestEnv::split(1).await;
    assert_eq!(env.request(Method::GET, "/healthz").send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(env.request(Method::GET, "/readyz").send().await.unwrap().status(), StatusCode::OK);
    for (role, url) in &env.services {
        let channel = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await.unwrap();
        let mut health = HealthClient::new(channel);
        let service = format!("zenovay.{role}.v1.{}Service", capitalised(role));
        let answer = health.check(HealthCheckRequest { service }).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{role}");
    }
    env.kill("analytics");
    let (status, body) = crate::harness::into_json(env.request(Method::GET, "/readyz").send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("analytics"));
    // A tracker event cannot be stored: 503, not a 202 for an event that was lost.
    let event = json!({ "domain": "any.example", "name": "pageview", "url": "https://any.example/" });
    let response = env.request(Method::POST, "/api/event").json(&event).send().await.unwrap();
    let (status, body) = crate::harness::into_json(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE"))
    );
    assert_eq!(
        env.request(Method::GET, "/healthz").send().await.unwrap().status(),
        StatusCode::OK,
        "alive nonetheless"
    );
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// One of two gateways gets SIGTERM under steady load and is replaced, as in a rolling restart.
/// A client that, like a load balancer, sends new requests to a live gateway sees every request
/// answered 200: in-flight requests finish, none is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_request() {
    let mut env = TestEnv::split(2).await;
    let ann = env.user("steady").await;
    env.set_plan_with(&ann.team_id, "enterprise", json!({ "requests_per_minute": 100000 })).await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;

    // The client balances like a load balancer: it takes a gateway out of rotation once that
    // gateway says it is draining (`Connection: close`, readiness 503), and sends a request that
    // could not connect to the next one. A connection per request keeps an idle pooled
    // connection out of the picture.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let gateways = Arc::new(RwLock::new(env.gateways.clone()));
    let draining: Arc<RwLock<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = (0..4).map(|worker| {
        let (gateways, stop, answered, failed) = (gateways.clone(), stop.clone(), answered.clone(), failed.clone());
        let draining = draining.clone();
        let (http, key) = (http.clone(), key.clone());
        tokio::spawn(async move {
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let base = {
                    let (g, d) = (gateways.read().unwrap(), draining.read().unwrap());
                    let live: Vec<&String> = g.iter().filter(|b| !d.contains(b)).collect();
                    live[n % live.len()].clone()
                };
                match http.get(format!("{base}/api/external/v1/websites")).bearer_auth(&key).send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        if response.headers().get("connection").is_some_and(|v| v == "close") {
                            draining.write().unwrap().push(base);
                        }
                    }
                    Ok(response) => {
                        eprintln!("{base}: {}", response.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // Refused: never reached a gateway, so a balancer sends it to the next one.
                    Err(e) if e.is_connect() => continue,
                    Err(e) => {
                        eprintln!("{base}: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    });
    let load: Vec<_> = load.collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = answered.load(Ordering::Relaxed);
    let replacement = tokio::task::block_in_place(|| env.restart_gateway(0));
    gateways.write().unwrap()[0] = replacement;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }
    let total = answered.load(Ordering::Relaxed);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "every answered request succeeded");
    assert!(before > 0 && total > before, "load before and after the restart ({before}, {total})");
}

/// The gateway exposes request, decision and cache metrics in the Prometheus text format.
#[tokio::test]
async fn metrics_are_exposed() {
    let env = TestEnv::split(1).await;
    let ann = env.user("metered").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    for _ in 0..2 {
        assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    }
    // A read-only key may not create: refused before its body is judged.
    assert_eq!(env.api(Method::POST, "/websites", &key, Some(json!({}))).await.0, StatusCode::FORBIDDEN);
    let response = env.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let line = |needles: &[&str]| text.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(
        line(&[
            "http_server_request_duration_seconds_count",
            "http_route=\"/api/external/v1/websites\"",
            "http_response_status_code=\"200\""
        ]),
        "{text}"
    );
    // Durations in seconds, in buckets of seconds (the first one 5 ms), not in the SDK's default
    // buckets, which are for milliseconds.
    let quick = ["http_server_request_duration_seconds_bucket", "/api/external/v1/websites", "le=\"0.005\""];
    assert!(line(&quick), "{text}");
    assert!(line(&["zenovay_authorization_decisions_total", "outcome=\"allowed\""]), "{text}");
    assert!(line(&["zenovay_key_cache_lookups_total", "result=\"hit\""]), "{text}");
    // The second listing came from the gateway's own copy of the team's websites.
    assert!(line(&["zenovay_website_cache_lookups_total", "result=\"hit\""]), "{text}");
    assert!(!text.contains(&key[3..]), "no secret in metrics");
}

/// A request no decision could be made for (policy down) is counted among the decisions, by
/// its outcome, so that an outage shows in the metric an operator watches.
#[tokio::test]
async fn a_decision_that_could_not_be_made_is_counted() {
    let mut env = TestEnv::split(1).await;
    let ann = env.user("metered").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": ["read"], "teams": "all" })).await;
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::OK);
    env.kill("policy");
    assert_eq!(env.api(Method::GET, "/websites", &key, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let text = env.request(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let counted = text
        .lines()
        .any(|l| l.contains("zenovay_authorization_decisions_total") && l.contains("outcome=\"SERVICE_UNAVAILABLE\""));
    assert!(counted, "{text}");
    // The 503 is the request log's one line (written within moments), not a second at ERROR.
    let mut logs = env.logs();
    for _ in 0..100 {
        if logs.contains("status=503") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        logs = env.logs();
    }
    assert!(logs.contains("status=503"), "{logs}");
    assert!(!logs.contains("response failed"), "{logs}");
}

/// A setting the process cannot take stops it with the reason in one line, whatever
/// `RUST_BACKTRACE` says: a wrong setting must not read like a crash.
#[test]
fn a_setting_that_cannot_be_taken_is_said_in_one_line() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zenovay"))
        .arg("identity")
        .env("RUST_BACKTRACE", "1")
        .env("ZENOVAY_KEY_HASH_SECRETS", "v1:abcdefghijklmnopqrstuvwxyz0123456789abcd")
        .env("ZENOVAY_DATA_DIR", std::env::temp_dir().join("zenovay-unused"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end(), "Error: a key-hash secret version must be a positive number", "{stderr}");
}

/// What a process refuses to start with, as it says it; one that starts instead is stopped and
/// the test fails, rather than waiting on it.
fn refusal(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_zenovay"));
    command.args(args).env("ZENOVAY_DATA_DIR", dir.path()).env("ZENOVAY_HTTP_ADDR", "127.0.0.1:0");
    let mut child = command
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "{args:?} {env:?} succeeded");
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return stderr.trim_end().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("{args:?} {env:?} started instead of refusing");
}

#[test]
fn a_plans_file_that_cannot_be_read_is_named() {
    let stderr = refusal(&[], &[("ZENOVAY_PLANS_FILE", "/no/such/plans.json")]);
    assert!(stderr.starts_with("Error: cannot read ZENOVAY_PLANS_FILE /no/such/plans.json: "), "{stderr}");
}

#[test]
fn the_demo_is_refused_outside_the_all_in_one_mode() {
    let stderr = refusal(&["--demo", "gateway"], &[]);
    assert!(stderr.starts_with("Error: --demo seeds the all-in-one mode only"), "{stderr}");
}

/// The services speak gRPC without TLS: an https:// service URL is refused at start, by name,
/// rather than failing on the first call.
#[test]
fn an_https_service_url_is_refused_at_start() {
    let stderr = refusal(&["gateway"], &[("ZENOVAY_POLICY_URL", "https://policy.internal:50052")]);
    assert!(stderr.starts_with("Error: ZENOVAY_POLICY_URL must be an http:// URL"), "{stderr}");
}

#[test]
fn a_log_filter_that_does_not_parse_is_refused() {
    let stderr = refusal(&[], &[("ZENOVAY_LOG", "info,[[[bad")]);
    assert!(stderr.starts_with("Error: ZENOVAY_LOG is not a log filter: "), "{stderr}");
}

/// On SIGTERM a service reports NOT_SERVING to gRPC health checks, and goes on answering for the
/// drain, so that a balancer polling its health stops sending it calls before it stops.
#[tokio::test]
async fn a_service_told_to_stop_reports_not_serving_before_it_stops() {
    let env = TestEnv::split(1).await;
    let (role, pid) = env.pids_by_role().into_iter().find(|(role, _)| role == "identity").expect("identity");
    let url = &env.services.iter().find(|(r, _)| *r == role).expect("identity's address").1;
    let channel = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let service = "zenovay.identity.v1.IdentityService".to_owned();
    // The status answered, or none once the service is gone.
    let status = |answer: Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, tonic::Status>| {
        answer.ok().map(|a| a.into_inner().status())
    };
    let first = status(health.check(HealthCheckRequest { service: service.clone() }).await);
    assert_eq!(first, Some(ServingStatus::Serving));
    let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(sent.success());
    let mut seen = vec![];
    for _ in 0..100 {
        let now = status(health.check(HealthCheckRequest { service: service.clone() }).await);
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if now.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Serving until the signal is read, then NOT_SERVING for the drain, then no answer.
    let seen: Vec<_> = seen.into_iter().skip_while(|s| *s == Some(ServingStatus::Serving)).collect();
    assert_eq!(seen, [Some(ServingStatus::NotServing), None]);
}

/// A service's gRPC reflection lists its own contract and health checking, not the other
/// services' it does not serve.
#[tokio::test]
async fn a_services_reflection_lists_its_own_service_and_health() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let env = TestEnv::split(1).await;
    let url = &env.services.iter().find(|(role, _)| role == "policy").expect("policy's address").1;
    let channel = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("a list of services: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["grpc.health.v1.Health", "zenovay.policy.v1.PolicyService"]);
}

/// After SIGTERM a gateway keeps answering for its drain; Plausible's readiness check, which
/// load balancers and uptime monitors probe as they would `/readyz`, says 503 for it too, while
/// the liveness check still answers.
#[tokio::test]
async fn a_draining_gateway_is_not_ready_on_plausibles_health_check_either() {
    let env = TestEnv::all_in_one_process().await;
    let ready = "/api/external/v1/plausible/api/system/health/ready";
    assert_eq!(env.request(Method::GET, ready).send().await.unwrap().status(), StatusCode::OK);
    let (_, pid) = env.pids_by_role().into_iter().next().expect("the process");
    let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(sent.success());
    let env = &env;
    let status =
        |path: &'static str| async move { env.request(Method::GET, path).send().await.ok().map(|r| r.status()) };
    let mut seen = vec![];
    for _ in 0..100 {
        let now = status(ready).await;
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if now == Some(StatusCode::SERVICE_UNAVAILABLE) {
            assert_eq!(status("/api/external/v1/plausible/api/health").await, Some(StatusCode::SERVICE_UNAVAILABLE));
            assert_eq!(status("/api/external/v1/plausible/api/system/health/live").await, Some(StatusCode::OK));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen: Vec<_> = seen.into_iter().skip_while(|s| *s == Some(StatusCode::OK)).collect();
    assert_eq!(seen, [Some(StatusCode::SERVICE_UNAVAILABLE)]);
}

//! Input and connections an attacker or a failing peer would try: control characters, calls cut
//! mid-way, cross-site requests on cookie sessions, doubled credentials, silent connections.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{GatewayFlags, TestEnv, TestUser, assert_refused, into_json};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn post_json(env: &TestEnv, path: &str, body: &str) -> (StatusCode, Value) {
    let request = env.request(Method::POST, path).header("content-type", "application/json").body(body.to_owned());
    into_json(request.send().await.unwrap()).await
}

async fn send_event(env: &TestEnv, body: &str) -> (StatusCode, Value) {
    let request = env
        .request(Method::POST, "/api/event")
        .header("user-agent", FIREFOX)
        .header("content-type", "text/plain")
        .body(body.to_owned());
    into_json(request.send().await.unwrap()).await
}

/// A Pro user with a read-write key and a website; the key and the site's domain and id.
async fn site(env: &TestEnv) -> (TestUser, String, String, String) {
    let user = env.user("nul").await;
    env.set_plan(&user.team_id, "pro").await;
    let (key, _) =
        env.create_key(&user, json!({ "name": "k", "permissions": ["read", "write"], "teams": "all" })).await;
    let domain = format!("nul-{}.example", &user.user_id[..8]);
    let body = json!({ "team_id": user.team_id, "domain": domain, "name": "S" });
    let (status, site) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    let id = site["data"]["id"].as_str().unwrap().to_owned();
    (user, key, domain, id)
}

async fn a_nul_in_a_login_or_signup_field_is_a_400_naming_it(env: &TestEnv) {
    let (status, body) =
        post_json(env, "/api/v1/auth/login", r#"{"email":"a\u0000@example.com","password":"x"}"#).await;
    assert_refused(status, &body, "email");
    let signup = r#"{"email":"nul@example.com","password":"correct horse battery","name":"N\u0000"}"#;
    let (status, body) = post_json(env, "/api/v1/auth/signup", signup).await;
    assert_refused(status, &body, "name");
}

async fn a_nul_in_a_tracker_event_is_a_400_and_costs_its_neighbours_nothing(env: &TestEnv) {
    let (_, key, domain, id) = site(env).await;
    let good = |n: usize| format!(r#"{{"n":"pageview","u":"https://{domain}/ok{n}","d":"{domain}"}}"#);
    let bad = [
        (format!(r#"{{"n":"page\u0000view","u":"https://{domain}/","d":"{domain}"}}"#), "n"),
        (format!(r#"{{"n":"pageview","u":"https://{domain}/","d":"{domain}\u0000"}}"#), "d"),
        (
            format!(r#"{{"n":"pageview","u":"https://{domain}/","d":"{domain}","m":"{{\"a\":\"\\u0000\"}}"}}"#),
            "props.a",
        ),
    ];
    // Bad and good events at once, so that they share the writers' batches.
    let (bad_answers, good_answers) = tokio::join!(
        futures::future::join_all(bad.iter().map(|(body, _)| send_event(env, body))),
        futures::future::join_all((0..6).map(|n| {
            let body = good(n);
            async move { send_event(env, &body).await }
        })),
    );
    for ((status, body), (_, field)) in bad_answers.iter().zip(&bad) {
        assert_refused(*status, body, field);
    }
    for (status, body) in &good_answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) =
        env.api(Method::GET, &format!("/stats/aggregate?site_id={id}&period=day&metrics=pageviews"), &key, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["results"]["pageviews"]["value"], 6, "{body}");
}

async fn a_nul_in_a_filter_or_a_path_is_a_400(env: &TestEnv) {
    let (_, key, _, id) = site(env).await;
    let path = format!("/stats/aggregate?site_id={id}&period=day&metrics=pageviews&filters=event:page%3D%3D%2F%00");
    let (status, body) = env.api(Method::GET, &path, &key, None).await;
    assert_refused(status, &body, "filters");
    let (status, body) = env.api(Method::GET, "/websites/ab%00cd", &key, None).await;
    assert_refused(status, &body, "id");
    let body = json!({ "name": "a\u{0}b" });
    let (status, body) = env.api(Method::PATCH, &format!("/websites/{id}"), &key, Some(body)).await;
    assert_refused(status, &body, "name");
}

/// A session that a browser holds as a cookie.
fn with_cookie(env: &TestEnv, method: Method, path: &str, session: &str) -> reqwest::RequestBuilder {
    env.request(method, path).header("cookie", format!("zenovay_session={session}"))
}

/// A fresh browser session of `user` and its CSRF token, as the login answer gives them.
async fn browser_session(env: &TestEnv, user: &TestUser) -> (String, String) {
    let login = json!({ "email": user.email, "password": "correct horse battery" });
    let (status, body) = post_json(env, "/api/v1/auth/login", &login.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = body["data"]["session_token"].as_str().unwrap().to_owned();
    (session, body["data"]["csrf_token"].as_str().expect("login answers a csrf_token").to_owned())
}

async fn a_cookie_session_change_without_the_csrf_token_is_refused(env: &TestEnv) {
    let user = env.user("csrf").await;
    let (session, token) = browser_session(env, &user).await;
    let request = with_cookie(env, Method::POST, "/api/v1/teams", &session).json(&json!({ "name": "T" }));
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
        .header("x-csrf-token", &token)
        .json(&json!({ "name": "T" }));
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_cookie_session_change_from_another_origin_is_refused(env: &TestEnv) {
    let user = env.user("origin").await;
    let (session, token) = browser_session(env, &user).await;
    let host = env.base().trim_start_matches("http://").to_owned();
    let (ip, port) = host.rsplit_once(':').unwrap();
    let other = format!("http://{ip}:{}", port.parse::<u16>().unwrap() + 1);
    for origin in [other.as_str(), "https://evil.example", "null"] {
        let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
            .header("origin", origin)
            .header("x-csrf-token", &token)
            .json(&json!({ "name": "T" }));
        let (status, body) = into_json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
    }
    let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
        .header("origin", env.base())
        .header("x-csrf-token", &token)
        .json(&json!({ "name": "T" }));
    assert_eq!(request.send().await.unwrap().status(), StatusCode::CREATED);
}

async fn a_cookie_session_change_with_a_text_plain_body_is_refused(env: &TestEnv) {
    let user = env.user("plain").await;
    let (session, token) = browser_session(env, &user).await;
    let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
        .header("x-csrf-token", &token)
        .header("content-type", "text/plain")
        .body(r#"{"name":"T"}"#);
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
}

/// A body sent without any `Content-Type` is not taken for JSON either: a page of another site
/// can send one with `fetch` in no-cors mode.
async fn a_cookie_session_change_with_a_body_and_no_content_type_is_refused(env: &TestEnv) {
    let user = env.user("untyped").await;
    let (session, token) = browser_session(env, &user).await;
    let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
        .header("x-csrf-token", &token)
        .body(r#"{"name":"T"}"#);
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    // Without a body there is nothing to type.
    let request = with_cookie(env, Method::POST, "/api/v1/auth/logout", &session).header("x-csrf-token", &token);
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn a_cookie_session_change_with_another_authorization_scheme_still_needs_the_csrf_token(env: &TestEnv) {
    let user = env.user("csrf").await;
    let (session, _) = browser_session(env, &user).await;
    // A browser adds the Basic credentials of a proxy in front by itself; the cookie authenticates.
    for authorization in ["Basic eDp5", "Bearer", "Token abc", ""] {
        let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
            .header("authorization", authorization)
            .header("origin", "https://evil.example")
            .json(&json!({ "name": "T" }));
        let (status, body) = into_json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{authorization:?}: {body}");
    }
    let (status, teams) = env.session_json(Method::GET, "/api/v1/teams", &user.session, None).await;
    assert_eq!((status, teams["data"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "nothing was made");
}

async fn a_bearer_session_needs_no_csrf_token(env: &TestEnv) {
    let user = env.user("bearer").await;
    let (status, body) =
        env.session_json(Method::POST, "/api/v1/teams", &user.session, Some(json!({ "name": "T" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_bearer_session_is_not_refused_for_the_origin_it_names(env: &TestEnv) {
    let user = env.user("bearer").await;
    let request = env
        .request(Method::POST, "/api/v1/teams")
        .bearer_auth(&user.session)
        .header("origin", "https://evil.example")
        .json(&json!({ "name": "T" }));
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_wrong_csrf_token_is_told_apart_from_a_missing_one(env: &TestEnv) {
    let user = env.user("csrf").await;
    let (session, _) = browser_session(env, &user).await;
    let request = with_cookie(env, Method::POST, "/api/v1/teams", &session)
        .header("x-csrf-token", "not-this-sessions")
        .json(&json!({ "name": "T" }));
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("does not match"), "{body}");
}

async fn two_credentials_are_refused_rather_than_one_picked(env: &TestEnv) {
    let (user, key, _, _) = site(env).await;
    for header in ["authorization", "x-api-key"] {
        let value = |k: &str| if header == "authorization" { format!("Bearer {k}") } else { k.to_owned() };
        let request = env
            .request(Method::GET, "/api/external/v1/websites")
            .header(header, value(&key))
            .header(header, value("zv_someoneelse"));
        let (status, body) = into_json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{header}: {body}");
    }
    let request = env
        .request(Method::GET, "/api/v1/me")
        .header("authorization", format!("Bearer {}", user.session))
        .header("authorization", "Bearer someone-else");
    let (status, body) = into_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // With one of each, `Authorization` is the credential, as clients generated from the
    // document (which offers both) send them.
    let both = env.request(Method::GET, "/api/external/v1/websites").bearer_auth(&key).header("x-api-key", "zv_other");
    let (status, body) = into_json(both.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_long_value_quoted_in_a_refusal_is_a_400_and_leaves_other_calls_working(env: &TestEnv) {
    let (user, key, _, id) = site(env).await;
    // Services quote what they refuse; a gRPC status travels in HTTP/2 headers, which the
    // gateway's connection to each service bounds for all the calls it carries.
    let long = "a".repeat(100_000);
    let body = json!({ "redirect_uris": [format!("https://x.example/{long}")], "client_name": "x" });
    let (status, answer) =
        into_json(env.request(Method::POST, "/oauth/register").json(&body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    for n in [20_000, 100_000] {
        let body = json!({ "date_range": "7d", "metrics": ["visitors"], "dimensions": [format!("event:props:{}", "a".repeat(n))] });
        let (status, answer) = env.api(Method::POST, &format!("/query/{id}"), &key, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{n}: {}", &answer.to_string()[..200]);
        assert!(answer.to_string().len() < 4096, "the refusal quotes a bounded part of the value");
    }
    let body = json!({ "name": "k", "permissions": ["read"], "teams": "all", "allowed_ips": [long] });
    let (status, _) = env.session_json(Method::POST, "/api/v1/account/api-keys", &user.session, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = env.api(Method::GET, "/websites", &key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

const SHORT_HEADER_TIMEOUT: GatewayFlags = &[("--http-header-timeout-ms", "300")];

both_modes!(
    a_nul_in_a_login_or_signup_field_is_a_400_naming_it,
    a_nul_in_a_tracker_event_is_a_400_and_costs_its_neighbours_nothing,
    a_nul_in_a_filter_or_a_path_is_a_400,
    a_cookie_session_change_without_the_csrf_token_is_refused,
    a_cookie_session_change_from_another_origin_is_refused,
    a_cookie_session_change_with_a_text_plain_body_is_refused,
    a_cookie_session_change_with_a_body_and_no_content_type_is_refused,
    a_cookie_session_change_with_another_authorization_scheme_still_needs_the_csrf_token,
    a_bearer_session_needs_no_csrf_token,
    a_bearer_session_is_not_refused_for_the_origin_it_names,
    a_wrong_csrf_token_is_told_apart_from_a_missing_one,
    two_credentials_are_refused_rather_than_one_picked,
    a_long_value_quoted_in_a_refusal_is_a_400_and_leaves_other_calls_working;
    gateway SHORT_HEADER_TIMEOUT => an_idle_or_trickling_connection_is_closed
);

/// A gRPC peer that takes each call and dies before answering it, as a crashed service does.
async fn dying_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(tcp).await else { return };
                // The call arrives; then the connection goes, with it in flight.
                let _call = connection.accept().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A gateway of its own whose every backend is [`dying_peer`], waiting `body_timeout` for a
/// request's body; its address.
async fn gateway_before_dying_peer(body_timeout: Duration) -> std::net::SocketAddr {
    let peer = dying_peer().await;
    let remote = |url: &str| common::transport::remote(url).unwrap();
    let backends =
        gateway::Backends { identity: remote(&peer), policy: remote(&peer), analytics: remote(&peer), changes: None };
    let config = gateway::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        operator_token: None,
        client_ip_header: None,
        country_header: None,
        public_url: None,
        drain: Duration::ZERO,
        header_timeout: Duration::from_secs(10),
        body_timeout,
        secret_scanning_keys_file: None,
    };
    let gateway = gateway::Gateway::build(&config, backends).await.unwrap();
    let address = gateway.local_addr();
    tokio::spawn(gateway.run(common::shutdown::Shutdown::default()));
    address
}

#[tokio::test]
async fn a_backend_that_dies_mid_call_is_a_503() {
    let base = format!("http://{}", gateway_before_dying_peer(Duration::from_secs(10)).await);
    let login = json!({ "email": "someone@example.com", "password": "correct horse battery" });
    let response = reqwest::Client::new().post(format!("{base}/api/v1/auth/login")).json(&login).send().await.unwrap();
    let (status, body) = into_json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
}

/// An HTTP/1.1 answer read from `read` until its JSON envelope has ended; the bound only keeps a
/// regression from hanging CI.
async fn enveloped_answer(read: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut answer = Vec::new();
    let until_ended = async {
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"}}") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(30), until_ended).await.is_ok(), "the gateway never answered");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A body that stops arriving is a 408 in the envelope once the body timeout has passed, so a
/// client can tell a stalled upload from a bad one.
#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408() {
    let address = gateway_before_dying_peer(Duration::from_millis(300)).await;
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let head =
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    tcp.write_all(format!("{head}{{\"email\": ").as_bytes()).await.unwrap();
    let answer = enveloped_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"REQUEST_TIMEOUT""#), "{answer}");
}

async fn an_idle_or_trickling_connection_is_closed(env: &TestEnv) {
    let addr = env.base().trim_start_matches("http://").to_owned();
    // Idle after one request (keep-alive), silent from the start, and headers sent a byte at a
    // time, never finished.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let trickling = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (trickle_in, mut trickle_out) = trickling.into_split();
    tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nx-slow: ".iter().cycle() {
            if trickle_out.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Read until the server closes; the generous bound only keeps a regression from hanging CI.
    let closed = |name: &'static str, mut read: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let until_closed = async {
            let mut buf = [0u8; 1024];
            while let Ok(1..) = read.read(&mut buf).await {}
        };
        assert!(tokio::time::timeout(Duration::from_secs(30), until_closed).await.is_ok(), "{name} never closed");
    };
    closed("the idle connection", Box::new(idle)).await;
    closed("the silent connection", Box::new(silent)).await;
    closed("the trickling connection", Box::new(trickle_in)).await;
}

/// A body sent a byte at a time, each in good time, is still a 408 once the body timeout has
/// passed since the request came: the timeout bounds the whole body, not the wait for each part.
#[tokio::test]
async fn a_body_trickled_past_the_body_timeout_is_a_408() {
    let address = gateway_before_dying_peer(Duration::from_millis(500)).await;
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let head =
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    write.write_all(head.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        for _ in 0..100 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // The whole body would take 5 s.
    let answer = enveloped_answer(&mut read).await;
    // Had the body been read to its end, its spaces would be a 400.
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// The gateway speaks HTTP/1.1 only: a connection that opens with HTTP/2's preface is refused,
/// not served (TLS and HTTP/2 belong to the proxy in front).
#[tokio::test]
async fn a_connection_opening_in_http2_is_not_served() {
    let address = gateway_before_dying_peer(Duration::from_secs(10)).await;
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer));
    assert!(read.await.is_ok(), "the connection was neither answered nor closed");
    // An HTTP/2 server would answer with its SETTINGS frame (type 4) first.
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&answer));
}

/// A value of the wrong type may be a secret (a password sent as a number): the refusal names
/// the field and the types it found and wanted, never the value.
#[tokio::test]
async fn a_value_of_the_wrong_type_is_refused_without_being_quoted() {
    let env = TestEnv::all_in_one().await;
    let bodies = [
        ("/api/v1/auth/signup", r#"{"email": "a@example.com", "password": 918273645012, "name": "A"}"#),
        ("/api/v1/auth/login", r#"{"email": "a@example.com", "password": 918273645012}"#),
        ("/api/v1/auth/login", r#"{"email": "a@example.com", "password": 9182736.45012}"#),
    ];
    for (path, body) in bodies {
        let (status, answer) = post_json(&env, path, body).await;
        assert_refused(status, &answer, "password");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("password: invalid type: "), "{message}");
        assert!(message.ends_with(", expected a string"), "{message}");
        assert!(!message.contains("9182736"), "{message}");
    }
}

/// A number where one of a few words belongs is named a wrong type, as other wrong types are.
#[tokio::test]
async fn a_number_for_a_choice_of_words_is_refused_as_a_wrong_type() {
    let env = TestEnv::all_in_one().await;
    let ann = env.user("ann").await;
    let path = format!("/api/v1/teams/{}/api-key-policy", ann.team_id);
    let (status, answer) = env.session_json(Method::PUT, &path, &ann.session, Some(json!({ "policy": 5 }))).await;
    assert_refused(status, &answer, "policy");
    assert_eq!(answer["error"]["message"], "policy: invalid type, expected a string");
    let (status, answer) = post_json(&env, "/api/v1/auth/login", r#"{"email": }"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(!answer["error"]["message"].as_str().unwrap().contains("invalid type"), "{answer}");
}

//! MCP (SPEC §8) end to end, in both modes: metadata discovery, dynamic registration, sign-in and
//! consent, the code exchange with PKCE, tools over Streamable HTTP, the daily quota, and
//! listing and revoking connections (SPEC §7).

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::{COUNTRY_HEADER, TestEnv, TestUser, into_json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// The value of `name` in a URL's query.
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

struct Client<'a> {
    env: &'a TestEnv,
    /// Does not follow redirects: the test reads them.
    http: reqwest::Client,
    client_id: String,
}

impl Client<'_> {
    /// Signs `user` in on the consent page, grants `scopes` on their team, and returns the code
    /// and the PKCE verifier.
    async fn authorize(&self, user: &TestUser, scopes: &[&str]) -> (String, String) {
        let verifier = format!("verifier-{}-0123456789-0123456789-abcdef", rand::random::<u64>());
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let oauth = form(&[
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "st4te"),
            ("scope", &scopes.join(" ")),
        ]);
        let base = &self.env.gateways[0];
        let page = self.http.get(format!("{base}/oauth/authorize?{oauth}")).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Sign in"), "a signed-out user is asked to sign in");
        let login = form(&[("oauth", &oauth), ("action", "login"), ("email", &user.email), ("password", "wrong")]);
        let refused = self.http.post(format!("{base}/oauth/authorize")).body(login).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let login = form(&[
            ("oauth", &oauth),
            ("action", "login"),
            ("email", &user.email),
            ("password", "correct horse battery"),
        ]);
        let signed_in = self
            .http
            .post(format!("{base}/oauth/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(login)
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let consent = self.http.get(format!("{base}/oauth/authorize?{oauth}")).header("cookie", &cookie).send().await;
        let consent = consent.unwrap().text().await.unwrap();
        assert!(consent.contains(&user.team_id) && consent.contains("management:write"), "{consent}");
        let mut answer = vec![("oauth", oauth.as_str()), ("action", "allow"), ("team_id", user.team_id.as_str())];
        answer.extend(scopes.iter().map(|s| ("scope", *s)));
        let allowed = self
            .http
            .post(format!("{base}/oauth/authorize"))
            .header("cookie", &cookie)
            .body(form(&answer))
            .send()
            .await;
        let allowed = allowed.unwrap();
        assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
        let location = allowed.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(query_value(&location, "state").as_deref(), Some("st4te"));
        (query_value(&location, "code").expect("a code"), verifier)
    }

    /// A new connection's tokens.
    async fn connect(&self, user: &TestUser, scopes: &[&str]) -> Value {
        let (code, verifier) = self.authorize(user, scopes).await;
        let exchange = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];
        let (status, tokens) = self.token(&exchange).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        tokens
    }

    async fn token(&self, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut all = vec![("client_id", self.client_id.as_str())];
        all.extend_from_slice(pairs);
        let response = self
            .http
            .post(format!("{}/oauth/token", self.env.gateways[0]))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&all))
            .send()
            .await
            .unwrap();
        into_json(response).await
    }
}

/// One JSON-RPC call to `/mcp`.
async fn rpc(env: &TestEnv, token: &str, method: &str, params: Value) -> (StatusCode, Value) {
    let response = env
        .request(Method::POST, "/mcp")
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
        .send()
        .await
        .unwrap();
    into_json(response).await
}

/// `tools/call`: (is an error, the text it returned).
async fn call(env: &TestEnv, token: &str, tool: &str, arguments: Value) -> (bool, String) {
    let (status, body) = rpc(env, token, "tools/call", json!({ "name": tool, "arguments": arguments })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["result"];
    (result["isError"] == true, result["content"][0]["text"].as_str().unwrap_or_default().to_owned())
}

async fn mcp_end_to_end(env: &TestEnv) {
    let base = env.gateways[0].clone();
    // Discovery.
    let (status, resource) =
        into_json(env.request(Method::GET, "/.well-known/oauth-protected-resource").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resource["resource"], format!("{base}/mcp"));
    assert_eq!(resource["authorization_servers"][0], base);
    let (_, server) =
        into_json(env.request(Method::GET, "/.well-known/oauth-authorization-server").send().await.unwrap()).await;
    assert_eq!(server["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(server["registration_endpoint"], format!("{base}/oauth/register"));
    let unauthenticated = env.request(Method::POST, "/mcp").json(&json!({})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let challenge = unauthenticated.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("resource_metadata=") && challenge.contains("/.well-known/oauth-protected-resource"));

    // Dynamic registration.
    let register = |body: Value| env.request(Method::POST, "/oauth/register").json(&body).send();
    let (status, bad) =
        into_json(register(json!({ "redirect_uris": ["http://evil.example/cb"] })).await.unwrap()).await;
    assert_eq!((status, bad["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")));
    let (status, registered) =
        into_json(register(json!({ "client_name": "Test <client>", "redirect_uris": [REDIRECT] })).await.unwrap())
            .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let client = Client { env, http, client_id: registered["client_id"].as_str().unwrap().to_owned() };

    // Consent, then the code exchange: once, with the right verifier only. The Free plan may
    // use MCP.
    let ann = env.user("ann").await;
    let (code, verifier) = client.authorize(&ann, &["analytics:read", "management:write"]).await;
    let exchange = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = client.token(&[&exchange[..], &[("code_verifier", verifier.as_str())]].concat()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        (tokens["token_type"].as_str(), tokens["scope"].as_str()),
        (Some("Bearer"), Some("analytics:read management:write"))
    );
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, again) = client.token(&[&exchange[..], &[("code_verifier", verifier.as_str())]].concat()).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "a code works once"
    );
    let (code, _) = client.authorize(&ann, &["analytics:read"]).await;
    let wrong = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &"x".repeat(43)),
    ];
    assert_eq!(client.token(&wrong).await.1["error"], "invalid_grant", "PKCE is checked");

    // Tools over Streamable HTTP.
    let (status, init) = rpc(
        env,
        &access,
        "initialize",
        json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "test", "version": "1" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "zenovay", "{init}");
    let (_, listed) = rpc(env, &access, "tools/list", json!({})).await;
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    for tool in [
        "list_websites",
        "get_overview",
        "get_aggregate",
        "get_timeseries",
        "get_breakdown",
        "get_realtime",
        "create_website",
        "update_website",
    ] {
        assert!(names.contains(&tool), "{tool} in {names:?}");
    }
    let domain = format!("mcp-{}.example", &ann.user_id[..8]);
    let (failed, created) = call(env, &access, "create_website", json!({ "domain": domain, "name": "Via MCP" })).await;
    assert!(!failed, "{created}");
    let website: Value = serde_json::from_str(&created).unwrap();
    let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/") });
    let sent = env
        .request(Method::POST, "/api/event")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .header(COUNTRY_HEADER, "FR")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let site = json!({ "website_id": website["id"], "period": "day", "metrics": ["visitors", "pageviews"] });
    let (failed, totals) = call(env, &access, "get_aggregate", site).await;
    assert!(!failed, "{totals}");
    assert_eq!(serde_json::from_str::<Value>(&totals).unwrap(), json!({ "visitors": 1, "pageviews": 1 }));
    let (_, countries) =
        call(env, &access, "get_breakdown", json!({ "website_id": website["id"], "property": "visit:country" })).await;
    assert_eq!(
        serde_json::from_str::<Value>(&countries).unwrap(),
        json!([{ "country": "FR", "visitors": 1, "pageviews": 1 }])
    );
    let (failed, message) = call(env, &access, "get_overview", json!({ "website_id": "someone-elses" })).await;
    assert!(failed && message.contains("not found"), "{message}");

    // A read-only connection sees no write tools and cannot call them.
    let read_only = client.connect(&ann, &["analytics:read"]).await["access_token"].as_str().unwrap().to_owned();
    let (_, listed) = rpc(env, &read_only, "tools/list", json!({})).await;
    assert!(!listed.to_string().contains("create_website"), "{listed}");
    let (failed, message) =
        call(env, &read_only, "create_website", json!({ "domain": "x.example", "name": "X" })).await;
    assert!(failed && message.contains("management:write"), "{message}");

    // The daily quota of the team's plan counts every tools/call made (4 so far; the refused
    // create_website never ran).
    env.set_plan_with(&ann.team_id, "free", json!({ "mcp_calls_per_day": 5 })).await;
    let (failed, _) = call(env, &access, "list_websites", json!({})).await;
    assert!(!failed, "the fifth call is within the quota");
    let (failed, message) = call(env, &access, "list_websites", json!({})).await;
    assert!(failed && message.contains("quota"), "{message}");

    // Connections: listed, revoked, and the token and its refresh token stop at once.
    let (status, connections) =
        env.session_json(Method::GET, "/api/v1/account/mcp-connections", &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    let connections = connections["data"].as_array().unwrap().clone();
    assert_eq!(connections.len(), 3, "{connections:?}");
    assert!(connections.iter().all(|c| c["client_name"] == "Test <client>" && c["team_id"] == ann.team_id.as_str()));
    let first = connections.iter().find(|c| c["scopes"] == json!(["analytics:read", "management:write"])).unwrap();
    assert!(first["last_used_at"].is_string(), "{first}");
    let path = format!("/api/v1/account/mcp-connections/{}", first["id"].as_str().unwrap());
    let (status, revoked) = env.session_json(Method::DELETE, &path, &ann.session, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["data"]["revoked_at"].is_string());
    let (status, _) = rpc(env, &access, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked connection's token stops at once");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = client.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bob = env.user("bob").await;
    let (status, _) = env.session_json(Method::DELETE, &path, &bob.session, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the owner revokes a connection");

    // Refresh tokens rotate.
    let pair = client.connect(&ann, &["analytics:read"]).await;
    let old = pair["refresh_token"].as_str().unwrap();
    let (status, renewed) = client.token(&[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_ne!(renewed["access_token"], pair["access_token"]);
    let (status, _) = client.token(&[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a refresh token works once");
    let (status, _) = rpc(env, renewed["access_token"].as_str().unwrap(), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // No token reaches the logs (the split mode's services log at debug level).
    let logs = env.logs();
    assert!(env.services.is_empty() || logs.contains("/mcp"), "the split mode's logs record the MCP requests");
    for secret in [access.as_str(), read_only.as_str(), refresh, old, renewed["access_token"].as_str().unwrap()] {
        assert!(!logs.contains(secret), "a token is in the logs");
    }
}

both_modes!(mcp_end_to_end);

/// Behind a proxy the `Host` header is the proxy's business: with `ZENOVAY_PUBLIC_URL` set, the
/// metadata and the challenge name the configured origin whatever `Host` a request carries.
#[tokio::test]
async fn oauth_metadata_names_the_configured_public_url() {
    let env = TestEnv::all_in_one_with(&["--public-url", "https://api.example.com/"]).await;
    let get = |path: &'static str| env.request(Method::GET, path).header("host", "attacker.example").send();
    let (status, resource) = into_json(get("/.well-known/oauth-protected-resource").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resource["resource"], "https://api.example.com/mcp");
    assert_eq!(resource["authorization_servers"], json!(["https://api.example.com"]));
    let (_, server) = into_json(get("/.well-known/oauth-authorization-server").await.unwrap()).await;
    assert_eq!(server["issuer"], "https://api.example.com");
    assert_eq!(server["token_endpoint"], "https://api.example.com/oauth/token");
    let unauthenticated =
        env.request(Method::POST, "/mcp").header("host", "attacker.example").json(&json!({})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let challenge = unauthenticated.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\""));
}

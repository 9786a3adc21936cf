//! MCP (docs/behaviour.md#mcp) end to end, in both modes: metadata discovery, dynamic registration, sign-in and
//! consent, the code exchange with PKCE, tools over Streamable HTTP, the daily quota, and
//! listing and revoking connections (docs/behaviour.md#dashboard-api).

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::{COUNTRY_HEADER, GatewayFlags, TestEnv, TestUser, add_member, into_json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// The value of `name` in a URL's query.
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The cookies a response sets, as a `Cookie` header sends them back.
fn set_cookies(response: &reqwest::Response) -> String {
    let pairs = response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()?.split(';').next());
    pairs.collect::<Vec<_>>().join("; ")
}

/// The value of a form's hidden field.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    html[start..].split('"').next().map(str::to_owned)
}

/// The consent form's answer allowing `scopes` on the user's team.
fn allow<'a>(user: &'a TestUser, oauth: &'a str, scopes: &[&'a str], csrf: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut answer = vec![("oauth", oauth), ("csrf", csrf), ("action", "allow"), ("team_id", user.team_id.as_str())];
    answer.extend(scopes.iter().map(|s| ("scope", *s)));
    answer
}

struct Client<'a> {
    env: &'a TestEnv,
    /// Does not follow redirects: the test reads them.
    http: reqwest::Client,
    client_id: String,
}

/// An authorization request's query, and the PKCE verifier behind its challenge.
struct AuthorizationRequest {
    oauth: String,
    verifier: String,
}

impl Client<'_> {
    /// The query of an authorization request for `scopes`, with `extra` parameters.
    fn request(&self, scopes: &[&str], extra: &[(&str, &str)]) -> AuthorizationRequest {
        let verifier = format!("verifier-{}-0123456789-0123456789-abcdef", rand::random::<u64>());
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let scope = scopes.join(" ");
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "st4te"),
            ("scope", scope.as_str()),
        ];
        pairs.extend_from_slice(extra);
        AuthorizationRequest { oauth: form(&pairs), verifier }
    }

    async fn page(&self, oauth: &str, cookie: &str) -> reqwest::Response {
        let base = &self.env.gateways[0];
        self.http.get(format!("{base}/oauth/authorize?{oauth}")).header("cookie", cookie).send().await.unwrap()
    }

    /// Posts the sign-in or consent form as a browser on `origin` does.
    async fn post(&self, pairs: &[(&str, &str)], cookie: &str, origin: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/authorize", self.env.gateways[0]))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .header("origin", origin)
            .body(form(pairs))
            .send()
            .await
            .unwrap()
    }

    /// Signs `user` in on the sign-in form (after a wrong password); returns the session cookie.
    async fn sign_in(&self, user: &TestUser, oauth: &str) -> String {
        let base = self.env.gateways[0].as_str();
        let page = self.page(oauth, "").await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf_cookie = set_cookies(&page);
        let page = page.text().await.unwrap();
        assert!(page.contains("Sign in"), "a signed-out user is asked to sign in");
        let csrf = hidden(&page, "csrf").expect("the sign-in form carries a CSRF token");
        let login = |password| {
            [("oauth", oauth), ("csrf", &csrf), ("action", "login"), ("email", &user.email), ("password", password)]
        };
        let refused = self.post(&login("wrong"), &csrf_cookie, base).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let signed_in = self.post(&login("correct horse battery"), &csrf_cookie, base).await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        set_cookies(&signed_in)
    }

    /// The consent page of a signed-in user, and its CSRF token.
    async fn consent_page(&self, oauth: &str, cookie: &str) -> (String, String) {
        let consent = self.page(oauth, cookie).await.text().await.unwrap();
        let csrf = hidden(&consent, "csrf").expect("the consent form carries a CSRF token");
        (consent, csrf)
    }

    /// Signs `user` in on the consent page, grants `scopes` on their team, and returns the code
    /// and the PKCE verifier.
    async fn authorize(&self, user: &TestUser, scopes: &[&str]) -> (String, String) {
        self.authorize_with(user, scopes, &[]).await
    }

    /// `authorize` with extra request parameters.
    async fn authorize_with(&self, user: &TestUser, scopes: &[&str], extra: &[(&str, &str)]) -> (String, String) {
        let AuthorizationRequest { oauth, verifier } = self.request(scopes, extra);
        let cookie = self.sign_in(user, &oauth).await;
        let (consent, csrf) = self.consent_page(&oauth, &cookie).await;
        assert!(consent.contains(&user.team_id) && consent.contains("management:write"), "{consent}");
        let answer = allow(user, &oauth, scopes, &csrf);
        let allowed = self.post(&answer, &cookie, &self.env.gateways[0]).await;
        assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
        let location = allowed.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(query_value(&location, "state").as_deref(), Some("st4te"));
        (query_value(&location, "code").expect("a code"), verifier)
    }

    /// A new connection's tokens.
    async fn connect(&self, user: &TestUser, scopes: &[&str]) -> Value {
        let (code, verifier) = self.authorize(user, scopes).await;
        let (status, tokens) = self.exchange(&code, &verifier, &[]).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        tokens
    }

    /// The code exchange, with `extra` parameters.
    async fn exchange(&self, code: &str, verifier: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ];
        pairs.extend_from_slice(extra);
        self.token(&pairs).await
    }

    async fn refresh(&self, refresh_token: &Value) -> (StatusCode, Value) {
        let refresh_token = refresh_token.as_str().expect("a refresh token");
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
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

    // Consent, then the code exchange with the right verifier only (a second use of the code is
    // `a_replayed_code_revokes_the_tokens_it_issued`). The Free plan may use MCP.
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
    // The query tools name every period and metric they take.
    let aggregate =
        listed["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "get_aggregate").unwrap();
    let properties = &aggregate["inputSchema"]["properties"];
    for period in ["24h", "28d", "all", "custom"] {
        assert!(properties["period"]["enum"].as_array().unwrap().contains(&json!(period)), "{period}: {properties}");
    }
    assert!(properties["metrics"]["items"]["enum"].as_array().unwrap().contains(&json!("conversion_rate")));
    let domain = format!("mcp-{}.example", &ann.user_id[..8]);
    let (failed, created) = call(env, &access, "create_website", json!({ "domain": domain, "name": "Via MCP" })).await;
    assert!(!failed, "{created}");
    let website: Value = serde_json::from_str(&created).unwrap();
    let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/"), "props": { "plan": "pro" } });
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
    // Custom properties too, named by the property's name.
    let by_plan = json!({ "website_id": website["id"], "property": "event:props:plan" });
    let (_, plans) = call(env, &access, "get_breakdown", by_plan).await;
    assert_eq!(
        serde_json::from_str::<Value>(&plans).unwrap(),
        json!([{ "plan": "pro", "visitors": 1, "pageviews": 1 }])
    );
    let (failed, message) = call(env, &access, "get_overview", json!({ "website_id": "someone-elses" })).await;
    assert!(failed && message.contains("not found"), "{message}");

    // A read-only connection sees no write tools and cannot call them.
    let read_only = client.connect(&ann, &["analytics:read"]).await["access_token"].as_str().unwrap().to_owned();
    let (_, listed) = rpc(env, &read_only, "tools/list", json!({})).await;
    assert!(!listed.to_string().contains("create_website"), "{listed}");
    let (status, _) =
        rpc(env, &read_only, "tools/call", json!({ "name": "create_website", "arguments": { "name": "X" } })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a tool outside the grant is a step-up challenge");

    // The daily quota of the team's plan counts every tools/call that answered (4 so far; the
    // refused get_overview and create_website do not count).
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

    // Refresh tokens rotate (a second use of one is `a_refresh_token_replay_revokes_the_family`).
    let pair = client.connect(&ann, &["analytics:read"]).await;
    let old = pair["refresh_token"].as_str().unwrap();
    let (status, renewed) = client.token(&[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_ne!(renewed["access_token"], pair["access_token"]);
    let (status, _) = rpc(env, renewed["access_token"].as_str().unwrap(), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // No token reaches the logs (the split mode's services log at debug level).
    let logs = env.logs();
    assert!(env.services.is_empty() || logs.contains("/mcp"), "the split mode's logs record the MCP requests");
    for secret in [access.as_str(), read_only.as_str(), refresh, old, renewed["access_token"].as_str().unwrap()] {
        assert!(!logs.contains(secret), "a token is in the logs");
    }
}

/// A registered client, sending its codes to `redirect`, and a signed-up user.
async fn registered<'a>(env: &'a TestEnv, name: &str, redirect: &str) -> (Client<'a>, TestUser) {
    let body = json!({ "client_name": name, "redirect_uris": [redirect] });
    let (status, client) =
        into_json(env.request(Method::POST, "/oauth/register").json(&body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let client = Client { env, http, client_id: client["client_id"].as_str().unwrap().to_owned() };
    (client, env.user("ann").await)
}

/// `tools/list` with `token`: its HTTP status.
async fn list_status(env: &TestEnv, token: &Value) -> StatusCode {
    rpc(env, token.as_str().expect("an access token"), "tools/list", json!({})).await.0
}

/// A refresh asking for a scope the connection was not granted is `invalid_scope`, and the
/// refresh token stays good (RFC 6749 §6); asking for what was granted is a refresh.
async fn a_refresh_asking_for_more_than_was_granted_is_invalid_scope(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let pair = client.connect(&ann, &["analytics:read"]).await;
    let refresh = pair["refresh_token"].as_str().unwrap();
    let wider =
        [("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "analytics:read management:write")];
    let (status, refused) = client.token(&wider).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{refused}");
    let same = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "analytics:read")];
    let (status, renewed) = client.token(&same).await;
    assert_eq!(
        (status, &renewed["scope"]),
        (StatusCode::OK, &json!("analytics:read")),
        "the token was kept: {renewed}"
    );
}

async fn a_refresh_token_replay_revokes_the_family(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let first = client.connect(&ann, &["analytics:read"]).await;
    let (status, second) = client.refresh(&first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(list_status(env, &second["access_token"]).await, StatusCode::OK);

    let (status, replay) = client.refresh(&first["refresh_token"]).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(list_status(env, &second["access_token"]).await, StatusCode::UNAUTHORIZED, "the newest access token");
    let (status, _) = client.refresh(&second["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the newest refresh token stops working too");
}

async fn leaving_the_team_ends_its_connections_for_good(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let bob = env.user("bob").await;
    add_member(env, &ann, &ann.team_id, &bob, "owner").await;
    let leave = format!("/api/v1/teams/{}/members/{}", ann.team_id, ann.user_id);
    assert_eq!(env.session_json(Method::DELETE, &leave, &ann.session, None).await.0, StatusCode::OK);

    assert_eq!(list_status(env, &tokens["access_token"]).await, StatusCode::UNAUTHORIZED);
    let (status, body) = client.refresh(&tokens["refresh_token"]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (_, connections) = env.session_json(Method::GET, "/api/v1/account/mcp-connections", &ann.session, None).await;
    assert!(connections["data"][0]["revoked_at"].is_string(), "{connections}");

    add_member(env, &bob, &ann.team_id, &ann, "member").await;
    assert_eq!(
        list_status(env, &tokens["access_token"]).await,
        StatusCode::UNAUTHORIZED,
        "rejoining brings nothing back"
    );
}

/// Another user's revocation of my connection is a 404 that changes nothing: my tokens go on
/// working and my list still shows the connection live.
async fn another_users_revocation_leaves_a_connection_working(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let (_, connections) = env.session_json(Method::GET, "/api/v1/account/mcp-connections", &ann.session, None).await;
    let path = format!("/api/v1/account/mcp-connections/{}", connections["data"][0]["id"].as_str().unwrap());
    let bob = env.user("bob").await;
    assert_eq!(env.session_json(Method::DELETE, &path, &bob.session, None).await.0, StatusCode::NOT_FOUND);

    assert_eq!(list_status(env, &tokens["access_token"]).await, StatusCode::OK);
    let (status, body) = client.refresh(&tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, connections) = env.session_json(Method::GET, "/api/v1/account/mcp-connections", &ann.session, None).await;
    assert!(connections["data"][0]["revoked_at"].is_null(), "{connections}");
}

/// Without a configured public URL the metadata is built from `Host`; a `Host` that is not a
/// URL's authority is not written into it.
async fn a_host_that_is_no_authority_is_not_written_into_the_metadata(env: &TestEnv) {
    let response = env
        .request(Method::GET, "/.well-known/oauth-authorization-server")
        .header("host", "evil.example\"<x>")
        .send()
        .await
        .unwrap();
    let (status, metadata) = into_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metadata["issuer"], "http://localhost", "{metadata}");
}

/// A client gets the code flow and refresh tokens: a registration without the code grant is
/// refused, and one that leaves refresh tokens out is answered with the grants it will get.
async fn a_registration_is_answered_with_the_grants_the_client_gets(env: &TestEnv) {
    let register = |grants: Value| {
        let body = json!({ "redirect_uris": [REDIRECT], "grant_types": grants });
        env.request(Method::POST, "/oauth/register").json(&body).send()
    };
    for refused in [json!([]), json!(["refresh_token"])] {
        let (status, body) = into_json(register(refused.clone()).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
            "{refused}"
        );
    }
    let (status, body) = into_json(register(json!(["authorization_code"])).await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["grant_types"], json!(["authorization_code", "refresh_token"]));
}

async fn a_loopback_redirect_may_come_back_on_another_port(env: &TestEnv) {
    let (client, _) = registered(env, "Native app", REDIRECT).await;
    let asked = |redirect: &'static str| {
        let request = client.request(&["analytics:read"], &[]);
        request.oauth.replace(&form(&[("redirect_uri", REDIRECT)]), &form(&[("redirect_uri", redirect)]))
    };
    let page = client.page(&asked("http://127.0.0.1:51004/callback"), "").await;
    assert_eq!(page.status(), StatusCode::OK, "another port of the registered loopback address");
    let page = client.page(&asked("http://127.0.0.1:51004/elsewhere"), "").await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST, "another path");
}

async fn a_client_authenticating_with_basic_is_told_the_scheme_it_failed(env: &TestEnv) {
    let response = env
        .request(Method::POST, "/oauth/token")
        .basic_auth("someone", Some("secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Basic ")), "{challenge:?}");
    assert_eq!(into_json(response).await.1["error"], "invalid_client");
}

async fn a_repeated_parameter_or_a_malformed_challenge_is_an_invalid_request(env: &TestEnv) {
    let (client, _) = registered(env, "Test client", REDIRECT).await;
    for extra in [&[("response_type", "code")][..], &[("state", "other")][..]] {
        let page = client.page(&client.request(&["analytics:read"], extra).oauth, "").await;
        let location = page.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(query_value(&location, "error").as_deref(), Some("invalid_request"), "{extra:?}: {location}");
    }
    let request = client.request(&["analytics:read"], &[]);
    let challenge = query_value(&format!("?{}", request.oauth), "code_challenge").unwrap();
    // Too short, or of the right length outside base64url: no verifier could ever match it.
    for malformed in ["abc".to_owned(), "!".repeat(43)] {
        let page = client.page(&request.oauth.replace(&challenge, &malformed), "").await;
        let location = page.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(query_value(&location, "error").as_deref(), Some("invalid_request"), "{location}");
    }
    let twice = format!("{}&{}", client.request(&["analytics:read"], &[]).oauth, form(&[("redirect_uri", REDIRECT)]));
    assert_eq!(client.page(&twice, "").await.status(), StatusCode::BAD_REQUEST, "never redirected to a doubtful URI");
}

/// A token request missing what its grant needs, or giving a parameter twice, is an
/// `invalid_request` (RFC 6749 §5.2), told apart from a code or token that is wrong, and from a
/// client this server does not know (`invalid_client`).
async fn a_token_request_missing_or_repeating_a_parameter_is_an_invalid_request(env: &TestEnv) {
    let (client, _) = registered(env, "Test client", REDIRECT).await;
    for (pairs, named) in [
        (&[][..], "grant_type is required"),
        (&[("grant_type", "authorization_code"), ("code_verifier", "v")][..], "code is required"),
        (&[("grant_type", "refresh_token")][..], "refresh_token is required"),
        (
            &[
                ("grant_type", "authorization_code"),
                ("code", "zvc_x"),
                ("code_verifier", "has spaces in it and is long enough to pass"),
            ][..],
            "code_verifier must be 43 to 128 unreserved characters",
        ),
        (
            &[("grant_type", "authorization_code"), ("grant_type", "refresh_token")][..],
            "grant_type is given more than once",
        ),
    ] {
        let (status, body) = client.token(pairs).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{pairs:?}");
        assert_eq!(body["error_description"], named, "{pairs:?}");
    }
    let (status, body) = client.token(&[("grant_type", "refresh_token"), ("refresh_token", "zvr_nothing")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let stranger = [("grant_type", "refresh_token"), ("refresh_token", "zvr_nothing"), ("client_id", "nobody")];
    let request = env.request(Method::POST, "/oauth/token").header("content-type", "application/x-www-form-urlencoded");
    let response = request.body(form(&stranger)).send().await.unwrap();
    let (status, body) = into_json(response).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
}

async fn a_replayed_code_revokes_the_tokens_it_issued(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let (code, verifier) = client.authorize(&ann, &["analytics:read"]).await;
    let (status, tokens) = client.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(list_status(env, &tokens["access_token"]).await, StatusCode::OK);

    let (status, replay) = client.exchange(&code, &verifier, &[]).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(list_status(env, &tokens["access_token"]).await, StatusCode::UNAUTHORIZED);
    let (status, _) = client.refresh(&tokens["refresh_token"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the refresh token of the first exchange is revoked");
}

async fn a_resource_other_than_this_server_is_an_invalid_target(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let other = "https://other.example/mcp";
    let request = client.request(&["analytics:read"], &[("resource", other)]);
    let refused = client.page(&request.oauth, "").await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    let location = refused.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_value(location, "error").as_deref(), Some("invalid_target"), "{location}");

    let (code, verifier) = client.authorize(&ann, &["analytics:read"]).await;
    let (status, body) = client.exchange(&code, &verifier, &[("resource", other)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{body}");
}

async fn a_token_asked_for_this_server_works_here_only(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let ours = format!("{}/mcp", env.base());
    let with_slash = format!("{ours}/");
    let (code, verifier) = client.authorize_with(&ann, &["analytics:read"], &[("resource", &with_slash)]).await;
    let (status, tokens) = client.exchange(&code, &verifier, &[("resource", &ours)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(list_status(env, &tokens["access_token"]).await, StatusCode::OK);

    // The same gateway reached under another name is another resource.
    let elsewhere = env
        .request(Method::POST, "/mcp")
        .header("host", "mcp.other.example")
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
}

async fn a_browser_client_can_preflight_and_register(env: &TestEnv) {
    let app = "https://app.example";
    for path in ["/oauth/register", "/oauth/token"] {
        let preflight = env
            .request(Method::OPTIONS, path)
            .header("origin", app)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{path}: {}", preflight.status());
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*", "{path}");
        let methods = preflight.headers()["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains("POST"), "{path}: {methods}");
        let headers = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
        assert!(headers.contains("content-type"), "{path}: {headers}");
    }
    let wrong = env.request(Method::PUT, "/oauth/register").header("origin", app).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED, "only preflights are answered for any method");
    let body = json!({ "client_name": "In a browser", "redirect_uris": ["https://app.example/cb"] });
    let registered = env.request(Method::POST, "/oauth/register").header("origin", app).json(&body).send().await;
    let registered = registered.unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    assert_eq!(registered.headers()["access-control-allow-origin"], "*");
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server"] {
        let metadata = env.request(Method::GET, path).header("origin", app).send().await.unwrap();
        assert_eq!(metadata.headers()["access-control-allow-origin"], "*", "{path}");
    }
    // A browser client reads the challenge to find the metadata and the scopes.
    let challenged = env.request(Method::POST, "/mcp").header("origin", app).json(&json!({})).send().await.unwrap();
    let exposed = challenged.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}

async fn the_consent_page_names_where_the_code_goes(env: &TestEnv) {
    let redirect = "https://collector.example:8443/callback";
    let (client, ann) = registered(env, "Your Trusted Assistant", redirect).await;
    let mut request = client.request(&["analytics:read"], &[]);
    request.oauth = request.oauth.replace(&form(&[("redirect_uri", REDIRECT)]), &form(&[("redirect_uri", redirect)]));
    let sign_in = client.page(&request.oauth, "").await.text().await.unwrap();
    assert!(sign_in.contains("<b>collector.example:8443</b>"), "{sign_in}");
    let cookie = client.sign_in(&ann, &request.oauth).await;
    let (consent, _) = client.consent_page(&request.oauth, &cookie).await;
    assert!(consent.contains("<b>collector.example:8443</b>"), "{consent}");
}

async fn a_consent_without_its_csrf_token_is_refused(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let request = client.request(&["analytics:read"], &[]);
    let cookie = client.sign_in(&ann, &request.oauth).await;
    let (_, csrf) = client.consent_page(&request.oauth, &cookie).await;
    let base = env.base();
    for forged in ["", "0123456789abcdef"] {
        let refused = client.post(&allow(&ann, &request.oauth, &["analytics:read"], forged), &cookie, base).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "token {forged:?}");
        assert!(refused.headers().get("location").is_none());
    }
    let allowed = client.post(&allow(&ann, &request.oauth, &["analytics:read"], &csrf), &cookie, base).await;
    assert_eq!(allowed.status(), StatusCode::SEE_OTHER, "the form's own token is accepted");
}

async fn a_form_posted_from_another_origin_is_refused(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let request = client.request(&["analytics:read"], &[]);
    let cookie = client.sign_in(&ann, &request.oauth).await;
    let (_, csrf) = client.consent_page(&request.oauth, &cookie).await;
    // Another port of the same host is the same site (SameSite=Lax lets the cookie through) but
    // another origin.
    let port: u16 = env.base().rsplit(':').next().unwrap().parse().unwrap();
    let neighbour = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    let answer = allow(&ann, &request.oauth, &["analytics:read"], &csrf);
    let refused = client.post(&answer, &cookie, &neighbour).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers().get("location").is_none());
    let login = [("oauth", request.oauth.as_str()), ("action", "login"), ("email", &ann.email), ("password", "x")];
    assert_eq!(client.post(&login, "", &neighbour).await.status(), StatusCode::FORBIDDEN);
}

async fn a_sign_in_without_its_csrf_token_is_refused(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let request = client.request(&["analytics:read"], &[]);
    let login = [
        ("oauth", request.oauth.as_str()),
        ("action", "login"),
        ("email", &ann.email),
        ("password", "correct horse battery"),
    ];
    let refused = client.post(&login, "", env.base()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers().get("set-cookie").is_none(), "no session");
}

async fn control_characters_in_oauth_forms_are_refused(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let request = client.request(&["analytics:read"], &[("state", "a\0b")]);
    let page = client.page(&request.oauth, "").await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.text().await.unwrap().contains("state"));

    let request = client.request(&["analytics:read"], &[]);
    let email = format!("{}\0", ann.email);
    let login = [("oauth", request.oauth.as_str()), ("action", "login"), ("email", &email), ("password", "x")];
    let refused = client.post(&login, "", env.base()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("email"));

    let (status, body) = client.token(&[("grant_type", "refresh_token"), ("refresh_token", "zvr_\0")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    // The refusal names the field, quoting no more of a long name than any refusal quotes.
    let long = format!("\u{1}{}", "z".repeat(100_000));
    let (status, body) = client.token(&[("grant_type", "refresh_token"), (long.as_str(), "1")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error_description"].as_str().unwrap().len() <= 1024, "the description is bounded");
    let body = json!({ "client_name": "nul\u{0}", "redirect_uris": [REDIRECT] });
    let (status, body) =
        into_json(env.request(Method::POST, "/oauth/register").json(&body).send().await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")), "{body}");
    let body = json!({ "redirect_uris": ["https://app.example/\u{0}"] });
    let (status, body) =
        into_json(env.request(Method::POST, "/oauth/register").json(&body).send().await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")), "{body}");
}

/// Registrations are unauthenticated: an address may make 300 an hour, so that nobody fills the
/// store with clients; past them the answer is a 429 saying when to try again.
async fn an_address_registers_at_most_300_clients_an_hour(env: &TestEnv) {
    let register = || {
        let body = json!({ "client_name": "Many", "redirect_uris": [REDIRECT] });
        env.request(Method::POST, "/oauth/register").json(&body).send()
    };
    for n in 0..300 {
        assert_eq!(register().await.unwrap().status(), StatusCode::CREATED, "registration {n}");
    }
    let refused = register().await.unwrap();
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let (status, body) = into_json(refused).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::TOO_MANY_REQUESTS, &json!("RATE_LIMIT_EXCEEDED")));
}

/// A body over the API's 2 MiB is refused by the OAuth endpoints in RFC 6749's shape, as their
/// other refusals are.
async fn an_oauth_body_over_2_mib_is_refused_in_rfc_6749s_shape(env: &TestEnv) {
    // Barely over, each on a connection of its own, so that the server has read it all when it
    // answers and closes (unread data would make its close a reset that may overtake the answer).
    let big = "x".repeat((2 << 20) + 10);
    for path in ["/oauth/token", "/oauth/register"] {
        let response = env.request(Method::POST, path).header("connection", "close").body(big.clone());
        let (status, body) = into_json(response.send().await.unwrap()).await;
        assert_eq!((status, &body["error"]), (StatusCode::PAYLOAD_TOO_LARGE, &json!("invalid_request")), "{path}");
    }
}

async fn the_challenge_names_every_scope(env: &TestEnv) {
    let unauthenticated = env.request(Method::POST, "/mcp").json(&json!({})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let challenge = unauthenticated.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("scope=\"analytics:read management:read management:write\""), "{challenge}");
}

/// Arguments outside a tool's input schema are refused, naming the argument, before the call
/// runs or counts: never read as the default, which would answer another question.
async fn arguments_outside_a_tools_schema_are_refused_and_not_counted(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read", "management:write"]).await;
    let (failed, site) =
        call_tool(env, &tokens, "create_website", json!({ "domain": "args.example", "name": "A" })).await;
    assert!(!failed, "{site}");
    let site_id: Value = serde_json::from_str(&site).unwrap();
    let id = site_id["id"].as_str().unwrap();
    // Three a day, one of them used by the creation.
    env.set_plan_with(&ann.team_id, "free", json!({ "mcp_calls_per_day": 3 })).await;
    for (tool, arguments, named) in [
        ("get_aggregate", json!({ "website_id": id, "metrics": "bounce_rate" }), "metrics must be of type array"),
        (
            "get_aggregate",
            json!({ "website_id": id, "metrics": ["visitors", "visitors"] }),
            "metrics lists an item twice",
        ),
        ("get_aggregate", json!({ "website_id": id, "period": 7 }), "period must be of type string"),
        ("get_overview", json!({ "website_id": id, "range": "5y" }), "range must be one of"),
        ("get_overview", json!({ "website_id": 5 }), "website_id must be of type string"),
        ("get_breakdown", json!({ "website_id": id, "property": "event:page", "limit": 0 }), "limit must be 1 to 1000"),
        (
            "get_breakdown",
            json!({ "website_id": id, "property": "event:page", "limit": 2.5 }),
            "limit must be of type integer",
        ),
        ("get_breakdown", json!({ "website_id": id }), "property is required"),
        ("get_aggregate", json!({ "website_id": id, "colour": "red" }), "colour is not an argument"),
        // Refused by the tool rather than the schema: nor do these count.
        (
            "get_aggregate",
            json!({ "website_id": id, "period": "custom", "date": "2026-02-30,2026-03-01" }),
            "must be a day of the calendar",
        ),
        ("get_breakdown", json!({ "website_id": id, "property": "visit:nope" }), "unknown"),
        ("get_overview", json!({ "website_id": "someone-elses" }), "website not found"),
        ("create_website", json!({ "domain": "args.example", "name": "Again" }), "a website with domain"),
    ] {
        let (failed, message) = call_tool(env, &tokens, tool, arguments.clone()).await;
        assert!(failed && message.starts_with(named), "{arguments}: {message}");
    }
    // The two calls left are whole: none of the refused calls counted. `2.0` is an integer, as
    // JSON Schema counts them.
    let (failed, answer) = call_tool(env, &tokens, "get_aggregate", json!({ "website_id": id })).await;
    assert!(!failed, "{answer}");
    let (failed, answer) =
        call_tool(env, &tokens, "get_breakdown", json!({ "website_id": id, "property": "event:page", "limit": 2.0 }))
            .await;
    assert!(!failed, "{answer}");
    let (failed, message) = call_tool(env, &tokens, "get_aggregate", json!({ "website_id": id })).await;
    assert!(failed && message.contains("quota"), "{message}");
}

/// `get_timeseries` without an interval steps as the Stats API v1 does for the period, and a
/// bucket without visitors has no visit duration (null), as v1's.
async fn a_time_series_steps_and_leaves_empty_buckets_as_the_stats_api_v1_does(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read", "management:write"]).await;
    let domain = format!("series-{}.example", &ann.user_id[..8]);
    let (_, site) = call_tool(env, &tokens, "create_website", json!({ "domain": domain, "name": "S" })).await;
    let id = serde_json::from_str::<Value>(&site).unwrap()["id"].as_str().unwrap().to_owned();
    let tokens = &tokens;
    let series = |arguments: Value| async move {
        let (failed, answer) = call_tool(env, tokens, "get_timeseries", arguments).await;
        assert!(!failed, "{answer}");
        serde_json::from_str::<Value>(&answer).unwrap().as_array().unwrap().clone()
    };
    for (period, buckets) in [("day", 24), ("7d", 7), ("12mo", 12), ("6mo", 6)] {
        let rows = series(json!({ "website_id": id, "period": period })).await;
        assert_eq!(rows.len(), buckets, "{period}: {rows:?}");
    }
    let rows = series(json!({ "website_id": id, "period": "day", "interval": "day" })).await;
    assert_eq!(rows.len(), 1, "an interval asked for is kept");
    let asked = json!({ "website_id": id, "period": "7d", "metrics": ["visit_duration", "pageviews"] });
    let rows = series(asked).await;
    assert_eq!(rows[0], json!({ "date": rows[0]["date"], "visit_duration": null, "pageviews": 0 }));
}

async fn a_tool_outside_the_grant_is_a_step_up_challenge(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let call = json!({ "name": "create_website", "arguments": { "domain": "x.example", "name": "X" } });
    let response = env
        .request(Method::POST, "/mcp")
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"analytics:read management:write\""), "{challenge}");
    let metadata = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource\"", env.base());
    assert!(challenge.contains(&metadata), "{challenge}");
    let (_, websites) = call_tool(env, &tokens, "list_websites", json!({})).await;
    assert_eq!(websites, "[]", "nothing was created");
}

/// `tools/call` with a connection's tokens: (is an error, the text it returned).
async fn call_tool(env: &TestEnv, tokens: &Value, tool: &str, arguments: Value) -> (bool, String) {
    call(env, tokens["access_token"].as_str().unwrap(), tool, arguments).await
}

/// A raw body posted to `/mcp` with `token`.
async fn post_raw(env: &TestEnv, tokens: &Value, body: &str) -> (StatusCode, Value) {
    let response = env
        .request(Method::POST, "/mcp")
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    into_json(response).await
}

async fn malformed_json_is_a_json_rpc_parse_error(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let (status, body) = post_raw(env, &tokens, r#"{"jsonrpc": "2.0", "id": 1, "method": "#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((&body["jsonrpc"], &body["id"], &body["error"]["code"]), (&json!("2.0"), &Value::Null, &json!(-32700)));
}

/// A message over 64 KiB is refused before it is read as JSON: a tool's arguments are small, and
/// reading many of them cost the gateway time other clients waited for.
async fn a_message_over_64_kib_is_refused_as_too_large(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    // Barely over, so that the server has read it all when it answers (see
    // `an_oauth_body_over_2_mib_is_refused_in_rfc_6749s_shape`).
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "list_websites", "arguments": { "k": "x".repeat(64 * 1024) } } });
    let (status, body) = post_raw(env, &tokens, &call.to_string()).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::PAYLOAD_TOO_LARGE, &json!(-32600)), "{body}");
    let (failed, websites) = call_tool(env, &tokens, "list_websites", json!({})).await;
    assert!(!failed, "a message of the usual size still works: {websites}");
}

async fn malformed_tool_call_params_are_invalid_params(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    for params in [json!({ "name": "list_websites", "arguments": "all" }), json!({ "arguments": {} }), json!([1])] {
        let message = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params });
        let (status, body) = post_raw(env, &tokens, &message.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!((&body["id"], &body["error"]["code"]), (&json!(9), &json!(-32602)), "{params}: {body}");
    }
}

async fn an_unknown_method_is_not_found_and_a_secret_sent_as_one_is_not_echoed(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let message = json!({ "jsonrpc": "2.0", "id": 3, "method": ann.session });
    let (status, body) = post_raw(env, &tokens, &message.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["id"], &body["error"]["code"]), (&json!(3), &json!(-32601)), "{body}");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(text.starts_with("Method not found: zvs_") && !text.contains(&ann.session[4..]), "{text}");
}

/// A wrong password answers the sign-in form again, as the console's log-in does: the refusal
/// said in it, the address kept, the password not.
async fn a_wrong_password_shows_the_sign_in_form_again_with_the_address_kept(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let request = client.request(&["analytics:read"], &[]);
    let page = client.page(&request.oauth, "").await;
    let csrf_cookie = set_cookies(&page);
    let csrf = hidden(&page.text().await.unwrap(), "csrf").expect("the sign-in form carries a CSRF token");
    let form = [
        ("oauth", request.oauth.as_str()),
        ("csrf", &csrf),
        ("action", "login"),
        ("email", &ann.email),
        ("password", "not-the-password-42"),
    ];
    let refused = client.post(&form, &csrf_cookie, env.base()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let text = refused.text().await.unwrap();
    let said = r#"aria-describedby="password-error" autofocus><p class="error" id="password-error" role="alert">Wrong email or password.</p>"#;
    assert!(text.contains(said), "said at the password, which takes the focus: {text}");
    assert!(text.contains(&format!(r#"value="{}""#, ann.email)), "the address is kept: {text}");
    assert!(!text.contains("not-the-password-42"), "the password is not sent back");
    assert_eq!(hidden(&text, "csrf").as_deref(), Some(csrf.as_str()), "the same form, still good to send");
}

/// Methods of the protocol this server does not offer (resources, prompts, logging) are not
/// found, in the words of any method it does not know.
async fn a_protocol_method_not_offered_is_not_found_by_name(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    for method in ["resources/list", "prompts/list", "logging/setLevel"] {
        let message = json!({ "jsonrpc": "2.0", "id": 4, "method": method, "params": {} });
        let (status, body) = post_raw(env, &tokens, &message.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let expected = json!({ "code": -32601, "message": format!("Method not found: {method}") });
        assert_eq!((&body["id"], &body["error"]), (&json!(4), &expected), "{body}");
    }
}

/// Every tool is listed at once: a cursor is one this server never gave, -32602.
async fn a_tool_list_cursor_is_invalid_params(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let message = json!({ "jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": { "cursor": "abc" } });
    let (status, body) = post_raw(env, &tokens, &message.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["id"], &body["error"]["code"]), (&json!(6), &json!(-32602)), "{body}");
}

/// A key given twice is read as its last value, by the scope check and the tool alike.
async fn a_tool_call_naming_its_tool_twice_runs_the_last_named(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let message = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"create_website","name":"list_websites","arguments":{}}}"#;
    let (status, body) = post_raw(env, &tokens, message).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["id"], &body["result"]["isError"]), (&json!(5), &json!(false)), "{body}");
}

async fn the_sign_in_form_is_throttled_like_the_api(env: &TestEnv) {
    let (client, ann) = registered(env, "Test client", REDIRECT).await;
    let request = client.request(&["analytics:read"], &[]);
    let page = client.page(&request.oauth, "").await;
    let csrf_cookie = set_cookies(&page);
    let csrf = hidden(&page.text().await.unwrap(), "csrf").expect("the sign-in form carries a CSRF token");
    let login = |password| {
        [
            ("oauth", request.oauth.as_str()),
            ("csrf", &csrf),
            ("action", "login"),
            ("email", &ann.email),
            ("password", password),
        ]
    };
    for _ in 0..10 {
        let refused = client.post(&login("wrong"), &csrf_cookie, env.base()).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = client.post(&login("correct horse battery"), &csrf_cookie, env.base()).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = throttled.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let secs = retry_after.unwrap_or_default();
    assert!(secs >= 1, "when to try again, as the API says it");
    let text = throttled.text().await.unwrap();
    let wait = format!("Wait {}, then", common::time::wait_in_words(secs));
    assert!(text.contains("Too many attempts") && text.contains(&wait), "{text}");
}

const PUBLIC_URL: GatewayFlags = &[("--public-url", "https://api.example.com/")];

both_modes!(
    a_wrong_password_shows_the_sign_in_form_again_with_the_address_kept,
    a_refresh_asking_for_more_than_was_granted_is_invalid_scope,
    a_protocol_method_not_offered_is_not_found_by_name,
    a_tool_call_naming_its_tool_twice_runs_the_last_named,
    a_tool_list_cursor_is_invalid_params,
    the_sign_in_form_is_throttled_like_the_api,
    mcp_end_to_end,
    a_refresh_token_replay_revokes_the_family,
    leaving_the_team_ends_its_connections_for_good,
    another_users_revocation_leaves_a_connection_working,
    a_host_that_is_no_authority_is_not_written_into_the_metadata,
    a_registration_is_answered_with_the_grants_the_client_gets,
    a_loopback_redirect_may_come_back_on_another_port,
    a_client_authenticating_with_basic_is_told_the_scheme_it_failed,
    a_repeated_parameter_or_a_malformed_challenge_is_an_invalid_request,
    a_replayed_code_revokes_the_tokens_it_issued,
    a_token_request_missing_or_repeating_a_parameter_is_an_invalid_request,
    a_resource_other_than_this_server_is_an_invalid_target,
    a_token_asked_for_this_server_works_here_only,
    a_browser_client_can_preflight_and_register,
    the_consent_page_names_where_the_code_goes,
    a_consent_without_its_csrf_token_is_refused,
    a_form_posted_from_another_origin_is_refused,
    a_sign_in_without_its_csrf_token_is_refused,
    control_characters_in_oauth_forms_are_refused,
    an_oauth_body_over_2_mib_is_refused_in_rfc_6749s_shape,
    an_address_registers_at_most_300_clients_an_hour,
    the_challenge_names_every_scope,
    a_tool_outside_the_grant_is_a_step_up_challenge,
    arguments_outside_a_tools_schema_are_refused_and_not_counted,
    a_time_series_steps_and_leaves_empty_buckets_as_the_stats_api_v1_does,
    malformed_json_is_a_json_rpc_parse_error,
    a_message_over_64_kib_is_refused_as_too_large,
    malformed_tool_call_params_are_invalid_params,
    an_unknown_method_is_not_found_and_a_secret_sent_as_one_is_not_echoed;
    gateway PUBLIC_URL => oauth_metadata_names_the_configured_public_url
);

/// Behind a proxy the `Host` header is the proxy's business: with `ZENOVAY_PUBLIC_URL` set, the
/// metadata and the challenge name the configured origin whatever `Host` a request carries.
async fn oauth_metadata_names_the_configured_public_url(env: &TestEnv) {
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

/// While identity is down the authorization page can tell neither the client nor the session:
/// it says so (503) instead of calling the client unknown or asking to sign in.
#[tokio::test]
async fn the_authorization_page_says_the_service_is_unavailable_while_identity_is_down() {
    let mut env = TestEnv::split(1).await;
    let client_id = registered(&env, "Test client", REDIRECT).await.0.client_id;
    env.kill("identity");
    let query = form(&[
        ("response_type", "code"),
        ("client_id", &client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    ]);
    let response = env.request(Method::GET, &format!("/oauth/authorize?{query}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    assert!(page.contains("unavailable") && !page.contains("Unknown client"), "{page}");
}

/// A tool call whose service is down did not run: the request is a 503, as any route's is when
/// a call may not have completed, and the call does not count against the day's quota.
#[tokio::test]
async fn a_tool_call_whose_service_is_down_is_a_503_and_not_counted() {
    let mut env = TestEnv::split(1).await;
    let (client, ann) = registered(&env, "Test client", REDIRECT).await;
    let tokens = client.connect(&ann, &["analytics:read"]).await;
    let token = tokens["access_token"].as_str().unwrap();
    env.kill("analytics");
    let (status, body) =
        rpc(&env, token, "tools/call", json!({ "name": "get_overview", "arguments": { "website_id": "w" } })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE"))
    );
    let path = format!("/api/v1/teams/{}/usage", ann.team_id);
    let (status, usage) = env.session_json(Method::GET, &path, &ann.session, None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["data"]["members"][0]["mcp_calls_today"], 0, "{usage}");
}

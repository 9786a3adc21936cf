//! OAuth 2.1 for MCP clients (docs/behaviour.md#mcp): protected-resource and authorization-server metadata,
//! dynamic client registration, the consent page (authorization code + PKCE S256), the token
//! endpoint, and the dashboard's list and revocation of connections. No API key is involved.
//! README.md ("MCP") says what a client and a user can count on: code and refresh-token replay,
//! resource binding (RFC 8707), and the consent form's CSRF and Origin checks.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use common::ErrorCode;
use common::secret::{Digest, random_token};
use proto::identity::v1 as idpb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::{escape, field, oauth_page};
use crate::envelope::{Path, ok, parse};
use crate::error::ApiResult;
use crate::session::{COOKIE, SessionUser};
use crate::state::AppState;
use crate::time::rfc3339;

/// Tool categories, as OAuth scopes.
const SCOPES: [(&str, &str); 3] = [
    ("analytics:read", "Read statistics: overview, aggregate, timeseries, breakdowns, realtime"),
    ("management:read", "List websites"),
    ("management:write", "Create and update websites"),
];

/// The origin clients reach us at, which metadata documents name: the configured public URL,
/// or else the one this request came in at.
pub(crate) fn origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let https = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// This server's MCP endpoint as a resource (RFC 8707, RFC 9728): what its tokens are for.
pub(crate) fn resource_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/mcp", origin(state, headers))
}

/// Whether a `resource` parameter names `ours`, with or without a trailing slash; scheme and host
/// compare as URLs do (case-insensitively, default port implied).
fn names_this_server(asked: &str, ours: &str) -> bool {
    let canonical = |text: &str| {
        let mut url = url::Url::parse(text).ok()?;
        if url.fragment().is_some() {
            return None;
        }
        let path = url.path().strip_suffix('/').unwrap_or(url.path()).to_owned();
        url.set_path(&path);
        Some(url)
    };
    matches!((canonical(asked), canonical(ours)), (Some(a), Some(b)) if a == b)
}

/// The resource the request's tokens are bound to: `ours` when the client named it, "" when it
/// named none, `None` when it named another server (`invalid_target`).
fn bound_resource(p: &AuthorizeParams, ours: &str) -> Option<String> {
    let asked = p.every("resource");
    if asked.iter().all(|r| names_this_server(r, ours)) {
        Some(if asked.is_empty() { String::new() } else { ours.to_owned() })
    } else {
        None
    }
}

/// The first field, if any, holding a control character (a NUL would fail a PostgreSQL write and
/// none has a meaning in these forms). Passwords never reach a database and may hold anything.
fn control_field(fields: &[(String, String)]) -> Option<&str> {
    fields
        .iter()
        .find(|(name, value)| {
            name != "password" && (name.chars().any(char::is_control) || value.chars().any(char::is_control))
        })
        .map(|(name, _)| name.as_str())
}

/// RFC 9728: where `/mcp`'s tokens come from.
pub async fn protected_resource(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let origin = origin(&state, &headers);
    Json(json!({
        "resource": resource_url(&state, &headers),
        "authorization_servers": [origin],
        "scopes_supported": SCOPES.map(|s| s.0),
        "bearer_methods_supported": ["header"],
        "resource_name": "Zenovay MCP",
    }))
}

/// RFC 8414.
pub async fn authorization_server(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let origin = origin(&state, &headers);
    Json(json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "registration_endpoint": format!("{origin}/oauth/register"),
        "scopes_supported": SCOPES.map(|s| s.0),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

/// An OAuth error body (RFC 6749 §5.2), with the status it goes with.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (status, Json(json!({ "error": error, "error_description": description }))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct RegistrationBody {
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
}

/// RFC 7591 §3.2.2 names a bad redirect URI apart from other bad metadata.
fn names_redirect_uris(error: &common::Error) -> bool {
    error.field.as_deref().is_some_and(|field| field.split(['[', '.']).next() == Some("redirect_uris"))
}

/// RFC 7591 dynamic registration of a public client. Other metadata fields are ignored, as the
/// RFC allows.
pub async fn register(State(state): State<AppState>, body: Bytes) -> Response {
    let body: RegistrationBody = match parse(&body) {
        Ok(body) => body,
        Err(e) if names_redirect_uris(&e.error) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &e.error.text());
        }
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", &e.error.text()),
    };
    if body.token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "only public clients (none) are supported",
        );
    }
    let grants = body.grant_types.unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if grants.iter().any(|g| g != "authorization_code" && g != "refresh_token")
        || body.response_types.as_ref().is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", "only the code flow is supported");
    }
    let request = idpb::RegisterMcpClientRequest {
        client_name: body.client_name.unwrap_or_default(),
        redirect_uris: body.redirect_uris,
    };
    match state.identity.clone().register_mcp_client(request).await {
        Ok(client) => {
            let client = client.into_inner();
            let body = json!({
                "client_id": client.client_id,
                "client_id_issued_at": client.created_at_unix_ms / 1000,
                "client_name": client.client_name,
                "redirect_uris": client.redirect_uris,
                "grant_types": grants,
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(status) => {
            let error = common::Error::from(status);
            match error.code {
                ErrorCode::Validation if names_redirect_uris(&error) => {
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &error.text())
                }
                ErrorCode::Validation => oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", &error.text()),
                _ => crate::error::ApiError::from(error).into_response(),
            }
        }
    }
}

/// The authorization request's parameters, as the client sent them.
#[derive(Default)]
struct AuthorizeParams {
    all: Vec<(String, String)>,
}

impl AuthorizeParams {
    fn parse(text: &str) -> Self {
        AuthorizeParams { all: form_urlencoded::parse(text.as_bytes()).into_owned().collect() }
    }

    fn get(&self, name: &str) -> &str {
        self.all.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    fn every(&self, name: &str) -> Vec<String> {
        self.all.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// The OAuth parameters only, to carry through the login and consent forms.
    fn oauth_query(&self) -> String {
        const OAUTH: [&str; 8] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "state",
            "scope",
            "resource",
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for name in OAUTH {
            let value = self.get(name);
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }
}

const TITLE: &str = "Connect an MCP client";

/// A page of the flow without a form: the console's look, its policy, and never cached.
fn page(status: StatusCode, body: &str) -> Response {
    oauth_page(status, TITLE, format!("<h1>{TITLE}</h1><div class=\"card narrow\">{body}</div>"), None)
}

/// Where to send the user back with `params`, when the client and redirect URI are valid.
fn back_to_client(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return page(StatusCode::BAD_REQUEST, "<p>Invalid redirect URI.</p>"),
    };
    url.query_pairs_mut().extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()));
    Redirect::to(url.as_str()).into_response()
}

/// Checks the request against its registered client. Errors that make the redirect URI
/// untrustworthy are shown here; the others go back to the client (RFC 6749 §4.1.2.1).
async fn check_request(
    state: &AppState,
    headers: &HeaderMap,
    p: &AuthorizeParams,
) -> Result<idpb::McpClient, Box<Response>> {
    if let Some(field) = control_field(&p.all) {
        return Err(Box::new(control_character(field)));
    }
    let request = idpb::GetMcpClientRequest { client_id: p.get("client_id").into() };
    let client = match state.identity.clone().get_mcp_client(request).await {
        Ok(client) => client.into_inner(),
        Err(_) => return Err(Box::new(page(StatusCode::BAD_REQUEST, "<p>Unknown client. Register it first.</p>"))),
    };
    if !client.redirect_uris.iter().any(|u| u == p.get("redirect_uri")) {
        return Err(Box::new(page(
            StatusCode::BAD_REQUEST,
            "<p>This redirect URI is not registered for the client.</p>",
        )));
    }
    let state_param = p.get("state");
    let fail = |error: &str, description: &str| {
        Err(Box::new(back_to_client(
            p.get("redirect_uri"),
            &[("error", error), ("error_description", description), ("state", state_param)],
        )))
    };
    if p.get("response_type") != "code" {
        return fail("unsupported_response_type", "response_type must be code");
    }
    if p.get("code_challenge").is_empty() || p.get("code_challenge_method") != "S256" {
        return fail("invalid_request", "PKCE with code_challenge_method=S256 is required");
    }
    let ours = resource_url(state, headers);
    if bound_resource(p, &ours).is_none() {
        return fail("invalid_target", &format!("resource must be {ours}"));
    }
    Ok(client)
}

fn control_character(field: &str) -> Response {
    page(StatusCode::BAD_REQUEST, &format!("<p>The field {} holds a control character.</p>", escape(field)))
}

/// Where the code goes, for the user to check: the redirect URI's host (with its port), or the
/// scheme of an app's own URI, which has no host.
fn destination(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => format!("{}:", url.scheme()),
        },
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The line of both forms that names where the code goes: the client's name is its own choice,
/// the redirect URI is what counts.
fn destination_line(redirect_uri: &str) -> String {
    format!(
        "<p>The authorization will be sent to <b>{}</b> (<code>{}</code>). Continue only if you trust it.</p>",
        escape(&destination(redirect_uri)),
        escape(redirect_uri)
    )
}

const CSRF_COOKIE: &str = "zenovay_oauth_csrf";

/// The sign-in form's CSRF token, before there is a session: a random token, in a cookie and in
/// the form (double submit). The cookie's token is reused so that two open tabs both work.
fn sign_in_cookie(headers: &HeaderMap) -> Option<&str> {
    crate::session::cookie_named(headers, CSRF_COOKIE)
        .filter(|t| t.len() >= 43 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether the form carries the token its action needs; compared as digests, so the time taken
/// says nothing about the expected value.
fn csrf_ok(form: &AuthorizeParams, headers: &HeaderMap) -> bool {
    let expected = match form.get("action") {
        "login" => crate::session::cookie_named(headers, CSRF_COOKIE).map(str::to_owned),
        _ => crate::session::cookie(headers).map(crate::session::csrf_token),
    };
    let sent = form.get("csrf");
    expected.is_some_and(|expected| !sent.is_empty() && Digest::of(sent) == Digest::of(&expected))
}

async fn session_user(state: &AppState, headers: &HeaderMap) -> Option<idpb::User> {
    session_user_and_token(state, headers).await.map(|(user, _)| user)
}

async fn session_user_and_token(state: &AppState, headers: &HeaderMap) -> Option<(idpb::User, String)> {
    let token = crate::session::cookie(headers)?.to_owned();
    let request = idpb::AuthenticateSessionRequest { session_token: token.clone() };
    let user = state.identity.clone().authenticate_session(request).await.ok()?.into_inner();
    Some((user, token))
}

/// The sign-in form that comes before the consent form, with its CSRF cookie.
fn sign_in_page(state: &AppState, headers: &HeaderMap, name: &str, goes_to: &str, hidden: &str) -> Response {
    let existing = sign_in_cookie(headers);
    let token = existing.map_or_else(|| random_token(""), str::to_owned);
    let email = field(
        "Email",
        "email",
        r#"<input id="email" name="email" type="email" autocomplete="email" required aria-describedby="email-error">"#,
    );
    let password = field(
        "Password",
        "password",
        r#"<input id="password" name="password" type="password" autocomplete="current-password" required aria-describedby="password-error">"#,
    );
    let mut response = oauth_page(
        StatusCode::OK,
        "Sign in",
        format!(
            "<h1>Sign in to connect {name}</h1><form class=\"card narrow\" method=\"post\" action=\"/oauth/authorize\">\
             {goes_to}{hidden}\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
             <input type=\"hidden\" name=\"action\" value=\"login\">\
             {email}{password}<button type=\"submit\" class=\"primary\">Sign in</button></form>"
        ),
        None,
    );
    let attributes = crate::session::cookie_attributes_at(state, "/oauth/authorize");
    let cookie = format!("{CSRF_COOKIE}={token}; {attributes}; Max-Age=3600");
    if let (None, Ok(value)) = (existing, HeaderValue::from_str(&cookie)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The login form, or the consent form for a signed-in user.
pub async fn authorize_page(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = AuthorizeParams::parse(q.as_deref().unwrap_or_default());
    let client = match check_request(&state, &headers, &p).await {
        Ok(client) => client,
        Err(response) => return *response,
    };
    let hidden = format!("<input type=\"hidden\" name=\"oauth\" value=\"{}\">", escape(&p.oauth_query()));
    let name = escape(&client.client_name);
    let goes_to = destination_line(p.get("redirect_uri"));
    let Some((user, session_token)) = session_user_and_token(&state, &headers).await else {
        return sign_in_page(&state, &headers, &name, &goes_to, &hidden);
    };
    let csrf = crate::session::csrf_token(&session_token);
    let teams = match state.identity.clone().list_teams(idpb::ListTeamsRequest { user_id: user.id.clone() }).await {
        Ok(teams) => teams.into_inner().memberships,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let options: String = teams
        .iter()
        .filter_map(|m| m.team.as_ref())
        .map(|t| format!("<option value=\"{}\">{}</option>", escape(&t.id), escape(&t.name)))
        .collect();
    let asked: Vec<&str> = p.get("scope").split(' ').filter(|s| !s.is_empty()).collect();
    let boxes: String = SCOPES
        .iter()
        .enumerate()
        .map(|(i, (scope, what))| {
            let checked = if asked.is_empty() || asked.contains(scope) { " checked" } else { "" };
            format!(
                "<div class=\"choice\"><input type=\"checkbox\" id=\"scope-{i}\" name=\"scope\" value=\"{scope}\"{checked}>\
                 <label for=\"scope-{i}\"><code>{scope}</code>: {what}</label></div>"
            )
        })
        .collect();
    let team = field(
        "Team",
        "team",
        &format!("<select id=\"team\" name=\"team_id\" aria-describedby=\"team-error\">{options}</select>"),
    );
    let target = form_target(p.get("redirect_uri"));
    oauth_page(
        StatusCode::OK,
        "Connect an app",
        format!(
            "<h1>Connect {name} to Zenovay</h1><form class=\"card narrow\" method=\"post\" action=\"/oauth/authorize\">\
             <p>Signed in as {}.</p>{goes_to}{hidden}\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{team}\
             <fieldset><legend>What it may do</legend>{boxes}</fieldset>\
             <div class=\"actions\"><button type=\"submit\" class=\"primary\" name=\"action\" value=\"allow\">Allow</button>\
             <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></div></form>",
            escape(&user.email)
        ),
        target.as_deref(),
    )
}

/// What the consent form's redirect leads to, for the page's `form-action`: the redirect URI's
/// origin, or the scheme of an app's own URI (which has no host).
fn form_target(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        url::Origin::Opaque(_) => Some(format!("{}:", url.scheme())),
    }
}

/// The login or consent form's answer.
/// The sign-in form's answer to a refused log-in: throttled and busy are said as such, with the
/// status the dashboard API gives them, and every other refusal is the same wrong-credentials page.
fn login_refused(code: ErrorCode, again: &str) -> Response {
    let again = escape(again);
    match code {
        ErrorCode::RateLimitExceeded => page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "<p>Too many attempts to sign in. Wait a few minutes, then <a href=\"{again}\">try again</a>.</p>"
            ),
        ),
        ErrorCode::ServiceUnavailable => page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("<p>Signing in is busy right now. <a href=\"{again}\">Try again</a> shortly.</p>"),
        ),
        _ => page(
            StatusCode::UNAUTHORIZED,
            &format!("<p>Wrong email or password. <a href=\"{again}\">Try again</a>.</p>"),
        ),
    }
}

pub async fn authorize_submit(
    State(state): State<AppState>,
    client: crate::session::SigningIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = AuthorizeParams::parse(&String::from_utf8_lossy(&body));
    if let Some(field) = control_field(&form.all) {
        return control_character(field);
    }
    if crate::session::foreign_origin(&state, &headers) {
        return page(StatusCode::FORBIDDEN, "<p>This form was sent from another site.</p>");
    }
    let p = AuthorizeParams::parse(form.get("oauth"));
    if let Err(response) = check_request(&state, &headers, &p).await {
        return *response;
    }
    if !csrf_ok(&form, &headers) {
        let again = escape(&format!("/oauth/authorize?{}", p.oauth_query()));
        return page(
            StatusCode::FORBIDDEN,
            &format!(
                "<p>This form has expired or was not sent from this page. <a href=\"{again}\">Start again</a>.</p>"
            ),
        );
    }
    let again = format!("/oauth/authorize?{}", p.oauth_query());
    match form.get("action") {
        "login" => {
            let request = idpb::LoginRequest {
                email: form.get("email").into(),
                password: form.get("password").into(),
                client_address: client.address,
                user_agent: client.user_agent,
            };
            let session = match state.identity.clone().login(request).await {
                Ok(session) => session,
                Err(status) => return login_refused(common::Error::from(status).code, &again),
            };
            let attributes = crate::session::cookie_attributes(&state);
            let cookie = format!("{COOKIE}={}; {attributes}; Max-Age=2592000", session.into_inner().session_token);
            let mut response = Redirect::to(&again).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        "deny" => back_to_client(
            p.get("redirect_uri"),
            &[("error", "access_denied"), ("error_description", "the user denied access"), ("state", p.get("state"))],
        ),
        "allow" => {
            let Some(user) = session_user(&state, &headers).await else { return Redirect::to(&again).into_response() };
            let request = idpb::CreateMcpAuthorizationRequest {
                user_id: user.id,
                client_id: p.get("client_id").into(),
                team_id: form.get("team_id").into(),
                scopes: form.every("scope"),
                redirect_uri: p.get("redirect_uri").into(),
                code_challenge: p.get("code_challenge").into(),
                resource: bound_resource(&p, &resource_url(&state, &headers)).unwrap_or_default(),
            };
            match state.identity.clone().create_mcp_authorization(request).await {
                Ok(code) => back_to_client(
                    p.get("redirect_uri"),
                    &[("code", &code.into_inner().code), ("state", p.get("state"))],
                ),
                Err(status) => page(
                    StatusCode::BAD_REQUEST,
                    &format!("<p>{}</p><p><a href=\"{}\">Back</a></p>", escape(status.message()), escape(&again)),
                ),
            }
        }
        _ => page(StatusCode::BAD_REQUEST, "<p>Unknown action.</p>"),
    }
}

/// The token endpoint: `authorization_code` with the PKCE verifier, or `refresh_token`.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = AuthorizeParams::parse(&String::from_utf8_lossy(&body));
    if let Some(field) = control_field(&form.all) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("{field} holds a control character"));
    }
    let client_id = form.get("client_id").to_owned();
    if client_id.is_empty() {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client_id is required");
    }
    let ours = resource_url(&state, &headers);
    if bound_resource(&form, &ours).is_none() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", &format!("resource must be {ours}"));
    }
    let result = match form.get("grant_type") {
        "authorization_code" => {
            let request = idpb::ExchangeMcpCodeRequest {
                code: form.get("code").into(),
                client_id,
                redirect_uri: form.get("redirect_uri").into(),
                code_verifier: form.get("code_verifier").into(),
            };
            state.identity.clone().exchange_mcp_code(request).await
        }
        "refresh_token" => {
            let request = idpb::RefreshMcpTokenRequest { refresh_token: form.get("refresh_token").into(), client_id };
            state.identity.clone().refresh_mcp_token(request).await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    match result {
        Ok(tokens) => {
            let t = tokens.into_inner();
            let mut response = Json(json!({
                "access_token": t.access_token,
                "token_type": "Bearer",
                "expires_in": t.expires_in_seconds,
                "refresh_token": t.refresh_token,
                "scope": t.scopes.join(" "),
            }))
            .into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", status.message())
        }
        Err(status) => crate::error::ApiError::from(status).into_response(),
    }
}

fn connection_view(c: &idpb::McpConnection) -> Value {
    json!({
        "id": c.id,
        "client_id": c.client_id,
        "client_name": c.client_name,
        "team_id": c.team_id,
        "scopes": c.scopes,
        "created_at": rfc3339(c.created_at_unix_ms),
        "last_used_at": c.last_used_at_unix_ms.map(rfc3339),
        "revoked_at": c.revoked_at_unix_ms.map(rfc3339),
    })
}

/// `GET /api/v1/account/mcp-connections`
pub async fn list_connections(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let request = idpb::ListMcpConnectionsRequest { user_id: session.user.id };
    let connections = state.identity.clone().list_mcp_connections(request).await?.into_inner().connections;
    Ok(ok(connections.iter().map(connection_view).collect::<Vec<_>>()).into_response())
}

/// `DELETE /api/v1/account/mcp-connections/{id}`: its tokens stop working at once.
pub async fn revoke_connection(
    State(state): State<AppState>,
    session: SessionUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let request = idpb::RevokeMcpConnectionRequest { user_id: session.user.id, connection_id: id };
    let connection = state.identity.clone().revoke_mcp_connection(request).await?.into_inner();
    Ok(ok(connection_view(&connection)).into_response())
}

//! The consent page (authorization code + PKCE S256): the sign-in form when there is no session,
//! the team and scopes form, and the answer back to the client's redirect URI.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use common::ErrorCode;
use common::secret::{Digest, random_token};
use proto::identity::v1 as idpb;

use super::params::{AuthorizeParams, SCOPES, bound_resource, control_field, resource_url};
use crate::console::{Visitor, escape, field, field_refused, oauth_page, visitor};
use crate::session::COOKIE;
use crate::state::AppState;

const TITLE: &str = "Connect an MCP client";

/// A page of the flow without a form: the console's look, its policy, and never cached.
fn page(status: StatusCode, body: &str) -> Response {
    // A refusal may quote what the client sent, where a key never shows whole.
    let body = common::secret::redact_secrets(body);
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
    if let Some(name) = p.repeated(&["client_id", "redirect_uri"]) {
        return Err(Box::new(page(
            StatusCode::BAD_REQUEST,
            &format!("<p>The request names its {name} more than once.</p>"),
        )));
    }
    let request = idpb::GetMcpClientRequest { client_id: p.get("client_id").into() };
    let client = match state.identity.clone().get_mcp_client(request).await {
        Ok(client) => client.into_inner(),
        Err(status) if common::Error::from(status.clone()).code == ErrorCode::NotFound => {
            return Err(Box::new(page(StatusCode::BAD_REQUEST, "<p>Unknown client. Register it first.</p>")));
        }
        Err(_) => return Err(Box::new(unavailable())),
    };
    if !common::oauth::redirect_uri_registered(&client.redirect_uris, p.get("redirect_uri")) {
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
    let single = ["response_type", "code_challenge", "code_challenge_method", "state", "scope"];
    if let Some(name) = p.repeated(&single) {
        return fail("invalid_request", &format!("{name} must be given once"));
    }
    match p.get("response_type") {
        "code" => {}
        "" => return fail("invalid_request", "response_type is required"),
        _ => return fail("unsupported_response_type", "response_type must be code"),
    }
    if p.get("code_challenge").is_empty() || p.get("code_challenge_method") != "S256" {
        return fail("invalid_request", "PKCE with code_challenge_method=S256 is required");
    }
    // An S256 challenge is a SHA-256 digest in unpadded base64url (RFC 7636 §4.2): no other
    // value can ever be matched by a verifier.
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if p.get("code_challenge").len() != 43 || !p.get("code_challenge").bytes().all(base64url) {
        return fail("invalid_request", "code_challenge must be an S256 challenge: 43 characters of base64url");
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

/// A service the flow needs did not answer: neither a sign-in form nor a consent would be true.
fn unavailable() -> Response {
    page(StatusCode::SERVICE_UNAVAILABLE, "<p>The service is unavailable right now. Try again in a moment.</p>")
}

/// The sign-in form that comes before the consent form: for whom (the client's name, already
/// escaped, and where the code goes), the flow's hidden fields, and, when a sign-in was refused,
/// the e-mail address sent and what went wrong.
struct SignIn<'a> {
    name: &'a str,
    goes_to: &'a str,
    hidden: &'a str,
    email: &'a str,
    refusal: Option<&'a str>,
}

/// The sign-in form with its CSRF cookie. A refusal is said at the password, which takes the
/// focus, the address kept.
fn sign_in_page(state: &AppState, headers: &HeaderMap, status: StatusCode, form: &SignIn) -> Response {
    let existing = sign_in_cookie(headers);
    let token = existing.map_or_else(|| random_token(""), str::to_owned);
    let SignIn { name, goes_to, hidden, .. } = form;
    let email = field(
        "Email",
        "email",
        &format!(
            r#"<input id="email" name="email" type="email" autocomplete="email" required aria-describedby="email-error" value="{}">"#,
            escape(form.email)
        ),
    );
    let password = r#"<input id="password" name="password" type="password" autocomplete="current-password" required aria-describedby="password-error""#;
    // A refusal is said at the password, which takes the focus and is described by it.
    let password = match form.refusal {
        None => field("Password", "password", &format!("{password}>")),
        Some(text) => field_refused("Password", "password", &format!("{password} autofocus>"), text),
    };
    let mut response = oauth_page(
        status,
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
    let hidden = hidden_fields(&p);
    let name = escape(&client.client_name);
    let goes_to = destination_line(p.get("redirect_uri"));
    let Visitor { user, csrf } = match visitor(&state, &headers).await {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => {
            let form = SignIn { name: &name, goes_to: &goes_to, hidden: &hidden, email: "", refusal: None };
            return sign_in_page(&state, &headers, StatusCode::OK, &form);
        }
        // This flow's own page, under its own policy.
        Err(_) => return unavailable(),
    };
    let teams = match state.identity.clone().list_teams(idpb::ListTeamsRequest { user_id: user.id.clone() }).await {
        Ok(teams) => teams.into_inner().memberships,
        Err(_) => return unavailable(),
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
            "<h1>Connect <bdi>{name}</bdi> to Zenovay</h1><form class=\"card narrow\" method=\"post\" action=\"/oauth/authorize\">\
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

/// The flow's parameters, carried through the forms in one hidden field.
fn hidden_fields(p: &AuthorizeParams) -> String {
    format!("<input type=\"hidden\" name=\"oauth\" value=\"{}\">", escape(&p.oauth_query()))
}

/// The sign-in form again after a refused log-in: throttled and busy are said as such, with the
/// status the dashboard API gives them, and every other refusal is the same wrong-credentials
/// answer.
fn login_refused(state: &AppState, headers: &HeaderMap, error: crate::error::ApiError, form: SignIn) -> Response {
    let (status, refusal) = match error.error.code {
        ErrorCode::RateLimitExceeded => {
            let wait = error.retry_after_secs.map_or_else(|| "a few minutes".to_owned(), common::time::wait_in_words);
            (StatusCode::TOO_MANY_REQUESTS, format!("Too many attempts to sign in. Wait {wait}, then try again."))
        }
        ErrorCode::ServiceUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "Signing in is busy right now. Try again shortly.".to_owned())
        }
        _ => (StatusCode::UNAUTHORIZED, "Wrong email or password.".to_owned()),
    };
    let mut response = sign_in_page(state, headers, status, &SignIn { refusal: Some(&refusal), ..form });
    // When to try again, as the dashboard API says it (throttled, or hashing busy).
    if let Some(secs) = error.retry_after_secs {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    response
}

pub async fn authorize_submit(
    State(state): State<AppState>,
    client: crate::session::SigningIn,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return page(rejection.status(), "<p>This form could not be read: too large, or too slow.</p>");
        }
    };
    let form = AuthorizeParams::parse(&String::from_utf8_lossy(&body));
    if let Some(field) = control_field(&form.all) {
        return control_character(field);
    }
    if crate::session::foreign_origin(&state, &headers) {
        return page(StatusCode::FORBIDDEN, "<p>This form was sent from another site.</p>");
    }
    let p = AuthorizeParams::parse(form.get("oauth"));
    let client_name = match check_request(&state, &headers, &p).await {
        Ok(client) => escape(&client.client_name),
        Err(response) => return *response,
    };
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
                Err(status) => {
                    let (goes_to, hidden) = (destination_line(p.get("redirect_uri")), hidden_fields(&p));
                    let email = form.get("email");
                    let form = SignIn { name: &client_name, goes_to: &goes_to, hidden: &hidden, email, refusal: None };
                    return login_refused(&state, &headers, crate::routes::account::refused(status), form);
                }
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
            let user = match visitor(&state, &headers).await {
                Ok(Some(signed_in)) => signed_in.user,
                Ok(None) => return Redirect::to(&again).into_response(),
                Err(_) => return unavailable(),
            };
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

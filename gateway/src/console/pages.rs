//! The console's pages: server-rendered shells that the script fills from the dashboard API.
//! A page that needs a session checks the cookie first and sends the visitor to `/login`
//! without one, and puts the session's CSRF token where the script reads it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use common::ErrorCode;
use proto::identity::v1 as idpb;

use super::assets::{CSS, ICON, JS};
use super::headers;
use crate::session::{cookie, csrf_token};
use crate::state::AppState;

/// Text made safe for HTML text and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who is looking at a page that needs a session.
pub(crate) struct Visitor {
    pub(crate) user: idpb::User,
    pub(crate) csrf: String,
}

/// One page: its title, the name the script knows it by, and its main content (HTML, already
/// escaped).
struct Shell<'a> {
    title: &'a str,
    page: &'a str,
    visitor: Option<&'a Visitor>,
    main: String,
    /// `data-team` of the team settings page.
    team_id: Option<&'a str>,
}

fn nav_link(href: &str, label: &str, current: &str) -> String {
    let aria = if href == current { r#" aria-current="page""# } else { "" };
    format!(r#"<li><a href="{href}"{aria}>{label}</a></li>"#)
}

/// A group of the header's links under a visible label ("Settings", "Account"), as the contract
/// names its paths ("Settings → API keys"): a nested list that the label names, so that a screen
/// reader says the group with its links.
fn nav_group(id: &str, label: &str, links: &[String]) -> String {
    format!(
        r#"<li class="nav-group"><span class="nav-group-label" id="{id}">{label}</span><ul aria-labelledby="{id}">{}</ul></li>"#,
        links.concat()
    )
}

fn render(shell: Shell<'_>) -> Response {
    let (meta, header) = match shell.visitor {
        Some(visitor) => {
            let current = match shell.page {
                "websites" | "website" => "/websites",
                "api-keys" => "/settings/api-keys",
                "teams" | "team" => "/settings/teams",
                "connected-apps" => "/settings/connected-apps",
                "password" => "/settings/password",
                // A page of none of the links (the page saying an address has none).
                _ => "",
            };
            let links = [
                nav_link("/websites", "Websites", current),
                nav_group(
                    "nav-settings",
                    "Settings",
                    &[
                        nav_link("/settings/api-keys", "API keys", current),
                        nav_link("/settings/teams", "Teams", current),
                    ],
                ),
                nav_group(
                    "nav-account",
                    "Account",
                    &[
                        nav_link("/settings/connected-apps", "Connected apps", current),
                        nav_link("/settings/password", "Password and sessions", current),
                    ],
                ),
            ]
            .concat();
            (
                format!(r#"<meta name="csrf-token" content="{}">"#, escape(&visitor.csrf)),
                format!(
                    r#"<nav aria-label="Console"><ul>{links}</ul></nav><div class="account"><span class="who">{}</span><button type="button" id="logout">Log out</button></div>"#,
                    escape(&visitor.user.email)
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    let team = shell.team_id.map(|id| format!(r#" data-team="{}""#, escape(id))).unwrap_or_default();
    let html = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Zenovay</title>
{meta}
<link rel="icon" href="{icon}" type="image/svg+xml">
<link rel="stylesheet" href="{css}">
<script type="module" src="{js}"></script>
</head>
<body data-page="{page}"{team}>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/">Zenovay</a>{header}</header>
<main id="main" tabindex="-1">
{main}
</main>
</body>
</html>
"##,
        title = escape(shell.title),
        icon = ICON.href(),
        css = CSS.href(),
        js = JS.href(),
        page = shell.page,
        main = shell.main,
    );
    let mut response = Html(html).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page of the OAuth flow (sign-in, consent, refusals) in the console's look and under its
/// policy; `form_target` is where its form may lead besides this origin (see
/// [`headers::csp_with_form_target`]).
pub(crate) fn oauth_page(status: StatusCode, title: &str, main: String, form_target: Option<&str>) -> Response {
    let mut response = render(Shell { title, page: "oauth", visitor: None, main, team_id: None });
    *response.status_mut() = status;
    headers::secure(&mut response, headers::csp_with_form_target(form_target));
    response
}

/// The session behind the request's cookie, if it is a live one.
pub(crate) async fn visitor(state: &AppState, headers: &HeaderMap) -> Result<Option<Visitor>, Response> {
    let Some(token) = cookie(headers).filter(|t| !t.is_empty()) else { return Ok(None) };
    let request = idpb::AuthenticateSessionRequest { session_token: token.to_owned() };
    match common::transport::checked(state.identity.clone().authenticate_session(request)).await {
        Ok(user) => Ok(Some(Visitor { user: user.into_inner(), csrf: csrf_token(token) })),
        Err(status) => {
            let error = common::Error::from(status);
            if error.code == ErrorCode::Unauthorized {
                return Ok(None);
            }
            Err(unavailable())
        }
    }
}

fn unavailable() -> Response {
    let main = r#"<h1>Try again in a moment</h1><p>The service is unavailable right now.</p>"#.to_owned();
    let mut response = render(Shell { title: "Unavailable", page: "error", visitor: None, main, team_id: None });
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// To the log-in page, which leads back to `path` (a console page's own, so never elsewhere;
/// the websites page, where logging in leads anyway, is not named).
fn to_login(path: &str) -> Response {
    let to = match path {
        "/websites" => "/login".to_owned(),
        path => {
            format!("/login?{}", form_urlencoded::Serializer::new(String::new()).append_pair("next", path).finish())
        }
    };
    let mut response = Redirect::to(&to).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn to_websites() -> Response {
    let mut response = Redirect::to("/websites").into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match visitor(&state, &headers).await {
        Ok(Some(_)) => to_websites(),
        Ok(None) => to_login("/websites"),
        Err(response) => response,
    }
}

/// A labelled control (`input`, whose id is `id` and which names `{id}-error` in
/// `aria-describedby`) with the place its error appears.
pub(crate) fn field(label: &str, id: &str, input: &str) -> String {
    format!(
        r#"<div class="field"><label for="{id}">{label}</label>{input}<p class="error" id="{id}-error" role="alert" hidden></p></div>"#
    )
}

/// A [`field`] whose error slot says `error` (HTML, escaped already), for a form drawn again
/// after the server refused it.
pub(crate) fn field_refused(label: &str, id: &str, input: &str, error: &str) -> String {
    format!(
        r#"<div class="field"><label for="{id}">{label}</label>{input}<p class="error" id="{id}-error" role="alert">{error}</p></div>"#
    )
}

/// Which of the two sign-in forms: signing up asks for a name too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AuthForm {
    LogIn,
    SignUp,
}

fn auth_form(form: AuthForm) -> String {
    let (action, button) = match form {
        AuthForm::LogIn => ("/api/v1/auth/login", "Log in"),
        AuthForm::SignUp => ("/api/v1/auth/signup", "Sign up"),
    };
    let name = if form == AuthForm::SignUp {
        field(
            "Name",
            "name",
            r#"<input id="name" name="name" autocomplete="name" required maxlength="100" aria-describedby="name-error">"#,
        )
    } else {
        String::new()
    };
    let email = field(
        "Email",
        "email",
        // A refusal that names no field (a wrong email or password) is said in `auth-error`, and
        // focus then returns to this field, which it describes.
        r#"<input id="email" name="email" type="email" autocomplete="email" required aria-describedby="email-error auth-error">"#,
    );
    let autocomplete = if form == AuthForm::SignUp { "new-password" } else { "current-password" };
    let password = field(
        "Password",
        "password",
        &format!(
            r#"<input id="password" name="password" type="password" autocomplete="{autocomplete}" required aria-describedby="password-error">"#
        ),
    );
    format!(
        r#"<form class="card narrow" id="auth-form" data-action="{action}" method="post" novalidate>{name}{email}{password}<p class="error form-error" id="auth-error" role="alert" hidden></p><button type="submit" class="primary">{button}</button></form>"#
    )
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match visitor(&state, &headers).await {
        Ok(Some(_)) => return to_websites(),
        Ok(None) => {}
        Err(response) => return response,
    }
    let main =
        format!(r#"<h1>Log in</h1>{}<p>New here? <a href="/signup">Sign up</a></p>"#, auth_form(AuthForm::LogIn));
    render(Shell { title: "Log in", page: "login", visitor: None, main, team_id: None })
}

pub async fn signup(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match visitor(&state, &headers).await {
        Ok(Some(_)) => return to_websites(),
        Ok(None) => {}
        Err(response) => return response,
    }
    let main = format!(
        r#"<h1>Sign up</h1>{}<p>Already have an account? <a href="/login">Log in</a></p>"#,
        auth_form(AuthForm::SignUp)
    );
    render(Shell { title: "Sign up", page: "signup", visitor: None, main, team_id: None })
}

/// What a page for a signed-in person is: its title, the name the script knows it by, and the
/// team of a team's settings page.
struct SignedIn<'a> {
    title: &'a str,
    page: &'a str,
    team_id: Option<&'a str>,
}

/// A page for a signed-in person; the script draws its content into `#app`.
async fn signed_in(state: &AppState, headers: &HeaderMap, uri: &Uri, shell: SignedIn<'_>) -> Response {
    let SignedIn { title, page, team_id } = shell;
    let visitor = match visitor(state, headers).await {
        Ok(Some(visitor)) => visitor,
        Ok(None) => return to_login(uri.path_and_query().map_or("/websites", |p| p.as_str())),
        Err(response) => return response,
    };
    let main = format!(
        r#"<h1 id="page-title">{}</h1><div id="app" aria-busy="true"><p class="muted">Loading…</p></div>"#,
        escape(title)
    );
    render(Shell { title, page, visitor: Some(&visitor), main, team_id })
}

pub async fn websites(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    signed_in(&state, &headers, &uri, SignedIn { title: "Websites", page: "websites", team_id: None }).await
}

/// One website's statistics; the script reads the website's id from the address.
pub async fn website(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    signed_in(&state, &headers, &uri, SignedIn { title: "Website statistics", page: "website", team_id: None }).await
}

pub async fn api_keys(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    signed_in(&state, &headers, &uri, SignedIn { title: "API keys", page: "api-keys", team_id: None }).await
}

pub async fn teams(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    signed_in(&state, &headers, &uri, SignedIn { title: "Teams", page: "teams", team_id: None }).await
}

pub async fn team(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(team_id): Path<String>,
) -> Response {
    signed_in(&state, &headers, &uri, SignedIn { title: "Team settings", page: "team", team_id: Some(&team_id) }).await
}

pub async fn connected_apps(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    signed_in(&state, &headers, &uri, SignedIn { title: "Connected apps", page: "connected-apps", team_id: None }).await
}

pub async fn password(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let page = SignedIn { title: "Password and sessions", page: "password", team_id: None };
    signed_in(&state, &headers, &uri, page).await
}

/// A console page that does not exist, for a browser: a titled page with the way back, under the
/// console's policy (a program asking for JSON gets the API's 404 instead).
pub(crate) async fn not_found(state: &AppState, headers: &HeaderMap) -> Response {
    let visitor = visitor(state, headers).await.ok().flatten();
    let home = if visitor.is_some() { "/websites" } else { "/login" };
    let main = format!(
        r#"<h1>Page not found</h1><p>There is no page at this address. <a href="{home}">Go to the console</a>.</p>"#
    );
    let mut response =
        render(Shell { title: "Page not found", page: "error", visitor: visitor.as_ref(), main, team_id: None });
    *response.status_mut() = StatusCode::NOT_FOUND;
    headers::secure(&mut response, headers::csp_with_form_target(None));
    response
}

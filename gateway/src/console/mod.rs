//! The console: the web dashboard served at `/` (README, "Console"). Pages are HTML shells
//! rendered here; one script fills them from the dashboard API (`/api/v1`) with the session
//! cookie. Every asset is compiled into the binary and served from this origin only.

mod assets;
mod pages;

pub(crate) use pages::{escape, field, oauth_page};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::state::AppState;

/// Only this origin may supply anything a console page runs or shows, and no one may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::root))
        .route("/login", get(pages::login))
        .route("/signup", get(pages::signup))
        .route("/websites", get(pages::websites))
        .route("/websites/{id}", get(pages::website))
        .route("/settings/api-keys", get(pages::api_keys))
        .route("/settings/teams", get(pages::teams))
        .route("/settings/teams/{id}", get(pages::team))
        .route("/settings/connected-apps", get(pages::connected_apps))
        .route("/assets/{file}", get(assets::serve))
        .route("/js/script.js", get(assets::tracker))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    secure(&mut response, HeaderValue::from_static(CSP));
    response
}

/// The console's headers on a page: its policy `csp`, no framing, no sniffing, and no address
/// sent to another site.
fn secure(response: &mut Response, csp: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

/// The console's policy, letting a form also lead to `target` (an origin such as
/// `http://127.0.0.1:33418`, or a scheme such as `cursor:`): the OAuth consent form answers with
/// a redirect to the client, which browsers check against `form-action`. A target holding
/// anything but the characters of an origin is left out. `form-action` is the policy's last
/// directive, so the target is appended to it.
fn csp_with_form_target(target: Option<&str>) -> HeaderValue {
    let origin_chars = |t: &str| t.bytes().all(|b| b.is_ascii_alphanumeric() || b".+-:/[]".contains(&b));
    match target.filter(|t| !t.is_empty() && origin_chars(t)) {
        Some(target) => HeaderValue::from_str(&format!("{CSP} {target}")).unwrap_or(HeaderValue::from_static(CSP)),
        None => HeaderValue::from_static(CSP),
    }
}

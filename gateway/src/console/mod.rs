//! The console: the web dashboard served at `/` (README, "Console"). Pages are HTML shells
//! rendered here; one script fills them from the dashboard API (`/api/v1`) with the session
//! cookie. Every asset is compiled into the binary and served from this origin only.

mod assets;
mod pages;

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
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

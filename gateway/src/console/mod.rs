//! The console: the web dashboard served at `/` (README, "Console"). Pages are HTML shells
//! rendered here; one script fills them from the dashboard API (`/api/v1`) with the session
//! cookie. Every asset is compiled into the binary and served from this origin only.

mod assets;
mod headers;
mod pages;

pub(crate) use pages::{Visitor, escape, field, field_refused, not_found, oauth_page, visitor};

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::state::AppState;

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
        .route("/settings/password", get(pages::password))
        .route("/assets/{file}", get(assets::serve))
        .route("/js/script.js", get(assets::tracker))
        .layer(middleware::from_fn(headers::security_headers))
}

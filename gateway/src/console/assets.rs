//! The console's stylesheet, script and icon, compiled in and named by a hash of their content so that
//! browsers may keep them forever; and the public tracker script the snippet loads.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use common::secret::Digest;

pub struct Asset {
    /// `console.3f2a9c1b07d4.css`
    pub file: String,
    body: &'static str,
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
        let hash = &Digest::of(body).to_hex()[..12];
        Asset { file: format!("{stem}.{hash}.{ext}"), body, content_type }
    }

    /// The path a page links to.
    pub fn href(&self) -> String {
        format!("/assets/{}", self.file)
    }
}

pub static CSS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("console", "css", "text/css; charset=utf-8", include_str!("assets/console.css")));
pub static JS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("console", "js", "text/javascript; charset=utf-8", include_str!("assets/console.js")));

/// The tab's icon: without one every page's first load logs a failed `/favicon.ico`.
pub static ICON: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("icon", "svg", "image/svg+xml", include_str!("assets/icon.svg")));

const TRACKER: &str = include_str!("assets/script.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = [&*CSS, &*JS, &*ICON].into_iter().find(|a| a.file == file) else {
        // As every unknown address outside the pages: the API's 404, in the envelope.
        let error = crate::error::ApiError::new(common::ErrorCode::NotFound, "no such asset");
        return error.into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

/// The tracker tracked sites load from the snippet: its name is fixed, so it is cached for an
/// hour only.
pub async fn tracker() -> Response {
    let mut response = TRACKER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

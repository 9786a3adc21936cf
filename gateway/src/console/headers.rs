//! The console's response headers, shared by the console's router and its pages (the OAuth
//! consent page widens the policy for its form): a module of its own so that the pages need not
//! reach back into the console's root.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Only this origin may supply anything a console page runs or shows, and no one may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(super) async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    secure(&mut response, HeaderValue::from_static(CSP));
    response
}

/// The console's headers on a page: its policy `csp`, no framing, no sniffing, and no address
/// sent to another site.
pub(super) fn secure(response: &mut Response, csp: HeaderValue) {
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
pub(super) fn csp_with_form_target(target: Option<&str>) -> HeaderValue {
    let origin_chars = |t: &str| t.bytes().all(|b| b.is_ascii_alphanumeric() || b".+-:/[]".contains(&b));
    match target.filter(|t| !t.is_empty() && origin_chars(t)) {
        Some(target) => HeaderValue::from_str(&format!("{CSP} {target}")).unwrap_or(HeaderValue::from_static(CSP)),
        None => HeaderValue::from_static(CSP),
    }
}

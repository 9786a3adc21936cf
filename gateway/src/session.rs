//! Dashboard sessions: `Authorization: Bearer <session token>` or the session cookie.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::secret::Digest;
use common::{Error, ErrorCode};
use proto::identity::v1 as idpb;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The header a browser page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub const COOKIE: &str = "zenovay_session";

/// The user behind the request's session.
pub struct SessionUser {
    pub user: idpb::User,
    pub token: String,
}

/// Refuses a request that names more than one credential in the headers `names` (RFC 6750 §2:
/// once), instead of silently picking one of them.
pub fn one_credential(headers: &HeaderMap, names: &[header::HeaderName]) -> ApiResult<()> {
    let sent = names.iter().map(|name| headers.get_all(name).iter().count()).sum::<usize>();
    if sent > 1 {
        let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        return Err(Error::validation(format!("{}: send one credential, in one header", names.join(" / "))).into());
    }
    Ok(())
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie a browser sent.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_named(headers, COOKIE)
}

/// A cookie a browser sent, by name.
pub fn cookie_named<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(n, value)| (n == name).then_some(value))
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        one_credential(&parts.headers, &[header::AUTHORIZATION])?;
        let token = bearer(&parts.headers)
            .or_else(|| cookie(&parts.headers))
            .ok_or_else(|| ApiError::from(common::Error::unauthorized("a session token is required")))?
            .to_owned();
        let request = idpb::AuthenticateSessionRequest { session_token: token.clone() };
        let user = common::transport::checked(state.identity.clone().authenticate_session(request)).await?.into_inner();
        Ok(SessionUser { user, token })
    }
}

/// The CSRF token of a session: derived from the session token, which only the browser's
/// HttpOnly cookie and the page the gateway rendered for it hold, so every replica can check it
/// without shared state, and another site, which can make the browser send the cookie but never
/// read it, cannot forge it.
pub fn csrf_token(session_token: &str) -> String {
    Digest::of(&format!("zenovay-csrf:{session_token}")).to_hex()
}

/// Whether a request comes from a page of this gateway's own origin: its `Origin` names the
/// configured public URL or, without one, the host the request was sent to (scheme aside, since
/// a TLS proxy may stand in front). Another port of the same host is another origin.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    if let Some(public) = &state.public_url {
        return origin.eq_ignore_ascii_case(public);
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// Cross-site request forgery defence for the dashboard API (README, "Sessions in a browser"):
/// a state-changing request from a foreign `Origin` is refused, and one authenticated by the
/// session cookie rather than a `Bearer` token must carry the session's CSRF token and, when it
/// has a body, a JSON content type (a plain HTML form can send neither).
pub async fn cross_site_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Signing up or in opens a new session: a stale cookie's token is not asked for, the origin is.
    let opens_session = matches!(req.uri().path(), "/auth/login" | "/auth/signup");
    let checked = match opens_session {
        true => check_origin(&state, req.method(), req.headers()),
        false => check_cross_site(&state, req.method(), req.headers()),
    };
    match checked {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    }
}

/// Whether a request names an `Origin` other than this gateway's own (see [`same_origin`]).
pub fn foreign_origin(state: &AppState, headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && !same_origin(state, headers)
}

fn check_origin(state: &AppState, method: &Method, headers: &HeaderMap) -> ApiResult<()> {
    if !method.is_safe() && foreign_origin(state, headers) {
        return Err(Error::forbidden("cross-origin requests are refused").into());
    }
    Ok(())
}

fn check_cross_site(state: &AppState, method: &Method, headers: &HeaderMap) -> ApiResult<()> {
    // A page of another site cannot make the browser send a `Bearer` token, which no browser
    // keeps: a request authenticated by one (an API client's) is not a cross-site forgery,
    // whatever `Origin` it names. Any other `Authorization` leaves the cookie authenticating,
    // and a browser does add one of its own accord: the Basic credentials of a proxy in front.
    if bearer(headers).is_some_and(|token| !token.is_empty()) {
        return Ok(());
    }
    check_origin(state, method, headers)?;
    if method.is_safe() {
        return Ok(());
    }
    let Some(session) = cookie(headers) else {
        return Ok(());
    };
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if presented.is_empty() {
        return Err(Error::forbidden(format!(
            "a request authenticated by the session cookie needs the `{CSRF_HEADER}` header"
        ))
        .into());
    }
    if Digest::of(presented) != Digest::of(&csrf_token(session)) {
        return Err(Error::forbidden(format!("the `{CSRF_HEADER}` header does not match this session")).into());
    }
    // A body is announced by its length or by a transfer coding; a request with neither has none.
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|len| len.trim() != "0");
    let json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
            |mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            },
        );
    if has_body && !json {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON (`Content-Type: application/json`)",
        )
        .into());
    }
    Ok(())
}

/// The client's address: the trusted header's address when one is configured and holds one,
/// else the connection's peer.
pub fn client_ip(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    trusted_address(&parts.headers, state.client_ip_header.as_deref())
        .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip()))
}

/// The address in the trusted client-address header `name`. In a list (`X-Forwarded-For`), the
/// last entry: the one the proxy in front of the gateway added for the peer it saw. The entries
/// before it are whatever the client sent, so an allowlist or a sign-in limit that believed the
/// first could be passed by sending an allowed address (docs/behaviour.md#api-keys). Several
/// field lines are one list in their order (RFC 9110 §5.3), and a proxy may add a line of its
/// own after the client's rather than extend it: the last entry is the last line's.
pub fn trusted_address(headers: &axum::http::HeaderMap, name: Option<&str>) -> Option<IpAddr> {
    let value = headers.get_all(name?).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

/// Who signs in or up, as identity's throttling counts them: the client's address
/// ([`client_ip`]) and its User-Agent, recorded with the session.
pub struct SigningIn {
    pub address: String,
    pub user_agent: String,
}

impl FromRequestParts<AppState> for SigningIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(SigningIn {
            address: client_ip(state, parts).map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: user_agent.to_owned(),
        })
    }
}

/// The attributes of a cookie of this gateway's at `path`: `Secure` only when the configured public
/// URL is https, since browsers refuse a `Secure` cookie sent over plain http to any host but
/// localhost.
pub fn cookie_attributes_at(state: &AppState, path: &str) -> String {
    let https = state.public_url.as_deref().is_some_and(|url| url.to_ascii_lowercase().starts_with("https://"));
    format!("Path={path}; HttpOnly;{} SameSite=Lax", if https { " Secure;" } else { "" })
}

/// The session cookie's attributes (see [`cookie_attributes_at`]).
pub fn cookie_attributes(state: &AppState) -> String {
    cookie_attributes_at(state, "/")
}

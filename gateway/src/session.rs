//! Dashboard sessions: `Authorization: Bearer <session token>` or the session cookie.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use proto::identity::v1 as pb;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const COOKIE: &str = "zenovay_session";

/// The user behind the request's session.
pub struct SessionUser {
    pub user: pb::User,
    pub token: String,
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie a browser sent.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE).then_some(value))
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer(&parts.headers)
            .or_else(|| cookie(&parts.headers))
            .ok_or_else(|| ApiError::from(common::Error::unauthorized("a session token is required")))?
            .to_owned();
        let user = state
            .identity
            .clone()
            .authenticate_session(pb::AuthenticateSessionRequest { session_token: token.clone() })
            .await?
            .into_inner();
        Ok(SessionUser { user, token })
    }
}

/// Who signs in or up, as identity's throttling counts them: the client's address (the trusted
/// client-address header's first entry when configured and an IP address, else the peer) and its
/// User-Agent, recorded with the session.
pub struct SigningIn {
    pub address: String,
    pub user_agent: String,
}

impl FromRequestParts<AppState> for SigningIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let forwarded = state
            .client_ip_header
            .as_deref()
            .and_then(|name| parts.headers.get(name))
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse::<IpAddr>().ok());
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(SigningIn {
            address: forwarded.or(peer).map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: user_agent.to_owned(),
        })
    }
}

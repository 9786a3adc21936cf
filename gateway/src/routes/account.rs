//! The dashboard API, `/api/v1` (docs/behaviour.md#dashboard-api): accounts, teams, plans and personal API keys.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use common::access::Plan;
use common::secret::Digest;
use common::{Error, ErrorCode};
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde::Deserialize;
use serde_json::json;

use crate::envelope::{Body, Envelope, Path, RawBody, created, ok};
use crate::error::{ApiError, ApiResult};
use crate::flows::teams::{self, TeamOfUser};
use crate::session::{COOKIE, SessionUser, SigningIn, cookie_attributes};
use crate::state::AppState;
use crate::time::rfc3339;
use crate::views;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    email: String,
    password: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// A new session's answer (`ok` or `created`), which sets its cookie.
fn session_response(
    state: &AppState,
    answer: fn(serde_json::Value) -> Envelope<serde_json::Value>,
    session: idpb::SessionResponse,
) -> Response {
    let cookie = format!("{COOKIE}={}; {}; Max-Age=2592000", session.session_token, cookie_attributes(state));
    let data = json!({
        "user": session.user.as_ref().map(views::user),
        "session_token": session.session_token,
        "csrf_token": crate::session::csrf_token(&session.session_token),
    });
    let mut response = answer(data).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A refused sign-in or sign-up keeps identity's `retry-after` (throttled or hashing busy).
pub(crate) fn refused(status: tonic::Status) -> ApiError {
    let retry_after_secs = status.metadata().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    ApiError { retry_after_secs, ..ApiError::from(status) }
}

pub async fn signup(
    State(state): State<AppState>,
    client: SigningIn,
    Body(body): Body<SignupBody>,
) -> ApiResult<Response> {
    let request = idpb::SignupRequest {
        email: body.email,
        password: body.password,
        name: body.name,
        client_address: client.address,
        user_agent: client.user_agent,
    };
    let session = state.identity.clone().signup(request).await.map_err(refused)?.into_inner();
    Ok(session_response(&state, created, session))
}

pub async fn login(
    State(state): State<AppState>,
    client: SigningIn,
    Body(body): Body<LoginBody>,
) -> ApiResult<Response> {
    let request = idpb::LoginRequest {
        email: body.email,
        password: body.password,
        client_address: client.address,
        user_agent: client.user_agent,
    };
    let session = state.identity.clone().login(request).await.map_err(refused)?.into_inner();
    Ok(session_response(&state, ok, session))
}

fn logged_out(state: &AppState, mut response: Response) -> Response {
    let cookie = format!("{COOKIE}=; {}; Max-Age=0", cookie_attributes(state));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn logout(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    state.identity.clone().logout(idpb::LogoutRequest { session_token: session.token }).await?;
    Ok(logged_out(&state, ok(json!({ "logged_out": true })).into_response()))
}

/// A session as its user sees it: never its token.
fn session_view(s: &idpb::Session) -> serde_json::Value {
    json!({
        "id": s.id,
        "created_at": rfc3339(s.created_at_unix_ms),
        "expires_at": rfc3339(s.expires_at_unix_ms),
        "last_used_at": s.last_used_at_unix_ms.map(rfc3339),
        "user_agent": s.user_agent,
        "current": s.current,
    })
}

pub async fn list_sessions(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let request = idpb::ListSessionsRequest { user_id: session.user.id, session_token: session.token };
    let sessions = state.identity.clone().list_sessions(request).await?.into_inner().sessions;
    Ok(ok(sessions.iter().map(session_view).collect::<Vec<_>>()).into_response())
}

/// Ends one of the caller's sessions; ending the current one logs the caller out.
pub async fn revoke_session(
    State(state): State<AppState>,
    session: SessionUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let request = idpb::RevokeSessionRequest { user_id: session.user.id, session_id: id, session_token: session.token };
    let revoked = state.identity.clone().revoke_session(request).await?.into_inner();
    let response = ok(session_view(&revoked)).into_response();
    Ok(if revoked.current { logged_out(&state, response) } else { response })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Sets the caller's password; their other sessions end, this one stays (README.md, "Sign-in
/// protection and sessions").
pub async fn change_password(
    State(state): State<AppState>,
    session: SessionUser,
    client: SigningIn,
    Body(body): Body<PasswordBody>,
) -> ApiResult<Response> {
    let request = idpb::ChangePasswordRequest {
        user_id: session.user.id,
        session_token: session.token,
        current_password: body.current_password,
        new_password: body.new_password,
        client_address: client.address,
    };
    let changed = state.identity.clone().change_password(request).await.map_err(refused)?.into_inner();
    Ok(ok(json!({ "sessions_ended": changed.sessions_ended })).into_response())
}

pub async fn me(session: SessionUser) -> impl IntoResponse {
    ok(views::user(&session.user))
}

fn team_view(team: &TeamOfUser) -> serde_json::Value {
    views::team(&team.membership, team.settings.as_ref())
}

pub async fn list_teams(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let teams = teams::teams_of(&state, &session.user.id).await?;
    Ok(ok(teams.iter().map(team_view).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamBody {
    name: String,
}

pub async fn create_team(
    State(state): State<AppState>,
    session: SessionUser,
    Body(body): Body<CreateTeamBody>,
) -> ApiResult<Response> {
    let team = teams::create_team(&state, session.user.id, body.name).await?;
    Ok(created(team_view(&team)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OverridesBody {
    requests_per_minute: Option<u32>,
    requests_per_month: Option<u64>,
    mcp_calls_per_day: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPlanBody {
    plan: Plan,
    #[serde(default, deserialize_with = "crate::envelope::object_or_null")]
    overrides: Option<OverridesBody>,
}

/// The operator, by `X-Operator-Token`: checked before the body is read, so that no one else
/// learns anything of what the body should hold, nor gets to send one.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let expected = state
            .operator_token
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "the operator API is disabled on this server"))?;
        let presented = parts.headers.get("x-operator-token").and_then(|v| v.to_str().ok());
        // Comparing digests keeps the comparison's timing unrelated to the token's characters.
        if presented.map(Digest::of).as_ref() != Some(expected.as_ref()) {
            return Err(Error::unauthorized("a valid X-Operator-Token is required").into());
        }
        Ok(Operator)
    }
}

pub async fn set_plan(
    State(state): State<AppState>,
    _: Operator,
    Path(team_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let body: SetPlanBody = crate::envelope::parse(&body)?;
    let overrides = body.overrides.unwrap_or_default();
    if overrides.requests_per_minute == Some(0) {
        return Err(Error::validation("overrides.requests_per_minute must be at least 1").into());
    }
    let overrides = popb::LimitOverrides {
        requests_per_minute: overrides.requests_per_minute,
        requests_per_month: overrides.requests_per_month,
        mcp_calls_per_day: overrides.mcp_calls_per_day,
    };
    let settings = teams::set_plan(&state, team_id, body.plan, overrides).await?;
    Ok(ok(views::team_settings(&settings)).into_response())
}

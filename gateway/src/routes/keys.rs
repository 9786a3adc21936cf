//! The dashboard's API keys: list, create, edit, rotate, revoke, and each key's usage. Parses
//! the bodies into `common::access` types, calls `flows::keys`, renders.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use common::Error;
use common::access::{GracePeriod, Grant, KeyName, KeyTeams, Scope};
use serde::Deserialize;
use serde_json::json;

use crate::envelope::{Body, Params, Path, RawBody, created, ok};
use crate::error::ApiResult;
use crate::flows::keys::{self, IssuedKey, KeyChange, NewKey};
use crate::session::SessionUser;
use crate::state::AppState;
use crate::views;

pub async fn list_keys(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let keys = keys::list(&state, session.user.id).await?;
    Ok(ok(keys.iter().map(views::api_key).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum FullLiteral {
    Full,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum AllLiteral {
    All,
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "\"full\" or a non-empty list of \"read\", \"write\", \"admin\"")]
enum PermissionsBody {
    Full(FullLiteral),
    Scopes(Vec<Scope>),
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "\"all\" or a non-empty list of team ids")]
enum TeamsBody {
    All(AllLiteral),
    Only(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: String,
    permissions: PermissionsBody,
    teams: TeamsBody,
    /// RFC 3339; absent or null: the key never expires.
    #[serde(default)]
    expires_at: Option<String>,
    /// CIDR blocks or addresses; absent, null or empty: anywhere.
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
}

/// A key's expiry as sent (RFC 3339), in unix ms; identity judges whether it is allowed.
fn expiry(text: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.timestamp_millis())
        .map_err(|_| Error::validation("expires_at: must be an RFC 3339 time such as 2027-01-31T00:00:00Z").into())
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be left out but, as at creation, not sent as `null`.
fn given<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn grant(permissions: PermissionsBody) -> ApiResult<Grant> {
    Ok(match permissions {
        PermissionsBody::Full(_) => Grant::Full,
        PermissionsBody::Scopes(scopes) => Grant::scopes(scopes)?,
    })
}

fn key_teams(teams: TeamsBody) -> ApiResult<KeyTeams> {
    Ok(match teams {
        TeamsBody::All(_) => KeyTeams::All,
        TeamsBody::Only(ids) => KeyTeams::only(ids)?,
    })
}

/// A new secret, shown this once and never cached.
fn issued(issued: IssuedKey) -> Response {
    let body = json!({ "key": issued.secret.expose(), "api_key": views::api_key(&issued.key) });
    let mut response = created(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn create_key(
    State(state): State<AppState>,
    session: SessionUser,
    Body(body): Body<CreateKeyBody>,
) -> ApiResult<Response> {
    let new = NewKey {
        name: KeyName::parse(&body.name)?,
        grant: grant(body.permissions)?,
        teams: key_teams(body.teams)?,
        expires_at: body.expires_at.as_deref().map(expiry).transpose()?,
        allowed_ips: body.allowed_ips.unwrap_or_default(),
    };
    Ok(issued(keys::create(&state, session.user.id, new).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    #[serde(default, deserialize_with = "given")]
    name: Option<String>,
    #[serde(default, deserialize_with = "given")]
    permissions: Option<PermissionsBody>,
    #[serde(default, deserialize_with = "given")]
    teams: Option<TeamsBody>,
    /// RFC 3339, or null for never; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
    /// A new allowlist (null or empty: anywhere); absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    allowed_ips: Option<Option<Vec<String>>>,
}

pub async fn update_key(
    State(state): State<AppState>,
    session: SessionUser,
    Path(key_id): Path<String>,
    Body(body): Body<UpdateKeyBody>,
) -> ApiResult<Response> {
    let change = KeyChange {
        name: body.name.as_deref().map(KeyName::parse).transpose()?,
        expires_at: body.expires_at.map(|at| at.as_deref().map(expiry).transpose()).transpose()?,
        grant: body.permissions.map(grant).transpose()?,
        teams: body.teams.map(key_teams).transpose()?,
        allowed_ips: body.allowed_ips.map(Option::unwrap_or_default),
    };
    let key = keys::edit(&state, session.user.id, key_id, change).await?;
    Ok(ok(views::api_key(&key)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    /// How long the old key keeps working; a day unless said (absent or null).
    #[serde(default)]
    grace_period_seconds: Option<i64>,
}

/// A new secret for a key; the old one keeps working for the grace period (README, "API keys").
pub async fn rotate_key(
    State(state): State<AppState>,
    session: SessionUser,
    Path(key_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    // The body is optional: none at all means every default.
    let seconds = match body.is_empty() {
        true => None,
        false => crate::envelope::parse::<RotateKeyBody>(&body)?.grace_period_seconds,
    };
    let grace = seconds.map(GracePeriod::from_seconds).transpose()?.unwrap_or(GracePeriod::A_DAY);
    Ok(issued(keys::rotate(&state, session.user.id, key_id, grace).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    #[serde(default = "thirty")]
    days: i64,
}

fn thirty() -> i64 {
    30
}

/// A key's requests per UTC day by outcome, oldest first, every day of the range listed.
pub async fn key_usage(
    State(state): State<AppState>,
    session: SessionUser,
    Path(key_id): Path<String>,
    Params(params): Params<UsageParams>,
) -> ApiResult<Response> {
    Ok(ok(keys::usage(&state, session.user.id, key_id, params.days).await?).into_response())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    session: SessionUser,
    Path(key_id): Path<String>,
) -> ApiResult<Response> {
    let key = keys::revoke(&state, session.user.id, key_id).await?;
    Ok(ok(views::api_key(&key)).into_response())
}

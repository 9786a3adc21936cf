//! The dashboard's API keys: list, create, edit, rotate, revoke, and each key's usage.

use crate::apikey::ApiKeySecret;
use crate::envelope::{Body, Path, RawBody, created, ok};
use crate::error::{ApiError, ApiResult};
use crate::flows::teams::{memberships, team_id};
use crate::session::SessionUser;
use crate::state::AppState;
use crate::time::rfc3339;
use crate::views;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use common::access::{Grant, Scope};
use common::bus::Change;
use common::{Error, ErrorCode};
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde::Deserialize;
use serde_json::json;

pub async fn list_keys(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let keys = state
        .identity
        .clone()
        .list_api_keys(idpb::ListApiKeysRequest { user_id: session.user.id })
        .await?
        .into_inner()
        .keys;
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

fn grant(permissions: PermissionsBody) -> ApiResult<idpb::KeyGrant> {
    let grant = match permissions {
        PermissionsBody::Full(_) => Grant::Full,
        PermissionsBody::Scopes(scopes) => Grant::scopes(scopes)?,
    };
    Ok(grant.to_proto())
}

fn key_name(name: &str) -> ApiResult<()> {
    if !(1..=64).contains(&name.trim().chars().count()) {
        return Err(Error::validation("name: must be 1–64 characters after trimming").into());
    }
    Ok(())
}

fn key_teams(teams: TeamsBody) -> ApiResult<idpb::KeyTeams> {
    match teams {
        TeamsBody::All(_) => Ok(idpb::KeyTeams { all: true, team_ids: vec![] }),
        TeamsBody::Only(ids) if ids.is_empty() => {
            Err(Error::validation("teams: must be \"all\" or a non-empty list of team ids").into())
        }
        TeamsBody::Only(mut ids) => {
            ids.sort();
            ids.dedup();
            Ok(idpb::KeyTeams { all: false, team_ids: ids })
        }
    }
}

/// The rules for a key's grant and teams (docs/behaviour.md#api-keys), at creation and at every edit.
async fn check_key_rules(
    state: &AppState,
    user_id: &str,
    grant: &idpb::KeyGrant,
    teams: &idpb::KeyTeams,
) -> ApiResult<()> {
    let memberships = memberships(state, user_id).await?;
    let team_roles: Vec<idpb::TeamRole> = memberships
        .iter()
        .filter(|m| teams.all || teams.team_ids.iter().any(|id| id == team_id(m)))
        .map(|m| idpb::TeamRole { team_id: team_id(m).to_owned(), role: m.role })
        .collect();
    if let Some(missing) = teams.team_ids.iter().find(|id| !team_roles.iter().any(|t| &t.team_id == *id)) {
        return Err(Error::forbidden(format!("you are not a member of team {missing}")).into());
    }
    let decision = state
        .policy
        .clone()
        .check_key_creation(popb::CheckKeyCreationRequest {
            grant: Some(grant.clone()),
            teams: team_roles,
            teams_selected: !teams.all,
        })
        .await?
        .into_inner();
    if decision.allowed {
        return Ok(());
    }
    let code = match popb::DenyReason::try_from(decision.reason) {
        Ok(popb::DenyReason::ApiPaidPlanRequired) => ErrorCode::ApiPaidPlanRequired,
        Ok(popb::DenyReason::KeyPolicyForbids) => ErrorCode::KeyPolicyForbids,
        _ => ErrorCode::Forbidden,
    };
    Err(ApiError::new(code, decision.message))
}

pub async fn create_key(
    State(state): State<AppState>,
    session: SessionUser,
    Body(body): Body<CreateKeyBody>,
) -> ApiResult<Response> {
    key_name(&body.name)?;
    let grant = grant(body.permissions)?;
    let teams = key_teams(body.teams)?;
    check_key_rules(&state, &session.user.id, &grant, &teams).await?;
    let secret = ApiKeySecret::generate();
    let key = state
        .identity
        .clone()
        .create_api_key(idpb::CreateApiKeyRequest {
            user_id: session.user.id,
            name: body.name,
            grant: Some(grant),
            teams: Some(teams),
            secret_digest: secret.digest().as_bytes().to_vec(),
            hint: secret.hint(),
            expires_at_unix_ms: body.expires_at.as_deref().map(expiry).transpose()?,
            allowed_ips: body.allowed_ips.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let mut response = created(json!({ "key": secret.expose(), "api_key": views::api_key(&key) })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    permissions: Option<PermissionsBody>,
    #[serde(default)]
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
    if let Some(name) = &body.name {
        key_name(name)?;
    }
    let new_expiry = match &body.expires_at {
        None => None,
        Some(at) => Some(idpb::KeyExpiry { at_unix_ms: at.as_deref().map(expiry).transpose()? }),
    };
    let new_grant = body.permissions.map(grant).transpose()?;
    let new_teams = body.teams.map(key_teams).transpose()?;
    if new_grant.is_some() || new_teams.is_some() {
        let current = own_key(&state, &session.user.id, &key_id).await?;
        let grant = new_grant.clone().or(current.grant).unwrap_or_default();
        let teams = new_teams.clone().or(current.teams).unwrap_or_default();
        check_key_rules(&state, &session.user.id, &grant, &teams).await?;
    }
    let key = state
        .identity
        .clone()
        .update_api_key(idpb::UpdateApiKeyRequest {
            user_id: session.user.id,
            key_id,
            name: body.name,
            grant: new_grant,
            teams: new_teams,
            expiry: new_expiry,
            allowed_ips: body.allowed_ips.map(|list| idpb::KeyAllowedIps { cidrs: list.unwrap_or_default() }),
        })
        .await?
        .into_inner();
    if let Some(cache) = &state.keys {
        cache.forget(Change::Key(key.id.clone()));
    }
    Ok(ok(views::api_key(&key)).into_response())
}

/// One of the user's keys as it stands; NOT_FOUND for anyone else's.
async fn own_key(state: &AppState, user_id: &str, key_id: &str) -> ApiResult<idpb::ApiKey> {
    let request = idpb::ListApiKeysRequest { user_id: user_id.to_owned() };
    let keys = state.identity.clone().list_api_keys(request).await?.into_inner().keys;
    Ok(keys.into_iter().find(|k| k.id == key_id).ok_or_else(|| Error::not_found("API key"))?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    /// How long the old key keeps working; a day unless said.
    #[serde(default = "a_day")]
    grace_period_seconds: i64,
}

fn a_day() -> i64 {
    86_400
}

/// A new secret for a key; the old one keeps working for the grace period (README, "API keys").
pub async fn rotate_key(
    State(state): State<AppState>,
    session: SessionUser,
    Path(key_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    // The body is optional: none at all means every default.
    let grace_period_seconds =
        if body.is_empty() { a_day() } else { crate::envelope::parse::<RotateKeyBody>(&body)?.grace_period_seconds };
    if !(0..=604_800).contains(&grace_period_seconds) {
        return Err(Error::validation("grace_period_seconds: must be 0 to 604800").into());
    }
    let old = own_key(&state, &session.user.id, &key_id).await?;
    // The new key reaches what the old one does: the team's rules are those of a new key.
    check_key_rules(&state, &session.user.id, &old.grant.unwrap_or_default(), &old.teams.unwrap_or_default()).await?;
    let secret = ApiKeySecret::generate();
    let key = state
        .identity
        .clone()
        .rotate_api_key(idpb::RotateApiKeyRequest {
            user_id: session.user.id,
            key_id,
            grace_period_seconds,
            secret_digest: secret.digest().as_bytes().to_vec(),
            hint: secret.hint(),
        })
        .await?
        .into_inner();
    if let Some(cache) = &state.keys {
        cache.forget(Change::Key(old.id));
    }
    let mut response = created(json!({ "key": secret.expose(), "api_key": views::api_key(&key) })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
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
    crate::envelope::Params(params): crate::envelope::Params<UsageParams>,
) -> ApiResult<Response> {
    let request = idpb::GetKeyUsageRequest { user_id: session.user.id, key_id, days: params.days };
    let counts = state.identity.clone().get_key_usage(request).await?.into_inner().counts;
    use crate::usage::DAY_MS;
    let today = common::time::now_ms().div_euclid(DAY_MS);
    let rows: Vec<_> = (today - params.days + 1..=today)
        .map(|day| {
            let of = |outcome: &str| {
                counts.iter().filter(|c| c.day == day && c.outcome == outcome).map(|c| c.count).sum::<i64>()
            };
            json!({
                "date": rfc3339(day * DAY_MS)[..10],
                "success": of("success"),
                "client_error": of("client_error"),
                "rate_limited": of("rate_limited"),
                "server_error": of("server_error"),
            })
        })
        .collect();
    Ok(ok(rows).into_response())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    session: SessionUser,
    Path(key_id): Path<String>,
) -> ApiResult<Response> {
    let key = state
        .identity
        .clone()
        .revoke_api_key(idpb::RevokeApiKeyRequest { user_id: session.user.id, key_id })
        .await?
        .into_inner();
    // This replica forgets the key before answering; the others hear of it from identity.
    if let Some(cache) = &state.keys {
        cache.forget(Change::Key(key.id.clone()));
    }
    Ok(ok(views::api_key(&key)).into_response())
}

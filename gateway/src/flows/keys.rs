//! The life of a user's API keys (docs/behaviour.md#api-keys): create, edit, rotate, revoke,
//! and each key's usage. The rules of a key's fields are `common::access`'s (`KeyName`, `Grant`,
//! `KeyTeams`, `GracePeriod`); here the checks that take more than one service: the owner's
//! memberships (identity) against the teams' key policies and plans (policy), before identity
//! stores anything.

use common::Error;
use common::access::{GracePeriod, Grant, KeyName, KeyTeams};
use common::bus::Change;
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde::Serialize;

use crate::apikey::ApiKeySecret;
use crate::error::{ApiError, ApiResult};
use crate::flows::teams::{memberships, team_id};
use crate::state::AppState;
use crate::time::rfc3339;
use crate::usage::DAY_MS;

/// A key as asked for, every field already parsed.
pub struct NewKey {
    pub name: KeyName,
    pub grant: Grant,
    pub teams: KeyTeams,
    /// Unix ms; None: never. Identity judges whether it is allowed.
    pub expires_at: Option<i64>,
    /// CIDR blocks or addresses; empty: anywhere. Identity parses them.
    pub allowed_ips: Vec<String>,
}

/// An edit of a key: each field, when present, replaces the key's.
pub struct KeyChange {
    pub name: Option<KeyName>,
    pub grant: Option<Grant>,
    pub teams: Option<KeyTeams>,
    /// `Some(None)`: the key no longer expires.
    pub expires_at: Option<Option<i64>>,
    /// `Some(vec![])`: usable from anywhere.
    pub allowed_ips: Option<Vec<String>>,
}

/// A key with the secret shown once, at creation or rotation.
pub struct IssuedKey {
    pub secret: ApiKeySecret,
    pub key: idpb::ApiKey,
}

/// A key's requests on one UTC day, by outcome.
#[derive(Serialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub success: i64,
    pub client_error: i64,
    pub rate_limited: i64,
    pub server_error: i64,
}

pub async fn list(state: &AppState, user_id: String) -> ApiResult<Vec<idpb::ApiKey>> {
    let request = idpb::ListApiKeysRequest { user_id };
    Ok(state.identity.clone().list_api_keys(request).await?.into_inner().keys)
}

/// One of the user's keys as it stands; NOT_FOUND for anyone else's.
async fn own_key(state: &AppState, user_id: &str, key_id: &str) -> ApiResult<idpb::ApiKey> {
    let keys = list(state, user_id.to_owned()).await?;
    Ok(keys.into_iter().find(|k| k.id == key_id).ok_or_else(|| Error::not_found("API key"))?)
}

/// The rules for a key's grant and teams (docs/behaviour.md#api-keys), at creation, at every
/// edit of either and at rotation: the owner is a member of every team listed, and each team's
/// key policy and plan allow the key.
async fn check_key_rules(state: &AppState, user_id: &str, grant: &Grant, teams: &KeyTeams) -> ApiResult<()> {
    let memberships = memberships(state, user_id).await?;
    let team_roles: Vec<idpb::TeamRole> = memberships
        .iter()
        .filter(|m| teams.selects(team_id(m)))
        .map(|m| idpb::TeamRole { team_id: team_id(m).to_owned(), role: m.role })
        .collect();
    teams.check_member_of(|id| team_roles.iter().any(|t| t.team_id == id))?;
    let decision = state
        .policy
        .clone()
        .check_key_creation(popb::CheckKeyCreationRequest {
            grant: Some(grant.to_proto()),
            teams: team_roles,
            teams_selected: matches!(teams, KeyTeams::Only(_)),
        })
        .await?
        .into_inner();
    if decision.allowed {
        return Ok(());
    }
    Err(ApiError::new(crate::auth::refusal_code(decision.reason), decision.message))
}

/// This replica forgets the key before answering; the others hear of it from identity.
fn forget(state: &AppState, key_id: &str) {
    if let Some(cache) = &state.keys {
        cache.forget(Change::Key(key_id.to_owned()));
    }
}

pub async fn create(state: &AppState, user_id: String, new: NewKey) -> ApiResult<IssuedKey> {
    check_key_rules(state, &user_id, &new.grant, &new.teams).await?;
    let secret = ApiKeySecret::generate();
    let key = state
        .identity
        .clone()
        .create_api_key(idpb::CreateApiKeyRequest {
            user_id,
            name: new.name.into_string(),
            grant: Some(new.grant.to_proto()),
            teams: Some(new.teams.to_proto()),
            secret_digest: secret.digest().as_bytes().to_vec(),
            hint: secret.hint(),
            expires_at_unix_ms: new.expires_at,
            allowed_ips: new.allowed_ips,
        })
        .await?
        .into_inner();
    Ok(IssuedKey { secret, key })
}

/// The key as edited is checked as a new key would be, whatever the edit changes: a key that
/// creation would now refuse (its owner demoted, a team's policy tightened) is renamed, given a
/// new expiry or addresses only once its grant and teams pass again (docs/behaviour.md#api-keys).
pub async fn edit(state: &AppState, user_id: String, key_id: String, change: KeyChange) -> ApiResult<idpb::ApiKey> {
    let current = own_key(state, &user_id, &key_id).await?;
    let grant = match &change.grant {
        Some(grant) => grant.clone(),
        None => Grant::from_proto(current.grant.as_ref())?,
    };
    let teams = match &change.teams {
        Some(teams) => teams.clone(),
        None => KeyTeams::from_proto(current.teams.as_ref())?,
    };
    // A revoked key is refused as such by identity, whatever its teams now say.
    if current.revoked_at_unix_ms.is_none() {
        check_key_rules(state, &user_id, &grant, &teams).await?;
    }
    let key = state
        .identity
        .clone()
        .update_api_key(idpb::UpdateApiKeyRequest {
            user_id,
            key_id,
            name: change.name.map(KeyName::into_string),
            grant: change.grant.as_ref().map(Grant::to_proto),
            teams: change.teams.as_ref().map(KeyTeams::to_proto),
            expiry: change.expires_at.map(|at_unix_ms| idpb::KeyExpiry { at_unix_ms }),
            allowed_ips: change.allowed_ips.map(|cidrs| idpb::KeyAllowedIps { cidrs }),
        })
        .await?
        .into_inner();
    forget(state, &key.id);
    Ok(key)
}

/// A new secret for a key; the old one keeps working for the grace period (README, "API keys").
/// The new key reaches what the old one does: the teams' rules are those of a new key.
pub async fn rotate(state: &AppState, user_id: String, key_id: String, grace: GracePeriod) -> ApiResult<IssuedKey> {
    let old = own_key(state, &user_id, &key_id).await?;
    // A revoked or rotated key is refused as such by identity, whatever its teams now say.
    if old.revoked_at_unix_ms.is_none() && old.rotated_to.is_empty() {
        let grant = Grant::from_proto(old.grant.as_ref())?;
        let teams = KeyTeams::from_proto(old.teams.as_ref())?;
        check_key_rules(state, &user_id, &grant, &teams).await?;
    }
    let secret = ApiKeySecret::generate();
    let key = state
        .identity
        .clone()
        .rotate_api_key(idpb::RotateApiKeyRequest {
            user_id,
            key_id,
            grace_period_seconds: grace.seconds(),
            secret_digest: secret.digest().as_bytes().to_vec(),
            hint: secret.hint(),
        })
        .await?
        .into_inner();
    forget(state, &old.id);
    Ok(IssuedKey { secret, key })
}

pub async fn revoke(state: &AppState, user_id: String, key_id: String) -> ApiResult<idpb::ApiKey> {
    let request = idpb::RevokeApiKeyRequest { user_id, key_id };
    let key = state.identity.clone().revoke_api_key(request).await?.into_inner();
    forget(state, &key.id);
    Ok(key)
}

/// A key's requests per UTC day by outcome over the last `days` days, oldest first, every day
/// of the range listed.
pub async fn usage(state: &AppState, user_id: String, key_id: String, days: i64) -> ApiResult<Vec<DayUsage>> {
    let request = idpb::GetKeyUsageRequest { user_id, key_id, days };
    let counts = state.identity.clone().get_key_usage(request).await?.into_inner().counts;
    let today = common::time::now_ms().div_euclid(DAY_MS);
    let rows = (today - days + 1..=today)
        .map(|day| {
            let of = |outcome: &str| {
                counts.iter().filter(|c| c.day == day && c.outcome == outcome).map(|c| c.count).sum::<i64>()
            };
            DayUsage {
                date: rfc3339(day * DAY_MS)[..10].to_owned(),
                success: of("success"),
                client_error: of("client_error"),
                rate_limited: of("rate_limited"),
                server_error: of("server_error"),
            }
        })
        .collect();
    Ok(rows)
}

//! Identity's storage: portable SQL over `sqlx::Any`, the same on SQLite and PostgreSQL.

use std::collections::BTreeSet;

use common::access::{Grant, KeyTeams, Role, Scope};
use common::db::{AnyPool, Backend, OpenError};
use common::error::is_unique_violation;
use common::secret::Digest;
use common::time::now_ms;
use common::{Error, ErrorCode, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::keyhash::Stored;
use crate::model::{ApiKey, AuditEntry, KeyUsage, Member, Membership, Session, Team, User};

mod locked;

pub use locked::{RevokedKey, TeamTx, revoked_key_is_final};

/// A key's edit, as it will be stored.
pub struct KeyUpdate<'a> {
    pub key: &'a ApiKey,
    /// Its teams were edited, so each team it selects must be one of its owner's (a team the
    /// owner has left since the key was made may stay selected as long as it is not edited).
    pub teams_edited: bool,
}

/// A key's rotation: the key, its successor, and when the key retires.
pub struct Rotation<'a> {
    pub old: &'a ApiKey,
    pub new: &'a ApiKey,
    pub retires_at: i64,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// `db.system` of the backend, for spans.
    pub(crate) system: &'static str,
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A member from a row of `users` joined with `memberships` (`role`, `joined_at`).
fn member_from_row(row: &AnyRow) -> Result<Member> {
    Ok(Member {
        user: user_from_row(row)?,
        role: row.try_get::<String, _>("role")?.parse()?,
        joined_at: row.try_get("joined_at")?,
    })
}

fn team_from_row(row: &AnyRow) -> Result<Team> {
    Ok(Team { id: row.try_get("id")?, name: row.try_get("name")?, created_at: row.try_get("created_at")? })
}

fn session_from_row(row: &AnyRow, current_digest: &str) -> Result<Session> {
    let digest: String = row.try_get("token_digest")?;
    Ok(Session {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        user_agent: row.try_get("user_agent")?,
        current: digest == current_digest,
    })
}

/// A grant as stored (and shown in the audit log): `full` or a comma-separated list such as
/// `read,write`.
pub(crate) fn encode_grant(grant: &Grant) -> String {
    match grant {
        Grant::Full => "full".to_owned(),
        Grant::Scopes(set) => set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
    }
}

fn decode_grant(s: &str) -> Result<Grant> {
    if s == "full" {
        return Ok(Grant::Full);
    }
    let scope = |part: &str| match part {
        "read" => Ok(Scope::Read),
        "write" => Ok(Scope::Write),
        "admin" => Ok(Scope::Admin),
        _ => Err(Error::internal(format!("stored grant has unknown scope {part:?}"))),
    };
    Grant::scopes(s.split(',').map(scope).collect::<Result<Vec<_>>>()?)
}

fn key_from_row(row: &AnyRow, team_ids: BTreeSet<String>) -> Result<ApiKey> {
    let all_teams: i64 = row.try_get("all_teams")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        hint: row.try_get("hint")?,
        grant: decode_grant(&row.try_get::<String, _>("permissions")?)?,
        teams: if all_teams != 0 { KeyTeams::All } else { KeyTeams::Only(team_ids) },
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_reason: row.try_get("revoked_reason")?,
        expires_at: row.try_get("expires_at")?,
        retires_at: row.try_get("retires_at")?,
        rotated_from: row.try_get("rotated_from")?,
        rotated_to: row.try_get("rotated_to")?,
        leak_url: row.try_get("leak_url")?,
        allowed_ips: row
            .try_get::<String, _>("allowed_ips")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
    .retired_by(now_ms()))
}

const KEY_COLUMNS: &str = "id, user_id, name, hint, permissions, all_teams, created_at, last_used_at, revoked_at, revoked_reason, expires_at, \
     retires_at, rotated_from, rotated_to, allowed_ips, leak_url";

impl Store {
    pub async fn open(backend: &Backend) -> Result<Store, OpenError> {
        Ok(Store { pool: common::db::open(backend, "identity", &MIGRATOR).await?, system: backend.system() })
    }

    /// Creates the user, their personal team and their owner membership, atomically.
    pub async fn create_user(&self, user: &User, password_hash: &str, team: &Team) -> Result<()> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        let inserted =
            sqlx::query("INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(password_hash)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::new(ErrorCode::Conflict, "an account with this email already exists"));
            }
            other => other?,
        };
        insert_team(&mut tx, &user.id, team).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user with this e-mail, and their password hash.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        self.user_with_password("email", email).await
    }

    /// The user with this id, and their password hash.
    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<(User, String)>> {
        self.user_with_password("id", user_id).await
    }

    async fn user_with_password(&self, column: &'static str, value: &str) -> Result<Option<(User, String)>> {
        let sql = format!("SELECT id, email, name, created_at, password_hash FROM users WHERE {column} = $1");
        let row = sqlx::query(&sql).bind(value).fetch_optional(&self.pool).await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?))).transpose()
    }

    /// Sets the user's password hash and ends every session of theirs but `keep`, at once;
    /// returns how many ended.
    pub async fn set_password(&self, user_id: &str, password_hash: &str, keep: &Digest) -> Result<u64> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_digest <> $2")
            .bind(user_id)
            .bind(keep.to_hex())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }

    pub async fn create_session(&self, session: &Session, digest: &Digest, user_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, token_digest, user_id, created_at, expires_at, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id)
        .bind(digest.to_hex())
        .bind(user_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(&session.user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_session(&self, digest: &Digest) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_digest = $1").bind(digest.to_hex()).execute(&self.pool).await?;
        Ok(())
    }

    /// The user of an unexpired session, and when the session was last used.
    pub async fn session_user(&self, digest: &Digest, now: i64) -> Result<Option<(User, Option<i64>)>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.created_at, s.last_used_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_digest = $1 AND s.expires_at > $2",
        )
        .bind(digest.to_hex())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("last_used_at")?))).transpose()
    }

    pub async fn touch_session(&self, digest: &Digest, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE token_digest = $2")
            .bind(now)
            .bind(digest.to_hex())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's unexpired sessions, newest first, the one of `current` marked.
    pub async fn sessions_of(&self, user_id: &str, current: &Digest, now: i64) -> Result<Vec<Session>> {
        let rows = sqlx::query(
            "SELECT id, token_digest, created_at, expires_at, last_used_at, user_agent FROM sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let current = current.to_hex();
        rows.iter().map(|row| session_from_row(row, &current)).collect()
    }

    /// Deletes one of the user's sessions; returns it, or `None` when the user has no such session.
    pub async fn delete_user_session(&self, user_id: &str, id: &str, current: &Digest) -> Result<Option<Session>> {
        let row = sqlx::query(
            "DELETE FROM sessions WHERE id = $1 AND user_id = $2 \
             RETURNING id, token_digest, created_at, expires_at, last_used_at, user_agent",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| session_from_row(&row, &current.to_hex())).transpose()
    }

    /// Counts one attempt in a bucket whose window, opened by its first attempt, lasts
    /// `window_ms`; returns the attempts in the window, this one included, and when it opened.
    /// One statement, so that concurrent attempts on any replica are each counted.
    pub async fn count_attempt(&self, bucket: &str, now: i64, window_ms: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "INSERT INTO login_attempts (bucket, window_start, attempts) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket) DO UPDATE SET \
               attempts = CASE WHEN login_attempts.window_start <= $3 THEN 1 ELSE login_attempts.attempts + 1 END, \
               window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2 ELSE login_attempts.window_start END \
             RETURNING attempts, window_start",
        )
        .bind(bucket)
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("attempts")?, row.try_get("window_start")?))
    }

    /// Takes back one attempt counted in the window that opened at `window_start`.
    pub async fn refund_attempt(&self, bucket: &str, window_start: i64) -> Result<()> {
        sqlx::query(
            "UPDATE login_attempts SET attempts = attempts - 1 WHERE bucket = $1 AND window_start = $2 AND attempts > 0",
        )
        .bind(bucket)
        .bind(window_start)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn clear_attempts(&self, bucket: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE bucket = $1").bind(bucket).execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes the buckets whose window opened at or before `cutoff`.
    pub async fn forget_attempts_before(&self, cutoff: i64) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE window_start <= $1").bind(cutoff).execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT memberships"))]
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.created_at, m.role FROM memberships m JOIN teams t ON t.id = m.team_id \
             WHERE m.user_id = $1 ORDER BY t.created_at, t.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Membership { team: team_from_row(row)?, role: row.try_get::<String, _>("role")?.parse::<Role>()? })
            })
            .collect()
    }

    pub async fn create_team(&self, owner_id: &str, team: &Team) -> Result<()> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        insert_team(&mut tx, owner_id, team).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn team(&self, team_id: &str) -> Result<Option<Team>> {
        let row = sqlx::query("SELECT id, name, created_at FROM teams WHERE id = $1")
            .bind(team_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(team_from_row).transpose()
    }

    /// Adds counts of answered requests; forgets days older than `keep_from`.
    pub async fn add_key_usage(&self, counts: &[KeyUsage], keep_from: i64) -> Result<()> {
        // Rows are written in one order by every gateway's flush: two flushes that upserted the
        // same rows in different orders deadlocked on PostgreSQL, and one had to be sent again.
        let mut counts: Vec<&KeyUsage> = counts.iter().collect();
        counts.sort_by(|a, b| (&a.key_id, a.day, &a.outcome).cmp(&(&b.key_id, b.day, &b.outcome)));
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        for c in counts {
            sqlx::query(
                "INSERT INTO key_usage (key_id, day, outcome, count) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key_id, day, outcome) DO UPDATE SET count = key_usage.count + excluded.count",
            )
            .bind(&c.key_id)
            .bind(c.day)
            .bind(&c.outcome)
            .bind(c.count)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM key_usage WHERE day < $1").bind(keep_from).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A key's counts from day `from` on.
    pub async fn key_usage(&self, key_id: &str, from: i64) -> Result<Vec<KeyUsage>> {
        let rows = sqlx::query(
            "SELECT key_id, day, outcome, count FROM key_usage WHERE key_id = $1 AND day >= $2 ORDER BY day, outcome",
        )
        .bind(key_id)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyUsage {
                    key_id: row.try_get("key_id")?,
                    day: row.try_get("day")?,
                    outcome: row.try_get("outcome")?,
                    count: row.try_get("count")?,
                })
            })
            .collect()
    }

    async fn key_teams(&self, key_id: &str) -> Result<BTreeSet<String>> {
        let rows = sqlx::query("SELECT team_id FROM api_key_teams WHERE key_id = $1")
            .bind(key_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("team_id")?)).collect()
    }

    /// The key matching `condition` over the bound `values`, with the secret version of its digest.
    async fn key_where(&self, condition: &str, values: &[&str]) -> Result<Option<(ApiKey, u32)>> {
        let sql = format!("SELECT {KEY_COLUMNS}, hash_version FROM api_keys WHERE {condition}");
        let mut query = sqlx::query(&sql);
        for value in values {
            query = query.bind(*value);
        }
        match query.fetch_optional(&self.pool).await? {
            Some(row) => {
                let id: String = row.try_get("id")?;
                let version: i64 = row.try_get("hash_version")?;
                Ok(Some((key_from_row(&row, self.key_teams(&id).await?)?, version as u32)))
            }
            None => Ok(None),
        }
    }

    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>> {
        Ok(self.key_where("id = $1", &[key_id]).await?.map(|(key, _)| key))
    }

    /// One lookup for every form an active key may be stored under.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.system, db.operation.name = "SELECT api_keys"))]
    pub async fn api_key_by_digest(&self, candidates: &[Stored]) -> Result<Option<(ApiKey, u32)>> {
        let hexes: Vec<&str> = candidates.iter().map(|c| c.hex.as_str()).collect();
        // Revoked keys are filtered in the same query: unknown and revoked cost the same.
        let condition = format!("secret_digest IN ({}) AND revoked_at IS NULL", common::db::placeholders(hexes.len()));
        self.key_where(&condition, &hexes).await
    }

    /// Whether a key of one of these digests was revoked by a leak report.
    pub async fn leaked_key_by_digest(&self, candidates: &[Stored]) -> Result<bool> {
        let hexes: Vec<&str> = candidates.iter().map(|c| c.hex.as_str()).collect();
        let condition =
            format!("secret_digest IN ({}) AND revoked_reason = 'leaked'", common::db::placeholders(hexes.len()));
        Ok(self.key_where(&condition, &hexes).await?.is_some())
    }

    /// Re-keys a stored digest under the current secret.
    pub async fn rekey_api_key(&self, key_id: &str, stored: &Stored) -> Result<()> {
        sqlx::query("UPDATE api_keys SET secret_digest = $1, hash_version = $2 WHERE id = $3")
            .bind(&stored.hex)
            .bind(i64::from(stored.version))
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn api_keys_of(&self, user_id: &str) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            keys.push(key_from_row(row, self.key_teams(&id).await?)?);
        }
        Ok(keys)
    }

    /// Marks a key revoked unless it already is; returns whether this call revoked it.
    pub async fn revoke_api_key(&self, key_id: &str, now: i64, reason: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL AND (retires_at IS NULL OR retires_at > $1)",
        )
        .bind(now)
        .bind(reason)
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes a live key as leaked, noting where it was found; whether it did.
    pub async fn revoke_leaked_key(&self, key_id: &str, now: i64, url: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, revoked_reason = 'leaked', leak_url = $2 \
             WHERE id = $3 AND revoked_at IS NULL AND (retires_at IS NULL OR retires_at > $1)",
        )
        .bind(now)
        .bind(url)
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn user_by_email_only(&self, email: &str) -> Result<Option<User>> {
        Ok(self.user_by_email(email).await?.map(|(user, _)| user))
    }

    pub async fn role(&self, team_id: &str, user_id: &str) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT role FROM memberships WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.try_get::<String, _>("role")?.parse()).transpose()
    }

    pub async fn members(&self, team_id: &str) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, u.created_at, m.role, m.created_at AS joined_at \
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY m.created_at, u.id",
        )
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        insert_audit(&self.pool, entry).await
    }

    /// A range of the team's log, newest first, and how many entries it holds from its start.
    pub async fn audit(&self, team_id: &str, range: &AuditRange<'_>) -> Result<(Vec<AuditEntry>, u64)> {
        // The log's order is (created_at, id), both descending; `before` names a place in it. An
        // entry written later with an earlier time (another replica's clock) lands behind a reader
        // already past it, which is the price of never showing one twice.
        let cursor = match range.before {
            None => None,
            Some(id) => {
                let at: Option<i64> =
                    sqlx::query_scalar("SELECT created_at FROM audit_log WHERE team_id = $1 AND id = $2")
                        .bind(team_id)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Some((at.ok_or_else(|| Error::invalid("before", "no entry of the team's audit log has this id"))?, id))
            }
        };
        let (older, next) = match cursor {
            Some(_) => (" AND (a.created_at < $2 OR (a.created_at = $2 AND a.id < $3))", 4),
            None => ("", 2),
        };
        let count_sql = format!("SELECT COUNT(*) FROM audit_log a WHERE a.team_id = $1{older}");
        let rows_sql = format!(
            "SELECT a.id, a.team_id, a.actor_id, a.action, a.target, a.details, a.created_at, u.email AS actor_email \
             FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id \
             WHERE a.team_id = $1{older} ORDER BY a.created_at DESC, a.id DESC LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let (mut count, mut rows) =
            (sqlx::query_scalar(&count_sql).bind(team_id), sqlx::query(&rows_sql).bind(team_id));
        if let Some((at, id)) = cursor {
            (count, rows) = (count.bind(at).bind(id), rows.bind(at).bind(id));
        }
        let total: i64 = count.fetch_one(&self.pool).await?;
        let rows = rows.bind(i64::from(range.limit)).bind(i64::from(range.offset)).fetch_all(&self.pool).await?;
        let entries = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    team_id: row.try_get("team_id")?,
                    actor_id: row.try_get("actor_id")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    details: row.try_get("details")?,
                    created_at: row.try_get("created_at")?,
                    actor_email: row.try_get("actor_email")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((entries, total.try_into().unwrap_or_default()))
    }
}

/// Which entries of a team's audit log to read: `limit` of them after the `offset` newest, among
/// those older than the entry `before` when one is named.
pub struct AuditRange<'a> {
    pub limit: u32,
    pub offset: u32,
    pub before: Option<&'a str>,
}

/// The rows of a key that selects a fixed list of teams.
async fn insert_key_teams(tx: &mut sqlx::Transaction<'_, sqlx::Any>, key: &ApiKey) -> Result<()> {
    if let KeyTeams::Only(team_ids) = &key.teams {
        for team_id in team_ids {
            sqlx::query("INSERT INTO api_key_teams (key_id, team_id) VALUES ($1, $2)")
                .bind(&key.id)
                .bind(team_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn insert_team(tx: &mut sqlx::Transaction<'_, sqlx::Any>, owner_id: &str, team: &Team) -> Result<()> {
    sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&team.id)
        .bind(&team.name)
        .bind(team.created_at)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&team.id)
        .bind(owner_id)
        .bind(Role::Owner.as_str())
        .bind(team.created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_audit<'e>(executor: impl sqlx::Executor<'e, Database = sqlx::Any>, entry: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, team_id, actor_id, action, target, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&entry.id)
    .bind(&entry.team_id)
    .bind(&entry.actor_id)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.details)
    .bind(entry.created_at)
    .execute(executor)
    .await?;
    Ok(())
}

async fn insert_key(tx: &mut sqlx::Transaction<'_, sqlx::Any>, key: &ApiKey, stored: &Stored) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, hint, secret_digest, hash_version, permissions, all_teams, \
         created_at, expires_at, rotated_from, allowed_ips) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&key.id)
    .bind(&key.user_id)
    .bind(&key.name)
    .bind(&key.hint)
    .bind(&stored.hex)
    .bind(i64::from(stored.version))
    .bind(encode_grant(&key.grant))
    .bind(i64::from(key.teams == KeyTeams::All))
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(&key.rotated_from)
    .bind(key.allowed_ips.join(","))
    .execute(&mut **tx)
    .await?;
    insert_key_teams(tx, key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_through_storage() {
        for grant in [Grant::Full, Grant::scopes([Scope::Read]).unwrap(), Grant::scopes(Scope::ALL).unwrap()] {
            assert_eq!(decode_grant(&encode_grant(&grant)).unwrap(), grant);
        }
        assert!(decode_grant("read,root").is_err());
    }
}

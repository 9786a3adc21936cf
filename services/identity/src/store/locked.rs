//! Writes that must see what they change as it stands: a team's members under the team's lock,
//! and a key under the lock of its owner's memberships. Each is one transaction with the audit
//! entries it makes, so that concurrent requests can neither break a rule between a check and
//! its write nor leave the audit log saying something that did not happen.

use common::access::{KeyTeams, Role};
use common::error::is_unique_violation;
use common::{Error, ErrorCode, Result};
use sqlx::Row;

use super::{
    KeyUpdate, Store, encode_grant, insert_audit, insert_key, insert_key_teams, member_from_row, user_from_row,
};
use crate::keyhash::Stored;
use crate::model::{ApiKey, AuditEntry, Member, User};

/// A transaction holding one team's lock (PostgreSQL's row lock on the team, SQLite's write
/// lock). Every change to the team's members takes it, so a member or role read in it holds
/// until it commits. Dropped without [`TeamTx::commit`], it changes nothing.
pub struct TeamTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    team_id: String,
    system: &'static str,
}

/// A key revoked because its owner left the last team it selected, as the audit log names it.
pub struct RevokedKey {
    pub id: String,
    pub name: String,
    pub permissions: String,
    pub hint: String,
}

impl Store {
    pub async fn lock_team(&self, team_id: &str) -> Result<TeamTx> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        sqlx::query("UPDATE teams SET name = name WHERE id = $1").bind(team_id).execute(&mut *tx).await?;
        Ok(TeamTx { tx, team_id: team_id.to_owned(), system: self.system })
    }

    /// Stores a new key and its audit entries (`audit` makes the entry of a team), refusing
    /// (403) a list of teams that names one its owner is not a member of. The owner's
    /// memberships stay locked until it commits, so that a removal from a team either comes
    /// first and the key is refused, or waits and then finds the key to revoke.
    pub async fn insert_api_key(
        &self,
        key: &ApiKey,
        stored: &Stored,
        audit: impl Fn(&str) -> AuditEntry,
    ) -> Result<()> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        let teams = self.lock_memberships(&mut tx, &key.user_id).await?;
        key.teams.check_member_of(|id| teams.iter().any(|t| t == id))?;
        insert_key(&mut tx, key, stored).await?;
        audit_selected(&mut tx, &key.teams, &teams, audit).await?;
        Ok(tx.commit().await?)
    }

    /// Stores `new` and marks `old` as rotated to it, retiring at `retires_at`, with the audit
    /// entries of the teams the key selects; false (and nothing stored) when `old` was rotated
    /// or revoked meanwhile. Locks the owner's memberships as [`Store::insert_api_key`] does.
    pub async fn rotate_api_key(
        &self,
        rotation: &super::Rotation<'_>,
        stored: &Stored,
        audit: impl Fn(&str) -> AuditEntry,
    ) -> Result<bool> {
        let (old, new) = (rotation.old, rotation.new);
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        let teams = self.lock_memberships(&mut tx, &old.user_id).await?;
        let marked = sqlx::query(
            "UPDATE api_keys SET rotated_to = $1, retires_at = $2 \
             WHERE id = $3 AND rotated_to IS NULL AND revoked_at IS NULL",
        )
        .bind(&new.id)
        .bind(rotation.retires_at)
        .bind(&old.id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() != 1 {
            return Ok(false);
        }
        insert_key(&mut tx, new, stored).await?;
        audit_selected(&mut tx, &old.teams, &teams, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a key's edit and its audit entries. A revoked key is not edited (409), and edited
    /// teams are checked under the lock of the owner's memberships, as at creation.
    pub async fn update_api_key(&self, update: &KeyUpdate<'_>, audit: impl Fn(&str) -> AuditEntry) -> Result<()> {
        let key = update.key;
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        let teams = self.lock_memberships(&mut tx, &key.user_id).await?;
        if update.teams_edited {
            key.teams.check_member_of(|id| teams.iter().any(|t| t == id))?;
        }
        let updated = sqlx::query(
            "UPDATE api_keys SET name = $1, permissions = $2, all_teams = $3, expires_at = $4, allowed_ips = $5 \
             WHERE id = $6 AND revoked_at IS NULL",
        )
        .bind(&key.name)
        .bind(encode_grant(&key.grant))
        .bind(i64::from(key.teams == KeyTeams::All))
        .bind(key.expires_at)
        .bind(key.allowed_ips.join(","))
        .bind(&key.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(revoked_key_is_final());
        }
        // Teams not edited are left as stored: another edit of them may have come meanwhile.
        if update.teams_edited {
            sqlx::query("DELETE FROM api_key_teams WHERE key_id = $1").bind(&key.id).execute(&mut *tx).await?;
            insert_key_teams(&mut tx, key).await?;
        }
        audit_selected(&mut tx, &key.teams, &teams, audit).await?;
        Ok(tx.commit().await?)
    }

    /// The teams of the user's memberships, locked against removal and role changes until the
    /// transaction ends (PostgreSQL; SQLite's write lock already holds everything).
    async fn lock_memberships(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user_id: &str,
    ) -> Result<Vec<String>> {
        let lock = if self.system == "postgresql" { " FOR SHARE" } else { "" };
        let sql = format!("SELECT team_id FROM memberships WHERE user_id = $1{lock}");
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(&mut **tx).await?;
        rows.iter().map(|row| Ok(row.try_get("team_id")?)).collect()
    }
}

pub fn revoked_key_is_final() -> Error {
    Error::new(ErrorCode::Conflict, "a revoked key cannot be edited")
}

/// Writes `audit`'s entry in each of `teams` (the owner's) that `selected` selects.
async fn audit_selected(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    selected: &KeyTeams,
    teams: &[String],
    audit: impl Fn(&str) -> AuditEntry,
) -> Result<()> {
    for team_id in teams.iter().filter(|t| selected.selects(t)) {
        insert_audit(&mut **tx, &audit(team_id)).await?;
    }
    Ok(())
}

impl TeamTx {
    /// A member of the team, as they stand.
    pub async fn member(&mut self, user_id: &str) -> Result<Option<Member>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.created_at, m.role, m.created_at AS joined_at \
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 AND m.user_id = $2",
        )
        .bind(&self.team_id)
        .bind(user_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT id, email, name, created_at FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn owners(&mut self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM memberships WHERE team_id = $1 AND role = 'owner'";
        Ok(sqlx::query_scalar(sql).bind(&self.team_id).fetch_one(&mut *self.tx).await?)
    }

    pub async fn add_member(&mut self, user_id: &str, role: Role, now: i64) -> Result<()> {
        let inserted =
            sqlx::query("INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&self.team_id)
                .bind(user_id)
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *self.tx)
                .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                Err(Error::new(ErrorCode::Conflict, "this user is already a member of the team"))
            }
            other => other.map(drop).map_err(Error::from),
        }
    }

    pub async fn set_role(&mut self, user_id: &str, role: Role) -> Result<()> {
        sqlx::query("UPDATE memberships SET role = $1 WHERE team_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(&self.team_id)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Locks the user's row until the transaction ends (PostgreSQL; SQLite's write lock already
    /// holds everything). It does not stop a key being made for the user: that takes only the
    /// key-share lock of its foreign key.
    pub async fn lock_user(&mut self, user_id: &str) -> Result<()> {
        if self.system == "postgresql" {
            let sql = "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE";
            sqlx::query(sql).bind(user_id).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    pub async fn remove_member(&mut self, user_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM memberships WHERE team_id = $1 AND user_id = $2")
            .bind(&self.team_id)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Revokes the user's keys that select teams and reach none of them now.
    pub async fn revoke_keys_without_teams(
        &mut self,
        user_id: &str,
        now: i64,
        reason: &str,
    ) -> Result<Vec<RevokedKey>> {
        let rows = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, revoked_reason = $2 \
             WHERE user_id = $3 AND revoked_at IS NULL AND all_teams = 0 AND NOT EXISTS ( \
               SELECT 1 FROM api_key_teams kt JOIN memberships m ON m.team_id = kt.team_id AND m.user_id = $3 \
               WHERE kt.key_id = api_keys.id) \
             RETURNING id, name, permissions, hint",
        )
        .bind(now)
        .bind(reason)
        .bind(user_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RevokedKey {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    permissions: row.try_get("permissions")?,
                    hint: row.try_get("hint")?,
                })
            })
            .collect()
    }

    pub async fn append_audit(&mut self, entry: &AuditEntry) -> Result<()> {
        insert_audit(&mut *self.tx, entry).await
    }

    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

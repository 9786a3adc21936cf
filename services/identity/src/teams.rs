//! Team membership rules and the audit log (docs/behaviour.md#teams-and-members).

use common::access::{AuditLimit, Role};
use common::bus::{Change, announce};
use common::time::now_ms;
use common::{Error, ErrorCode, Result};
use serde_json::{Value, json};

use crate::model::{AuditEntry, Member, Membership};
use crate::service::{Identity, REVOKED_TEAM_ACCESS_LOST, new_id, normalize_email};

fn last_owner() -> Error {
    Error::new(ErrorCode::Conflict, "a team must keep at least one owner")
}

impl Identity {
    /// The actor's role in the team; FORBIDDEN for a non-member, which says nothing about
    /// whether the team exists.
    pub async fn role_in(&self, team_id: &str, actor: &str) -> Result<Role> {
        self.store.role(team_id, actor).await?.ok_or_else(|| Error::forbidden("you are not a member of this team"))
    }

    async fn admin_role_in(&self, team_id: &str, actor: &str) -> Result<Role> {
        let role = self.role_in(team_id, actor).await?;
        role.require_admin()?;
        Ok(role)
    }

    pub async fn membership(&self, team_id: &str, actor: &str) -> Result<Membership> {
        let role = self.role_in(team_id, actor).await?;
        Ok(Membership { team: self.get_team(team_id).await?, role })
    }

    pub async fn list_members(&self, team_id: &str, actor: &str) -> Result<Vec<Member>> {
        self.role_in(team_id, actor).await?;
        self.store.members(team_id).await
    }

    async fn member(&self, team_id: &str, user_id: &str) -> Result<Member> {
        self.store
            .members(team_id)
            .await?
            .into_iter()
            .find(|m| m.user.id == user_id)
            .ok_or_else(|| Error::not_found("member"))
    }

    pub async fn add_member(&self, team_id: &str, actor: &str, email: &str, role: Role) -> Result<Member> {
        let actor_role = self.admin_role_in(team_id, actor).await?;
        if role == Role::Owner && actor_role != Role::Owner {
            return Err(Error::forbidden("only owners can make owners"));
        }
        let user = self
            .store
            .user_by_email_only(&normalize_email(email)?)
            .await?
            .ok_or_else(|| Error::not_found("user with this email"))?;
        self.store.add_member(team_id, &user.id, role, now_ms()).await?;
        announce(self.changes.as_ref(), Change::User(user.id.clone())).await;
        self.audit(team_id, actor, "member.added", &user.id, &json!({ "email": user.email, "role": role.as_str() }))
            .await?;
        self.member(team_id, &user.id).await
    }

    pub async fn change_role(&self, team_id: &str, actor: &str, user_id: &str, role: Role) -> Result<Member> {
        let actor_role = self.admin_role_in(team_id, actor).await?;
        let member = self.member(team_id, user_id).await?;
        let before = member.role;
        if (role == Role::Owner || before == Role::Owner) && actor_role != Role::Owner {
            return Err(Error::forbidden("only owners can make owners or change an owner's role"));
        }
        if !self.store.set_role(team_id, user_id, role).await? {
            return Err(last_owner());
        }
        announce(self.changes.as_ref(), Change::User(user_id.to_owned())).await;
        let details = json!({ "email": member.user.email, "from": before.as_str(), "to": role.as_str() });
        self.audit(team_id, actor, "member.role_changed", user_id, &details).await?;
        self.member(team_id, user_id).await
    }

    pub async fn remove_member(&self, team_id: &str, actor: &str, user_id: &str) -> Result<()> {
        let actor_role = if actor == user_id {
            self.role_in(team_id, actor).await?
        } else {
            self.admin_role_in(team_id, actor).await?
        };
        let target = self.member(team_id, user_id).await?;
        if actor != user_id && target.role == Role::Owner && actor_role != Role::Owner {
            return Err(Error::forbidden("only owners can remove an owner"));
        }
        if !self.store.remove_member(team_id, user_id).await? {
            return Err(Error::new(ErrorCode::Conflict, "the last owner cannot leave the team"));
        }
        announce(self.changes.as_ref(), Change::User(user_id.to_owned())).await;
        let details = json!({ "email": target.user.email, "role": target.role.as_str() });
        self.audit(team_id, actor, "member.removed", user_id, &details).await?;
        self.revoke_keys_without_teams(&Removal { team_id, actor, user_id }).await;
        self.revoke_mcp_connections(team_id, user_id).await;
        Ok(())
    }

    /// Revokes the user's keys that selected teams and reach none of them now (docs/behaviour.md#effective-access), so
    /// that their key list says so at once, and records each in the audit log of the team whose
    /// loss revoked it. Best effort: the removal has happened, and verification revokes such a
    /// key the first time it is presented.
    async fn revoke_keys_without_teams(&self, removal: &Removal<'_>) {
        let revoked =
            match self.store.revoke_keys_without_teams(removal.user_id, now_ms(), REVOKED_TEAM_ACCESS_LOST).await {
                Ok(revoked) => revoked,
                Err(e) => return tracing::warn!(error = %e, "could not revoke the keys a removal left without teams"),
            };
        for key_id in revoked {
            announce(self.changes.as_ref(), Change::Key(key_id.clone())).await;
            let key = match self.store.api_key(&key_id).await {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a key revoked by a removal for the audit log");
                    continue;
                }
            };
            let details = json!({
                "name": key.name,
                "permissions": crate::store::encode_grant(&key.grant),
                "hint": key.hint,
                "reason": REVOKED_TEAM_ACCESS_LOST,
            });
            if let Err(e) = self.audit(removal.team_id, removal.actor, "api_key.revoked", &key_id, &details).await {
                tracing::warn!(error = %e, "could not record a key revoked by a removal in the audit log");
            }
        }
    }

    /// Revokes the user's MCP connections to the team they left: a connection is granted for one
    /// team, and rejoining later must not bring it back (docs/behaviour.md#mcp). Best effort, as
    /// above: a refresh also needs the membership.
    async fn revoke_mcp_connections(&self, team_id: &str, user_id: &str) {
        if let Err(e) = self.store.revoke_mcp_connections_to_team(user_id, team_id, now_ms()).await {
            tracing::warn!(error = %e, "could not revoke the MCP connections of a removed member");
        }
    }

    pub async fn audit(
        &self,
        team_id: &str,
        actor: &str,
        action: &str,
        target: &str,
        details: &Value,
    ) -> Result<AuditEntry> {
        let entry = AuditEntry {
            id: new_id(),
            team_id: team_id.to_owned(),
            actor_id: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            details: details.to_string(),
            created_at: now_ms(),
            actor_email: None,
        };
        self.store.append_audit(&entry).await?;
        Ok(entry)
    }

    /// Appends an entry for a change made elsewhere (plan, key policy).
    pub async fn append_audit(
        &self,
        team_id: &str,
        actor: &str,
        action: &str,
        target: &str,
        details: &str,
    ) -> Result<AuditEntry> {
        let details: Value = serde_json::from_str(if details.is_empty() { "{}" } else { details })
            .map_err(|_| Error::validation("details_json must be a JSON object"))?;
        self.get_team(team_id).await?;
        self.audit(team_id, actor, action, target, &details).await
    }

    /// A page of the team's audit log, newest first, and how many entries the whole log holds.
    pub async fn list_audit(&self, team_id: &str, actor: &str, page: LogPage) -> Result<(Vec<AuditEntry>, u64)> {
        self.admin_role_in(team_id, actor).await?;
        self.store.audit(team_id, AuditLimit::clamped(page.limit).get(), page.offset).await
    }
}

/// Which entries of an audit log a caller asked for.
pub struct LogPage {
    pub limit: u32,
    pub offset: u32,
}

/// A membership ended: in which team, by whom, of whom.
struct Removal<'a> {
    team_id: &'a str,
    actor: &'a str,
    user_id: &'a str,
}

//! Team membership rules and the audit log (docs/behaviour.md#teams-and-members).

use common::access::{AuditLimit, Role};
use common::bus::{Change, announce};
use common::time::now_ms;
use common::{Error, ErrorCode, Result};
use serde_json::{Value, json};

use crate::model::{AuditEntry, Member, Membership};
use crate::service::{Identity, REVOKED_TEAM_ACCESS_LOST, audit_entry, normalize_email};

fn not_a_member() -> Error {
    Error::forbidden("you are not a member of this team")
}

/// The role of an actor who manages the team: FORBIDDEN for anyone else.
fn managing(actor: Option<Member>) -> Result<Role> {
    let role = actor.map(|m| m.role).ok_or_else(not_a_member)?;
    role.require_admin()?;
    Ok(role)
}

impl Identity {
    /// The actor's role in the team; FORBIDDEN for a non-member, which says nothing about
    /// whether the team exists.
    pub async fn role_in(&self, team_id: &str, actor: &str) -> Result<Role> {
        self.store.role(team_id, actor).await?.ok_or_else(not_a_member)
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

    // Each change below reads the actor's role, the member and the team's owners under the
    // team's lock, and writes its audit entries in the same transaction: concurrent changes to
    // one team happen one after another, each judged on what the ones before it did.

    pub async fn add_member(&self, team_id: &str, actor: &str, email: &str, role: Role) -> Result<Member> {
        // Checked first without the lock, so that no one outside the team can hold it.
        self.admin_role_in(team_id, actor).await?;
        let email = normalize_email(email)?;
        let mut team = self.store.lock_team(team_id).await?;
        let actor_role = managing(team.member(actor).await?)?;
        if role == Role::Owner && actor_role != Role::Owner {
            return Err(Error::forbidden("only owners can make owners"));
        }
        let user = team.user_by_email(&email).await?.ok_or_else(|| Error::not_found("user with this email"))?;
        let joined_at = now_ms();
        team.add_member(&user.id, role, joined_at).await?;
        let details = json!({ "email": user.email, "role": role.as_str() });
        team.append_audit(&audit_entry(team_id, actor, "member.added", &user.id, &details)).await?;
        team.commit().await?;
        announce(self.changes.as_ref(), Change::User(user.id.clone())).await;
        Ok(Member { user, role, joined_at })
    }

    /// Sets a member's role. Setting the role they have changes nothing and logs nothing.
    pub async fn change_role(&self, team_id: &str, actor: &str, user_id: &str, role: Role) -> Result<Member> {
        self.admin_role_in(team_id, actor).await?;
        let mut team = self.store.lock_team(team_id).await?;
        let actor_role = managing(team.member(actor).await?)?;
        let member = team.member(user_id).await?.ok_or_else(|| Error::not_found("member"))?;
        let before = member.role;
        if (role == Role::Owner || before == Role::Owner) && actor_role != Role::Owner {
            return Err(Error::forbidden("only owners can make owners or change an owner's role"));
        }
        if role == before {
            return Ok(member);
        }
        if before == Role::Owner && team.owners().await? <= 1 {
            return Err(Error::new(ErrorCode::Conflict, "a team must keep at least one owner"));
        }
        team.set_role(user_id, role).await?;
        let details = json!({ "email": member.user.email, "from": before.as_str(), "to": role.as_str() });
        team.append_audit(&audit_entry(team_id, actor, "member.role_changed", user_id, &details)).await?;
        team.commit().await?;
        announce(self.changes.as_ref(), Change::User(user_id.to_owned())).await;
        Ok(Member { role, ..member })
    }

    /// Ends a membership, and with it the member's keys that reach none of the teams they
    /// selected (docs/behaviour.md#effective-access) and their MCP connections to the team.
    pub async fn remove_member(&self, team_id: &str, actor: &str, user_id: &str) -> Result<()> {
        match actor == user_id {
            true => self.role_in(team_id, actor).await?,
            false => self.admin_role_in(team_id, actor).await?,
        };
        let mut team = self.store.lock_team(team_id).await?;
        let acting = team.member(actor).await?;
        let actor_role = match actor == user_id {
            true => acting.map(|m| m.role).ok_or_else(not_a_member)?,
            false => managing(acting)?,
        };
        let target = team.member(user_id).await?.ok_or_else(|| Error::not_found("member"))?;
        if actor != user_id && target.role == Role::Owner && actor_role != Role::Owner {
            return Err(Error::forbidden("only owners can remove an owner"));
        }
        if target.role == Role::Owner && team.owners().await? <= 1 {
            return Err(Error::new(ErrorCode::Conflict, "the last owner cannot leave the team"));
        }
        // Removals of one user from several teams at once take turns from here, so that the last
        // of them sees every other's removal and revokes the keys left with no team at all.
        team.lock_user(user_id).await?;
        team.remove_member(user_id).await?;
        let details = json!({ "email": target.user.email, "role": target.role.as_str() });
        team.append_audit(&audit_entry(team_id, actor, "member.removed", user_id, &details)).await?;
        // Revoked with the removal, not after it: a key made or edited meanwhile waits for the
        // removal (it locks its owner's memberships) and is then found here, or comes after it
        // and is refused the team.
        let revoked = team.revoke_keys_without_teams(user_id, now_ms(), REVOKED_TEAM_ACCESS_LOST).await?;
        for key in &revoked {
            let details = json!({
                "name": key.name,
                "permissions": key.permissions,
                "hint": key.hint,
                "reason": REVOKED_TEAM_ACCESS_LOST,
            });
            team.append_audit(&audit_entry(team_id, actor, "api_key.revoked", &key.id, &details)).await?;
        }
        team.commit().await?;
        announce(self.changes.as_ref(), Change::User(user_id.to_owned())).await;
        for key in revoked {
            announce(self.changes.as_ref(), Change::Key(key.id)).await;
        }
        self.revoke_mcp_connections(team_id, user_id).await;
        Ok(())
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
        let entry = audit_entry(team_id, actor, action, target, details);
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
        self.store.audit(team_id, &page.clamped()).await
    }
}

/// Which entries of an audit log a caller asked for.
pub struct LogPage {
    pub limit: u32,
    pub offset: u32,
    /// The id of an entry of the log: only older entries are listed and counted. Empty: none.
    pub before: String,
}

impl LogPage {
    fn clamped(&self) -> crate::store::AuditRange<'_> {
        let before = Some(self.before.as_str()).filter(|id| !id.is_empty());
        crate::store::AuditRange { limit: AuditLimit::clamped(self.limit).get(), offset: self.offset, before }
    }
}

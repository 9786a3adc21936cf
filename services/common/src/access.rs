//! The vocabulary of access shared by identity, policy and the gateway: roles, scopes, what a key
//! grants and which teams it selects. Converted from and to the proto types at each service edge.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use proto::identity::v1 as pb;

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Owners and admins manage a team.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(Error::validation("role must be one of owner, admin, member")),
        }
    }
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => pb::Role::Owner,
            Role::Admin => pb::Role::Admin,
            Role::Member => pb::Role::Member,
        }
    }
}

impl Role {
    pub fn from_proto(value: i32) -> Result<Role, Error> {
        match pb::Role::try_from(value) {
            Ok(pb::Role::Owner) => Ok(Role::Owner),
            Ok(pb::Role::Admin) => Ok(Role::Admin),
            Ok(pb::Role::Member) => Ok(Role::Member),
            _ => Err(Error::validation("role is missing or unknown")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn from_proto(value: i32) -> Result<Scope, Error> {
        match pb::Scope::try_from(value) {
            Ok(pb::Scope::Read) => Ok(Scope::Read),
            Ok(pb::Scope::Write) => Ok(Scope::Write),
            Ok(pb::Scope::Admin) => Ok(Scope::Admin),
            _ => Err(Error::validation("scope is missing or unknown")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Scope> for pb::Scope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Read => pb::Scope::Read,
            Scope::Write => pb::Scope::Write,
            Scope::Admin => pb::Scope::Admin,
        }
    }
}

/// What a key may do: everything, or a non-empty set of independent scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Full,
    Scopes(BTreeSet<Scope>),
}

impl Grant {
    pub fn scopes(scopes: impl IntoIterator<Item = Scope>) -> Result<Grant, Error> {
        let set: BTreeSet<Scope> = scopes.into_iter().collect();
        if set.is_empty() {
            return Err(Error::validation("permissions must be \"full\" or a non-empty list of read, write, admin"));
        }
        Ok(Grant::Scopes(set))
    }

    /// Whether the key names `scope` itself. `full` names none: it reaches admin only where the
    /// owner is owner or admin at request time, so any member may ask for it.
    pub fn names(&self, scope: Scope) -> bool {
        matches!(self, Grant::Scopes(set) if set.contains(&scope))
    }

    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Grant::Full => true,
            Grant::Scopes(set) => set.contains(&scope),
        }
    }

    /// Storage form: `full` or a comma-separated list such as `read,write`.
    pub fn encode(&self) -> String {
        match self {
            Grant::Full => "full".to_owned(),
            Grant::Scopes(set) => set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
        }
    }

    pub fn decode(s: &str) -> Result<Grant, Error> {
        if s == "full" {
            return Ok(Grant::Full);
        }
        let scopes = s.split(',').map(|part| match part {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            _ => Err(Error::internal(format_args!("stored grant has unknown scope {part:?}"))),
        });
        Grant::scopes(scopes.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn to_proto(&self) -> pb::KeyGrant {
        match self {
            Grant::Full => pb::KeyGrant { full: true, scopes: vec![] },
            Grant::Scopes(set) => {
                pb::KeyGrant { full: false, scopes: set.iter().map(|s| pb::Scope::from(*s) as i32).collect() }
            }
        }
    }

    pub fn from_proto(grant: Option<&pb::KeyGrant>) -> Result<Grant, Error> {
        let grant = grant.ok_or_else(|| Error::validation("grant is missing"))?;
        if grant.full {
            return Ok(Grant::Full);
        }
        Grant::scopes(grant.scopes.iter().map(|&s| Scope::from_proto(s)).collect::<Result<Vec<_>, _>>()?)
    }
}

/// Which teams a key selects: every team of its owner (now and later), or a fixed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTeams {
    All,
    Only(BTreeSet<String>),
}

impl KeyTeams {
    pub fn to_proto(&self) -> pb::KeyTeams {
        match self {
            KeyTeams::All => pb::KeyTeams { all: true, team_ids: vec![] },
            KeyTeams::Only(ids) => pb::KeyTeams { all: false, team_ids: ids.iter().cloned().collect() },
        }
    }

    pub fn from_proto(teams: Option<&pb::KeyTeams>) -> Result<KeyTeams, Error> {
        let teams = teams.ok_or_else(|| Error::validation("teams is missing"))?;
        if teams.all {
            return Ok(KeyTeams::All);
        }
        if teams.team_ids.is_empty() {
            return Err(Error::validation("teams must be \"all\" or a non-empty list of team ids"));
        }
        Ok(KeyTeams::Only(teams.team_ids.iter().cloned().collect()))
    }
}

/// The key owner's role in one of the teams a key selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRole {
    pub team_id: String,
    pub role: Role,
}

impl TeamRole {
    pub fn to_proto(&self) -> pb::TeamRole {
        pb::TeamRole { team_id: self.team_id.clone(), role: pb::Role::from(self.role) as i32 }
    }

    pub fn from_proto(team: &pb::TeamRole) -> Result<TeamRole, Error> {
        Ok(TeamRole { team_id: team.team_id.clone(), role: Role::from_proto(team.role)? })
    }

    pub fn list_from_proto(teams: &[pb::TeamRole]) -> Result<Vec<TeamRole>, Error> {
        teams.iter().map(TeamRole::from_proto).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_through_storage_and_proto() {
        for grant in [
            Grant::Full,
            Grant::scopes([Scope::Read]).unwrap(),
            Grant::scopes([Scope::Write, Scope::Admin]).unwrap(),
            Grant::scopes(Scope::ALL).unwrap(),
        ] {
            assert_eq!(Grant::decode(&grant.encode()).unwrap(), grant);
            assert_eq!(Grant::from_proto(Some(&grant.to_proto())).unwrap(), grant);
        }
        assert!(Grant::scopes([]).is_err());
    }

    #[test]
    fn full_allows_every_scope_and_scopes_are_independent() {
        assert!(Scope::ALL.iter().all(|&s| Grant::Full.allows(s)));
        let write_only = Grant::scopes([Scope::Write]).unwrap();
        assert!(write_only.allows(Scope::Write));
        assert!(!write_only.allows(Scope::Read));
        assert!(!write_only.allows(Scope::Admin));
    }
}

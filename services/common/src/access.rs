//! The vocabulary of access shared by identity, policy and the gateway: roles, scopes, plans, key
//! policies, what a key grants and which teams it selects. One type per concept, with its JSON
//! names (serde) and its proto conversions, used at each service edge.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Picks the value of `all` named `s`, or says which names there are.
fn named<T: Copy>(all: &[T], name: fn(T) -> &'static str, what: &str, s: &str) -> Result<T, Error> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
        Error::validation(format!("{what} must be one of {}", names.join(", ")))
    })
}

/// A member's role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

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

    /// Refuses (403) a role that does not manage the team: identity's member rules and the
    /// gateway's team-settings routes give the same answer.
    pub fn require_admin(self) -> Result<(), Error> {
        match self.is_admin() {
            true => Ok(()),
            false => Err(Error::forbidden("only owners and admins of this team may do this")),
        }
    }

    pub fn from_proto(value: i32) -> Result<Role, Error> {
        match idpb::Role::try_from(value) {
            Ok(idpb::Role::Owner) => Ok(Role::Owner),
            Ok(idpb::Role::Admin) => Ok(Role::Admin),
            Ok(idpb::Role::Member) => Ok(Role::Member),
            _ => Err(Error::validation("role is missing or unknown")),
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        named(&Role::ALL, Role::as_str, "role", s)
    }
}

impl From<Role> for idpb::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => idpb::Role::Owner,
            Role::Admin => idpb::Role::Admin,
            Role::Member => idpb::Role::Member,
        }
    }
}

/// What a key may do, one independent permission each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
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
        match idpb::Scope::try_from(value) {
            Ok(idpb::Scope::Read) => Ok(Scope::Read),
            Ok(idpb::Scope::Write) => Ok(Scope::Write),
            Ok(idpb::Scope::Admin) => Ok(Scope::Admin),
            _ => Err(Error::validation("scope is missing or unknown")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Scope> for idpb::Scope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Read => idpb::Scope::Read,
            Scope::Write => idpb::Scope::Write,
            Scope::Admin => idpb::Scope::Admin,
        }
    }
}

/// A team's plan, ordered from lowest to highest: a key's plan is the highest among its
/// reachable teams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Scale,
    Enterprise,
}

impl Plan {
    pub const ALL: [Plan; 4] = [Plan::Free, Plan::Pro, Plan::Scale, Plan::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Scale => "scale",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn from_proto(value: i32) -> Result<Plan, Error> {
        match popb::Plan::try_from(value) {
            Ok(popb::Plan::Free) => Ok(Plan::Free),
            Ok(popb::Plan::Pro) => Ok(Plan::Pro),
            Ok(popb::Plan::Scale) => Ok(Plan::Scale),
            Ok(popb::Plan::Enterprise) => Ok(Plan::Enterprise),
            _ => Err(Error::validation("plan is missing or unknown")),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = Error;
    fn from_str(s: &str) -> Result<Plan, Error> {
        named(&Plan::ALL, Plan::as_str, "plan", s)
    }
}

impl From<Plan> for popb::Plan {
    fn from(plan: Plan) -> Self {
        match plan {
            Plan::Free => popb::Plan::Free,
            Plan::Pro => popb::Plan::Pro,
            Plan::Scale => popb::Plan::Scale,
            Plan::Enterprise => popb::Plan::Enterprise,
        }
    }
}

/// Who may use API keys on a team: every member, owners and admins, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyPolicy {
    #[default]
    AllMembers,
    AdminsOnly,
    Nobody,
}

impl ApiKeyPolicy {
    pub const ALL: [ApiKeyPolicy; 3] = [ApiKeyPolicy::AllMembers, ApiKeyPolicy::AdminsOnly, ApiKeyPolicy::Nobody];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyPolicy::AllMembers => "all_members",
            ApiKeyPolicy::AdminsOnly => "admins_only",
            ApiKeyPolicy::Nobody => "nobody",
        }
    }

    pub fn allows(self, role: Role) -> bool {
        match self {
            ApiKeyPolicy::AllMembers => true,
            ApiKeyPolicy::AdminsOnly => role.is_admin(),
            ApiKeyPolicy::Nobody => false,
        }
    }

    pub fn from_proto(value: i32) -> Result<ApiKeyPolicy, Error> {
        match popb::ApiKeyPolicy::try_from(value) {
            Ok(popb::ApiKeyPolicy::AllMembers) => Ok(ApiKeyPolicy::AllMembers),
            Ok(popb::ApiKeyPolicy::AdminsOnly) => Ok(ApiKeyPolicy::AdminsOnly),
            Ok(popb::ApiKeyPolicy::Nobody) => Ok(ApiKeyPolicy::Nobody),
            _ => Err(Error::validation("api_key_policy is missing or unknown")),
        }
    }
}

impl FromStr for ApiKeyPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<ApiKeyPolicy, Error> {
        named(&ApiKeyPolicy::ALL, ApiKeyPolicy::as_str, "policy", s)
    }
}

impl From<ApiKeyPolicy> for popb::ApiKeyPolicy {
    fn from(policy: ApiKeyPolicy) -> Self {
        match policy {
            ApiKeyPolicy::AllMembers => popb::ApiKeyPolicy::AllMembers,
            ApiKeyPolicy::AdminsOnly => popb::ApiKeyPolicy::AdminsOnly,
            ApiKeyPolicy::Nobody => popb::ApiKeyPolicy::Nobody,
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
            return Err(Error::validation(
                r#"permissions: must be "full" or a non-empty list of "read", "write", "admin""#,
            ));
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

    pub fn to_proto(&self) -> idpb::KeyGrant {
        match self {
            Grant::Full => idpb::KeyGrant { full: true, scopes: vec![] },
            Grant::Scopes(set) => {
                idpb::KeyGrant { full: false, scopes: set.iter().map(|s| idpb::Scope::from(*s) as i32).collect() }
            }
        }
    }

    pub fn from_proto(grant: Option<&idpb::KeyGrant>) -> Result<Grant, Error> {
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
    /// A fixed list of teams: at least one; a team named twice counts once.
    pub fn only(team_ids: impl IntoIterator<Item = String>) -> Result<KeyTeams, Error> {
        let ids: BTreeSet<String> = team_ids.into_iter().collect();
        if ids.is_empty() {
            return Err(Error::invalid("teams", "must be \"all\" or a non-empty list of team ids"));
        }
        Ok(KeyTeams::Only(ids))
    }

    /// Whether the key selects the team.
    pub fn selects(&self, team_id: &str) -> bool {
        match self {
            KeyTeams::All => true,
            KeyTeams::Only(ids) => ids.contains(team_id),
        }
    }

    /// Refuses (403) a fixed list that names a team the key's owner is not a member of.
    pub fn check_member_of(&self, is_member: impl Fn(&str) -> bool) -> Result<(), Error> {
        if let KeyTeams::Only(ids) = self
            && let Some(missing) = ids.iter().find(|id| !is_member(id))
        {
            return Err(Error::forbidden(format!("you are not a member of team {missing}")));
        }
        Ok(())
    }

    pub fn to_proto(&self) -> idpb::KeyTeams {
        match self {
            KeyTeams::All => idpb::KeyTeams { all: true, team_ids: vec![] },
            KeyTeams::Only(ids) => idpb::KeyTeams { all: false, team_ids: ids.iter().cloned().collect() },
        }
    }

    pub fn from_proto(teams: Option<&idpb::KeyTeams>) -> Result<KeyTeams, Error> {
        let teams = teams.ok_or_else(|| Error::validation("teams is missing"))?;
        if teams.all {
            return Ok(KeyTeams::All);
        }
        KeyTeams::only(teams.team_ids.iter().cloned())
    }
}

/// The key owner's role in one of the teams a key selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRole {
    pub team_id: String,
    pub role: Role,
}

impl TeamRole {
    pub fn to_proto(&self) -> idpb::TeamRole {
        idpb::TeamRole { team_id: self.team_id.clone(), role: idpb::Role::from(self.role) as i32 }
    }

    pub fn from_proto(team: &idpb::TeamRole) -> Result<TeamRole, Error> {
        Ok(TeamRole { team_id: team.team_id.clone(), role: Role::from_proto(team.role)? })
    }

    pub fn list_from_proto(teams: &[idpb::TeamRole]) -> Result<Vec<TeamRole>, Error> {
        teams.iter().map(TeamRole::from_proto).collect()
    }
}

/// A key's name: 1–64 characters once trimmed, on one line. The dashboard's routes parse it
/// before any other check (a bad name is a 400 before a policy's 403), identity again before it
/// stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(name: &str) -> Result<KeyName, Error> {
        let name = name.trim();
        crate::text::check_line("name", name)?;
        if !(1..=64).contains(&name.chars().count()) {
            return Err(Error::invalid("name", "must be 1–64 characters after trimming"));
        }
        Ok(KeyName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The longest a key may be set to live, from now.
pub const MAX_KEY_LIFETIME_MS: i64 = 366 * 24 * 60 * 60 * 1000;

/// An expiry a key may be given at `now` (unix ms): in the future and at most 366 days ahead;
/// `None` is never.
pub fn key_expiry(at: Option<i64>, now: i64) -> Result<Option<i64>, Error> {
    match at {
        Some(at) if at <= now || at > now + MAX_KEY_LIFETIME_MS => {
            Err(Error::invalid("expires_at", "must be in the future and at most 366 days ahead"))
        }
        at => Ok(at),
    }
}

/// How long a rotated key keeps working: 0 to 604800 seconds (a week).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracePeriod {
    seconds: i64,
}

impl GracePeriod {
    /// The grace period of a rotation that names none.
    pub const A_DAY: GracePeriod = GracePeriod { seconds: 86_400 };
    const MAX_SECONDS: i64 = 7 * 86_400;

    pub fn from_seconds(seconds: i64) -> Result<GracePeriod, Error> {
        if !(0..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(Error::invalid("grace_period_seconds", "must be 0 to 604800"));
        }
        Ok(GracePeriod { seconds })
    }

    pub fn seconds(self) -> i64 {
        self.seconds
    }

    pub fn millis(self) -> i64 {
        self.seconds * 1000
    }
}

/// How many audit-log entries to read: 1 to 1000, 100 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditLimit(u32);

impl AuditLimit {
    pub const MAX: u32 = 1000;

    /// `field` names the parameter the caller asked with, for the error.
    pub fn parse(asked: Option<u32>, field: &str) -> Result<AuditLimit, Error> {
        match asked.unwrap_or(100) {
            limit @ 1..=Self::MAX => Ok(AuditLimit(limit)),
            _ => Err(Error::invalid(field, "must be between 1 and 1000")),
        }
    }

    /// A limit from a caller that was not checked (a gRPC request): brought into the range.
    pub fn clamped(limit: u32) -> AuditLimit {
        AuditLimit(limit.clamp(1, Self::MAX))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A page of a team's audit log, newest first: `per_page` entries from page `page` (from 1), of
/// the entries older than the entry `before` when one is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub per_page: AuditLimit,
    pub page: u32,
    pub before: Option<String>,
}

impl AuditPage {
    /// Pages beyond this would skip more entries than a `u32` counts; no team's log is that long.
    pub const MAX_PAGE: u32 = 1_000_000;

    /// Page `page` of the whole log; `before` is set apart.
    pub fn parse(per_page: AuditLimit, page: Option<u32>) -> Result<AuditPage, Error> {
        match page.unwrap_or(1) {
            page @ 1..=Self::MAX_PAGE => Ok(AuditPage { per_page, page, before: None }),
            _ => Err(Error::invalid("page", "must be between 1 and 1000000")),
        }
    }

    /// Newer entries skipped before this page.
    pub fn offset(&self) -> u32 {
        (self.page - 1).saturating_mul(self.per_page.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_through_proto() {
        for grant in [
            Grant::Full,
            Grant::scopes([Scope::Read]).unwrap(),
            Grant::scopes([Scope::Write, Scope::Admin]).unwrap(),
            Grant::scopes(Scope::ALL).unwrap(),
        ] {
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

    #[test]
    fn a_key_name_is_trimmed_and_holds_1_to_64_characters_on_one_line() {
        assert_eq!(KeyName::parse("  ci  ").unwrap().as_str(), "ci");
        assert_eq!(KeyName::parse(&"é".repeat(64)).unwrap().as_str().chars().count(), 64);
        for bad in ["", "   ", &"a".repeat(65), "a\tb"] {
            assert_eq!(KeyName::parse(bad).unwrap_err().field.as_deref(), Some("name"), "{bad:?}");
        }
    }

    #[test]
    fn a_fixed_team_list_is_not_empty_and_names_only_the_owners_teams() {
        assert!(KeyTeams::only(Vec::new()).is_err());
        let teams = KeyTeams::only(["t2".to_owned(), "t1".to_owned(), "t2".to_owned()]).unwrap();
        assert_eq!(teams.to_proto().team_ids, ["t1", "t2"]);
        assert!(teams.check_member_of(|id| id != "t3").is_ok());
        let refused = teams.check_member_of(|id| id == "t1").unwrap_err();
        assert_eq!(refused.message, "you are not a member of team t2");
        assert!(KeyTeams::All.check_member_of(|_| false).is_ok());
    }

    #[test]
    fn an_expiry_is_in_the_future_and_at_most_366_days_ahead() {
        let now = 1_000_000;
        assert_eq!(key_expiry(None, now).unwrap(), None);
        assert_eq!(key_expiry(Some(now + MAX_KEY_LIFETIME_MS), now).unwrap(), Some(now + MAX_KEY_LIFETIME_MS));
        assert!(key_expiry(Some(now), now).is_err());
        assert!(key_expiry(Some(now + MAX_KEY_LIFETIME_MS + 1), now).is_err());
    }

    #[test]
    fn a_grace_period_lasts_at_most_a_week() {
        assert_eq!(GracePeriod::from_seconds(604_800).unwrap().millis(), 604_800_000);
        assert!(GracePeriod::from_seconds(604_801).is_err());
        assert!(GracePeriod::from_seconds(-1).is_err());
    }

    #[test]
    fn only_owners_and_admins_manage_a_team() {
        assert!(Role::Owner.require_admin().is_ok());
        assert!(Role::Admin.require_admin().is_ok());
        assert_eq!(Role::Member.require_admin().unwrap_err().code, crate::ErrorCode::Forbidden);
    }

    #[test]
    fn an_audit_limit_is_1_to_1000_and_100_unless_asked() {
        assert_eq!(AuditLimit::parse(None, "limit").unwrap().get(), 100);
        assert_eq!(AuditLimit::parse(Some(1000), "limit").unwrap().get(), 1000);
        assert!(AuditLimit::parse(Some(0), "limit").is_err());
        assert_eq!(AuditLimit::parse(Some(1001), "per_page").unwrap_err().field.as_deref(), Some("per_page"));
        assert_eq!(AuditLimit::clamped(5000).get(), 1000);
    }

    #[test]
    fn an_audit_page_counts_from_1_and_skips_the_pages_before_it() {
        let per_page = AuditLimit::parse(Some(20), "per_page").unwrap();
        assert_eq!(AuditPage::parse(per_page, None).unwrap().offset(), 0);
        assert_eq!(AuditPage::parse(per_page, Some(3)).unwrap().offset(), 40);
        assert!(AuditPage::parse(per_page, Some(0)).is_err());
        let last = AuditPage::parse(AuditLimit::parse(Some(1000), "per_page").unwrap(), Some(AuditPage::MAX_PAGE));
        assert_eq!(last.unwrap().offset(), 999_999_000);
    }
}

//! Identity's domain types, converted to proto types only in `grpc.rs`.

use common::access::{Grant, KeyTeams, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// Trimmed and lower-cased.
    pub email: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub team: Team,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub hint: String,
    pub grant: Grant,
    pub teams: KeyTeams,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// When the key stops working (unix ms); None: never.
    pub expires_at: Option<i64>,
    /// A rotated key's end of grace; past it the key reads as revoked (reason `rotated`).
    pub retires_at: Option<i64>,
    pub rotated_from: Option<String>,
    pub rotated_to: Option<String>,
    /// CIDR blocks the key may be used from, normalised; empty: anywhere.
    pub allowed_ips: Vec<String>,
    /// For a key revoked as leaked: where it was found.
    pub leak_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub team_id: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub created_at: i64,
    /// The actor's e-mail as it stands when the log is read (not stored with the entry: a member
    /// who left is still named); `None` when the entry was not read from the log.
    pub actor_email: Option<String>,
}

/// A session as its user sees it: never its token nor the token's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Exact to the minute.
    pub last_used_at: Option<i64>,
    pub user_agent: String,
    /// Whether this is the session of the caller's token.
    pub current: bool,
}

/// Why a key was revoked when its rotation's grace period ended.
pub const REVOKED_ROTATED: &str = "rotated";

impl ApiKey {
    /// The key as it stands at `now`: a rotated key past its grace period is revoked (reason
    /// `rotated`) from that moment, without a write having to happen then.
    pub fn retired_by(mut self, now: i64) -> ApiKey {
        if let (None, Some(at)) = (self.revoked_at, self.retires_at)
            && at <= now
        {
            self.revoked_at = Some(at);
            self.revoked_reason = Some(REVOKED_ROTATED.to_owned());
        }
        self
    }
}

/// Requests answered for a key on a UTC day (days since the epoch) with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: String,
    pub day: i64,
    pub outcome: String,
    pub count: i64,
}

/// The outcomes usage is counted by.
pub const USAGE_OUTCOMES: [&str; 4] = ["success", "client_error", "rate_limited", "server_error"];

//! Identity's rules: account and session lifecycle, teams, and the life of API keys.

use std::sync::Arc;

use common::access::{GracePeriod, Grant, KeyName, KeyTeams, Role, TeamRole, key_expiry};
use common::bus::{Change, ChangeBus, announce};
use common::db::{Backend, OpenError};
use common::secret::{Digest, random_token};
use common::time::now_ms;
use common::{Error, ErrorCode, Result};

use crate::keyhash::KeyHasher;
use crate::login::{ClientAddress, Hashing, HashingStats, LoginLimits, Refusal, Throttle};
use crate::model::{ApiKey, AuditEntry, KeyUsage, Membership, Session, Team, USAGE_OUTCOMES, User};
use crate::store::{KeyUpdate, Rotation, Store};

const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
const MINUTE_MS: i64 = 60_000;
pub const REVOKED_BY_USER: &str = "user";
pub const REVOKED_TEAM_ACCESS_LOST: &str = "team_access_lost";
/// The actor of the audit entry of a key revoked by a leak report.
pub const SECRET_SCANNING_ACTOR: &str = "secret_scanning";

/// A key about to be stored; the gateway generated the secret and sends only its digest.
pub struct NewApiKey {
    pub user_id: String,
    pub name: String,
    pub grant: Grant,
    pub teams: KeyTeams,
    pub digest: Digest,
    pub hint: String,
    /// When the key stops working (unix ms); None: never.
    pub expires_at: Option<i64>,
    /// CIDR blocks or addresses the key may be used from; empty: anywhere.
    pub allowed_ips: Vec<String>,
}

/// A rotation of a key: the new secret's digest and hint, and the old key's grace period.
pub struct KeyRotation {
    pub user_id: String,
    pub key_id: String,
    pub grace: GracePeriod,
    pub digest: Digest,
    pub hint: String,
}

/// An edit of a key: each field, when present, replaces the key's.
#[derive(Default)]
pub struct KeyEdit {
    pub name: Option<String>,
    pub grant: Option<Grant>,
    pub teams: Option<KeyTeams>,
    /// `Some(None)`: the key no longer expires.
    pub expires_at: Option<Option<i64>>,
    /// `Some(vec![])`: usable from anywhere.
    pub allowed_ips: Option<Vec<String>>,
}

/// How many UTC days of per-key usage are kept.
pub const USAGE_DAYS_KEPT: i64 = 90;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The most networks one key may be limited to.
const MAX_ALLOWED_IPS: usize = 20;

/// An allowlist parsed once: CIDR blocks (a bare address is its own /32 or /128), host bits
/// cleared, in their canonical text, each once in the order first given.
fn allowed_ips(list: Vec<String>) -> Result<Vec<String>> {
    let mut nets: Vec<String> = Vec::new();
    for entry in &list {
        let net = network(entry.trim())?;
        // Counted once the same network given twice is one; a list past the limit is refused
        // at its first network too many, however long it is.
        if !nets.contains(&net) {
            if nets.len() == MAX_ALLOWED_IPS {
                return Err(Error::validation(format!("allowed_ips: at most {MAX_ALLOWED_IPS} entries")));
            }
            nets.push(net);
        }
    }
    Ok(nets)
}

/// One entry of an allowlist as the network it names, in canonical text.
fn network(entry: &str) -> Result<String> {
    // `010.0.0.1` is 8.0.0.1 to C's inet_aton and 10.0.0.1 to others: refused rather than
    // guessed.
    if entry
        .split(['.', '/'])
        .take(4)
        .any(|octet| octet.len() > 1 && octet.starts_with('0') && octet.bytes().all(|b| b.is_ascii_digit()))
        && !entry.contains(':')
    {
        return Err(Error::validation(format!("allowed_ips: {entry:?} has an octet with a leading zero")));
    }
    let net = entry
        .parse::<ipnet::IpNet>()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| Error::validation(format!("allowed_ips: {entry:?} is not an IP address or CIDR block")))?;
    Ok(unmapped(net).trunc().to_string())
}

/// An IPv4 network written in IPv6's mapped form (`::ffff:10.0.0.0/104`) as the IPv4 network it
/// is (`10.0.0.0/8`): gateways compare a client's address in its canonical form, IPv4 for a
/// mapped one, so the mapped form would never match.
fn unmapped(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, ipnet::IpNet::V4),
        _ => net,
    }
}

#[derive(Clone)]
pub struct Identity {
    pub(crate) store: Store,
    /// Where changes that gateways may have cached are announced.
    pub(crate) changes: Option<Arc<dyn ChangeBus>>,
    hasher: KeyHasher,
    /// Keys whose `last_used_at` was written this minute: at most one write per key per minute.
    last_use_written: Arc<common::time::OncePerMinute>,
    pub(crate) throttle: Arc<Throttle>,
    hashing: Hashing,
}

/// A password a user may choose: 8–128 characters.
struct NewPassword(String);

impl NewPassword {
    fn parse(field: &str, password: &str) -> Result<NewPassword> {
        if !(8..=128).contains(&password.chars().count()) {
            return Err(Error::invalid(field, "must be 8–128 characters"));
        }
        Ok(NewPassword(password.to_owned()))
    }
}

/// A sign-up as asked, checked before anything is counted or hashed.
struct NewAccount {
    email: String,
    name: String,
    password: NewPassword,
}

impl NewAccount {
    fn parse(email: &str, password: &str, name: &str) -> Result<NewAccount> {
        let email = normalize_email(email)?;
        let name = trimmed_len(name, "name", 1, 100)?;
        Ok(NewAccount { email, name, password: NewPassword::parse("password", password)? })
    }
}

/// A user's change of their own password, from one of their sessions.
pub struct PasswordChange<'a> {
    pub user_id: &'a str,
    /// The session asking, which stays open; the user's others end.
    pub session_token: &'a str,
    pub current_password: &'a str,
    pub new_password: &'a str,
}

/// Where a sign-in comes from, as the gateway saw it.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: ClientAddress,
    /// The User-Agent, recorded with the session: printable, at most 256 characters.
    pub user_agent: String,
}

impl Client {
    /// A trusted caller inside the deployment (the demo, operator commands): no address.
    pub fn internal() -> Client {
        Client { address: ClientAddress::UNKNOWN, user_agent: String::new() }
    }

    pub fn parse(address: &str, user_agent: &str) -> Result<Client> {
        Ok(Client {
            address: ClientAddress::parse(address)?,
            user_agent: user_agent.chars().filter(|c| !c.is_control()).take(256).collect(),
        })
    }
}

/// What the audit log says of a key: its name, permissions and hint.
fn key_details(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({ "name": key.name, "permissions": crate::store::encode_grant(&key.grant), "hint": key.hint })
}

/// A new entry of a team's audit log, made now.
pub(crate) fn audit_entry(
    team_id: &str,
    actor: &str,
    action: &str,
    target: &str,
    details: &serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        id: new_id(),
        team_id: team_id.to_owned(),
        actor_id: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        details: details.to_string(),
        created_at: now_ms(),
        actor_email: None,
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn trimmed_len(value: &str, field: &str, min: usize, max: usize) -> Result<String> {
    let value = value.trim();
    if value.chars().any(char::is_control) {
        return Err(Error::validation(format!("{field} must not contain control characters")));
    }
    let len = value.chars().count();
    if len < min || len > max {
        return Err(Error::validation(format!("{field} must be {min}–{max} characters")));
    }
    Ok(value.to_owned())
}

/// Characters no unquoted address has (quoted local parts are not accepted).
fn email_char(c: char) -> bool {
    !c.is_control() && !c.is_whitespace() && !"<>()[]\\,;:\"@`".contains(c)
}

/// One label of a domain: letters, digits (any script) and inner hyphens.
fn domain_label(label: &str) -> bool {
    !label.is_empty()
        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

pub(crate) fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            (1..=64).contains(&local.len())
                && local.chars().all(email_char)
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..")
                && domain.contains('.')
                && domain.split('.').all(domain_label)
        });
    if !valid {
        return Err(Error::validation("email is not a valid email address"));
    }
    Ok(email)
}

impl Identity {
    pub async fn open(
        backend: &Backend,
        hasher: KeyHasher,
        changes: Option<Arc<dyn ChangeBus>>,
    ) -> Result<Identity, OpenError> {
        let store = Store::open(backend).await?;
        let limits = LoginLimits::default();
        Ok(Identity {
            throttle: Arc::new(Throttle::new(store.clone(), limits.clone())),
            hashing: Hashing::new(&limits),
            store,
            changes,
            hasher,
            last_use_written: Arc::default(),
        })
    }

    /// The same service with other sign-in limits (README.md lists the defaults).
    pub fn with_login_limits(self, limits: LoginLimits) -> Identity {
        Identity {
            throttle: Arc::new(Throttle::new(self.store.clone(), limits.clone())),
            hashing: Hashing::new(&limits),
            ..self
        }
    }

    /// What the bound on password hashing has seen in this process.
    pub fn hashing_stats(&self) -> HashingStats {
        self.hashing.stats()
    }

    async fn open_session(&self, user: User, client: &Client) -> Result<(User, String)> {
        let token = random_token("zvs_");
        let now = now_ms();
        let session = Session {
            id: new_id(),
            created_at: now,
            expires_at: now + SESSION_TTL_MS,
            last_used_at: None,
            user_agent: client.user_agent.clone(),
            current: true,
        };
        self.store.create_session(&session, &Digest::of(&token), &user.id).await?;
        Ok((user, token))
    }

    async fn create_account(&self, account: NewAccount, client: &Client) -> Result<(User, String), Refusal> {
        let now = now_ms();
        let user = User { id: new_id(), email: account.email, name: account.name, created_at: now };
        let team = Team { id: new_id(), name: format!("{}'s team", user.name), created_at: now };
        let hash = self.hashing.hash(account.password.0).await?;
        self.store.create_user(&user, &hash, &team).await?;
        Ok(self.open_session(user, client).await?)
    }

    /// Signs up for a trusted caller inside the deployment: not counted against any address.
    pub async fn signup(&self, email: &str, password: &str, name: &str) -> Result<(User, String)> {
        let account = NewAccount::parse(email, password, name)?;
        self.create_account(account, &Client::internal()).await.map_err(|refusal| refusal.error)
    }

    /// Signs up a client; sign-ups are counted per client address (README.md).
    pub async fn signup_from(
        &self,
        client: &Client,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(User, String), Refusal> {
        let account = NewAccount::parse(email, password, name)?;
        self.throttle.signup(&client.address, now_ms()).await?;
        self.create_account(account, client).await
    }

    /// Failed logins are counted per account and per client address before any password is
    /// hashed; over either limit the attempt is refused without hashing (README.md).
    pub async fn login(&self, client: &Client, email: &str, password: &str) -> Result<(User, String), Refusal> {
        let email = normalize_email(email)?;
        let (address, account) = self.throttle.login(&client.address, &email, now_ms()).await?;
        let found = self.store.user_by_email(&email).await?;
        let (user, hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
        if !self.hashing.verify(password.to_owned(), hash).await? {
            return Err(Error::unauthorized("wrong email or password").into());
        }
        self.throttle.succeeded(address, account).await?;
        let user = user.expect("verified only when the user exists");
        Ok(self.open_session(user, client).await?)
    }

    /// Sets a new password when the current one is right, and ends the user's other sessions. A
    /// wrong current password counts as a failed login of the account (README.md).
    pub async fn change_password(&self, client: &Client, change: PasswordChange<'_>) -> Result<u64, Refusal> {
        let new_password = NewPassword::parse("new_password", change.new_password)?;
        let (user, hash) = self.store.user_by_id(change.user_id).await?.ok_or_else(|| Error::not_found("user"))?;
        let (address, account) = self.throttle.login(&client.address, &user.email, now_ms()).await?;
        if !self.hashing.verify(change.current_password.to_owned(), Some(hash)).await? {
            return Err(Error::invalid("current_password", "is not your current password").into());
        }
        self.throttle.succeeded(address, account).await?;
        let hash = self.hashing.hash(new_password.0).await?;
        Ok(self.store.set_password(&user.id, &hash, &Digest::of(change.session_token)).await?)
    }

    pub async fn logout(&self, token: &str) -> Result<()> {
        self.store.delete_session(&Digest::of(token)).await
    }

    pub async fn authenticate_session(&self, token: &str) -> Result<User> {
        let digest = Digest::of(token);
        let now = now_ms();
        let (user, last_used) = self
            .store
            .session_user(&digest, now)
            .await?
            .ok_or_else(|| Error::unauthorized("session is invalid or expired"))?;
        if last_used.is_none_or(|at| now - at >= MINUTE_MS) {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_session(&digest, now).await {
                    tracing::warn!(error = %e, "could not record session use");
                }
            });
        }
        Ok(user)
    }

    pub async fn list_sessions(&self, user_id: &str, current_token: &str) -> Result<Vec<Session>> {
        self.store.sessions_of(user_id, &Digest::of(current_token), now_ms()).await
    }

    /// Ends one of the user's sessions; it stops working at once (sessions are checked on every
    /// request, never cached).
    pub async fn revoke_session(&self, user_id: &str, session_id: &str, current_token: &str) -> Result<Session> {
        self.store
            .delete_user_session(user_id, session_id, &Digest::of(current_token))
            .await?
            .ok_or_else(|| Error::not_found("session"))
    }

    pub async fn list_teams(&self, user_id: &str) -> Result<Vec<Membership>> {
        self.store.memberships(user_id).await
    }

    pub async fn create_team(&self, user_id: &str, name: &str) -> Result<Membership> {
        let team = Team { id: new_id(), name: trimmed_len(name, "name", 1, 100)?, created_at: now_ms() };
        self.store.create_team(user_id, &team).await?;
        // The user's keys over all teams reach the new team from now on.
        announce(self.changes.as_ref(), Change::User(user_id.to_owned())).await;
        Ok(Membership { team, role: Role::Owner })
    }

    pub async fn get_team(&self, team_id: &str) -> Result<Team> {
        self.store.team(team_id).await?.ok_or_else(|| Error::not_found("team"))
    }

    /// Records a key event in the audit log of every team the key selects that its owner is
    /// still a member of.
    async fn audit_key(&self, key: &ApiKey, action: &str) -> Result<()> {
        self.audit_key_with(key, action, &key_details(key)).await
    }

    /// [`Self::audit_key`] with details of the caller's.
    async fn audit_key_with(&self, key: &ApiKey, action: &str, details: &serde_json::Value) -> Result<()> {
        self.audit_key_by(key, &key.user_id, action, details).await
    }

    /// A key event in each team the key selects, done by `actor` (a user's id, or who else did it).
    async fn audit_key_by(&self, key: &ApiKey, actor: &str, action: &str, details: &serde_json::Value) -> Result<()> {
        for membership in self.store.memberships(&key.user_id).await? {
            if key.teams.selects(&membership.team.id) {
                self.store.append_audit(&audit_entry(&membership.team.id, actor, action, &key.id, details)).await?;
            }
        }
        Ok(())
    }

    pub async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey> {
        let name = KeyName::parse(&new.name)?.into_string();
        let now = now_ms();
        let expires_at = key_expiry(new.expires_at, now)?;
        let allowed_ips = allowed_ips(new.allowed_ips)?;
        let key = ApiKey {
            id: new_id(),
            user_id: new.user_id,
            name,
            hint: new.hint,
            grant: new.grant,
            teams: new.teams,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            revoked_reason: None,
            expires_at,
            retires_at: None,
            rotated_from: None,
            rotated_to: None,
            allowed_ips,
            leak_url: None,
        };
        let details = key_details(&key);
        let audit = |team_id: &str| audit_entry(team_id, &key.user_id, "api_key.created", &key.id, &details);
        self.store.insert_api_key(&key, &self.hasher.stored(&new.digest), audit).await?;
        Ok(key)
    }

    pub async fn list_api_keys(&self, user_id: &str) -> Result<Vec<ApiKey>> {
        self.store.api_keys_of(user_id).await
    }

    async fn own_key(&self, user_id: &str, key_id: &str) -> Result<ApiKey> {
        match self.store.api_key(key_id).await? {
            Some(key) if key.user_id == user_id => Ok(key),
            _ => Err(Error::not_found("API key")),
        }
    }

    pub async fn update_api_key(&self, user_id: &str, key_id: &str, edit: KeyEdit) -> Result<ApiKey> {
        let mut key = self.own_key(user_id, key_id).await?;
        if key.revoked_at.is_some() {
            return Err(crate::store::revoked_key_is_final());
        }
        if let Some(name) = edit.name {
            key.name = KeyName::parse(&name)?.into_string();
        }
        if let Some(list) = edit.allowed_ips {
            key.allowed_ips = allowed_ips(list)?;
        }
        if let Some(expires_at) = edit.expires_at {
            key.expires_at = key_expiry(expires_at, now_ms())?;
        }
        if let Some(grant) = edit.grant {
            key.grant = grant;
        }
        let teams_edited = edit.teams.is_some();
        if let Some(teams) = edit.teams {
            key.teams = teams;
        }
        let details = key_details(&key);
        let audit = |team_id: &str| audit_entry(team_id, user_id, "api_key.updated", &key.id, &details);
        self.store.update_api_key(&KeyUpdate { key: &key, teams_edited }, audit).await?;
        announce(self.changes.as_ref(), Change::Key(key.id.clone())).await;
        Ok(key)
    }

    /// A new secret for a key: the new key takes the old one's name, grant, teams and expiry; the
    /// old one keeps working for its grace period, then reads as revoked (reason `rotated`). Returns the
    /// new key.
    pub async fn rotate_api_key(&self, rotation: KeyRotation) -> Result<ApiKey> {
        let old = self.own_key(&rotation.user_id, &rotation.key_id).await?;
        if old.revoked_at.is_some() || old.rotated_to.is_some() {
            return Err(Error::new(ErrorCode::Conflict, "only an active key that was not rotated yet can be rotated"));
        }
        let now = now_ms();
        // Its successor would take its expiry, and be born expired.
        if old.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::new(
                ErrorCode::Conflict,
                "the key has expired: give it a new expiry (PATCH expires_at) before rotating it, or create a new key",
            ));
        }
        let new = ApiKey {
            id: new_id(),
            hint: rotation.hint,
            created_at: now,
            last_used_at: None,
            rotated_from: Some(old.id.clone()),
            ..old.clone()
        };
        let retires_at = now + rotation.grace.millis();
        let details = serde_json::json!({ "name": old.name, "hint": old.hint, "new_key": new.id, "new_hint": new.hint, "retires_at": retires_at });
        let audit = |team_id: &str| audit_entry(team_id, &old.user_id, "api_key.rotated", &old.id, &details);
        let stored = self.hasher.stored(&rotation.digest);
        if !self.store.rotate_api_key(&Rotation { old: &old, new: &new, retires_at }, &stored, audit).await? {
            return Err(Error::new(ErrorCode::Conflict, "the key was rotated or revoked meanwhile"));
        }
        // Gateways re-read the old key, and so learn when it retires.
        announce(self.changes.as_ref(), Change::Key(old.id.clone())).await;
        Ok(new)
    }

    /// Adds a gateway's counts; days past the kept 90 go.
    pub async fn record_key_usage(&self, counts: Vec<KeyUsage>) -> Result<()> {
        if let Some(bad) = counts.iter().find(|c| !USAGE_OUTCOMES.contains(&c.outcome.as_str()) || c.count < 0) {
            return Err(Error::validation(format!("counts: unknown outcome {:?} or negative count", bad.outcome)));
        }
        let today = now_ms().div_euclid(DAY_MS);
        self.store.add_key_usage(&counts, today - USAGE_DAYS_KEPT + 1).await
    }

    /// The owner's view of a key's usage over the last `days` UTC days (today included).
    pub async fn key_usage(&self, user_id: &str, key_id: &str, days: i64) -> Result<Vec<KeyUsage>> {
        if !(1..=USAGE_DAYS_KEPT).contains(&days) {
            return Err(Error::validation(format!("days: must be 1 to {USAGE_DAYS_KEPT}")));
        }
        self.own_key(user_id, key_id).await?;
        let today = now_ms().div_euclid(DAY_MS);
        self.store.key_usage(key_id, today - days + 1).await
    }

    /// A secret reported as found in public: a live key with it is revoked at once, with the URL
    /// in the key's record and its teams' audit logs. Whether it is a key that leaked: live until
    /// now, or revoked by an earlier report of it (GitHub sends a report again when it got no
    /// answer, and one of the same key may come from another place).
    pub async fn report_leaked_key(&self, digest: &Digest, url: &str) -> Result<bool> {
        let candidates = self.hasher.candidates(digest);
        let Some((key, _)) = self.store.api_key_by_digest(&candidates).await? else {
            return self.store.leaked_key_by_digest(&candidates).await;
        };
        if !self.store.revoke_leaked_key(&key.id, now_ms(), url).await? {
            // Revoked meanwhile: by a report of it made at the same time, or by its owner.
            return self.store.leaked_key_by_digest(&candidates).await;
        }
        announce(self.changes.as_ref(), Change::Key(key.id.clone())).await;
        let details = serde_json::json!({ "name": key.name, "hint": key.hint, "url": url });
        // The report revoked it, not its owner.
        self.audit_key_by(&key, SECRET_SCANNING_ACTOR, "api_key.leaked", &details).await?;
        Ok(true)
    }

    pub async fn revoke_api_key(&self, user_id: &str, key_id: &str) -> Result<ApiKey> {
        self.own_key(user_id, key_id).await?;
        let revoked = self.store.revoke_api_key(key_id, now_ms(), REVOKED_BY_USER).await?;
        if revoked {
            announce(self.changes.as_ref(), Change::Key(key_id.to_owned())).await;
        }
        let key = self.own_key(user_id, key_id).await?;
        // Revoking a key that is revoked already (or retired by its rotation) changes nothing,
        // answers it as it is, and leaves no second event in the audit log.
        if revoked {
            self.audit_key(&key, "api_key.revoked").await?;
        }
        Ok(key)
    }

    /// The key behind a digest and its owner's current memberships among the key's teams.
    /// Unknown and revoked keys give the same error, after the same single lookup. An expired
    /// key is answered, with its `expires_at`: the gateway refuses it with its own code, which
    /// only a holder of the whole secret gets to see, and counts the refusal in its usage.
    pub async fn verify_api_key(&self, digest: &Digest) -> Result<(ApiKey, Vec<TeamRole>)> {
        let invalid = || Error::unauthorized("the API key is invalid or revoked");
        let (key, version) =
            self.store.api_key_by_digest(&self.hasher.candidates(digest)).await?.ok_or_else(invalid)?;
        if key.revoked_at.is_some() {
            return Err(invalid());
        }
        let now = now_ms();
        // Expired, or rotated and past its grace period: the gateway refuses it, and it was not
        // used.
        let refused = key.expires_at.is_some_and(|at| at <= now) || key.retires_at.is_some_and(|at| at <= now);
        if version != self.hasher.current_version() {
            self.store.rekey_api_key(&key.id, &self.hasher.stored(digest)).await?;
        }
        let teams: Vec<TeamRole> = self
            .store
            .memberships(&key.user_id)
            .await?
            .into_iter()
            .filter(|m| match &key.teams {
                KeyTeams::All => true,
                KeyTeams::Only(ids) => ids.contains(&m.team.id),
            })
            .map(|m| TeamRole { team_id: m.team.id, role: m.role })
            .collect();
        if teams.is_empty() && matches!(key.teams, KeyTeams::Only(_)) {
            // Every team the key selected is gone for its owner: the key can never work again.
            self.store.revoke_api_key(&key.id, now_ms(), REVOKED_TEAM_ACCESS_LOST).await?;
            announce(self.changes.as_ref(), Change::Key(key.id.clone())).await;
            return Err(invalid());
        }
        if !refused {
            self.record_use(&key.id);
        }
        Ok((key, teams))
    }

    /// Notes that a key was used now; writes at most once per key per minute. Gateways that
    /// answer from their cache call this instead of `verify_api_key`.
    pub fn record_use(&self, key_id: &str) {
        let now = now_ms();
        if !self.last_use_written.first(key_id, now) {
            return;
        }
        let store = self.store.clone();
        let key_id = key_id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&key_id, now).await {
                tracing::warn!(error = %e, "could not record API key use");
            }
        });
    }
}

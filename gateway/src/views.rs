//! The JSON shapes of the external and dashboard APIs (docs/behaviour.md), built from the services' proto types;
//! those of the external API are documented by the same types.

use common::access::{ApiKeyPolicy, Plan, Role, Scope};
use proto::analytics::v1 as anpb;
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::time::rfc3339;

pub fn user(u: &idpb::User) -> Value {
    json!({ "id": u.id, "email": u.email, "name": u.name, "created_at": rfc3339(u.created_at_unix_ms) })
}

// A value a newer peer may send that this build does not know reads as the least it could be.

pub fn role(value: i32) -> &'static str {
    Role::from_proto(value).unwrap_or(Role::Member).as_str()
}

pub fn scope(value: i32) -> &'static str {
    Scope::from_proto(value).unwrap_or(Scope::Read).as_str()
}

pub fn plan(value: i32) -> &'static str {
    Plan::from_proto(value).unwrap_or(Plan::Free).as_str()
}

pub fn api_key_policy(value: i32) -> &'static str {
    ApiKeyPolicy::from_proto(value).unwrap_or_default().as_str()
}

pub fn team(m: &idpb::Membership, settings: Option<&popb::TeamSettings>) -> Value {
    let t = m.team.clone().unwrap_or_default();
    json!({
        "id": t.id,
        "name": t.name,
        "role": role(m.role),
        "plan": plan(settings.map_or(0, |s| s.plan)),
        "api_key_policy": api_key_policy(settings.map_or(0, |s| s.api_key_policy)),
        "created_at": rfc3339(t.created_at_unix_ms),
    })
}

#[derive(Serialize, ToSchema)]
pub struct TeamSettings {
    team_id: String,
    pub plan: Plan,
    api_key_policy: ApiKeyPolicy,
    /// The plan's limits with the overrides applied.
    pub limits: TeamLimits,
    pub overrides: LimitOverrides,
}

#[derive(Serialize, ToSchema)]
pub struct TeamLimits {
    api_access: bool,
    requests_per_minute: u32,
    requests_per_month: u64,
    mcp_calls_per_day: u32,
}

/// An operator's overrides of the plan's limits; null keeps the plan's.
#[derive(Serialize, ToSchema)]
pub struct LimitOverrides {
    #[schema(required = true)]
    requests_per_minute: Option<u32>,
    #[schema(required = true)]
    requests_per_month: Option<u64>,
    #[schema(required = true)]
    mcp_calls_per_day: Option<u32>,
}

pub fn team_settings(s: &popb::TeamSettings) -> TeamSettings {
    let limits = s.limits.unwrap_or_default();
    let overrides = s.overrides.unwrap_or_default();
    TeamSettings {
        team_id: s.team_id.clone(),
        plan: Plan::from_proto(s.plan).unwrap_or(Plan::Free),
        api_key_policy: ApiKeyPolicy::from_proto(s.api_key_policy).unwrap_or_default(),
        limits: TeamLimits {
            api_access: limits.api_access,
            requests_per_minute: limits.requests_per_minute,
            requests_per_month: limits.requests_per_month,
            mcp_calls_per_day: limits.mcp_calls_per_day,
        },
        overrides: LimitOverrides {
            requests_per_minute: overrides.requests_per_minute,
            requests_per_month: overrides.requests_per_month,
            mcp_calls_per_day: overrides.mcp_calls_per_day,
        },
    }
}

pub fn api_key(k: &idpb::ApiKey) -> Value {
    let grant = k.grant.clone().unwrap_or_default();
    let permissions =
        if grant.full { json!("full") } else { json!(grant.scopes.iter().map(|&s| scope(s)).collect::<Vec<_>>()) };
    let teams = k.teams.clone().unwrap_or_default();
    let teams = if teams.all { json!("all") } else { json!(teams.team_ids) };
    json!({
        "id": k.id,
        "name": k.name,
        "hint": k.hint,
        "permissions": permissions,
        "teams": teams,
        "created_at": rfc3339(k.created_at_unix_ms),
        "last_used_at": k.last_used_at_unix_ms.map(rfc3339),
        "revoked_at": k.revoked_at_unix_ms.map(rfc3339),
        "revoked_reason": (!k.revoked_reason.is_empty()).then_some(&k.revoked_reason),
        "expires_at": k.expires_at_unix_ms.map(rfc3339),
        "rotated_from": (!k.rotated_from.is_empty()).then_some(&k.rotated_from),
        "rotated_to": (!k.rotated_to.is_empty()).then_some(&k.rotated_to),
        "retires_at": k.retires_at_unix_ms.map(rfc3339),
        "allowed_ips": k.allowed_ips,
        "leak_url": (!k.leak_url.is_empty()).then_some(&k.leak_url),
        "status": key_status(k, common::time::now_ms()),
    })
}

/// How long before its expiry a key is listed as `expiring`.
const EXPIRING_WITHIN_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// `active`, `expiring` (within 7 days), `expired` or `revoked`.
fn key_status(k: &idpb::ApiKey, now: i64) -> &'static str {
    match (k.revoked_at_unix_ms, k.expires_at_unix_ms) {
        (Some(_), _) => "revoked",
        (None, Some(at)) if at <= now => "expired",
        (None, Some(at)) if at - now <= EXPIRING_WITHIN_MS => "expiring",
        _ => "active",
    }
}

#[derive(Serialize, ToSchema)]
pub struct Website<'a> {
    id: &'a str,
    team_id: &'a str,
    domain: &'a str,
    name: &'a str,
    /// IANA time zone; days and hours of the statistics are local to it.
    timezone: &'a str,
    /// Names the site to the tracker, as the domain does.
    tracking_code: &'a str,
    #[schema(format = DateTime)]
    created_at: String,
}

/// Borrows what it can: the gateway writes it for every website it reads from analytics.
pub fn website(w: &anpb::Website) -> Website<'_> {
    Website {
        id: &w.id,
        team_id: &w.team_id,
        domain: &w.domain,
        name: &w.name,
        timezone: &w.timezone,
        tracking_code: &w.tracking_code,
        created_at: rfc3339(w.created_at_unix_ms),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    user_id: String,
    email: String,
    name: String,
    role: Role,
    #[schema(format = DateTime)]
    joined_at: String,
}

pub fn member(m: &idpb::Member) -> Member {
    let user = m.user.clone().unwrap_or_default();
    Member {
        user_id: user.id,
        email: user.email,
        name: user.name,
        role: Role::from_proto(m.role).unwrap_or(Role::Member),
        joined_at: rfc3339(m.joined_at_unix_ms),
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    id: String,
    team_id: String,
    /// The user who acted; `operator` for a plan set by the operator, `secret_scanning` for a
    /// key revoked by a leak report.
    actor_id: String,
    /// Their e-mail address (also when they have left the team since), or null if unknown.
    actor_email: Option<String>,
    /// `api_key.created|updated|rotated|revoked|leaked`, `member.added|removed|role_changed`,
    /// `team.api_key_policy_changed`, `team.plan_changed`.
    action: String,
    target: String,
    details: Value,
    #[schema(format = DateTime)]
    created_at: String,
}

pub fn audit_entry(e: &idpb::AuditEntry) -> AuditEntry {
    AuditEntry {
        id: e.id.clone(),
        team_id: e.team_id.clone(),
        actor_id: e.actor_user_id.clone(),
        actor_email: Some(e.actor_email.clone()).filter(|email| !email.is_empty()),
        action: e.action.clone(),
        target: e.target.clone(),
        details: audit_details(&e.details_json),
        created_at: rfc3339(e.created_at_unix_ms),
    }
}

/// An audit entry's details as the API shows them: identity records times (`retires_at`, …) as
/// unix milliseconds, and the API writes every time in RFC 3339.
fn audit_details(json: &str) -> Value {
    let mut details = serde_json::from_str::<Value>(json).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut details {
        for (name, value) in fields.iter_mut() {
            if let (true, Some(ms)) = (name.ends_with("_at"), value.as_i64()) {
                *value = Value::String(rfc3339(ms));
            }
        }
    }
    details
}

/// The symbol a currency's amounts are written with in English, as Plausible writes them (the
/// code and a no-break space for currencies without one), and its decimals.
fn currency_symbol(code: &str) -> (String, usize) {
    let symbol = match code {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "INR" => "₹",
        "CNY" => "CN¥",
        "CAD" => "CA$",
        "AUD" => "A$",
        "BRL" => "R$",
        "KRW" => "₩",
        "MXN" => "MX$",
        "NZD" => "NZ$",
        "HKD" => "HK$",
        "ILS" => "₪",
        other => return (format!("{other}\u{a0}"), 2),
    };
    (symbol.to_owned(), if matches!(code, "JPY" | "KRW") { 0 } else { 2 })
}

/// `1234567.5` → `1,234,567.50` with `decimals` decimals.
fn grouped(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), ""), |(w, f)| (w, f));
    let mut out = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    let sign = if value < 0.0 { "-" } else { "" };
    if fraction.is_empty() { format!("{sign}{out}") } else { format!("{sign}{out}.{fraction}") }
}

/// A revenue figure as Plausible answers one: `{short, long, value}` (`€1.2K`, `€1,234.50`,
/// `1234.5`); null where no currency applies.
pub fn revenue(value: f64, currency: &str) -> Value {
    if currency.is_empty() || !value.is_finite() {
        return Value::Null;
    }
    let (symbol, decimals) = currency_symbol(currency);
    let short = match value.abs() {
        v if v >= 1e9 => format!("{symbol}{:.1}B", value / 1e9),
        v if v >= 1e6 => format!("{symbol}{:.1}M", value / 1e6),
        v if v >= 1e3 => format!("{symbol}{:.1}K", value / 1e3),
        _ => format!("{symbol}{value:.1}"),
    };
    json!({ "short": short, "long": format!("{symbol}{}", grouped(value, decimals)), "value": value })
}

#[cfg(test)]
mod tests {
    #[test]
    fn revenue_is_written_as_plausible_writes_it() {
        let figure = super::revenue(1234.5, "EUR");
        assert_eq!(figure, serde_json::json!({ "short": "€1.2K", "long": "€1,234.50", "value": 1234.5 }));
        assert_eq!(super::revenue(30.0, "USD")["short"], "$30.0");
        assert_eq!(super::revenue(1500.0, "JPY")["long"], "¥1,500");
        assert_eq!(super::revenue(12.5, "CHF")["long"], "CHF\u{a0}12.50");
        assert!(super::revenue(f64::NAN, "EUR").is_null() && super::revenue(3.0, "").is_null());
    }
}

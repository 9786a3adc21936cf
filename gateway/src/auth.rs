//! API-key authentication and the per-request authorization decision (docs/behaviour.md#authorization-of-a-request).

use std::sync::{Arc, Mutex};

use crate::apikey::ApiKeySecret;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use common::access::Scope;
use common::cache::{Read, refresh_failed};
use common::secret::Digest;
use common::transport::checked;
use common::{Error, ErrorCode};
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use tracing::Instrument as _;

use crate::cache::{Lookup, Refusal, Verified};
use crate::error::{ApiError, ApiResult};
use crate::metrics;
use crate::session::{bearer, one_credential};
use crate::state::AppState;
use crate::time::rfc3339;

/// What the decision charged the current request, filled by [`VerifiedKey::authorize`] and
/// turned into headers by [`rate_limit_headers`] on every response, errors included.
#[derive(Clone, Default)]
struct RateSlot(Arc<Mutex<Option<Charge>>>);

/// The key a request was verified with, filled by [`Credentials::verify`], so that its answer
/// counts in the key's usage whatever it is.
#[derive(Clone, Default)]
struct UsedKey(Arc<Mutex<Option<String>>>);

struct Charge {
    rate: popb::RateLimit,
    key_id: String,
    user_id: String,
}

/// Sets the rate-limit and usage headers (docs/behaviour.md#plans-limits-and-quotas, IETF fields included), and gives
/// back the slot of a request that was refused after its decision (400, 403): refused requests
/// consume nothing.
pub async fn rate_limit_headers(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    let used = UsedKey::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(used.clone());
    let mut response = next.run(req).await;
    let charge = slot.0.lock().expect("rate slot lock poisoned").take();
    if let Some(key_id) = used.0.lock().expect("used key lock poisoned").take() {
        // A 503 before any decision is a request that could not be checked, which a key's usage
        // does not count (docs/behaviour.md, "Usage history").
        let unchecked = charge.is_none() && response.status() == StatusCode::SERVICE_UNAVAILABLE;
        if !unchecked {
            state.usage.count(&key_id, response.status());
        }
    }
    let Some(Charge { mut rate, key_id, user_id }) = charge else { return response };
    let refused = matches!(response.status(), StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN);
    if refused && !rate.slot.is_empty() {
        let release = popb::ReleaseRequest { key_id, user_id, slot: std::mem::take(&mut rate.slot) };
        match state.policy.clone().release(release).await {
            Ok(_) => {
                rate.remaining += 1;
                rate.month_used = rate.month_used.saturating_sub(1);
            }
            Err(status) => tracing::warn!(grpc.code = ?status.code(), "could not give back a rate-limit slot"),
        }
    }
    let reset_secs = (rate.reset_at_unix_ms + 999).div_euclid(1000);
    let reset_in = (rate.reset_at_unix_ms - common::time::now_ms()).max(0).div_euclid(1000) + 1;
    let headers = response.headers_mut();
    // Names made once rather than parsed from text on every response.
    headers.insert(X_RATELIMIT_LIMIT, rate.limit.into());
    headers.insert(X_RATELIMIT_REMAINING, rate.remaining.into());
    headers.insert(X_RATELIMIT_RESET, reset_secs.into());
    headers.insert(X_USAGE_MONTHLY, rate.month_used.into());
    headers.insert(X_USAGE_LIMIT, rate.month_limit.into());
    let mut set = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(X_USAGE_RESET, rfc3339(rate.month_reset_at_unix_ms));
    set(RATELIMIT_POLICY, format!("\"per-minute\";q={};w=60", rate.limit));
    set(RATELIMIT, format!("\"per-minute\";r={};t={reset_in}", rate.remaining));
    response
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const X_USAGE_MONTHLY: HeaderName = HeaderName::from_static("x-usage-monthly");
const X_USAGE_LIMIT: HeaderName = HeaderName::from_static("x-usage-limit");
const X_USAGE_RESET: HeaderName = HeaderName::from_static("x-usage-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A well-formed key presented by the caller, not yet looked up. Extracting it costs no I/O:
/// a missing, malformed or mistyped key is refused here.
pub struct Credentials {
    secret: ApiKeySecret,
    slot: RateSlot,
    /// Where the request comes from, for the key's allowlist.
    client_ip: Option<std::net::IpAddr>,
    used: UsedKey,
}

/// Credentials whose absence the handler answers itself: the Plausible drop-in and sites API
/// answer it in Plausible's error shape.
pub(crate) type Keyed = Result<Credentials, ApiError>;

/// A key that identity recognised, with its owner's current memberships among its teams.
pub struct VerifiedKey {
    verified: Arc<Verified>,
    slot: RateSlot,
}

/// The error code of a policy refusal; one this gateway does not know is a 403, never an allow.
pub(crate) fn refusal_code(reason: i32) -> ErrorCode {
    match popb::DenyReason::try_from(reason) {
        Ok(popb::DenyReason::ApiPaidPlanRequired) => ErrorCode::ApiPaidPlanRequired,
        Ok(popb::DenyReason::InsufficientScope) => ErrorCode::InsufficientScope,
        Ok(popb::DenyReason::KeyPolicyForbids) => ErrorCode::KeyPolicyForbids,
        Ok(popb::DenyReason::RateLimitExceeded) => ErrorCode::RateLimitExceeded,
        Ok(popb::DenyReason::MonthlyLimitExceeded) => ErrorCode::MonthlyLimitExceeded,
        Ok(popb::DenyReason::IpNotAllowed) => ErrorCode::IpNotAllowed,
        Ok(popb::DenyReason::Forbidden | popb::DenyReason::Unspecified) | Err(_) => ErrorCode::Forbidden,
    }
}

/// A positive decision.
pub struct Authorized {
    pub decision: popb::AuthorizeResponse,
}

impl Authorized {
    pub fn reachable_team_ids(&self) -> &[String] {
        &self.decision.reachable_team_ids
    }
}

fn unauthorized(message: &str) -> ApiError {
    Error::unauthorized(message).into()
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        // Each header once; with both, `Authorization` is the credential (README, "Sessions in a
        // browser, and untrusted input").
        one_credential(&parts.headers, &[header::AUTHORIZATION])?;
        one_credential(&parts.headers, &[HeaderName::from_static("x-api-key")])?;
        let presented = bearer(&parts.headers).or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        let presented = presented.ok_or_else(|| {
            unauthorized("an API key is required: send `Authorization: Bearer zv_…` or `X-API-Key: zv_…`")
        })?;
        let secret = ApiKeySecret::parse(presented.trim()).ok_or_else(|| unauthorized("the API key is malformed"))?;
        let slot = parts.extensions.get::<RateSlot>().cloned().unwrap_or_default();
        let used = parts.extensions.get::<UsedKey>().cloned().unwrap_or_default();
        Ok(Credentials { secret, slot, client_ip: crate::session::client_ip(state, parts), used })
    }
}

impl Credentials {
    /// The key behind the credentials: from this gateway's cache when it can be trusted,
    /// else from identity.
    pub async fn verify(self, state: &AppState) -> ApiResult<VerifiedKey> {
        let digest = self.secret.digest();
        let lookup = state.keys.as_ref().map_or(Lookup::Untrusted, |cache| cache.lookup(&digest));
        metrics::metrics().key_cache.add(lookup.result().name());
        let (verified, cached) = match lookup {
            Lookup::Hit(verified) => (verified, true),
            Lookup::Refresh(verified, read) => {
                let state = state.clone();
                // A verification that fails leaves the entry to expire; the first request after
                // that asks identity itself and answers what identity says.
                let refresh = async move {
                    if let Err(failed) = verify_with_identity(&state, digest, Some(read)).await {
                        refresh_failed(&failed.error);
                    }
                };
                tokio::spawn(refresh.instrument(tracing::info_span!("cache.refresh")));
                (verified, true)
            }
            Lookup::Miss(read) => (verify_with_identity(state, digest, Some(read)).await?, false),
            Lookup::Untrusted => (verify_with_identity(state, digest, None).await?, false),
        };
        // Counted in the key's usage from here on, refusals included.
        *self.used.0.lock().expect("used key lock poisoned") = Some(verified.key.id.clone());
        // A cached verification never outlives the key's expiry, nor a rotated key's grace period.
        let now = common::time::now_ms();
        if verified.key.retires_at_unix_ms.is_some_and(|at| at <= now) {
            return Err(unauthorized("the API key is invalid or revoked"));
        }
        // Identity answers an expired key too, for this refusal to be counted against it.
        if verified.key.expires_at_unix_ms.is_some_and(|at| at <= now) {
            return Err(Error::new(ErrorCode::ApiKeyExpired, "the API key has expired").into());
        }
        // Identity notes the uses it verifies itself.
        if cached {
            report_use(state, &verified.key.id);
        }
        let client_allowed = allowed_from(&verified.key.allowed_ips, self.client_ip);
        let key = VerifiedKey { verified, slot: self.slot };
        if !client_allowed {
            return Err(key.refuse_address(state).await);
        }
        tracing::Span::current().record("zenovay.key_id", tracing::field::display(&key.verified.key.id));
        Ok(key)
    }
}

/// The answer to a request whose input was refused before its handler ran (a path that does
/// not decode): for an API key, its refusals for reading first (the least any route needs: the
/// route's own scope is its handler's to know), and the 400 carries its budget, as every answer
/// to a verified key does; taking nothing. Without one, `invalid` as it is.
pub async fn refused_before_handler(parts: &mut Parts, state: &AppState, invalid: ApiError) -> ApiError {
    let Ok(credentials) = Credentials::from_request_parts(parts, state).await else { return invalid };
    let key = match credentials.verify(state).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    key.validated(state, Scope::Read, Err::<(), ApiError>(invalid)).await.unwrap_err()
}

/// The key of `digest` as identity knows it, kept when `read` says the cache may take it.
async fn verify_with_identity(state: &AppState, digest: Digest, read: Option<Read>) -> ApiResult<Arc<Verified>> {
    let request = idpb::VerifyApiKeyRequest { secret_digest: digest.as_bytes().to_vec() };
    let answer = checked(state.identity.clone().verify_api_key(request)).await?.into_inner();
    let key = answer.key.ok_or_else(|| Error::internal("identity returned no key"))?;
    let verified = Arc::new(Verified { key, teams: answer.teams });
    if let (Some(read), Some(cache)) = (read, &state.keys) {
        cache.insert(digest, read, verified.clone());
    }
    Ok(verified)
}

/// Tells identity a cached key was used, once per key per minute, without waiting.
fn report_use(state: &AppState, key_id: &str) {
    if !state.reported_use.first(key_id, common::time::now_ms()) {
        return;
    }
    let mut identity = state.identity.clone();
    let request = idpb::RecordKeyUseRequest { key_id: key_id.to_owned() };
    tokio::spawn(async move {
        if let Err(status) = identity.record_key_use(request).await {
            tracing::warn!(grpc.code = ?status.code(), "could not report an API key use");
        }
    });
}

impl VerifiedKey {
    /// The key's owner, on whose behalf it acts.
    pub fn user_id(&self) -> &str {
        &self.verified.key.user_id
    }

    /// `input`, or, when it is wrong before the resource it names is known, the decision
    /// without a resource first: a caller refused access learns nothing of validation, and a
    /// 400 carries the budget's headers like every answer to a verified key.
    pub async fn validated<T>(&self, state: &AppState, scope: Scope, input: ApiResult<T>) -> ApiResult<T> {
        self.validated_for(state, scope, None, input).await
    }

    /// `input`, or, when it is wrong, the decision for `resource_team` first, as
    /// [`Self::validated`] makes it without one.
    pub async fn validated_for<T>(
        &self,
        state: &AppState,
        scope: Scope,
        resource_team: Option<&str>,
        input: ApiResult<T>,
    ) -> ApiResult<T> {
        match input {
            Ok(input) => Ok(input),
            Err(invalid) => {
                // Decided to tell which refusal comes first, taking nothing: a slot held until
                // the 400 gave it back would refuse good requests sent beside it.
                Err(self.decide(state, scope, resource_team, Taking::Nothing).await.err().unwrap_or(invalid))
            }
        }
    }

    /// What policy is asked for this key's request.
    fn decision_request(&self, scope: Scope, resource_team: Option<&str>, taking: Taking) -> popb::AuthorizeRequest {
        popb::AuthorizeRequest {
            key_id: self.verified.key.id.clone(),
            grant: self.verified.key.grant.clone(),
            teams: self.verified.teams.clone(),
            required_scope: idpb::Scope::from(scope) as i32,
            resource_team_id: resource_team.map(str::to_owned),
            user_id: self.verified.key.user_id.clone(),
            address_refused: false,
            takes_nothing: matches!(taking, Taking::Nothing),
        }
    }

    /// The budget the answer reports in its headers (and the slot to give back if it failed).
    fn charge(&self, rate: Option<popb::RateLimit>) {
        let key = &self.verified.key;
        *self.slot.0.lock().expect("rate slot lock poisoned") =
            rate.map(|rate| Charge { rate, key_id: key.id.clone(), user_id: key.user_id.clone() });
    }

    /// The refusal of a request from outside the key's allowlist, made here whatever policy says
    /// so that no route can use the key from elsewhere; policy only reads the key's budget for
    /// the answer's headers, taking nothing. Without policy the refusal stands, without them.
    async fn refuse_address(&self, state: &AppState) -> ApiError {
        let request = popb::AuthorizeRequest {
            address_refused: true,
            ..self.decision_request(Scope::Read, None, Taking::Nothing)
        };
        if let Ok(answer) = state.decisions.authorize(request).await {
            self.charge(answer.rate_limit);
        }
        Error::new(ErrorCode::IpNotAllowed, "this API key may not be used from this address").into()
    }

    /// Asks policy for the decision. Only an allowed request takes a rate-limit slot. A key
    /// already refused for its limit is refused again from the cache until a slot frees.
    pub async fn authorize(
        &self,
        state: &AppState,
        scope: Scope,
        resource_team: Option<&str>,
    ) -> ApiResult<Authorized> {
        self.decide(state, scope, resource_team, Taking::ASlot).await
    }

    async fn decide(
        &self,
        state: &AppState,
        scope: Scope,
        resource_team: Option<&str>,
        taking: Taking,
    ) -> ApiResult<Authorized> {
        let key = &self.verified.key;
        let now = common::time::now_ms();
        let generation = state.keys.as_ref().and_then(|cache| cache.generation());
        let cached = state.keys.as_ref().and_then(|cache| cache.refusal(&key.id, now));
        // Compared borrowed: the request's team is copied only into a refusal kept.
        let same_request = |refusal: &Refusal| refusal.asked.0 == scope && refusal.asked.1.as_deref() == resource_team;
        if let Some(refusal) = cached.filter(same_request) {
            let mut rate = refusal.rate;
            rate.retry_after_ms = (refusal.until_ms - now).max(0) as u64;
            metrics::decision(refusal.code.as_str(), "cache");
            let mut error = ApiError::new(refusal.code, refusal.message);
            error.retry_after_secs = Some(rate.retry_after_ms.div_ceil(1000).max(1));
            self.charge(Some(rate));
            return Err(error);
        }
        let response = match state.decisions.authorize(self.decision_request(scope, resource_team, taking)).await {
            Ok(response) => response,
            Err(error) => {
                // No decision could be made (policy, or its limiter, did not answer): counted too.
                metrics::decision(error.code.as_str(), "policy");
                return Err(error.into());
            }
        };
        let retry_after_ms = response.rate_limit.as_ref().map(|r| r.retry_after_ms);
        self.charge(response.rate_limit.clone());
        let decision = response.decision.clone().ok_or_else(|| Error::internal("policy returned no decision"))?;
        if decision.allowed {
            metrics::decision("allowed", "policy");
            return Ok(Authorized { decision: response });
        }
        let code = refusal_code(decision.reason);
        metrics::decision(code.as_str(), "policy");
        let mut error = ApiError::new(code, decision.message.clone());
        if matches!(code, ErrorCode::RateLimitExceeded | ErrorCode::MonthlyLimitExceeded) {
            error.retry_after_secs = Some(retry_after_ms.map_or(1, |ms| ms.div_ceil(1000).max(1)));
            // A refusal made by one policy replica alone during a Redis outage is not the shared
            // state of the key: it is not repeated.
            if let (Some(cache), Some(generation), Some(rate)) = (&state.keys, generation, response.rate_limit)
                && !rate.degraded
            {
                let refusal = Refusal {
                    user_id: key.user_id.clone(),
                    asked: (scope, resource_team.map(str::to_owned)),
                    until_ms: now + rate.retry_after_ms as i64,
                    rate,
                    code,
                    message: decision.message,
                    settings_read_ms: now.saturating_sub_unsigned(response.settings_age_ms),
                };
                cache.refuse(&key.id, generation, refusal);
            }
        }
        Err(error)
    }
}

/// What a decision may take from the key's budget when it allows the request.
#[derive(Clone, Copy)]
enum Taking {
    ASlot,
    /// Nothing: the request is refused for its input unless the decision refuses it first.
    Nothing,
}

/// Whether a key limited to `allowed` (CIDR blocks; none: anywhere) may be used from `client`.
fn allowed_from(allowed: &[String], client: Option<std::net::IpAddr>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    // An IPv4 client reaching an IPv6 listener shows as ::ffff:a.b.c.d. Identity stores mapped
    // entries as IPv4 blocks, but entries stored before it did so are still in the mapped form,
    // so an IPv4 client is compared in both forms.
    let Some(ip) = client.map(|ip| ip.to_canonical()) else {
        return false;
    };
    let mapped = match ip {
        std::net::IpAddr::V4(v4) => Some(std::net::IpAddr::V6(v4.to_ipv6_mapped())),
        std::net::IpAddr::V6(_) => None,
    };
    allowed
        .iter()
        .filter_map(|net| net.parse::<ipnet::IpNet>().ok())
        .any(|net| net.contains(&ip) || mapped.is_some_and(|mapped| net.contains(&mapped)))
}

#[cfg(test)]
mod tests {
    use super::allowed_from;

    fn allows(entries: &[&str], client: &str) -> bool {
        let entries: Vec<String> = entries.iter().map(|entry| entry.to_string()).collect();
        allowed_from(&entries, Some(client.parse().unwrap()))
    }

    #[test]
    fn a_key_without_an_allowlist_is_allowed_from_anywhere() {
        assert!(allows(&[], "203.0.113.9"));
    }

    #[test]
    fn an_ipv4_client_reaching_an_ipv6_listener_matches_an_ipv4_block() {
        assert!(allows(&["192.0.2.0/24"], "::ffff:192.0.2.7"));
        assert!(!allows(&["192.0.2.0/24"], "::ffff:198.51.100.7"));
    }

    #[test]
    fn an_entry_stored_in_the_mapped_form_matches_its_ipv4_client() {
        assert!(allows(&["::ffff:192.0.2.0/120"], "192.0.2.7"));
        assert!(allows(&["::ffff:192.0.2.7/128"], "::ffff:192.0.2.7"));
        assert!(!allows(&["::ffff:192.0.2.0/120"], "198.51.100.7"));
    }

    #[test]
    fn an_ipv6_client_matches_only_ipv6_blocks() {
        assert!(allows(&["2001:db8::/32"], "2001:db8::1"));
        assert!(!allows(&["192.0.2.0/24"], "2001:db8::1"));
    }

    #[test]
    fn a_request_without_a_client_address_is_refused_by_an_allowlist() {
        assert!(!allowed_from(&["192.0.2.0/24".to_string()], None));
    }
}

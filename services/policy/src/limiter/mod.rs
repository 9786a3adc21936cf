//! The per-key per-minute limit and the per-user monthly quota, decided together so that a
//! request either takes from both or from neither.
//!
//! The per-minute limit is a sliding-window log, so that "at most N requests in any 60-second
//! window" holds literally (a fixed window admits 2N across a boundary, GCRA with burst N admits
//! 2N−1). The log keeps one timestamp per admitted request, at most N per key. The monthly quota
//! is a counter per user and UTC month.
//!
//! Two implementations of one trait, checked by one conformance suite
//! (`tests/suite/conformance.rs`): [`MemoryLimiter`] for the all-in-one mode, [`RedisLimiter`]
//! for replicas sharing Redis.

mod memory;
mod redis;
mod resilient;

pub use self::memory::{Clock, Kept, ManualClock, MemoryLimiter, SystemClock};
pub use self::redis::{DECIDE_SCRIPT, RedisLimiter};
pub use self::resilient::ResilientLimiter;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use common::Result;

/// Length of the sliding window.
pub const WINDOW_MS: i64 = 60_000;

/// What one request draws on. The limits are passed on every call so that a plan change
/// applies to the very next request.
#[derive(Debug, Clone, Copy)]
pub struct Budget<'a> {
    pub key: &'a str,
    pub per_minute: u32,
    pub user: &'a str,
    pub per_month: u64,
}

impl<'a> Budget<'a> {
    pub(crate) fn quota(&self) -> Quota<'a> {
        Quota { user: self.user, per_month: self.per_month }
    }
}

/// A user's monthly quota: what requests of their keys have in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota<'a> {
    pub user: &'a str,
    pub per_month: u64,
}

/// Requests that draw on one user's month (under one monthly limit), through one or more of
/// their keys, to decide together in the order asked. Only such requests can share a decision:
/// the month is their one counter in common, and on a Redis Cluster their keys share a slot.
#[derive(Debug)]
pub struct Takes<'a> {
    quota: Quota<'a>,
    /// The keys whose windows the requests take from, in the order first asked.
    keys: Vec<&'a str>,
    /// Each request's window among `keys` and its per-minute limit, in the order asked.
    requests: Vec<(usize, u32)>,
}

impl<'a> Takes<'a> {
    pub fn of(budget: Budget<'a>) -> Takes<'a> {
        Takes { quota: budget.quota(), keys: vec![budget.key], requests: vec![(0, budget.per_minute)] }
    }

    /// Adds a request after the others, or gives it back when it draws on another month (another
    /// user's, or the same user's under another monthly limit).
    pub fn push(&mut self, budget: Budget<'a>) -> Result<(), Budget<'a>> {
        if budget.quota() != self.quota {
            return Err(budget);
        }
        let window = self.keys.iter().position(|key| *key == budget.key).unwrap_or_else(|| {
            self.keys.push(budget.key);
            self.keys.len() - 1
        });
        self.requests.push((window, budget.per_minute));
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.requests.len()
    }

    /// Each request's budget, in the order asked.
    pub fn budgets(&self) -> impl Iterator<Item = Budget<'a>> + '_ {
        let Quota { user, per_month } = self.quota;
        self.requests.iter().map(move |&(window, per_minute)| Budget {
            key: self.keys[window],
            per_minute,
            user,
            per_month,
        })
    }

    /// The same requests under other per-minute limits.
    pub(crate) fn with_per_minute(&self, limit: impl Fn(&Budget<'a>) -> u32) -> Takes<'a> {
        let requests = self.requests.iter().zip(self.budgets()).map(|(&(window, _), b)| (window, limit(&b))).collect();
        Takes { quota: self.quota, keys: self.keys.clone(), requests }
    }

    pub(crate) fn quota(&self) -> Quota<'a> {
        self.quota
    }

    pub(crate) fn keys(&self) -> &[&'a str] {
        &self.keys
    }

    /// Each request's window among [`Takes::keys`] and its per-minute limit, in the order asked.
    pub(crate) fn requests(&self) -> &[(usize, u32)] {
        &self.requests
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Minute,
    Month,
}

/// The state of a budget after one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateDecision {
    /// `None` when the request may proceed (or, for a peek, would).
    pub exceeded: Option<Exceeded>,
    pub limit: u32,
    /// Slots left in the window after this decision.
    pub remaining: u32,
    /// When the oldest request leaves the window and a slot frees (unix ms); a window from now
    /// when the window is empty.
    pub reset_at_ms: i64,
    /// The limiter's clock at the decision.
    pub now_ms: i64,
    pub month_used: u64,
    pub month_limit: u64,
    /// Start of the next UTC month (unix ms), when the quota resets.
    pub month_reset_at_ms: i64,
    /// The slot this decision took, to give back with [`Limiter::release`].
    pub slot: Option<String>,
    /// Made by one replica alone while Redis was unavailable.
    pub degraded: bool,
}

impl RateDecision {
    pub fn allowed(&self) -> bool {
        self.exceeded.is_none()
    }

    /// Milliseconds until a request would be allowed.
    pub fn retry_after_ms(&self) -> u64 {
        let at = match self.exceeded {
            None => return 0,
            Some(Exceeded::Minute) => self.reset_at_ms,
            Some(Exceeded::Month) => self.month_reset_at_ms,
        };
        (at - self.now_ms).max(0) as u64
    }
}

#[async_trait::async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Takes a slot of the window and one request of the month, or neither.
    async fn acquire(&self, budget: &Budget<'_>) -> Result<RateDecision>;
    /// Decides requests of one user's month as calls of `acquire` one after another would,
    /// answering in that order; a shared limiter makes them in one round trip. Policy asks for
    /// at most `MAX_AUTHORIZE_CALLS` (256) at once.
    async fn acquire_many(&self, takes: &Takes<'_>) -> Result<Vec<RateDecision>> {
        let mut decisions = Vec::with_capacity(takes.len());
        for budget in takes.budgets() {
            decisions.push(self.acquire(&budget).await?);
        }
        Ok(decisions)
    }
    /// The budget's state, taking nothing.
    async fn peek(&self, budget: &Budget<'_>) -> Result<RateDecision>;
    /// Gives back what `acquire` took for a request that ended up refused (400, 403).
    async fn release(&self, budget: &Budget<'_>, slot: &str) -> Result<()>;
    /// Counts one MCP tool call of `user` against `per_day` for the current UTC day, if any are
    /// left (the MCP endpoint's daily quota, docs/behaviour.md#plans-limits-and-quotas).
    async fn take_daily(&self, user: &str, per_day: u32) -> Result<DailyDecision>;
    /// Gives back an MCP tool call counted by `take_daily` on the day that resets at
    /// `reset_at_ms`, for a call that could not run (a service it needed was unavailable).
    async fn give_back_daily(&self, user: &str, reset_at_ms: i64) -> Result<()>;
    /// What an in-process limiter keeps across a restart, with its generation, unless it is
    /// still `generation`; none where the state lives in Redis.
    fn kept_since(&self, _generation: u64) -> Option<(u64, Kept)> {
        None
    }
    /// Takes back a kept state, before the first decision.
    fn restore(&self, _kept: Kept) {}
}

/// The state of a user's daily MCP quota after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyDecision {
    pub allowed: bool,
    /// Calls counted today, this one included when allowed.
    pub used: u32,
    pub limit: u32,
    /// Start of the next UTC day (unix ms).
    pub reset_at_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` of a unix-ms time, and the start of the following UTC day.
pub(crate) fn day_of(now_ms: i64) -> (String, i64) {
    let day = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or_default().format("%Y-%m-%d").to_string();
    (day, (now_ms.div_euclid(DAY_MS) + 1) * DAY_MS)
}

pub(crate) fn decide_daily(used_before: u32, per_day: u32, reset_at_ms: i64) -> DailyDecision {
    let allowed = used_before < per_day;
    DailyDecision { allowed, used: used_before + u32::from(allowed), limit: per_day, reset_at_ms }
}

/// A UTC month, which the monthly quota counts; shown as `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month of a unix-ms time.
    pub(crate) fn of(now_ms: i64) -> Month {
        let now: DateTime<Utc> = DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        Month { year: now.year(), month: now.month() }
    }

    /// The start of the following month (unix ms), when this month's quota resets.
    pub(crate) fn next_start_ms(self) -> i64 {
        let (year, month) = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().map_or(i64::MAX, |next| next.timestamp_millis())
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// What both implementations observe before deciding.
pub(crate) struct Observed {
    /// Requests in the window, oldest first timestamp.
    pub count: u32,
    pub oldest: Option<i64>,
    pub month_used: u64,
    pub now: i64,
}

/// The decision, shared by both implementations so that they cannot disagree. The monthly quota
/// is checked first: when both are spent, the month is the honest `Retry-After`.
pub(crate) fn decide(seen: &Observed, budget: &Budget<'_>, take: bool) -> RateDecision {
    let exceeded = if seen.month_used >= budget.per_month {
        Some(Exceeded::Month)
    } else if seen.count >= budget.per_minute {
        Some(Exceeded::Minute)
    } else {
        None
    };
    let took = take && exceeded.is_none();
    let count = seen.count + u32::from(took);
    let oldest = seen.oldest.or(took.then_some(seen.now));
    RateDecision {
        exceeded,
        limit: budget.per_minute,
        remaining: budget.per_minute.saturating_sub(count),
        reset_at_ms: oldest.unwrap_or(seen.now) + WINDOW_MS,
        now_ms: seen.now,
        month_used: seen.month_used + u64::from(took),
        month_limit: budget.per_month,
        month_reset_at_ms: Month::of(seen.now).next_start_ms(),
        slot: None,
        degraded: false,
    }
}

/// What a shared limiter saw, at one instant, before a call's requests, and the slots they took
/// in order.
pub(crate) struct Seen {
    /// Each window the call read, in the order of [`Takes::keys`].
    pub windows: Vec<WindowSeen>,
    pub month_used: u64,
    pub now: i64,
    pub slots: Vec<String>,
}

pub(crate) struct WindowSeen {
    pub count: u32,
    pub oldest: Option<i64>,
}

impl Seen {
    /// What the next request of `window` observes once `took_there` requests before it took from
    /// that window and `took` from the month.
    pub(crate) fn before(&self, window: &WindowSeen, took_there: u32, took: u64) -> Observed {
        Observed {
            count: window.count + took_there,
            oldest: window.oldest.or((took_there > 0).then_some(self.now)),
            month_used: self.month_used + took,
            now: self.now,
        }
    }
}

/// The decisions for requests of one month made at one instant, as that many calls one after
/// another would make them: each sees those before it that took, in its window and in the
/// month, and takes the next slot when it is allowed. `seen` holds one window per key of
/// `takes`.
pub(crate) fn decide_in_turn(mut seen: Seen, takes: &Takes<'_>) -> Vec<RateDecision> {
    let mut slots = std::mem::take(&mut seen.slots).into_iter();
    let mut took_in = vec![0; seen.windows.len()];
    let mut took = 0;
    takes
        .requests()
        .iter()
        .zip(takes.budgets())
        .map(|(&(window, _), budget)| {
            let mut decision = decide(&seen.before(&seen.windows[window], took_in[window], took), &budget, true);
            if decision.allowed() {
                took_in[window] += 1;
                took += 1;
                decision.slot = slots.next();
                debug_assert!(decision.slot.is_some(), "the limiter admitted fewer than its counts allow");
            }
            decision
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_in_utc() {
        let nov = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap().timestamp_millis();
        assert_eq!(Month::of(nov).to_string(), "2026-11");
        assert_eq!(
            Month::of(nov).next_start_ms(),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap().timestamp_millis()
        );
        let dec = Utc.with_ymd_and_hms(2026, 12, 31, 12, 0, 0).unwrap().timestamp_millis();
        assert_eq!(
            Month::of(dec).next_start_ms(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap().timestamp_millis()
        );
    }
}

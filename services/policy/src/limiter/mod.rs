//! The per-key per-minute limit: a sliding-window log, so that "at most N requests in any 60-second
//! window" holds literally (a fixed window admits 2N across a boundary, GCRA with burst N admits
//! 2N−1). The log keeps one timestamp per admitted request, at most N per key.
//!
//! Two implementations of one trait, checked by one conformance suite (`tests/limiter.rs`):
//! [`MemoryLimiter`] for the all-in-one mode, [`RedisLimiter`] for replicas sharing Redis.

mod memory;
mod redis;

pub use self::memory::{Clock, ManualClock, MemoryLimiter, SystemClock};
pub use self::redis::RedisLimiter;

use common::Result;

/// Length of the sliding window.
pub const WINDOW_MS: i64 = 60_000;

/// The outcome of one attempt to take a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    /// Slots left in the window after this decision.
    pub remaining: u32,
    /// When the oldest request leaves the window and a slot frees (unix ms); `now` when the
    /// window is empty.
    pub reset_at_ms: i64,
    /// The limiter's clock at the decision.
    pub now_ms: i64,
}

impl RateDecision {
    /// Milliseconds until a request would be allowed.
    pub fn retry_after_ms(&self) -> u64 {
        if self.allowed { 0 } else { (self.reset_at_ms - self.now_ms).max(0) as u64 }
    }
}

#[async_trait::async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Takes a slot for `key` if fewer than `limit` were taken in the last window. The limit
    /// is passed on every call so that a plan change applies to the very next request.
    async fn acquire(&self, key: &str, limit: u32) -> Result<RateDecision>;
}

/// The decision for a log of timestamps already trimmed to the window, shared by both
/// implementations so that they cannot disagree.
pub(crate) fn decide(oldest: Option<i64>, count: u32, limit: u32, now: i64) -> RateDecision {
    let allowed = count < limit;
    let after = if allowed { count + 1 } else { count };
    RateDecision {
        allowed,
        limit,
        remaining: limit.saturating_sub(after),
        reset_at_ms: oldest.unwrap_or(now) + WINDOW_MS,
        now_ms: now,
    }
}

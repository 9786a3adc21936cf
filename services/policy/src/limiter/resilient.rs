//! Redis with a way out. Calls to Redis have short timeouts; after a few failures in a row a
//! circuit breaker opens and decisions are made in-process, each replica allowing its share of
//! the limit (the limit divided by the replicas last seen alive), so that an outage is never
//! unlimited and never a hang. Half a second later Redis is tried again.
//!
//! A call that fails before the breaker is open is a 503: it may have been a moment's delay,
//! not an outage, and deciding it in-process would give the key a window of its own beside the
//! one Redis keeps. Once the breaker is open, every decision is made in-process, a failed try
//! of Redis included, so that one window is in use at a time.
//!
//! While degraded the monthly quota is counted per replica and forgotten afterwards: an outage
//! costs at most some unrecorded requests, never a refusal of a paid request.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use common::time::now_ms;
use common::{ErrorCode, Result};

use super::{Budget, DailyDecision, Limiter, MemoryLimiter, RateDecision, RedisLimiter, Takes};

const FAILURES_TO_OPEN: u32 = 3;
const OPEN_FOR_MS: i64 = 500;
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Slots taken while degraded are named so, to be given back to the right limiter.
const LOCAL: &str = "local:";

static DEGRADED_GAUGE: std::sync::OnceLock<opentelemetry::metrics::ObservableGauge<u64>> = std::sync::OnceLock::new();

pub struct ResilientLimiter {
    redis: RedisLimiter,
    local: MemoryLimiter,
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    degraded: AtomicBool,
    /// Policy replicas seen alive at the last heartbeat; kept through an outage.
    replicas: AtomicU32,
}

impl ResilientLimiter {
    /// Starts the replica heartbeat, which stops when the limiter is dropped.
    pub fn new(redis: RedisLimiter) -> Arc<Self> {
        let limiter = Arc::new(ResilientLimiter {
            redis,
            local: MemoryLimiter::default(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
            degraded: AtomicBool::new(false),
            replicas: AtomicU32::new(1),
        });
        let weak: Weak<ResilientLimiter> = Arc::downgrade(&limiter);
        let observed = weak.clone();
        let gauge = opentelemetry::global::meter("zenovay-policy")
            .u64_observable_gauge("zenovay.ratelimit.degraded")
            .with_description("1 while rate limits are decided in-process because Redis is unavailable")
            .with_callback(move |observer| {
                if let Some(limiter) = observed.upgrade() {
                    observer.observe(u64::from(limiter.is_degraded()), &[]);
                }
            })
            .build();
        // One limiter per process: the gauge lives as long as the process.
        let _ = DEGRADED_GAUGE.set(gauge);
        let replica = uuid::Uuid::new_v4().to_string();
        // Once, as soon as Redis answers: the counts an older release left (a scan of the keys,
        // apart from the heartbeat, which it must not hold up).
        let folding = weak.clone();
        tokio::spawn(async move {
            while let Some(limiter) = folding.upgrade() {
                if let Ok(months) = limiter.redis.fold_untagged_months().await {
                    if months > 0 {
                        tracing::info!(months, "monthly counts kept under an older release's names carried over");
                    }
                    return;
                }
                drop(limiter);
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
        tokio::spawn(async move {
            while let Some(limiter) = weak.upgrade() {
                if let Ok(alive) = limiter.redis.heartbeat(&replica).await {
                    limiter.replicas.store(alive.max(1), Ordering::Relaxed);
                }
                drop(limiter);
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
        limiter
    }

    /// Whether decisions are being made in-process right now.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn redis_closed(&self) -> bool {
        now_ms() >= self.open_until_ms.load(Ordering::Relaxed)
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::warn!(ratelimit_degraded = false, "Redis is back; rate limits are shared again");
        }
    }

    fn failed(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_TO_OPEN {
            self.open_until_ms.store(now_ms() + OPEN_FOR_MS, Ordering::Relaxed);
            if !self.degraded.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    ratelimit_degraded = true,
                    replicas = self.replicas.load(Ordering::Relaxed),
                    "Redis unavailable; each replica now allows its share of every limit"
                );
            }
        }
    }

    /// This replica's share of a budget, for decisions made in-process.
    fn share<'a>(&self, budget: &Budget<'a>) -> Budget<'a> {
        let replicas = self.replicas.load(Ordering::Relaxed).max(1);
        // At least one request per replica, except for a budget of none (no API access).
        Budget { per_minute: (budget.per_minute / replicas).max(budget.per_minute.min(1)), ..*budget }
    }

    /// Runs a Redis call unless the breaker is open; `None` means: decide in-process.
    async fn shared<T>(&self, call: impl Future<Output = Result<T>>) -> Result<Option<T>> {
        if !self.redis_closed() {
            return Ok(None);
        }
        match call.await {
            Ok(value) => {
                self.succeeded();
                Ok(Some(value))
            }
            Err(e) if e.code == ErrorCode::ServiceUnavailable => {
                let degraded = self.is_degraded();
                self.failed();
                if degraded { Ok(None) } else { Err(e) }
            }
            Err(e) => Err(e),
        }
    }
}

/// A decision made in-process, named so.
fn degraded(mut decision: RateDecision) -> RateDecision {
    decision.slot = decision.slot.map(|slot| format!("{LOCAL}{slot}"));
    decision.degraded = true;
    decision
}

#[async_trait::async_trait]
impl Limiter for ResilientLimiter {
    async fn acquire(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        match self.shared(self.redis.acquire(budget)).await? {
            Some(decision) => Ok(decision),
            None => Ok(degraded(self.local.acquire(&self.share(budget)).await?)),
        }
    }

    async fn acquire_many(&self, takes: &Takes<'_>) -> Result<Vec<RateDecision>> {
        match self.shared(self.redis.acquire_many(takes)).await? {
            Some(decisions) => Ok(decisions),
            None => {
                let shares = takes.with_per_minute(|budget| self.share(budget).per_minute);
                Ok(self.local.acquire_many(&shares).await?.into_iter().map(degraded).collect())
            }
        }
    }

    async fn peek(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        match self.shared(self.redis.peek(budget)).await? {
            Some(decision) => Ok(decision),
            None => Ok(degraded(self.local.peek(&self.share(budget)).await?)),
        }
    }

    async fn take_daily(&self, user: &str, per_day: u32) -> Result<DailyDecision> {
        match self.shared(self.redis.take_daily(user, per_day)).await? {
            Some(decision) => Ok(decision),
            None => self.local.take_daily(user, per_day).await,
        }
    }

    async fn give_back_daily(&self, user: &str, reset_at_ms: i64) -> Result<()> {
        match self.shared(self.redis.give_back_daily(user, reset_at_ms)).await? {
            Some(()) => Ok(()),
            None => self.local.give_back_daily(user, reset_at_ms).await,
        }
    }

    async fn release(&self, budget: &Budget<'_>, slot: &str) -> Result<()> {
        match slot.strip_prefix(LOCAL) {
            Some(local) => self.local.release(budget, local).await,
            None => self.redis.release(budget, slot).await,
        }
    }
}

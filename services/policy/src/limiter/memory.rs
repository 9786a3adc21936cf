use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Result;

use super::{Limiter, RateDecision, WINDOW_MS, decide};

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        common::time::now_ms()
    }
}

/// A clock tests move by hand, to cross window boundaries without waiting.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// In-process sliding-window log.
pub struct MemoryLimiter<C = SystemClock> {
    clock: C,
    logs: Mutex<HashMap<String, VecDeque<i64>>>,
    calls: AtomicU64,
}

/// How often the whole map is swept of idle keys, in calls.
const SWEEP_EVERY: u64 = 10_000;

impl Default for MemoryLimiter<SystemClock> {
    fn default() -> Self {
        MemoryLimiter::with_clock(SystemClock)
    }
}

impl<C: Clock> MemoryLimiter<C> {
    pub fn with_clock(clock: C) -> Self {
        MemoryLimiter { clock, logs: Mutex::default(), calls: AtomicU64::new(0) }
    }
}

#[async_trait::async_trait]
impl<C: Clock> Limiter for MemoryLimiter<C> {
    async fn acquire(&self, key: &str, limit: u32) -> Result<RateDecision> {
        let now = self.clock.now_ms();
        let mut logs = self.logs.lock().expect("limiter lock poisoned");
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            logs.retain(|_, log| log.back().is_some_and(|&last| last > now - WINDOW_MS));
        }
        let log = logs.entry(key.to_owned()).or_default();
        while log.front().is_some_and(|&t| t <= now - WINDOW_MS) {
            log.pop_front();
        }
        let decision = decide(log.front().copied(), log.len() as u32, limit, now);
        if decision.allowed {
            log.push_back(now);
        }
        Ok(decision)
    }
}

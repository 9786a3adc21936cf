use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Result;

use super::{Budget, DailyDecision, Limiter, Month, Observed, RateDecision, WINDOW_MS, day_of, decide, decide_daily};

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        common::time::now_ms()
    }
}

/// A clock tests move by hand, to cross window and month boundaries without waiting.
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

#[derive(Default)]
struct State {
    /// Per key: (timestamp, slot id) of each request in the window.
    windows: HashMap<String, VecDeque<(i64, u64)>>,
    /// Per user: the month counted and its requests so far; a new month starts from 0.
    months: HashMap<String, (Month, u64)>,
    /// Per (user, UTC day): MCP tool calls so far.
    days: HashMap<(String, String), u32>,
}

/// In-process sliding-window log and monthly counters.
pub struct MemoryLimiter<C = SystemClock> {
    clock: C,
    state: Mutex<State>,
    next_slot: AtomicU64,
}

/// How often the whole state is swept of idle keys, in calls.
const SWEEP_EVERY: u64 = 10_000;

impl Default for MemoryLimiter<SystemClock> {
    fn default() -> Self {
        MemoryLimiter::with_clock(SystemClock)
    }
}

impl<C: Clock> MemoryLimiter<C> {
    pub fn with_clock(clock: C) -> Self {
        MemoryLimiter { clock, state: Mutex::default(), next_slot: AtomicU64::new(0) }
    }

    fn decide(&self, budget: &Budget<'_>, take: bool) -> RateDecision {
        let now = self.clock.now_ms();
        let month = Month::of(now);
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock().expect("limiter lock poisoned");
        if slot % SWEEP_EVERY == SWEEP_EVERY - 1 {
            state.windows.retain(|_, log| log.back().is_some_and(|&(last, _)| last > now - WINDOW_MS));
            state.months.retain(|_, (m, _)| *m == month);
            let today = day_of(now).0;
            state.days.retain(|(_, d), _| *d == today);
        }
        let State { windows, months, .. } = &mut *state;
        let counted = months.get_mut(budget.user).filter(|(m, _)| *m == month);
        let month_used = counted.as_ref().map_or(0, |(_, used)| *used);
        // Looked up by reference first: a key is copied once, when its window starts.
        if !windows.contains_key(budget.key) {
            windows.insert(budget.key.to_owned(), VecDeque::new());
        }
        let log = windows.get_mut(budget.key).expect("inserted above");
        while log.front().is_some_and(|&(t, _)| t <= now - WINDOW_MS) {
            log.pop_front();
        }
        let seen = Observed { count: log.len() as u32, oldest: log.front().map(|&(t, _)| t), month_used, now };
        let mut decision = decide(&seen, budget, take);
        if take && decision.allowed() {
            log.push_back((now, slot));
            match counted {
                Some((_, used)) => *used += 1,
                None => {
                    months.insert(budget.user.to_owned(), (month, 1));
                }
            }
            decision.slot = Some(slot.to_string());
        }
        decision
    }
}

#[async_trait::async_trait]
impl<C: Clock> Limiter for MemoryLimiter<C> {
    async fn acquire(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        Ok(self.decide(budget, true))
    }

    async fn peek(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        Ok(self.decide(budget, false))
    }

    async fn take_daily(&self, user: &str, per_day: u32) -> Result<DailyDecision> {
        let (day, reset_at_ms) = day_of(self.clock.now_ms());
        let mut state = self.state.lock().expect("limiter lock poisoned");
        let used = state.days.entry((user.to_owned(), day)).or_default();
        let decision = decide_daily(*used, per_day, reset_at_ms);
        *used = decision.used;
        Ok(decision)
    }

    async fn release(&self, budget: &Budget<'_>, slot: &str) -> Result<()> {
        let Ok(slot) = slot.parse::<u64>() else { return Ok(()) };
        let mut state = self.state.lock().expect("limiter lock poisoned");
        let Some(log) = state.windows.get_mut(budget.key) else { return Ok(()) };
        let Some(position) = log.iter().position(|&(_, s)| s == slot) else { return Ok(()) };
        let (at, _) = log.remove(position).expect("position is in range");
        if let Some((month, used)) = state.months.get_mut(budget.user)
            && *month == Month::of(at)
        {
            *used = used.saturating_sub(1);
        }
        Ok(())
    }
}

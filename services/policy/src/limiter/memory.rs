use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Result;
use serde::{Deserialize, Serialize};

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
    /// Counts the changes of `state` that its kept copy must hold (README, "API keys, access
    /// and limits").
    generation: AtomicU64,
}

/// What the in-process limiter keeps across a restart, in its service's database: each key's
/// window, each user's month and MCP day. A window's entries are counted by second, each at
/// the last millisecond of its second, so that a restored entry leaves the window no earlier
/// than the request it stands for would have, and the copy stays at most 60 numbers per key
/// whatever the limit.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Per key: (millisecond, entries) of its window, oldest first.
    windows: Vec<(String, Vec<(i64, u32)>)>,
    /// Per user: year, month, and the requests counted in it.
    months: Vec<(String, i32, u32, u64)>,
    /// Per user and UTC day (`YYYY-MM-DD`): MCP tool calls.
    days: Vec<(String, String, u32)>,
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
        MemoryLimiter { clock, state: Mutex::default(), next_slot: AtomicU64::new(0), generation: AtomicU64::new(0) }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
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
            self.changed();
        }
        decision
    }
}

#[async_trait::async_trait]
impl<C: Clock> Limiter for MemoryLimiter<C> {
    /// The state to keep, with its generation, unless it is still `generation`.
    fn kept_since(&self, generation: u64) -> Option<(u64, Kept)> {
        let now = self.clock.now_ms();
        let state = self.state.lock().expect("limiter lock poisoned");
        let current = self.generation.load(Ordering::Relaxed);
        if current == generation {
            return None;
        }
        let mut windows = Vec::new();
        for (key, log) in &state.windows {
            // A log is in time order: each second's entries are found by bisection, so the copy
            // costs the lock about 61 searches per key, not a pass over every entry of a limit
            // an operator lifted.
            let mut seconds: Vec<(i64, u32)> = Vec::new();
            let mut from = log.partition_point(|&(at, _)| at <= now - WINDOW_MS);
            while from < log.len() {
                let last_ms = log[from].0.div_euclid(1000) * 1000 + 999;
                // At least one entry a step, should a clock step back have left the log unsorted.
                let to = log.partition_point(|&(at, _)| at <= last_ms).max(from + 1);
                seconds.push((last_ms, (to - from) as u32));
                from = to;
            }
            if !seconds.is_empty() {
                windows.push((key.clone(), seconds));
            }
        }
        let months = state.months.iter().map(|(user, (m, used))| (user.clone(), m.year, m.month, *used)).collect();
        let days = state.days.iter().map(|((user, day), calls)| (user.clone(), day.clone(), *calls)).collect();
        Some((current, Kept { windows, months, days }))
    }

    /// Takes back a kept state, before the first decision: the window entries still within a
    /// minute, this month's counts and today's.
    fn restore(&self, kept: Kept) {
        let now = self.clock.now_ms();
        let (month, today) = (Month::of(now), day_of(now).0);
        let mut state = self.state.lock().expect("limiter lock poisoned");
        for (key, seconds) in kept.windows {
            let log = state.windows.entry(key).or_default();
            for (at, count) in seconds.into_iter().filter(|&(at, _)| at > now - WINDOW_MS) {
                for _ in 0..count {
                    log.push_back((at, self.next_slot.fetch_add(1, Ordering::Relaxed)));
                }
            }
        }
        for (user, year, m, used) in kept.months {
            if (Month { year, month: m }) == month {
                state.months.insert(user, (month, used));
            }
        }
        for (user, day, calls) in kept.days.into_iter().filter(|(_, day, _)| *day == today) {
            state.days.insert((user, day), calls);
        }
    }

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
        self.changed();
        Ok(decision)
    }

    async fn give_back_daily(&self, user: &str, reset_at_ms: i64) -> Result<()> {
        let (day, _) = day_of(reset_at_ms - 1);
        let mut state = self.state.lock().expect("limiter lock poisoned");
        if let Some(used) = state.days.get_mut(&(user.to_owned(), day)) {
            *used = used.saturating_sub(1);
            self.changed();
        }
        Ok(())
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
        self.changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Budget<'static> = Budget { key: "k", per_minute: 3, user: "u", per_month: 5 };

    #[tokio::test]
    async fn a_kept_window_holds_each_entry_until_the_end_of_its_second_a_minute_later() {
        let clock = ManualClock::at(1_800_000_000_200);
        let before = MemoryLimiter::with_clock(clock.clone());
        for _ in 0..3 {
            assert!(before.acquire(&BUDGET).await.unwrap().allowed());
        }
        let (generation, kept) = before.kept_since(0).expect("changed");
        assert!(before.kept_since(generation).is_none(), "unchanged since");
        let after = MemoryLimiter::with_clock(clock.clone());
        after.restore(serde_json::from_str(&serde_json::to_string(&kept).unwrap()).unwrap());
        let refused = after.peek(&BUDGET).await.unwrap();
        assert_eq!((refused.remaining, refused.month_used), (0, 3));
        clock.advance(WINDOW_MS - 200);
        assert_eq!(after.peek(&BUDGET).await.unwrap().remaining, 0, "the second's last millisecond counts");
        clock.advance(998);
        assert_eq!(after.peek(&BUDGET).await.unwrap().remaining, 0);
        clock.advance(1);
        assert_eq!(after.peek(&BUDGET).await.unwrap().remaining, 3);
    }

    #[tokio::test]
    async fn a_kept_window_counts_its_entries_by_second() {
        let clock = ManualClock::at(1_800_000_000_200);
        let limiter = MemoryLimiter::with_clock(clock.clone());
        let budget = Budget { per_minute: 10, ..BUDGET };
        for step in [0, 1_000, 100, 1_700, 58_000] {
            clock.advance(step);
            assert!(limiter.acquire(&budget).await.unwrap().allowed());
        }
        let (_, kept) = limiter.kept_since(0).expect("changed");
        let expected = vec![(1_800_000_001_999, 2), (1_800_000_003_999, 1), (1_800_000_061_999, 1)];
        assert_eq!(kept.windows, vec![("k".to_owned(), expected)], "the first entry left the window");
    }
}

//! What a process read from its store or from another service (policy's team settings, a
//! gateway's website lists), kept until a change notification says it may be stale:
//! the rules of the gateway's key cache (ARCHITECTURE.md, "Change notifications") for services,
//! so that a decision on the hot path reads no database while every replica still sees a change
//! within a second (docs/behaviour.md#effective-access).
//! - a notice evicts the entries it names (the service says which, by [`Evicts`]);
//! - every notice bumps a generation, and a read that started before it cannot insert its
//!   (possibly stale) answer afterwards;
//! - while the channel is down the cache is neither read nor written, and it is emptied;
//! - no entry serves longer than [`TTL`] after the read that found it began, in case a
//!   notification is lost unnoticed (a failed publish, a write by a process that announces
//!   nothing, such as an operator command on SQLite), and a read never replaces one that began
//!   after it;
//! - past its refresh age ([`refresh_age`], at most [`REFRESH_AFTER`]) an entry still serves,
//!   and the first lookup to find it is asked to read it again without waiting
//!   ([`Cached::Refresh`]), so that an entry in steady use is normally replaced before it
//!   expires and no request waits for the store once a second. The price: an entry in steady
//!   use is read about 1.3 times a second instead of once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::bus::{Change, ChangeBus, Notice};

/// How long an entry may serve at most.
pub const TTL: Duration = Duration::from_secs(1);
/// The age by which an entry is read again in the background: at least 150 ms of its life left
/// for the read, which takes a millisecond or two.
pub const REFRESH_AFTER: Duration = Duration::from_millis(850);
/// How much earlier than [`REFRESH_AFTER`] an entry may be read again, at random ([`refresh_age`]).
pub const REFRESH_SPREAD: Duration = Duration::from_millis(200);

/// The age from which a new entry is read again: a random one between `REFRESH_AFTER -
/// REFRESH_SPREAD` and `REFRESH_AFTER`, 750 ms on average. At one fixed age, entries found
/// together (keys first used at once, a cache filled again after its channel came back) were
/// read again together every time, and their reads took the cores at once: with 32 keys in use
/// the gateway's slowest requests waited 9–14 ms behind them (README, "The
/// authorized request"). A random age spreads them apart from the first refresh on. The price:
/// an entry due late leaves a lookup 150 ms to find it before it expires, where 250 ms were
/// always left, so an entry used a few times a second is sometimes read by a request that waits.
pub fn refresh_age() -> Duration {
    REFRESH_AFTER - REFRESH_SPREAD.mul_f64(rand::random::<f64>())
}

/// A read of the store that may fill the cache: the generation it began at, and when.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    pub generation: u64,
    pub started: Instant,
}

impl Read {
    /// A read beginning now, at `generation`.
    pub fn now(generation: u64) -> Read {
        Read { generation, started: Instant::now() }
    }
}

/// Logs a background refresh that failed, whose error no request answers; the entry it was to
/// replace expires as if no refresh had been asked.
pub fn refresh_failed(error: &crate::Error) {
    tracing::warn!(code = error.code.as_str(), "a cache refresh failed");
    error.log_cause();
}

/// Whether a change makes the entry of this id stale.
pub type Evicts<V> = fn(&Change, &str, &V) -> bool;

struct State<V> {
    trusted: bool,
    generation: u64,
    entries: HashMap<String, Entry<V>>,
}

struct Entry<V> {
    value: V,
    /// When the read that found it began.
    at: Instant,
    /// From this age ([`refresh_age`]) it is read again.
    refresh: Duration,
    /// A lookup past `refresh` was asked to refresh it: no other is. A refresh that fails or
    /// that a notice overtakes leaves the entry to expire at [`TTL`].
    refreshing: bool,
}

pub struct NoticeCache<V> {
    state: Mutex<State<V>>,
    evicts: Evicts<V>,
    /// Past this many entries the cache starts again empty: a bound on memory that costs one
    /// store read per entry when it is reached.
    capacity: usize,
}

/// What a lookup found: every value asked for, or the read to insert a fresh answer with.
pub enum Cached<V> {
    /// Every value, and when the read that found the oldest of them began.
    All(Vec<V>, Instant),
    /// Every value and the oldest one's read, as `All`, to serve now; some are past their
    /// refresh age: read them all again without waiting, and `insert` with this read. Only the
    /// first lookup to find an entry due is asked.
    Refresh(Vec<V>, Instant, Read),
    /// Some are missing; read them and `insert` with this read.
    Miss(Read),
    /// The channel is down: read the store and keep nothing.
    Untrusted,
}

/// A lookup's result, as the caches' metrics count it (`*_cache.lookups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupResult {
    Hit,
    Refresh,
    Miss,
    Untrusted,
}

impl LookupResult {
    /// The metrics' names of the results.
    pub const NAMES: &[&str] = &[Self::Hit.name(), Self::Refresh.name(), Self::Miss.name(), Self::Untrusted.name()];

    pub const fn name(self) -> &'static str {
        match self {
            LookupResult::Hit => "hit",
            LookupResult::Refresh => "refresh",
            LookupResult::Miss => "miss",
            LookupResult::Untrusted => "untrusted",
        }
    }
}

impl<V> Cached<V> {
    /// The lookup's result, as the caches' metrics count it.
    pub fn result(&self) -> LookupResult {
        match self {
            Cached::All(..) => LookupResult::Hit,
            Cached::Refresh(..) => LookupResult::Refresh,
            Cached::Miss(_) => LookupResult::Miss,
            Cached::Untrusted => LookupResult::Untrusted,
        }
    }
}

impl<V: Clone + Send + 'static> NoticeCache<V> {
    /// A cache that follows `bus` for as long as the cache lives.
    pub fn follow(bus: &dyn ChangeBus, capacity: usize, evicts: Evicts<V>) -> Arc<NoticeCache<V>> {
        let cache = Arc::new(NoticeCache::new(capacity, evicts));
        let mut notices = bus.subscribe();
        let weak: Weak<NoticeCache<V>> = Arc::downgrade(&cache);
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                let Some(cache) = weak.upgrade() else { return };
                cache.apply(&notice);
            }
        });
        cache
    }

    /// A cache that trusts nothing until told `Connected`.
    fn new(capacity: usize, evicts: Evicts<V>) -> NoticeCache<V> {
        let state = State { trusted: false, generation: 0, entries: HashMap::new() };
        NoticeCache { state: Mutex::new(state), evicts, capacity }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<V>> {
        self.state.lock().expect("cache lock poisoned")
    }

    /// The values of `ids`, in their order, when every one is cached and fresh.
    pub fn get(&self, ids: &[String]) -> Cached<V> {
        let mut state = self.state();
        if !state.trusted {
            return Cached::Untrusted;
        }
        let mut all = Vec::with_capacity(ids.len());
        let mut refresh = false;
        let now = Instant::now();
        let mut oldest = now;
        for id in ids {
            let Some(entry) = state.entries.get(id) else { return Cached::Miss(Read::now(state.generation)) };
            let age = now.saturating_duration_since(entry.at);
            if age >= TTL {
                return Cached::Miss(Read::now(state.generation));
            }
            refresh |= age >= entry.refresh && !entry.refreshing;
            oldest = oldest.min(entry.at);
            all.push(entry.value.clone());
        }
        if !refresh {
            return Cached::All(all, oldest);
        }
        for id in ids {
            if let Some(entry) = state.entries.get_mut(id) {
                entry.refreshing = true;
            }
        }
        Cached::Refresh(all, oldest, Read::now(state.generation))
    }

    /// Keeps what `read` found, unless a notice came since it began; an entry that a later read
    /// found stays.
    pub fn insert(&self, read: Read, entries: impl IntoIterator<Item = (String, V)>) {
        let mut state = self.state();
        if !state.trusted || state.generation != read.generation {
            return;
        }
        // One age for what one read found: those entries are read again together anyway, as a
        // lookup that finds one of them due refreshes all it asked for.
        let refresh = refresh_age();
        for (id, value) in entries {
            if state.entries.get(&id).is_some_and(|entry| entry.at > read.started) {
                continue;
            }
            if state.entries.len() >= self.capacity {
                state.entries.clear();
            }
            state.entries.insert(id, Entry { value, at: read.started, refresh, refreshing: false });
        }
    }

    /// The values of `ids`, in their order, and when the read of the store behind the oldest of
    /// them began: from `cache` while it holds them all, else from `read`, whose answer the
    /// cache keeps when it may. `read` is given ids and answers a value for each. An entry past
    /// its refresh age still serves, and `read` runs in the background to replace it; a
    /// background read that fails is logged and leaves its entries to expire, so that the first
    /// lookup after that reads itself and answers the error. Without a cache (a process that
    /// hears no change notifications) every lookup reads, as while the channel is down.
    /// `counted` learns what each lookup found, for the cache's metrics.
    pub async fn read_through<F, Fut>(
        cache: Option<&Arc<Self>>,
        ids: &[String],
        counted: fn(LookupResult),
        read: F,
    ) -> crate::Result<Found<V>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = crate::Result<Vec<(String, V)>>> + Send + 'static,
    {
        let cached = cache.map_or(Cached::Untrusted, |cache| cache.get(ids));
        counted(cached.result());
        match (cached, cache) {
            (Cached::All(values, since), _) => Ok(Found { values, since }),
            (Cached::Refresh(values, since, started), Some(cache)) => {
                let (cache, answer) = (cache.clone(), read(ids.to_vec()));
                let refresh = async move {
                    match answer.await {
                        Ok(found) => cache.insert(started, found),
                        Err(error) => refresh_failed(&error),
                    }
                };
                tokio::spawn(tracing::Instrument::instrument(refresh, tracing::info_span!("cache.refresh")));
                Ok(Found { values, since })
            }
            (Cached::Miss(started), Some(cache)) => {
                let found = read(ids.to_vec()).await?;
                let values = in_order(ids, &found)?;
                cache.insert(started, found);
                Ok(Found { values, since: started.started })
            }
            // Untrusted; a refresh or a miss comes only from a cache.
            _ => {
                let since = Instant::now();
                Ok(Found { values: in_order(ids, &read(ids.to_vec()).await?)?, since })
            }
        }
    }

    /// Applies a change this replica made itself, without waiting for its notification.
    pub fn forget(&self, change: Change) {
        self.apply(&Notice::Change(change));
    }

    fn apply(&self, notice: &Notice) {
        let mut state = self.state();
        state.generation += 1;
        match notice {
            Notice::Connected => state.trusted = true,
            Notice::Lost => {
                state.trusted = false;
                state.entries.clear();
            }
            Notice::Change(change) => {
                let evicts = self.evicts;
                state.entries.retain(|id, entry| !evicts(change, id, &entry.value));
            }
        }
    }
}

/// Values a lookup found, and when the read of the store behind the oldest of them began: a
/// second before now at most, for what a cache serves.
#[derive(Debug)]
pub struct Found<V> {
    pub values: Vec<V>,
    pub since: Instant,
}

/// The values of `ids` in their order, from what a read found.
fn in_order<V: Clone>(ids: &[String], found: &[(String, V)]) -> crate::Result<Vec<V>> {
    let by_id: HashMap<&str, &V> = found.iter().map(|(id, value)| (id.as_str(), value)).collect();
    ids.iter()
        .map(|id| by_id.get(id.as_str()).map(|value| (*value).clone()))
        .collect::<Option<Vec<V>>>()
        .ok_or_else(|| crate::Error::internal("a read answered no value for an id asked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_team(change: &Change, id: &str, _: &u32) -> bool {
        matches!(change, Change::Team(team) if team == id)
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn connected() -> NoticeCache<u32> {
        let cache = NoticeCache::new(10, by_team);
        cache.apply(&Notice::Connected);
        cache
    }

    #[test]
    fn a_change_evicts_what_it_names_and_nothing_else() {
        let cache = connected();
        let Cached::Miss(read) = cache.get(&ids(&["a", "b"])) else { panic!("trusted and empty") };
        cache.insert(read, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
        assert!(matches!(cache.get(&ids(&["b", "a"])), Cached::All(v, _) if v == [2, 1]));
        cache.apply(&Notice::Change(Change::Team("a".into())));
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Miss(_)));
        assert!(matches!(cache.get(&ids(&["b"])), Cached::All(..)));
    }

    #[test]
    fn a_read_that_started_before_a_change_cannot_insert_after_it() {
        let cache = connected();
        let Cached::Miss(read) = cache.get(&ids(&["a"])) else { panic!("trusted and empty") };
        cache.apply(&Notice::Change(Change::Key("unrelated".into())));
        cache.insert(read, [("a".to_owned(), 1)]);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Miss(_)));
    }

    #[test]
    fn a_lost_channel_empties_and_disables_the_cache_until_it_is_back() {
        let cache = NoticeCache::new(10, by_team);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Untrusted), "untrusted before the first Connected");
        cache.apply(&Notice::Connected);
        let Cached::Miss(read) = cache.get(&ids(&["a"])) else { panic!() };
        cache.insert(read, [("a".to_owned(), 1)]);
        cache.apply(&Notice::Lost);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Untrusted));
        cache.apply(&Notice::Connected);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Miss(_)), "emptied while lost");
    }

    fn age(cache: &NoticeCache<u32>, id: &str, by: Duration) {
        cache.state().entries.get_mut(id).expect("cached").at -= by;
    }

    #[test]
    fn an_entry_due_asks_one_lookup_to_read_it_again_and_keeps_serving() {
        let cache = connected();
        let Cached::Miss(read) = cache.get(&ids(&["a", "b"])) else { panic!() };
        cache.insert(read, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
        age(&cache, "b", REFRESH_AFTER);
        let Cached::Refresh(values, _, read) = cache.get(&ids(&["a", "b"])) else { panic!("b is due") };
        assert_eq!(values, [1, 2], "served while it is refreshed");
        assert!(matches!(cache.get(&ids(&["b"])), Cached::All(v, _) if v == [2]), "one refresh at a time");
        cache.insert(read, [("a".to_owned(), 1), ("b".to_owned(), 3)]);
        // Due again, where the entry it replaced would have expired.
        age(&cache, "b", REFRESH_AFTER);
        assert!(matches!(cache.get(&ids(&["b"])), Cached::Refresh(v, ..) if v == [3]), "the refreshed entry lives on");
    }

    #[test]
    fn entries_of_reads_made_together_are_read_again_at_different_ages_within_the_spread() {
        let cache = connected();
        for id in 0..32 {
            let id = id.to_string();
            let Cached::Miss(read) = cache.get(std::slice::from_ref(&id)) else { panic!() };
            cache.insert(read, [(id, 1)]);
        }
        let ages: Vec<Duration> = cache.state().entries.values().map(|entry| entry.refresh).collect();
        assert!(ages.iter().all(|age| (REFRESH_AFTER - REFRESH_SPREAD..=REFRESH_AFTER).contains(age)), "{ages:?}");
        assert!(ages.iter().any(|age| *age != ages[0]), "32 entries drew one age: {ages:?}");
    }

    #[test]
    fn an_entry_whose_refresh_never_lands_expires_as_before() {
        let cache = connected();
        let Cached::Miss(read) = cache.get(&ids(&["a"])) else { panic!() };
        cache.insert(read, [("a".to_owned(), 1)]);
        age(&cache, "a", REFRESH_AFTER);
        let Cached::Refresh(_, _, read) = cache.get(&ids(&["a"])) else { panic!("a is due") };
        cache.apply(&Notice::Change(Change::Key("unrelated".into())));
        cache.insert(read, [("a".to_owned(), 2)]);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::All(v, _) if v == [1]), "a late refresh is not kept");
        age(&cache, "a", TTL - REFRESH_AFTER);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Miss(_)));
    }

    #[test]
    fn a_read_never_replaces_what_a_later_read_found() {
        let cache = connected();
        let Cached::Miss(later) = cache.get(&ids(&["a"])) else { panic!() };
        let earlier = Read { started: later.started - Duration::from_millis(1), ..later };
        cache.insert(later, [("a".to_owned(), 2)]);
        cache.insert(earlier, [("a".to_owned(), 1)]);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::All(v, _) if v == [2]));
    }

    #[test]
    fn an_entry_ages_from_when_its_read_began() {
        let cache = connected();
        let Cached::Miss(read) = cache.get(&ids(&["a"])) else { panic!() };
        let slow = Read { started: read.started - TTL, ..read };
        cache.insert(slow, [("a".to_owned(), 1)]);
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Miss(_)), "a read that took a second serves no longer");
    }

    type Answer = futures::future::Ready<crate::Result<Vec<(String, u32)>>>;

    /// A read answering `value` for each id, counting its calls in `reads`.
    fn reading(value: u32, reads: &Arc<std::sync::atomic::AtomicUsize>) -> impl FnOnce(Vec<String>) -> Answer {
        let reads = reads.clone();
        move |ids| {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            futures::future::ready(Ok(ids.into_iter().map(|id| (id, value)).collect()))
        }
    }

    fn uncounted(_: LookupResult) {}

    #[tokio::test]
    async fn read_through_reads_what_it_misses_and_serves_it_from_then_on() {
        let (cache, reads) = (Arc::new(connected()), Arc::default());
        let first =
            NoticeCache::read_through(Some(&cache), &ids(&["a", "b"]), uncounted, reading(1, &reads)).await.unwrap();
        assert_eq!(first.values, [1, 1]);
        let again = NoticeCache::read_through(Some(&cache), &ids(&["b"]), uncounted, reading(2, &reads)).await.unwrap();
        assert_eq!((again.values, reads.load(std::sync::atomic::Ordering::SeqCst)), (vec![1], 1));
        assert_eq!(again.since, first.since, "served as of the read that found it");
    }

    #[tokio::test]
    async fn read_through_serves_a_value_due_and_replaces_it_in_the_background() {
        let (cache, reads) = (Arc::new(connected()), Arc::default());
        NoticeCache::read_through(Some(&cache), &ids(&["a"]), uncounted, reading(1, &reads)).await.unwrap();
        age(&cache, "a", REFRESH_AFTER);
        let due = NoticeCache::read_through(Some(&cache), &ids(&["a"]), uncounted, reading(2, &reads)).await.unwrap();
        assert_eq!(due.values, [1], "served while it is read again");
        assert!(due.since.elapsed() >= REFRESH_AFTER, "as old as it is");
        tokio::task::yield_now().await;
        let refreshed =
            NoticeCache::read_through(Some(&cache), &ids(&["a"]), uncounted, reading(3, &reads)).await.unwrap();
        assert_eq!(refreshed.values, [2]);
    }

    #[tokio::test]
    async fn read_through_keeps_nothing_while_the_channel_is_down() {
        let (cache, reads) = (Arc::new(NoticeCache::new(10, by_team)), Arc::default());
        for value in [1, 2] {
            let read =
                NoticeCache::read_through(Some(&cache), &ids(&["a"]), uncounted, reading(value, &reads)).await.unwrap();
            assert_eq!(read.values, [value]);
        }
    }

    #[tokio::test]
    async fn read_through_answers_a_failed_read_s_error_and_keeps_nothing() {
        let (cache, reads) = (Arc::new(connected()), Arc::default());
        let failing = |_| futures::future::ready(Err::<Vec<(String, u32)>, _>(crate::Error::unavailable("store")));
        let error = NoticeCache::read_through(Some(&cache), &ids(&["a"]), uncounted, failing).await.unwrap_err();
        assert_eq!(error.code, crate::ErrorCode::ServiceUnavailable);
        NoticeCache::read_through(Some(&cache), &ids(&["a"]), uncounted, reading(1, &reads)).await.unwrap();
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1, "the next lookup read again");
    }

    #[tokio::test]
    async fn a_read_answering_no_value_for_an_id_asked_is_an_internal_error() {
        let cache = Arc::new(connected());
        let read = |_| futures::future::ready(Ok(vec![("a".to_owned(), 1)]));
        let error = NoticeCache::read_through(Some(&cache), &ids(&["a", "b"]), uncounted, read).await.unwrap_err();
        assert_eq!(error.code, crate::ErrorCode::Internal);
    }

    #[test]
    fn a_full_cache_starts_again_empty() {
        let cache = NoticeCache::new(2, by_team);
        cache.apply(&Notice::Connected);
        let Cached::Miss(read) = cache.get(&ids(&["a"])) else { panic!() };
        cache.insert(read, [("a".to_owned(), 1), ("b".to_owned(), 2), ("c".to_owned(), 3)]);
        assert!(matches!(cache.get(&ids(&["c"])), Cached::All(..)));
        assert!(matches!(cache.get(&ids(&["a"])), Cached::Miss(_)));
    }
}

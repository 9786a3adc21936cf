//! Verified keys and rate-limit refusals, cached per gateway and evicted by change notifications,
//! and each team's website list (kept by `common::cache`'s rules, used by `flows::websites`).
//!
//! A key over its limit is refused here until the moment a slot frees (known from the log), or
//! for a second at most, with no call to policy or Redis; allowed requests are never cached, so this never lets an extra
//! request through. A plan or policy change drops every cached refusal.
//!
//! Three rules keep the cache from ever serving a revoked key, a lost membership or an outdated
//! refusal for longer than a notification takes to arrive:
//! - a `Key` or `User` change evicts every entry of that key or user;
//! - every notification bumps a generation, and a lookup that started before it cannot insert
//!   its (possibly stale) answer afterwards;
//! - while the notification channel is down the cache is neither read nor written, and it is
//!   emptied, because changes made meanwhile would go unheard.
//!
//! Like `common::cache`, an entry ages from when its verification began, and past its refresh
//! age (`common::cache::refresh_age`, random so that keys used together are not verified again
//! together) it still serves and asks one request to verify its key again without waiting, so
//! that a key in steady use normally never waits for identity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::ErrorCode;
use common::access::Scope;
use common::bus::{Change, ChangeBus, Notice};
use common::cache::{LookupResult, NoticeCache, Read, refresh_age};
use common::secret::Digest;
use proto::analytics::v1 as anpb;
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use serde_json::value::RawValue;

use crate::views;

/// A website as lists hold it: the record, and its JSON in the API's shape, written once when
/// the list is read from analytics rather than for every request that lists it (README,
/// "Instructions per request").
pub struct Listed {
    pub website: anpb::Website,
    pub json: Box<RawValue>,
}

impl Listed {
    pub fn new(website: anpb::Website) -> Arc<Listed> {
        // A website's view is texts only: it always serializes.
        let json = serde_json::value::to_raw_value(&views::website(&website)).expect("a website serializes");
        Arc::new(Listed { website, json })
    }
}

/// A listed website serializes as its JSON, as written when it was listed.
impl serde::Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

/// One team's websites, oldest first.
pub type WebsiteList = Arc<Vec<Arc<Listed>>>;

/// Each team's websites, evicted by `Websites` notices.
pub type WebsiteLists = NoticeCache<WebsiteList>;

/// Teams whose lists one gateway keeps: those asked for in the last second (README, "API keys,
/// access and limits"), under a kilobyte per website with its JSON.
const CACHED_TEAMS: usize = 10_000;

/// Website lists that follow `bus` for as long as they live.
pub fn website_lists(bus: &dyn ChangeBus) -> Arc<WebsiteLists> {
    let evicts = |change: &Change, team_id: &str, _: &WebsiteList| matches!(change, Change::Websites(changed) if changed == team_id);
    NoticeCache::follow(bus, CACHED_TEAMS, evicts)
}

/// How long an entry may serve at most. Notifications evict within milliseconds; this bound keeps
/// the 1-second promise (docs/behaviour.md#effective-access) even if a notification is lost unnoticed by the channel
/// (a failed publish, a half-open connection). About 1.3 identity calls per key in steady use per
/// second per replica is the price (refreshed from `refresh_age`).
const TTL: Duration = Duration::from_secs(1);
/// The same bound for refusals, from when policy's read of the team settings behind the refusal
/// began (policy keeps them up to a second too), so that an upgrade whose notification was lost
/// applies within a second too.
const REFUSAL_TTL_MS: i64 = 1_000;
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone)]
pub struct Verified {
    pub key: idpb::ApiKey,
    pub teams: Vec<idpb::TeamRole>,
}

struct Entry {
    verified: Arc<Verified>,
    /// When the verification that found it began.
    at: Instant,
    /// From this age (`refresh_age`) its key is verified again.
    refresh: Duration,
    /// A lookup past `refresh` was asked to verify the key again: no other is.
    refreshing: bool,
}

/// A refusal (429) of a key whose slot frees at `until_ms` on this gateway's clock.
#[derive(Clone)]
pub struct Refusal {
    pub user_id: String,
    /// The request refused: the scope it needed and the team of its resource. The checks before
    /// the limits (scope, the team's reach) may refuse another request of the key for another
    /// reason, so only a request asking the same is refused from here.
    pub asked: (Scope, Option<String>),
    /// When a slot frees: what `Retry-After` counts down to, however long the cache repeats it.
    pub until_ms: i64,
    pub rate: popb::RateLimit,
    pub code: ErrorCode,
    pub message: String,
    /// When policy's read of the team settings the refusal was decided on began, on this
    /// gateway's clock.
    pub settings_read_ms: i64,
}

#[derive(Default)]
struct State {
    trusted: bool,
    generation: u64,
    entries: HashMap<Digest, Entry>,
    /// By key id, each with when the cache stops repeating it (`refuse`).
    refusals: HashMap<String, (i64, Refusal)>,
}

pub enum Lookup {
    Hit(Arc<Verified>),
    /// Serve this, and verify the key again without waiting: insert with this read.
    Refresh(Arc<Verified>, Read),
    /// Not cached; insert the answer with this read.
    Miss(Read),
    /// The channel is down: ask identity and keep nothing.
    Untrusted,
}

impl Lookup {
    /// The lookup's result, as the cache's metrics count it.
    pub fn result(&self) -> LookupResult {
        match self {
            Lookup::Hit(_) => LookupResult::Hit,
            Lookup::Refresh(..) => LookupResult::Refresh,
            Lookup::Miss(_) => LookupResult::Miss,
            Lookup::Untrusted => LookupResult::Untrusted,
        }
    }
}

pub struct KeyCache {
    state: Mutex<State>,
}

impl KeyCache {
    /// A cache that follows `bus` for as long as the cache lives.
    pub fn follow(bus: &dyn ChangeBus) -> Arc<KeyCache> {
        let cache = Arc::new(KeyCache { state: Mutex::default() });
        let mut notices = bus.subscribe();
        let weak: Weak<KeyCache> = Arc::downgrade(&cache);
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                let Some(cache) = weak.upgrade() else { return };
                cache.apply(notice);
            }
        });
        cache
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("key cache lock poisoned")
    }

    pub fn lookup(&self, digest: &Digest) -> Lookup {
        let mut state = self.state();
        if !state.trusted {
            return Lookup::Untrusted;
        }
        let read = Read::now(state.generation);
        let Some(entry) = state.entries.get_mut(digest) else { return Lookup::Miss(read) };
        let age = entry.at.elapsed();
        if age >= TTL {
            Lookup::Miss(read)
        } else if age >= entry.refresh && !entry.refreshing {
            entry.refreshing = true;
            Lookup::Refresh(entry.verified.clone(), read)
        } else {
            Lookup::Hit(entry.verified.clone())
        }
    }

    /// The generation to pass to `refuse`, when the cache can be trusted.
    pub fn generation(&self) -> Option<u64> {
        let state = self.state();
        state.trusted.then_some(state.generation)
    }

    /// A refusal still standing for this key.
    pub fn refusal(&self, key_id: &str, now_ms: i64) -> Option<Refusal> {
        let mut state = self.state();
        if !state.trusted {
            return None;
        }
        match state.refusals.get(key_id) {
            Some((repeat_until_ms, refusal)) if *repeat_until_ms > now_ms => Some(refusal.clone()),
            Some(_) => {
                state.refusals.remove(key_id);
                None
            }
            None => None,
        }
    }

    pub fn refuse(&self, key_id: &str, generation: u64, refusal: Refusal) {
        let mut state = self.state();
        if !state.trusted || state.generation != generation {
            return;
        }
        if state.refusals.len() >= MAX_ENTRIES {
            state.refusals.clear();
        }
        let repeat_until_ms = refusal.until_ms.min(refusal.settings_read_ms + REFUSAL_TTL_MS);
        if repeat_until_ms <= common::time::now_ms() {
            return;
        }
        state.refusals.insert(key_id.to_owned(), (repeat_until_ms, refusal));
    }

    /// Keeps what `read` found, unless a notice came since it began or a later read's answer is
    /// kept.
    pub fn insert(&self, digest: Digest, read: Read, verified: Arc<Verified>) {
        let mut state = self.state();
        if !state.trusted || state.generation != read.generation {
            return;
        }
        if state.entries.get(&digest).is_some_and(|entry| entry.at > read.started) {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(digest, Entry { verified, at: read.started, refresh: refresh_age(), refreshing: false });
    }

    /// Applies a change this replica made itself, without waiting for its notification.
    pub fn forget(&self, change: Change) {
        self.apply(Notice::Change(change));
    }

    fn apply(&self, notice: Notice) {
        let mut state = self.state();
        state.generation += 1;
        match notice {
            Notice::Connected => state.trusted = true,
            Notice::Lost => {
                state.trusted = false;
                state.entries.clear();
                state.refusals.clear();
            }
            Notice::Change(Change::Key(id)) => {
                state.entries.retain(|_, e| e.verified.key.id != id);
                state.refusals.remove(&id);
            }
            Notice::Change(Change::User(id)) => {
                state.entries.retain(|_, e| e.verified.key.user_id != id);
                state.refusals.retain(|_, (_, r)| r.user_id != id);
            }
            // Limits may have grown: every refusal is re-decided by policy.
            Notice::Change(Change::Team(_)) => state.refusals.clear(),
            // Nothing cached here names websites.
            Notice::Change(Change::Websites(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::bus::MemoryBus;
    use common::cache::REFRESH_AFTER;

    fn verified(key_id: &str, user_id: &str) -> Verified {
        Verified {
            key: idpb::ApiKey { id: key_id.into(), user_id: user_id.into(), ..Default::default() },
            teams: vec![],
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_lookup_that_started_before_a_change_cannot_insert_after_it() {
        let bus = MemoryBus::default();
        let cache = KeyCache::follow(&bus);
        settle().await;
        let digest = Digest::of("a");
        let Lookup::Miss(read) = cache.lookup(&digest) else { panic!("trusted and empty") };
        bus.publish(Change::Key("k".into())).await.unwrap();
        settle().await;
        cache.insert(digest, read, Arc::new(verified("k", "u")));
        assert!(matches!(cache.lookup(&digest), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn changes_evict_by_key_and_by_user() {
        let bus = MemoryBus::default();
        let cache = KeyCache::follow(&bus);
        settle().await;
        for (secret, key, user) in [("a", "k1", "u1"), ("b", "k2", "u1"), ("c", "k3", "u2")] {
            let Lookup::Miss(read) = cache.lookup(&Digest::of(secret)) else { panic!() };
            cache.insert(Digest::of(secret), read, Arc::new(verified(key, user)));
        }
        bus.publish(Change::Key("k3".into())).await.unwrap();
        settle().await;
        assert!(matches!(cache.lookup(&Digest::of("c")), Lookup::Miss(_)));
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Hit(_)));
        bus.publish(Change::User("u1".into())).await.unwrap();
        settle().await;
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Miss(_)));
        assert!(matches!(cache.lookup(&Digest::of("b")), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn a_lost_channel_empties_and_disables_the_cache_until_it_is_back() {
        let cache = Arc::new(KeyCache { state: Mutex::default() });
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Untrusted), "untrusted before the first Connected");
        cache.apply(Notice::Connected);
        let Lookup::Miss(read) = cache.lookup(&Digest::of("a")) else { panic!() };
        cache.insert(Digest::of("a"), read, Arc::new(verified("k", "u")));
        cache.apply(Notice::Lost);
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Untrusted));
        cache.apply(Notice::Connected);
        assert!(matches!(cache.lookup(&Digest::of("a")), Lookup::Miss(_)), "emptied while lost");
    }

    #[tokio::test]
    async fn a_key_due_asks_one_request_to_verify_it_again() {
        let bus = MemoryBus::default();
        let cache = KeyCache::follow(&bus);
        settle().await;
        let digest = Digest::of("a");
        let Lookup::Miss(read) = cache.lookup(&digest) else { panic!("trusted and empty") };
        cache.insert(digest, read, Arc::new(verified("k", "u")));
        cache.state().entries.get_mut(&digest).unwrap().at -= REFRESH_AFTER;
        let Lookup::Refresh(_, read) = cache.lookup(&digest) else { panic!("due") };
        assert!(matches!(cache.lookup(&digest), Lookup::Hit(_)), "one refresh at a time");
        cache.insert(digest, read, Arc::new(verified("k", "u")));
        // Due again, where the entry it replaced would have expired.
        cache.state().entries.get_mut(&digest).unwrap().at -= REFRESH_AFTER;
        assert!(matches!(cache.lookup(&digest), Lookup::Refresh(..)), "the refreshed entry lives on");
    }

    /// A cache whose channel is up, the time now and its generation.
    fn connected() -> (Arc<KeyCache>, i64, u64) {
        let cache = Arc::new(KeyCache { state: Mutex::default() });
        cache.apply(Notice::Connected);
        let generation = cache.generation().unwrap();
        (cache, common::time::now_ms(), generation)
    }

    fn refusal(user: &str) -> Refusal {
        Refusal {
            user_id: user.into(),
            asked: (Scope::Read, None),
            until_ms: common::time::now_ms() + 500,
            rate: Default::default(),
            code: ErrorCode::RateLimitExceeded,
            message: "m".into(),
            settings_read_ms: common::time::now_ms(),
        }
    }

    #[test]
    fn refusals_last_until_a_slot_frees_and_plan_changes_drop_them() {
        let (cache, now, generation) = connected();
        cache.refuse("k", generation, Refusal { until_ms: now + 500, ..refusal("u") });
        assert!(cache.refusal("k", now + 499).is_some());
        assert!(cache.refusal("k", now + 500).is_none(), "the slot is free at until_ms");
        cache.refuse("k", generation, refusal("u"));
        cache.apply(Notice::Change(Change::Team("any".into())));
        assert!(cache.refusal("k", 0).is_none(), "limits may have grown");
        let stale = cache.generation().unwrap() - 1;
        cache.refuse("k", stale, refusal("u"));
        assert!(cache.refusal("k", 0).is_none(), "a decision older than a change is not kept");
        let generation = cache.generation().unwrap();
        cache.refuse("k", generation, Refusal { until_ms: now + 3_600_000, ..refusal("u") });
        assert!(cache.refusal("k", now + 500).is_some());
        assert!(cache.refusal("k", now + 1_500).is_none(), "a month-long refusal is re-asked within a second");
    }

    #[test]
    fn a_refusal_repeated_for_a_second_still_says_when_its_slot_frees() {
        let (cache, now, generation) = connected();
        cache.refuse("k", generation, Refusal { until_ms: now + 60_000, ..refusal("u") });
        assert_eq!(cache.refusal("k", now + 10).map(|r| r.until_ms), Some(now + 60_000));
    }

    #[test]
    fn a_refusal_is_repeated_for_a_second_after_policy_read_the_settings_behind_it_at_most() {
        let (cache, now, generation) = connected();
        let read_earlier = Refusal { until_ms: now + 3_600_000, settings_read_ms: now - 800, ..refusal("u") };
        cache.refuse("k", generation, read_earlier);
        assert!(cache.refusal("k", now + 150).is_some());
        assert!(cache.refusal("k", now + 250).is_none(), "settings read 800 ms before leave 200 ms");
        let read_long_ago = Refusal { until_ms: now + 3_600_000, settings_read_ms: now - 1_000, ..refusal("u") };
        cache.refuse("k", generation, read_long_ago);
        assert!(cache.refusal("k", now).is_none(), "settings a second old are asked again");
    }
}
